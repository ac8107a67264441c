//! The server side of Scribe's Thrift protocol, shared by scribed and tailgate's Scribe
//! listener: a [`ServerConnection`] that reads calls and writes framed replies, the fb303
//! answers a server gives unless it says otherwise ([`ScribeService`]), and
//! [`group_by_category`], which splits a batch the way every store and feed consumes it.
//!
//! Frames are read by hand rather than with a codec so that memory stays bounded across all
//! connections, not only per connection: before buffering a frame, a connection takes as many
//! permits as the frame has bytes from a server-wide budget ([`ServerLimits::memory`]) and the
//! caller holds them until the call is answered. When the budget is spent, reads wait (TCP
//! pushes back on the clients) instead of the process growing by `connections × max_frame`.
//!
//! A connection handles one call at a time, so the batches a client sends on one connection
//! are handled in the order it sent them. The connection is generic over its stream: TLS, when
//! it comes, wraps the socket here and nowhere else.
//!
//! Nothing here logs: [`ServerConnection::serve`] says why it stopped ([`ServeError`]) and the
//! server decides how loudly to say so (both servers rate-limit what a client can trigger).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::frame::{
    read_budgeted_body, read_budgeted_frame, read_frame_start, FrameError, BODY_TIMEOUT,
};
use crate::message::{encode_exception, exception_kind, MessageHeader};
use crate::scribe::{
    decode_call, encode_i32_reply, encode_i64_reply, encode_log_reply, encode_map_reply,
    encode_string_reply, encode_void_reply, Call, FbStatus, LogEntry, Request, ResultCode,
};
use crate::thrift::{ttype, DecodeError};
use scribe_ids::EntryId;

/// Default for [`ServerLimits::reply_timeout`].
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A frame as read for a server: its payload, and its share of the memory budget, to hold
/// until the call it carries is answered (the decoded call borrows the payload's bytes).
pub type BudgetedFrame = (Bytes, OwnedSemaphorePermit);

/// What every connection of one server shares.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Largest frame payload accepted; a longer one is refused before anything is buffered.
    pub max_frame: usize,
    /// Bytes of frames being read or handled, over all connections: each frame holds permits
    /// for its bytes until its call is answered. At least `max_frame` permits.
    pub memory: Arc<Semaphore>,
    /// A connection that starts no frame for this long is closed, holding no memory meanwhile.
    pub idle: Option<Duration>,
    /// A client that does not read its reply for this long is disconnected.
    pub reply_timeout: Duration,
}

impl ServerLimits {
    /// Limits with a budget of `memory` bytes, raised to one frame (so any frame can be read)
    /// and capped to what the semaphore can count (frame lengths are `u32`, so `u32::MAX`
    /// covers any one frame), and the default [`REPLY_TIMEOUT`].
    pub fn new(max_frame: usize, memory: usize, idle: Option<Duration>) -> ServerLimits {
        let budget = memory
            .max(max_frame)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ServerLimits {
            max_frame,
            memory: Arc::new(Semaphore::new(budget)),
            idle,
            reply_timeout: REPLY_TIMEOUT,
        }
    }
}

/// Why a reply was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("reply not delivered: {0}")]
    Io(#[from] std::io::Error),
    #[error("client did not read its reply within {0:?}")]
    Timeout(Duration),
    #[error("reply of {0} bytes does not fit a frame")]
    TooLarge(usize),
}

/// Why [`ServerConnection::serve`] closed a connection early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("unreadable frame: {0}")]
    Frame(#[from] FrameError),
    #[error("malformed call: {0}")]
    Call(#[from] DecodeError),
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Sends and receives frames on one server connection: calls in, framed replies out.
#[derive(Debug)]
pub struct ServerConnection<S> {
    stream: S,
    limits: ServerLimits,
    /// Four bytes [`peek_start`](Self::peek_start) read: the next frame's length.
    peeked: Option<[u8; 4]>,
    /// The first bytes of a frame start [`wait_start`](Self::wait_start) read before it was
    /// cancelled, and how many.
    partial: ([u8; 4], usize),
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerConnection<S> {
    /// Serves `stream` within `limits` (usually a clone of the server's, sharing its budget).
    pub fn new(stream: S, limits: ServerLimits) -> ServerConnection<S> {
        ServerConnection {
            stream,
            limits,
            peeked: None,
            partial: ([0; 4], 0),
        }
    }

    /// The limits this connection reads and writes within.
    pub fn limits(&self) -> &ServerLimits {
        &self.limits
    }

    /// The stream (for its peer address, say).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Reads the 4 bytes that start the next frame (waiting at most [`ServerLimits::idle`];
    /// `None` at a clean end of stream or when idle) and keeps them as that frame's length,
    /// unless [`skip_start`](Self::skip_start) drops them. For a server that tells protocols
    /// apart by these bytes (scribed: the native protocol's magic, or a Thrift frame length).
    pub async fn peek_start(&mut self) -> Result<Option<[u8; 4]>, FrameError> {
        if self.peeked.is_none() {
            self.peeked = read_frame_start(&mut self.stream, self.limits.idle).await?;
        }
        Ok(self.peeked)
    }

    /// Drops the bytes [`peek_start`](Self::peek_start) kept: they were not a frame length.
    pub fn skip_start(&mut self) {
        self.peeked = None;
    }

    /// Waits for the next frame to start (its 4 length bytes, kept for
    /// [`read_frame`](Self::read_frame)); `false` at a clean end of stream. Unlike
    /// [`peek_start`](Self::peek_start) it is cancel-safe (bytes read before a cancellation are
    /// kept for the next call) and has no idle limit: for a server that waits for the next
    /// frame and for something else at once (a server reading ahead while answers are due).
    pub async fn wait_start(&mut self) -> Result<bool, FrameError> {
        use tokio::io::AsyncReadExt;
        while self.peeked.is_none() {
            let (buf, got) = &mut self.partial;
            // `read` is cancel-safe: a cancelled read has consumed nothing.
            let n = self.stream.read(&mut buf[*got..]).await?;
            if n == 0 {
                return match *got {
                    0 => Ok(false),
                    _ => Err(FrameError::Truncated),
                };
            }
            *got += n;
            if *got == 4 {
                self.peeked = Some(*buf);
                *got = 0;
            }
        }
        Ok(true)
    }

    /// Reads one frame within the limits: `None` at a clean end of stream between frames or
    /// when none starts within [`ServerLimits::idle`]. See [`read_budgeted_frame`].
    pub async fn read_frame(&mut self) -> Result<Option<BudgetedFrame>, FrameError> {
        if self.partial.1 > 0 {
            // A frame began: the rest of its start is due within the body timeout.
            let started = tokio::time::timeout(BODY_TIMEOUT, self.wait_start())
                .await
                .map_err(|_| FrameError::Stalled(BODY_TIMEOUT))??;
            if !started {
                return Ok(None);
            }
        }
        let l = &self.limits;
        match self.peeked.take() {
            Some(start) => read_budgeted_body(&mut self.stream, start, l.max_frame, &l.memory)
                .await
                .map(Some),
            None => read_budgeted_frame(&mut self.stream, l.max_frame, &l.memory, l.idle).await,
        }
    }

    /// Reads and decodes one call; `None` as for [`read_frame`](Self::read_frame). The permit
    /// is the frame's memory, to hold until the call is answered.
    pub async fn read_call(&mut self) -> Result<Option<(Call, OwnedSemaphorePermit)>, ServeError> {
        match self.read_frame().await? {
            Some((payload, memory)) => Ok(Some((decode_call(payload)?, memory))),
            None => Ok(None),
        }
    }

    /// Writes `payload` as one frame (its length first) within
    /// [`ServerLimits::reply_timeout`].
    pub async fn write_reply(&mut self, payload: &[u8]) -> Result<(), ReplyError> {
        let len = u32::try_from(payload.len()).map_err(|_| ReplyError::TooLarge(payload.len()))?;
        // One buffer, so that length and payload leave in one write (one packet with
        // TCP_NODELAY); replies are small.
        let mut out = Vec::with_capacity(4 + payload.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        self.write_frame(&out).await
    }

    /// Writes bytes that already carry their frame length (the native protocol's frames)
    /// within [`ServerLimits::reply_timeout`].
    pub async fn write_frame(&mut self, framed: &[u8]) -> Result<(), ReplyError> {
        let timeout = self.limits.reply_timeout;
        let write = async {
            self.stream.write_all(framed).await?;
            // A no-op on a socket; a TLS stream only sends what it buffered when flushed.
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ReplyError::Timeout(timeout)),
        }
    }

    /// Answers calls one after another until the client closes the connection, goes idle,
    /// sends something unreadable, does not read a reply, `service` asks to close
    /// ([`ScribeService::close_after`]), or `shutdown` is cancelled. A call that was read is
    /// answered even when shutdown begins meanwhile; one not yet read is simply not
    /// acknowledged, and the client sends it again.
    pub async fn serve<H: ScribeService>(
        &mut self,
        service: &mut H,
        shutdown: &CancellationToken,
    ) -> Result<(), ServeError> {
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                next = self.read_call() => next?,
            };
            let Some((call, _memory)) = next else {
                return Ok(());
            };
            let started = tokio::time::Instant::now();
            if let Some(reply) = answer(service, call).await {
                self.write_reply(&reply).await?;
                if service.close_after(started.elapsed()) {
                    return Ok(());
                }
            }
        }
    }
}

/// A call the server will not carry out for this client, and why (sent to the client as a
/// `TApplicationException`; nothing of the call was done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// What a Scribe server does with each call. Only [`log`](Self::log) and the identity
/// (`name`, `version`, `alive_since`) must be written; every other fb303 method has the
/// answer of fb303's base implementation, or of a server that does not offer it.
///
/// One value serves one connection (it may keep per-connection state, such as scribed's
/// `close_on_try_later`); calls come one at a time.
pub trait ScribeService: Send {
    /// fb303 `getName`.
    fn name(&self) -> &[u8];
    /// fb303 `getVersion`.
    fn version(&self) -> &[u8];
    /// fb303 `aliveSince`: Unix time the server started.
    fn alive_since(&self) -> i64;

    /// `Log`: takes a batch and says whether the client may forget it (`OK`) or must send it
    /// again (`TRY_LATER`), or refuses it for good ([`Refused`], answered with a
    /// `TApplicationException`: a client that may not write a category).
    fn log(
        &mut self,
        entries: Vec<LogEntry>,
    ) -> impl Future<Output = Result<ResultCode, Refused>> + Send;

    /// fb303 `getStatus`.
    fn status(&self) -> impl Future<Output = FbStatus> + Send {
        async { FbStatus::Alive }
    }
    /// fb303 `getStatusDetails`: empty when all is well.
    fn status_details(&self) -> impl Future<Output = String> + Send {
        async { String::new() }
    }
    /// fb303 `getCounters`; `None` answers [`unknown_method`](Self::unknown_method).
    fn counters(&self) -> Option<Vec<(String, i64)>> {
        None
    }
    /// fb303 `getCounter`; `None` answers [`unknown_method`](Self::unknown_method).
    fn counter(&self, _key: &[u8]) -> Option<i64> {
        None
    }
    /// fb303 `setOption`: ignored unless the server has options; [`Refused`] answers a
    /// client that may not set it.
    fn set_option(
        &mut self,
        _key: &[u8],
        _value: &[u8],
    ) -> impl Future<Output = Result<(), Refused>> + Send {
        async { Ok(()) }
    }
    /// fb303 `getOption`: empty for options the server does not have.
    fn option(&self, _key: &[u8]) -> Bytes {
        Bytes::new()
    }
    /// fb303 `getOptions`; `None` answers [`unknown_method`](Self::unknown_method).
    fn options(&self) -> Option<Vec<(Bytes, Bytes)>> {
        None
    }
    /// fb303 `reinitialize` (oneway: never answered).
    fn reinitialize(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// fb303 `shutdown` (oneway: never answered).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// The message of the `TApplicationException(UNKNOWN_METHOD)` answering `method` when it
    /// is not a method of the service, or one this server does not offer.
    fn unknown_method(&self, method: &str) -> String {
        format!("Invalid method name: '{method}'")
    }
    /// After answering a call that took `took`: true to close the connection without reading
    /// further calls.
    fn close_after(&self, _took: Duration) -> bool {
        false
    }
}

/// The reply to `call` (without its frame length), if it gets one: oneway methods do not,
/// whatever message type the client used.
pub async fn answer<H: ScribeService>(service: &mut H, call: Call) -> Option<Bytes> {
    let h = &call.header;
    let reply = match call.request {
        Request::Log(entries) => match service.log(entries).await {
            Ok(code) => encode_log_reply(h, code),
            Err(Refused(why)) => encode_exception(h, exception_kind::UNKNOWN, &why),
        },
        Request::GetName => encode_string_reply(h, service.name()),
        Request::GetVersion => encode_string_reply(h, service.version()),
        Request::GetStatus => encode_i32_reply(h, service.status().await as i32),
        Request::GetStatusDetails => {
            encode_string_reply(h, service.status_details().await.as_bytes())
        }
        Request::AliveSince => encode_i64_reply(h, service.alive_since()),
        Request::GetCounters => match service.counters() {
            Some(counters) => encode_map_reply(
                h,
                ttype::I64,
                counters.iter().map(|(k, v)| (k.as_bytes(), *v)),
                |w, v| w.i64(v),
            ),
            None => unknown_method(service, h),
        },
        Request::GetCounter(key) => match service.counter(&key) {
            Some(value) => encode_i64_reply(h, value),
            None => unknown_method(service, h),
        },
        Request::SetOption(key, value) => match service.set_option(&key, &value).await {
            Ok(()) => encode_void_reply(h),
            Err(Refused(why)) => encode_exception(h, exception_kind::UNKNOWN, &why),
        },
        Request::GetOption(key) => encode_string_reply(h, &service.option(&key)),
        Request::GetOptions => match service.options() {
            Some(options) => encode_map_reply(
                h,
                ttype::STRING,
                options.iter().map(|(k, v)| (&k[..], &v[..])),
                |w, v| w.binary(v),
            ),
            None => unknown_method(service, h),
        },
        Request::GetCpuProfile => encode_string_reply(h, b""),
        Request::Reinitialize => {
            service.reinitialize().await;
            return None;
        }
        Request::Shutdown => {
            service.shutdown().await;
            return None;
        }
        Request::Unknown => unknown_method(service, h),
    };
    Some(reply)
}

fn unknown_method<H: ScribeService>(service: &H, h: &MessageHeader) -> Bytes {
    encode_exception(
        h,
        exception_kind::UNKNOWN_METHOD,
        &service.unknown_method(&h.name),
    )
}

/// One entry of a batch, from either protocol: category, message, id (native only).
pub type Incoming = (Bytes, Bytes, Option<EntryId>);

/// One category's share of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryGroup {
    /// The category as the client sent it, not validated.
    pub category: Bytes,
    /// Its messages, in arrival order.
    pub messages: Vec<Bytes>,
    /// Their entry ids, one per message (`None` for Thrift's).
    pub ids: Vec<Option<EntryId>>,
    /// Messages that arrived as runs of lines (native bodies with runs), in order: each
    /// run's lines are also in `messages`. What a store may write in one piece.
    pub runs: Vec<LineRun>,
}

/// Consecutive messages of a [`CategoryGroup`] that arrived as one run of lines: their bytes
/// back to back, each line ending in `\n`, and (when they have ids) consecutive ranges of
/// one producer, `ids[first].start .. ids[last].end`, exactly the run's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRun {
    /// The run's lines, as indices into `messages` (and `ids`).
    pub messages: std::ops::Range<usize>,
    /// The same lines, back to back (`messages[range]` concatenated).
    pub bytes: Bytes,
}

/// Splits a batch by category, in the order categories first appear, keeping each category's
/// messages (and their ids) in arrival order. Categories are compared as bytes: validating
/// them is the caller's business, once per group rather than once per message.
pub fn group_by_category(entries: impl IntoIterator<Item = Incoming>) -> Vec<CategoryGroup> {
    let entries = entries.into_iter();
    let mut grouper = Grouper::new(entries.size_hint().0);
    // Consecutive messages nearly always share a category: compare with the previous one
    // before hashing.
    let mut last: Option<usize> = None;
    for (category, message, id) in entries {
        let g = match last.filter(|&g| grouper.groups[g].category == category) {
            Some(g) => g,
            None => grouper.group_of(&category),
        };
        last = Some(g);
        grouper.push(g, message, id);
    }
    grouper.groups
}

/// Builds a batch's [`CategoryGroup`]s: a group per distinct category name, in the order
/// names first appear. The one place groups are made, for [`group_by_category`] and the
/// native decoder's `decode_body_grouped`.
pub(crate) struct Grouper {
    pub(crate) groups: Vec<CategoryGroup>,
    // SipHash (std's default), not a faster unkeyed hash: category names come from clients.
    index: std::collections::HashMap<Bytes, usize>,
    /// Messages the batch holds: most batches are of one category, so the first group gets
    /// room for all of them.
    expected: usize,
}

impl Grouper {
    pub(crate) fn new(expected: usize) -> Grouper {
        Grouper {
            groups: Vec::new(),
            index: Default::default(),
            expected,
        }
    }

    /// The index of `category`'s group, made now if it is new.
    pub(crate) fn group_of(&mut self, category: &Bytes) -> usize {
        let groups = &mut self.groups;
        let expected = self.expected;
        *self.index.entry(category.clone()).or_insert_with(|| {
            let room = if groups.is_empty() { expected } else { 0 };
            groups.push(CategoryGroup {
                category: category.clone(),
                messages: Vec::with_capacity(room),
                ids: Vec::with_capacity(room),
                runs: Vec::new(),
            });
            groups.len() - 1
        })
    }

    pub(crate) fn push(&mut self, group: usize, message: Bytes, id: Option<EntryId>) {
        self.groups[group].messages.push(message);
        self.groups[group].ids.push(id);
    }

    /// Notes that the group's last `count` messages, just pushed, are the lines of `bytes`.
    pub(crate) fn note_run(&mut self, group: usize, bytes: Bytes, count: usize) {
        let g = &mut self.groups[group];
        let end = g.messages.len();
        g.runs.push(LineRun {
            messages: end - count..end,
            bytes,
        });
    }
}

/// Entries of a Thrift `Log` call as [`group_by_category`] takes them (no ids).
pub fn thrift_entries(entries: Vec<LogEntry>) -> impl Iterator<Item = Incoming> {
    entries.into_iter().map(|e| (e.category, e.message, None))
}

#[cfg(test)]
mod tests;
