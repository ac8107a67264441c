//! Test harness: a real `tailgate` process on loopback (ephemeral ports), a websocket client,
//! and a Scribe client to push lines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use scribe_protocol::client::{Client, ClientOptions};
use scribe_protocol::{HeaderStyle, LogBatchBuilder, ResultCode};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for any one expected thing.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Tailgate {
    child: Child,
    /// `127.0.0.1:port`
    pub addr: String,
    pub scribe: Option<String>,
}

impl Drop for Tailgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tailgate {
    /// Starts tailgate with `args` (plus `--listen 127.0.0.1:0`) and waits for its address
    /// lines on stdout.
    pub fn start(args: &[&str]) -> Tailgate {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tailgate"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tailgate");
        let stdout = child.stdout.take().unwrap();
        let want_scribe = args.contains(&"--scribe-listen");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut addr = None;
        let mut scribe = None;
        while addr.is_none() || (want_scribe && scribe.is_none()) {
            let line = rx.recv_timeout(WAIT).expect("tailgate printed its address");
            if let Some(rest) = line.strip_prefix("tailgate listening on http://") {
                addr = Some(rest.split('/').next().unwrap().to_string());
            } else if let Some(rest) = line.strip_prefix("tailgate scribe listening on ") {
                scribe = Some(rest.to_string());
            }
        }
        Tailgate {
            child,
            addr: addr.unwrap(),
            scribe,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn ws(&self, query: &str) -> Ws {
        self.try_ws(query, &[]).await.expect("websocket connect")
    }

    pub async fn try_ws(
        &self,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{}/ws{query}", self.addr)
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(ws)
    }

    /// Pushes lines into a category through `--scribe-listen`.
    pub async fn push(&self, category: &str, lines: &[&[u8]]) {
        let addr = self.scribe.as_ref().expect("started with --scribe-listen");
        let mut c = Client::connect(addr, ClientOptions::default())
            .await
            .unwrap();
        let mut b = LogBatchBuilder::new(HeaderStyle::Strict, 1024);
        for l in lines {
            b.push(category.as_bytes(), l);
        }
        assert_eq!(c.log(b.finish()).await.unwrap(), ResultCode::Ok);
    }

    pub async fn push_n(&self, category: &str, from: usize, to: usize) {
        let lines: Vec<Vec<u8>> = (from..to)
            .map(|i| format!("line {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = lines.iter().map(|l| &l[..]).collect();
        self.push(category, &refs).await;
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path).await
    }
}

/// A minimal HTTP/1.1 GET (the tests need status and body only).
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message (pings and pongs skipped).
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within the wait")
            .expect("connection open")
            .expect("no websocket error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// The next message of `type`, skipping others (hello, categories, subscribed...).
pub async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
}

/// Collects `lines` messages until `n` lines arrived: (category, seq, text) per line,
/// assuming no filter (consecutive seqs within a message).
pub async fn lines(ws: &mut Ws, n: usize) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = next(ws).await;
        match v["type"].as_str().unwrap() {
            "lines" => {
                let seq = v["seq"].as_u64().unwrap();
                for (i, l) in v["lines"].as_array().unwrap().iter().enumerate() {
                    out.push((
                        v["category"].as_str().unwrap().to_string(),
                        seq + i as u64,
                        l.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| l.to_string()),
                    ));
                }
            }
            "dropped" | "gap" | "error" => panic!("unexpected {v}"),
            _ => {}
        }
    }
    out
}

/// Asserts nothing but control messages arrive for `d`.
pub async fn quiet(ws: &mut Ws, d: Duration) {
    let end = tokio::time::Instant::now() + d;
    while let Ok(m) = tokio::time::timeout_at(end, ws.next()).await {
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert!(
                !matches!(v["type"].as_str(), Some("lines" | "dropped" | "gap")),
                "unexpected {v}"
            );
        } else if m.is_none() {
            return;
        }
    }
}

/// Appends `text` to `path`, creating it.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Points `<cat>_current` at `target` atomically, as scribed does (relative symlink).
pub fn point_current(dir: &Path, cat: &str, target: &str) {
    let tmp = dir.join(format!(".{cat}_current.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{cat}_current"))).unwrap();
}
