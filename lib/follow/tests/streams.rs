//! Stream nonces: each generation of a followed file names its byte offsets with a nonce that
//! survives restarts from checkpoints and changes whenever the offsets start over.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

mod common;
use common::*;

use scribe_follow::{Checkpoints, Event, FileId, FollowOptions, Follower};

/// An owned copy of the events that carry nonces.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    /// (stream, offset_after, bytes)
    Line(u64, u64, String),
    Opened(u64),
    Truncated(u64),
    Other,
}

fn opts() -> FollowOptions {
    FollowOptions {
        rotate_wait: Duration::ZERO,
        from_beginning: true,
        ..FollowOptions::default()
    }
}

/// One poll's events, plus the (file, offset) of every line for committing.
fn poll(f: &mut Follower) -> (Vec<Ev>, Vec<(FileId, u64)>) {
    let mut evs = Vec::new();
    let mut marks = Vec::new();
    f.poll(&mut |e| {
        evs.push(match e {
            Event::Line {
                file_id,
                stream,
                offset_after,
                bytes,
                ..
            } => {
                marks.push((file_id, offset_after));
                Ev::Line(
                    stream,
                    offset_after,
                    String::from_utf8_lossy(bytes).into_owned(),
                )
            }
            Event::Opened { stream, .. } => Ev::Opened(stream),
            Event::Truncated { new_stream, .. } => Ev::Truncated(new_stream),
            _ => Ev::Other,
        })
    });
    (evs, marks)
}

/// The (stream, text) of every line in `evs`.
fn lines(evs: &[Ev]) -> Vec<(u64, &str)> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Line(s, _, b) => Some((*s, b.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn nonce_is_stable_across_save_load_and_with_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let (p, pos) = (d.path().join("a.log"), d.path().join("pos"));
    append(&p, b"1\n2\n3\n");
    let mut f = Follower::new(opts());
    f.watch(&p);
    let (evs, marks) = poll(&mut f);
    let Ev::Opened(s) = evs[0] else {
        panic!("{evs:?}")
    };
    assert_ne!(s, 0);
    assert_eq!(lines(&evs), [(s, "1\n"), (s, "2\n"), (s, "3\n")]);
    assert_eq!(f.stream_of(marks[0].0), Some(s));
    assert_eq!(f.stream_of(FileId::default()), None);
    // "3" was in flight when we were killed: it comes again, under the same nonce and
    // at the same offsets, so a receiver can recognise it.
    f.commit(marks[1].0, marks[1].1).unwrap();
    let saved = f.checkpoints();
    assert_eq!(saved.entries[0].stream, s);
    saved.save(&pos).unwrap();
    drop(f);

    let loaded = Checkpoints::load(&pos).unwrap();
    assert_eq!(loaded, saved);
    let mut f = Follower::with_checkpoints(opts(), &loaded);
    f.watch(&p);
    assert!(
        !f.has_unsaved_streams(),
        "the restored nonce is in the file"
    );
    append(&p, b"4\n");
    let (evs, marks) = poll(&mut f);
    assert_eq!(
        evs,
        [Ev::Line(s, 6, "3\n".into()), Ev::Line(s, 8, "4\n".into())]
    );
    assert_eq!(f.stream_of(marks[0].0), Some(s));
    assert!(!f.has_unsaved_streams());

    // Rotated while stopped: the file is found under its new name and keeps its nonce; the
    // new file at the path is a new stream.
    f.commit(marks[1].0, marks[1].1).unwrap();
    f.checkpoints().save(&pos).unwrap();
    drop(f);
    append(&p, b"5\n");
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    append(&p, b"new\n");
    let mut f = Follower::with_checkpoints(opts(), &Checkpoints::load(&pos).unwrap());
    f.watch(&p);
    let (evs, _) = poll(&mut f);
    let got = lines(&evs);
    assert_eq!(got[0], (s, "5\n"));
    assert_eq!(got[1].1, "new\n");
    assert!(got[1].0 != s && got[1].0 != 0);
}

#[test]
fn truncation_starts_a_new_stream() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"old one\nold two\n");
    let mut f = Follower::new(opts());
    f.watch(&p);
    let (evs, _) = poll(&mut f);
    let s1 = lines(&evs)[0].0;
    f.checkpoints();
    truncate(&p);
    append(&p, b"x\n");
    let (evs, marks) = poll(&mut f);
    let Some(&Ev::Truncated(s2)) = evs.iter().find(|e| matches!(e, Ev::Truncated(_))) else {
        panic!("{evs:?}")
    };
    assert!(s2 != s1 && s2 != 0);
    assert_eq!(lines(&evs), [(s2, "x\n")]);
    assert_eq!(f.stream_of(marks[0].0), Some(s2));
    assert!(f.has_unsaved_streams());
    assert_eq!(f.checkpoints().entries[0].stream, s2);

    // A rewrite in place that regrows past the read offset: also a new stream.
    fs::write(&p, b"rewritten from the start\n").unwrap();
    let (evs, _) = poll(&mut f);
    let got = lines(&evs);
    assert_eq!(got.len(), 1);
    assert!(got[0].0 != s2 && got[0].0 != s1);
    assert!(evs.contains(&Ev::Truncated(got[0].0)));
}

#[test]
fn rotated_file_keeps_its_nonce_and_the_new_file_gets_another() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut writer = File::create(&p).unwrap();
    let mut f = Follower::new(opts());
    f.watch(&p);
    writer.write_all(b"1\n").unwrap();
    let (evs, _) = poll(&mut f);
    let s1 = lines(&evs)[0].0;
    f.checkpoints();
    // The writer keeps writing to the rotated file until it reopens.
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    writer.write_all(b"2\n").unwrap();
    append(&p, b"new\n");
    let (evs, _) = poll(&mut f);
    let opened: Vec<u64> = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Opened(s) => Some(*s),
            _ => None,
        })
        .collect();
    let [s2] = opened[..] else { panic!("{evs:?}") };
    assert!(s2 != s1 && s2 != 0);
    assert_eq!(lines(&evs), [(s1, "2\n"), (s2, "new\n")]);
    assert!(f.has_unsaved_streams());
}

#[test]
fn skipped_generations_each_get_their_own_nonce() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("app.log");
    append(&p, b"a1\n");
    let mut f = Follower::new(opts());
    f.watch(&p);
    let (evs, _) = poll(&mut f);
    let sa = lines(&evs)[0].0;
    fs::rename(&p, d.path().join("app.log.1")).unwrap();
    append(&p, b"b1\n");
    fs::rename(&p, d.path().join("app.log.2")).unwrap();
    append(&p, b"c1\n");
    let mut got = Vec::new();
    for _ in 0..5 {
        let (evs, _) = poll(&mut f);
        got.extend(lines(&evs).into_iter().map(|(s, l)| (s, l.to_owned())));
    }
    let texts: Vec<&str> = got.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(texts, ["b1\n", "c1\n"]);
    let (sb, sc) = (got[0].0, got[1].0);
    assert!(sb != sa && sc != sa && sb != sc && sb != 0 && sc != 0);
}

#[test]
fn copytruncate_read_back_from_the_copy_keeps_the_old_nonce() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    append(&p, b"aaa\nbbb\nccc\nddd\n");
    let mut f = Follower::new(FollowOptions {
        max_read_bytes: 8,
        ..opts()
    });
    f.watch(&p);
    let (evs, _) = poll(&mut f);
    let s1 = lines(&evs)[0].0;
    assert_eq!(lines(&evs), [(s1, "aaa\n"), (s1, "bbb\n")]);
    fs::copy(&p, d.path().join("a.log.1")).unwrap();
    truncate(&p);
    append(&p, b"x\n");
    let mut evs = Vec::new();
    for _ in 0..5 {
        evs.extend(poll(&mut f).0);
    }
    let Some(&Ev::Truncated(s2)) = evs.iter().find(|e| matches!(e, Ev::Truncated(_))) else {
        panic!("{evs:?}")
    };
    assert_ne!(s2, s1);
    // The copy's bytes are the old generation's, at the old offsets.
    let got: Vec<&Ev> = evs.iter().filter(|e| matches!(e, Ev::Line(..))).collect();
    assert_eq!(
        got,
        [
            &Ev::Line(s1, 12, "ccc\n".into()),
            &Ev::Line(s1, 16, "ddd\n".into()),
            &Ev::Line(s2, 2, "x\n".into())
        ]
    );
}

/// A version-1 positions file (no stream column) for `path`, committed at `offset`.
fn write_v1(pos: &Path, path: &Path, offset: u64) {
    let meta = fs::metadata(path).unwrap();
    let head = fs::read(path).unwrap();
    let head = &head[..head.len().min(1024)];
    let mut body = format!(
        "scribe-follow positions 1\n{}\t{}\t{}\t{:08x}\t{}\t{}\n",
        meta.dev(),
        meta.ino(),
        head.len(),
        crc32fast::hash(head),
        offset,
        path.to_str().unwrap()
    )
    .into_bytes();
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(format!("crc {crc:08x}\n").as_bytes());
    fs::write(pos, body).unwrap();
}

#[test]
fn version_1_positions_load_and_get_a_fresh_unsaved_nonce() {
    let d = tempfile::tempdir().unwrap();
    let (p, pos) = (d.path().join("a.log"), d.path().join("pos"));
    append(&p, b"1\n2\n");
    write_v1(&pos, &p, 2);
    let loaded = Checkpoints::load(&pos).unwrap();
    assert_eq!(loaded.entries.len(), 1);
    assert_eq!(loaded.entries[0].stream, 0, "unknown");
    let mut f = Follower::with_checkpoints(opts(), &loaded);
    assert!(!f.has_unsaved_streams());
    f.watch(&p);
    assert!(f.has_unsaved_streams(), "the fresh nonce is not saved yet");
    let (evs, marks) = poll(&mut f);
    let s = f.stream_of(marks[0].0).unwrap();
    assert_ne!(s, 0);
    assert_eq!(evs, [Ev::Line(s, 4, "2\n".into())], "resumed at the offset");
    let cps = f.checkpoints();
    assert!(!f.has_unsaved_streams());
    assert_eq!(cps.entries[0].stream, s);
    cps.save(&pos).unwrap();
    assert!(fs::read(&pos)
        .unwrap()
        .starts_with(b"scribe-follow positions 2\n"));
    assert_eq!(Checkpoints::load(&pos).unwrap().entries[0].stream, s);
}

#[test]
fn has_unsaved_streams_tracks_nonces_not_yet_in_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.log");
    let mut f = Follower::new(opts());
    f.watch(&p);
    assert!(!f.has_unsaved_streams());
    poll(&mut f);
    assert!(!f.has_unsaved_streams(), "no file yet, no stream");
    append(&p, b"1\n");
    poll(&mut f);
    assert!(f.has_unsaved_streams(), "a new file opened");
    assert!(f.has_unsaved_streams(), "asking does not clear it");
    f.checkpoints();
    assert!(!f.has_unsaved_streams());
    append(&p, b"2\n");
    poll(&mut f);
    assert!(!f.has_unsaved_streams(), "more lines of a saved stream");
    fs::rename(&p, d.path().join("a.log.1")).unwrap();
    poll(&mut f);
    assert!(!f.has_unsaved_streams(), "draining keeps the saved nonce");
    append(&p, b"3\n");
    poll(&mut f);
    assert!(f.has_unsaved_streams(), "the new file at the path");
    f.checkpoints();
    truncate(&p);
    poll(&mut f);
    assert!(f.has_unsaved_streams(), "truncation");
}
