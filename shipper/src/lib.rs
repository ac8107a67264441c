//! `ship`, the shipper: sends log lines to a Scribe aggregator.
//!
//! - [`lines`] — reads a byte stream on its own thread, in chunks that end on line boundaries.
//! - [`stream`] — batches those lines into Thrift `Log` calls and delivers them with retries;
//!   `cat access.log | ship apache.access`.
//! - [`rotatelogs`] — `ship rotatelogs`, a drop-in for Apache's rotatelogs that loses nothing;
//!   its [`rotatelogs::RotatelogsWriter`] writes rotated local files for any caller.

pub mod lines;
pub mod rotatelogs;
pub mod stream;

pub use stream::{ship_stream, ShipError, ShipReport, StreamOptions};
