//! Bodies with runs of lines: the same messages and ids as the first layout, refused when
//! malformed, and what a builder does with input that is not a run.

use super::*;
use crate::server::{group_by_category, LineRun};

fn id(p: u8, start: u64, end: u64) -> Option<EntryId> {
    Some(EntryId {
        producer: ProducerId([p; 16]),
        start,
        end,
    })
}

/// Lines as messages of the first layout, one entry each, with ids from `start`.
fn one_by_one(category: &[u8], lines: &[u8], p: Option<u8>, start: u64) -> Vec<Entry> {
    let mut b = BatchBuilder::new();
    let mut at = start;
    for line in lines.split_inclusive(|&c| c == b'\n') {
        let end = at + line.len() as u64;
        b.push(category, line, p.and_then(|p| id(p, at, end)));
        at = end;
    }
    decode_body(b.finish()).unwrap()
}

/// A body with runs: producer 1's lines in two runs and a message between them that
/// continues its range, an anonymous run of another category, a message of many lines.
fn mixed() -> (Bytes, Vec<Entry>) {
    let mut b = BatchBuilder::with_runs(1024);
    let mut want = Vec::new();
    b.push_run(b"web", b"aaa\nbbbb\n", 2, id(1, 0, 9));
    want.extend(one_by_one(b"web", b"aaa\nbbbb\n", Some(1), 0));
    b.push(b"web", b"one message\nof two lines\n", id(1, 9, 34));
    want.push(Entry {
        category: Bytes::from_static(b"web"),
        message: Bytes::from_static(b"one message\nof two lines\n"),
        id: id(1, 9, 34),
    });
    b.push_run(b"web", b"cccc\ndd\n", 2, id(1, 34, 42));
    want.extend(one_by_one(b"web", b"cccc\ndd\n", Some(1), 34));
    b.push_run(b"db", b"\xff\x00raw\n", 1, None);
    want.extend(one_by_one(b"db", b"\xff\x00raw\n", None, 0));
    assert_eq!(b.len(), 6);
    assert_eq!(b.message_bytes(), 9 + 25 + 8 + 6);
    (b.finish(), want)
}

#[test]
fn runs_decode_to_the_messages_and_ids_of_their_lines() {
    let (body, want) = mixed();
    assert!(has_runs(&body));
    assert_eq!(decode_body(body).unwrap(), want);
}

#[test]
fn runs_group_like_the_plain_decode_and_are_noted_in_their_groups() {
    let (body, want) = mixed();
    let mut grouped = decode_body_grouped(body).unwrap();
    let run = |messages, bytes: &'static [u8]| LineRun {
        messages,
        bytes: Bytes::from_static(bytes),
    };
    assert_eq!(
        grouped[0].runs,
        [run(0..2, b"aaa\nbbbb\n"), run(3..5, b"cccc\ndd\n")]
    );
    assert_eq!(grouped[1].runs, [run(0..1, b"\xff\x00raw\n")]);
    for g in &mut grouped {
        g.runs.clear();
    }
    let plain = want.into_iter().map(|e| (e.category, e.message, e.id));
    assert_eq!(grouped, group_by_category(plain));
}

#[test]
fn a_run_is_one_entry_on_the_wire() {
    let lines: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let mut runs = BatchBuilder::with_runs(lines.len());
    runs.push_run(b"c", &lines, 1000, id(7, 0, lines.len() as u64));
    let body = runs.finish();
    // Tables, one entry of 4 varints, the lines: no per-line bytes.
    assert!(body.len() < lines.len() + 64, "{}", body.len());
    assert_eq!(
        decode_body(body).unwrap(),
        one_by_one(b"c", &lines, Some(7), 0)
    );
}

#[test]
fn without_runs_or_whole_lines_a_run_is_pushed_line_by_line() {
    // A builder of the first layout: the same messages, and a body an older server reads.
    let mut plain = BatchBuilder::new();
    plain.push_run(b"c", b"x\nyy\n", 2, id(1, 10, 15));
    assert_eq!(plain.len(), 2);
    let body = plain.finish();
    assert!(!has_runs(&body));
    assert_eq!(
        decode_body(body).unwrap(),
        one_by_one(b"c", b"x\nyy\n", Some(1), 10)
    );

    // No newline at the end, or an id that is not the run's length: line by line, the last
    // line keeping the id's end.
    let mut b = BatchBuilder::with_runs(64);
    b.push_run(b"c", b"x\nyy", 2, id(1, 0, 4));
    b.push_run(b"c", b"z\nw\n", 2, id(2, 0, 9));
    let got = decode_body(b.finish()).unwrap();
    let ids: Vec<_> = got.iter().map(|e| e.id.map(|i| (i.start, i.end))).collect();
    assert_eq!(
        ids,
        [Some((0, 2)), Some((2, 4)), Some((0, 2)), Some((2, 9))]
    );
    let msgs: Vec<&[u8]> = got.iter().map(|e| &e.message[..]).collect();
    assert_eq!(msgs, [&b"x\n"[..], b"yy", b"z\n", b"w\n"]);
}

/// A hand-made body with runs: one category `c`, one producer row starting at `start`, and
/// one run entry of `lines`.
fn raw_run(layout: u8, start: u64, lines: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u32(u32::MAX);
    out.put_u8(layout);
    out.put_u32(1);
    out.put_u16(1);
    out.put_slice(b"c");
    out.put_u32(1);
    out.put_slice(&[3; 16]);
    out.put_u64(start);
    out.put_u32(1);
    put_varint(&mut out, 1); // category 0, a run
    put_varint(&mut out, 1); // row 0
    put_varint(&mut out, lines.len() as u64);
    out.put_slice(lines);
    out.freeze()
}

#[test]
fn malformed_runs_are_errors_not_panics() {
    assert_eq!(decode_body(raw_run(2, 0, b"a\nb\n")).unwrap().len(), 2);
    for (body, why) in [
        (raw_run(2, 0, b"a\nno newline"), "newline"),
        (raw_run(2, 0, b""), "newline"),
        (raw_run(3, 0, b"a\n"), "layout 3"),
        (raw_run(2, u64::MAX - 1, b"a\nb\n"), "overflowing"),
    ] {
        let err = decode_body(body.clone()).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
        assert!(decode_body_grouped(body).is_err());
    }
    // More lines than one per 3 bytes of body: refused, however the run is framed.
    let mut empties = raw_run(2, 0, &[b'\n'; 200]);
    let err = decode_body(empties.clone()).unwrap_err().to_string();
    assert!(err.contains("more lines than a body may carry"), "{err}");
    assert!(decode_body_grouped(empties.split_off(0)).is_err());
    // Every cut of a good body.
    let (good, _) = mixed();
    for n in 0..good.len() {
        assert!(decode_body(good.slice(..n)).is_err(), "cut at {n}");
    }
}

#[test]
fn an_older_decoder_refuses_a_body_with_runs() {
    // What a server that predates runs reads first: a category count no body can hold.
    let (body, _) = mixed();
    let count = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
    assert!(count.saturating_mul(2) > body.len() - 4);
}

#[test]
fn lines_shorter_than_three_bytes_on_average_go_line_by_line() {
    // 100 lines of "a\n": a run would be one message per 2 bytes, over what a body may carry.
    let lines = b"a\n".repeat(100);
    let mut b = BatchBuilder::with_runs(256);
    b.push_run(b"c", &lines, 100, id(1, 0, 200));
    let body = b.finish();
    assert!(body.len() > 300, "one entry per line: {}", body.len());
    assert_eq!(
        decode_body(body).unwrap(),
        one_by_one(b"c", &lines, Some(1), 0)
    );
}

#[test]
fn random_damage_to_a_body_with_runs_never_panics_or_overallocates() {
    let mut rng = fastrand::Rng::with_seed(11);
    let (body, _) = mixed();
    for _ in 0..20_000 {
        let mut b = body.to_vec();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        let b = Bytes::from(b);
        // Whatever decodes holds no more messages than a third of its bytes.
        if let Ok(entries) = decode_body(b.clone()) {
            assert!(entries.len() <= b.len() / 3);
        }
        let _ = decode_body_grouped(b);
    }
}
