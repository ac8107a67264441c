//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use scribe_protocol::frame::codec;
use scribe_protocol::scribe::{encode_log_reply, ResultCode};
use scribe_protocol::{decode_call, Request};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

pub type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// A plain Scribe server (no fb303: the handshake call closes the connection) that answers
/// `OK` to every `Log` and records the messages.
pub async fn serve(listener: TcpListener, got: Received) {
    while let Ok((stream, _)) = listener.accept().await {
        let got = got.clone();
        tokio::spawn(async move {
            let mut framed = Framed::new(stream, codec(16 << 20));
            while let Some(Ok(frame)) = framed.next().await {
                let Ok(call) = decode_call(frame.freeze()) else {
                    return;
                };
                let Request::Log(entries) = call.request else {
                    return;
                };
                got.lock()
                    .unwrap()
                    .extend(entries.iter().map(|e| e.message.to_vec()));
                let reply = encode_log_reply(&call.header, ResultCode::Ok);
                if framed.send(reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Appends each of `lines` to `path`, newline-terminated.
pub fn append(path: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}
