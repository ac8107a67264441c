//! `line_runs`: the same lines, offsets, over-long-line reports and counts as one event per
//! line, whatever the cuts between reads, writes and rotations.

use std::path::Path;
use std::time::Duration;

mod common;
use common::*;

use scribe_follow::{Event, FollowOptions, Follower};

/// An event as both modes must agree on it: lines by their bytes and the offset after them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Line(Vec<u8>, u64),
    TooLong(u64),
    Rotated,
    Truncated,
    Other,
}

fn follower(path: &Path, line_runs: bool) -> Follower {
    let mut f = Follower::new(FollowOptions {
        rotate_wait: Duration::ZERO,
        from_beginning: true,
        max_line_bytes: 100,
        // Small reads: lines are cut between reads and held as partial lines.
        max_read_bytes: 333,
        line_runs,
        ..FollowOptions::default()
    });
    f.watch(path);
    f
}

/// Polls until a poll delivers nothing more; the events, runs split into their lines.
fn drain(f: &mut Follower, runs: &mut usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let before = seen.len();
        let outcome = f.poll(&mut |e| match e {
            Event::Line {
                bytes,
                offset_after,
                ..
            } => seen.push(Seen::Line(bytes.to_vec(), offset_after)),
            Event::Lines {
                bytes,
                offset_after,
                count,
                ..
            } => {
                *runs += 1;
                assert_eq!(count, bytes.iter().filter(|&&b| b == b'\n').count());
                let mut after = offset_after - bytes.len() as u64;
                for l in bytes.split_inclusive(|&b| b == b'\n') {
                    after += l.len() as u64;
                    assert_eq!(l.last(), Some(&b'\n'), "a run holds whole lines only");
                    seen.push(Seen::Line(l.to_vec(), after));
                }
            }
            Event::LineTooLong { offset, .. } => seen.push(Seen::TooLong(offset)),
            Event::Rotated { .. } => seen.push(Seen::Rotated),
            Event::Truncated { .. } => seen.push(Seen::Truncated),
            _ => seen.push(Seen::Other),
        });
        if seen.len() == before && !outcome.pending {
            break;
        }
    }
    seen
}

#[test]
fn runs_deliver_what_lines_one_by_one_deliver() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut total_runs = 0;
    for round in 0..20 {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("app.log");
        append(&path, b"");
        let mut one_by_one = follower(&path, false);
        let mut in_runs = follower(&path, true);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut runs = 0;
        for step in 0..30 {
            // A write of a few lines, some over the 100-byte limit, the last often cut short.
            let mut w = Vec::new();
            for _ in 0..rng.usize(0..12) {
                let len = if rng.u8(..12) == 0 {
                    rng.usize(90..250)
                } else {
                    rng.usize(0..40)
                };
                w.extend((0..len).map(|_| b'a' + rng.u8(..26)));
                w.push(b'\n');
            }
            w.extend((0..rng.usize(0..20)).map(|_| b'z'));
            append(&path, &w);
            match step % 10 {
                // A rotation by rename, then a fresh file.
                7 => {
                    std::fs::rename(&path, d.path().join("app.log.1")).unwrap();
                    append(&path, b"");
                }
                // A copytruncate.
                9 if round % 2 == 0 => truncate(&path),
                _ => {}
            }
            a.extend(drain(&mut one_by_one, &mut 0));
            b.extend(drain(&mut in_runs, &mut runs));
            assert_eq!(a, b, "round {round} step {step}");
        }
        let (sa, sb) = (one_by_one.stats(), in_runs.stats());
        assert_eq!((sa.lines, sa.bytes), (sb.lines, sb.bytes), "round {round}");
        assert_eq!(sa.long_lines, sb.long_lines, "round {round}");
        total_runs += runs;
    }
    assert!(total_runs > 100, "runs were used: {total_runs}");
}
