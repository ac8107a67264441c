//! Real handshakes on loopback for each mistake operators make, with the one-line message
//! each side gets.

#![cfg(feature = "testing")]

use std::time::Duration;

use scribe_tls::testing::{Role, TestPki, Validity};
use scribe_tls::{AcceptError, ClientTls, ClientTlsFiles, ServerTls, ServerTlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(5);

struct Outcome {
    server: Result<Option<String>, String>,
    client: Result<(), String>,
}

/// One connection: the server accepts and reads a byte; the client handshakes, writes a
/// byte and reads (so a refusal sent after a TLS 1.3 handshake is seen).
async fn handshake(server: &ServerTls, client: &ClientTls) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client_side = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client.connect("127.0.0.1", tcp, T).await?;
        let _ = tls.write_all(b"x").await;
        let mut b = [0u8; 1];
        match tls.read(&mut b).await {
            Ok(_) => Ok(()),
            Err(e) => Err(scribe_tls::explain(&e)),
        }
    };
    let server_side = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut tls, id) = server.accept(tcp, T).await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b)
            .await
            .map_err(|e| scribe_tls::explain(&e))?;
        tls.write_all(b"y").await.unwrap();
        Ok(id.map(|i| i.to_string()))
    };
    let (client, server) = tokio::join!(client_side, server_side);
    Outcome { server, client }
}

fn server(pki: &TestPki, mtls: bool) -> ServerTls {
    let s = pki.server("scribed.test");
    ServerTls::load(ServerTlsFiles {
        cert: s.cert,
        key: s.key,
        client_ca: mtls.then(|| pki.ca()),
    })
    .unwrap()
}

fn client(ca: &TestPki, cert: Option<scribe_tls::testing::CertFiles>) -> ClientTls {
    ClientTls::load(&ClientTlsFiles {
        ca: Some(ca.ca()),
        cert: cert.as_ref().map(|c| c.cert.clone()),
        key: cert.as_ref().map(|c| c.key.clone()),
        server_name: None,
    })
    .unwrap()
}

#[tokio::test]
async fn mutual_tls_gives_the_client_identity() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let out = handshake(
        &server(&pki, true),
        &client(&pki, Some(pki.client("web01"))),
    )
    .await;
    assert_eq!(out.server.unwrap().as_deref(), Some("web01"));
    out.client.unwrap();
    // Without client-certificate checking, no identity.
    let out = handshake(&server(&pki, false), &client(&pki, None)).await;
    assert_eq!(out.server.unwrap(), None);
}

#[tokio::test]
async fn each_common_mistake_is_one_line_naming_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("main"), "main");
    let other = TestPki::new(&dir.path().join("other"), "other");
    let mtls = server(&pki, true);

    // No client certificate on a port that requires one.
    let out = handshake(&mtls, &client(&pki, None)).await;
    assert!(out.server.unwrap_err().contains("sent no certificate"));
    assert!(out
        .client
        .unwrap_err()
        .contains("requires a client certificate"));

    // A client certificate from another CA.
    let out = handshake(&mtls, &client(&pki, Some(other.client("stranger")))).await;
    let s = out.server.unwrap_err();
    assert!(s.contains("unknown CA"), "{s}");
    let c = out.client.unwrap_err();
    assert!(c.contains("CA it does not trust"), "{c}");

    // An expired client certificate, and one not yet valid.
    let old = pki.issue("old", Role::Client, Validity::Expired);
    let out = handshake(&mtls, &client(&pki, Some(old))).await;
    let s = out.server.unwrap_err();
    assert!(s.contains("expired"), "{s}");
    assert!(out.client.unwrap_err().contains("expired"));
    let early = pki.issue("early", Role::Client, Validity::NotYetValid);
    let out = handshake(&mtls, &client(&pki, Some(early))).await;
    let s = out.server.unwrap_err();
    assert!(s.contains("not yet valid"), "{s}");

    // The client does not trust the server's CA.
    let out = handshake(&server(&pki, false), &client(&other, None)).await;
    let c = out.client.unwrap_err();
    assert!(c.contains("unknown CA"), "{c}");

    // A name the server's certificate does not carry.
    let wrong_name = ClientTls::load(&ClientTlsFiles {
        ca: Some(pki.ca()),
        server_name: Some("db.example.com".into()),
        ..Default::default()
    })
    .unwrap();
    let out = handshake(&server(&pki, false), &wrong_name).await;
    let c = out.client.unwrap_err();
    assert!(
        c.contains("name mismatch") && c.contains("db.example.com"),
        "{c}"
    );
}

#[tokio::test]
async fn plaintext_on_a_tls_port_is_told_apart_and_answered_with_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let tls = server(&pki, false);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0xF5, b'S', b'C', b'N']).await.unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.unwrap();
        reply
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let e = tls.accept(tcp, T).await.err().unwrap();
    assert!(matches!(e, AcceptError::Plaintext), "{e}");
    assert!(e.to_string().contains("plaintext client on a TLS port"));
    assert!(scribe_tls::looks_like_tls_reply(&client.await.unwrap()));

    // A client that connects and says nothing is dropped after the timeout.
    let _idle = TcpStream::connect(addr).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let e = tls
        .accept(tcp, Duration::from_millis(200))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, AcceptError::TimedOut(_)), "{e}");
}

#[test]
fn bad_files_are_refused_at_load_and_a_bad_reload_keeps_the_old_settings() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let a = pki.server("a.test");
    let b = pki.server("b.test");
    // A key that belongs to another certificate.
    let e = ServerTls::load(ServerTlsFiles {
        cert: a.cert.clone(),
        key: b.key.clone(),
        client_ca: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("does not match the certificate"), "{e}");
    // An expired server certificate.
    let old = pki.issue("old.test", Role::Server, Validity::Expired);
    let e = ServerTls::load(ServerTlsFiles {
        cert: old.cert.clone(),
        key: old.key.clone(),
        client_ca: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("expired on"), "{e}");

    // Reload: a broken file keeps the old settings and says why.
    let files = ServerTlsFiles {
        cert: dir.path().join("live.pem"),
        key: dir.path().join("live.key"),
        client_ca: None,
    };
    std::fs::copy(&a.cert, &files.cert).unwrap();
    std::fs::copy(&a.key, &files.key).unwrap();
    let tls = ServerTls::load(files.clone()).unwrap();
    std::fs::write(&files.cert, "not a certificate").unwrap();
    let e = tls.reload().unwrap_err().to_string();
    assert!(
        e.contains("live.pem") && e.contains("no CERTIFICATE"),
        "{e}"
    );
    std::fs::copy(&b.cert, &files.cert).unwrap();
    std::fs::copy(&b.key, &files.key).unwrap();
    tls.reload().unwrap();
}
