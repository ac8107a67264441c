//! One native-protocol connection (see `scribe_protocol::native` and docs/protocol.md):
//! `HELLO` → `WELCOME` (with this server's frame and message limits), then batches, each answered by an `ACK` with its number, strictly in
//! order. After any answer but `OK` the connection is closed without reading further, so a
//! client that pipelines never has a batch written behind one that was refused.
//!
//! Entries keep their ids on the way to the stores: a file store writes an entry whose range
//! its category already committed as a duplicate-free no-op (exactly-once), a relay forwards
//! the ids upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use scribe_protocol::native::{
    self, Ack, AckStatus, BatchFrame, Compression, Denied, Hello, NativeError, Welcome,
};
use scribe_protocol::{Refused, ResultCode, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Peer, UNKNOWN_TOKENS};
use crate::handler::{self, SLOW_CALL};
use crate::Server;

/// The `HELLO` must follow the magic within this long.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a connection whose magic was read.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    mut conn: ServerConnection<S>,
    mut peer: Peer,
) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, conn.read_frame()).await {
        Ok(Ok(Some((frame, _memory)))) => Hello::decode(frame),
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            bad(&server, &peer, &e);
            return;
        }
    };
    let hello = match hello {
        Ok(h) => h,
        Err(e) => return bad(&server, &peer, &e),
    };
    if let Some(token) = &hello.token {
        let rules = server.routing.read().await.rules.clone();
        match rules.by_token(token) {
            Some(name) => peer.client = Some(name.to_string()),
            None => {
                server
                    .auth_counters
                    .add(UNKNOWN_TOKENS, &peer.listener.at, 1);
                let addr = peer.addr;
                server
                    .auth_warn
                    .warn(|| format!("refused native client {addr}: its token is not known"));
                let denied = Denied {
                    message: Bytes::from_static(b"the token is not accepted by this server"),
                };
                reply(&mut conn, &denied.encode(), &peer).await;
                return;
            }
        }
    }
    let welcome = Welcome {
        version: native::VERSION,
        compression: if hello.gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        max_frame: u32::try_from(server.limits.max_frame).unwrap_or(u32::MAX),
        // What fits one frame with the longest category this server accepts: a client
        // sets aside a longer message at once instead of sending it for ever.
        max_message: Some(
            u32::try_from(native::max_message(
                server.limits.max_frame,
                scribe_archive::category::MAX_CATEGORY_LEN,
            ))
            .unwrap_or(u32::MAX),
        ),
    };
    if !reply(&mut conn, &welcome.encode(), &peer).await || hello.version != native::VERSION {
        // A client of another version reads our version from the WELCOME and gives up.
        return;
    }
    tracing::debug!(
        peer = %peer.addr,
        client = peer.name(),
        name = %String::from_utf8_lossy(&hello.name),
        "native client"
    );
    loop {
        let next = tokio::select! {
            biased;
            // A batch read but not answered is not acknowledged: the client sends it again.
            _ = server.shutdown.cancelled() => break,
            next = conn.read_frame() => next,
        };
        let (frame, _memory) = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return bad(&server, &peer, &e),
        };
        let started = Instant::now();
        let (batch, status, message) = match handle_batch(&server, &peer, frame).await {
            Ok((batch, Ok(ResultCode::Ok))) => (batch, AckStatus::Ok, Bytes::new()),
            Ok((batch, Ok(ResultCode::TryLater))) => {
                (batch, AckStatus::TryLater, Bytes::from_static(b"try later"))
            }
            Ok((batch, Err(Refused(why)))) => (batch, AckStatus::Denied, Bytes::from(why)),
            Err((batch, e)) => {
                bad(&server, &peer, &e);
                (batch, AckStatus::Error, Bytes::from(e.to_string()))
            }
        };
        let ack = Ack {
            batch,
            status,
            message,
        };
        if !reply(&mut conn, &ack.encode(), &peer).await || status != AckStatus::Ok {
            break;
        }
        if started.elapsed() >= SLOW_CALL {
            // As for pipelining Thrift clients (see `SLOW_CALL`): the client may have given up
            // on this connection and sent what is queued here again elsewhere.
            break;
        }
    }
}

/// Decodes (inflating within the frame-memory budget) and routes one batch.
async fn handle_batch(
    server: &Server,
    peer: &Peer,
    frame: Bytes,
) -> Result<(u64, Result<ResultCode, Refused>), (u64, NativeError)> {
    let bf = BatchFrame::decode(frame).map_err(|e| (0, e))?;
    let batch = bf.batch;
    // An inflated body takes its own share of the budget, on top of the compressed frame.
    let _inflated = if bf.compression == Compression::None {
        None
    } else {
        if bf.body_len > server.limits.max_frame {
            return Err((
                batch,
                NativeError::TooLarge {
                    len: bf.body_len,
                    max: server.limits.max_frame,
                },
            ));
        }
        let permits = u32::try_from(bf.body_len.max(1)).unwrap_or(u32::MAX);
        Some(
            server
                .limits
                .memory
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| (batch, NativeError::Invalid("shutting down".into())))?,
        )
    };
    let body = bf
        .into_body(server.limits.max_frame)
        .map_err(|e| (batch, e))?;
    let entries = native::decode_body(body).map_err(|e| (batch, e))?;
    let code = handler::log(
        server,
        peer,
        entries.into_iter().map(|e| (e.category, e.message, e.id)),
    )
    .await;
    Ok((batch, code))
}

fn bad(server: &Server, peer: &Peer, e: &dyn std::fmt::Display) {
    let addr = peer.addr;
    server
        .bad_frame_warn
        .warn(|| format!("closing native connection from {addr}: {e}"));
}

/// Writes a `WELCOME` or `ACK`; `false` (logged at debug: the client went away or stopped
/// reading) when it was not delivered.
async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ServerConnection<S>,
    frame: &[u8],
    peer: &Peer,
) -> bool {
    match conn.write_frame(frame).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(peer = %peer.addr, "{e}");
            false
        }
    }
}
