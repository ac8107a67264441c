//! A glob that also matches rotated names (`app.log*`) with a rotation count (logrotate's
//! `rotate 3`): every rotated name is already watched, and after each rotation it holds a
//! file that was read under another name. That file must carry on where it was read to,
//! under the same stream nonce, never be read again from its start.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::unix::fs::MetadataExt;

mod common;
use common::*;

use scribe_follow::{Event, FileId, FollowOptions, Follower, Globs};

/// logrotate `rotate 3` (rename + create): `.3` removed, `.2` → `.3`, `.1` → `.2`,
/// the file → `.1`, a new empty file.
fn rotate(names: &[PathBuf]) {
    let _ = fs::remove_file(&names[3]);
    for i in (0..3).rev() {
        if names[i].exists() {
            fs::rename(&names[i], &names[i + 1]).unwrap();
        }
    }
    append(&names[0], b"");
}

struct Seen {
    /// Line → how many times it was delivered.
    count: HashMap<String, usize>,
    /// Line → the stream nonce it came with.
    stream: HashMap<String, u64>,
    /// (stream, offset_after) of every line: an entry id is never used twice.
    ids: HashMap<(u64, u64), String>,
}

fn poll(f: &mut Follower, seen: &mut Seen, commit: bool) {
    let mut marks: Vec<(FileId, u64)> = Vec::new();
    f.poll(&mut |e| {
        if let Event::Line {
            bytes,
            stream,
            offset_after,
            file_id,
            ..
        } = e
        {
            let line = String::from_utf8_lossy(bytes).into_owned();
            *seen.count.entry(line.clone()).or_default() += 1;
            seen.stream.insert(line.clone(), stream);
            if let Some(other) = seen.ids.insert((stream, offset_after), line.clone()) {
                panic!("entry id ({stream}, {offset_after}) used by {other:?} and {line:?}");
            }
            marks.push((file_id, offset_after));
        }
    });
    if commit {
        for (id, off) in marks {
            f.commit(id, off).unwrap();
        }
    }
}

/// What `ship --follow`'s discovery does: watch every path the glob matches, except a file
/// already followed under another name (its rotated name), remembered until that path holds
/// another file.
fn discover(f: &mut Follower, globs: &Globs, skipped: &mut HashMap<PathBuf, (u64, u64)>) {
    let key = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    for path in globs.scan() {
        if f.paths().any(|p| p == path) {
            continue;
        }
        let Some(k) = key(&path) else { continue };
        if skipped.get(&path) == Some(&k) {
            continue;
        }
        if f.is_following(k.0, k.1) {
            skipped.insert(path, k);
            continue;
        }
        f.watch(path);
    }
    skipped.retain(|p, k| key(p) == Some(*k));
}

fn scenario(rotate_wait: Duration, commit: bool) {
    scenario_with(rotate_wait, commit, false);
}

fn scenario_with(rotate_wait: Duration, commit: bool, discovered: bool) {
    let d = tempfile::tempdir().unwrap();
    let names: Vec<PathBuf> = ["app.log", "app.log.1", "app.log.2", "app.log.3"]
        .iter()
        .map(|n| d.path().join(n))
        .collect();
    // History from before the follower started: not read (it starts at the ends).
    for (i, n) in names.iter().enumerate() {
        append(n, format!("old {i}\n").as_bytes());
    }
    let mut f = Follower::new(FollowOptions {
        rotate_wait,
        ..FollowOptions::default()
    });
    let pattern = format!("{}*", names[0].display());
    let globs = Globs::new(&[pattern], &[]).unwrap();
    let mut skipped = HashMap::new();
    if discovered {
        // Only the file itself at first: the rotated names appear with the rotations.
        for n in &names[1..] {
            fs::remove_file(n).unwrap();
        }
    }
    // The glob `app.log*` matches all the names there are.
    discover(&mut f, &globs, &mut skipped);
    let mut seen = Seen {
        count: HashMap::new(),
        stream: HashMap::new(),
        ids: HashMap::new(),
    };
    poll(&mut f, &mut seen, commit);
    let mut written = Vec::new();
    let mut write = |path: &Path, line: String| {
        append(path, line.as_bytes());
        written.push(line);
    };
    for round in 0..6 {
        write(&names[0], format!("round {round} a\n"));
        poll(&mut f, &mut seen, commit);
        write(&names[0], format!("round {round} b\n"));
        if round % 2 == 0 {
            poll(&mut f, &mut seen, commit);
        }
        rotate(&names);
        // The writer has not reopened its log yet.
        write(&names[1], format!("round {round} late\n"));
        poll(&mut f, &mut seen, commit);
        write(&names[0], format!("round {round} new\n"));
        poll(&mut f, &mut seen, commit);
        discover(&mut f, &globs, &mut skipped);
        poll(&mut f, &mut seen, commit);
    }
    for line in &written {
        assert_eq!(seen.count.get(line), Some(&1), "{line:?}: {:?}", seen.count);
    }
    assert_eq!(seen.count.len(), written.len(), "{:?}", seen.count);
    // A late line continues its generation's stream: same nonce as the lines before it.
    for round in 0..6 {
        let a = seen.stream[&format!("round {round} a\n")];
        assert_eq!(
            a,
            seen.stream[&format!("round {round} late\n")],
            "round {round}"
        );
    }
    assert_eq!(f.stats().vanished, 0);
}

#[test]
fn rotation_count_under_a_glob_reads_each_line_once() {
    scenario(Duration::ZERO, true);
}

#[test]
fn rotation_count_under_a_glob_reads_each_line_once_uncommitted() {
    scenario(Duration::ZERO, false);
}

#[test]
fn rotation_count_under_a_glob_reads_each_line_once_while_draining() {
    scenario(Duration::from_secs(600), true);
}

#[test]
fn rotated_names_discovered_as_they_appear_are_read_once() {
    scenario_with(Duration::ZERO, true, true);
}

#[test]
fn rotated_names_discovered_while_draining_are_read_once() {
    scenario_with(Duration::from_secs(600), true, true);
}
