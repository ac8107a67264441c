//! scribed's OTLP/HTTP logs input with the real OpenTelemetry Python SDK
//! (`opentelemetry-sdk` + `opentelemetry-exporter-otlp-proto-http`, pinned with hashes and
//! installed by `scripts/otel-venv.sh`): 10,000 records land with their attributes (gzip), and
//! the 429s of a rate limit are retried by the SDK without loss. Bad bodies: truncated protobuf,
//! JSON of the wrong shape, a gzip bomb, an oversize body, another content type.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_tests::inputs::{http_post, input_addr};
use pipeline_tests::{metric, read_category, wait_for, Launch, Scribed};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn otel_python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/otel-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/otel-venv.sh");
    assert!(out.status.success(), "scripts/otel-venv.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn start(dir: &Path, extra: &str) -> Scribed {
    Scribed::launch(
        &dir.join("data"),
        Launch {
            config: Some(format!(
                "{extra}\n[[otlp]]\nname = \"otlp\"\nlisten = \"127.0.0.1:0\"\nmax_body = \"1M\"\n"
            )),
            ..Launch::default()
        },
    )
}

/// Runs the OTel client against `s` (bounded), then checks that `count` records, each once,
/// landed with their attributes. Returns how many 429s scribed answered.
fn otel_run(s: &Scribed, count: u64, gzip: bool) -> f64 {
    let python = otel_python();
    let endpoint = format!("http://{}/v1/logs", input_addr(s, "otlp"));
    let service = format!("otel-svc-{count}");
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/compat/otel_client.py"))
        .args([endpoint.as_str(), service.as_str(), &count.to_string()])
        .args(gzip.then_some("gzip"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the OTel client");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the OTel client did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "client: {err}");

    let got = read_category(&s.data_dir, &format!("otlp.{service}"));
    let mut seqs = BTreeSet::new();
    let mut lines = 0;
    for line in got.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("one JSON object per line");
        let seq = v["attributes"]["seq"].as_u64().expect("seq attribute");
        assert_eq!(v["attributes"]["test.kind"], "otel");
        assert_eq!(v["body"], format!("otel record {seq}"));
        assert_eq!(v["severity"], "INFO");
        assert_eq!(v["resource"]["service.name"], service.as_str());
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        seqs.insert(seq);
        lines += 1;
    }
    assert_eq!(
        (seqs.len(), lines),
        (count as usize, count as usize),
        "every record landed once"
    );
    assert_eq!(seqs.last(), Some(&(count - 1)));
    let (_, m) = s.http_get("/metrics");
    let refused = metric(
        &m,
        r#"scribed_input_refused_total{input="otlp",kind="otlp-http"}"#,
    )
    .unwrap();
    eprintln!(
        "{count} records in {:?}, {refused} answers 429",
        start.elapsed()
    );
    refused
}

#[test]
fn otel_python_sdk_10k_records_land_with_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    otel_run(&s, 10_000, true);
}

#[test]
fn otel_python_sdk_retries_429_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    // 1100 a second: two of the SDK's 512-record batches per second pass, a third within the
    // same second is answered 429 (batches over half the limit would always pass).
    let s = start(dir.path(), "max_msg_per_second = 1100\n");
    let refused = otel_run(&s, 3_000, false);
    assert!(refused > 0.0, "the rate limit answered 429 at least once");
}

const JSON_CT: (&str, &str) = ("Content-Type", "application/json");
const PB_CT: (&str, &str) = ("Content-Type", "application/x-protobuf");

fn request(services: &[&str]) -> String {
    let rls: Vec<String> = services
        .iter()
        .map(|s| {
            format!(
                r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{s}"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1700000000000000000","severityNumber":17,"body":{{"stringValue":"from {s}"}},"attributes":[{{"key":"k","value":{{"intValue":"7"}}}}]}}]}}]}}"#
            )
        })
        .collect();
    format!(r#"{{"resourceLogs":[{}]}}"#, rls.join(","))
}

#[test]
fn bad_bodies_get_clear_answers_and_the_listener_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    // Only `otlp.good*` has a store: records of other services are rejected (partial success).
    let s = start(
        dir.path(),
        "[[store]]\ncategory = \"otlp.good*\"\ntype = \"file\"\n",
    );
    let addr = input_addr(&s, "otlp");
    let post = |headers: &[(&str, &str)], body: &[u8]| http_post(&addr, "/v1/logs", headers, body);

    // A valid JSON request, one record accepted and one rejected.
    let (code, _, body) = post(&[JSON_CT], request(&["good", "other"]).as_bytes());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // opentelemetry-proto writes int64 as a JSON number (receivers take a number or a string).
    let rejected = &v["partialSuccess"]["rejectedLogRecords"];
    assert!(rejected == 1 || rejected == "1", "{v}");
    let line = String::from_utf8(read_category(&s.data_dir, "otlp.good")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        (rec["body"].as_str(), rec["severity"].as_str()),
        (Some("from good"), Some("ERROR"))
    );
    assert_eq!(rec["attributes"]["k"], 7);

    // Truncated protobuf.
    let (code, _, _) = post(&[PB_CT], b"\x0a\xff\xff\xff\x0f\x0a");
    assert_eq!(code, 400);
    // JSON of the wrong shape.
    let (code, _, body) = post(&[JSON_CT], br#"{"resourceLogs":{"not":"a list"}}"#);
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    // Not JSON at all.
    assert_eq!(post(&[JSON_CT], b"\x00garbage").0, 400);
    // Another content type.
    assert_eq!(post(&[("Content-Type", "text/plain")], b"hello").0, 415);
    // A gzip bomb: 16 MiB of zeros in about 16 KiB, 16 times max_body (1M).
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    let (code, _, _) = post(&[JSON_CT, ("Content-Encoding", "gzip")], &bomb);
    assert_eq!(code, 413);
    // Bad gzip.
    assert_eq!(
        post(&[JSON_CT, ("Content-Encoding", "gzip")], b"not gzip").0,
        400
    );
    // A body over max_body.
    assert_eq!(post(&[JSON_CT], &vec![b' '; 2 << 20]).0, 413);

    // Still serving, gzip accepted.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(request(&["good2"]).as_bytes()).unwrap();
    let (code, _, body) = post(
        &[JSON_CT, ("Content-Encoding", "gzip")],
        &e.finish().unwrap(),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    wait_for(Duration::from_secs(5), "otlp.good2", || {
        !read_category(&s.data_dir, "otlp.good2").is_empty()
    });

    let (_, m) = s.http_get("/metrics");
    let get = |n: &str| {
        metric(
            &m,
            &format!(r#"scribed_input_{n}{{input="otlp",kind="otlp-http"}}"#),
        )
        .unwrap()
    };
    assert_eq!(get("bad_input_total"), 7.0, "{m}");
    assert_eq!(get("oversize_total"), 2.0, "{m}");
    assert_eq!(get("rejected_total"), 1.0, "{m}");
    assert_eq!(get("messages_total"), 2.0, "{m}");
}
