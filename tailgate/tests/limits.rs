//! Bounds that protect tailgate from its clients: connection cap, idle timeout, Scribe frame
//! size. Against a real tailgate process.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connections_over_the_cap_are_refused() {
    let tg = Tailgate::start(&["--max-clients", "1"]);
    let mut first = tg.ws("").await;
    next_of(&mut first, "hello").await;
    match tg.try_ws("", &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    drop(first);
    // The slot comes back once the first client is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if tg.try_ws("", &[]).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, m) = tg.get("/metrics").await;
    // At least the one above; retries while the slot was being freed may add more.
    let refused: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tailgate_connections_refused_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{m}");
}

#[tokio::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    let tg = Tailgate::start(&["--idle-timeout", "1s"]);
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    // Not reading means not answering pings either: the server hears nothing.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut closed = false;
    while let Ok(Some(m)) = tokio::time::timeout(WAIT, ws.next()).await {
        match m {
            Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f))) => {
                assert_eq!(f.reason.as_str(), "idle timeout");
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(closed, "no close frame for an idle client");
}

#[tokio::test]
async fn oversized_scribe_frames_are_refused_without_buffering() {
    let tg = Tailgate::start(&["--scribe-listen", "127.0.0.1:0", "--max-frame", "1K"]);
    let mut s = tokio::net::TcpStream::connect(tg.scribe.as_ref().unwrap())
        .await
        .unwrap();
    // Claims a 1 GiB frame: the connection is closed, nothing is allocated for it.
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    // And the server carries on.
    tg.push("app", &[b"still here"]).await;
    let (_, body) = tg.get("/api/tail/app").await;
    assert_eq!(body, "still here\n");
}

#[tokio::test]
async fn base_path_serves_everything_under_the_prefix() {
    let tg = Tailgate::start(&[
        "--base-path",
        "/logs/tail/",
        "--scribe-listen",
        "127.0.0.1:0",
    ]);
    tg.push("app", &[b"x"]).await;
    let (s, page) = tg.get("/logs/tail/").await;
    assert_eq!(s, 200);
    assert!(page.contains("<title>tailgate</title>"));
    assert_eq!(tg.get("/logs/tail").await.0, 308, "redirects to the slash");
    assert_eq!(tg.get("/logs/tail/api/categories").await.0, 200);
    assert_eq!(tg.get("/api/categories").await.0, 404);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/logs/tail/ws", tg.addr))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "hello");
}

#[tokio::test]
async fn a_costly_filter_does_not_stall_other_clients() {
    let tg = Tailgate::start(&["--scribe-listen", "127.0.0.1:0"]);
    let line = "é ab".repeat(1000).into_bytes();
    let lines: Vec<&[u8]> = (0..600).map(|_| &line[..3990]).collect();
    tg.push("c", &lines).await;
    let mut victim = tg.ws("").await;
    next_of(&mut victim, "hello").await;
    // Seconds of regex work each over the backlog: more of them than the box has async
    // workers, so run inline they would hold every worker.
    let mut costly = Vec::new();
    for _ in 0..3 {
        let mut ws = tg.ws("").await;
        next_of(&mut ws, "hello").await;
        costly.push(ws);
    }
    for ws in &mut costly {
        send(
            ws,
            serde_json::json!({"type": "subscribe", "category": "c", "backlog": 1000,
                "filter": r"\b(?s:.){0,100}\b[0-9]"}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    send(&mut victim, serde_json::json!({"type": "ping"})).await;
    next_of(&mut victim, "pong").await;
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "another client's filter held this one {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn filters_that_compile_to_huge_automata_are_refused() {
    let tg = Tailgate::start(&[]);
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    send(
        &mut ws,
        serde_json::json!({"type": "subscribe", "category": "c",
            "filter": r"\b(?s:.){0,600}\b[0-9]"}),
    )
    .await;
    let e = next_of(&mut ws, "error").await;
    assert!(e["reason"].as_str().unwrap().contains("size limit"), "{e}");
}

#[tokio::test]
async fn partial_scribe_frames_share_one_memory_budget() {
    let tg = Arc::new(Tailgate::start(&[
        "--scribe-listen",
        "127.0.0.1:0",
        "--max-frame",
        "4K",
        "--scribe-memory",
        "4K",
    ]));
    // Announces a frame that takes the whole budget, and sends only part of it.
    let mut hog = tokio::net::TcpStream::connect(tg.scribe.as_ref().unwrap())
        .await
        .unwrap();
    hog.write_all(&4096u32.to_be_bytes()).await.unwrap();
    hog.write_all(&[0u8; 10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = tg.clone();
    let mut push = tokio::spawn(async move { t.push("app", &[b"after"]).await });
    // The second sender's frame waits for memory rather than growing the process...
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut push)
            .await
            .is_err(),
        "a frame was buffered beyond the budget"
    );
    // ...and goes through once the first connection gives its share back.
    drop(hog);
    tokio::time::timeout(WAIT, push).await.unwrap().unwrap();
    let (_, body) = tg.get("/api/tail/app").await;
    assert_eq!(body, "after\n");
}

#[tokio::test]
async fn filtered_subscriptions_are_capped_per_server() {
    let tg = Tailgate::start(&["--max-filters", "1"]);
    let sub = |id: &str, filter: &str| serde_json::json!({"type": "subscribe", "id": id, "category": "c", "filter": filter});
    let mut a = tg.ws("").await;
    next_of(&mut a, "hello").await;
    send(&mut a, sub("a", "x")).await;
    next_of(&mut a, "subscribed").await;
    // Replacing one's own filtered subscription reuses its slot.
    send(&mut a, sub("a", "y")).await;
    next_of(&mut a, "subscribed").await;
    let mut b = tg.ws("").await;
    next_of(&mut b, "hello").await;
    send(&mut b, sub("b", "x")).await;
    let e = next_of(&mut b, "error").await;
    assert!(
        e["reason"].as_str().unwrap().contains("too many filtered"),
        "{e}"
    );
    send(&mut b, sub("b", "")).await;
    next_of(&mut b, "subscribed").await;
    // The slot comes back when its subscription goes.
    send(
        &mut a,
        serde_json::json!({"type": "unsubscribe", "id": "a"}),
    )
    .await;
    next_of(&mut a, "unsubscribed").await;
    send(&mut b, sub("b2", "x")).await;
    next_of(&mut b, "subscribed").await;
}

#[tokio::test]
async fn http_connections_that_never_finish_a_request_are_closed() {
    let tg = Tailgate::start(&["--request-timeout", "1s"]);
    let mut s = tokio::net::TcpStream::connect(&tg.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed within the wait");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // A connection that was answered is not cut off by the deadline.
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&mut ws, serde_json::json!({"type": "ping"})).await;
    next_of(&mut ws, "pong").await;
}
