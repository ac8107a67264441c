//! One client connection: read a frame, decode the call, answer it, repeat.
//!
//! Calls on one connection are handled strictly one after another, so the batches a client
//! sends on a connection are written in the order it sent them.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use scribe_protocol::{decode_call, frame};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::handler;
use crate::Server;

pub async fn serve(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, frame::codec(server.max_frame));
    loop {
        let next = tokio::select! {
            biased;
            // A frame that was read but not answered is simply not acknowledged: the client
            // sends it again, elsewhere or after the restart.
            _ = server.shutdown.cancelled() => break,
            next = framed.next() => next,
        };
        let payload = match next {
            None => break,
            Some(Ok(payload)) => payload.freeze(),
            Some(Err(e)) => {
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
        if let Some(reply) = handler::handle(&server, call).await {
            if let Err(e) = framed.send(reply).await {
                tracing::debug!(%peer, "reply not delivered: {e}");
                break;
            }
        }
    }
}
