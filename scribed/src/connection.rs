//! One client connection: read a frame, decode the call, answer it, repeat.
//!
//! Calls on one connection are handled strictly one after another, so the batches a client
//! sends on a connection are written in the order it sent them.
//!
//! Frames are read by hand rather than with a codec so that memory stays bounded across all
//! connections, not only per connection: before buffering a frame, a connection takes as many
//! permits as the frame has bytes from a server-wide budget ([`Server::frame_memory`]) and holds
//! them until the call is answered. When the budget is spent, reads wait (TCP pushes back on
//! the clients) instead of the process growing by `max_connections × max_frame`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use scribe_protocol::decode_call;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::handler;
use crate::Server;

/// A client that does not read its replies for this long is disconnected.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub async fn serve(server: Arc<Server>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut state = handler::ConnectionState::default();
    loop {
        let next = tokio::select! {
            biased;
            // A frame that was read but not answered is simply not acknowledged: the client
            // sends it again, elsewhere or after the restart.
            _ = server.shutdown.cancelled() => break,
            next = read_frame(&mut stream, &server) => next,
        };
        let (payload, _memory) = match next {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                server
                    .bad_frame_warn
                    .warn(|| format!("closing connection from {peer}: unreadable frame: {e}"));
                break;
            }
        };
        let call = match decode_call(payload) {
            Ok(call) => call,
            Err(e) => {
                server
                    .bad_frame_warn
                    .warn(|| format!("closing connection from {peer}: malformed call: {e}"));
                break;
            }
        };
        if let Some(reply) = handler::handle(&server, call, &mut state).await {
            let mut out = Vec::with_capacity(4 + reply.len());
            out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
            out.extend_from_slice(&reply);
            match tokio::time::timeout(REPLY_TIMEOUT, stream.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "reply not delivered: {e}");
                    break;
                }
                Err(_) => {
                    tracing::debug!(%peer, "client did not read its reply for {REPLY_TIMEOUT:?}");
                    break;
                }
            }
            if state.refused && state.close_on_try_later {
                // Calls the client pipelined behind the refused one are never read.
                break;
            }
        }
    }
}

/// Reads one frame: `None` at a clean end of stream (between frames). The permit accounts for
/// the frame's bytes in the server-wide budget while the caller holds it.
async fn read_frame(
    stream: &mut TcpStream,
    server: &Server,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match stream.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > server.max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: server.max_frame,
        });
    }
    // `len` is at most `max_frame`, and the budget is at least one frame, so this never asks
    // for more permits than exist.
    let permits = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
    let memory = server
        .frame_memory
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|_| FrameError::Io(std::io::ErrorKind::Interrupted.into()))?;
    // `read_buf` fills the spare capacity directly: no zero-filling of a buffer about to be
    // overwritten (it showed up as a memset of every byte received).
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some((buf.freeze(), memory)))
}
