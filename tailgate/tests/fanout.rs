//! Slow clients and file sources against a real tailgate process.

mod common;

use common::*;
use serde_json::json;

/// A client that never reads loses lines — counted exactly in `dropped` messages — while a
/// client that reads gets every line, and the source is never held up.
#[tokio::test]
async fn slow_client_gets_dropped_accounting_while_fast_client_gets_everything() {
    let tg = Tailgate::start(&["--scribe-listen", "127.0.0.1:0", "--client-buffer", "1M"]);
    tg.push("app", &[b"first"]).await;
    let mut slow = tg.ws("").await;
    send(&mut slow, json!({"type":"subscribe","category":"app"})).await;
    next_of(&mut slow, "subscribed").await;
    let mut fast = tg.ws("").await;
    send(&mut fast, json!({"type":"subscribe","category":"app"})).await;
    next_of(&mut fast, "subscribed").await;

    // The producer goes in lockstep with the fast client (next batch once it has the last
    // one), so the fast client is never more than a batch behind however loaded the machine
    // is, while the slow one falls 32 MiB behind: far more than its 1 MiB queue plus what the
    // socket buffers on both ends of loopback absorb (a few MiB: the receive window of a
    // socket that is never read stays small).
    const LINES: usize = 32 * 1024;
    const BATCH: usize = 512;
    let payload = "x".repeat(1000);
    let scribe = tg.scribe.clone().unwrap();
    let mut producer = scribe_protocol::client::Client::connect(
        &scribe,
        scribe_protocol::client::ClientOptions::default(),
    )
    .await
    .unwrap();
    let mut got = Vec::with_capacity(LINES);
    for chunk in 0..LINES / BATCH {
        let mut b =
            scribe_protocol::LogBatchBuilder::new(scribe_protocol::HeaderStyle::Strict, 600 << 10);
        for i in 0..BATCH {
            b.push(
                b"app",
                format!("{:06} {payload}", chunk * BATCH + i).as_bytes(),
            );
        }
        producer.log(b.finish()).await.unwrap();
        got.extend(lines(&mut fast, BATCH).await);
    }
    for (i, (_, seq, text)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 2);
        assert!(text.starts_with(&format!("{i:06} ")));
    }

    // Now the slow client reads: every seq is either delivered or inside a `dropped` range.
    let mut seen = vec![false; LINES + 2];
    let (mut delivered, mut dropped) = (0usize, 0usize);
    while delivered + dropped < LINES {
        let v = next(&mut slow).await;
        match v["type"].as_str().unwrap() {
            "lines" => {
                let seq = v["seq"].as_u64().unwrap() as usize;
                let n = v["lines"].as_array().unwrap().len();
                for (s, seen) in seen.iter_mut().enumerate().skip(seq).take(n) {
                    assert!(!*seen, "seq {s} twice");
                    *seen = true;
                }
                delivered += n;
            }
            "dropped" => {
                let from = v["from_seq"].as_u64().unwrap() as usize;
                let n = v["count"].as_u64().unwrap() as usize;
                assert!(from >= 2 && from + n <= LINES + 2, "{v}");
                dropped += n;
                for (s, seen) in seen.iter_mut().enumerate().skip(from).take(n) {
                    assert!(!*seen, "seq {s} delivered and dropped");
                    *seen = true;
                }
            }
            _ => {}
        }
    }
    assert_eq!(delivered + dropped, LINES);
    assert!(dropped > 0, "the slow client must have fallen behind");
    assert!(seen[2..].iter().all(|s| *s));
    let (_, m) = tg.get("/metrics").await;
    assert!(
        m.contains(&format!("tailgate_lines_dropped_total {dropped}")),
        "{m}"
    );
}

#[tokio::test]
async fn data_dir_follows_current_across_rotation_and_finds_new_categories() {
    let data = tempfile::tempdir().unwrap();
    let cat_dir = data.path().join("web");
    std::fs::create_dir(&cat_dir).unwrap();
    append(&cat_dir.join("web_00000"), "before start\n");
    point_current(&cat_dir, "web", "web_00000");

    let tg = Tailgate::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--poll-interval",
        "20ms",
    ]);
    let mut ws = tg.ws("").await;
    let hello = next(&mut ws).await;
    // The data dir is scanned right after start; the hello may predate it.
    if hello["categories"] != json!(["web"]) {
        assert_eq!(
            next_of(&mut ws, "categories").await["categories"],
            json!(["web"])
        );
    }
    send(
        &mut ws,
        json!({"type":"subscribe","id":"all","category":"*","backlog":100}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    // Existing files seed the ring with their newest lines (as in the backlog, or live if
    // the first poll comes after the subscribe) and are read on from there, as of a first
    // look made before the category is announced: with "web" seen, no wait is needed for
    // these to count.
    append(&cat_dir.join("web_00000"), "a1\na2\n");
    let got = lines(&mut ws, 3).await;
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        [(1, "before start"), (2, "a1"), (3, "a2")]
    );

    // Rotation: a last line into the old file, the new file, the link moves, more lines.
    append(&cat_dir.join("web_00000"), "a3\n");
    append(&cat_dir.join("web_00001"), "b1\n");
    point_current(&cat_dir, "web", "web_00001");
    append(&cat_dir.join("web_00001"), "b2\n");
    let got = lines(&mut ws, 3).await;
    assert_eq!(
        got.iter().map(|l| (l.1, l.2.as_str())).collect::<Vec<_>>(),
        [(4, "a3"), (5, "b1"), (6, "b2")]
    );

    // A category created while running is picked up, read from its beginning.
    let db = data.path().join("db");
    std::fs::create_dir(&db).unwrap();
    append(&db.join("db_00000"), "d1\nd2\n");
    point_current(&db, "db", "db_00000");
    let cats = next_before_lines(&mut ws, "categories").await;
    assert_eq!(cats["categories"], json!(["db", "web"]));
    let got = lines(&mut ws, 2).await;
    assert_eq!(
        got,
        [
            ("db".to_string(), 1, "d1".to_string()),
            ("db".to_string(), 2, "d2".to_string())
        ]
    );
    // Directories that are not category names are ignored: once "late", made after "bad
    // name", is listed, the scan has seen both.
    std::fs::create_dir(data.path().join("bad name")).unwrap();
    std::fs::create_dir(data.path().join("late")).unwrap();
    let cats = next_before_lines(&mut ws, "categories").await;
    assert_eq!(cats["categories"], json!(["db", "late", "web"]));
    let (_, body) = tg.get("/api/categories").await;
    assert!(!body.contains("bad name"), "{body}");
}

/// A `--file` that exists at start seeds its ring: a client subscribing with a backlog
/// after a restart sees the newest lines at once, and live ones follow.
#[tokio::test]
async fn file_present_at_start_seeds_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "old 1\nold 2\nold 3\n");
    let arg = format!("{}=app", f.display());
    let tg = Tailgate::start(&["--file", &arg, "--poll-interval", "20ms"]);
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","category":"app","backlog":2}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    append(&f, "new\n");
    let mut got = Vec::new();
    // Bounded: `next_of` waits at most WAIT, and 5 messages cover every way it can arrive.
    for _ in 0..5 {
        if got.iter().any(|l| l == "new") {
            break;
        }
        let v = next_of(&mut ws, "lines").await;
        for l in v["lines"].as_array().unwrap() {
            got.push(l.as_str().unwrap().to_string());
        }
    }
    // The seeding may still run when the subscribe comes: then the old lines arrive live.
    assert!(got.ends_with(&["old 3".into(), "new".into()]), "{got:?}");
    assert!(got.contains(&"old 2".into()), "{got:?}");
}

/// The next message of `ty`, which must come before any `lines` (a category is announced
/// before its first lines).
async fn next_before_lines(ws: &mut Ws, ty: &str) -> serde_json::Value {
    loop {
        let v = next(ws).await;
        assert_ne!(v["type"], "lines", "lines before the {ty} message: {v}");
        if v["type"] == ty {
            return v;
        }
    }
}

#[tokio::test]
async fn file_source_tails_a_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let arg = format!("{}=sys.app", path.display());
    let tg = Tailgate::start(&["--file", &arg, "--poll-interval", "20ms"]);
    let mut ws = tg.ws("").await;
    // Announced after tailgate's first poll, so the file below appears after it.
    if next(&mut ws).await["categories"] != json!(["sys.app"]) {
        assert_eq!(
            next_of(&mut ws, "categories").await["categories"],
            json!(["sys.app"])
        );
    }
    send(&mut ws, json!({"type":"subscribe","category":"sys.app"})).await;
    next_of(&mut ws, "subscribed").await;
    // The file appears after start: read from its beginning.
    append(&path, "hello\nworld\n");
    let got = lines(&mut ws, 2).await;
    assert_eq!(
        got.iter().map(|l| l.2.as_str()).collect::<Vec<_>>(),
        ["hello", "world"]
    );
}
