use super::*;
use scribe_ids::{EntryId, ProducerId};

fn id(p: u8, start: u64, end: u64) -> Option<EntryId> {
    Some(EntryId {
        producer: ProducerId([p; 16]),
        start,
        end,
    })
}

fn sample() -> (Bytes, Vec<Entry>) {
    let mut b = BatchBuilder::new();
    let mut want = Vec::new();
    let rows: Vec<(&[u8], &[u8], Option<EntryId>)> = vec![
        (b"web", b"a\n", id(1, 0, 2)),
        (b"web", b"bb\n", id(1, 2, 5)),
        (b"db", b"\xff\x00raw", None),
        (b"web", b"c\n", id(2, 100, 102)),
        // A jump in producer 1's range: a new row for the same id.
        (b"web", b"d\n", id(1, 50, 52)),
        (b"web", b"e\n", id(1, 52, 54)),
        (b"db", b"", None),
    ];
    for (c, m, i) in rows {
        b.push(c, m, i);
        want.push(Entry {
            category: Bytes::copy_from_slice(c),
            message: Bytes::copy_from_slice(m),
            id: i,
        });
    }
    assert_eq!(b.len(), 7);
    (b.finish(), want)
}

#[test]
fn bodies_round_trip_with_ids_categories_and_raw_bytes() {
    let (body, want) = sample();
    assert_eq!(decode_body(body).unwrap(), want);
}

#[test]
fn tables_written_in_front_of_the_entries_give_the_same_body() {
    // Within the room kept in front (one category, a few producers), and past it (many
    // long categories, many producer rows): the same bytes as the copying build.
    for (cats, producers) in [(1usize, 1u8), (3, 4), (8, 60)] {
        let mut roomy = BatchBuilder::with_capacity(64);
        let mut plain = BatchBuilder::new();
        let mut want = Vec::new();
        for i in 0..200u64 {
            let c = format!("{}{}", "c".repeat(190), i as usize % cats);
            let p = (i % u64::from(producers)) as u8;
            let msg = format!("line {i}\n");
            let e = id(p, i * 100, i * 100 + msg.len() as u64);
            roomy.push(c.as_bytes(), msg.as_bytes(), e);
            plain.push(c.as_bytes(), msg.as_bytes(), e);
            want.push(Entry {
                category: Bytes::from(c),
                message: Bytes::from(msg),
                id: e,
            });
        }
        assert_eq!(roomy.encoded_len(), plain.encoded_len());
        let (a, b) = (roomy.finish(), plain.finish());
        assert_eq!(a, b, "{cats} categories, {producers} producers");
        assert_eq!(decode_body(a).unwrap(), want);
    }
}

#[test]
fn every_truncation_and_extension_of_a_body_is_an_error_not_a_panic() {
    let (body, _) = sample();
    for cut in 0..body.len() {
        assert!(decode_body(body.slice(..cut)).is_err(), "prefix of {cut}");
    }
    let mut longer = body.to_vec();
    longer.push(0);
    assert!(decode_body(longer.into()).is_err());
}

#[test]
fn random_bodies_never_panic_or_overallocate() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (body, _) = sample();
    for _ in 0..20_000 {
        let mut b = body.to_vec();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        let _ = decode_body(b.into());
        let junk: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
        let _ = decode_body(junk.into());
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut b = BytesMut::new();
    b.put_u32(0);
    b.put_u32(0);
    b.put_u32(u32::MAX);
    assert!(matches!(
        decode_body(b.freeze()),
        Err(NativeError::Invalid(_))
    ));
    let mut b = BytesMut::new();
    b.put_u32(u32::MAX);
    assert!(decode_body(b.freeze()).is_err());
}

/// The sample's entries, many times over: a body gzip shrinks.
fn compressible() -> (Bytes, Vec<Entry>) {
    let (_, one) = sample();
    let mut b = BatchBuilder::new();
    let want: Vec<Entry> = (0..50).flat_map(|_| one.clone()).collect();
    for e in &want {
        b.push(&e.category, &e.message, None);
    }
    let want = want.into_iter().map(|e| Entry { id: None, ..e }).collect();
    (b.finish(), want)
}

#[test]
fn batch_frames_round_trip_plain_and_gzip() {
    let (body, want) = compressible();
    for c in [Compression::None, Compression::Gzip] {
        let f = BatchFrame::encode(42, &body, c);
        let (head, payload) = BatchFrame::encode_parts(42, &body, c);
        assert_eq!([&head[..], &payload[..]].concat(), f);
        if c == Compression::None {
            // The body itself, not a copy.
            assert_eq!(payload.as_ptr(), body.as_ptr());
        }
        let len = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        let bf = BatchFrame::decode(f.slice(4..)).unwrap();
        assert_eq!(bf.batch, 42);
        assert_eq!(bf.compression, c);
        let got = decode_body(bf.into_body(1 << 20).unwrap()).unwrap();
        assert_eq!(got, want);
    }
}

#[test]
fn a_gzip_body_longer_than_declared_is_refused() {
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let f = BatchFrame::encode(1, &big, Compression::Gzip);
    let mut bf = BatchFrame::decode(f.slice(4..)).unwrap();
    // A lie: the body inflates to far more than this.
    bf.body_len = 1000;
    assert!(matches!(
        bf.clone().into_body(1 << 30),
        Err(NativeError::Inflate { .. })
    ));
    bf.body_len = 2 << 20;
    assert!(matches!(
        bf.into_body(1 << 20),
        Err(NativeError::TooLarge { .. })
    ));
}

#[test]
fn handshake_and_ack_frames_round_trip() {
    let h = Hello {
        version: VERSION,
        gzip: true,
        name: Bytes::from_static(b"ship"),
        token: None,
    };
    let enc = h.encode();
    assert_eq!(&enc[..4], &MAGIC);
    assert_eq!(Hello::decode(enc.slice(8..)).unwrap(), h);
    // The token is appended: a HELLO without one is the old HELLO, byte for byte.
    let with_token = Hello {
        token: Some(Bytes::from_static(b"s3cret")),
        ..h.clone()
    };
    let enc_token = with_token.encode();
    assert_eq!(&enc_token[8..enc.len()], &enc[8..]);
    assert_eq!(Hello::decode(enc_token.slice(8..)).unwrap(), with_token);
    let d = Denied {
        message: Bytes::from_static(b"unknown token"),
    };
    assert_eq!(Denied::decode(d.encode().slice(4..)).unwrap(), d);
    let denied = Ack {
        batch: 3,
        status: AckStatus::Denied,
        message: Bytes::from_static(b"category db.audit"),
    };
    assert_eq!(Ack::decode(denied.encode().slice(4..)).unwrap(), denied);
    let w = Welcome {
        version: VERSION,
        compression: Compression::Gzip,
        max_frame: 1 << 24,
        max_message: Some(1 << 23),
        runs: false,
    };
    assert_eq!(Welcome::decode(w.encode().slice(4..)).unwrap(), w);
    let a = Ack {
        batch: 9,
        status: AckStatus::TryLater,
        message: Bytes::from_static(b"queue full"),
    };
    assert_eq!(Ack::decode(a.encode().slice(4..)).unwrap(), a);
    assert!(matches!(
        Ack::decode(w.encode().slice(4..)),
        Err(NativeError::UnexpectedKind(kind::WELCOME))
    ));
}

#[test]
fn the_magic_is_no_acceptable_thrift_frame_length() {
    // Read as a Thrift frame length the magic announces ~4 GB: over any max frame scribed
    // allows, so a Thrift client can never be taken for a native one.
    assert!(u32::from_be_bytes(MAGIC) > (1 << 30));
}

#[test]
fn varints_reject_overflow() {
    let mut b = Reader::new(Bytes::from(vec![0xFF; 11]));
    assert!(get_varint(&mut b).is_err());
    let mut out = BytesMut::new();
    put_varint(&mut out, u64::MAX);
    assert_eq!(
        get_varint(&mut Reader::new(out.freeze())).unwrap(),
        u64::MAX
    );
}

#[test]
fn a_body_gzip_would_grow_goes_plain() {
    let mut rng = fastrand::Rng::with_seed(3);
    let noise: Vec<u8> = (0..2000).map(|_| rng.u8(..)).collect();
    let mut b = BatchBuilder::new();
    b.push(b"c", &noise, None);
    let body = b.finish();
    let want = decode_body(body.clone()).unwrap();
    let f = BatchFrame::encode(3, &body, Compression::Gzip);
    assert_eq!(f.len(), 4 + BATCH_FRAME_OVERHEAD + body.len());
    let bf = BatchFrame::decode(f.slice(4..)).unwrap();
    assert_eq!(bf.compression, Compression::None);
    assert_eq!(decode_body(bf.into_body(1 << 20).unwrap()).unwrap(), want);
}

/// The `WELCOME` as the first version of the protocol laid it out (before `max_message`):
/// what an older peer sends, and the only fields an older peer reads.
fn welcome_v1(compression: u8, max_frame: u32) -> Bytes {
    let mut f = vec![kind::WELCOME];
    f.extend_from_slice(&VERSION.to_be_bytes());
    f.push(compression);
    f.extend_from_slice(&max_frame.to_be_bytes());
    f.into()
}

/// A decoder of that first layout, as older clients have it: three fields, then nothing read.
fn decode_v1(frame: &[u8]) -> (u16, u8, u32) {
    assert_eq!(frame[0], kind::WELCOME);
    (
        u16::from_be_bytes([frame[1], frame[2]]),
        frame[3],
        u32::from_be_bytes(frame[4..8].try_into().unwrap()),
    )
}

#[test]
fn a_welcome_from_an_older_server_decodes_without_max_message() {
    let w = Welcome::decode(welcome_v1(0, 65_536)).unwrap();
    assert_eq!(
        w,
        Welcome {
            version: VERSION,
            compression: Compression::None,
            max_frame: 65_536,
            max_message: None,
            runs: false,
        }
    );
}

#[test]
fn an_older_client_reads_the_extended_welcome_as_before() {
    let w = Welcome {
        version: VERSION,
        compression: Compression::Gzip,
        max_frame: 20_000,
        max_message: Some(19_000),
        runs: true,
    };
    let f = w.encode();
    // The first fields keep their layout; the new ones come after them, in order: a client
    // of the first extension reads max message where it always was.
    assert_eq!(&f[4..12], &welcome_v1(1, 20_000)[..]);
    assert_eq!(decode_v1(&f[4..]), (VERSION, 1, 20_000));
    assert_eq!(&f[12..16], &19_000u32.to_be_bytes());
    assert_eq!(f.len(), 17, "one byte of layouts after max message");
    // Without runs the layout byte is left out: the frame of the first extension.
    let first = Welcome { runs: false, ..w }.encode();
    assert_eq!(first.len(), 16);
    assert!(!Welcome::decode(first.slice(4..)).unwrap().runs);
    // And this decoder ignores what a still newer server may append.
    let mut newer = f.slice(4..).to_vec();
    newer.extend_from_slice(&[7; 9]);
    assert_eq!(Welcome::decode(newer.into()).unwrap(), w);
}

#[test]
fn encoded_len_with_predicts_every_push() {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut b = BatchBuilder::new();
    for i in 0..2_000u64 {
        let cat: &[u8] = [&b"web"[..], b"db", b"x.y"][rng.usize(..3)];
        let len = [0, 1, 127, 128, 300, 20_000][rng.usize(..6)];
        let id = match rng.u8(..4) {
            0 => None,
            p => Some(EntryId {
                producer: ProducerId([p; 16]),
                // Mostly continuing rows, sometimes a jump.
                start: if rng.bool() {
                    i * 1000
                } else {
                    rng.u64(..1 << 40)
                },
                end: 0,
            })
            .map(|id| EntryId {
                end: id.start + rng.u64(1..1 << 20),
                ..id
            }),
        };
        let predicted = b.encoded_len_with(cat, len, id);
        b.push(cat, &vec![b'm'; len], id);
        assert_eq!(b.encoded_len(), predicted, "entry {i}");
    }
    assert_eq!(b.encoded_len(), b.finish().len());
}

#[test]
fn max_message_fits_a_frame_with_the_longest_category() {
    for max_frame in [1024, 16 * 1024, 16 << 20, 1 << 30] {
        let m = max_message(max_frame, 200);
        let b = BatchBuilder::new();
        let id = Some(EntryId {
            producer: ProducerId([1; 16]),
            start: u64::MAX - (1 << 62),
            end: u64::MAX,
        });
        let len = b.encoded_len_with(&[b'c'; 200], m, id);
        assert!(len + BATCH_FRAME_OVERHEAD <= max_frame, "{max_frame}");
        assert!(
            len + BATCH_FRAME_OVERHEAD + 20 > max_frame,
            "{max_frame}: not wasteful"
        );
    }
}

/// The server's grouped decode gives what grouping the plain decode gives, on good bodies
/// (one or many categories, ids or none), on a table listing a category twice, and on
/// damaged ones (both refuse, or both give the same groups).
#[test]
fn grouped_decode_is_group_by_category_of_the_plain_decode() {
    use crate::server::group_by_category;
    let grouped = |body: Bytes| {
        decode_body(body)
            .map(|es| group_by_category(es.into_iter().map(|e| (e.category, e.message, e.id))))
    };
    let same = |body: Bytes| match (decode_body_grouped(body.clone()), grouped(body)) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("grouped {a:?}, plain {b:?}"),
    };
    let (body, _) = sample();
    assert_eq!(decode_body_grouped(body.clone()).unwrap().len(), 2);
    same(body.clone());
    let mut many = BatchBuilder::new();
    for i in 0..300u64 {
        let msg = format!("line {i}\n");
        many.push(
            format!("cat{}", i % 7).as_bytes(),
            msg.as_bytes(),
            id(3, i * 10, i * 10 + 5),
        );
    }
    same(many.finish());
    // Two table rows naming "a": one group, messages in order.
    let mut dup = BytesMut::new();
    dup.put_u32(2);
    for _ in 0..2 {
        dup.put_u16(1);
        dup.put_u8(b'a');
    }
    dup.put_u32(0);
    dup.put_u32(3);
    for (row, m) in [(0u8, b'x'), (1, b'y'), (0, b'z')] {
        dup.extend_from_slice(&[row, 0, 1, m]);
    }
    let groups = decode_body_grouped(dup.clone().freeze()).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].messages,
        vec![Bytes::from("x"), Bytes::from("y"), Bytes::from("z")]
    );
    same(dup.freeze());
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..5_000 {
        let mut b = body.to_vec();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..b.len());
            b[i] = rng.u8(..);
        }
        same(b.into());
    }
}
