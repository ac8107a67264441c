//! Scenario tests: real files in a temporary directory, driven through `Follower::poll`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

mod common;
use common::*;

use scribe_follow::{Checkpoints, Event, FileId, FollowOptions, Follower};

/// An owned copy of an event, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(Vec<u8>),
    Opened(u64),
    Rotated,
    Truncated,
    Vanished,
    Closed,
    TooLong(u64),
    Error,
}

fn opts() -> FollowOptions {
    FollowOptions {
        rotate_wait: Duration::ZERO,
        ..FollowOptions::default()
    }
}

/// One poll; every event, plus the (file, offset) of every line for committing.
fn poll_all(f: &mut Follower) -> (Vec<Ev>, Vec<(FileId, u64)>) {
    let mut evs = Vec::new();
    let mut marks = Vec::new();
    f.poll(&mut |e| {
        // A run (with `line_runs`) is its lines, each with the offset after it.
        if let Event::Lines {
            bytes,
            file_id,
            offset_after,
            ..
        } = e
        {
            let mut after = offset_after - bytes.len() as u64;
            for l in bytes.split_inclusive(|&b| b == b'\n') {
                after += l.len() as u64;
                marks.push((file_id, after));
                evs.push(Ev::Line(l.to_vec()));
            }
            return;
        }
        evs.push(match e {
            Event::Line {
                bytes,
                file_id,
                offset_after,
                ..
            } => {
                marks.push((file_id, offset_after));
                Ev::Line(bytes.to_vec())
            }
            Event::Opened { offset, .. } => Ev::Opened(offset),
            Event::Rotated { .. } => Ev::Rotated,
            Event::Truncated { .. } => Ev::Truncated,
            Event::Vanished { .. } => Ev::Vanished,
            Event::Closed { .. } => Ev::Closed,
            Event::LineTooLong { offset, .. } => Ev::TooLong(offset),
            Event::Error { .. } => Ev::Error,
            Event::Lines { .. } => unreachable!("split above"),
        })
    });
    (evs, marks)
}

/// The lines one poll delivers, as strings.
fn lines(f: &mut Follower) -> Vec<String> {
    poll_all(f)
        .0
        .into_iter()
        .filter_map(|e| match e {
            Ev::Line(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect()
}

fn follow(path: &Path, o: FollowOptions) -> Follower {
    let mut f = Follower::new(o);
    f.watch(path);
    f
}

#[test]
fn appended_lines_are_read_once_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = follow(&p, opts());
    assert!(lines(&mut f).is_empty());
    append(&p, b"one\ntwo\n");
    assert_eq!(lines(&mut f), ["one\n", "two\n"]);
    assert!(lines(&mut f).is_empty());
    append(&p, b"three\n");
    assert_eq!(lines(&mut f), ["three\n"]);
    assert_eq!(f.stats().lines, 3);
}

#[test]
fn partial_line_is_held_until_its_newline() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = follow(&p, opts());
    poll_all(&mut f);
    append(&p, b"first\nhal");
    assert_eq!(lines(&mut f), ["first\n"]);
    append(&p, b"f a li");
    assert!(lines(&mut f).is_empty());
    append(&p, b"ne\nnext\n");
    assert_eq!(lines(&mut f), ["half a line\n", "next\n"]);
}

#[test]
fn rename_and_create_drains_the_old_file_first() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut writer = File::create(&p).unwrap();
    let mut f = follow(
        &p,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    writer.write_all(b"1\n2\n").unwrap();
    assert_eq!(lines(&mut f), ["1\n", "2\n"]);
    // logrotate renames; the daemon keeps writing to its old descriptor until it reopens,
    // and ends with a partial line.
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    writer.write_all(b"3\n4\ntail").unwrap();
    append(&p, b"new1\nnew2\n");
    let (evs, _) = poll_all(&mut f);
    let got: Vec<Ev> = evs
        .into_iter()
        .filter(|e| !matches!(e, Ev::Opened(_)))
        .collect();
    let line = |s: &str| Ev::Line(s.as_bytes().to_vec());
    assert_eq!(
        got,
        [
            Ev::Rotated,
            line("3\n"),
            line("4\n"),
            line("tail"),
            Ev::Closed,
            line("new1\n"),
            line("new2\n")
        ]
    );
    assert_eq!(f.stats().rotations, 1);
}

#[test]
fn rotated_file_stays_open_until_rotate_wait() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut writer = File::create(&p).unwrap();
    let o = FollowOptions {
        rotate_wait: Duration::from_secs(3600),
        ..opts()
    };
    let mut f = follow(&p, o);
    poll_all(&mut f);
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    append(&p, b"new\n");
    assert_eq!(lines(&mut f), ["new\n"]);
    // A late write to the rotated file is still read, before newer lines.
    writer.write_all(b"late\n").unwrap();
    append(&p, b"newer\n");
    assert_eq!(lines(&mut f), ["late\n", "newer\n"]);
}

/// copytruncate with an 8-byte read budget: two lines read, two still unread when the file
/// is copied to `a.log.1` (if `keep_copy`) and truncated.
fn copytruncate_after_a_partial_read(keep_copy: bool) -> (Follower, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let o = FollowOptions {
        from_beginning: true,
        max_read_bytes: 8,
        ..opts()
    };
    append(&p, b"aaa\nbbb\nccc\nddd\n");
    let mut f = follow(&p, o);
    assert_eq!(lines(&mut f), ["aaa\n", "bbb\n"]);
    let copy = d.path().join("a.log.1");
    fs::copy(&p, &copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    if !keep_copy {
        fs::remove_file(&copy).unwrap();
    }
    append(&p, b"x\n");
    let (evs, _) = poll_all(&mut f);
    assert_eq!(evs[0], Ev::Truncated);
    let mut got: Vec<String> = evs
        .into_iter()
        .filter_map(|e| match e {
            Ev::Line(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect();
    for _ in 0..5 {
        got.extend(lines(&mut f));
    }
    (f, got)
}

#[test]
fn copytruncate_reads_what_was_not_read_yet_from_the_copy() {
    let (f, got) = copytruncate_after_a_partial_read(true);
    assert_eq!(
        got,
        ["ccc\n", "ddd\n", "x\n"],
        "nothing lost, nothing twice, in order"
    );
    assert_eq!(f.stats().truncations, 1);
    assert_eq!(f.stats().truncated_unread, 0);
}

#[test]
fn copytruncate_without_a_copy_restarts_at_zero_and_counts_what_it_saw() {
    let (f, got) = copytruncate_after_a_partial_read(false);
    assert_eq!(got, ["x\n"]);
    assert_eq!(f.stats().truncations, 1);
    assert_eq!(f.stats().truncated_unread, 8);
}

#[test]
fn truncate_and_regrow_past_the_offset_is_caught_by_the_fingerprint() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = follow(&p, opts());
    poll_all(&mut f);
    append(&p, b"short\n");
    assert_eq!(lines(&mut f), ["short\n"]);
    fs::write(&p, b"rewritten from the start\n").unwrap();
    assert_eq!(lines(&mut f), ["rewritten from the start\n"]);
    assert_eq!(f.stats().truncations, 1);
}

#[test]
fn delete_and_recreate_reads_the_new_file_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = follow(&p, opts());
    poll_all(&mut f);
    append(&p, b"old\n");
    assert_eq!(lines(&mut f), ["old\n"]);
    fs::remove_file(&p).unwrap();
    assert!(lines(&mut f).is_empty());
    append(&p, b"n1\n");
    assert_eq!(lines(&mut f), ["n1\n"]);
    // Deleted and recreated between two polls (the inode may well be reused). Same size
    // and same timestamp tick would be undetectable, so the new file is longer.
    fs::remove_file(&p).unwrap();
    append(&p, b"n2 longer\n");
    assert_eq!(lines(&mut f), ["n2 longer\n"]);
}

#[test]
fn file_and_directory_appearing_later_are_read_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("later").join("sub").join("a.log");
    let mut f = follow(&p, opts());
    assert!(poll_all(&mut f).0.is_empty());
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    assert!(poll_all(&mut f).0.is_empty());
    append(&p, b"hello\n");
    assert_eq!(
        poll_all(&mut f).0,
        [Ev::Opened(0), Ev::Line(b"hello\n".to_vec())]
    );
}

#[test]
fn retargeted_symlink_drains_the_old_target_then_reads_the_new() {
    let d = tempfile::tempdir().unwrap();
    let (a, b, link) = (d.path().join("a"), d.path().join("b"), d.path().join("cur"));
    append(&a, b"a1\n");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let mut f = follow(
        &link,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    assert_eq!(lines(&mut f), ["a1\n"]);
    append(&a, b"a2\n");
    append(&b, b"b1\n");
    // Retarget atomically, as scribed does with `<cat>_current`.
    let tmp = d.path().join("cur.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    fs::rename(&tmp, &link).unwrap();
    assert_eq!(lines(&mut f), ["a2\n", "b1\n"]);
    append(&b, b"b2\n");
    assert_eq!(lines(&mut f), ["b2\n"]);
}

#[test]
fn preexisting_files_start_at_the_end_unless_from_beginning() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"before\n");
    let mut at_end = follow(&p, opts());
    let mut from_start = follow(
        &p,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    assert_eq!(poll_all(&mut at_end).0, [Ev::Opened(7)]);
    assert_eq!(lines(&mut from_start), ["before\n"]);
    append(&p, b"after\n");
    assert_eq!(lines(&mut at_end), ["after\n"]);
    // A path watched after the first poll is new: it starts at 0.
    let q = d.path().join("b.log");
    append(&q, b"b\n");
    at_end.watch(&q);
    assert_eq!(lines(&mut at_end), ["b\n"]);
}

#[test]
fn checkpoints_resume_without_loss_or_duplicates() {
    let d = tempfile::tempdir().unwrap();
    let (p, q, pos) = (
        d.path().join("a.log"),
        d.path().join("b.log"),
        d.path().join("pos"),
    );
    append(&p, b"1\n2\n3\n");
    append(&q, b"q1\n");
    let mut f = follow(
        &p,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    f.watch(&q);
    let (_, marks) = poll_all(&mut f);
    // Only "1", "2" and "q1" were acknowledged; "3" was in flight when we stopped.
    f.commit(marks[1].0, marks[1].1).unwrap();
    f.commit(marks[3].0, marks[3].1).unwrap();
    assert!(f.commit(marks[0].0, 1000).is_err());
    f.checkpoints().save(&pos).unwrap();
    drop(f);

    append(&p, b"4\n");
    // While we were down, b.log was replaced by a different file (inode may be reused).
    fs::remove_file(&q).unwrap();
    append(&q, b"other\n");
    let loaded = Checkpoints::load(&pos).unwrap();
    assert_eq!(loaded.entries.len(), 2);
    let mut f = Follower::with_checkpoints(opts(), &loaded);
    f.watch(&p);
    f.watch(&q);
    assert_eq!(lines(&mut f), ["3\n", "4\n", "other\n"]);
}

#[test]
fn checkpoint_finds_a_file_rotated_while_stopped() {
    let d = tempfile::tempdir().unwrap();
    let (p, pos) = (d.path().join("a.log"), d.path().join("pos"));
    append(&p, b"1\n");
    let mut f = follow(
        &p,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    let (_, marks) = poll_all(&mut f);
    f.commit(marks[0].0, marks[0].1).unwrap();
    f.checkpoints().save(&pos).unwrap();
    drop(f);
    append(&p, b"2\n");
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    append(&p, b"new\n");
    let mut f = Follower::with_checkpoints(opts(), &Checkpoints::load(&pos).unwrap());
    f.watch(&p);
    assert_eq!(lines(&mut f), ["2\n", "new\n"]);
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn thousands_of_files_hold_no_descriptors() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Follower::new(opts());
    let paths: Vec<_> = (0..2000)
        .map(|i| d.path().join(format!("f{i}.log")))
        .collect();
    for p in &paths {
        f.watch(p);
    }
    poll_all(&mut f);
    for p in &paths {
        append(p, b"x\n");
    }
    let before = open_fds();
    assert_eq!(lines(&mut f).len(), 2000);
    for p in &paths[..10] {
        append(p, b"y\n");
    }
    assert_eq!(lines(&mut f).len(), 10);
    // Other tests run on other threads; allow for their few descriptors, not for 2000.
    assert!(open_fds() < before + 50, "{before} -> {}", open_fds());
}

#[test]
fn too_long_line_is_reported_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let o = FollowOptions {
        max_line_bytes: 10,
        ..opts()
    };
    let mut f = follow(&p, o);
    poll_all(&mut f);
    append(&p, b"ok\n0123456789ABCDEF");
    assert_eq!(
        poll_all(&mut f).0,
        [Ev::Opened(0), Ev::Line(b"ok\n".to_vec()), Ev::TooLong(3)]
    );
    append(&p, b"GHIJ\nafter\n0123456789abc\n");
    assert_eq!(
        poll_all(&mut f).0,
        [Ev::Line(b"after\n".to_vec()), Ev::TooLong(30)]
    );
    assert_eq!(f.stats().long_lines, 2);
    append(&p, b"123456789\n");
    assert_eq!(lines(&mut f), ["123456789\n"]);
}

#[test]
fn bytes_pass_through_unchanged() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = follow(&p, opts());
    poll_all(&mut f);
    let raw: &[u8] = b"\xff\xfe\x00nul\x00\r\n\xc3\x28\n";
    append(&p, raw);
    assert_eq!(
        poll_all(&mut f).0,
        [
            Ev::Opened(0),
            Ev::Line(b"\xff\xfe\x00nul\x00\r\n".to_vec()),
            Ev::Line(b"\xc3\x28\n".to_vec())
        ]
    );
}

#[test]
fn a_directory_at_the_path_is_an_error_once() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("dir");
    fs::create_dir(&p).unwrap();
    let mut f = follow(&p, opts());
    assert_eq!(poll_all(&mut f).0, [Ev::Error]);
    assert!(poll_all(&mut f).0.is_empty());
}

#[test]
fn generations_that_came_and_went_between_two_polls_are_read_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("app.log");
    let old = d.path().join("app.log.0");
    append(&old, b"rotated long ago\n");
    // An old rotated file must not count as a skipped generation.
    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(past)
        .unwrap();
    append(&p, b"a1\n");
    let mut f = follow(
        &p,
        FollowOptions {
            from_beginning: true,
            ..opts()
        },
    );
    assert_eq!(lines(&mut f), ["a1\n"]);
    // Three rotations before the next poll: a -> .1, b -> .2, c -> .3, then d at the path.
    append(&p, b"a2\n");
    fs::rename(&p, d.path().join("app.log.1")).unwrap();
    append(&p, b"b1\nb2\n");
    fs::rename(&p, d.path().join("app.log.2")).unwrap();
    append(&p, b"c1\n");
    fs::write(d.path().join("app.log.2.gz"), b"\x1f\x8bcompressed copy").unwrap();
    fs::rename(&p, d.path().join("app.log.3")).unwrap();
    append(&p, b"d1\n");
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(lines(&mut f));
    }
    assert_eq!(got, ["a2\n", "b1\n", "b2\n", "c1\n", "d1\n"]);
    assert_eq!(f.stats().rotations, 3);
}
