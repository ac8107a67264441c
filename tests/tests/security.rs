//! TLS, mutual TLS, identities and admin calls, with real `scribed` and `ship` processes and
//! certificates made by the test (`scribe_tls::testing`): the relay chain over mTLS, category
//! authorization, admin lock-down, tokens, the status token, each common mistake with the
//! message both sides give, and certificate rotation by SIGHUP under load.

use std::path::Path;
use std::time::Duration;

use pipeline_tests::archive::read_category;
use pipeline_tests::procs::{free_port, ship, wait_for, Launch, Scribed};
use pipeline_tests::seq::seq_lines;
use pipeline_tests::tls::{launch, p, Pki, CLIENTS};
use pipeline_tests::wire::{http_get_with, metric};
use scribe_tls::testing::{CertFiles, Role, Validity};

fn ship_with(addr: &str, category: &str, input: &[u8], args: &[String]) -> (bool, String) {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--timeout", "3s"]);
    let out = ship(addr, category, input, &all);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ship_over_mtls_through_a_relay_to_a_central_is_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (central_port, leaf_port) = (free_port(), free_port());
    let central = launch(
        &tmp.path().join("central"),
        format!(
            "{}{CLIENTS}",
            pki.listener(central_port, true, "anonymous = []")
        ),
    );
    let leaf_config = format!(
        r#"{}{CLIENTS}
[[store]]
category = "default"
type = "buffer"
spool_dir = "{}"
retry_interval = "200ms"

[store.primary]
type = "network"
remote = ["127.0.0.1:{central_port}"]
protocol = "native"
tls_ca = "{}"
tls_cert = "{}"
tls_key = "{}"
"#,
        pki.listener(leaf_port, true, "anonymous = []"),
        p(&tmp.path().join("leaf-spool")),
        p(&pki.ca),
        p(&pki.relay.cert),
        p(&pki.relay.key),
    );
    let leaf = launch(&tmp.path().join("leaf"), leaf_config);
    let input = seq_lines("tls", 0..20_000);
    let (ok, err) = ship_with(
        &format!("127.0.0.1:{leaf_port}"),
        "web.access",
        &input,
        &pki.ship_args(Some(&pki.web)),
    );
    assert!(ok, "ship failed: {err}");
    wait_for(Duration::from_secs(20), "the lines at the central", || {
        read_category(&central.data_dir, "web.access").len() >= input.len()
    });
    assert_eq!(read_category(&central.data_dir, "web.access"), input);
    // The relay's connection was identified by its certificate.
    let (_, metrics) = central.http_get("/metrics");
    assert!(!metrics.contains("scribed_denied"), "{metrics}");
    leaf.stop();
    central.stop();
}

#[test]
fn a_client_writes_only_its_categories_and_a_refusal_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let port = free_port();
    let s = launch(
        &tmp.path().join("data"),
        format!("{}{CLIENTS}", pki.listener(port, true, "anonymous = []")),
    );
    let addr = format!("127.0.0.1:{port}");
    let web = pki.ship_args(Some(&pki.web));
    let (ok, err) = ship_with(&addr, "db.audit", b"secret\n", &web);
    assert!(!ok);
    assert!(
        err.contains("may not write category db.audit") && err.contains("web.*"),
        "{err}"
    );
    let (ok, err) = ship_with(&addr, "web.access", b"GET /\n", &web);
    assert!(ok, "{err}");
    assert!(!s.data_dir.join("db.audit").exists());
    assert_eq!(read_category(&s.data_dir, "web.access"), b"GET /\n");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "scribed_denied_messages_total{client=\"web\"}"),
        Some(1.0)
    );
    assert!(s.log_text().contains("may not write category db.audit"));
    s.stop();
}

#[test]
fn each_tls_mistake_is_named_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let port = free_port();
    let s = launch(
        &tmp.path().join("data"),
        format!("{}{CLIENTS}", pki.listener(port, true, "anonymous = []")),
    );
    let tls_addr = format!("127.0.0.1:{port}");
    let cert_args = |ca: &Path, c: &CertFiles| -> Vec<String> {
        vec![
            "--tls-ca".into(),
            p(ca),
            "--tls-cert".into(),
            p(&c.cert),
            "--tls-key".into(),
            p(&c.key),
        ]
    };
    let stranger = pki.other.client("stranger");
    let expired = pki.main.issue("old", Role::Client, Validity::Expired);
    let mut name_mismatch = pki.ship_args(Some(&pki.web));
    name_mismatch.extend(["--tls-server-name".into(), "db.example.com".into()]);
    let cases: Vec<(&str, String, Vec<String>, &str, &str)> = vec![
        (
            "plaintext client on a TLS port",
            tls_addr.clone(),
            vec![],
            "speaks TLS on this port",
            "plaintext client on a TLS port",
        ),
        (
            "TLS client on a plaintext port",
            s.addr.clone(),
            pki.ship_args(Some(&pki.web)),
            "plaintext port",
            "TLS client 127.0.0.1",
        ),
        (
            "server from a CA the client does not trust",
            tls_addr.clone(),
            cert_args(&pki.other.ca(), &pki.web),
            "signed by an unknown CA",
            "refused our certificate",
        ),
        (
            "client certificate from another CA",
            tls_addr.clone(),
            cert_args(&pki.ca, &stranger),
            "CA it does not trust",
            "unknown CA",
        ),
        (
            "expired client certificate",
            tls_addr.clone(),
            cert_args(&pki.ca, &expired),
            "expired",
            "expired",
        ),
        (
            "no client certificate",
            tls_addr.clone(),
            pki.ship_args(None),
            "requires a client certificate",
            "sent no certificate",
        ),
        (
            "name mismatch",
            tls_addr.clone(),
            name_mismatch,
            "name mismatch: expected \"db.example.com\"",
            "",
        ),
    ];
    for (what, addr, args, client_says, server_says) in cases {
        let (ok, err) = ship_with(&addr, "web.x", b"line\n", &args);
        assert!(!ok, "{what}: ship succeeded");
        assert!(err.contains(client_says), "{what}: ship said: {err}");
        if !server_says.is_empty() {
            wait_for(Duration::from_secs(5), server_says, || {
                s.log_text().contains(server_says)
            });
        }
    }
    // A key that does not belong to the certificate: ship refuses to start.
    let mut mixed = pki.ship_args(None);
    mixed.extend([
        "--tls-cert".into(),
        p(&pki.web.cert),
        "--tls-key".into(),
        p(&pki.ops.key),
    ]);
    let (ok, err) = ship_with(&tls_addr, "web.x", b"line\n", &mixed);
    assert!(
        !ok && err.contains("does not match the certificate"),
        "{err}"
    );
    assert!(!s.data_dir.join("web.x").exists());
    let (_, m) = s.http_get("/metrics");
    let failures = metric(
        &m,
        "scribed_tls_handshake_failures_total{listener=\"listener[0]\"}",
    );
    assert!(failures.unwrap_or(0.0) >= 4.0, "{m}");
    s.stop();

    // And scribed refuses to start with one.
    let bad = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        p(&pki.server.cert),
        p(&pki.web.key)
    );
    let Err((_, log)) = Scribed::try_launch(
        &tmp.path().join("bad"),
        Launch {
            config: Some(bad),
            ..Launch::default()
        },
    ) else {
        panic!("scribed started with a key of another certificate");
    };
    assert!(log.contains("does not match the certificate"), "{log}");
}

#[test]
fn tokens_identify_native_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("ops.token");
    std::fs::write(&token, "0123456789abcdef-ops\n").unwrap();
    let wrong = tmp.path().join("wrong.token");
    std::fs::write(&wrong, "0123456789abcdef-opz\n").unwrap();
    let port = free_port();
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\nanonymous = []\n\n\
         [[client]]\nname = \"ops\"\ntoken_file = \"{}\"\ncategories = [\"ops.*\"]\n",
        p(&token)
    );
    let s = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    let addr = format!("127.0.0.1:{port}");
    let with = |t: &Path| vec!["--token-file".to_string(), p(t)];
    let (ok, err) = ship_with(&addr, "ops.deploy", b"deployed\n", &with(&token));
    assert!(ok, "{err}");
    assert_eq!(read_category(&s.data_dir, "ops.deploy"), b"deployed\n");
    let (ok, err) = ship_with(&addr, "ops.deploy", b"again\n", &with(&wrong));
    assert!(!ok && err.contains("token is not accepted"), "{err}");
    let (ok, err) = ship_with(&addr, "ops.deploy", b"anonymous\n", &[]);
    assert!(
        !ok && err.contains("client anonymous may not write"),
        "{err}"
    );
    assert_eq!(read_category(&s.data_dir, "ops.deploy"), b"deployed\n");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "scribed_unknown_tokens_total{listener=\"listener[0]\"}"),
        Some(1.0)
    );
    s.stop();
}

#[test]
fn the_status_token_guards_metrics_and_status_but_not_health() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("status.token");
    std::fs::write(&token, "st4tus").unwrap();
    let s = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(format!("status_token_file = \"{}\"\n", p(&token))),
            ..Launch::default()
        },
    );
    for path in ["/metrics", "/status"] {
        let (code, body) = http_get_with(&s.status_addr, path, &[]);
        assert_eq!(code, 401, "{path}: {body}");
        let (code, _) = http_get_with(&s.status_addr, path, &["Authorization: Bearer nope"]);
        assert_eq!(code, 401, "{path}");
        let (code, _) = http_get_with(&s.status_addr, path, &["Authorization: bearer st4tus"]);
        assert_eq!(code, 200, "{path}");
    }
    assert_eq!(http_get_with(&s.status_addr, "/health", &[]).0, 200);
    s.stop();
}
