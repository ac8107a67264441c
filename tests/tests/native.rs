//! scribed's native protocol over real sockets: the handshake on the Thrift port, numbered
//! pipelined acknowledgements, entries recognised by id when sent again (on another
//! connection, after a restart), gzip bodies, and refusals that close the connection.

use bytes::Bytes;
use pipeline_tests::{get_counter, read_category, RawConn, Scribed};
use scribe_protocol::native::{
    max_message, Ack, AckStatus, BatchBuilder, BatchFrame, Compression, Hello, Welcome, VERSION,
};
use scribe_protocol::{EntryId, ProducerId};

fn start(tmp: &tempfile::TempDir, extra: &[&str]) -> Scribed {
    Scribed::start(&tmp.path().join("data"), extra)
}

/// Opens a native connection (magic + HELLO) and checks the WELCOME.
fn open(addr: &str, gzip: bool) -> RawConn {
    let mut conn = RawConn::connect(addr);
    let hello = Hello {
        version: VERSION,
        gzip,
        name: Bytes::from_static(b"native-test"),
        token: None,
    };
    conn.send_raw(&hello.encode()).unwrap();
    let welcome = Welcome::decode(conn.recv().expect("a WELCOME")).unwrap();
    assert_eq!(welcome.version, VERSION);
    // The limits a client cuts its batches to: the longest message fits one frame with the
    // longest category scribed accepts.
    assert_eq!(
        welcome.max_message,
        Some(max_message(welcome.max_frame as usize, 200) as u32)
    );
    let want = if gzip {
        Compression::Gzip
    } else {
        Compression::None
    };
    assert_eq!(welcome.compression, want);
    conn
}

/// A body of lines `from..to` of one producer, each line's range its byte offsets in a
/// notional file of 10-byte lines.
fn body(producer: ProducerId, from: u64, to: u64) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in from..to {
        let id = EntryId {
            producer,
            start: i * 10,
            end: (i + 1) * 10,
        };
        b.push(b"web", format!("line {i:04}\n").as_bytes(), Some(id));
    }
    b.finish()
}

fn ack(conn: &mut RawConn) -> Ack {
    Ack::decode(conn.recv().expect("an ACK")).unwrap()
}

fn lines(data: &std::path::Path) -> Vec<String> {
    String::from_utf8(read_category(data, "web"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn expected(from: u64, to: u64) -> Vec<String> {
    (from..to).map(|i| format!("line {i:04}")).collect()
}

#[test]
fn pipelined_batches_are_acked_in_order_and_resent_entries_are_written_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]);
    let data = tmp.path().join("data");
    let p = ProducerId::random();

    let mut conn = open(&server.addr, false);
    // Three batches in flight before reading any ACK.
    for (n, (from, to)) in [(0, 10), (10, 20), (20, 30)].into_iter().enumerate() {
        conn.send_raw(&BatchFrame::encode(
            n as u64,
            &body(p, from, to),
            Compression::None,
        ))
        .unwrap();
    }
    for n in 0..3 {
        let a = ack(&mut conn);
        assert_eq!((a.batch, a.status), (n, AckStatus::Ok));
    }
    drop(conn);

    // A client that never saw those ACKs sends everything again on a new connection, cut
    // into different batches, plus new lines: only the new lines are written.
    let mut conn = open(&server.addr, false);
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 25), Compression::None))
        .unwrap();
    conn.send_raw(&BatchFrame::encode(1, &body(p, 25, 40), Compression::None))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    assert_eq!(lines(&data), expected(0, 40));
    assert_eq!(
        get_counter(&server.addr, "scribe_overall:duplicates skipped"),
        30
    );
}

#[test]
fn committed_ids_survive_a_kill_and_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = ProducerId::random();
    let server = start(&tmp, &[]);
    let addr = server.addr.clone();
    let mut conn = open(&addr, false);
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 50), Compression::None))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    server.kill9();

    let server = Scribed::launch(
        &data,
        pipeline_tests::Launch {
            listen: Some(addr.clone()),
            ..pipeline_tests::Launch::default()
        },
    );
    let mut conn = open(&server.addr, false);
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 60), Compression::None))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    assert_eq!(lines(&data), expected(0, 60));
}

#[test]
fn gzip_bodies_are_inflated_and_written() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]);
    let mut conn = open(&server.addr, true);
    let p = ProducerId::random();
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 500), Compression::Gzip))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    assert_eq!(lines(&tmp.path().join("data")), expected(0, 500));
}

#[test]
fn a_malformed_batch_gets_error_and_nothing_behind_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]);
    let p = ProducerId::random();
    let mut conn = open(&server.addr, false);
    // A body whose declared length disagrees with what follows, then a good batch behind it.
    let mut bad = BatchFrame::encode(0, &body(p, 0, 5), Compression::None).to_vec();
    let at = 4 + 1 + 8 + 1;
    bad[at..at + 4].copy_from_slice(&1_000_000u32.to_be_bytes());
    conn.send_raw(&bad).unwrap();
    conn.send_raw(&BatchFrame::encode(1, &body(p, 5, 10), Compression::None))
        .unwrap();
    let a = ack(&mut conn);
    assert_eq!(a.status, AckStatus::Error, "{a:?}");
    assert!(
        conn.recv().is_none(),
        "the connection is closed after a refusal"
    );
    assert!(read_category(&tmp.path().join("data"), "web").is_empty());

    // A gzip body that inflates past its declared length is refused the same way.
    let mut conn = open(&server.addr, true);
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let mut lie = BatchFrame::encode(0, &big, Compression::Gzip).to_vec();
    lie[at..at + 4].copy_from_slice(&100u32.to_be_bytes());
    conn.send_raw(&lie).unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Error);
    // The server is fine.
    let mut conn = open(&server.addr, false);
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 3), Compression::None))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
}

#[test]
fn the_magic_without_a_hello_and_a_wrong_version_are_turned_away() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]);
    // A frame that is not a HELLO: closed without an answer.
    let mut conn = RawConn::connect(&server.addr);
    let mut junk = scribe_protocol::native::MAGIC.to_vec();
    junk.extend_from_slice(&[0, 0, 0, 2, 9, 9]);
    conn.send_raw(&junk).unwrap();
    assert!(conn.recv().is_none());
    // Another version: the WELCOME says ours, then the connection closes.
    let mut conn = RawConn::connect(&server.addr);
    let hello = Hello {
        version: VERSION + 1,
        gzip: false,
        name: Bytes::new(),
        token: None,
    };
    conn.send_raw(&hello.encode()).unwrap();
    let w = Welcome::decode(conn.recv().unwrap()).unwrap();
    assert_eq!(w.version, VERSION);
    assert!(conn.recv().is_none());
}

#[test]
fn the_welcome_advertises_the_frame_and_message_limits_and_an_older_client_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &["--max-frame", "64K"]);
    let mut conn = RawConn::connect(&server.addr);
    let hello = Hello {
        version: VERSION,
        gzip: false,
        name: Bytes::from_static(b"older-client"),
        token: None,
    };
    conn.send_raw(&hello.encode()).unwrap();
    let frame = conn.recv().expect("a WELCOME");
    // A client of the first version reads version, compression and max frame, in that
    // place, and nothing after them.
    assert_eq!(frame[0], scribe_protocol::native::kind::WELCOME);
    assert_eq!(u16::from_be_bytes([frame[1], frame[2]]), VERSION);
    assert_eq!(frame[3], 0);
    assert_eq!(
        u32::from_be_bytes(frame[4..8].try_into().unwrap()),
        64 << 10
    );
    let w = Welcome::decode(frame).unwrap();
    assert_eq!(w.max_message, Some(max_message(64 << 10, 200) as u32));
    // The connection goes on as it always did.
    let p = ProducerId::random();
    conn.send_raw(&BatchFrame::encode(0, &body(p, 0, 3), Compression::None))
        .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Ok);
}

/// Lines `from..to` as in [`body`], as one run.
fn run_body(producer: ProducerId, from: u64, to: u64) -> Bytes {
    let lines: Vec<u8> = (from..to)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let id = EntryId {
        producer,
        start: from * 10,
        end: to * 10,
    };
    let mut b = BatchBuilder::with_runs(lines.len());
    b.push_run(b"web", &lines, (to - from) as usize, Some(id));
    let body = b.finish();
    assert!(scribe_protocol::native::has_runs(&body));
    body
}

#[test]
fn runs_of_lines_are_written_once_byte_exact_and_malformed_ones_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &["--max-size", "700"]);
    let p = ProducerId::random();
    let mut conn = open(&server.addr, false);
    // A run, the same run again, a run that overlaps it, and one cut differently: each line
    // once, in order, rotating every 700 bytes (inside runs too).
    let batches = [
        run_body(p, 0, 100),
        run_body(p, 0, 100),
        run_body(p, 50, 150),
        body(p, 140, 160),
        run_body(p, 155, 200),
    ];
    for (n, b) in batches.iter().enumerate() {
        conn.send_raw(&BatchFrame::encode(n as u64, b, Compression::None))
            .unwrap();
    }
    for _ in &batches {
        assert_eq!(ack(&mut conn).status, AckStatus::Ok);
    }
    let want: Vec<u8> = (0..200)
        .flat_map(|i| format!("line {i:04}\n").into_bytes())
        .collect();
    let data = tmp.path().join("data");
    assert_eq!(read_category(&data, "web"), want);
    let files = pipeline_tests::category_files(&data, "web");
    assert!(files.len() >= 2, "rotated: {files:?}");
    for f in &files {
        assert!(std::fs::metadata(f).unwrap().len() <= 700, "{f:?}");
    }

    // A run that does not end in a newline: ERROR, the connection closes, nothing behind it
    // is written. (Built by hand: a builder never makes one.)
    let mut bad = Vec::new();
    bad.extend_from_slice(&u32::MAX.to_be_bytes());
    bad.push(2);
    bad.extend_from_slice(&1u32.to_be_bytes());
    bad.extend_from_slice(&3u16.to_be_bytes());
    bad.extend_from_slice(b"web");
    bad.extend_from_slice(&0u32.to_be_bytes());
    bad.extend_from_slice(&1u32.to_be_bytes());
    bad.extend_from_slice(&[1, 0, 10]); // category 0 as a run, no producer, 10 bytes
    bad.extend_from_slice(b"no newline");
    let mut conn = open(&server.addr, false);
    conn.send_raw(&BatchFrame::encode(0, &Bytes::from(bad), Compression::None))
        .unwrap();
    conn.send_raw(&BatchFrame::encode(
        1,
        &run_body(p, 200, 210),
        Compression::None,
    ))
    .unwrap();
    assert_eq!(ack(&mut conn).status, AckStatus::Error);
    assert!(conn.recv().is_none());
    assert_eq!(read_category(&data, "web"), want);
}
