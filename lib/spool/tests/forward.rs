//! The forwarding core: modes, the commit rule, commit-then-rewind, committing past damage.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use scribe_spool::forward::{Forwarder, Mode, Next, COMMIT_EVERY_BYTES};
use scribe_spool::{Entry, Spool, SpoolOptions};

fn filled(dir: &Path, n: u64, o: &SpoolOptions) {
    let mut s = Spool::open(dir, o.clone()).unwrap();
    for i in 0..n {
        s.append(&batch(i)).unwrap();
    }
    s.sync().unwrap();
}

fn open(dir: &Path, o: &SpoolOptions) -> Forwarder {
    Forwarder::new(Spool::open(dir, o.clone()).unwrap())
}

fn want(range: impl Iterator<Item = u64>) -> Vec<Vec<Entry>> {
    range.map(|i| entries(&batch(i))).collect()
}

/// Replays one record per batch, acknowledging each, until drained.
fn drain(fwd: &mut Forwarder) -> Vec<Vec<Entry>> {
    let mut out = Vec::new();
    loop {
        match fwd.next_batch(0).unwrap() {
            Next::Send(b) => {
                out.push(b.entries);
                fwd.acked().unwrap();
            }
            Next::Wait => panic!("nothing is in flight"),
            Next::Drained => return out,
        }
    }
}

fn sent(next: Next) -> Vec<Entry> {
    match next {
        Next::Send(b) => b.entries,
        other => panic!("expected a batch, got {other:?}"),
    }
}

#[test]
fn a_new_forwarder_drains_a_backlog_and_streams_an_empty_spool() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    assert_eq!(open(d.path(), &o).mode(), Mode::Streaming);
    filled(d.path(), 3, &o);
    let mut fwd = open(d.path(), &o);
    assert_eq!(fwd.mode(), Mode::Draining);
    assert_eq!(drain(&mut fwd), want(0..3));
    assert_eq!(fwd.mode(), Mode::Streaming);
    assert!(fwd.spool().is_empty());
    drop(fwd);
    assert_eq!(open(d.path(), &o).mode(), Mode::Streaming);
}

#[test]
fn a_damaged_tail_is_committed_past_once_drained() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    filled(d.path(), 5, &o);
    let layout = record_layout(d.path(), o.clone());
    let (path, off, len) = layout[4].clone();
    // A torn tail: half of a record after the last whole one.
    let mut data = fs::read(&path).unwrap();
    let half = data[off as usize..(off + len / 2) as usize].to_vec();
    data.extend_from_slice(&half);
    fs::write(&path, data).unwrap();

    let mut fwd = open(d.path(), &o);
    // One record per batch: the damage is met by a read that finds no record after it, so no
    // batch's position lies past it. Only committing the read position gets past it.
    assert_eq!(drain(&mut fwd), want(0..5));
    assert_eq!(fwd.take_corrupt_records(), 1);
    assert_eq!(fwd.take_corrupt_records(), 0);
    assert_eq!(fwd.spool().bytes(), 0, "the damaged tail is not counted");
    drop(fwd);
    let fwd = open(d.path(), &o);
    assert_eq!(fwd.mode(), Mode::Streaming, "no backlog after a restart");
}

#[test]
fn a_spool_of_nothing_but_damage_drains_to_empty() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    filled(d.path(), 1, &o);
    let (path, off, len) = record_layout(d.path(), o.clone())[0].clone();
    truncate(&path, off + len / 2);
    let mut fwd = open(d.path(), &o);
    assert_eq!(fwd.mode(), Mode::Draining);
    assert!(drain(&mut fwd).is_empty());
    assert!(fwd.spool().is_empty());
    drop(fwd);
    assert_eq!(open(d.path(), &o).mode(), Mode::Streaming);
}

#[test]
fn the_commit_interval_is_a_quarter_of_the_spool_at_most_16_mib() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(
        open(d.path(), &opts(1 << 20, 1 << 30)).commit_every(),
        COMMIT_EVERY_BYTES
    );
    assert_eq!(open(d.path(), &opts(1 << 20, 4000)).commit_every(), 1000);
}

#[test]
fn commits_count_acknowledged_bytes_not_sent_ones() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 4000); // commit every 1000 acknowledged bytes
    filled(d.path(), 12, &o);
    let mut fwd = open(d.path(), &o);
    let start = fwd.spool().committed_position();
    // A window of batches in flight, far past the interval: nothing is committed yet.
    let mut sizes = Vec::new();
    for _ in 0..12 {
        match fwd.next_batch(0).unwrap() {
            Next::Send(b) => sizes.push(b.bytes),
            other => panic!("{other:?}"),
        }
    }
    assert!(sizes.iter().sum::<u64>() > 1000);
    assert_eq!(fwd.in_flight(), 12);
    assert_eq!(fwd.spool().committed_position(), start);
    // Acknowledgements commit once 1000 acknowledged bytes have gathered, not before.
    let mut acked = 0;
    for size in sizes {
        let before = fwd.spool().committed_position();
        fwd.acked().unwrap();
        acked += size;
        if acked >= 1000 {
            assert!(fwd.spool().committed_position() > before);
            acked = 0;
        } else {
            assert_eq!(fwd.spool().committed_position(), before);
        }
    }
}

/// `note_acked` says when a commit is due without making it, so a windowed caller can read
/// and send further batches first: the commit then covers exactly the acknowledged batches,
/// not what was read since, and a restart resumes right after them.
#[test]
fn a_due_commit_can_wait_while_further_batches_are_read() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 4000); // commit every 1000 acknowledged bytes
    filled(d.path(), 12, &o);
    let mut fwd = open(d.path(), &o);
    let start = fwd.spool().committed_position();
    let mut acked_upto = None;
    let mut n = 0;
    let mut due = false;
    while !due {
        let b = match fwd.next_batch(0).unwrap() {
            Next::Send(b) => b,
            other => panic!("{other:?}"),
        };
        acked_upto = Some(b.position);
        n += 1;
        due = fwd.note_acked();
        assert_eq!(
            fwd.spool().committed_position(),
            start,
            "note_acked never commits"
        );
    }
    // The window is refilled before the commit: two more batches read and in flight.
    for _ in 0..2 {
        assert!(matches!(fwd.next_batch(0).unwrap(), Next::Send(_)));
    }
    assert_eq!(fwd.in_flight(), 2);
    fwd.commit_acked().unwrap();
    assert_eq!(Some(fwd.spool().committed_position()), acked_upto);
    // Nothing is due again until another interval was acknowledged.
    assert!(!fwd.note_acked());
    drop(fwd);
    let mut fwd = open(d.path(), &o);
    assert_eq!(drain(&mut fwd), want(n..12));
}

#[test]
fn a_failure_commits_what_was_acknowledged_then_rewinds() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    filled(d.path(), 10, &o);
    let mut fwd = open(d.path(), &o);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(sent(fwd.next_batch(0).unwrap()));
    }
    assert_eq!(got, want(0..4));
    fwd.acked().unwrap();
    fwd.acked().unwrap();
    fwd.failed().unwrap();
    assert_eq!(fwd.mode(), Mode::Spooling);
    assert_eq!(fwd.in_flight(), 0);
    // Not draining: nothing is read.
    assert!(matches!(fwd.next_batch(0).unwrap(), Next::Wait));
    // The two acknowledged batches are durable: a restart would not send them again.
    drop(fwd);
    let mut fwd = open(d.path(), &o);
    assert_eq!(drain(&mut fwd), want(2..10));
}

#[test]
fn the_retry_resends_exactly_the_unacknowledged_batches() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    filled(d.path(), 6, &o);
    let mut fwd = open(d.path(), &o);
    sent(fwd.next_batch(0).unwrap());
    sent(fwd.next_batch(0).unwrap());
    fwd.acked().unwrap();
    fwd.failed().unwrap();
    fwd.start_draining();
    assert_eq!(fwd.mode(), Mode::Draining);
    assert_eq!(drain(&mut fwd), want(1..6));
}

#[test]
fn drained_only_once_every_batch_in_flight_is_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    filled(d.path(), 3, &o);
    let mut fwd = open(d.path(), &o);
    for _ in 0..3 {
        sent(fwd.next_batch(0).unwrap());
    }
    assert!(matches!(fwd.next_batch(0).unwrap(), Next::Wait));
    fwd.acked().unwrap();
    fwd.acked().unwrap();
    assert!(matches!(fwd.next_batch(0).unwrap(), Next::Wait));
    assert_eq!(fwd.mode(), Mode::Draining);
    fwd.acked().unwrap();
    assert!(matches!(fwd.next_batch(0).unwrap(), Next::Drained));
    assert_eq!(fwd.mode(), Mode::Streaming);
    assert!(fwd.spool().is_empty());
}

#[test]
fn batches_spooled_while_draining_queue_behind_the_backlog() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(300, 1 << 30);
    filled(d.path(), 5, &o);
    let mut fwd = open(d.path(), &o);
    let mut got = vec![sent(fwd.next_batch(0).unwrap())];
    fwd.acked().unwrap();
    fwd.append_and_sync(&batch(100)).unwrap();
    got.extend(drain(&mut fwd));
    let mut w = want(0..5);
    w.extend(want(100..101));
    assert_eq!(got, w);
}

#[test]
fn streaming_failure_turns_to_spooling_without_touching_the_spool() {
    let d = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 30);
    let mut fwd = open(d.path(), &o);
    assert!(matches!(fwd.next_batch(0).unwrap(), Next::Wait));
    fwd.start_draining(); // not spooling: no effect
    assert_eq!(fwd.mode(), Mode::Streaming);
    fwd.failed().unwrap();
    assert_eq!(fwd.mode(), Mode::Spooling);
    fwd.append_and_sync(&batch(1)).unwrap();
    fwd.start_draining();
    assert_eq!(drain(&mut fwd), want(1..2));
    assert_eq!(fwd.mode(), Mode::Streaming);
    assert_eq!(
        [Mode::Streaming, Mode::Spooling, Mode::Draining].map(Mode::as_str),
        ["streaming", "spooling", "draining"]
    );
}

/// Random damage, random batch sizes and windows, random failures and restarts: what is
/// delivered is in order, each undamaged record at least once, and the drained spool is empty.
#[test]
fn random_failures_and_damage_deliver_in_order_and_end_empty() {
    for seed in 0..40u64 {
        let mut rng = Rng::new(seed);
        let d = tempfile::tempdir().unwrap();
        let o = opts(200 + rng.below(2000), 1 << 30);
        let n = 20 + rng.below(40);
        filled(d.path(), n, &o);
        let layout = record_layout(d.path(), o.clone());
        let victim = rng.below(n) as usize;
        let (path, off, len) = layout[victim].clone();
        if rng.chance(50) {
            flip(&path, off + len - 1, 0x40);
        } else {
            truncate(&path, off + rng.below(len));
        }
        let lost: Vec<usize> = (0..layout.len())
            .filter(|&i| i == victim || (layout[i].0 == path && layout[i].1 > off))
            .collect();

        let mut delivered: Vec<Entry> = Vec::new();
        let mut fwd = open(d.path(), &o);
        for _ in 0..10_000 {
            if fwd.mode() == Mode::Streaming {
                break;
            }
            if rng.chance(5) {
                drop(fwd);
                fwd = open(d.path(), &o);
                continue;
            }
            fwd.start_draining();
            let mut window = Vec::new();
            for _ in 0..1 + rng.below(4) {
                match fwd.next_batch(rng.below(600) as usize).unwrap() {
                    Next::Send(b) => window.push(b.entries),
                    _ => break,
                }
            }
            for entries in window {
                if rng.chance(15) {
                    fwd.failed().unwrap();
                    break;
                }
                delivered.extend(entries);
                fwd.acked().unwrap();
            }
        }
        assert_eq!(fwd.mode(), Mode::Streaming, "seed {seed}");
        assert!(fwd.spool().is_empty(), "seed {seed}");
        let mut at = 0;
        for (i, b) in (0..n).map(batch).enumerate() {
            if lost.contains(&i) {
                continue;
            }
            for e in entries(&b) {
                let found = delivered[at..].iter().position(|x| *x == e);
                let found = found.unwrap_or_else(|| panic!("seed {seed}: lost or reordered"));
                at += found + 1;
            }
        }
    }
}
