//! Feeds arbitrary text to tailgate's parser of the JSON requests a browser sends over `/ws`
//! (`ClientMsg`), then does what a session does with a `subscribe` before touching the hub:
//! checks the category pattern, matches it against names, compiles the filter under the
//! server's size limits and runs it on a line. None of it may panic or take long.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regex::bytes::RegexBuilder;
use scribe_archive::category::CategoryGlob;
use tailgate::connection::MAX_REQUEST;
use tailgate::protocol::{ClientMsg, SinceSeq};

/// The session's regex limits (`tailgate/src/connection.rs`, private there).
const REGEX_SIZE_LIMIT: usize = 256 << 10;
const DFA_SIZE_LIMIT: usize = 256 << 10;
const MAX_FILTER_LEN: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 (the websocket layer checks), and longer ones are refused unread.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > MAX_REQUEST {
        return;
    }
    let Ok(msg) = serde_json::from_str::<ClientMsg>(text) else {
        return;
    };
    let ClientMsg::Subscribe {
        category,
        filter,
        since_seq,
        ..
    } = msg
    else {
        return;
    };
    let Ok(pattern) = CategoryGlob::new(&category) else {
        return;
    };
    if !pattern.is_glob() {
        assert!(pattern.matches(&category));
    }
    let long = "a.".repeat(100);
    for name in ["apache.access", "a", "", long.as_str(), category.as_str()] {
        pattern.matches(name);
    }
    if let Some(SinceSeq::Map(m)) = &since_seq {
        for k in m.keys() {
            pattern.matches(k);
        }
    }
    if let Some(f) = filter.filter(|f| !f.is_empty() && f.len() <= MAX_FILTER_LEN) {
        if let Ok(re) = RegexBuilder::new(&f)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
        {
            re.is_match(b"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 500 2326");
        }
    }
});
