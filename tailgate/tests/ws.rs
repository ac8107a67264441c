//! The `/ws` protocol and the HTTP API against a real tailgate process.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn scribe_args() -> Vec<&'static str> {
    vec!["--scribe-listen", "127.0.0.1:0"]
}

#[tokio::test]
async fn subscribe_receives_live_lines_in_order() {
    let tg = Tailgate::start(&scribe_args());
    tg.push_n("app", 0, 1).await; // the category exists
    let mut ws = tg.ws("").await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["categories"], json!(["app"]));
    send(&mut ws, json!({"type":"subscribe","category":"app"})).await;
    let sub = next_of(&mut ws, "subscribed").await;
    assert_eq!(sub["id"], "app");
    assert_eq!(sub["matched"], json!(["app"]));
    tg.push_n("app", 1, 50).await;
    let got = lines(&mut ws, 49).await;
    let want: Vec<_> = (1..50)
        .map(|i| ("app".to_string(), i as u64 + 1, format!("line {i}")))
        .collect();
    assert_eq!(got, want, "seq 1 was before the subscription");
}

#[tokio::test]
async fn glob_subscription_covers_matching_and_new_categories() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("web.a", &[b"old"]).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"p1","category":"web.*"}),
    )
    .await;
    assert_eq!(
        next_of(&mut ws, "subscribed").await["matched"],
        json!(["web.a"])
    );
    tg.push("db", &[b"not for us"]).await;
    tg.push("web.a", &[b"a1"]).await;
    tg.push("web.b", &[b"b1"]).await; // a new category, matched on arrival
    let mut got = Vec::new();
    while got.len() < 2 {
        let v = next(&mut ws).await;
        if v["type"] == "lines" {
            assert_eq!(v["id"], "p1");
            got.push((v["category"].clone(), v["lines"].clone()));
        }
    }
    assert_eq!(
        got,
        [
            (json!("web.a"), json!(["a1"])),
            (json!("web.b"), json!(["b1"]))
        ]
    );
}

#[tokio::test]
async fn class_and_brace_globs_subscribe_like_any_glob() {
    let tg = Tailgate::start(&scribe_args());
    for c in ["web.a1", "web.b1", "web.c1", "db"] {
        tg.push(c, &[b"old"]).await;
    }
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"ab","category":"web.[ab]*"}),
    )
    .await;
    assert_eq!(
        next_of(&mut ws, "subscribed").await["matched"],
        json!(["web.a1", "web.b1"])
    );
    send(
        &mut ws,
        json!({"type":"subscribe","id":"alt","category":"{db,web.c*}"}),
    )
    .await;
    assert_eq!(
        next_of(&mut ws, "subscribed").await["matched"],
        json!(["db", "web.c1"])
    );
    tg.push("web.b2", &[b"b2"]).await; // new categories, matched on arrival
    tg.push("web.c2", &[b"c2"]).await;
    tg.push("web.d", &[b"for no one"]).await;
    tg.push("db", &[b"d"]).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let v = next(&mut ws).await;
        if v["type"] == "lines" {
            got.push((v["id"].clone(), v["category"].clone(), v["lines"].clone()));
        }
    }
    assert_eq!(
        got,
        [
            (json!("ab"), json!("web.b2"), json!(["b2"])),
            (json!("alt"), json!("web.c2"), json!(["c2"])),
            (json!("alt"), json!("db"), json!(["d"])),
        ]
    );
}

#[tokio::test]
async fn backlog_then_live_lines_without_gap_or_duplicate() {
    let tg = Tailgate::start(&scribe_args());
    tg.push_n("app", 0, 10).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","backlog":3}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    tg.push_n("app", 10, 12).await;
    let got = lines(&mut ws, 5).await;
    let seqs: Vec<u64> = got.iter().map(|l| l.1).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12]);
    assert_eq!(got[0].2, "line 7");
    quiet(&mut ws, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn server_side_filter_sends_only_matching_lines() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("app", &[b"start"]).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","filter":"ERROR|FATAL"}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    tg.push(
        "app",
        &[b"INFO a", b"ERROR b", b"INFO c", b"FATAL d", b"INFO e"],
    )
    .await;
    let v = next_of(&mut ws, "lines").await;
    assert_eq!(v["lines"], json!(["ERROR b", "FATAL d"]));
    assert_eq!(v["seq"], 3);
    assert_eq!(
        v["seqs"],
        json!([3, 5]),
        "a filtered message says each line's seq"
    );
    assert_eq!(
        v["last_seq"], 6,
        "resume point covers the filtered-out lines"
    );
}

/// An `exclude` regex drops the lines it matches, after `filter`; unknown fields in a
/// request are ignored (a newer page against an older server).
#[tokio::test]
async fn exclude_filter_and_unknown_fields() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("app", &[b"start"]).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","filter":"(?i)error","exclude":"healthz",
               "highlight":["x"],"version_from_the_future":2}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    tg.push("app", &[b"error a", b"ERROR /healthz", b"info", b"Error c"])
        .await;
    let v = next_of(&mut ws, "lines").await;
    assert_eq!(v["lines"], json!(["error a", "Error c"]));
    assert_eq!(v["last_seq"], 5);
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","exclude":"("}),
    )
    .await;
    let e = next_of(&mut ws, "error").await;
    assert!(e["reason"].as_str().unwrap().contains("bad exclude"), "{e}");
}

/// `context` sends lines around each match, marked as context, with each line's seq.
#[tokio::test]
async fn context_lines_around_matches() {
    let tg = Tailgate::start(&scribe_args());
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","filter":"ERR","context":1}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    tg.push("app", &[b"a", b"b", b"ERR c", b"d", b"e", b"f"])
        .await;
    let v = next_of(&mut ws, "lines").await;
    assert_eq!(v["lines"], json!(["b", "ERR c", "d"]));
    assert_eq!(v["seqs"], json!([2, 3, 4]));
    assert_eq!(v["context"], json!([0, 2]));
    assert_eq!(v["last_seq"], 6);
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","filter":"x","context":11}),
    )
    .await;
    let e = next_of(&mut ws, "error").await;
    assert!(e["reason"].as_str().unwrap().contains("context"), "{e}");
}

#[tokio::test]
async fn resume_with_since_seq_has_no_gap_and_no_duplicate() {
    let tg = Tailgate::start(&scribe_args());
    tg.push_n("app", 0, 5).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","backlog":100}),
    )
    .await;
    let first = lines(&mut ws, 5).await;
    let last_seen = first.last().unwrap().1;
    drop(ws);
    // Lines that arrive while the client is away.
    tg.push_n("app", 5, 9).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","since_seq":last_seen}),
    )
    .await;
    tg.push_n("app", 9, 10).await;
    let second = lines(&mut ws, 5).await;
    let all: Vec<u64> = first.iter().chain(&second).map(|l| l.1).collect();
    assert_eq!(all, (1..=10).collect::<Vec<_>>());
    assert_eq!(second[0].2, "line 5");
    quiet(&mut ws, Duration::from_millis(300)).await;

    // The map form, for globs.
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"ap*","since_seq":{"app":8}}),
    )
    .await;
    let got = lines(&mut ws, 2).await;
    assert_eq!(got.iter().map(|l| l.1).collect::<Vec<_>>(), [9, 10]);
}

#[tokio::test]
async fn resume_older_than_the_ring_reports_a_gap() {
    let mut args = scribe_args();
    args.extend(["--ring-lines", "5"]);
    let tg = Tailgate::start(&args);
    tg.push_n("app", 0, 20).await; // the ring holds seqs 16..=20
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","since_seq":3}),
    )
    .await;
    let gap = next_of(&mut ws, "gap").await;
    assert_eq!(
        (
            gap["category"].clone(),
            gap["from_seq"].clone(),
            gap["to_seq"].clone()
        ),
        (json!("app"), json!(4), json!(15))
    );
    let got = lines(&mut ws, 5).await;
    assert_eq!(
        got.iter().map(|l| l.1).collect::<Vec<_>>(),
        [16, 17, 18, 19, 20]
    );
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_connection_survives() {
    let tg = Tailgate::start(&scribe_args());
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    for (req, needle) in [
        ("{not json", "bad request"),
        (r#"{"type":"launch"}"#, "bad request"),
        (
            r#"{"type":"subscribe","category":"../etc"}"#,
            "not a category",
        ),
        (
            r#"{"type":"subscribe","category":"web.[ab"}"#,
            "never closed",
        ),
        (
            r#"{"type":"subscribe","category":"a","filter":"("}"#,
            "bad filter",
        ),
        (r#"{"type":"unsubscribe","id":"nope"}"#, "no subscription"),
        (
            r#"{"type":"subscribe","category":"a.*","since_seq":3}"#,
            "map",
        ),
    ] {
        ws_send_text(&mut ws, req).await;
        let v = next(&mut ws).await;
        assert_eq!(v["type"], "error", "{req}");
        assert!(v["reason"].as_str().unwrap().contains(needle), "{req}: {v}");
    }
    send(&mut ws, json!({"type":"ping","data":7})).await;
    assert_eq!(next(&mut ws).await, json!({"type":"pong","data":7}));
}

async fn ws_send_text(ws: &mut Ws, t: &str) {
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        t.to_string().into(),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn unsubscribe_stops_lines() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("app", &[b"x"]).await;
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"s","category":"app"}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    send(&mut ws, json!({"type":"unsubscribe","id":"s"})).await;
    next_of(&mut ws, "unsubscribed").await;
    tg.push("app", &[b"y"]).await;
    quiet(&mut ws, Duration::from_millis(400)).await;
}

#[tokio::test]
async fn token_and_origin_are_enforced() {
    let mut args = scribe_args();
    args.extend([
        "--token",
        "s3cret",
        "--allow-origin",
        "https://dash.example",
    ]);
    let tg = Tailgate::start(&args);
    let status = |e: tokio_tungstenite::tungstenite::Error| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("{other}"),
    };
    assert_eq!(status(tg.try_ws("", &[]).await.err().unwrap()), 401);
    assert_eq!(
        status(tg.try_ws("?token=wrong", &[]).await.err().unwrap()),
        401
    );
    assert!(tg.try_ws("?token=s3cret", &[]).await.is_ok());
    assert!(tg
        .try_ws("", &[("authorization", "Bearer s3cret")])
        .await
        .is_ok());
    assert!(tg
        .try_ws("", &[("authorization", "bearer s3cret")])
        .await
        .is_ok());
    // The page's way: the token (base64url) in a subprotocol, a header a browser can set;
    // the server picks the page's protocol.
    let ws = tg
        .try_ws(
            "",
            &[("sec-websocket-protocol", "tailgate.v1, bearer.czNjcmV0")],
        )
        .await;
    assert!(ws.is_ok());
    assert_eq!(
        status(
            tg.try_ws(
                "",
                &[("sec-websocket-protocol", "tailgate.v1, bearer.d3Jvbmc")]
            )
            .await
            .err()
            .unwrap()
        ),
        401
    );
    let foreign = [("origin", "https://evil.example")];
    assert_eq!(
        status(tg.try_ws("?token=s3cret", &foreign).await.err().unwrap()),
        403
    );
    let own = format!("http://{}", tg.addr);
    assert!(tg
        .try_ws("?token=s3cret", &[("origin", &own)])
        .await
        .is_ok());
    assert!(tg
        .try_ws("?token=s3cret", &[("origin", "https://dash.example")])
        .await
        .is_ok());
    assert_eq!(tg.get("/api/categories").await.0, 401);
    assert_eq!(tg.get("/api/tail/app").await.0, 401);
    assert_eq!(tg.get("/metrics").await.0, 401);
    assert_eq!(tg.get("/api/categories?token=s3cret").await.0, 200);
    assert_eq!(tg.get("/").await.0, 200, "the page holds no data");
}

#[tokio::test]
async fn http_api_lists_categories_and_tails_bytes() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("app", &[b"one\n", b"two", b"\xff\xfebin"]).await;
    let (s, body) = tg.get("/api/categories").await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &v["categories"][0];
    assert_eq!(c["name"], "app");
    assert_eq!(c["lines"], 3);
    assert_eq!(c["bytes"], 3 + 3 + 5);
    assert!(c["last_update_ms"].as_u64().unwrap() > 0);
    assert!(c["lines_per_sec"].is_number());

    let (s, body) = tg.get("/api/tail/app?n=2&format=json").await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["lines"], json!(["two", {"b64": "//5iaW4="}]));
    assert_eq!(v["seq"], 2);
    let (s, body) = tg.get("/api/tail/app?n=2").await;
    assert_eq!(s, 200);
    assert_eq!(body.as_bytes()[..4], *b"two\n");
    assert_eq!(tg.get("/api/tail/nope").await.0, 404);
    assert_eq!(tg.get("/api/tail/app?n=x").await.0, 400);

    // A hostile category name is refused and counted; the batch is still answered OK.
    tg.push("../etc", &[b"x"]).await;
    let (_, m) = tg.get("/metrics").await;
    assert!(m.contains("tailgate_lines_in_total 3"), "{m}");
    assert!(m.contains("tailgate_lines_refused_total 1"), "{m}");
    assert!(m.contains("tailgate_categories 1"), "{m}");
}

#[tokio::test]
async fn raw_mode_sends_plain_text_lines() {
    let tg = Tailgate::start(&scribe_args());
    tg.push("app", &[b"a", b"b", b"c"]).await;
    let mut ws = tg.ws("?raw=1&category=app&backlog=2").await;
    let mut text = String::new();
    async fn more(ws: &mut Ws, text: &mut String, lines: usize) {
        use futures::StreamExt;
        while text.lines().count() < lines {
            let m = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                text.push_str(t.as_str());
            }
        }
    }
    more(&mut ws, &mut text, 2).await;
    assert_eq!(text, "b\nc\n");
    tg.push("app", &[b"d"]).await;
    more(&mut ws, &mut text, 3).await;
    assert_eq!(text, "b\nc\nd\n");
}

#[tokio::test]
async fn sigterm_closes_clients_and_exits_cleanly() {
    let mut tg = Tailgate::start(&scribe_args());
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    let st = std::process::Command::new("kill")
        .args(["-TERM", &tg.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    use futures::StreamExt;
    let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        matches!(
            m,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) | None
        ),
        "{m:?}"
    );
    let status = tg.wait_exit(WAIT).expect("exited");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn sigterm_exits_even_with_a_half_sent_http_request() {
    use tokio::io::AsyncWriteExt;
    let mut tg = Tailgate::start(&scribe_args());
    let mut half = tokio::net::TcpStream::connect(&tg.addr).await.unwrap();
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let st = std::process::Command::new("kill")
        .args(["-TERM", &tg.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = tg.wait_exit(WAIT).expect("exited despite the open request");
    assert!(status.success(), "{status}");
    drop(half);
}

#[tokio::test]
async fn a_request_over_the_limit_gets_an_error_reply() {
    let tg = Tailgate::start(&scribe_args());
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    let big = format!(r#"{{"type":"ping","data":"{}"}}"#, "x".repeat(70 << 10));
    use futures::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(big.into()))
        .await
        .unwrap();
    let e = next_of(&mut ws, "error").await;
    assert!(e["reason"].as_str().unwrap().contains("over"), "{e}");
    // And the connection still works.
    send(&mut ws, json!({"type": "ping"})).await;
    next_of(&mut ws, "pong").await;
}

/// The status line's code for a GET of `path` with these extra header lines.
async fn raw_get(addr: &str, path: &str, headers: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\n").into_bytes();
    if !headers.windows(11).any(|w| w == b"Connection:") {
        req.extend_from_slice(b"Connection: close\r\n");
    }
    req.extend_from_slice(headers);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out[9..12]).parse().unwrap()
}

#[tokio::test]
async fn foreign_host_names_are_refused_against_dns_rebinding() {
    let tg = Tailgate::start(&["--allow-host", "logs.example"]);
    let a = &tg.addr;
    assert_eq!(
        raw_get(a, "/health", b"Host: evil.example:8080\r\n").await,
        421
    );
    assert_eq!(
        raw_get(a, "/api/categories", b"Host: evil.example\r\n").await,
        421
    );
    // A rebinding page is "same origin" with itself: refused by the Host, before the Origin.
    let ws = b"Host: evil.example\r\nOrigin: http://evil.example\r\nUpgrade: websocket\r\n\
Connection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    assert_eq!(raw_get(a, "/ws", ws).await, 421);
    for ok in [
        format!("Host: {a}\r\n"),
        "Host: localhost:1\r\n".into(),
        "Host: LOGS.example\r\n".into(),
        "Host: [::1]:80\r\n".into(),
    ] {
        assert_eq!(raw_get(a, "/health", ok.as_bytes()).await, 200, "{ok}");
    }
}

#[tokio::test]
async fn an_origin_that_is_not_text_is_refused() {
    let tg = Tailgate::start(&[]);
    let mut h = format!("Host: {}\r\nOrigin: http://", tg.addr).into_bytes();
    h.extend_from_slice(b"\xe9vil.example\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n");
    h.extend_from_slice(
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    assert_eq!(raw_get(&tg.addr, "/ws", &h).await, 403);
}

#[tokio::test]
async fn resume_points_cover_quiet_categories_and_filtered_stretches() {
    let tg = Tailgate::start(&scribe_args());
    tg.push_n("quiet", 0, 3).await;
    tg.push_n("busy", 0, 1).await;
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"p","category":"*","filter":"^line 1[0-9]$"}),
    )
    .await;
    let sub = next_of(&mut ws, "subscribed").await;
    assert_eq!(sub["last_seq"], json!({"busy": 1, "quiet": 3}));
    // Nothing in 1..9 passes the filter; the resume point still moves.
    tg.push_n("busy", 1, 10).await;
    let p = next_of(&mut ws, "progress").await;
    assert_eq!(
        (
            p["id"].as_str(),
            p["category"].as_str(),
            p["last_seq"].as_u64()
        ),
        (Some("p"), Some("busy"), Some(10))
    );
    drop(ws);
    // Resuming from those points: no backlog again for the quiet category, no gap.
    tg.push_n("busy", 10, 12).await;
    let mut ws = tg.ws("").await;
    next_of(&mut ws, "hello").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"p","category":"*","filter":"^line 1[0-9]$",
               "backlog": 100, "since_seq": {"busy": 10, "quiet": 3}}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    let m = next(&mut ws).await;
    assert_eq!(m["type"], "lines", "{m}");
    assert_eq!(m["category"], "busy");
    assert_eq!(m["lines"], json!(["line 10", "line 11"]));
    quiet(&mut ws, std::time::Duration::from_millis(300)).await;
}
