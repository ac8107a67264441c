//! Feeds arbitrary bytes to the native protocol's decoders: as a frame payload (kind byte
//! first: `HELLO`, `WELCOME`, `ACK`, or a `BATCH` whose body is inflated, under a 1 MiB cap,
//! and decoded) and as a bare batch body. They must never panic or allocate past the input
//! (or the cap), a decoded batch never holds more message and category bytes than its body,
//! and whatever decodes survives re-encoding: the encoders give back frames and bodies that
//! decode to the same values and entries (ids included).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scribe_protocol::native::{
    decode_body, kind, Ack, BatchBuilder, BatchFrame, Compression, Entry, Hello, Welcome,
};

/// The most a batch body may inflate to here (a server passes its frame limit).
const MAX_BODY: usize = 1 << 20;

/// Decodes `body`; when it decodes, checks the size bound and the round trip.
fn check_body(body: Bytes) {
    let len = body.len();
    let Ok(entries) = decode_body(body) else {
        return;
    };
    let bytes: usize = entries.iter().map(|e| e.message.len()).sum();
    assert!(bytes <= len, "{bytes} message bytes from a {len}-byte body");
    let mut b = BatchBuilder::new();
    for e in &entries {
        b.push(&e.category, &e.message, e.id);
    }
    let again: Vec<Entry> = decode_body(b.finish()).expect("a rebuilt body decodes");
    assert_eq!(again, entries);
}

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    match data.first().copied() {
        Some(kind::HELLO) => {
            if let Ok(h) = Hello::decode(frame.clone()) {
                // encode() = magic, length, payload.
                let again = Hello::decode(h.encode().slice(8..)).expect("re-encoded HELLO");
                assert_eq!(again, h);
            }
        }
        Some(kind::WELCOME) => {
            if let Ok(w) = Welcome::decode(frame.clone()) {
                let again = Welcome::decode(w.encode().slice(4..)).expect("re-encoded WELCOME");
                assert_eq!(again, w);
            }
        }
        Some(kind::ACK) => {
            if let Ok(a) = Ack::decode(frame.clone()) {
                let again = Ack::decode(a.encode().slice(4..)).expect("re-encoded ACK");
                assert_eq!(again, a);
            }
        }
        Some(kind::BATCH) => {
            if let Ok(f) = BatchFrame::decode(frame.clone()) {
                let batch = f.batch;
                if let Ok(body) = f.into_body(MAX_BODY) {
                    assert!(body.len() <= MAX_BODY);
                    let re = BatchFrame::encode(batch, &body, Compression::None);
                    let again = BatchFrame::decode(re.slice(4..)).expect("re-encoded BATCH");
                    assert_eq!((again.batch, &again.payload), (batch, &body));
                    check_body(body);
                }
            }
        }
        _ => {}
    }
    check_body(frame);
});
