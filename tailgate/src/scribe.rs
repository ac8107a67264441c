//! `--scribe-listen`: accepts Scribe `Log()` calls, so scribed (a `network` store) or any
//! Scribe client can push lines straight into tailgate, with no file hop.
//!
//! A frame over `max_frame` is refused before anything is buffered, and memory stays bounded
//! across connections, not only per connection: before buffering a frame's body, a
//! connection takes as many permits as the frame has bytes from a listener-wide budget
//! (`memory`), held until the call is answered, and the body must arrive within
//! [`BODY_TIMEOUT`](scribe_protocol::frame::BODY_TIMEOUT). Without that, 40 connections each sending most of a 16 MiB frame would
//! hold 600 MiB. Every valid category's messages are published in order; a batch naming an invalid
//! category is still answered `OK` for its valid part (the invalid entries are counted and
//! logged, not retried forever), matching what a live tail is for: best effort, never
//! backpressure on the pipeline. fb303 status calls are answered so health checks work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use scribe_archive::Category;
use scribe_protocol::frame::{read_budgeted_frame, FrameError};
use scribe_protocol::message::{encode_exception, exception_kind};
use scribe_protocol::scribe::{
    encode_i32_reply, encode_i64_reply, encode_log_reply, encode_string_reply, encode_void_reply,
    FbStatus,
};
use scribe_protocol::{decode_call, Request, ResultCode};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// A connection that sends nothing for this long is closed (its partial frame freed).
const IDLE: Duration = Duration::from_secs(300);
/// A client that does not read its reply for this long is disconnected.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ScribeListener {
    pub hub: Arc<Hub>,
    pub max_frame: usize,
    /// Frame bytes held at once over all connections (raised to `max_frame` if below).
    pub memory: usize,
    pub max_connections: usize,
    pub shutdown: CancellationToken,
}

impl ScribeListener {
    pub async fn run(self, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        // Frame lengths are u32, so a budget of u32::MAX covers any one frame.
        let budget = self
            .memory
            .max(self.max_frame)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let memory = Arc::new(Semaphore::new(budget));
        let alive_since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let this = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                _ = this.shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("scribe listener: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("scribe listener: refusing {peer}: connection limit reached");
                continue;
            };
            let this = this.clone();
            let memory = memory.clone();
            tokio::spawn(async move {
                this.serve(stream, alive_since, memory).await;
                drop(permit);
            });
        }
    }

    async fn serve(&self, mut stream: TcpStream, alive_since: i64, memory: Arc<Semaphore>) {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        loop {
            let frame = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                f = read_frame(&mut stream, self.max_frame, &memory) => f,
            };
            // Held until the reply is sent: the decoded call borrows the frame's bytes.
            let (frame, _held) = match frame {
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("scribe connection {peer:?}: unreadable frame: {e}");
                    break;
                }
                Ok(Some(f)) => f,
            };
            let call = match decode_call(frame) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("scribe connection {peer:?}: malformed call: {e}");
                    break;
                }
            };
            let h = &call.header;
            let reply = match call.request {
                Request::Log(entries) => {
                    self.log(entries);
                    Some(encode_log_reply(h, ResultCode::Ok))
                }
                Request::GetName => Some(encode_string_reply(h, b"tailgate")),
                Request::GetVersion => {
                    Some(encode_string_reply(h, env!("CARGO_PKG_VERSION").as_bytes()))
                }
                Request::GetStatus => Some(encode_i32_reply(h, FbStatus::Alive as i32)),
                Request::GetStatusDetails | Request::GetOption(_) | Request::GetCpuProfile => {
                    Some(encode_string_reply(h, b""))
                }
                Request::AliveSince => Some(encode_i64_reply(h, alive_since)),
                Request::SetOption(..) => Some(encode_void_reply(h)),
                Request::Reinitialize | Request::Shutdown => None,
                Request::GetCounters
                | Request::GetCounter(_)
                | Request::GetOptions
                | Request::Unknown => Some(encode_exception(
                    h,
                    exception_kind::UNKNOWN_METHOD,
                    "not supported by tailgate",
                )),
            };
            if let Some(reply) = reply {
                let mut out = Vec::with_capacity(4 + reply.len());
                out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                out.extend_from_slice(&reply);
                match tokio::time::timeout(REPLY_TIMEOUT, stream.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
    }

    fn log(&self, entries: Vec<scribe_protocol::LogEntry>) {
        // Group per category, keeping each category's order.
        let mut groups: Vec<(Bytes, Vec<Bytes>)> = Vec::new();
        let mut index: HashMap<Bytes, usize> = HashMap::new();
        for e in entries {
            let i = *index.entry(e.category.clone()).or_insert_with(|| {
                groups.push((e.category.clone(), Vec::new()));
                groups.len() - 1
            });
            let msg = e.message;
            let line = if msg.last() == Some(&b'\n') {
                msg.slice(..msg.len() - 1)
            } else {
                msg
            };
            groups[i].1.push(line);
        }
        for (cat, lines) in groups {
            match Category::new(&cat) {
                Ok(c) => {
                    if let Err(e) = self.hub.publish(c.as_str(), lines) {
                        tracing::warn!("lines of {c} not kept: {e}");
                    }
                }
                Err(e) => {
                    self.hub
                        .metrics
                        .lines_refused
                        .fetch_add(lines.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("refusing {} lines: {e}", lines.len());
                }
            }
        }
    }
}

/// Reads one frame with its permits from the listener-wide budget (see
/// [`read_budgeted_frame`]); waiting for the next frame may take up to [`IDLE`], holding no
/// memory.
async fn read_frame(
    stream: &mut TcpStream,
    max_frame: usize,
    memory: &Arc<Semaphore>,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    read_budgeted_frame(stream, max_frame, memory, Some(IDLE)).await
}
