//! Load generator and websocket clients for bench/fanout.sh (not part of the test suite).
//!
//! `fanout_bench gen RATE SECONDS [FILE]`: writes `RATE` lines/s for `SECONDS` to FILE
//! (appending) or stdout. Each line starts with its write time (ns since the epoch) and a
//! sequence number, then padding to ~120 bytes (no quotes or backslashes, so JSON carries it
//! unescaped).
//!
//! `fanout_bench clients URL N CATEGORY SECONDS WARMUP`: opens N websocket clients, subscribes
//! each to CATEGORY, and for SECONDS after WARMUP counts the lines each receives and their
//! latency (receive time minus the time in the line). Prints one JSON object.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn gen(rate: u64, seconds: u64, file: Option<String>) -> std::io::Result<()> {
    let mut out: Box<dyn Write> = match file {
        Some(f) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let pad = "x".repeat(80);
    let start = Instant::now();
    let total = rate * seconds;
    let mut written = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    // Every millisecond, write what is due: smooth enough that latency measures tailgate, not
    // the generator's bursts.
    while written < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due > written {
            let ts = now_ns();
            for seq in written..due {
                writeln!(buf, "{ts} {seq} {pad}")?;
            }
            out.write_all(&buf)?;
            out.flush()?;
            buf.clear();
            written = due;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Latency histogram: 0.25 ms buckets up to 1 s, then 10 ms buckets up to 60 s, then one
/// overflow bucket.
const FINE_NS: u64 = 250_000;
const FINE: usize = 4_000;
const COARSE_NS: u64 = 10_000_000;
const BUCKETS: usize = FINE + 5_900;

fn bucket(lat_ns: u64) -> usize {
    if lat_ns < FINE as u64 * FINE_NS {
        (lat_ns / FINE_NS) as usize
    } else {
        (FINE + ((lat_ns - FINE as u64 * FINE_NS) / COARSE_NS) as usize).min(BUCKETS)
    }
}

/// The middle of bucket `i`, in ms.
fn bucket_ms(i: usize) -> f64 {
    if i < FINE {
        (i as f64 + 0.5) * FINE_NS as f64 / 1e6
    } else {
        (FINE as f64 * FINE_NS as f64 + ((i - FINE) as f64 + 0.5) * COARSE_NS as f64) / 1e6
    }
}

#[derive(Default, Clone)]
struct Stats {
    lines: u64,
    dropped: u64,
    messages: u64,
    hist: Vec<u32>,
    max_ns: u64,
}

#[derive(serde::Deserialize)]
struct Msg<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    /// `Cow`: borrowed when a line needs no unescaping (the generator's), owned when it does
    /// (real log lines with quotes, as bench/kafka.sh sends).
    #[serde(borrow, default)]
    lines: Vec<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    count: u64,
}

async fn client(url: String, category: String, warm_until: Instant, end: Instant) -> Stats {
    let mut st = Stats {
        hist: vec![0; BUCKETS + 1],
        ..Stats::default()
    };
    let mut ws = loop {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => break ws,
            Err(e) if Instant::now() < warm_until => {
                eprintln!("connect: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    };
    let sub = format!(r#"{{"type":"subscribe","category":"{category}"}}"#);
    ws.send(Message::Text(sub.into())).await.unwrap();
    loop {
        let next = tokio::time::timeout_at(end.into(), ws.next()).await;
        let Ok(Some(Ok(m))) = next else { break };
        let Message::Text(t) = m else { continue };
        let now = now_ns();
        if Instant::now() < warm_until {
            continue;
        }
        let Ok(msg) = serde_json::from_str::<Msg>(t.as_str()) else {
            continue;
        };
        match msg.ty {
            "lines" => {
                st.messages += 1;
                for l in &msg.lines {
                    st.lines += 1;
                    let ts: u64 = l
                        .split(' ')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(now);
                    let lat = now.saturating_sub(ts);
                    st.max_ns = st.max_ns.max(lat);
                    st.hist[bucket(lat)] += 1;
                }
            }
            "dropped" => st.dropped += msg.count,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    st
}

fn percentile(hist: &[u64], total: u64, p: f64) -> f64 {
    let want = ((total as f64) * p).ceil() as u64;
    let mut seen = 0;
    for (i, c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want.max(1) {
            return bucket_ms(i);
        }
    }
    f64::NAN
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => {
            let rate = args[2].parse().unwrap();
            let seconds = args[3].parse().unwrap();
            gen(rate, seconds, args.get(4).cloned()).unwrap();
        }
        Some("clients") => {
            let url = args[2].clone();
            let n: usize = args[3].parse().unwrap();
            let category = args[4].clone();
            let seconds: u64 = args[5].parse().unwrap();
            let warmup: u64 = args[6].parse().unwrap();
            let warm_until = Instant::now() + Duration::from_secs(warmup);
            let end = warm_until + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..n)
                .map(|_| tokio::spawn(client(url.clone(), category.clone(), warm_until, end)))
                .collect();
            let mut hist = vec![0u64; BUCKETS + 1];
            let (mut lines, mut dropped, mut messages, mut max_ns) = (0u64, 0u64, 0u64, 0u64);
            let mut per_client = Vec::new();
            for t in tasks {
                let s = t.await.unwrap();
                lines += s.lines;
                dropped += s.dropped;
                messages += s.messages;
                max_ns = max_ns.max(s.max_ns);
                per_client.push(s.lines);
                for (h, c) in hist.iter_mut().zip(&s.hist) {
                    *h += *c as u64;
                }
            }
            per_client.sort_unstable();
            println!(
                "{}",
                serde_json::json!({
                    "clients": n,
                    "seconds": seconds,
                    "lines": lines,
                    "lines_per_sec": lines as f64 / seconds as f64,
                    "dropped": dropped,
                    "messages": messages,
                    "min_client_lines": per_client.first(),
                    "max_client_lines": per_client.last(),
                    "p50_ms": percentile(&hist, lines, 0.50),
                    "p99_ms": percentile(&hist, lines, 0.99),
                    "max_ms": max_ns as f64 / 1e6,
                })
            );
        }
        _ => {
            eprintln!("usage: fanout_bench gen RATE SECONDS [FILE] | clients URL N CATEGORY SECONDS WARMUP");
            std::process::exit(2);
        }
    }
}
