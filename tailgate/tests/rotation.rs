//! tailgate on scribed's data dir while files rotate faster than it polls: every line of
//! every rotated file reaches the subscriber, in order; a new category is read from its first
//! line; a file that is gone before tailgate reached it is reported as a `gap`, never skipped
//! silently. The first two tests drive a real `scribed` with a tiny `--max-size`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use scribe_protocol::client::{Client, ClientOptions};
use scribe_protocol::{HeaderStyle, LogBatchBuilder, ResultCode};
use serde_json::{json, Value};

/// The `scribed` binary, built once per test process (tailgate cannot depend on the scribed
/// crate: binaries do not depend on each other), in this test's own profile directory.
fn scribed_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test-exe> -> target/<profile>
            let profile = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--quiet", "-p", "scribed", "--bin", "scribed"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            assert!(cmd.status().expect("cargo build").success());
            profile.join("scribed")
        })
        .clone()
}

/// A running scribed, killed on drop.
struct Scribed {
    child: Child,
    addr: String,
}

impl Drop for Scribed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scribed {
    fn start(data_dir: &Path, max_size: &str) -> Scribed {
        Scribed::launch(data_dir, &["--max-size", max_size])
    }

    /// With this TOML config (written beside the data dir).
    fn with_config(data_dir: &Path, toml: &str) -> Scribed {
        let path = data_dir.with_extension("toml");
        std::fs::write(&path, toml).unwrap();
        Scribed::launch(data_dir, &["--config", path.to_str().unwrap()])
    }

    fn launch(data_dir: &Path, args: &[&str]) -> Scribed {
        let ready = data_dir.with_extension("ready");
        let child = Command::new(scribed_bin())
            .args(["--listen", "127.0.0.1:0", "--status-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting scribed");
        let mut s = Scribed {
            child,
            addr: String::new(),
        };
        let start = Instant::now();
        while !ready.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "scribed ready");
            assert!(s.child.try_wait().unwrap().is_none(), "scribed exited");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&ready).unwrap();
        s.addr = text.lines().next().unwrap().to_string();
        s
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addr, ClientOptions::default())
            .await
            .unwrap()
    }
}

/// About 110 bytes, numbered.
fn seq_line(i: usize) -> String {
    format!("seq {i:06} {}", "x".repeat(99))
}

/// Sends lines `from..to` of `category` at about 10,000 lines a second (100 per call).
async fn ship(c: &mut Client, category: &str, from: usize, to: usize) {
    let mut i = from;
    while i < to {
        let end = (i + 100).min(to);
        let mut b = LogBatchBuilder::new(HeaderStyle::Strict, 16 << 10);
        for n in i..end {
            b.push(category.as_bytes(), seq_line(n).as_bytes());
        }
        assert_eq!(c.log(b.finish()).await.unwrap(), ResultCode::Ok);
        i = end;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a subscriber got for one category: lines as (seq, text), every notice, and both in
/// the order they came.
#[derive(Default, Debug)]
struct Got {
    lines: Vec<(u64, String)>,
    notices: Vec<Value>,
    /// (first seq, last seq, line text if a line)
    order: Vec<(u64, u64, Option<String>)>,
}

/// Reads messages until `last` arrives in `category` (or `limit` passes).
async fn collect(ws: &mut Ws, category: &str, last: &str, limit: Duration) -> Got {
    let mut got = Got::default();
    let end = Instant::now() + limit;
    while Instant::now() < end && got.lines.last().is_none_or(|l| l.1 != last) {
        let Ok(v) = tokio::time::timeout(Duration::from_millis(500), next(ws)).await else {
            continue;
        };
        if v["category"] != category {
            continue;
        }
        match v["type"].as_str().unwrap() {
            "lines" => {
                let seq = v["seq"].as_u64().unwrap();
                for (i, l) in v["lines"].as_array().unwrap().iter().enumerate() {
                    let (seq, text) = (seq + i as u64, l.as_str().unwrap().to_string());
                    got.order.push((seq, seq, Some(text.clone())));
                    got.lines.push((seq, text));
                }
            }
            "gap" => {
                let from = v["from_seq"].as_u64().unwrap();
                got.order.push((from, v["to_seq"].as_u64().unwrap(), None));
                got.notices.push(v);
            }
            "dropped" => got.notices.push(v),
            _ => {}
        }
    }
    got
}

/// Every line `from..to`, in order, with consecutive seqs and no notice.
fn assert_complete(got: &Got, from: usize, to: usize) {
    let want: Vec<String> = (from..to).map(seq_line).collect();
    let texts: Vec<&String> = got.lines.iter().map(|l| &l.1).collect();
    assert!(
        texts.len() == want.len() && texts.iter().zip(&want).all(|(a, b)| *a == b),
        "received {} of {} lines (notices: {:?})",
        texts.len(),
        want.len(),
        got.notices
    );
    assert!(got.notices.is_empty(), "{:?}", got.notices);
    let first = got.lines[0].0;
    for (i, (seq, _)) in got.lines.iter().enumerate() {
        assert_eq!(*seq, first + i as u64, "seqs are consecutive");
    }
}

async fn subscribe_all(tg: &Tailgate) -> Ws {
    let mut ws = tg.ws("").await;
    send(
        &mut ws,
        json!({"type":"subscribe","id":"all","category":"*"}),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    ws
}

#[tokio::test]
async fn fast_rotation_loses_no_line() {
    const N: usize = 5000;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let scribed = Scribed::start(&data, "8K");
    let mut c = scribed.client().await;
    // The category exists before tailgate starts: its lines seed the ring (the subscription
    // below asks for no backlog), and it is read on from there.
    ship(&mut c, "fast", 0, 10).await;
    let tg = Tailgate::start(&["--data-dir", data.to_str().unwrap()]);
    let mut ws = subscribe_all(&tg).await;
    if !tg.get("/api/categories").await.1.contains("fast") {
        next_of(&mut ws, "categories").await;
    }
    // ~74 lines a file: a rotation every ~7 ms, a dozen per 100 ms poll.
    ship(&mut c, "fast", 10, 10 + N).await;
    let got = collect(&mut ws, "fast", &seq_line(9 + N), Duration::from_secs(30)).await;
    assert_complete(&got, 10, 10 + N);
}

#[tokio::test]
async fn new_category_rotated_before_the_rescan_is_read_from_its_first_line() {
    const N: usize = 2000;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let scribed = Scribed::start(&data, "8K");
    let tg = Tailgate::start(&["--data-dir", data.to_str().unwrap()]);
    let mut ws = subscribe_all(&tg).await;
    let mut c = scribed.client().await;
    // Written in ~0.2 s, some 27 files: most of them rotate before the next rescan.
    ship(&mut c, "fresh", 0, N).await;
    let got = collect(&mut ws, "fresh", &seq_line(N - 1), Duration::from_secs(30)).await;
    assert_complete(&got, 0, N);
    assert_eq!(got.lines[0].0, 1, "the category's first line is its seq 1");
}

/// Retention removes files faster than tailgate can read them: lines are lost, but every
/// loss is a `gap`, in its place.
#[tokio::test]
async fn files_removed_before_they_were_read_are_gaps_never_silent_holes() {
    const N: usize = 5000;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let config = r#"
        [[store]]
        category = "default"
        type = "file"
        max_size = "8K"
        compress = true
        keep_files = 3
    "#;
    let scribed = Scribed::with_config(&data, config);
    let mut c = scribed.client().await;
    ship(&mut c, "kept", 0, 10).await;
    // Polling twice a second: a dozen files come and go between two polls.
    let tg = Tailgate::start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--poll-interval",
        "500ms",
    ]);
    let mut ws = subscribe_all(&tg).await;
    if !tg.get("/api/categories").await.1.contains("kept") {
        next_of(&mut ws, "categories").await;
    }
    ship(&mut c, "kept", 10, 10 + N).await;
    let got = collect(&mut ws, "kept", &seq_line(9 + N), Duration::from_secs(30)).await;
    assert_eq!(got.lines.last().map(|l| &l.1), Some(&seq_line(9 + N)));
    assert!(
        !got.notices.is_empty(),
        "retention outran tailgate: there are gaps"
    );
    assert!(
        got.notices.iter().all(|n| n["type"] == "gap"),
        "{:?}",
        got.notices
    );
    // Every seq is a line or inside a gap, in order; a jump in the line numbers only ever
    // comes with a gap before it.
    let number = |t: &str| t[4..10].parse::<usize>().unwrap();
    let mut prev: Option<(u64, Option<usize>)> = None;
    let mut gap_since_last_line = false;
    for (from, to, text) in &got.order {
        if let Some((last_seq, _)) = prev {
            assert_eq!(*from, last_seq + 1, "seqs are contiguous: {:?}", got.order);
        }
        let last_number = prev.and_then(|p| p.1);
        match text {
            None => gap_since_last_line = true,
            Some(t) => {
                let n = number(t);
                if let Some(m) = last_number {
                    assert!(n > m, "in order");
                    assert!(
                        n == m + 1 || gap_since_last_line,
                        "silent hole between {m} and {n}"
                    );
                }
                gap_since_last_line = false;
                prev = Some((*to, Some(n)));
                continue;
            }
        }
        prev = Some((*to, last_number));
    }
}

fn gzip(path: &Path, text: &str) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    std::fs::write(path, enc.finish().unwrap()).unwrap();
}

/// The layout driven by hand: a rotated file already compressed is read from its `.gz`; a
/// file removed before tailgate reached it is a `gap` between the lines around it.
#[tokio::test]
async fn compressed_files_are_read_and_vanished_ones_are_a_gap() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("web");
    std::fs::create_dir(&dir).unwrap();
    append(&dir.join("web_00000"), "old\n");
    point_current(&dir, "web", "web_00000");
    let tg = Tailgate::start(&["--data-dir", data.path().to_str().unwrap()]);
    let mut ws = subscribe_all(&tg).await;
    if !tg.get("/api/categories").await.1.contains("web") {
        next_of(&mut ws, "categories").await;
    }
    append(&dir.join("web_00000"), "a1\n");
    gzip(&dir.join("web_00001.gz"), "b1\nb2\n");
    // web_00002 was written, rotated and removed by retention before tailgate saw it.
    append(&dir.join("web_00003"), "d1\n");
    point_current(&dir, "web", "web_00003");
    let got = collect(&mut ws, "web", "d1", Duration::from_secs(10)).await;
    // "old" seeded the ring at start (seq 1); it arrives live only if the first poll came
    // after the subscribe.
    let texts: Vec<(u64, &str)> = got
        .lines
        .iter()
        .map(|l| (l.0, l.1.as_str()))
        .filter(|l| *l != (1, "old"))
        .collect();
    assert_eq!(texts, [(2, "a1"), (3, "b1"), (4, "b2"), (6, "d1")]);
    assert_eq!(got.notices.len(), 1, "{:?}", got.notices);
    let gap = &got.notices[0];
    assert_eq!(gap["type"], "gap");
    assert_eq!(
        (gap["from_seq"].as_u64(), gap["to_seq"].as_u64()),
        (Some(5), Some(5))
    );
}
