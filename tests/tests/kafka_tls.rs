//! The kafka store and the archiver over TLS, against a real broker: tansu behind the
//! harness's TLS-terminating proxy (`pipeline_tests::kafka::TlsProxy`, a test PKI's
//! certificate), configured with the same certificate keys as every other hop (`tls_ca`).
//!
//! - The right CA: lines go through the broker and come back out of the archiver, whole.
//! - A CA that did not sign the broker's certificate, or a broker certificate that has
//!   expired: the leaf answers `TRY_LATER` (the client keeps its lines: none is lost), and its
//!   `/status` names the cause in one line (librdkafka's "certificate verify failed", and
//!   `scribe_tls`'s own handshake with the store's settings for the why: "expired ...").

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline_tests::kafka::{Tansu, TlsProxy};
use pipeline_tests::{free_port, read_category, Launch, RawConn, Scribed};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};
use scribe_tls::testing::{Role, TestPki, Validity};

fn leaf_config(brokers: &str, ca: &Path) -> String {
    format!(
        r#"
[[store]]
category = "default"
type = "kafka"
brokers = ["{brokers}"]
timeout = "3s"
tls_ca = "{}"
"#,
        ca.display()
    )
}

fn archiver_config(brokers: &str, ca: &Path) -> String {
    format!(
        r#"
[[kafka_input]]
brokers = ["{brokers}"]
mode = "assign"
group = "tls-test"
tls_ca = "{}"

[[store]]
category = "default"
type = "file"
"#,
        ca.display()
    )
}

fn scribed(data: &Path, config: String) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            listen: Some(format!("127.0.0.1:{}", free_port())),
            config: Some(config),
            ..Launch::default()
        },
    )
}

fn log_call(category: &str, lines: &[String]) -> Vec<u8> {
    let entries: Vec<LogEntry> = lines
        .iter()
        .map(|l| LogEntry {
            category: Bytes::copy_from_slice(category.as_bytes()),
            message: Bytes::copy_from_slice(l.as_bytes()),
        })
        .collect();
    encode_log_call(HeaderStyle::Strict, &entries).to_vec()
}

/// A broker behind TLS with `cert` (issued by `pki`), and a topic `logs.web`.
fn broker(dir: &Path, pki: &TestPki, validity: Validity) -> (Tansu, TlsProxy) {
    let (listener, addr) = TlsProxy::bind();
    let tansu = Tansu::start_advertising(dir.join("tansu.log"), Some(&addr));
    tansu.create_topic("logs.web", 2);
    let cert = pki.issue("broker", Role::Server, validity);
    let proxy = TlsProxy::relay_to(listener, &tansu.addr, &cert);
    (tansu, proxy)
}

#[test]
fn the_kafka_store_and_archiver_speak_tls_with_the_right_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"), "kafka");
    let (_tansu, proxy) = broker(tmp.path(), &pki, Validity::Current);
    let leaf = scribed(
        &tmp.path().join("leaf"),
        leaf_config(&proxy.addr, &pki.ca()),
    );
    let archiver = scribed(
        &tmp.path().join("archive"),
        archiver_config(&proxy.addr, &pki.ca()),
    );
    let lines: Vec<String> = (0..500).map(|i| format!("tls line {i}\n")).collect();
    let mut conn = RawConn::connect(&leaf.addr);
    for chunk in lines.chunks(100) {
        let reply = decode_log_reply(conn.call(&log_call("web", chunk)));
        assert_eq!(reply.ok(), Some(ResultCode::Ok), "{}", leaf.log_text());
    }
    let want: Vec<u8> = lines.concat().into_bytes();
    let archive = tmp.path().join("archive");
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_category(&archive, "web").len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got: Vec<&[u8]> = Vec::new();
    let all = read_category(&archive, "web");
    got.extend(all.split_inclusive(|b| *b == b'\n'));
    got.sort();
    let mut expected: Vec<&[u8]> = want.split_inclusive(|b| *b == b'\n').collect();
    expected.sort();
    assert_eq!(got, expected, "archiver log: {}", archiver.log_text());
}

/// Sends one batch to a leaf whose broker connection cannot be trusted: `TRY_LATER`, and a
/// one-line cause on `/status` that contains `cause`.
fn refused_with(dir: &Path, ca: &Path, brokers: &str, cause: &str) {
    let leaf = scribed(dir, leaf_config(brokers, ca));
    let mut conn = RawConn::connect(&leaf.addr);
    let started = Instant::now();
    let reply = decode_log_reply(conn.call(&log_call("web", &["never lost\n".to_string()])));
    assert_eq!(
        reply.ok(),
        Some(ResultCode::TryLater),
        "{}",
        leaf.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let problem = leaf.store_problem(0);
    eprintln!("{cause}: {problem}");
    assert!(
        problem.contains(cause) && !problem.contains('\n'),
        "status problem: {problem:?} (want {cause:?}); log: {}",
        leaf.log_text()
    );
}

#[test]
fn a_wrong_ca_or_an_expired_broker_certificate_is_try_later_with_its_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&tmp.path().join("pki"), "kafka");
    let other = TestPki::new(&tmp.path().join("other"), "other");
    let (_tansu, proxy) = broker(tmp.path(), &pki, Validity::Current);
    refused_with(
        &tmp.path().join("wrong-ca"),
        &other.ca(),
        &proxy.addr,
        "certificate verify failed",
    );
    let expired_dir = tmp.path().join("expired");
    std::fs::create_dir_all(&expired_dir).unwrap();
    let (_tansu2, expired) = broker(&expired_dir, &pki, Validity::Expired);
    refused_with(
        &tmp.path().join("expired-leaf"),
        &pki.ca(),
        &expired.addr,
        "expired",
    );
}
