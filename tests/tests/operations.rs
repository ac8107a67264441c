//! Operating scribed: the status endpoint, reload on SIGHUP while traffic flows, rate limits,
//! `--check-config`, one scribed per data directory, health on a full disk.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::Signal;
use pipeline_tests::torture::{fill, Tally, TmpfsMount};
use pipeline_tests::{
    bin, metric, read_category, seq_lines, ship, wait_for, Launch, RawConn, Scribed,
};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};

fn file_store(path: &std::path::Path) -> String {
    format!(
        "[[store]]\ncategory = \"default\"\ntype = \"file\"\npath = \"{}\"\n",
        path.display()
    )
}

#[test]
fn status_endpoint_reports_health_metrics_and_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Scribed::start(&tmp.path().join("data"), &[]);
    let (code, body) = server.http_get("/health");
    assert_eq!((code, body.trim()), (200, "ok"));

    let out = pipeline_tests::ship(&server.addr, "metered", b"a\nb\nc\n", &[]);
    assert!(out.status.success());
    let (code, body) = server.http_get("/metrics");
    assert_eq!(code, 200);
    let m = |s: &str| metric(&body, s);
    assert_eq!(
        m("scribed_received_good_total{category=\"metered\"}"),
        Some(3.0)
    );
    assert_eq!(
        m("scribed_written_messages_total{category=\"metered\"}"),
        Some(3.0)
    );
    assert_eq!(
        m("scribed_written_bytes_total{category=\"metered\"}"),
        Some(6.0)
    );
    assert!(
        body.contains("scribed_store_queue_bytes{store=\"store[default]\",type=\"file\"} 0"),
        "{body}"
    );

    let (code, body) = server.http_get("/status");
    assert_eq!(code, 200);
    assert!(body.contains("\"status\":\"ALIVE\""), "{body}");
    assert!(body.contains("\"kind\":\"file\""), "{body}");
    assert_eq!(server.http_get("/nope").0, 404);
}

#[test]
fn reload_switches_routing_without_losing_lines_and_rejects_bad_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let data = tmp.path().join("data");
    let server = Scribed::launch(
        &data,
        Launch {
            config: Some(file_store(&a)),
            ..Launch::default()
        },
    );
    let config_path = data.with_extension("toml");

    // A shipper that trickles lines the whole time.
    let mut shipper = Command::new(bin("ship"))
        .args([
            "--to",
            &server.addr,
            "--linger",
            "5ms",
            "--batch-lines",
            "20",
            "flow",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shipper.stdin.take().unwrap();
    let mut sent = Vec::new();
    let mut feed = |from: usize, to: usize, sent: &mut Vec<u8>| {
        for i in from..to {
            let line = format!("line {i:05}\n");
            stdin.write_all(line.as_bytes()).unwrap();
            sent.extend_from_slice(line.as_bytes());
            if i % 50 == 0 {
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        stdin.flush().unwrap();
    };
    feed(0, 2000, &mut sent);
    wait_for(Duration::from_secs(20), "lines in store a", || {
        !read_category(&a, "flow").is_empty()
    });

    // A bad config is rejected; the old one stays in force.
    std::fs::write(
        &config_path,
        "[[store]]\ncategory = \"default\"\ntype = \"tape\"\n",
    )
    .unwrap();
    server.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the rejection", || {
        server.log_text().contains("reload rejected")
    });
    feed(2000, 3000, &mut sent);

    // A good one switches the route while lines keep flowing.
    std::fs::write(&config_path, file_store(&b)).unwrap();
    server.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload", || {
        server.log_text().contains("configuration reloaded")
    });
    feed(3000, 5000, &mut sent);
    drop(stdin);
    assert!(shipper.wait().unwrap().success());

    let mut stored = read_category(&a, "flow");
    let in_b = read_category(&b, "flow");
    assert!(!in_b.is_empty(), "lines after the reload go to b");
    stored.extend_from_slice(&in_b);
    assert!(stored == sent, "a then b holds every line once, in order");

    let (_, body) = server.http_get("/metrics");
    assert_eq!(metric(&body, "scribed_reloads_total"), Some(1.0));
    assert_eq!(metric(&body, "scribed_reload_failures_total"), Some(1.0));
    assert_eq!(
        metric(&body, "scribed_received_good_total{category=\"flow\"}"),
        Some(5000.0)
    );
}

#[test]
fn rate_limit_answers_try_later_and_ship_gets_through_anyway() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Scribed::start(&tmp.path().join("data"), &["--max-msg-per-second", "2000"]);
    let input: Vec<u8> = (0..6000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let out = pipeline_tests::ship(&server.addr, "limited", &input, &["--batch-lines", "500"]);
    assert!(out.status.success());
    assert!(read_category(&tmp.path().join("data"), "limited") == input);
    let (_, body) = server.http_get("/metrics");
    assert!(
        metric(&body, "scribed_denied_for_rate_total{category=\"limited\"}").unwrap_or(0.0) > 0.0,
        "{body}"
    );
}

#[test]
fn check_config_accepts_good_files_and_names_the_problem_in_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, file_store(tmp.path())).unwrap();
    let out = Command::new(bin("scribed"))
        .arg("--check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "max_queue_bytes = \"lots\"\n").unwrap();
    let out = Command::new(bin("scribed"))
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("max_queue_bytes"),
        "{err}"
    );

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/scribed.toml");
    let out = Command::new(bin("scribed"))
        .arg("--check-config")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the shipped example is valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two scribeds on one data directory each recover and append to the same category files, so
/// a restart's recovery cuts what the other acknowledged (an incident lost half of 600,000
/// lines). The second must refuse to start, every time, naming the directory and the pid that
/// holds it, and nothing the first acknowledged may be lost.
#[test]
fn a_second_scribed_on_the_same_data_dir_refuses_and_nothing_acknowledged_is_lost() {
    const ROUNDS: u64 = 4;
    const LINES: u64 = 3_000;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = Scribed::start(&data, &[]);
    let mut written = vec![("first".to_string(), 0), ("second".to_string(), 0)];
    let mut started_anyway = 0;
    for round in 0..ROUNDS {
        let lines = seq_lines("first", written[0].1..written[0].1 + LINES);
        assert!(ship(&first.addr, "shared", &lines, &[]).status.success());
        written[0].1 += LINES;
        let how = Launch {
            files: Some(tmp.path().join(format!("second{round}"))),
            ..Launch::default()
        };
        match Scribed::try_launch(&data, how) {
            Err((status, log)) => {
                assert!(!status.success());
                let pid = first.pid().to_string();
                assert!(
                    log.contains(&data.display().to_string()) && log.contains(&pid),
                    "the refusal names the directory and pid {pid}: {log}"
                );
            }
            Ok(second) => {
                // What the incident did: ship through both, then stop the second.
                started_anyway += 1;
                let lines = seq_lines("second", written[1].1..written[1].1 + LINES);
                assert!(ship(&second.addr, "shared", &lines, &[]).status.success());
                written[1].1 += LINES;
                assert!(second.stop().success());
            }
        }
    }
    // A restart recovers the category: it must find every acknowledged line.
    assert!(first.stop().success());
    let again = Scribed::start(&data, &[]);
    assert!(again.stop().success());
    let tally = Tally::of(&read_category(&data, "shared"), &written);
    println!("{}", tally.line("two-scribeds-one-dir", 0.0, ""));
    assert_eq!(
        (tally.lost, tally.duplicated, tally.torn),
        (0, 0, 0),
        "acknowledged lines lost, repeated or cut ({started_anyway} second scribeds started): \
         {:?}",
        tally.detail
    );
    assert_eq!(
        started_anyway, 0,
        "a second scribed started on a locked data dir"
    );
}

fn log_call(category: &str, message: &[u8]) -> Vec<u8> {
    let entry = LogEntry {
        category: Bytes::copy_from_slice(category.as_bytes()),
        message: Bytes::copy_from_slice(message),
    };
    encode_log_call(HeaderStyle::Strict, &[entry]).to_vec()
}

/// While a file store refuses writes on a full disk, `/health` says degraded (with the store and
/// the reason) and `/ready` says not ready; once a write succeeds again both recover. The disk
/// is a 1 MiB tmpfs the test mounts (root, as in CI), else the test is skipped.
#[test]
fn health_and_ready_report_a_store_refusing_writes_on_a_full_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    let mount = match TmpfsMount::mount(&disk, 1 << 20) {
        Ok(m) => m,
        Err(why) => {
            println!("SKIPPED health_and_ready_report_a_store_refusing_writes_on_a_full_disk: cannot mount a tmpfs: {why}");
            return;
        }
    };
    let server = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(file_store(&disk)),
            ..Launch::default()
        },
    );
    assert_eq!(server.http_get("/health"), (200, "ok\n".to_string()));
    let mut conn = RawConn::connect(&server.addr);
    let message = vec![b'x'; 64 << 10];
    let reply = decode_log_reply(conn.call(&log_call("full", &message)));
    assert_eq!(reply.ok(), Some(ResultCode::Ok));

    let filler = disk.join("filler");
    fill(&filler, 0, 2 << 20);
    let reply = decode_log_reply(conn.call(&log_call("full", &message)));
    assert_eq!(reply.ok(), Some(ResultCode::TryLater));
    let (code, body) = server.http_get("/health");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("degraded") && body.contains("store[0]") && body.contains("No space left"),
        "{body}"
    );
    let (code, body) = server.http_get("/ready");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("not ready") && body.contains("store[0]"),
        "{body}"
    );

    std::fs::remove_file(&filler).unwrap();
    let reply = decode_log_reply(conn.call(&log_call("full", &message)));
    assert_eq!(reply.ok(), Some(ResultCode::Ok));
    assert_eq!(server.http_get("/health"), (200, "ok\n".to_string()));
    assert_eq!(server.http_get("/ready"), (200, "ready\n".to_string()));
    drop(conn);
    // Stopped before the tmpfs goes.
    assert!(server.stop().success());
    drop(mount);
}
