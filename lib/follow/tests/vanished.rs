//! What counts as vanished: a file gone before it was read to its end (lines lost), and
//! only that. Rotated files removed after they were read — logrotate's `compress` without
//! `delaycompress`, old rotated names deleted by the rotation count, a rotation while the
//! reader was stopped — are closed, not vanished.

use std::fs::{self, File};
use std::time::Duration;

mod common;
use common::*;

use scribe_follow::{Event, FileId, FollowOptions, Follower};

/// An owned copy of an event, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(String),
    Opened,
    Rotated,
    Truncated,
    /// (offset, unread)
    Vanished(u64, u64),
    Closed(u64),
    Other,
}

fn opts() -> FollowOptions {
    FollowOptions {
        from_beginning: true,
        rotate_wait: Duration::ZERO,
        ..FollowOptions::default()
    }
}

/// One poll: its events, and the (file, offset) of every line, committed right away.
fn poll(f: &mut Follower) -> Vec<Ev> {
    let mut evs = Vec::new();
    let mut marks: Vec<(FileId, u64)> = Vec::new();
    f.poll(&mut |e| {
        evs.push(match e {
            Event::Line {
                bytes,
                file_id,
                offset_after,
                ..
            } => {
                marks.push((file_id, offset_after));
                Ev::Line(String::from_utf8_lossy(bytes).into_owned())
            }
            Event::Opened { .. } => Ev::Opened,
            Event::Rotated { .. } => Ev::Rotated,
            Event::Truncated { .. } => Ev::Truncated,
            Event::Vanished { offset, unread, .. } => Ev::Vanished(offset, unread),
            Event::Closed { offset, .. } => Ev::Closed(offset),
            _ => Ev::Other,
        })
    });
    for (id, offset) in marks {
        f.commit(id, offset).unwrap();
    }
    evs
}

fn vanished(evs: &[Ev]) -> Vec<&Ev> {
    evs.iter()
        .filter(|e| matches!(e, Ev::Vanished(..)))
        .collect()
}

#[test]
fn rotated_file_compressed_before_the_next_poll_is_closed_not_vanished() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"1\n2\n");
    let mut f = Follower::new(opts());
    f.watch(&p);
    assert_eq!(poll(&mut f).len(), 3, "opened, two lines");
    // logrotate with `compress` and no `delaycompress`: rename, create, gzip and remove the
    // rotated file, all before the follower looks again. Everything was read.
    let rotated = d.path().join("a.log.1");
    fs::rename(&p, &rotated).unwrap();
    append(&p, b"new\n");
    fs::write(d.path().join("a.log.1.gz"), b"(gzip)").unwrap();
    fs::remove_file(&rotated).unwrap();
    let evs = poll(&mut f);
    assert_eq!(
        evs,
        [Ev::Closed(4), Ev::Opened, Ev::Line("new\n".into())],
        "the old file ends where it was read to; the new one is read"
    );
    assert_eq!(f.stats().vanished, 0);
}

#[test]
fn old_copy_removed_by_a_copytruncate_rotation_is_not_vanished() {
    let d = tempfile::tempdir().unwrap();
    let (p, copy) = (d.path().join("a.log"), d.path().join("a.log.1"));
    append(&p, b"one\n");
    append(&copy, b"old copy\n");
    // A glob matching the rotated names too (`a.log*`) watches both.
    let mut f = Follower::new(opts());
    f.watch(&p);
    f.watch(&copy);
    poll(&mut f);
    // Keeps the old copy's inode from being given to the new copy (which would make this a
    // rewrite in place, not a removal): the file system is free to reuse it or not.
    let _pin = File::open(&copy).unwrap();
    // copytruncate, `rotate 1`: the old copy goes, the file is copied and truncated.
    fs::remove_file(&copy).unwrap();
    fs::copy(&p, &copy).unwrap();
    truncate(&p);
    append(&p, b"two\n");
    let evs = poll(&mut f);
    assert!(evs.contains(&Ev::Closed(9)), "{evs:?}");
    assert_eq!(vanished(&evs), Vec::<&Ev>::new());
    assert_eq!(f.stats().vanished, 0);
}

#[test]
fn rotated_file_removed_while_the_reader_was_stopped_is_not_vanished() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"1\n2\n");
    let held = FollowOptions {
        rotate_wait: Duration::from_secs(3600),
        ..opts()
    };
    let mut f = Follower::new(held.clone());
    f.watch(&p);
    poll(&mut f);
    let rotated = d.path().join("a.log.1");
    fs::rename(&p, &rotated).unwrap();
    append(&p, b"3\n");
    let evs = poll(&mut f);
    assert_eq!(evs[0], Ev::Rotated);
    // Stopped while the rotated file is still held for late writes (read to its end and
    // committed); it is compressed and removed before the restart.
    let saved = f.checkpoints();
    assert_eq!(saved.entries.len(), 2, "{saved:?}");
    drop(f);
    fs::remove_file(&rotated).unwrap();
    let mut f = Follower::with_checkpoints(held, &saved);
    f.watch(&p);
    append(&p, b"4\n");
    let evs = poll(&mut f);
    assert_eq!(evs, [Ev::Closed(4), Ev::Line("4\n".into())]);
    assert_eq!(f.stats().vanished, 0);
}

#[test]
fn file_deleted_with_bytes_seen_but_not_read_is_vanished() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"aaa\nbbb\nccc\nddd\n");
    // An 8-byte budget per poll: the first poll reads two lines and sees two more.
    let mut f = Follower::new(FollowOptions {
        max_read_bytes: 8,
        ..opts()
    });
    f.watch(&p);
    assert_eq!(poll(&mut f).len(), 3, "opened, two lines");
    fs::remove_file(&p).unwrap();
    let evs = poll(&mut f);
    assert_eq!(evs, [Ev::Vanished(8, 8)]);
    assert_eq!((f.stats().vanished, f.stats().vanished_unread), (1, 8));
}

#[test]
fn growth_seen_by_observe_before_a_delete_counts_as_vanished() {
    let d = tempfile::tempdir().unwrap();
    let (seen, unseen) = (d.path().join("seen.log"), d.path().join("unseen.log"));
    append(&seen, b"read\n");
    append(&unseen, b"read\n");
    let mut f = Follower::new(opts());
    f.watch(&seen);
    f.watch(&unseen);
    assert_eq!(poll(&mut f).len(), 4, "two files opened, a line each");
    // The caller cannot poll (its output is full) but looks: the growth is known.
    append(&seen, b"never read\n");
    f.observe();
    // Growth after the last look is invisible to a reader that holds no descriptor.
    append(&unseen, b"never read\n");
    fs::remove_file(&seen).unwrap();
    fs::remove_file(&unseen).unwrap();
    let evs = poll(&mut f);
    assert_eq!(evs, [Ev::Vanished(5, 11), Ev::Closed(5)]);
    assert_eq!((f.stats().vanished, f.stats().vanished_unread), (1, 11));
}
