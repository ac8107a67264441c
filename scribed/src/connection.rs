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

/// A frame's body must arrive within this long of its length: its memory is held meanwhile.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// On a pipelining connection, a call that took this long is followed by closing the
/// connection: the client may have given up waiting and sent the batches behind it again on
/// another connection, so the copies still queued here must not be written after those.
const SLOW_CALL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("frame body not received within {0:?}")]
    Stalled(Duration),
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
        let started = std::time::Instant::now();
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
            if state.close_on_try_later && (state.refused || started.elapsed() >= SLOW_CALL) {
                // Calls the client pipelined behind a refused (or very slow) one are never
                // read: it sends them again, in order.
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
    // The frame's memory is reserved now, so a client that stops sending mid-frame must not
    // keep it: the body has to arrive within BODY_TIMEOUT.
    let mut buf = BytesMut::with_capacity(len);
    let body = async {
        while buf.len() < len {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(r) => r?,
        Err(_) => return Err(FrameError::Stalled(BODY_TIMEOUT)),
    }
    Ok(Some((buf.freeze(), memory)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Args, Settings};
    use clap::Parser;
    use tokio::io::AsyncWriteExt;

    /// A client that sends a frame's length and then nothing must not keep that frame's
    /// memory: the read gives up after BODY_TIMEOUT and the budget is whole again.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_frame_body_releases_its_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().to_str().unwrap().to_string();
        let args = Args::parse_from(["scribed", "--data-dir", &data]);
        let settings = Settings::load(&args).unwrap();
        let server = Server::new(args, settings, Default::default())
            .await
            .unwrap();
        let budget = server.frame_memory.available_permits();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        client
            .write_all(&(16u32 << 20).to_be_bytes())
            .await
            .unwrap();
        client.write_all(b"abc").await.unwrap();

        let started = tokio::time::Instant::now();
        let r = read_frame(&mut conn, &server).await;
        assert!(
            matches!(r, Err(FrameError::Stalled(_))),
            "{:?}",
            r.map(|_| ())
        );
        assert!(started.elapsed() >= BODY_TIMEOUT);
        assert_eq!(server.frame_memory.available_permits(), budget);
    }
}
