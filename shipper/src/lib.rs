//! `ship`, the shipper: sends log lines to a Scribe aggregator.
//!
//! - [`lines`] — reads a byte stream on its own thread, in chunks that end on line boundaries.
//! - [`stream`] — batches those lines ([`batch`]: native bodies with entry ids); `cat access.log | ship cat`.
//! - [`outbox`] — delivers batches (pipelined, with failover) and spools them to disk while
//!   the aggregator is down; every mode goes through it. [`dead_letter`] — what happens to a
//!   line longer than the aggregator takes (reported, kept with `--dead-letter`). [`disk`] —
//!   waiting out a full disk under the state directory instead of failing.
//! - [`follow`] — `ship --follow`: follows files across rotation (with `scribe-follow`),
//!   commits their offsets only once batches are safe; [`template`] names categories after
//!   files, [`multiline`] joins continuation lines, [`config`] reads the TOML file.
//! - [`run`] — `ship run -- COMMAND`: ships a daemon's stdout and stderr.
//! - [`rotatelogs`] — `ship rotatelogs`, a drop-in for Apache's rotatelogs that loses nothing;
//!   its [`rotatelogs::RotatelogsWriter`] writes rotated local files (also for `ship run --local`).
//! - [`cli`] — the command line; [`config`] merges it over the TOML file; [`modes`] runs the
//!   mode it asks for (what the `ship` binary calls, and in-process tests too).

pub mod batch;
pub mod cli;
pub mod config;
pub mod dead_letter;
pub mod disk;
pub mod follow;
pub mod lines;
pub mod modes;
pub mod multiline;
pub mod outbox;
pub mod rotatelogs;
pub mod run;
pub mod stream;
pub mod template;

pub use stream::{ship_stream, ShipError, ShipReport, StreamOptions};
