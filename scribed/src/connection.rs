//! One client connection: tell the protocol from the first four bytes (the native protocol's
//! magic, or a Thrift frame length), then for Thrift: read a frame, decode the call, answer
//! it, repeat. The native protocol is served by [`crate::native`].
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

use bytes::Bytes;
use scribe_protocol::decode_call;
use scribe_protocol::frame::{
    read_budgeted_body, read_budgeted_frame, read_frame_start, FrameError,
};
use scribe_protocol::native::MAGIC;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use crate::handler;
use crate::Server;

/// A client that does not read its replies for this long is disconnected.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// On a pipelining connection, a call that took this long is followed by closing the
/// connection: the client may have given up waiting and sent the batches behind it again on
/// another connection, so the copies still queued here must not be written after those.
pub(crate) const SLOW_CALL: Duration = Duration::from_secs(5);

pub async fn serve(server: Arc<Server>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let first = tokio::select! {
        biased;
        _ = server.shutdown.cancelled() => return,
        first = read_frame_start(&mut stream, Some(server.idle_timeout)) => first,
    };
    let mut pending = match first {
        Ok(Some(start)) if start == MAGIC => {
            return crate::native::serve(server, stream, peer).await;
        }
        Ok(Some(start)) => Some(start),
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(%peer, "connection closed before its first frame: {e}");
            return;
        }
    };
    let mut state = handler::ConnectionState::default();
    loop {
        let next = tokio::select! {
            biased;
            // A frame that was read but not answered is simply not acknowledged: the client
            // sends it again, elsewhere or after the restart.
            _ = server.shutdown.cancelled() => break,
            next = async {
                match pending.take() {
                    Some(len) => {
                        read_budgeted_body(&mut stream, len, server.max_frame, &server.frame_memory)
                            .await
                            .map(Some)
                    }
                    None => read_frame(&mut stream, &server).await,
                }
            } => next,
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
            if !write_reply(&mut stream, &out, peer).await {
                break;
            }
            if state.close_on_try_later && (state.refused || started.elapsed() >= SLOW_CALL) {
                // Calls the client pipelined behind a refused (or very slow) one are never
                // read: it sends them again, in order.
                break;
            }
        }
    }
}

/// Writes a whole reply; `false` (after logging why) when the client is gone or did not read
/// it within [`REPLY_TIMEOUT`].
pub(crate) async fn write_reply(stream: &mut TcpStream, out: &[u8], peer: SocketAddr) -> bool {
    match tokio::time::timeout(REPLY_TIMEOUT, stream.write_all(out)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "reply not delivered: {e}");
            false
        }
        Err(_) => {
            tracing::debug!(%peer, "client did not read its reply for {REPLY_TIMEOUT:?}");
            false
        }
    }
}

/// Reads one frame, its bytes accounted in the server-wide budget (see
/// [`read_budgeted_frame`]).
pub(crate) async fn read_frame(
    stream: &mut TcpStream,
    server: &Server,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    read_budgeted_frame(
        stream,
        server.max_frame,
        &server.frame_memory,
        Some(server.idle_timeout),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Args, Settings};
    use clap::Parser;
    use scribe_protocol::frame::BODY_TIMEOUT;
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
