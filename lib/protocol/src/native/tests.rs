use super::*;

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

#[test]
fn batch_frames_round_trip_plain_and_gzip() {
    let (body, want) = sample();
    for c in [Compression::None, Compression::Gzip] {
        let f = BatchFrame::encode(42, &body, c);
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
    };
    let enc = h.encode();
    assert_eq!(&enc[..4], &MAGIC);
    assert_eq!(Hello::decode(enc.slice(8..)).unwrap(), h);
    let w = Welcome {
        version: VERSION,
        compression: Compression::Gzip,
        max_frame: 1 << 24,
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
