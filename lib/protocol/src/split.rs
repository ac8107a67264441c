//! Fitting batches to what a server accepts.
//!
//! A server reads frames up to a size. A native server says which in its `WELCOME`, with the
//! longest message it accepts ([`crate::native::Welcome`]); over Thrift, which cannot say, the
//! client's configured `max_frame` stands in (a reset is no evidence: restarts, proxies and
//! idle timeouts reset connections too). A batch built for a larger limit is cut at message
//! boundaries, in order, into parts that fit ([`split_native`], [`split_thrift`]). A message
//! that fits no batch at all is taken out as an [`Oversize`] and handed to the caller's
//! [`OversizeSink`] — ship reports it (and keeps it with `--dead-letter`), scribed's relays
//! write it to a dead-letter file — so it never holds up the messages behind it. Resending
//! it could never succeed: the server closes the connection on an oversized frame, and a
//! client that retried it would retry for ever.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::native::{self, BatchBuilder, Entry, NativeError, Welcome, BATCH_FRAME_OVERHEAD};
use crate::scribe::ENTRY_OVERHEAD;
use crate::{EntryId, HeaderStyle, LogBatchBuilder};

/// What one connection may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload (the 4-byte length prefix not counted).
    pub max_frame: usize,
    /// Longest message, whatever the batch.
    pub max_message: usize,
    /// Whether the server reads bodies with runs of lines ([`native::has_runs`]); a body
    /// with runs going to any other is re-encoded without them.
    pub runs: bool,
}

impl Limits {
    /// A frame limit alone: a message is bounded by what fits in the frame.
    pub fn frame(max_frame: usize) -> Limits {
        Limits {
            max_frame,
            max_message: max_frame,
            runs: false,
        }
    }

    /// What a `WELCOME` advertises, within the client's own `max_frame`. A server that
    /// predates `max_message` is bounded by its frame alone.
    pub fn from_welcome(w: &Welcome, own_max_frame: usize) -> Limits {
        let max_frame = own_max_frame.min(w.max_frame as usize);
        let max_message = w
            .max_message
            .map_or(max_frame, |m| (m as usize).min(max_frame));
        Limits {
            max_frame,
            max_message,
            runs: w.runs,
        }
    }
}

/// A message no batch can carry to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversize {
    /// The server (`host:port`) that cannot take it.
    pub server: String,
    pub category: Bytes,
    pub message: Bytes,
    pub id: Option<EntryId>,
    /// The longest message of this category the server would take.
    pub limit: usize,
}

/// A batch body cut to fit: the parts to send, in order, and what fits no part.
#[derive(Debug, Default)]
pub struct Split {
    /// Native bodies ([`split_native`]) or Thrift `Log` calls ([`split_thrift`]).
    pub parts: Vec<Bytes>,
    pub oversize: Vec<Oversize>,
}

/// Cuts a native batch body into bodies that each fit one `BATCH` frame of `limits`. A body
/// that fits already, in a layout the server reads, is returned as it is, without decoding
/// it; the parts of any other are encoded without runs.
pub fn split_native(body: &Bytes, limits: Limits, server: &str) -> Result<Split, NativeError> {
    // Every message is shorter than the body that holds it.
    if body.len() + BATCH_FRAME_OVERHEAD <= limits.max_frame
        && body.len() <= limits.max_message
        && (limits.runs || !native::has_runs(body))
    {
        return Ok(Split {
            parts: vec![body.clone()],
            oversize: Vec::new(),
        });
    }
    let entries = native::decode_body(body.clone())?;
    Ok(split::<NativePart>(entries, body.len(), limits, server))
}

/// Re-encodes a native batch body as Thrift `Log` calls that each fit `limits` (entry ids
/// are dropped: Thrift has no room for them).
pub fn split_thrift(body: &Bytes, limits: Limits, server: &str) -> Result<Split, NativeError> {
    let entries = native::decode_body(body.clone())?;
    Ok(split::<ThriftPart>(entries, body.len(), limits, server))
}

/// One encoding of a batch under construction.
trait Part {
    /// An empty part; `capacity`: the bytes it will likely hold (a hint).
    fn with_capacity(capacity: usize) -> Self;
    /// Frame payload length once `e` is pushed and the part finished.
    fn len_with(&self, e: &Entry) -> usize;
    fn push(&mut self, e: &Entry);
    fn is_empty(&self) -> bool;
    fn finish(self) -> Bytes;
    /// On an empty part: the longest message of a category of this length a frame of
    /// `max_frame` holds.
    fn room(&self, max_frame: usize, category_len: usize) -> usize;
}

struct NativePart(BatchBuilder);

impl Part for NativePart {
    fn with_capacity(_: usize) -> Self {
        NativePart(BatchBuilder::new())
    }
    fn len_with(&self, e: &Entry) -> usize {
        BATCH_FRAME_OVERHEAD + self.0.encoded_len_with(&e.category, e.message.len(), e.id)
    }
    fn push(&mut self, e: &Entry) {
        self.0.push(&e.category, &e.message, e.id);
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn finish(self) -> Bytes {
        self.0.finish()
    }
    fn room(&self, max_frame: usize, category_len: usize) -> usize {
        native::max_message(max_frame, category_len)
    }
}

struct ThriftPart(LogBatchBuilder);

impl Part for ThriftPart {
    fn with_capacity(capacity: usize) -> Self {
        ThriftPart(LogBatchBuilder::new(HeaderStyle::Unversioned, capacity))
    }
    fn len_with(&self, e: &Entry) -> usize {
        // The entry, then the STOP byte `finish` adds.
        self.0.encoded_len() + ENTRY_OVERHEAD + e.category.len() + e.message.len() + 1
    }
    fn push(&mut self, e: &Entry) {
        self.0.push(&e.category, &e.message);
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn finish(self) -> Bytes {
        self.0.finish()
    }
    fn room(&self, max_frame: usize, category_len: usize) -> usize {
        max_frame.saturating_sub(self.0.encoded_len() + ENTRY_OVERHEAD + category_len + 1)
    }
}

/// `body_len`: the length of the body the entries came from, to size each part's buffer
/// (most batches fit one part, which then grows no further).
fn split<P: Part>(entries: Vec<Entry>, body_len: usize, limits: Limits, server: &str) -> Split {
    let capacity = body_len.min(limits.max_frame);
    let empty = P::with_capacity(0);
    let mut out = Split::default();
    let mut part = P::with_capacity(capacity);
    for e in entries {
        if e.message.len() > limits.max_message || empty.len_with(&e) > limits.max_frame {
            let limit = empty
                .room(limits.max_frame, e.category.len())
                .min(limits.max_message);
            out.oversize.push(Oversize {
                server: server.to_string(),
                category: e.category,
                message: e.message,
                id: e.id,
                limit,
            });
            continue;
        }
        if !part.is_empty() && part.len_with(&e) > limits.max_frame {
            out.parts
                .push(std::mem::replace(&mut part, P::with_capacity(capacity)).finish());
        }
        part.push(&e);
    }
    if !part.is_empty() {
        out.parts.push(part.finish());
    }
    out
}

/// Messages with ids handed over lately, so a batch sent again (after a lost connection)
/// does not report or keep its oversized messages twice. Small: such messages are rare.
const RECENT_IDS: usize = 1024;

type Handler = dyn Fn(Oversize) -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// Where a client puts each [`Oversize`] it takes out of a batch, before it sends the rest.
/// The handler is async, so it may write a file on the blocking pool; an error fails the
/// batch like a lost connection (it is sent again, and the message handed over again). A
/// message whose id was handed over among the last 1024 is not handed over again.
#[derive(Clone)]
pub struct OversizeSink {
    handler: Arc<Handler>,
    recent: Arc<Mutex<Recent>>,
}

#[derive(Default)]
struct Recent {
    order: VecDeque<EntryId>,
    set: HashSet<EntryId>,
}

impl OversizeSink {
    pub fn new(
        handler: impl Fn(Oversize) -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static,
    ) -> OversizeSink {
        OversizeSink {
            handler: Arc::new(handler),
            recent: Arc::default(),
        }
    }

    /// Hands `o` to the handler, unless its id was handed over lately.
    pub async fn take(&self, o: Oversize) -> Result<(), String> {
        let id = o.id;
        if id.is_some_and(|id| self.recent().set.contains(&id)) {
            return Ok(());
        }
        (self.handler)(o).await?;
        if let Some(id) = id {
            let mut r = self.recent();
            if r.set.insert(id) {
                r.order.push_back(id);
            }
            if r.order.len() > RECENT_IDS {
                if let Some(old) = r.order.pop_front() {
                    r.set.remove(&old);
                }
            }
        }
        Ok(())
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for OversizeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OversizeSink")
    }
}

#[cfg(test)]
mod tests;
