use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use bytes::Bytes;
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::HeaderStyle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

use super::*;
use crate::hub::HubConfig;

/// Counts `WARN` events logged on the thread it is the default for.
struct CountWarnings(Arc<AtomicUsize>);

impl tracing::Subscriber for CountWarnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn log_call(category: &'static [u8]) -> Vec<u8> {
    let entry = LogEntry {
        category: Bytes::from_static(category),
        message: Bytes::from_static(b"line\n"),
    };
    framed(&encode_log_call(HeaderStyle::Strict, &[entry]))
}

async fn read_reply(s: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).await.unwrap();
    payload.into()
}

/// A client that loops on malformed calls and on batches for invalid categories gets its
/// connections closed and its lines refused, and tailgate logs about it at most once a second
/// per kind, not once per call. (The current-thread test runtime runs the listener's tasks on
/// this thread, where the counting subscriber is the default.)
#[tokio::test]
async fn bad_input_is_logged_rate_limited() {
    let warnings = Arc::new(AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(CountWarnings(warnings.clone()));
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let listener = ScribeListener {
        hub: hub.clone(),
        max_frame: 1 << 20,
        memory: 1 << 20,
        max_connections: 1024,
        shutdown: shutdown.clone(),
        tls: None,
        allow: Vec::new(),
    };
    let running = tokio::spawn(listener.run(socket));
    let started = Instant::now();
    const N: usize = 40;

    for _ in 0..N {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&framed(b"\x80\x01\x00\x01garbage"))
            .await
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "a malformed call is not answered");
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    for _ in 0..N {
        s.write_all(&log_call(b"no/slashes")).await.unwrap();
        let code = decode_log_reply(read_reply(&mut s).await).unwrap();
        assert_eq!(code, ResultCode::Ok, "refused lines are still answered OK");
    }
    s.write_all(&log_call(b"good")).await.unwrap();
    decode_log_reply(read_reply(&mut s).await).unwrap();

    let kinds_by_seconds = 2 * (started.elapsed().as_secs() as usize + 1);
    let logged = warnings.load(Ordering::Relaxed);
    assert!(
        (1..=kinds_by_seconds).contains(&logged),
        "{logged} warnings for {N} malformed calls and {N} refused batches"
    );
    assert_eq!(hub.metrics.lines_refused.load(Ordering::Relaxed), N as u64);
    shutdown.cancel();
    running.await.unwrap();
}

/// `ship --to` a tailgate first sends the native protocol's magic: tailgate closes that
/// connection without a warning, and the client carries on over Thrift.
#[tokio::test]
async fn native_probe_is_closed_quietly_and_the_client_falls_back_to_thrift() {
    use scribe_protocol::client::{Client, ClientOptions, Wire};
    let warnings = Arc::new(AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(CountWarnings(warnings.clone()));
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let listener = ScribeListener {
        hub: hub.clone(),
        max_frame: 1 << 20,
        memory: 1 << 20,
        max_connections: 1024,
        shutdown: shutdown.clone(),
        tls: None,
        allow: Vec::new(),
    };
    let running = tokio::spawn(listener.run(socket));
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&scribe_protocol::native::MAGIC).await.unwrap();
        s.write_all(&[0, 0, 0, 3, 1, 0, 1]).await.unwrap();
        let mut rest = Vec::new();
        // Closed with bytes unread: a reset is as good as an end of stream here.
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "the probe is closed, not answered");
    }
    let client = Client::open(&addr.to_string(), ClientOptions::default())
        .await
        .expect("the client falls back to Thrift");
    assert!(matches!(client.wire(), Wire::Thrift { .. }));
    assert_eq!(
        warnings.load(Ordering::Relaxed),
        0,
        "a probe is not a warning"
    );
    shutdown.cancel();
    running.await.unwrap();
}
/// Pushes over mutual TLS: a certificate named by `--scribe-allow` writes its globs only; a
/// client without a certificate does not get a session.
#[tokio::test]
async fn tls_pushes_are_limited_to_the_certificate_s_categories() {
    use scribe_protocol::client::{Client, ClientOptions};
    use scribe_protocol::{LogEntry, ResultCode};
    use scribe_tls::testing::TestPki;
    use scribe_tls::{ClientTls, ClientTlsFiles, ServerTlsFiles};

    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path(), "main");
    let server = pki.server("tailgate.test");
    let web = pki.client("web01");
    let tls = ServerTls::load(ServerTlsFiles {
        cert: server.cert,
        key: server.key,
        client_ca: Some(pki.ca()),
    })
    .unwrap();
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let listener = ScribeListener {
        hub: hub.clone(),
        max_frame: 1 << 20,
        memory: 1 << 20,
        max_connections: 16,
        shutdown: shutdown.clone(),
        tls: Some(Arc::new(tls)),
        allow: vec![parse_allow("web01=web.*").unwrap()],
    };
    let running = tokio::spawn(listener.run(socket));
    let client_tls = |cert: bool| {
        ClientTls::load(&ClientTlsFiles {
            ca: Some(pki.ca()),
            cert: cert.then(|| web.cert.clone()),
            key: cert.then(|| web.key.clone()),
            server_name: None,
        })
        .unwrap()
    };
    let opts = |cert: bool| ClientOptions {
        tls: Some(client_tls(cert)),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let call = |cat: &'static str| {
        encode_log_call(
            HeaderStyle::Unversioned,
            &[LogEntry {
                category: Bytes::from_static(cat.as_bytes()),
                message: Bytes::from_static(b"hello\n"),
            }],
        )
    };
    let mut c = Client::connect(&addr, opts(true)).await.unwrap();
    assert_eq!(c.log(call("web.access")).await.unwrap(), ResultCode::Ok);
    let e = c.log(call("db.audit")).await.unwrap_err().to_string();
    assert!(e.contains("may not push category db.audit"), "{e}");
    // Without a client certificate: refused at the handshake (seen on the first read).
    let refused = match Client::connect(&addr, opts(false)).await {
        Err(e) => e.to_string(),
        Ok(mut c) => c.log(call("web.access")).await.unwrap_err().to_string(),
    };
    assert!(
        refused.contains("requires a client certificate"),
        "{refused}"
    );
    shutdown.cancel();
    let _ = running.await;
}
