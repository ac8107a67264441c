//! Security under operations: admin calls from clients that are not admins, and certificate
//! rotation by SIGHUP while a `ship` streams (no line lost; a bad new certificate keeps the
//! old one and says why).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use pipeline_tests::archive::read_category;
use pipeline_tests::procs::{bin, free_port, ship, wait_for, Launch, Scribed, ShipProc};
use pipeline_tests::seq::seq_lines;
use pipeline_tests::tls::{launch, p, Pki, CLIENTS};
use pipeline_tests::wire::metric;
use scribe_protocol::client::{Client, ClientOptions};
use scribe_protocol::scribe::{decode_string_reply, encode_string_call};
use scribe_protocol::HeaderStyle;
use scribe_tls::testing::{CertFiles, TestPki};
use scribe_tls::{ClientTls, ClientTlsFiles};

/// Sends fb303 `call` with `args` over TLS as the client `cert`; the reply (`None` for the
/// oneway calls, which get none).
fn fb303(addr: &str, ca: &Path, cert: &CertFiles, call: &str, args: &[&[u8]]) -> Option<Bytes> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = ClientTls::load(&ClientTlsFiles {
            ca: Some(ca.to_path_buf()),
            cert: Some(cert.cert.clone()),
            key: Some(cert.key.clone()),
            server_name: None,
        })
        .unwrap();
        let opts = ClientOptions {
            tls: Some(tls),
            request_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        };
        let mut c = Client::connect(addr, opts).await.unwrap();
        c.send(encode_string_call(HeaderStyle::Unversioned, call, args))
            .await
            .unwrap();
        if matches!(call, "shutdown" | "reinitialize") {
            // Oneway: give the server the time to act (or not) before the connection goes.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return None;
        }
        c.recv().await.ok()
    })
}

#[test]
fn admin_calls_need_an_admin_client() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path());
    let (web, ops) = (pki.web.clone(), pki.ops.clone());
    let port = free_port();
    // `trust_loopback = false`: the test's clients all come from loopback, as they would
    // through a TLS proxy on the same host, and must still not be admins by that alone.
    let config = format!(
        "{}{CLIENTS}",
        pki.listener(port, true, "trust_loopback = false")
    );
    let mut s = launch(&tmp.path().join("data"), config);
    let addr = format!("127.0.0.1:{port}");
    let ca = pki.ca.clone();
    assert_eq!(fb303(&addr, &ca, &web, "shutdown", &[]), None);
    assert_eq!(fb303(&addr, &ca, &web, "reinitialize", &[]), None);
    let reply = fb303(&addr, &ca, &web, "setOption", &[b"k", b"v"]).unwrap();
    let err = decode_string_reply(reply, "setOption")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin"), "{err}");
    // Still serving, and each refusal counted for its client.
    assert_eq!(s.http_get("/health").0, 200);
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "scribed_denied_admin_calls_total{client=\"web\"}"),
        Some(3.0),
        "{m}"
    );
    assert!(s.log_text().contains("refused fb303 shutdown"));
    // The connection-scoped option every pipelining client sets is not an admin call.
    let reply = fb303(
        &addr,
        &ca,
        &web,
        "setOption",
        &[b"scribed.close_on_try_later", b"1"],
    );
    assert!(decode_string_reply(reply.unwrap(), "setOption").is_ok());
    // An admin client may stop it.
    fb303(&addr, &ca, &ops, "shutdown", &[]);
    wait_for(Duration::from_secs(10), "scribed to stop", || {
        s.try_exit_status().is_some()
    });
}

#[test]
fn certificates_rotate_on_sighup_without_losing_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let old = TestPki::new(&tmp.path().join("old"), "old");
    let new = TestPki::new(&tmp.path().join("new"), "new");
    let live = tmp.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("server.pem"), live.join("server.key"));
    let install = |c: &CertFiles| {
        std::fs::copy(&c.cert, &cert).unwrap();
        std::fs::copy(&c.key, &key).unwrap();
    };
    install(&old.server("scribed.test"));
    // The streaming ship trusts both CAs, so its reconnections succeed before and after.
    let both = tmp.path().join("both-ca.pem");
    let bundle = [old.ca(), new.ca()]
        .map(|c| std::fs::read(c).unwrap())
        .concat();
    std::fs::write(&both, bundle).unwrap();
    let port = free_port();
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        p(&cert),
        p(&key)
    );
    let s = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "--to",
        &addr,
        "--tls-ca",
        &p(&both),
        "--linger",
        "5ms",
        "rot.test",
    ];
    let mut shipper = ShipProc::spawn_command(
        Command::new(bin("ship")),
        &args,
        Stdio::piped(),
        &tmp.path().join("ship.err"),
    );
    let mut stdin = shipper.take_stdin().unwrap();
    let mut sent = Vec::new();
    let mut write_some = |from: u64| {
        for i in 0..10 {
            let chunk = seq_lines("rot", from + i * 200..from + (i + 1) * 200);
            stdin.write_all(&chunk).unwrap();
            stdin.flush().unwrap();
            sent.extend_from_slice(&chunk);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    write_some(0);
    // Rotate to a certificate from the new CA while ship streams.
    install(&new.server("scribed.test"));
    s.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the certificate reload", || {
        s.log_text().contains("TLS certificate and key re-read")
    });
    write_some(2_000);
    // New connections get the new certificate: a client trusting only the old CA fails.
    let one = |ca: &Path, timeout: &str, input: &[u8]| {
        ship(
            &addr,
            "rot.other",
            input,
            &["--tls-ca", &p(ca), "--timeout", timeout],
        )
    };
    let out = one(&old.ca(), "2s", b"x\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown CA"));
    // A broken new certificate keeps the one in force, and says why.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the refused reload", || {
        s.log_text().contains("keeping the certificate in force")
    });
    write_some(4_000);
    let out = one(&new.ca(), "5s", b"y\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(stdin);
    let (status, err) = shipper.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{err}");
    assert_eq!(read_category(&s.data_dir, "rot.test"), sent);
    s.stop();
}
