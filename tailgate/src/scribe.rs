//! `--scribe-listen`: accepts Scribe `Log()` calls, so scribed (a `network` store) or any
//! Scribe client can push lines straight into tailgate, with no file hop.
//!
//! Frames use lib/protocol's codec, which refuses a frame over `max_frame` before buffering
//! it. Every valid category's messages are published in order; a batch naming an invalid
//! category is still answered `OK` for its valid part (the invalid entries are counted and
//! logged, not retried forever), matching what a live tail is for: best effort, never
//! backpressure on the pipeline. fb303 status calls are answered so health checks work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use scribe_archive::Category;
use scribe_protocol::message::{encode_exception, exception_kind};
use scribe_protocol::scribe::{
    encode_i32_reply, encode_i64_reply, encode_log_reply, encode_string_reply, encode_void_reply,
    FbStatus,
};
use scribe_protocol::{decode_call, Request, ResultCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// A connection that sends nothing for this long is closed (its partial frame freed).
const IDLE: Duration = Duration::from_secs(300);

pub struct ScribeListener {
    pub hub: Arc<Hub>,
    pub max_frame: usize,
    pub max_connections: usize,
    pub shutdown: CancellationToken,
}

impl ScribeListener {
    pub async fn run(self, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
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
            tokio::spawn(async move {
                this.serve(stream, alive_since).await;
                drop(permit);
            });
        }
    }

    async fn serve(&self, stream: TcpStream, alive_since: i64) {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let mut framed = Framed::new(stream, scribe_protocol::frame::codec(self.max_frame));
        loop {
            let frame = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                f = tokio::time::timeout(IDLE, framed.next()) => f,
            };
            let frame = match frame {
                Err(_) | Ok(None) => break,
                Ok(Some(Err(e))) => {
                    tracing::warn!("scribe connection {peer:?}: unreadable frame: {e}");
                    break;
                }
                Ok(Some(Ok(f))) => f.freeze(),
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
                if framed.send(reply).await.is_err() {
                    break;
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
