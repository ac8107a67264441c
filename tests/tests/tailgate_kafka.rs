//! `tailgate --kafka`: a websocket client follows a 3-partition topic on tansu (a
//! Kafka-protocol broker on loopback) while a producer keeps writing, and tailgate is stopped
//! (SIGTERM) and killed (SIGKILL) and started again on the same port. The client resumes by
//! the per-partition offsets the `subscribed`, `lines` and `progress` messages gave it
//! (`since_offsets`): every line of every partition arrives exactly once, in order, with no
//! `gap`, `offset_gap` or `dropped` notice.
//!
//! tailgate assigns every partition itself (no consumer group: tansu takes ~24 s per join).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pipeline_tests::kafka::{produce_waiting, Tansu};
use pipeline_tests::{bin, free_port, spawn_announcing};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const PARTITIONS: i32 = 3;
/// Lines per partition: 3 × 2,000 at about 600 a second, so the run takes ~10 s.
const PER_PARTITION: usize = 2000;

/// A tailgate process on a fixed port, stopped by pid when dropped.
struct TailgateProc {
    child: Child,
}

impl TailgateProc {
    fn start(port: u16, brokers: &str) -> TailgateProc {
        let child = spawn_announcing(
            Command::new(bin("tailgate"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--kafka", brokers, "--topics", "logs.*"])
                .args(["--ring-lines", "100000", "--kafka-refresh", "200ms"])
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit()),
            "tailgate listening on",
        );
        TailgateProc { child }
    }

    fn signal(mut self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("signalling tailgate");
        let deadline = Instant::now() + Duration::from_secs(15);
        while self
            .child
            .try_wait()
            .expect("waiting for tailgate")
            .is_none()
        {
            assert!(Instant::now() < deadline, "tailgate did not exit on {sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TailgateProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `PER_PARTITION` lines `p<P> <N>` to each partition (N is also the record's offset),
/// round robin, paced; idempotent with `acks=all`, so nothing is written twice.
fn produce(brokers: &str, done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("a producer");
    std::thread::spawn(move || {
        for n in 0..PER_PARTITION {
            for p in 0..PARTITIONS {
                let line = format!("p{p} {n}\n");
                produce_waiting(&producer, "logs.web", p, &line);
            }
            if n % 20 == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("every record delivered");
        done.store(true, Ordering::SeqCst);
    })
}

/// What the client has seen: per partition, the lines in arrival order; and its resume
/// point (partition → next offset).
#[derive(Default)]
struct Seen {
    lines: BTreeMap<i32, Vec<u64>>,
    offsets: BTreeMap<i32, i64>,
    total: usize,
    connections: usize,
    problems: Vec<String>,
}

/// Merges a message's `offsets` into the resume point (a partition's offsets only grow).
fn advance(seen: &mut Seen, offsets: Option<&Value>) {
    for (p, o) in offsets.and_then(Value::as_object).into_iter().flatten() {
        let (Ok(p), Some(o)) = (p.parse::<i32>(), o.as_i64()) else {
            seen.problems.push(format!("bad offsets entry {p}: {o}"));
            continue;
        };
        let e = seen.offsets.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
}

/// One connection: subscribes (resuming by offsets when it has any), then takes messages
/// until the connection ends.
async fn follow_once(url: &str, seen: &Mutex<Seen>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    };
    let mut sub = json!({"type": "subscribe", "id": "w", "category": "web", "backlog": 100000});
    {
        let mut s = seen.lock().unwrap();
        s.connections += 1;
        if !s.offsets.is_empty() {
            sub["since_offsets"] = json!({ "web": s.offsets });
        }
    }
    if ws
        .send(Message::Text(sub.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("JSON from tailgate");
        let mut s = seen.lock().unwrap();
        match v["type"].as_str().unwrap_or_default() {
            "subscribed" => {
                // Where the subscription starts, for partitions this client has no point in.
                let start = v["offsets"]["web"].as_object().cloned().unwrap_or_default();
                for (p, o) in start {
                    if let (Ok(p), Some(o)) = (p.parse::<i32>(), o.as_i64()) {
                        s.offsets.entry(p).or_insert(o);
                    }
                }
            }
            "lines" => {
                for l in v["lines"].as_array().into_iter().flatten() {
                    let text = l.as_str().unwrap_or_default();
                    let parsed = text
                        .strip_prefix('p')
                        .and_then(|r| r.split_once(' '))
                        .and_then(|(p, n)| Some((p.parse::<i32>().ok()?, n.parse::<u64>().ok()?)));
                    match parsed {
                        Some((p, n)) => s.lines.entry(p).or_default().push(n),
                        None => s.problems.push(format!("unexpected line {text:?}")),
                    }
                    s.total += 1;
                }
                advance(&mut s, v.get("offsets"));
            }
            "progress" => advance(&mut s, v.get("offsets")),
            "gap" | "offset_gap" | "dropped" | "error" => s.problems.push(t.to_string()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_by_offsets_across_tailgate_restarts_without_gap_or_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let tansu = Tansu::start(tmp.path().join("tansu.log"));
    tansu.create_topic("logs.web", PARTITIONS as u32);
    let begin = Instant::now();
    let port = free_port();
    let mut tailgate = Some(TailgateProc::start(port, &tansu.addr));

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (seen, stop) = (seen.clone(), stop.clone());
        let url = format!("ws://127.0.0.1:{port}/ws");
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                follow_once(&url, &seen).await;
            }
        })
    };
    let produced = Arc::new(AtomicBool::new(false));
    let producer = produce(&tansu.addr, produced.clone());

    let want = PER_PARTITION * PARTITIONS as usize;
    let total = || seen.lock().unwrap().total;
    let mut restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    // Stop tailgate once a quarter of the lines arrived (SIGTERM), kill it at half (SIGKILL),
    // and again at three quarters; each time a new one starts at once on the same port while
    // the producer goes on.
    for (at, sig) in [
        (want / 4, Signal::SIGTERM),
        (want / 2, Signal::SIGKILL),
        (want * 3 / 4, Signal::SIGKILL),
    ] {
        while total() < at {
            assert!(
                Instant::now() < deadline,
                "stuck at {} of {want} lines",
                total()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "{:.1}s: {} lines; {sig}",
            begin.elapsed().as_secs_f64(),
            total()
        );
        tailgate.take().unwrap().signal(sig);
        restarts += 1;
        tailgate = Some(TailgateProc::start(port, &tansu.addr));
    }
    while total() < want || !produced.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "stuck at {} of {want} lines ({})",
            total(),
            tansu.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Anything more would be a duplicate: give it a moment to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    drop(tailgate.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), client).await;
    producer.join().unwrap();

    let s = seen.lock().unwrap();
    assert!(s.problems.is_empty(), "notices: {:?}", s.problems);
    assert!(s.connections >= 4, "{} connections", s.connections);
    for p in 0..PARTITIONS {
        let got = s.lines.get(&p).cloned().unwrap_or_default();
        let expected: Vec<u64> = (0..PER_PARTITION as u64).collect();
        if got != expected {
            let dups = got.len() - got.iter().collect::<std::collections::BTreeSet<_>>().len();
            let first_bad = got.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "partition {p}: {} lines, {dups} duplicated, first out of place at {first_bad:?}",
                got.len()
            );
        }
    }
    assert_eq!(s.total, want);
    assert_eq!(
        s.offsets,
        (0..PARTITIONS).map(|p| (p, PER_PARTITION as i64)).collect(),
        "the resume point ends past every line"
    );
    eprintln!(
        "tailgate --kafka: {want} lines over {} connections, {} restarts, {:.1}s",
        s.connections,
        restarts,
        begin.elapsed().as_secs_f64()
    );
}
