//! Feeds arbitrary frame payloads to `decode_call`. It must never panic, never return more
//! message bytes than it was given, and a decoded `Log` call must survive re-encoding: encoding
//! its entries in the same header style and decoding again gives the same entries.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scribe_protocol::scribe::encode_log_call;
use scribe_protocol::{decode_call, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(call) = decode_call(Bytes::copy_from_slice(data)) else {
        return;
    };
    if let Request::Log(entries) = &call.request {
        let total: usize = entries
            .iter()
            .map(|e| e.category.len() + e.message.len())
            .sum();
        assert!(
            total <= data.len(),
            "decoded {total} bytes from {}",
            data.len()
        );
        let again = decode_call(encode_log_call(call.header.style, entries))
            .expect("a re-encoded Log call decodes");
        assert_eq!(again.header.style, call.header.style);
        assert_eq!(&again.request, &call.request);
    }
});
