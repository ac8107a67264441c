//! A websocket client that stops reading: tailgate's sends to it fill the TCP buffers and
//! then wait; each wait is bounded, so the client is closed and its `--max-clients` slot
//! (and buffer) freed. Against a real tailgate process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw-mode websocket subscription to `category` that completes the handshake and then
/// never reads. Its receive buffer is small, so the server's sends soon have to wait.
async fn non_reading_client(addr: &str, category: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr.parse().unwrap()).await.unwrap();
    let upgrade = format!(
        "GET /ws?raw=1&category={category} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(upgrade.as_bytes()).await.unwrap();
    // The response head, a byte at a time: what follows it is frames, left unread.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "{}", String::from_utf8_lossy(&head));
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(WAIT, s.read(&mut b)).await.unwrap();
        assert_eq!(n.unwrap(), 1, "{}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Starts tailgate with one client slot and `args`, parks a non-reading client on a busy
/// category, and keeps the category busy until another client gets the slot, which must
/// happen within `within`. Returns `/metrics` then.
async fn slot_is_freed(args: &[&str], within: Duration) -> String {
    let mut all = vec!["--max-clients", "1", "--scribe-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let tg = Tailgate::start(&all);
    tg.push_n("busy", 0, 1).await;
    let mut stuck = non_reading_client(&tg.addr, "busy").await;
    let line = vec![b'x'; 1000];
    let batch: Vec<&[u8]> = (0..1000).map(|_| &line[..]).collect();
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < within,
            "a client that stopped reading still holds the only slot after {within:?}"
        );
        tg.push("busy", &batch).await;
        if tg.try_ws("", &[]).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The server closed it: reading what was buffered ends in EOF (or a reset).
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0usize;
    loop {
        match tokio::time::timeout(WAIT, stuck.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the stuck client's connection is still open ({total} bytes read)"),
        }
        assert!(total < 256 << 20, "no end to the stuck client's data");
    }
    tg.get("/metrics").await.1
}

fn metric(metrics: &str, name: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let m = slot_is_freed(&["--send-timeout", "1s"], Duration::from_secs(10)).await;
    assert_eq!(metric(&m, "tailgate_send_timeouts_total"), Some(1), "{m}");
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_no_longer_than_the_idle_timeout() {
    // The report: `--idle-timeout 3s`, a busy category, still connected at 17 s.
    slot_is_freed(&["--idle-timeout", "3s"], Duration::from_secs(12)).await;
}
