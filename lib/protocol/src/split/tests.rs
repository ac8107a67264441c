use super::*;
use crate::{decode_call, ProducerId, Request};
use std::sync::atomic::{AtomicUsize, Ordering};

fn id(start: u64, end: u64) -> Option<EntryId> {
    Some(EntryId {
        producer: ProducerId([3; 16]),
        start,
        end,
    })
}

/// Messages of the given lengths, each with an id continuing the last.
fn body(lens: &[usize]) -> (Bytes, Vec<Entry>) {
    let mut b = BatchBuilder::new();
    let mut want = Vec::new();
    let mut at = 0;
    for (i, &len) in lens.iter().enumerate() {
        let mut m = format!("{i:05}").into_bytes();
        m.resize(len.max(5), b'a' + (i % 26) as u8);
        let e = Entry {
            category: Bytes::from_static(b"cat"),
            message: m.into(),
            id: id(at, at + len as u64 + 1),
        };
        at += len as u64 + 1;
        b.push(&e.category, &e.message, e.id);
        want.push(e);
    }
    (b.finish(), want)
}

fn native_entries(parts: &[Bytes], limits: Limits) -> Vec<Entry> {
    parts
        .iter()
        .flat_map(|p| {
            assert!(
                p.len() + BATCH_FRAME_OVERHEAD <= limits.max_frame,
                "{}",
                p.len()
            );
            native::decode_body(p.clone()).unwrap()
        })
        .collect()
}

#[test]
fn a_body_that_fits_is_sent_as_it_is() {
    let (b, _) = body(&[100, 200, 300]);
    let s = split_native(&b, Limits::frame(4096), "s").unwrap();
    assert_eq!(s.parts.len(), 1);
    assert_eq!(s.parts[0].as_ptr(), b.as_ptr(), "not re-encoded");
    assert!(s.oversize.is_empty());
}

#[test]
fn a_body_over_the_frame_is_cut_into_parts_that_fit_keeping_order_and_ids() {
    let lens: Vec<usize> = (0..500).map(|i| 50 + (i * 37) % 900).collect();
    let (b, want) = body(&lens);
    let limits = Limits::frame(4096);
    let s = split_native(&b, limits, "s").unwrap();
    assert!(s.parts.len() > 50, "{} parts", s.parts.len());
    assert!(s.oversize.is_empty());
    assert_eq!(native_entries(&s.parts, limits), want);
}

#[test]
fn a_message_that_fits_no_frame_is_taken_out_and_the_rest_kept_in_order() {
    let (b, mut want) = body(&[100, 5000, 100, 300]);
    let limits = Limits::frame(2048);
    let s = split_native(&b, limits, "up:1").unwrap();
    let big = want.remove(1);
    assert_eq!(native_entries(&s.parts, limits), want);
    assert_eq!(
        s.oversize,
        vec![Oversize {
            server: "up:1".into(),
            category: big.category,
            message: big.message,
            id: big.id,
            limit: native::max_message(2048, 3),
        }]
    );
}

#[test]
fn the_advertised_max_message_bounds_messages_below_the_frame() {
    let (b, mut want) = body(&[100, 700, 100]);
    let limits = Limits {
        max_frame: 1 << 20,
        max_message: 500,
        runs: false,
    };
    let s = split_native(&b, limits, "s").unwrap();
    let big = want.remove(1);
    assert_eq!(native_entries(&s.parts, limits), want);
    assert_eq!(s.oversize.len(), 1);
    assert_eq!(
        (s.oversize[0].message.len(), s.oversize[0].limit),
        (big.message.len(), 500)
    );
}

#[test]
fn thrift_calls_fit_the_frame_too() {
    let lens: Vec<usize> = (0..300)
        .map(|i| 10 + (i * 53) % 700)
        .chain([9000])
        .collect();
    let (b, mut want) = body(&lens);
    let limits = Limits::frame(3000);
    let s = split_thrift(&b, limits, "s").unwrap();
    let mut got = Vec::new();
    for call in &s.parts {
        assert!(call.len() <= limits.max_frame, "{}", call.len());
        let Request::Log(entries) = decode_call(call.clone()).unwrap().request else {
            panic!("not a Log call");
        };
        got.extend(entries.into_iter().map(|e| e.message));
    }
    let big = want.pop().unwrap();
    let want: Vec<Bytes> = want.into_iter().map(|e| e.message).collect();
    assert_eq!(got, want);
    assert_eq!(s.oversize.len(), 1);
    assert_eq!(s.oversize[0].message, big.message);
    assert!(s.oversize[0].limit < 3000 && s.oversize[0].limit > 2900);
}

#[test]
fn limits_from_a_welcome_stay_within_the_clients_own() {
    let w = Welcome {
        version: native::VERSION,
        compression: native::Compression::None,
        max_frame: 16384,
        max_message: Some(16000),
        runs: false,
    };
    assert_eq!(
        Limits::from_welcome(&w, 1 << 24),
        Limits {
            max_frame: 16384,
            max_message: 16000,
            runs: false,
        }
    );
    assert_eq!(Limits::from_welcome(&w, 8192), Limits::frame(8192));
    let old = Welcome {
        max_message: None,
        runs: false,
        ..w
    };
    assert_eq!(Limits::from_welcome(&old, 1 << 24), Limits::frame(16384));
}

#[tokio::test]
async fn a_sink_is_handed_a_message_with_an_id_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let sink = OversizeSink::new(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let o = |id| Oversize {
        server: "s".into(),
        category: Bytes::from_static(b"c"),
        message: Bytes::from_static(b"m"),
        id,
        limit: 0,
    };
    for _ in 0..3 {
        sink.take(o(id(0, 1))).await.unwrap();
        sink.take(o(None)).await.unwrap();
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "once with the id, every time without"
    );
    // Many others later, the first one is forgotten (the memory is bounded).
    for i in 1..=RECENT_IDS as u64 {
        sink.take(o(id(i, i + 1))).await.unwrap();
    }
    sink.take(o(id(0, 1))).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4 + RECENT_IDS + 1);
}
