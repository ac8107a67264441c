//! scribed's Thrift surface, checked over real sockets: both header styles, many calls per
//! connection, fb303, oneway calls, unknown methods, and hostile frames.

use std::time::Duration;

use bytes::Bytes;
use pipeline_tests::{fb303_call, read_category, reply_value, RawConn, Scribed};
use scribe_protocol::message::{exception_kind, message_type, ApplicationException};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::thrift::{ttype, Reader};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};

fn entry(c: &str, m: &[u8]) -> LogEntry {
    LogEntry {
        category: Bytes::copy_from_slice(c.as_bytes()),
        message: Bytes::copy_from_slice(m),
    }
}

fn start() -> (tempfile::TempDir, Scribed) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Scribed::start(&tmp.path().join("data"), &[]);
    (tmp, server)
}

#[test]
fn replies_in_the_style_of_the_request_over_many_calls() {
    let (tmp, server) = start();
    let mut conn = RawConn::connect(&server.addr);
    let mut want = Vec::new();
    for i in 0..200 {
        let style = if i % 2 == 0 {
            HeaderStyle::Strict
        } else {
            HeaderStyle::Unversioned
        };
        let msg = format!("call {i}\n");
        want.extend_from_slice(msg.as_bytes());
        let reply = conn.call(&encode_log_call(style, &[entry("t", msg.as_bytes())]));
        let strict_reply = reply[..4] == [0x80, 0x01, 0x00, 0x02];
        assert_eq!(strict_reply, style == HeaderStyle::Strict, "call {i}");
        assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
    }
    // Log([]) is OK in both styles.
    for style in [HeaderStyle::Strict, HeaderStyle::Unversioned] {
        assert_eq!(
            decode_log_reply(conn.call(&encode_log_call(style, &[]))),
            Ok(ResultCode::Ok)
        );
    }
    assert_eq!(read_category(&tmp.path().join("data"), "t"), want);
}

#[test]
fn a_frame_sent_in_pieces_is_reassembled() {
    let (tmp, server) = start();
    let mut conn = RawConn::connect(&server.addr);
    let payload = encode_log_call(HeaderStyle::Unversioned, &[entry("p", b"pieces")]);
    let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    for piece in framed.chunks(3) {
        conn.send_raw(piece).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(decode_log_reply(conn.recv().unwrap()), Ok(ResultCode::Ok));
    assert_eq!(read_category(&tmp.path().join("data"), "p"), b"pieces\n");
}

#[test]
fn unknown_method_gets_an_exception_and_the_connection_stays_usable() {
    let (_tmp, server) = start();
    let mut conn = RawConn::connect(&server.addr);
    let reply = conn.call(&fb303_call("frobnicate", HeaderStyle::Strict, None));
    let mut r = Reader::new(reply);
    let h = scribe_protocol::message::MessageHeader::read(&mut r).unwrap();
    assert_eq!(h.message_type, message_type::EXCEPTION);
    assert_eq!(h.seqid, 9);
    let e = ApplicationException::read(&mut r).unwrap();
    assert_eq!(e.kind, exception_kind::UNKNOWN_METHOD);
    assert!(e.message.contains("frobnicate"));
    let reply = conn.call(&encode_log_call(HeaderStyle::Strict, &[entry("x", b"y")]));
    assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
}

#[test]
fn fb303_answers_like_scribe() {
    let (_tmp, server) = start();
    let mut conn = RawConn::connect(&server.addr);
    let string = |conn: &mut RawConn, name: &str| {
        let (h, ty, mut r) =
            reply_value(conn.call(&fb303_call(name, HeaderStyle::Unversioned, None)));
        assert_eq!((h.name.as_str(), ty), (name, ttype::STRING));
        r.read_binary().unwrap()
    };
    assert_eq!(&string(&mut conn, "getName")[..], b"scribed");
    assert!(!string(&mut conn, "getVersion").is_empty());

    let (_, ty, mut r) =
        reply_value(conn.call(&fb303_call("getStatus", HeaderStyle::Strict, None)));
    assert_eq!(ty, ttype::I32);
    assert_eq!(r.read_i32().unwrap(), 2, "ALIVE");

    let (_, ty, mut r) =
        reply_value(conn.call(&fb303_call("aliveSince", HeaderStyle::Strict, None)));
    assert_eq!(ty, ttype::I64);
    let since = r.read_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(since <= now && since > now - 600, "aliveSince {since}");

    // reinitialize is oneway: no reply, so the next reply on the wire is getName's.
    conn.send(&fb303_call("reinitialize", HeaderStyle::Unversioned, None));
    assert_eq!(&string(&mut conn, "getName")[..], b"scribed");

    conn.call(&encode_log_call(
        HeaderStyle::Strict,
        &[entry("cnt", b"1"), entry("cnt", b"2")],
    ));
    let (_, ty, mut r) =
        reply_value(conn.call(&fb303_call("getCounters", HeaderStyle::Strict, None)));
    assert_eq!(ty, ttype::MAP);
    assert_eq!(r.read_u8().unwrap(), ttype::STRING);
    assert_eq!(r.read_u8().unwrap(), ttype::I64);
    let n = r.read_i32().unwrap();
    let mut counters = std::collections::HashMap::new();
    for _ in 0..n {
        let k = String::from_utf8(r.read_binary().unwrap().to_vec()).unwrap();
        counters.insert(k, r.read_i64().unwrap());
    }
    assert_eq!(counters.get("cnt:received good"), Some(&2));
    assert_eq!(counters.get("scribe_overall:received good"), Some(&2));
}

#[test]
fn oversized_frame_closes_that_connection_only() {
    let (_tmp, server) = start();
    let mut bad = RawConn::connect(&server.addr);
    // Declares a 2 GiB frame; scribed must refuse without trying to buffer it.
    bad.send_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).unwrap();
    assert!(bad.recv().is_none(), "connection closed");

    let mut good = RawConn::connect(&server.addr);
    let reply = good.call(&encode_log_call(
        HeaderStyle::Strict,
        &[entry("ok", b"fine")],
    ));
    assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
    assert!(server.log_text().contains("unreadable frame"));
}

#[test]
fn malformed_calls_close_the_connection_and_lose_nothing_else() {
    let (tmp, server) = start();
    let valid = encode_log_call(HeaderStyle::Strict, &[entry("m", b"kept")]);
    let hostile: Vec<Vec<u8>> = vec![
        vec![],                             // empty frame
        vec![0x80, 0x02, 0, 1, 0, 0, 0, 0], // wrong version
        valid[..valid.len() - 3].to_vec(),  // truncated
        {
            // The list count (after the 15-byte strict header, the field header and the
            // element type) claims 2^31-1 entries in a 40-byte frame.
            let mut v = valid.to_vec();
            assert_eq!(&v[15..19], &[ttype::LIST, 0, 1, ttype::STRUCT]);
            v[19..23].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
            v
        },
        vec![0xff; 64],
    ];
    for h in &hostile {
        let mut c = RawConn::connect(&server.addr);
        c.send(h);
        assert!(
            c.recv().is_none(),
            "malformed call {h:02x?} must close the connection"
        );
    }
    let mut c = RawConn::connect(&server.addr);
    assert_eq!(decode_log_reply(c.call(&valid)), Ok(ResultCode::Ok));
    let stored = read_category(&tmp.path().join("data"), "m");
    assert!(stored.ends_with(b"kept\n"));
    assert!(server.stop().success(), "still exits cleanly");
}

/// Pipelines four batches against a rate limit of 10 messages/s: 4 + 4 fit, the third (4 more)
/// is refused, the fourth (1 message) would fit.
fn pipeline_against_rate_limit(close_on_try_later: bool) -> (Vec<Option<ResultCode>>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Scribed::start(&tmp.path().join("data"), &["--max-msg-per-second", "10"]);
    let mut conn = RawConn::connect(&server.addr);
    if close_on_try_later {
        use scribe_protocol::scribe::{decode_string_reply, encode_string_call};
        let set = encode_string_call(
            HeaderStyle::Unversioned,
            "setOption",
            &[b"scribed.close_on_try_later", b"1"],
        );
        assert_eq!(decode_string_reply(conn.call(&set), "setOption"), Ok(None));
    }
    let batch = |tag: &str, n: usize| {
        let entries: Vec<LogEntry> = (0..n)
            .map(|i| entry("p", format!("{tag}{i}").as_bytes()))
            .collect();
        encode_log_call(HeaderStyle::Unversioned, &entries)
    };
    for (tag, n) in [("a", 4), ("b", 4), ("c", 4), ("d", 1)] {
        conn.send(&batch(tag, n)); // all written before any reply is read
    }
    let replies = (0..4)
        .map(|_| conn.recv().map(|r| decode_log_reply(r).unwrap()))
        .collect();
    (replies, read_category(&tmp.path().join("data"), "p"))
}

#[test]
fn close_on_try_later_keeps_pipelined_batches_in_order() {
    let (replies, stored) = pipeline_against_rate_limit(true);
    assert_eq!(
        replies,
        vec![
            Some(ResultCode::Ok),
            Some(ResultCode::Ok),
            Some(ResultCode::TryLater),
            None
        ],
        "closed right after TRY_LATER"
    );
    assert_eq!(
        stored, b"a0\na1\na2\na3\nb0\nb1\nb2\nb3\n",
        "nothing behind c was written"
    );

    // Without the option (plain Scribe behaviour) d is written although c before it was
    // refused: the reordering that makes pipelining unsafe with other servers.
    let (replies, stored) = pipeline_against_rate_limit(false);
    assert_eq!(replies[2], Some(ResultCode::TryLater));
    assert_eq!(replies[3], Some(ResultCode::Ok));
    assert!(stored.ends_with(b"b3\nd0\n"));
}
