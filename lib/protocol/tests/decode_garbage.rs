//! Deterministic randomized robustness test for `decode_call`: random bytes, random bytes behind
//! a valid message header, and valid calls mutated in the ways a broken or hostile peer (or a
//! desynchronised stream) produces them. `decode_call` must never panic, must never invent data
//! (every decoded message is a slice of the input), and whatever it decodes must re-encode and
//! decode to the same thing. Valid calls, including ones with unknown fields Thrift says to
//! skip, must keep decoding exactly.
//!
//! Seeded, so a failure reproduces: the panic message names the iteration and the input.

use bytes::{BufMut, Bytes, BytesMut};
use scribe_protocol::message::{message_type, MessageHeader};
use scribe_protocol::scribe::encode_log_call;
use scribe_protocol::thrift::{ttype, Writer};
use scribe_protocol::{decode_call, HeaderStyle, LogEntry, Request};

const SEED: u64 = 0x5c21_be00_dec0_de01;
const ITERATIONS: usize = 300_000;

/// Values a length or count field is overwritten with.
const INTERESTING_I32: &[i32] = &[
    0,
    1,
    2,
    3,
    4,
    -1,
    -2,
    i32::MIN,
    i32::MIN + 1,
    i32::MAX,
    i32::MAX - 1,
    0x7fff,
    0x8000,
    0xffff,
    0x10000,
    0x00ff_ffff,
    0x0100_0000,
    0x4000_0000,
    0x7fff_0000,           // an unversioned name length of almost 2 GiB
    0x8001_0001u32 as i32, // strict CALL header
    0x8001_0004u32 as i32, // strict ONEWAY header
    0x8002_0001u32 as i32, // wrong version
];

fn strict_or_not(rng: &mut fastrand::Rng) -> HeaderStyle {
    if rng.bool() {
        HeaderStyle::Strict
    } else {
        HeaderStyle::Unversioned
    }
}

fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
    let n = rng.usize(..=max);
    // Mostly small alphabets so lengths and type ids land on plausible values often.
    match rng.u8(..4) {
        0 => (0..n).map(|_| rng.u8(..)).collect(),
        1 => (0..n).map(|_| rng.u8(..16)).collect(),
        2 => (0..n)
            .map(|_| [0u8, 0xff, 1, 11, 12, 15][rng.usize(..6)])
            .collect(),
        _ => (0..n).map(|_| rng.alphanumeric() as u8).collect(),
    }
}

fn random_entries(rng: &mut fastrand::Rng) -> Vec<LogEntry> {
    let n = [0, 1, 1, 2, 3, 8][rng.usize(..6)];
    (0..n)
        .map(|_| LogEntry {
            category: Bytes::from(random_bytes(rng, 12)),
            message: Bytes::from(random_bytes(rng, 40)),
        })
        .collect()
}

fn header(buf: &mut BytesMut, name: &str, mt: u8, style: HeaderStyle, seqid: i32) {
    MessageHeader {
        name: name.into(),
        message_type: mt,
        seqid,
        style,
    }
    .write(buf);
}

/// Writes a random, well-formed Thrift value of type `ty` (which unknown-field skipping must
/// get past), nesting at most `depth` more levels.
fn random_value(rng: &mut fastrand::Rng, w: &mut Writer, ty: u8, depth: u32) {
    match ty {
        ttype::BOOL | ttype::BYTE => w.buf.put_u8(rng.u8(..)),
        ttype::I16 => w.buf.put_i16(rng.i16(..)),
        ttype::I32 => w.i32(rng.i32(..)),
        ttype::I64 | ttype::DOUBLE => w.i64(rng.i64(..)),
        ttype::STRING => w.binary(&random_bytes(rng, 10)),
        ttype::STRUCT => {
            for _ in 0..rng.usize(..3) {
                let fty = random_type(rng, depth);
                w.field_begin(fty, rng.i16(..));
                random_value(rng, w, fty, depth.saturating_sub(1));
            }
            w.field_stop();
        }
        ttype::MAP => {
            let (k, v) = (random_type(rng, 0), random_type(rng, depth));
            let n = rng.usize(..3);
            w.map_begin(k, v, n as i32);
            for _ in 0..n {
                random_value(rng, w, k, 0);
                random_value(rng, w, v, depth.saturating_sub(1));
            }
        }
        ttype::LIST | ttype::SET => {
            let e = random_type(rng, depth);
            let n = rng.usize(..3);
            w.list_begin(e, n as i32);
            for _ in 0..n {
                random_value(rng, w, e, depth.saturating_sub(1));
            }
        }
        _ => unreachable!("type {ty}"),
    }
}

fn random_type(rng: &mut fastrand::Rng, depth: u32) -> u8 {
    const SCALARS: &[u8] = &[
        ttype::BOOL,
        ttype::BYTE,
        ttype::DOUBLE,
        ttype::I16,
        ttype::I32,
        ttype::I64,
        ttype::STRING,
    ];
    const ALL: &[u8] = &[
        ttype::BOOL,
        ttype::BYTE,
        ttype::DOUBLE,
        ttype::I16,
        ttype::I32,
        ttype::I64,
        ttype::STRING,
        ttype::STRUCT,
        ttype::MAP,
        ttype::SET,
        ttype::LIST,
    ];
    if depth == 0 {
        SCALARS[rng.usize(..SCALARS.len())]
    } else {
        ALL[rng.usize(..ALL.len())]
    }
}

/// A valid `Log` call that also carries unknown fields (in the args struct and in entries),
/// which a Thrift decoder must skip. Field 1 of an entry is never reused for an unknown field.
fn log_call_with_unknown_fields(
    rng: &mut fastrand::Rng,
    style: HeaderStyle,
    entries: &[LogEntry],
) -> Bytes {
    let mut buf = BytesMut::new();
    header(&mut buf, "Log", message_type::CALL, style, rng.i32(..));
    let mut w = Writer { buf: &mut buf };
    let unknown = |rng: &mut fastrand::Rng, w: &mut Writer| {
        let ty = random_type(rng, 2);
        // Ids 1 and 2 are taken (and a field 1 of another type would be a protocol error).
        let id = [0, 3, 4, 99, -1, i16::MAX, i16::MIN][rng.usize(..7)];
        w.field_begin(ty, id);
        random_value(rng, w, ty, 2);
    };
    if rng.bool() {
        unknown(rng, &mut w);
    }
    w.field_begin(ttype::LIST, 1);
    w.list_begin(ttype::STRUCT, entries.len() as i32);
    for e in entries {
        if rng.bool() {
            unknown(rng, &mut w);
        }
        // Either field order is valid Thrift.
        let fields = [(1, &e.category), (2, &e.message)];
        let order: [usize; 2] = if rng.bool() { [0, 1] } else { [1, 0] };
        for i in order {
            w.field_begin(ttype::STRING, fields[i].0);
            w.binary(fields[i].1);
            if rng.u8(..8) == 0 {
                unknown(rng, &mut w);
            }
        }
        w.field_stop();
    }
    if rng.bool() {
        unknown(rng, &mut w);
    }
    w.field_stop();
    buf.freeze()
}

/// A no-argument fb303 call.
fn fb303_call(rng: &mut fastrand::Rng, style: HeaderStyle) -> Bytes {
    const NAMES: &[&str] = &[
        "getName",
        "getVersion",
        "getStatus",
        "getStatusDetails",
        "getCounters",
        "getOptions",
        "getCpuProfile",
        "aliveSince",
        "reinitialize",
        "shutdown",
        "getCounter",
        "getOption",
        "setOption",
        "frobnicate",
    ];
    let name = NAMES[rng.usize(..NAMES.len())];
    let mut buf = BytesMut::new();
    header(&mut buf, name, message_type::CALL, style, rng.i32(..));
    let mut w = Writer { buf: &mut buf };
    if matches!(name, "getCounter" | "getOption" | "setOption") {
        w.field_begin(ttype::STRING, 1);
        w.binary(b"scribe_overall:received good");
        if name == "setOption" {
            w.field_begin(ttype::STRING, 2);
            w.binary(b"value");
        }
    }
    w.field_stop();
    buf.freeze()
}

/// Applies one to four random mutations.
fn mutate(rng: &mut fastrand::Rng, input: &[u8], corpus: &[Bytes]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        match rng.u8(..9) {
            // Bit flip.
            0 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] ^= 1 << rng.u8(..8);
            }
            // Random byte.
            1 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..);
            }
            // Truncate.
            2 => v.truncate(rng.usize(..=v.len())),
            // Overwrite an aligned-anywhere i32 (lengths, counts, headers) with an edge value.
            3 | 4 if v.len() >= 4 => {
                let i = rng.usize(..=v.len() - 4);
                let x = if rng.u8(..4) == 0 {
                    rng.i32(..)
                } else {
                    INTERESTING_I32[rng.usize(..INTERESTING_I32.len())]
                };
                v[i..i + 4].copy_from_slice(&x.to_be_bytes());
            }
            // Overwrite a byte with a type id or STOP.
            5 if !v.is_empty() => {
                let i = rng.usize(..v.len());
                v[i] = rng.u8(..17);
            }
            // Delete a range.
            6 if !v.is_empty() => {
                let a = rng.usize(..v.len());
                let b = rng.usize(a..=v.len().min(a + 8));
                v.drain(a..b);
            }
            // Insert random bytes.
            7 => {
                let at = rng.usize(..=v.len());
                let ins = random_bytes(rng, 8);
                v.splice(at..at, ins);
            }
            // Splice: our head, another call's tail.
            _ => {
                let other = &corpus[rng.usize(..corpus.len())];
                let a = rng.usize(..=v.len());
                let b = rng.usize(..=other.len());
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
        }
    }
    v
}

/// Decodes `input`, checking the properties every outcome must have.
fn check(iteration: usize, input: Vec<u8>) -> bool {
    let len = input.len();
    let frame = Bytes::from(input);
    let result = std::panic::catch_unwind(|| decode_call(frame.clone()));
    let decoded = match result {
        Ok(r) => r,
        Err(_) => panic!("iteration {iteration}: decode_call panicked on {frame:02x?}"),
    };
    let Ok(call) = decoded else {
        return false;
    };
    if let Request::Log(entries) = &call.request {
        // Nothing invented: the strings are disjoint slices of the frame.
        let total: usize = entries
            .iter()
            .map(|e| e.category.len() + e.message.len())
            .sum();
        assert!(
            total <= len,
            "iteration {iteration}: {total} bytes decoded from a {len}-byte frame"
        );
        // Whatever decodes re-encodes to a call that decodes to the same entries.
        let again = decode_call(encode_log_call(call.header.style, entries))
            .unwrap_or_else(|e| panic!("iteration {iteration}: re-encoded call fails: {e}"));
        assert_eq!(
            &again.request, &call.request,
            "iteration {iteration}: re-encoding changed the call decoded from {frame:02x?}"
        );
    }
    true
}

fn hex(s: &str) -> Bytes {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn garbage_never_panics_and_valid_calls_still_decode() {
    let started = std::time::Instant::now();
    let mut rng = fastrand::Rng::with_seed(SEED);

    // Seed corpus: the research brief's known-good payloads (facebook-scribe + thrift 0.25)
    // and generated calls of every kind.
    let mut corpus: Vec<Bytes> = vec![
        hex("00000003 4c6f67 01 00000000 0f0001 0c 00000001
             0b0001 00000004 74657374 0b0002 00000006 68656c6c6f0a 00 00"),
        hex("80010001 00000003 4c6f67 00000000 0f0001 0c 00000001
             0b0001 00000004 74657374 0b0002 00000006 68656c6c6f0a 00 00"),
        hex("00000003 4c6f67 01 00000000 0f0001 0c 00000000 00"),
    ];
    for _ in 0..64 {
        let style = strict_or_not(&mut rng);
        let entries = random_entries(&mut rng);
        corpus.push(encode_log_call(style, &entries));
        corpus.push(log_call_with_unknown_fields(&mut rng, style, &entries));
        corpus.push(fb303_call(&mut rng, style));
    }

    let (mut decoded, mut valid) = (0usize, 0usize);
    for i in 0..ITERATIONS {
        match i % 8 {
            // A fresh valid call, possibly with unknown fields: must decode exactly.
            0 => {
                let style = strict_or_not(&mut rng);
                let entries = random_entries(&mut rng);
                let frame = if rng.bool() {
                    encode_log_call(style, &entries)
                } else {
                    log_call_with_unknown_fields(&mut rng, style, &entries)
                };
                let call = decode_call(frame.clone()).unwrap_or_else(|e| {
                    panic!("iteration {i}: valid call failed to decode ({e}): {frame:02x?}")
                });
                assert_eq!(call.header.style, style, "iteration {i}");
                assert_eq!(call.request, Request::Log(entries), "iteration {i}");
                valid += 1;
            }
            // Pure random bytes.
            1 => decoded += check(i, random_bytes(&mut rng, 64)) as usize,
            // Random bytes behind a valid header, so the argument decoding gets exercised.
            2 => {
                let mut buf = BytesMut::new();
                let name = ["Log", "getCounter", "setOption", "getName"][rng.usize(..4)];
                let mt = [message_type::CALL, message_type::ONEWAY][rng.usize(..2)];
                header(&mut buf, name, mt, strict_or_not(&mut rng), rng.i32(..));
                if name == "Log" && rng.bool() {
                    buf.put_slice(&[ttype::LIST, 0, 1, ttype::STRUCT]);
                }
                buf.put_slice(&random_bytes(&mut rng, 96));
                decoded += check(i, buf.to_vec()) as usize;
            }
            // Mutated corpus entries.
            _ => {
                let base = &corpus[rng.usize(..corpus.len())];
                decoded += check(i, mutate(&mut rng, base, &corpus)) as usize;
            }
        }
    }

    // Every known-good payload still decodes (decoding is stateless, garbage leaves no trace).
    for frame in &corpus[..3] {
        let call = decode_call(frame.clone()).expect("known-good payload");
        assert!(matches!(call.request, Request::Log(_)));
    }
    // The mix exercised both outcomes, not just early rejects.
    assert!(valid >= ITERATIONS / 8, "{valid} valid calls");
    assert!(
        decoded > ITERATIONS / 100,
        "only {decoded} garbage inputs decoded: mutations too destructive to reach deep code"
    );
    eprintln!(
        "{ITERATIONS} iterations, {valid} valid calls, {decoded} garbage inputs decoded, {:?}",
        started.elapsed()
    );
}

/// Every length and count field of a real call overwritten with every edge value.
#[test]
fn every_length_field_with_every_edge_value() {
    let entries = vec![
        LogEntry {
            category: Bytes::from_static(b"cat"),
            message: Bytes::from_static(b"\x00\xffmsg\n"),
        },
        LogEntry {
            category: Bytes::from_static(b"other"),
            message: Bytes::new(),
        },
    ];
    let mut n = 0;
    for style in [HeaderStyle::Strict, HeaderStyle::Unversioned] {
        let call = encode_log_call(style, &entries);
        for at in 0..=call.len() - 4 {
            for &x in INTERESTING_I32 {
                let mut v = call.to_vec();
                v[at..at + 4].copy_from_slice(&x.to_be_bytes());
                check(n, v);
                n += 1;
            }
        }
    }
}
