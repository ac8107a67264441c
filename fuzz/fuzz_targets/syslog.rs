//! Feeds arbitrary bytes to `scribe_syslog`: through the RFC 6587 `Deframer` (as one stream cut
//! into reads whose sizes come from the first byte, with a small `max_frame` from the second),
//! and each frame, and the whole input, to `parse` and the default `Classifier`. Nothing may
//! panic; no frame is longer than `max_frame`; the buffer never holds more than `max_frame`
//! plus one read; every category a classification gives is a valid category name.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scribe_syslog::{parse, Classifier, Deframer, Frame};

fuzz_target!(|data: &[u8]| {
    let (Some(&chunk), Some(&max)) = (data.first(), data.get(1)) else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;
    let max = usize::from(max) + 1;
    let body = &data[2..];
    let classifier = Classifier::default();
    let check = |m: Bytes| {
        let _ = parse(&m);
        let c = classifier.classify(m);
        assert!(c.category.parse::<scribe_archive::Category>().is_ok(), "{:?}", c.category);
    };
    let mut d = Deframer::new(max);
    for part in body.chunks(chunk) {
        d.buffer().extend_from_slice(part);
        assert!(d.pending() <= max + 2 * chunk + 16, "{} pending", d.pending());
        loop {
            match d.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    assert!(m.len() <= max);
                    check(m);
                }
                Ok(Some(Frame::Oversize(_))) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if let Some(m) = d.finish() {
        check(m);
    }
    check(Bytes::copy_from_slice(body));
});
