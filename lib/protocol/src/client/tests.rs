//! A client against servers of either age: a native server whose `WELCOME` has `max_message`
//! and one whose `WELCOME` predates it, and a Thrift server that cannot say its limit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::codec::Framed;

use super::*;
use crate::native::{decode_body, BatchBuilder};
use crate::scribe::encode_log_reply;
use crate::{decode_call, Request};

/// What a mock server saw: each frame's length and the messages, in order.
#[derive(Default)]
struct Seen {
    frames: Vec<usize>,
    messages: Vec<Bytes>,
    /// Per frame, whether its body had runs of lines.
    runs: Vec<bool>,
}

/// A native server that answers `HELLO` with `welcome` (as encoded: an older server's
/// layout when given) and `OK`s every batch, reading frames up to `max_frame`.
async fn native_server(welcome: Bytes, max_frame: usize) -> (String, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut magic = [0u8; 4];
        stream.read_exact(&mut magic).await.unwrap();
        let mut framed = Framed::new(stream, frame::codec(max_frame));
        let _hello = framed.next().await.unwrap().unwrap();
        framed.get_mut().write_all(&welcome).await.unwrap();
        while let Some(Ok(f)) = framed.next().await {
            let bf = BatchFrame::decode(f.freeze()).unwrap();
            let n = bf.batch;
            {
                let mut s = seen.lock().unwrap();
                s.frames
                    .push(bf.payload.len() + native::BATCH_FRAME_OVERHEAD);
                let body = bf.into_body(max_frame).unwrap();
                s.runs.push(native::has_runs(&body));
                s.messages
                    .extend(decode_body(body).unwrap().into_iter().map(|e| e.message));
            }
            let ack = Ack {
                batch: n,
                status: AckStatus::Ok,
                message: Bytes::new(),
            };
            framed.get_mut().write_all(&ack.encode()).await.unwrap();
        }
    });
    (addr, out)
}

fn welcome(max_frame: u32, max_message: Option<u32>) -> Bytes {
    welcome_runs(max_frame, max_message, false)
}

fn welcome_runs(max_frame: u32, max_message: Option<u32>, runs: bool) -> Bytes {
    Welcome {
        version: native::VERSION,
        compression: Compression::None,
        max_frame,
        max_message,
        runs,
    }
    .encode()
}

/// A `WELCOME` laid out as servers before `max_message` sent it.
fn old_welcome(max_frame: u32) -> Bytes {
    let mut f = 8u32.to_be_bytes().to_vec();
    f.push(native::kind::WELCOME);
    f.extend_from_slice(&native::VERSION.to_be_bytes());
    f.push(0);
    f.extend_from_slice(&max_frame.to_be_bytes());
    f.into()
}

/// 300 messages of 100 bytes, with one of `big` bytes at index 150.
fn body_with(big: usize) -> (Bytes, Vec<Bytes>, Bytes) {
    let mut b = BatchBuilder::new();
    let mut small = Vec::new();
    let mut big_msg = Bytes::new();
    for i in 0..300 {
        if i == 150 {
            big_msg = Bytes::from(vec![b'B'; big]);
            b.push(b"c", &big_msg, None);
        }
        let m = Bytes::from(format!("{i:099}"));
        b.push(b"c", &m, None);
        small.push(m);
    }
    (b.finish(), small, big_msg)
}

/// A sink that keeps what it is handed.
fn keeping() -> (OversizeSink, Arc<Mutex<Vec<Oversize>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let k = kept.clone();
    let sink = OversizeSink::new(move |o| {
        k.lock().unwrap().push(o);
        Box::pin(async { Ok(()) })
    });
    (sink, kept)
}

fn opts(sink: Option<OversizeSink>) -> ClientOptions {
    ClientOptions {
        protocol: Protocol::Native,
        oversize: sink,
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn batches_are_cut_to_an_extended_welcome_and_too_long_messages_set_aside() {
    let (addr, seen) = native_server(welcome(4096, Some(1000)), 4096).await;
    let (sink, kept) = keeping();
    let mut c = Client::open(&addr, opts(Some(sink))).await.unwrap();
    assert_eq!(
        c.limits(),
        Limits {
            max_frame: 4096,
            max_message: 1000,
            runs: false,
        }
    );
    // Fits the frame, but not the advertised message limit.
    let (body, small, big) = body_with(1500);
    assert_eq!(c.log_body(&body).await.unwrap(), ResultCode::Ok);
    let s = seen.lock().unwrap();
    assert!(
        s.frames.len() > 5 && s.frames.iter().all(|&f| f <= 4096),
        "{:?}",
        s.frames
    );
    assert_eq!(s.messages, small);
    let kept = kept.lock().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((&kept[0].message, kept[0].limit), (&big, 1000));
}

#[tokio::test]
async fn a_welcome_from_an_older_server_limits_by_its_frame() {
    let (addr, seen) = native_server(old_welcome(4096), 4096).await;
    let (sink, kept) = keeping();
    let mut c = Client::open(&addr, opts(Some(sink))).await.unwrap();
    assert_eq!(c.limits(), Limits::frame(4096));
    // 1500 bytes fit the older server's frame: only the frame bounds a message.
    let (body, mut small, big) = body_with(1500);
    assert_eq!(c.log_body(&body).await.unwrap(), ResultCode::Ok);
    small.insert(150, big);
    let s = seen.lock().unwrap();
    assert!(s.frames.iter().all(|&f| f <= 4096), "{:?}", s.frames);
    assert_eq!(s.messages, small);
    assert!(kept.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_sink_a_message_too_large_fails_its_batch_and_says_why() {
    let (addr, seen) = native_server(welcome(4096, Some(4000)), 4096).await;
    let mut c = Client::open(&addr, opts(None)).await.unwrap();
    let (body, _, _) = body_with(5000);
    let e = c.log_body(&body).await.unwrap_err();
    assert!(matches!(e, ClientError::Oversize { len: 5000, .. }), "{e}");
    assert!(e.to_string().contains("at most 4000 bytes"), "{e}");
    assert!(seen.lock().unwrap().messages.is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_batch_of_nothing_but_oversized_messages_is_answered_without_the_server() {
    let (addr, seen) = native_server(welcome(4096, None), 4096).await;
    let (sink, kept) = keeping();
    let mut c = Client::open(&addr, opts(Some(sink))).await.unwrap();
    let mut b = BatchBuilder::new();
    b.push(b"c", &[b'x'; 9000], None);
    assert_eq!(c.log_body(&b.finish()).await.unwrap(), ResultCode::Ok);
    assert_eq!(kept.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap().frames.is_empty());
}

/// A Thrift server without fb303, reading frames up to `max_frame`; it notes whether a
/// second call was already waiting when it answered one.
async fn thrift_server(max_frame: usize) -> (String, Arc<Mutex<Seen>>, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let pipelined = Arc::new(AtomicBool::new(false));
    let (out, p) = (seen.clone(), pipelined.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(stream, frame::codec(max_frame));
            while let Some(Ok(f)) = framed.next().await {
                let len = f.len();
                let Ok(call) = decode_call(f.freeze()) else {
                    break; // the native magic: hang up, as Scribe does
                };
                let Request::Log(entries) = call.request else {
                    let e = crate::message::encode_exception(
                        &call.header,
                        crate::message::exception_kind::UNKNOWN_METHOD,
                        "no",
                    );
                    let _ = framed.send(e).await;
                    continue;
                };
                let mut peek = [0u8; 1];
                let next = framed.get_ref().peek(&mut peek);
                let waiting = tokio::time::timeout(Duration::from_millis(20), next).await;
                if !framed.read_buffer().is_empty() || matches!(waiting, Ok(Ok(1))) {
                    p.store(true, Ordering::SeqCst);
                }
                {
                    let mut s = seen.lock().unwrap();
                    s.frames.push(len);
                    s.messages.extend(entries.into_iter().map(|e| e.message));
                }
                let _ = framed
                    .send(encode_log_reply(&call.header, ResultCode::Ok))
                    .await;
            }
        }
    });
    (addr, out, pipelined)
}

#[tokio::test]
async fn over_thrift_the_configured_frame_bounds_each_call_sent_one_at_a_time() {
    let (addr, seen, pipelined) = thrift_server(4096).await;
    let (sink, kept) = keeping();
    let o = ClientOptions {
        max_frame: 4096,
        ..opts(Some(sink))
    };
    let mut c = Client::open(
        &addr,
        ClientOptions {
            protocol: Protocol::Auto,
            ..o
        },
    )
    .await
    .unwrap();
    assert_eq!(c.wire(), Wire::Thrift { pipelines: false });
    let (body, small, big) = body_with(5000);
    assert_eq!(c.log_body(&body).await.unwrap(), ResultCode::Ok);
    let s = seen.lock().unwrap();
    assert!(
        s.frames.len() > 5 && s.frames.iter().all(|&f| f <= 4096),
        "{:?}",
        s.frames
    );
    assert_eq!(s.messages, small);
    assert!(
        !pipelined.load(Ordering::SeqCst),
        "parts of a batch were pipelined"
    );
    assert_eq!(kept.lock().unwrap()[0].message, big);
}

#[tokio::test]
async fn a_body_with_runs_goes_as_is_only_to_a_server_that_reads_runs() {
    let lines: Vec<u8> = (0..100)
        .flat_map(|i| format!("{i:09}\n").into_bytes())
        .collect();
    let want: Vec<Bytes> = lines.chunks(10).map(Bytes::copy_from_slice).collect();
    let mut b = BatchBuilder::with_runs(lines.len());
    b.push_run(b"c", &lines, 100, None);
    let body = b.finish();
    for (runs, welcome) in [
        (true, welcome_runs(1 << 20, Some(1 << 19), true)),
        (false, welcome_runs(1 << 20, Some(1 << 19), false)),
        (false, old_welcome(1 << 20)),
    ] {
        let (addr, seen) = native_server(welcome, 1 << 20).await;
        let mut c = Client::open(&addr, opts(None)).await.unwrap();
        assert_eq!(c.limits().runs, runs);
        assert_eq!(c.log_body(&body).await.unwrap(), ResultCode::Ok);
        let s = seen.lock().unwrap();
        assert_eq!(s.runs, [runs], "sent with runs only where they are read");
        assert_eq!(s.messages, want);
    }
}
