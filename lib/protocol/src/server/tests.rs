use super::*;
use crate::message::{message_type, ApplicationException, HeaderStyle};
use crate::scribe::{encode_log_call, encode_string_call};
use crate::thrift::Reader;
use scribe_ids::ProducerId;
use tokio::io::{duplex, AsyncReadExt, DuplexStream};

/// A server that writes only what it must.
#[derive(Default)]
struct Minimal {
    logged: Vec<LogEntry>,
    /// Answer `close_after` with this.
    close: bool,
}

impl ScribeService for Minimal {
    fn name(&self) -> &[u8] {
        b"minimal"
    }
    fn version(&self) -> &[u8] {
        b"1.2.3"
    }
    fn alive_since(&self) -> i64 {
        1234
    }
    async fn log(&mut self, entries: Vec<LogEntry>) -> Result<ResultCode, Refused> {
        if entries.iter().any(|e| &e.category[..] == b"secret") {
            return Err(Refused("may not write category secret".into()));
        }
        self.logged.extend(entries);
        Ok(ResultCode::Ok)
    }
    fn close_after(&self, _took: Duration) -> bool {
        self.close
    }
}

/// A server with counters and options.
struct Counted;

impl ScribeService for Counted {
    fn name(&self) -> &[u8] {
        b"counted"
    }
    fn version(&self) -> &[u8] {
        b""
    }
    fn alive_since(&self) -> i64 {
        0
    }
    async fn log(&mut self, _entries: Vec<LogEntry>) -> Result<ResultCode, Refused> {
        Ok(ResultCode::TryLater)
    }
    async fn status(&self) -> FbStatus {
        FbStatus::Warning
    }
    fn counters(&self) -> Option<Vec<(String, i64)>> {
        Some(vec![("a:received good".into(), 3)])
    }
    fn counter(&self, key: &[u8]) -> Option<i64> {
        Some(key.len() as i64)
    }
    fn options(&self) -> Option<Vec<(Bytes, Bytes)>> {
        Some(vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))])
    }
}

fn call(name: &str, args: &[&[u8]]) -> Call {
    decode_call(encode_string_call(HeaderStyle::Strict, name, args)).unwrap()
}

fn exception(reply: Bytes) -> ApplicationException {
    let mut r = Reader::new(reply);
    let h = MessageHeader::read(&mut r).unwrap();
    assert_eq!(h.message_type, message_type::EXCEPTION);
    ApplicationException::read(&mut r).unwrap()
}

fn limits(max_frame: usize) -> ServerLimits {
    ServerLimits::new(max_frame, 0, None)
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

async fn read_reply(client: &mut DuplexStream) -> Bytes {
    let mut len = [0u8; 4];
    client.read_exact(&mut len).await.unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    client.read_exact(&mut payload).await.unwrap();
    payload.into()
}

#[tokio::test]
async fn fb303_defaults_are_fb303_bases() {
    type Want = fn(&MessageHeader) -> Bytes;
    let cases: [(&str, &[&[u8]], Want); 8] = [
        ("getName", &[], |h| encode_string_reply(h, b"minimal")),
        ("getVersion", &[], |h| encode_string_reply(h, b"1.2.3")),
        ("getStatus", &[], |h| {
            encode_i32_reply(h, FbStatus::Alive as i32)
        }),
        ("getStatusDetails", &[], |h| encode_string_reply(h, b"")),
        ("aliveSince", &[], |h| encode_i64_reply(h, 1234)),
        ("getOption", &[b"any"], |h| encode_string_reply(h, b"")),
        ("setOption", &[b"k", b"v"], encode_void_reply),
        ("getCpuProfile", &[], |h| encode_string_reply(h, b"")),
    ];
    let mut s = Minimal::default();
    for (name, args, want) in cases {
        let c = call(name, args);
        let want = want(&c.header);
        assert_eq!(answer(&mut s, c).await, Some(want), "{name}");
    }
}

#[tokio::test]
async fn what_a_server_does_not_offer_is_an_unknown_method() {
    let mut s = Minimal::default();
    for name in ["getCounters", "getCounter", "getOptions", "frobnicate"] {
        let e = exception(answer(&mut s, call(name, &[b"k"])).await.unwrap());
        assert_eq!(e.kind, exception_kind::UNKNOWN_METHOD, "{name}");
        assert_eq!(e.message, format!("Invalid method name: '{name}'"));
    }
}

#[tokio::test]
async fn oneway_calls_get_no_reply() {
    let mut s = Minimal::default();
    assert_eq!(answer(&mut s, call("shutdown", &[])).await, None);
    assert_eq!(answer(&mut s, call("reinitialize", &[])).await, None);
}

#[tokio::test]
async fn overrides_replace_the_defaults() {
    let mut s = Counted;
    let c = call("getCounters", &[]);
    let want = encode_map_reply(
        &c.header,
        ttype::I64,
        [(&b"a:received good"[..], 3)].into_iter(),
        |w, v| w.i64(v),
    );
    assert_eq!(answer(&mut s, c).await, Some(want));
    let c = call("getCounter", &[b"four"]);
    let want = encode_i64_reply(&c.header, 4);
    assert_eq!(answer(&mut s, c).await, Some(want));
    let c = call("getOptions", &[]);
    let want = encode_map_reply(
        &c.header,
        ttype::STRING,
        [(&b"k"[..], &b"v"[..])].into_iter(),
        |w, v| w.binary(v),
    );
    assert_eq!(answer(&mut s, c).await, Some(want));
    let c = call("getStatus", &[]);
    let want = encode_i32_reply(&c.header, FbStatus::Warning as i32);
    assert_eq!(answer(&mut s, c).await, Some(want));
}

#[tokio::test]
async fn log_calls_reach_the_service_and_get_its_code() {
    let entries = vec![LogEntry {
        category: Bytes::from_static(b"c"),
        message: Bytes::from_static(b"m\n"),
    }];
    let c = decode_call(encode_log_call(HeaderStyle::Unversioned, &entries)).unwrap();
    let mut s = Minimal::default();
    let want = encode_log_reply(&c.header, ResultCode::Ok);
    assert_eq!(answer(&mut s, c.clone()).await, Some(want));
    assert_eq!(s.logged, entries);
    let want = encode_log_reply(&c.header, ResultCode::TryLater);
    assert_eq!(answer(&mut Counted, c).await, Some(want));
}

#[tokio::test]
async fn a_refused_log_is_an_application_exception_and_nothing_is_logged() {
    let entries = vec![
        LogEntry {
            category: Bytes::from_static(b"c"),
            message: Bytes::from_static(b"m\n"),
        },
        LogEntry {
            category: Bytes::from_static(b"secret"),
            message: Bytes::from_static(b"m\n"),
        },
    ];
    let c = decode_call(encode_log_call(HeaderStyle::Unversioned, &entries)).unwrap();
    let mut s = Minimal::default();
    let e = exception(answer(&mut s, c).await.unwrap());
    assert_eq!(e.kind, exception_kind::UNKNOWN);
    assert_eq!(e.message, "may not write category secret");
    assert!(s.logged.is_empty());
}

#[tokio::test]
async fn replies_are_framed_in_call_order() {
    let (mut client, server) = duplex(1 << 16);
    let names = ["getName", "getVersion", "aliveSince"];
    for name in names {
        client
            .write_all(&framed(&encode_string_call(HeaderStyle::Strict, name, &[])))
            .await
            .unwrap();
    }
    drop(client.shutdown().await);
    let mut conn = ServerConnection::new(server, limits(1024));
    let mut s = Minimal::default();
    conn.serve(&mut s, &CancellationToken::new()).await.unwrap();
    for name in names {
        let reply = read_reply(&mut client).await;
        let h = MessageHeader::read(&mut Reader::new(reply)).unwrap();
        assert_eq!(
            (h.name.as_str(), h.message_type),
            (name, message_type::REPLY)
        );
    }
}

#[tokio::test]
async fn a_malformed_call_closes_the_connection_unanswered() {
    let (mut client, server) = duplex(1 << 16);
    client
        .write_all(&framed(b"\x80\x01\x00\x01garbage"))
        .await
        .unwrap();
    let mut conn = ServerConnection::new(server, limits(1024));
    let r = conn
        .serve(&mut Minimal::default(), &CancellationToken::new())
        .await;
    assert!(matches!(r, Err(ServeError::Call(_))), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string().split(':').next(),
        Some("malformed call")
    );
    drop(conn);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "no reply to a malformed call");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_buffering() {
    let (mut client, server) = duplex(1 << 16);
    client.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    let mut conn = ServerConnection::new(server, limits(1024));
    let r = conn
        .serve(&mut Minimal::default(), &CancellationToken::new())
        .await;
    assert!(
        matches!(r, Err(ServeError::Frame(FrameError::TooLarge { .. }))),
        "{r:?}"
    );
    assert_eq!(conn.limits().memory.available_permits(), 1024);
}

/// A client that sends calls but never reads the replies is dropped after the reply timeout,
/// instead of holding the connection (and its frame memory) forever.
#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_its_replies_is_dropped() {
    // Room for a few replies, then writes block.
    let (mut client, server) = duplex(256);
    let call = framed(&encode_string_call(HeaderStyle::Strict, "getName", &[]));
    let serving = tokio::spawn(async move {
        let mut conn = ServerConnection::new(server, limits(1024));
        let started = tokio::time::Instant::now();
        let r = conn
            .serve(&mut Minimal::default(), &CancellationToken::new())
            .await;
        (r, started.elapsed())
    });
    // Writes until the server stops reading (blocked on a reply), then fail once it is gone.
    for _ in 0..100 {
        if client.write_all(&call).await.is_err() {
            break;
        }
    }
    let (r, took) = serving.await.unwrap();
    assert!(
        matches!(r, Err(ServeError::Reply(ReplyError::Timeout(t))) if t == REPLY_TIMEOUT),
        "{r:?}"
    );
    assert!(took >= REPLY_TIMEOUT);
}

#[tokio::test]
async fn the_service_can_close_after_a_reply() {
    let (mut client, server) = duplex(1 << 16);
    let call = framed(&encode_string_call(HeaderStyle::Strict, "getName", &[]));
    client.write_all(&call).await.unwrap();
    client.write_all(&call).await.unwrap();
    let mut conn = ServerConnection::new(server, limits(1024));
    let mut s = Minimal {
        close: true,
        ..Minimal::default()
    };
    conn.serve(&mut s, &CancellationToken::new()).await.unwrap();
    drop(conn);
    read_reply(&mut client).await;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "the second call was not answered");
}

#[tokio::test]
async fn shutdown_stops_reading_calls() {
    let (_client, server) = duplex(64);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let mut conn = ServerConnection::new(server, limits(1024));
    conn.serve(&mut Minimal::default(), &shutdown)
        .await
        .unwrap();
}

#[tokio::test]
async fn peeked_bytes_start_the_next_frame_unless_skipped() {
    let (mut client, server) = duplex(1 << 16);
    client.write_all(b"MAGI").await.unwrap();
    client.write_all(&framed(b"abc")).await.unwrap();
    client.write_all(&framed(b"de")).await.unwrap();
    let mut conn = ServerConnection::new(server, limits(1024));
    assert_eq!(conn.peek_start().await.unwrap(), Some(*b"MAGI"));
    assert_eq!(conn.peek_start().await.unwrap(), Some(*b"MAGI"));
    conn.skip_start();
    assert_eq!(conn.peek_start().await.unwrap(), Some(3u32.to_be_bytes()));
    let (frame, _memory) = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(&frame[..], b"abc");
    let (frame, _memory) = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(&frame[..], b"de");
    drop(client);
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn frame_memory_is_held_until_released() {
    let (mut client, server) = duplex(1 << 16);
    client.write_all(&framed(&[7u8; 100])).await.unwrap();
    let mut conn = ServerConnection::new(server, ServerLimits::new(100, 100, None));
    let frame = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(conn.limits().memory.available_permits(), 0);
    drop(frame);
    assert_eq!(conn.limits().memory.available_permits(), 100);
}

#[test]
fn limits_budget_holds_at_least_one_frame() {
    assert_eq!(
        ServerLimits::new(1000, 10, None).memory.available_permits(),
        1000
    );
    assert_eq!(ServerLimits::new(0, 0, None).memory.available_permits(), 1);
    let huge = ServerLimits::new(usize::MAX, usize::MAX, None);
    assert_eq!(huge.memory.available_permits(), u32::MAX as usize);
}

fn id(p: u8, start: u64) -> Option<EntryId> {
    Some(EntryId {
        producer: ProducerId([p; 16]),
        start,
        end: start + 1,
    })
}

/// A group as (category, messages, ids).
type Row<'a> = (&'a [u8], Vec<&'a [u8]>, Vec<Option<EntryId>>);

#[test]
fn groups_keep_first_appearance_order_messages_and_ids() {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let groups = group_by_category([
        (b("web"), b("1"), id(1, 0)),
        (b("web"), b("2"), None),
        (b("db"), b("3"), id(2, 5)),
        (b("web"), b("4"), id(1, 1)),
        (b(""), b("5"), None),
        (b("db"), b("6"), None),
    ]);
    let got: Vec<Row> = groups
        .iter()
        .map(|g| {
            let m = g.messages.iter().map(|m| &m[..]).collect();
            (&g.category[..], m, g.ids.clone())
        })
        .collect();
    let want: Vec<Row> = vec![
        (
            b"web",
            vec![b"1", b"2", b"4"],
            vec![id(1, 0), None, id(1, 1)],
        ),
        (b"db", vec![b"3", b"6"], vec![id(2, 5), None]),
        (b"", vec![b"5"], vec![None]),
    ];
    assert_eq!(got, want);
    assert!(group_by_category(std::iter::empty()).is_empty());
}

#[test]
fn thrift_entries_have_no_ids() {
    let e = LogEntry {
        category: Bytes::from_static(b"c"),
        message: Bytes::from_static(b"m"),
    };
    let groups = group_by_category(thrift_entries(vec![e.clone(), e]));
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].ids, vec![None, None]);
}

/// `wait_start` may be cancelled (a server reading ahead races it against answers due) without
/// losing the bytes it read: the frame is read whole afterwards.
#[tokio::test]
async fn a_cancelled_wait_for_a_frame_start_loses_nothing() {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let mut conn = ServerConnection::new(server, ServerLimits::new(1 << 20, 1 << 20, None));
    let frame = b"\x00\x00\x00\x05hello";
    client.write_all(&frame[..2]).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(50), conn.wait_start()).await;
    assert!(waited.is_err(), "only half a frame start was sent");
    client.write_all(&frame[2..]).await.unwrap();
    let (payload, _memory) = conn.read_frame().await.unwrap().expect("a frame");
    assert_eq!(&payload[..], b"hello");
    drop(client);
    assert!(!conn.wait_start().await.unwrap(), "a clean end of stream");
}
