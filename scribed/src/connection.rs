//! One client connection: tell the protocol from the first four bytes (the native protocol's
//! magic, or a Thrift frame length), then serve it: Thrift calls through
//! `scribe_protocol::server` with scribed's answers ([`handler::Scribed`]), the native
//! protocol through [`crate::native`].
//!
//! Calls on one connection are handled strictly one after another, so the batches a client
//! sends on a connection are written in the order they were sent. Every frame is read within
//! the server-wide frame-memory budget ([`Server::limits`]), so memory stays bounded across all
//! connections, not only per connection.

use std::sync::Arc;

use scribe_protocol::native::MAGIC;
use scribe_protocol::{ServeError, ServerConnection};
use scribe_tls::Stream;

use crate::auth::Peer;
use crate::handler;
use crate::Server;

/// Serves one accepted connection (TLS already negotiated on a TLS listener).
pub async fn serve(server: Arc<Server>, stream: Stream, peer: Peer) {
    let _ = stream.tcp().set_nodelay(true);
    let tls = stream.is_tls();
    let mut conn = ServerConnection::new(stream, server.limits.clone());
    let first = tokio::select! {
        biased;
        _ = server.shutdown.cancelled() => return,
        first = conn.peek_start() => first,
    };
    match first {
        Ok(Some(start)) if start == MAGIC => {
            conn.skip_start();
            return crate::native::serve(server, conn, peer).await;
        }
        // A TLS ClientHello read as a frame length is over 369 MB: larger than any frame
        // scribed accepts unless max_frame was raised past it.
        Ok(Some(start))
            if !tls
                && scribe_tls::looks_like_tls(&start)
                && u32::from_be_bytes(start) as usize > server.limits.max_frame =>
        {
            let (addr, at) = (peer.addr, &peer.listener.at);
            server.auth_warn.warn(|| {
                format!(
                    "TLS client {addr} on the plaintext listener {at}: it must connect to a                      TLS listener, or without TLS"
                )
            });
            return;
        }
        // A Thrift frame's length: the first call's.
        Ok(Some(_)) => {}
        Ok(None) => return,
        Err(e) => {
            let addr = peer.addr;
            tracing::debug!(%addr, "connection closed before its first frame: {e}");
            return;
        }
    }
    let mut calls = handler::Scribed::new(&server, &peer);
    match conn.serve(&mut calls, &server.shutdown).await {
        Ok(()) => {}
        Err(e @ ServeError::Reply(_)) => tracing::debug!(peer = %peer.addr, "{e}"),
        Err(e) => {
            let addr = peer.addr;
            server
                .bad_frame_warn
                .warn(|| format!("closing connection from {addr}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Args, Server, Settings};
    use clap::Parser;
    use scribe_protocol::frame::{FrameError, BODY_TIMEOUT};
    use scribe_protocol::ServerConnection;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

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
        let budget = server.limits.memory.available_permits();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let mut conn = ServerConnection::new(conn, server.limits.clone());
        client
            .write_all(&(16u32 << 20).to_be_bytes())
            .await
            .unwrap();
        client.write_all(b"abc").await.unwrap();

        let started = tokio::time::Instant::now();
        let r = conn.read_frame().await;
        assert!(
            matches!(r, Err(FrameError::Stalled(_))),
            "{:?}",
            r.map(|_| ())
        );
        assert!(started.elapsed() >= BODY_TIMEOUT);
        assert_eq!(server.limits.memory.available_permits(), budget);
    }
}
