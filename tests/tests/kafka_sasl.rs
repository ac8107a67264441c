//! SASL on every Kafka client of the pipeline: scribed's kafka store, the archiver's
//! `[[kafka_input]]` and `tailgate --kafka`, configured as docs/config.md says.
//!
//! - tansu's own SASL (`--authentication`): its engine keeps no credentials, so it refuses
//!   every user. The store answers `TRY_LATER` and `/status` names the authentication failure.
//! - A broker that lets the right password in: tansu behind the harness's SASL relay
//!   (`pipeline_tests::sasl::SaslProxy`: PLAIN, SCRAM-SHA-256 and -512, see there why). Lines
//!   go ship -> scribed (SCRAM-SHA-256) -> broker -> archiver (SCRAM-SHA-512), byte-exact, and
//!   tailgate (PLAIN) reads them too. A wrong password is `TRY_LATER` with its cause; ship keeps
//!   its lines until the password file is fixed and scribed reloaded (SIGHUP), and the archive
//!   then holds each once.
//!
//! The archiver uses `mode = "assign"`: tansu takes ~24 s per consumer-group join.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pipeline_tests::kafka::Tansu;
use pipeline_tests::sasl::SaslProxy;
use pipeline_tests::{
    bin, free_port, read_category, seq_line, spawn_announcing, Launch, RawConn, Scribed, ShipProc,
};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};
use tokio_tungstenite::tungstenite::Message;

const USER: &str = "pipeline";
const PASSWORD: &str = "s3cret, with = and spaces";

/// The SASL keys of a store or input block: `mechanism`, the user, its password file.
fn sasl_keys(mechanism: &str, password_file: &Path) -> String {
    format!(
        "sasl_mechanism = \"{mechanism}\"\nsasl_username = \"{USER}\"\nsasl_password_file = \"{}\"\n",
        password_file.display()
    )
}

fn leaf_config(brokers: &str, sasl: &str) -> String {
    format!(
        "[[store]]\ncategory = \"default\"\ntype = \"kafka\"\nbrokers = [\"{brokers}\"]\n\
         timeout = \"3s\"\n{sasl}"
    )
}

fn archiver_config(brokers: &str, sasl: &str) -> String {
    format!(
        "[[kafka_input]]\nbrokers = [\"{brokers}\"]\nmode = \"assign\"\ngroup = \"sasl-test\"\n\
         {sasl}\n[[store]]\ncategory = \"default\"\ntype = \"file\"\n"
    )
}

fn scribed_at(data: &Path, addr: &str, config: String) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            listen: Some(addr.to_string()),
            config: Some(config),
            ..Launch::default()
        },
    )
}

/// tansu behind the SASL relay (which knows `USER`), with the topic `logs.web`.
fn broker(dir: &Path) -> (Tansu, SaslProxy) {
    let (listener, addr) = SaslProxy::bind();
    let tansu = Tansu::start_advertising(dir.join("tansu.log"), Some(&addr));
    tansu.create_topic("logs.web", 2);
    let proxy = SaslProxy::relay_to(listener, &tansu.addr, &[(USER, PASSWORD)]);
    (tansu, proxy)
}

fn password_file(dir: &Path, name: &str, password: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{password}\n")).unwrap();
    p
}

/// Lines `0..n` of source `src`.
fn lines(src: &str, n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| seq_line(src, i)).collect()
}

/// Waits (at most `limit`) until the archive of `web` holds `want` bytes; what it holds.
fn archived(data: &Path, want: usize, limit: Duration) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    while read_category(data, "web").len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    read_category(data, "web")
}

/// The lines of `bytes`, sorted: two partitions interleave their lines in any order.
fn sorted_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    v.sort();
    v
}

/// `tailgate --kafka` with SASL PLAIN through librdkafka properties, as docs/config.md shows.
struct Tailgate(Child);

impl Tailgate {
    fn start(port: u16, brokers: &str, password_file: &Path) -> Tailgate {
        let child = spawn_announcing(
            Command::new(bin("tailgate"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--kafka", brokers, "--topics", "logs.*"])
                .args(["--kafka-property", "security.protocol=sasl_plaintext"])
                .args(["--kafka-property", "sasl.mechanisms=PLAIN"])
                .args(["--kafka-property", &format!("sasl.username={USER}")])
                .arg("--kafka-sasl-password-file")
                .arg(password_file)
                .args(["--ring-lines", "100000", "--kafka-refresh", "200ms"])
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit()),
            "tailgate listening on",
        );
        Tailgate(child)
    }
}

impl Drop for Tailgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Subscribes to `web` from the start of its backlog; every line text received until `want`
/// lines came or `limit` passed.
async fn tail_lines(url: &str, want: usize, limit: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        got.clear();
        let sub = serde_json::json!({"type": "subscribe", "id": "w", "category": "web", "backlog": 100000});
        ws.send(Message::Text(sub.to_string().into()))
            .await
            .unwrap();
        while got.len() < want {
            let next = tokio::time::timeout_at(deadline, ws.next()).await;
            let Ok(Some(Ok(Message::Text(t)))) = next else {
                break;
            };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v["type"] == "lines" {
                let texts = v["lines"].as_array().into_iter().flatten();
                got.extend(texts.map(|l| l.as_str().unwrap_or_default().to_string()));
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_and_plain_carry_lines_ship_to_archiver_byte_exact_and_to_tailgate() {
    let tmp = tempfile::tempdir().unwrap();
    let (_tansu, proxy) = broker(tmp.path());
    let pw = password_file(tmp.path(), "password", PASSWORD);
    let leaf_addr = format!("127.0.0.1:{}", free_port());
    let arch_data = tmp.path().join("archive");
    let leaf = scribed_at(
        &tmp.path().join("leaf"),
        &leaf_addr,
        leaf_config(&proxy.addr, &sasl_keys("SCRAM-SHA-256", &pw)),
    );
    let archiver = scribed_at(
        &arch_data,
        &format!("127.0.0.1:{}", free_port()),
        archiver_config(&proxy.addr, &sasl_keys("SCRAM-SHA-512", &pw)),
    );
    let want = lines("s", 10_000);
    let out = pipeline_tests::ship(&leaf_addr, "web", &want, &[]);
    assert!(
        out.status.success(),
        "ship: {}; leaf: {}",
        String::from_utf8_lossy(&out.stderr),
        leaf.log_text()
    );
    let got = archived(&arch_data, want.len(), Duration::from_secs(60));
    assert!(
        sorted_lines(&got) == sorted_lines(&want),
        "archive: {} of {} bytes; archiver log: {}",
        got.len(),
        want.len(),
        archiver.log_text()
    );

    let port = free_port();
    let _tailgate = Tailgate::start(port, &proxy.addr, &pw);
    let tailed = tail_lines(
        &format!("ws://127.0.0.1:{port}/ws"),
        sorted_lines(&want).len(),
        Duration::from_secs(60),
    )
    .await;
    let mut tailed: Vec<Vec<u8>> = tailed
        .into_iter()
        .map(|l| format!("{l}\n").into_bytes())
        .collect();
    tailed.sort();
    let expected: Vec<Vec<u8>> = sorted_lines(&want)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    assert!(
        tailed == expected,
        "tailgate read {} of {} lines",
        tailed.len(),
        expected.len()
    );
}

fn log_call(lines: &[&str]) -> Vec<u8> {
    let entries: Vec<LogEntry> = lines
        .iter()
        .map(|l| LogEntry {
            category: Bytes::from_static(b"web"),
            message: Bytes::copy_from_slice(l.as_bytes()),
        })
        .collect();
    encode_log_call(HeaderStyle::Strict, &entries).to_vec()
}

/// One batch to `leaf`: `TRY_LATER` within 10 s, and the store's `/status` problem, one line
/// that names the authentication failure.
fn refused_for_authentication(leaf: &Scribed) -> String {
    let mut conn = RawConn::connect(&leaf.addr);
    let started = Instant::now();
    let reply = decode_log_reply(conn.call(&log_call(&["never acknowledged\n"])));
    assert_eq!(
        reply.ok(),
        Some(ResultCode::TryLater),
        "{}",
        leaf.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let problem = leaf.store_problem(0);
    assert!(
        problem.to_lowercase().contains("authentication") && !problem.contains('\n'),
        "status problem: {problem:?}; log: {}",
        leaf.log_text()
    );
    problem
}

#[test]
fn tansu_refusing_scram_is_try_later_naming_authentication() {
    let tmp = tempfile::tempdir().unwrap();
    let tansu = Tansu::start_authenticating(tmp.path().join("tansu.log"));
    let pw = password_file(tmp.path(), "password", PASSWORD);
    let leaf = scribed_at(
        &tmp.path().join("leaf"),
        &format!("127.0.0.1:{}", free_port()),
        leaf_config(&tansu.addr, &sasl_keys("SCRAM-SHA-256", &pw)),
    );
    let problem = refused_for_authentication(&leaf);
    eprintln!("tansu --authentication: {problem}");
}

#[test]
fn a_wrong_password_is_try_later_and_ship_loses_nothing_once_a_reload_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_tansu, proxy) = broker(tmp.path());
    let pw = password_file(tmp.path(), "password", "not the password");
    let leaf_addr = format!("127.0.0.1:{}", free_port());
    let config = leaf_config(&proxy.addr, &sasl_keys("SCRAM-SHA-256", &pw));
    let leaf = scribed_at(&tmp.path().join("leaf"), &leaf_addr, config);
    let problem = refused_for_authentication(&leaf);
    eprintln!("wrong password: {problem}");

    // ship keeps what the leaf would not acknowledge, and sends it again.
    let arch_data = tmp.path().join("archive");
    let _archiver = scribed_at(
        &arch_data,
        &format!("127.0.0.1:{}", free_port()),
        archiver_config(
            &proxy.addr,
            &sasl_keys(
                "SCRAM-SHA-512",
                &password_file(tmp.path(), "right", PASSWORD),
            ),
        ),
    );
    let mut ship = ShipProc::spawn_command(
        Command::new(bin("ship")),
        &["--to", &leaf_addr, "web"],
        Stdio::piped(),
        &tmp.path().join("ship.err"),
    );
    let mut stdin = ship.take_stdin().unwrap();
    let want = lines("w", 5_000);
    stdin.write_all(&want).unwrap();
    drop(stdin);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        read_category(&arch_data, "web").is_empty(),
        "delivered with a wrong password"
    );
    ship.assert_running();

    // The password file is read again on reload (docs/config.md): no restart needed.
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    leaf.signal(nix::sys::signal::Signal::SIGHUP);
    let (status, err) = ship.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "ship: {err}");
    let got = archived(&arch_data, want.len(), Duration::from_secs(60));
    assert!(
        sorted_lines(&got) == sorted_lines(&want),
        "archive: {} of {} bytes",
        got.len(),
        want.len()
    );
}
