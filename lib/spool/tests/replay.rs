//! Appending, streamed replay, commits, restarts and the size bound.

mod common;

use common::*;
use scribe_spool::{Entry, Spool, SpoolError, SpoolOptions};

#[test]
fn round_trip_keeps_order_across_segment_rolls_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1000, 1 << 30);
    let all: Vec<Batch> = (0..300).map(batch).collect();
    {
        let mut s = Spool::open(d.path(), o.clone()).unwrap();
        for b in &all[..150] {
            s.append(b).unwrap();
        }
        s.sync().unwrap();
    }
    // Reopened: appends go to a fresh segment after the existing ones.
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for b in &all[150..] {
        s.append(b).unwrap();
    }
    assert!(segment_files(d.path()).len() > 10, "segments rolled");
    assert_eq!(s.stats().records_appended, 150);
    let got = read_records(&mut s);
    let want: Vec<Vec<Entry>> = all.iter().map(entries).collect();
    assert_eq!(got, want);
    let st = s.stats();
    assert_eq!(st.records_replayed, 300);
    assert_eq!(st.corrupt_records, 0);
    assert_eq!(st.bytes, disk_bytes(d.path()));
    assert_eq!(st.segments, segment_files(d.path()).len() as u64);

    // Nothing committed: a reopen replays everything again.
    drop(s);
    let mut s = Spool::open(d.path(), o).unwrap();
    assert_eq!(read_records(&mut s), want);
}

#[test]
fn segments_are_named_by_zero_padded_id_and_roll_at_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(100, 1 << 30)).unwrap();
    let small = vec![(b"c".to_vec(), vec![b'm'; 20])]; // 16 + 4 + 6 + 1 + 20 = 47 bytes
    let big = vec![(b"c".to_vec(), vec![b'm'; 200])];
    s.append(&small).unwrap();
    s.append(&small).unwrap(); // 94 <= 100: same segment
    s.append(&small).unwrap(); // would be 141: new segment
    s.append(&big).unwrap(); // larger than a segment: one of its own
    s.append(&small).unwrap();
    let names: Vec<String> = segment_files(d.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000000.seg",
            "00000000000000000001.seg",
            "00000000000000000002.seg",
            "00000000000000000003.seg"
        ]
    );
    let sizes: Vec<u64> = segment_files(d.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(sizes, [94, 47, 227, 47]);
}

#[test]
fn next_batch_stays_within_max_bytes() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(4096, 1 << 30)).unwrap();
    let mut want = Vec::new();
    for i in 0..200 {
        let b = batch(i);
        want.extend(entries(&b));
        s.append(&b).unwrap();
    }
    // A record bigger than the batch limit comes alone.
    let huge = vec![(b"big".to_vec(), vec![0xF7; 3000])];
    want.extend(entries(&huge));
    s.append(&huge).unwrap();
    for i in 200..220 {
        let b = batch(i);
        want.extend(entries(&b));
        s.append(&b).unwrap();
    }
    let mut got = Vec::new();
    let mut batches = 0;
    while let Some(b) = s.next_batch(1000).unwrap() {
        batches += 1;
        assert!(b.records >= 1);
        assert!(
            b.bytes <= 1000 || b.records == 1,
            "{} bytes in {} records",
            b.bytes,
            b.records
        );
        if b.records == 1 && b.bytes > 1000 {
            assert_eq!(b.entries, entries(&huge));
        }
        got.extend(b.entries);
    }
    assert_eq!(got, want);
    assert!(batches > 10);
}

#[test]
fn reader_sees_records_appended_after_it_caught_up() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(300, 1 << 30)).unwrap();
    assert!(s.next_batch(1 << 20).unwrap().is_none());
    for i in 0..50 {
        s.append(&batch(i)).unwrap();
        let b = s
            .next_batch(1 << 20)
            .unwrap()
            .expect("the record just appended");
        assert_eq!(b.entries, entries(&batch(i)));
        assert!(s.next_batch(1 << 20).unwrap().is_none());
        if i % 3 == 0 {
            s.commit(b.position).unwrap();
        }
    }
}

#[test]
fn commit_then_reopen_resumes_after_the_committed_position() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(500, 1 << 30);
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for i in 0..40 {
        s.append(&batch(i)).unwrap();
    }
    s.sync().unwrap();
    let first = s.next_batch(2000).unwrap().unwrap();
    let second = s.next_batch(2000).unwrap().unwrap();
    s.commit(first.position).unwrap();
    assert_eq!(s.committed_position(), first.position);
    drop(s);

    // The second batch was read but not committed: it comes again.
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    let again = s.next_batch(2000).unwrap().unwrap();
    assert_eq!(again.entries, second.entries);
    let rest = read_records(&mut s);
    let n_first = first.records + second.records;
    let want: Vec<Vec<Entry>> = (n_first..40).map(|i| entries(&batch(i))).collect();
    assert_eq!(rest, want);
    s.commit(s.read_position()).unwrap();
    assert!(s.is_empty());
    drop(s);

    let mut s = Spool::open(d.path(), o).unwrap();
    assert!(s.is_empty());
    assert!(s.next_batch(1 << 20).unwrap().is_none());
    // Appends after a full drain get a fresh segment and are delivered.
    s.append(&batch(99)).unwrap();
    assert_eq!(read_records(&mut s), vec![entries(&batch(99))]);
}

#[test]
fn commit_removes_consumed_segments() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(200, 1 << 30)).unwrap();
    for i in 0..30 {
        s.append(&batch(i)).unwrap();
    }
    let before = segment_files(d.path()).len();
    assert!(before > 5);
    let b = s.next_batch(1500).unwrap().unwrap();
    s.commit(b.position).unwrap();
    let after = segment_files(d.path()).len();
    assert!(after < before);
    assert_eq!(s.stats().segments, after as u64);
    assert_eq!(
        segment_files(d.path())[0]
            .file_name()
            .unwrap()
            .to_string_lossy(),
        format!("{:020}.seg", b.position.segment())
    );
    // Draining and committing everything leaves no segment: the head goes too.
    while s.next_batch(1500).unwrap().is_some() {}
    s.commit(s.read_position()).unwrap();
    assert_eq!(segment_files(d.path()).len(), 0);
    assert_eq!(s.bytes(), 0);
    // The next record starts a new segment, and a reopen finds just that.
    s.append(&batch(99)).unwrap();
    assert_eq!(segment_files(d.path()).len(), 1);
    drop(s);
    let mut s = Spool::open(d.path(), opts(200, 1 << 30)).unwrap();
    assert_eq!(read_records(&mut s), vec![entries(&batch(99))]);
}

#[test]
fn rewind_reads_uncommitted_records_again() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(1 << 20, 1 << 30)).unwrap();
    for i in 0..10 {
        s.append(&batch(i)).unwrap();
    }
    let a = s.next_batch(0).unwrap().unwrap();
    s.commit(a.position).unwrap();
    let b = s.next_batch(0).unwrap().unwrap();
    let _c = s.next_batch(0).unwrap().unwrap();
    s.rewind();
    assert_eq!(s.next_batch(0).unwrap().unwrap().entries, b.entries);
    // Committing a position before the committed one is a no-op.
    s.commit(scribe_spool::Position::default()).unwrap();
    assert_eq!(s.committed_position(), a.position);
    // A position read before the rewind may still be committed.
    s.commit(b.position).unwrap();
    assert_eq!(s.committed_position(), b.position);
}

#[test]
fn commit_past_what_was_read_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    let mut other = Spool::open(d.path().join("other"), o.clone()).unwrap();
    let mut s = Spool::open(d.path().join("s"), o).unwrap();
    for i in 0..3 {
        other.append(&batch(i)).unwrap();
        s.append(&batch(i)).unwrap();
    }
    let _ = other.next_batch(0).unwrap();
    let far = other.next_batch(1 << 20).unwrap().unwrap().position;
    let err = s.commit(far).unwrap_err();
    assert!(matches!(err, SpoolError::InvalidPosition { .. }), "{err}");
}

#[test]
fn full_writes_nothing_and_commit_frees_space() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(300, 1000)).unwrap();
    let rec = vec![(b"c".to_vec(), vec![b'm'; 73])]; // 16 + 4 + 6 + 1 + 73 = 100 bytes
    for _ in 0..10 {
        s.append(&rec).unwrap();
    }
    assert_eq!(s.bytes(), 1000);
    let files = segment_files(d.path());
    let disk = disk_bytes(d.path());
    let err = s.append(&rec).unwrap_err();
    match err {
        SpoolError::Full {
            record,
            queued,
            max_bytes,
        } => assert_eq!((record, queued, max_bytes), (100, 1000, 1000)),
        e => panic!("{e}"),
    }
    assert_eq!(segment_files(d.path()), files);
    assert_eq!(disk_bytes(d.path()), disk);
    assert_eq!(s.stats().records_appended, 10);

    // Reading alone frees nothing; committing does.
    let b = s.next_batch(250).unwrap().unwrap();
    assert_eq!(b.records, 2);
    assert!(matches!(s.append(&rec), Err(SpoolError::Full { .. })));
    s.commit(b.position).unwrap();
    assert_eq!(s.bytes(), 800);
    s.append(&rec).unwrap();
    s.append(&rec).unwrap();
    assert!(matches!(s.append(&rec), Err(SpoolError::Full { .. })));
    let got = read_records(&mut s);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|e| *e == entries(&rec)));
}

#[test]
fn oversized_records_and_categories_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        max_record_bytes: 1000,
        ..opts(1 << 20, 5000)
    };
    let mut s = Spool::open(d.path(), o).unwrap();
    let too_big = vec![(b"c".to_vec(), vec![b'm'; 1000])];
    assert!(matches!(
        s.append(&too_big),
        Err(SpoolError::RecordTooLarge { max: 1016, .. })
    ));
    let long_cat = vec![(vec![b'c'; 70_000], b"m".to_vec())];
    assert!(matches!(
        s.append(&long_cat),
        Err(SpoolError::CategoryTooLong { len: 70_000 })
    ));
    // Empty batches are a no-op.
    s.append::<Entry>(&[]).unwrap();
    assert!(segment_files(d.path()).is_empty());
    assert!(s.is_empty());

    let mut small = Spool::open(d.path().join("small"), opts(1 << 20, 100)).unwrap();
    let r = vec![(b"c".to_vec(), vec![b'm'; 100])];
    assert!(matches!(
        small.append(&r),
        Err(SpoolError::RecordTooLarge { max: 100, .. })
    ));
}

#[test]
fn accepts_entries_tuples_and_references() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), SpoolOptions::default()).unwrap();
    s.append(&[(&b"a"[..], &b"1"[..])]).unwrap();
    s.append(&[Entry::new(&b"b"[..], &b"2"[..])]).unwrap();
    let owned = [(b"c".to_vec(), bytes::Bytes::from_static(b"3"))];
    let refs: Vec<_> = owned.iter().collect();
    s.append(&refs).unwrap();
    s.append_and_sync(&[("d", "4")]).unwrap();
    let got: Vec<Entry> = s.next_batch(1 << 20).unwrap().unwrap().entries;
    let want: Vec<Entry> = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
        .iter()
        .map(|(c, m)| Entry::new(c.as_bytes().to_vec(), m.as_bytes().to_vec()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn damaged_or_leftover_cursor_replays_from_the_oldest_record() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for i in 0..5 {
        s.append(&batch(i)).unwrap();
    }
    let b = s.next_batch(0).unwrap().unwrap();
    s.commit(b.position).unwrap();
    drop(s);
    // A crash mid-commit leaves cursor.tmp; the real cursor still counts.
    std::fs::write(d.path().join("cursor.tmp"), b"partial").unwrap();
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    assert!(!d.path().join("cursor.tmp").exists());
    assert_eq!(read_records(&mut s).len(), 4);
    drop(s);
    // A damaged cursor: everything again (duplicates rather than loss).
    flip(&d.path().join("cursor"), 10, 0x40);
    let mut s = Spool::open(d.path(), o).unwrap();
    assert_eq!(read_records(&mut s).len(), 5);
}

#[test]
fn sync_and_commit_work_with_rolled_segments() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(256, 1 << 30);
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for i in 0..20 {
        s.append(&batch(i)).unwrap();
        if i % 7 == 0 {
            s.sync().unwrap();
        }
    }
    s.sync().unwrap();
    s.sync().unwrap(); // nothing new: a no-op
    drop(s);
    let mut s = Spool::open(d.path(), o).unwrap();
    let want: Vec<Vec<Entry>> = (0..20).map(|i| entries(&batch(i))).collect();
    assert_eq!(read_records(&mut s), want);
}

#[test]
fn invalid_options_are_refused() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        Spool::open(d.path(), opts(0, 1)),
        Err(SpoolError::InvalidOptions(_))
    ));
    let err = Spool::open(d.path().join("file").join("x"), SpoolOptions::default());
    assert!(err.is_ok(), "nested directories are created");
    std::fs::write(d.path().join("plain"), b"").unwrap();
    let err = Spool::open(d.path().join("plain"), SpoolOptions::default())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("create directory") && msg.contains("plain"),
        "{msg}"
    );
}

#[test]
fn a_spool_directory_can_be_open_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        scribe_spool::Spool::open(dir.path(), scribe_spool::SpoolOptions::default()).unwrap();
    let second = scribe_spool::Spool::open(dir.path(), scribe_spool::SpoolOptions::default());
    assert!(
        matches!(second, Err(scribe_spool::SpoolError::Locked { .. })),
        "{:?}",
        second.err()
    );
    drop(first);
    scribe_spool::Spool::open(dir.path(), scribe_spool::SpoolOptions::default()).unwrap();
}
