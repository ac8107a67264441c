//! Scribe's wire protocol, shared by `scribed` (server and relay store), `ship` and `tailgate`.
//!
//! - [`thrift`] — bounds-checked Thrift binary protocol primitives (strings are bytes).
//! - [`message`] — message headers in both the strict and the old unversioned style, replies
//!   and `TApplicationException`.
//! - [`scribe`] — the `scribe` service and fb303 calls: decoding calls, encoding replies,
//!   building `Log` batches.
//! - [`frame`] — the 4-byte length-prefixed framed transport with a size cap.
//! - [`native`] — the native protocol: batches with entry ids (exactly-once), pipelined and
//!   acknowledged by number, optionally gzip-compressed.
//! - [`EntryId`], [`ProducerId`] — entry identities (crate `scribe-ids`, re-exported).
//! - [`client`] — one connection in either protocol; [`sender`] — delivery that pipelines,
//!   retries `TRY_LATER` and connection failures with jittered exponential backoff;
//!   [`split`] — cutting batches to a server's limits, and setting aside a message that
//!   fits none.
//! - [`server`] — the server side of the Thrift protocol (scribed, tailgate): a connection
//!   that reads calls and writes framed replies, default fb303 answers
//!   ([`ScribeService`]), and [`group_by_category`].
//!
//! Nothing read off a socket can make this crate panic or allocate more than the frame limit:
//! every length and element count is checked against the bytes actually present.

#![forbid(unsafe_code)]

pub mod client;
pub mod frame;
pub mod message;
pub mod native;
pub mod scribe;
pub mod sender;
pub mod server;
pub mod split;
pub mod thrift;

pub use message::HeaderStyle;
pub use scribe::{decode_call, Call, LogBatchBuilder, LogEntry, Request, ResultCode};
pub use scribe_ids::{EntryId, ProducerId, ProducerMap};
pub use server::{
    group_by_category, CategoryGroup, Refused, ScribeService, ServeError, ServerConnection,
    ServerLimits,
};
