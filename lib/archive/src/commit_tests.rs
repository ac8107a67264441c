//! Idempotent writes: duplicates skipped, commit log recovery after simulated crashes.

use super::*;
use crate::clock::ManualClock;
use crate::commit::FAIL_APPEND;
use scribe_ids::ProducerId;
use std::io::Read;

fn cat(s: &str) -> Category {
    s.parse().unwrap()
}

fn opts() -> WriterOptions {
    WriterOptions {
        idempotent: true,
        max_size: 0,
        compressor: Compressor::new(64),
        ..WriterOptions::default()
    }
}

fn pid(b: u8) -> ProducerId {
    ProducerId([b; 16])
}

fn id(p: u8, start: u64, end: u64) -> Option<EntryId> {
    Some(EntryId {
        producer: pid(p),
        start,
        end,
    })
}

/// Entries of producer `p`, one per line, each covering its byte range in the producer's
/// stream (as `ship --follow` numbers them): `lines` laid end to end from `from`.
fn entries<'a>(p: u8, from: u64, lines: &[&'a str]) -> Vec<(&'a [u8], Option<EntryId>)> {
    let mut at = from;
    lines
        .iter()
        .map(|l| {
            let end = at + l.len() as u64 + 1;
            let e = (l.as_bytes(), id(p, at, end));
            at = end;
            e
        })
        .collect()
}

fn read_all(dir: &Path, c: &Category) -> String {
    let mut out = Vec::new();
    for f in layout::list_archive(dir, c).unwrap() {
        f.open().unwrap().read_to_end(&mut out).unwrap();
    }
    String::from_utf8(out).unwrap()
}

fn log_path(dir: &Path, c: &Category) -> PathBuf {
    dir.join(c.as_str()).join(".commits")
}

/// Bytes appended to a data file behind the writer's back: what a `kill -9` between the data
/// `write(2)` and the commit record leaves.
fn append_raw(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_retried_batch_is_written_once_also_after_reopen() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let batch = entries(1, 0, &["a", "b", "c"]);
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!((s.messages, s.duplicates), (3, 0));
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!((s.messages, s.duplicates, s.bytes), (0, 3, 0));
    assert!(w.is_committed(&id(1, 0, 2).unwrap()));
    assert_eq!(w.commit_stats().unwrap().producers, 1);
    drop(w);
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!(s.duplicates, 3);
    w.write_entries(entries(1, 6, &["d"])).unwrap();
    assert_eq!(read_all(d.path(), &c), "a\nb\nc\nd\n");
}

#[test]
fn overlaps_are_written_and_duplicates_within_a_batch_skipped() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries([(&b"x0"[..], id(1, 0, 10)), (b"x1", id(1, 10, 20))])
        .unwrap();
    let s = w
        .write_entries([
            (&b"dup"[..], id(1, 5, 10)),     // inside a committed range
            (b"partial", id(1, 15, 25)),     // reaches past it: written (never lost)
            (b"new", id(1, 30, 40)),         // a gap before it: still written
            (b"again", id(1, 30, 40)),       // earlier in this batch
            (b"other", id(2, 0, 10)),        // another producer's space
            (b"thrift", None),               // no id: always written
            (b"empty-range", id(1, 50, 50)), // no range to recognise: written
        ])
        .unwrap();
    assert_eq!((s.messages, s.duplicates), (5, 2));
    assert_eq!(
        read_all(d.path(), &c),
        "x0\nx1\npartial\nnew\nother\nthrift\nempty-range\n"
    );
    // The gap [25, 30) stays open; the ranges around it are committed.
    assert!(w.is_committed(&id(1, 0, 25).unwrap()));
    assert!(!w.is_committed(&id(1, 20, 35).unwrap()));
    assert!(w.is_committed(&id(1, 30, 40).unwrap()));
    assert!(!w.is_committed(&id(1, 50, 51).unwrap()));
    // Out-of-order delivery fills the gap: one range again.
    w.write_entries([(&b"late"[..], id(1, 25, 30))]).unwrap();
    assert!(w.is_committed(&id(1, 0, 40).unwrap()));
}

#[test]
fn without_idempotent_ids_are_ignored_and_the_log_removed() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    drop(RotatingWriter::open(d.path(), &c, opts()).unwrap());
    assert!(log_path(d.path(), &c).exists());
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    assert!(!log_path(d.path(), &c).exists());
    let batch = entries(1, 0, &["a"]);
    w.write_entries(batch.iter().copied()).unwrap();
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!((s.messages, s.duplicates), (1, 0));
    assert!(!w.is_committed(&id(1, 0, 2).unwrap()));
    assert!(w.commit_stats().is_none());
    drop(w);
    // Turned on again: what was written meanwhile is kept (no stale log to cut it).
    drop(RotatingWriter::open(d.path(), &c, opts()).unwrap());
    assert_eq!(read_all(d.path(), &c), "a\na\n");
}

#[test]
fn kill_between_data_and_record_cuts_the_tail_and_the_retry_writes_once() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["a", "b"])).unwrap();
    let path = w.current_path().to_path_buf();
    drop(w);
    // The next batch reached the file, half of a line too, but its record never did.
    append_raw(&path, b"c\nd\npart");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(w.current_size(), 4);
    assert!(w.is_committed(&id(1, 0, 4).unwrap()));
    assert!(!w.is_committed(&id(1, 4, 6).unwrap()));
    // The client never got its OK: it retries the whole batch.
    let s = w.write_entries(entries(1, 2, &["b", "c", "d"])).unwrap();
    assert_eq!((s.messages, s.duplicates), (2, 1));
    assert_eq!(read_all(d.path(), &c), "a\nb\nc\nd\n");
}

#[test]
fn data_much_newer_than_the_log_is_not_cut() {
    // A rollback to a version without idempotent writes appended and rotated, leaving the
    // log behind; then the upgrade opens it again.
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["a"])).unwrap();
    let path = w.current_path().to_path_buf();
    drop(w);
    append_raw(&path, b"old version\n");
    std::fs::write(d.path().join("t/t_00001"), b"rotated by it\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    for p in [path.clone(), d.path().join("t/t_00001")] {
        let f = OpenOptions::new().append(true).open(p).unwrap();
        f.set_modified(later).unwrap();
    }
    let w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(read_all(d.path(), &c), "a\nold version\nrotated by it\n");
    assert!(w.is_committed(&id(1, 0, 2).unwrap()));
}

#[test]
fn thrift_writes_without_ids_are_never_cut_by_recovery() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["id"])).unwrap();
    w.write_batch([&b"thrift 1"[..], b"thrift 2"]).unwrap();
    w.write_batch([&b"thrift 3"[..]]).unwrap();
    drop(w);
    let w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(read_all(d.path(), &c), "id\nthrift 1\nthrift 2\nthrift 3\n");
    assert_eq!(w.current_size(), 30);
}

#[test]
fn an_upgrade_without_a_log_cuts_nothing() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    w.write_batch([&b"old"[..]]).unwrap();
    w.rotate().unwrap();
    w.write_batch([&b"older version"[..]]).unwrap();
    drop(w);
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["new"])).unwrap();
    drop(w);
    drop(RotatingWriter::open(d.path(), &c, opts()).unwrap());
    assert_eq!(read_all(d.path(), &c), "old\nolder version\nnew\n");
}

#[test]
fn a_file_created_after_the_last_commit_is_truncated() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["a"])).unwrap();
    drop(w);
    // A rotation to t_00001 whose batch was never committed (kill -9 before its record).
    std::fs::write(d.path().join("t/t_00001"), b"b\nc\n").unwrap();
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(w.current_suffix(), 1);
    assert_eq!(w.current_size(), 0);
    assert_eq!(std::fs::read(d.path().join("t/t_00000")).unwrap(), b"a\n");
    w.write_entries(entries(1, 0, &["a", "b", "c"])).unwrap();
    assert_eq!(read_all(d.path(), &c), "a\nb\nc\n");
}

#[test]
fn a_rotation_mid_batch_commits_the_closed_part_before_a_later_failure() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let o = WriterOptions {
        max_size: 6,
        write_meta: true,
        ..opts()
    };
    let mut w = RotatingWriter::open(d.path(), &c, o.clone()).unwrap();
    let batch = entries(1, 0, &["aa", "bb", "cc", "dd"]);
    // "aa\nbb\n" fills t_00000; the meta record and fsync close it, its commit record is
    // appended, then "cc\n" goes to t_00001 ... and the disk fills up.
    let next = std::path::absolute(d.path().join("t/t_00001")).unwrap();
    let meta_len = META_PREFIX.len() + next.as_os_str().len() + 1;
    w.fail_after = Some(6 + meta_len as u64);
    let err = w.write_entries(batch.iter().copied());
    assert!(err.is_err());
    w.fail_after = None;
    // t_00000 holds "aa\nbb\n" + the meta record: nothing cut there, and it is committed.
    assert!(w.is_committed(&id(1, 0, 6).unwrap()));
    assert!(!w.is_committed(&id(1, 6, 9).unwrap()));
    drop(w);
    // A restart does not cut the closed file's meta record either.
    let mut w = RotatingWriter::open(d.path(), &c, o).unwrap();
    assert!(w.is_committed(&id(1, 0, 6).unwrap()));
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!((s.messages, s.duplicates), (2, 2));
    let t0 = std::fs::read_to_string(d.path().join("t/t_00000")).unwrap();
    assert!(t0.starts_with("aa\nbb\nscribe_meta<new_logfile>: "), "{t0}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("t/t_00001")).unwrap(),
        "cc\ndd\n"
    );
}

#[test]
fn a_failed_record_append_fails_the_batch_and_commits_nothing() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    for fsync in [Fsync::Never, Fsync::Batch] {
        let _ = std::fs::remove_dir_all(d.path().join("t"));
        let o = WriterOptions { fsync, ..opts() };
        let mut w = RotatingWriter::open(d.path(), &c, o.clone()).unwrap();
        w.write_entries(entries(1, 0, &["a"])).unwrap();
        FAIL_APPEND.with(|f| f.set(true));
        assert!(w.write_entries(entries(1, 2, &["b"])).is_err());
        assert!(!w.is_committed(&id(1, 2, 4).unwrap()));
        assert_eq!(read_all(d.path(), &c), "a\n");
        // The half-written record was cut off: the log reloads clean, the retry goes in once.
        w.write_entries(entries(1, 2, &["b"])).unwrap();
        drop(w);
        let mut w = RotatingWriter::open(d.path(), &c, o).unwrap();
        let s = w.write_entries(entries(1, 0, &["a", "b"])).unwrap();
        assert_eq!(s.duplicates, 2);
        assert_eq!(read_all(d.path(), &c), "a\nb\n");
        let dir_names: Vec<_> = std::fs::read_dir(d.path().join("t"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !dir_names.iter().any(|n| n.contains("corrupt")),
            "{dir_names:?}"
        );
    }
}

#[test]
fn a_torn_last_record_is_dropped_with_its_data() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    w.write_entries(entries(1, 0, &["a"])).unwrap();
    let before = std::fs::metadata(log_path(d.path(), &c)).unwrap().len();
    w.write_entries(entries(1, 2, &["b"])).unwrap();
    drop(w);
    // The second record is cut short: the process died inside its append.
    let log = log_path(d.path(), &c);
    let len = std::fs::metadata(&log).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(before + (len - before) / 2)
        .unwrap();
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert!(w.is_committed(&id(1, 0, 2).unwrap()));
    assert!(!w.is_committed(&id(1, 2, 4).unwrap()));
    assert_eq!(read_all(d.path(), &c), "a\n");
    w.write_entries(entries(1, 0, &["a", "b"])).unwrap();
    assert_eq!(read_all(d.path(), &c), "a\nb\n");
}

#[test]
fn a_corrupt_middle_record_is_moved_aside_and_nothing_is_cut() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    let snapshot_len = std::fs::metadata(log_path(d.path(), &c)).unwrap().len();
    w.write_entries(entries(1, 0, &["a"])).unwrap();
    w.write_entries(entries(1, 2, &["b"])).unwrap();
    let path = w.current_path().to_path_buf();
    drop(w);
    append_raw(&path, b"tail\n");
    // Flip a byte inside the first commit record (after the opening snapshot).
    let log = log_path(d.path(), &c);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[snapshot_len as usize + 12] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(w.commit_stats().unwrap().producers, 0);
    // At-least-once from here: the unrecorded tail stays, a retry is written again.
    assert_eq!(read_all(d.path(), &c), "a\nb\ntail\n");
    let s = w.write_entries(entries(1, 0, &["a"])).unwrap();
    assert_eq!(s.duplicates, 0);
    let aside: Vec<_> = std::fs::read_dir(d.path().join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".commits.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(d.path().join("t").join(&aside[0])).unwrap(),
        bytes
    );
}

#[test]
fn compaction_keeps_the_table() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    // 100 producers, one entry each per batch: records of ~3.6 KB, 4 MiB after ~1,170.
    let batch = |b: u64| {
        (0..100u8)
            .map(move |p| (&b"x"[..], id(p, b, b + 1)))
            .collect::<Vec<_>>()
    };
    for b in 0..1300 {
        w.write_entries(batch(b)).unwrap();
    }
    let st = w.commit_stats().unwrap();
    assert_eq!(st.compactions, 1);
    assert_eq!((st.producers, st.ranges), (100, 100));
    // A snapshot of 100 producers plus ~130 records since.
    assert!(st.log_bytes < 1 << 20, "{st:?}");
    assert_eq!(
        std::fs::metadata(log_path(d.path(), &c)).unwrap().len(),
        st.log_bytes
    );
    drop(w);
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert!((0..100).all(|p| w.is_committed(&id(p, 0, 1300).unwrap())));
    let s = w.write_entries(batch(0)).unwrap();
    assert_eq!(s.duplicates, 100);
    assert_eq!(w.current_size(), 1300 * 100 * 2);
}

#[test]
fn bounds_forget_producers_which_only_allows_duplicates() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let clock = Arc::new(ManualClock::at_local(2024, 1, 10, 12, 0, 0));
    let o = WriterOptions {
        max_producers: 2,
        producer_ttl: Duration::from_secs(24 * 3600),
        clock: clock.clone(),
        ..opts()
    };
    let mut w = RotatingWriter::open(d.path(), &c, o.clone()).unwrap();
    for p in 1..=3 {
        clock.advance(Duration::from_secs(1));
        w.write_entries([(&b"x"[..], id(p, 0, 2))]).unwrap();
    }
    // Producer 1 was the least recently seen: forgotten, so its retry is written again.
    assert!(!w.is_committed(&id(1, 0, 2).unwrap()));
    assert!(w.is_committed(&id(3, 0, 2).unwrap()));
    drop(w);
    // Replaying the log applies the same bound.
    let w = RotatingWriter::open(d.path(), &c, o.clone()).unwrap();
    assert!(!w.is_committed(&id(1, 0, 2).unwrap()));
    assert!(w.is_committed(&id(2, 0, 2).unwrap()));
    drop(w);
    // Two days idle: both expire at open.
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    let w = RotatingWriter::open(d.path(), &c, o).unwrap();
    assert_eq!(w.commit_stats().unwrap().producers, 0);
    assert!(!w.is_committed(&id(3, 0, 2).unwrap()));
}

#[test]
fn sixteen_ranges_per_producer_survive_a_reopen() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    // 20 separate ranges (out of order delivery that never closes its gaps).
    for i in 0..20u64 {
        w.write_entries([(&b"x"[..], id(1, i * 10, i * 10 + 5))])
            .unwrap();
    }
    drop(w);
    let w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    assert_eq!(w.commit_stats().unwrap().ranges, 16);
    assert!(!w.is_committed(&id(1, 30, 35).unwrap()), "the lowest go");
    assert!(w.is_committed(&id(1, 40, 45).unwrap()));
    assert!(w.is_committed(&id(1, 190, 195).unwrap()));
}

#[test]
fn batch_fsync_syncs_data_then_log_per_batch() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let o = WriterOptions {
        fsync: Fsync::Batch,
        ..opts()
    };
    let mut w = RotatingWriter::open(d.path(), &c, o).unwrap();
    let log0 = w.commit_stats().unwrap().log_fsyncs;
    w.write_entries(entries(1, 0, &["a"])).unwrap();
    w.write_entries(entries(1, 0, &["a"])).unwrap(); // a duplicate: nothing to sync
    assert_eq!(w.fsync_count(), 1);
    assert_eq!(w.commit_stats().unwrap().log_fsyncs, log0 + 1);
    // A rotation between batches has nothing new to commit.
    w.rotate().unwrap();
    assert_eq!(w.commit_stats().unwrap().log_fsyncs, log0 + 1);
    let log_len = w.commit_stats().unwrap().log_bytes;
    w.write_batch([&b"b"[..]]).unwrap();
    assert!(
        w.commit_stats().unwrap().log_bytes > log_len,
        "id-less batches are recorded"
    );
    assert_eq!(w.commit_stats().unwrap().log_fsyncs, log0 + 2);
}

#[test]
fn archive_listing_and_retention_ignore_the_commit_log() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let o = WriterOptions {
        max_size: 2,
        keep_files: Some(2),
        ..opts()
    };
    let mut w = RotatingWriter::open(d.path(), &c, o).unwrap();
    std::fs::write(d.path().join("t/.commits.corrupt-1"), b"junk").unwrap();
    std::fs::write(d.path().join("t/.commits.tmp"), b"junk").unwrap();
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        w.write_entries([(m.as_bytes(), id(1, i as u64, i as u64 + 1))])
            .unwrap();
    }
    let listed: Vec<String> = layout::list_archive(d.path(), &c)
        .unwrap()
        .iter()
        .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["t_00001", "t_00002"]);
    assert!(log_path(d.path(), &c).exists());
    assert!(d.path().join("t/.commits.corrupt-1").exists());
}

/// `cargo test -p scribe-archive --release -- --ignored --nocapture bench_write_entries`
///
/// Batches of 1000 lines of 1 KiB, contiguous ids of one producer; each configuration runs
/// 3 rounds (fresh directory each) interleaved with the others; the median round is printed.
#[test]
#[ignore]
fn bench_write_entries() {
    let line = vec![b'x'; 1023];
    let configs = [
        (Fsync::Never, false),
        (Fsync::Never, true),
        (Fsync::Batch, false),
        (Fsync::Batch, true),
    ];
    let mut rounds: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    for _ in 0..3 {
        for (k, &(fsync, idempotent)) in configs.iter().enumerate() {
            let d = tempfile::tempdir().unwrap();
            let o = WriterOptions {
                fsync,
                idempotent,
                max_size: 0,
                ..WriterOptions::default()
            };
            let mut w = RotatingWriter::open(d.path(), &cat("b"), o).unwrap();
            let p = ProducerId::random();
            let n = 100u64;
            let t = std::time::Instant::now();
            for b in 0..n {
                let base = b * 1000 * 1024;
                let s = w
                    .write_entries((0..1000u64).map(|i| {
                        let start = base + i * 1024;
                        (
                            &line[..],
                            Some(EntryId {
                                producer: p,
                                start,
                                end: start + 1024,
                            }),
                        )
                    }))
                    .unwrap();
                assert_eq!(s.messages, 1000);
            }
            rounds[k].push(t.elapsed() / n as u32);
        }
    }
    for (k, &(fsync, idempotent)) in configs.iter().enumerate() {
        let mut r = rounds[k].clone();
        r.sort();
        let per = r[1];
        let mbs = 1000.0 * 1024.0 / per.as_secs_f64() / 1e6;
        println!(
            "fsync={fsync:?} idempotent={idempotent}: {per:?}/batch (median of {:?}), {mbs:.0} MB/s",
            rounds[k]
        );
    }
}

#[test]
fn interleaved_producers_and_repeats_inside_a_batch_are_written_once() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    let mut batch = entries(1, 0, &["a", "b"]);
    batch.extend(entries(2, 0, &["x"]));
    batch.extend(entries(1, 4, &["c"]));
    // Repeats of what this batch already wrote: one entry, two, and a range across the run
    // being written and the ranges noted before it.
    batch.extend(entries(1, 0, &["a"]));
    batch.extend(entries(1, 2, &["b", "c"]));
    batch.push((b"z", id(1, 1, 5)));
    batch.extend(entries(1, 6, &["d"]));
    let s = w.write_entries(batch.iter().copied()).unwrap();
    assert_eq!((s.messages, s.duplicates), (5, 4));
    // The next batch starts inside what is committed, then goes on past it.
    let s = w.write_entries(entries(1, 4, &["c", "d", "e"])).unwrap();
    assert_eq!((s.messages, s.duplicates), (1, 2));
    let s = w.write_entries(entries(2, 0, &["x", "y"])).unwrap();
    assert_eq!((s.messages, s.duplicates), (1, 1));
    drop(w);
    assert_eq!(read_all(d.path(), &c), "a\nb\nx\nc\nd\ne\ny\n");
    // What was committed survives a reopen.
    let mut w = RotatingWriter::open(d.path(), &c, opts()).unwrap();
    let s = w
        .write_entries(entries(1, 0, &["a", "b", "c", "d", "e", "f"]))
        .unwrap();
    assert_eq!((s.messages, s.duplicates), (1, 5));
    drop(w);
    assert_eq!(read_all(d.path(), &c), "a\nb\nx\nc\nd\ne\ny\nf\n");
}
