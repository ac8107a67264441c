//! A full disk under the spool (a small tmpfs, mounted when the test may): failed writes leave
//! the spool consistent and can be retried, a spool that filled the disk itself can still
//! commit and give the space back, and what a failed sync leaves can be cut off.

mod common;

use common::*;
use scribe_spool::{Entry, Spool, SpoolError};

/// A record of about 10 KiB (so that a write hitting the end of the disk is cut short at a
/// page boundary, leaving part of the record).
fn big(i: u64) -> Batch {
    let mut msg = format!("record {i} ").into_bytes();
    msg.resize(10_000 + (i as usize % 7) * 300, b'a' + (i % 26) as u8);
    vec![(b"c".to_vec(), msg)]
}

/// Appends `big(i)` from `from` on until the disk is full; returns the first `i` refused.
fn append_until_full(s: &mut Spool, from: u64) -> u64 {
    for i in from..from + 10_000 {
        match s.append(&big(i)) {
            Ok(()) => {}
            Err(e) if e.is_disk_full() => return i,
            Err(e) => panic!("append {i}: {e}"),
        }
    }
    panic!("the disk never filled up");
}

fn want(range: std::ops::Range<u64>) -> Vec<Vec<Entry>> {
    range.map(|i| entries(&big(i))).collect()
}

#[test]
fn a_write_that_hits_a_full_disk_is_cut_back_and_can_be_retried() {
    let Some(disk) = Tmpfs::mount("spool a_write_that_hits_a_full_disk", 1 << 20) else {
        return;
    };
    let dir = disk.dir.join("spool");
    let o = opts(64 << 10, 1 << 30);
    let mut s = Spool::open(&dir, o.clone()).unwrap();
    // Leave the spool about 300 KiB, then let it run into the end.
    fill_up(&disk.dir.join("filler"), (1 << 20) - (300 << 10));
    let refused = append_until_full(&mut s, 0);
    assert!(refused > 3, "only {refused} records fitted");
    // Nothing partial stays behind, however often the append is tried again.
    for _ in 0..3 {
        let e = s.append(&big(refused)).unwrap_err();
        assert!(e.is_disk_full(), "{e}");
        assert!(matches!(e, SpoolError::Io { .. }), "{e:?}");
        assert_eq!(disk_bytes(&dir), s.bytes(), "a partial record was left");
    }
    s.sync().unwrap();
    // Room again: the same append goes through, behind the others.
    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    for i in refused..refused + 5 {
        s.append(&big(i)).unwrap();
    }
    s.sync().unwrap();
    assert_eq!(read_records(&mut s), want(0..refused + 5));
    assert_eq!(s.stats().corrupt_records, 0);
    drop(s);
    let mut s = Spool::open(&dir, o).unwrap();
    assert_eq!(read_records(&mut s), want(0..refused + 5), "after a reopen");
    assert_eq!(s.stats().corrupt_records, 0);
}

#[test]
fn a_spool_that_filled_the_disk_commits_and_gives_the_space_back() {
    let Some(disk) = Tmpfs::mount("spool a_spool_that_filled_the_disk", 1 << 20) else {
        return;
    };
    let dir = disk.dir.join("spool");
    // One segment (the head) takes the whole disk: nothing but the head to free.
    let o = opts(64 << 20, 1 << 30);
    let mut s = Spool::open(&dir, o.clone()).unwrap();
    let refused = append_until_full(&mut s, 0);
    s.sync().unwrap();
    assert_eq!(segment_files(&dir).len(), 1);
    // Delivered in two halves: the first commit has nothing to free, and no room for the
    // cursor; the spool stays as it was.
    let first = s.next_batch(200 << 10).unwrap().unwrap();
    let e = s.commit(first.position).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert_eq!(s.committed_position(), Default::default());
    // Drained: the head goes, the cursor fits.
    while s.next_batch(1 << 20).unwrap().is_some() {}
    s.commit(s.read_position()).unwrap();
    assert!(segment_files(&dir).is_empty(), "the drained head was kept");
    assert_eq!(s.bytes(), 0);
    for i in refused..refused + 3 {
        s.append(&big(i)).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let mut s = Spool::open(&dir, o).unwrap();
    assert_eq!(read_records(&mut s), want(refused..refused + 3));
}

#[test]
fn a_segment_that_cannot_be_created_changes_nothing() {
    // Room for data, but (once the fillers are made) not for one more file.
    let Some(disk) = Tmpfs::mount_with("spool a_segment_that_cannot_be_created", "nr_inodes=16")
    else {
        return;
    };
    let dir = disk.dir.join("spool");
    let o = opts(25_000, 1 << 30);
    let mut s = Spool::open(&dir, o.clone()).unwrap();
    s.append(&big(0)).unwrap();
    s.append(&big(1)).unwrap();
    s.sync().unwrap();
    let fillers: Vec<_> = (0..)
        .map(|i| disk.dir.join(format!("filler{i}")))
        .take_while(|p| std::fs::File::create(p).is_ok())
        .collect();
    // The next record needs a new segment (25 KB each): refused, and refused again.
    for _ in 0..2 {
        let e = s.append(&big(2)).unwrap_err();
        assert!(e.is_disk_full(), "{e}");
        assert!(e.to_string().contains("create segment"), "{e}");
    }
    assert_eq!(
        segment_files(&dir).len(),
        1,
        "the refused segment was left behind"
    );
    for f in fillers {
        std::fs::remove_file(f).unwrap();
    }
    s.append(&big(2)).unwrap();
    s.sync().unwrap();
    assert_eq!(read_records(&mut s), want(0..3));
    drop(s);
    let mut s = Spool::open(&dir, o).unwrap();
    assert_eq!(read_records(&mut s), want(0..3), "after a reopen");
    assert_eq!(s.stats().corrupt_records, 0);
}

#[test]
fn records_a_failed_sync_leaves_can_be_cut_off_and_appended_again() {
    let d = tempfile::tempdir().unwrap();
    // Small segments: the unsynced records span a roll.
    let o = opts(25_000, 1 << 30);
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for i in 0..3 {
        s.append(&big(i)).unwrap();
    }
    s.sync().unwrap();
    let synced = disk_bytes(d.path());
    for i in 3..7 {
        s.append(&big(i)).unwrap();
    }
    // As if the sync had failed: the caller cuts them off and appends them again.
    s.discard_unsynced().unwrap();
    assert_eq!(disk_bytes(d.path()), synced);
    assert_eq!(s.bytes(), synced);
    for i in 3..7 {
        s.append(&big(i)).unwrap();
    }
    s.sync().unwrap();
    assert_eq!(read_records(&mut s), want(0..7), "each record once");
    drop(s);
    let mut s = Spool::open(d.path(), o).unwrap();
    assert_eq!(read_records(&mut s), want(0..7), "after a reopen");
    assert_eq!(s.stats().corrupt_records, 0);
}
