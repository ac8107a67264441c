use super::*;
use crate::clock::ManualClock;
use std::io::Read;

fn cat(s: &str) -> Category {
    s.parse().unwrap()
}

/// Concatenation of every archive file, decompressed, in order.
fn read_all(dir: &Path, c: &Category) -> Vec<u8> {
    let mut out = Vec::new();
    for f in layout::list_archive(dir, c).unwrap() {
        f.open().unwrap().read_to_end(&mut out).unwrap();
    }
    out
}

/// Names in the category directory, sorted, without `_current`.
fn names(dir: &Path, c: &Category) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(c.as_str()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with("_current"))
        .collect();
    v.sort();
    v
}

fn link(dir: &Path, c: &Category) -> String {
    std::fs::read_link(dir.join(c.as_str()).join(layout::current_link_name(c)))
        .unwrap()
        .into_os_string()
        .into_string()
        .unwrap()
}

/// Options on a manual clock at 2024-01-10 `h:m` local, with their own compressor.
fn clocked(h: u32, m: u32) -> (WriterOptions, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_local(2024, 1, 10, h, m, 0));
    let opts = WriterOptions {
        max_size: 0,
        clock: clock.clone(),
        compressor: Compressor::new(64),
        ..WriterOptions::default()
    };
    (opts, clock)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[test]
fn frames_messages_with_one_newline() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    let msgs: [&[u8]; 4] = [b"a", b"b\n", b"", b"\xff\x00c"];
    let s = w.write_batch(msgs).unwrap();
    assert_eq!(read_all(d.path(), &c), b"a\nb\n\n\xff\x00c\n");
    assert_eq!(s.messages, 4);
    assert_eq!(s.bytes, 9);
    assert_eq!(link(d.path(), &c), "t_00000");
}

#[test]
fn rotates_before_a_message_would_exceed_max_size() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(10)).unwrap();
    let big = vec![b'x'; 25];
    let msgs: Vec<&[u8]> = vec![b"1234", b"5678", b"90", &big, b"a"];
    let s = w.write_batch(msgs).unwrap();
    let files = layout::list_files(d.path(), &c).unwrap();
    let sizes: Vec<u64> = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .collect();
    // "1234\n5678\n" = 10 fills file 0; "90\n" starts file 1; the 26-byte message gets file 2
    // alone; "a\n" goes to file 3.
    assert_eq!(sizes, vec![10, 3, 26, 2]);
    assert_eq!(s.rotations, 3);
    assert_eq!(link(d.path(), &c), "t_00003");
    // Rotation fsyncs every closed file.
    assert_eq!(w.fsync_count(), 3);
}

#[test]
fn reopen_appends_to_newest_file() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let opts = WriterOptions::new(100);
    {
        let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
        w.write_batch([&b"one"[..]]).unwrap();
        w.rotate().unwrap();
        w.write_batch([&b"two"[..]]).unwrap();
    }
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    assert_eq!(w.current_suffix(), 1);
    assert_eq!(w.current_size(), 4);
    w.write_batch([&b"three"[..]]).unwrap();
    assert_eq!(
        std::fs::read(d.path().join("t/t_00001")).unwrap(),
        b"two\nthree\n"
    );
}

#[test]
fn large_messages_bypass_the_buffer_in_order() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    let big = vec![b'B'; WRITE_BUFFER * 2];
    let msgs: Vec<&[u8]> = vec![b"small", &big, b"tail"];
    w.write_batch(msgs).unwrap();
    let mut want = b"small\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\ntail\n");
    assert_eq!(read_all(d.path(), &c), want);
}

#[test]
fn failed_batch_is_cut_back_and_earlier_batches_stay() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    w.write_batch([&b"kept"[..]]).unwrap();
    let big = vec![b'B'; WRITE_BUFFER * 2];
    // The small message is buffered, the big one is written directly and fails halfway.
    w.fail_after = Some(10 + WRITE_BUFFER as u64);
    let msgs: Vec<&[u8]> = vec![b"lost", &big];
    assert!(matches!(
        w.write_batch(msgs),
        Err(WriteError::Io { op: "write", .. })
    ));
    assert_eq!(read_all(d.path(), &c), b"kept\n");
    assert_eq!(w.current_size(), 5);
    // A retry after the disk frees up lands right after the kept batch.
    w.fail_after = None;
    w.write_batch([&b"retry"[..]]).unwrap();
    assert_eq!(read_all(d.path(), &c), b"kept\nretry\n");
}

#[test]
fn failed_rotation_keeps_the_old_file_without_its_meta_record() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let opts = WriterOptions {
        write_meta: true,
        ..WriterOptions::new(8)
    };
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    w.write_batch([&b"1234567"[..]]).unwrap();
    // The meta record is the next write; let it fail after a few bytes.
    w.fail_after = Some(3);
    assert!(w.write_batch([&b"next"[..]]).is_err());
    assert_eq!(names(d.path(), &c), ["t_00000"]);
    assert_eq!(read_all(d.path(), &c), b"1234567\n");
    assert_eq!(w.current_suffix(), 0);
    w.fail_after = None;
    w.write_batch([&b"next"[..]]).unwrap();
    assert_eq!(names(d.path(), &c), ["t_00000", "t_00001"]);
}

#[test]
fn rejects_out_of_range_rotate_time() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    for (hour, minute) in [(24, 0), (0, 60)] {
        let opts = WriterOptions {
            rotate_hour: hour,
            rotate_minute: minute,
            ..WriterOptions::default()
        };
        let e = RotatingWriter::open(d.path(), &c, opts).err().unwrap();
        assert!(matches!(e, WriteError::InvalidOptions(_)), "{e}");
    }
}

#[test]
fn daily_rotation_follows_rotate_hour_and_minute() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let (mut opts, clock) = clocked(9, 0);
    opts.rotate_period = RotatePeriod::Daily;
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    assert_eq!(link(d.path(), &c), "t-2024-01-10_00000");
    w.write_batch([&b"day one"[..]]).unwrap();
    // 2024-01-11 01:14: the new day has begun but the rotate time is not reached.
    clock.advance(mins(16 * 60 + 14));
    assert!(!w.check_time().unwrap());
    w.write_batch([&b"after midnight"[..]]).unwrap();
    clock.advance(mins(1));
    assert!(w.check_time().unwrap());
    assert!(!w.check_time().unwrap());
    assert_eq!(link(d.path(), &c), "t-2024-01-11_00000");
    w.write_batch([&b"day two"[..]]).unwrap();
    assert_eq!(
        std::fs::read(d.path().join("t/t-2024-01-10_00000")).unwrap(),
        b"day one\nafter midnight\n"
    );
    assert_eq!(
        std::fs::read(d.path().join("t/t-2024-01-11_00000")).unwrap(),
        b"day two\n"
    );
}

#[test]
fn hourly_rotation_names_a_new_date_by_the_hour_and_counts_on() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("h");
    let (mut opts, clock) = clocked(22, 20);
    opts.rotate_period = RotatePeriod::Hourly;
    opts.max_size = 4;
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    // Startup on a date with no files: the suffix is the hour, as in Scribe.
    assert_eq!(w.current_key(), FileKey::dated(date(10), 22));
    w.write_batch([&b"a"[..]]).unwrap();
    clock.advance(mins(54)); // 23:14
    assert!(!w.check_time().unwrap());
    clock.advance(mins(1)); // 23:15
    assert!(w.check_time().unwrap());
    assert_eq!(w.current_key(), FileKey::dated(date(10), 23));
    // A size rotation counts on.
    let s = w.write_batch([&b"bb"[..], b"cc"]).unwrap();
    assert_eq!(s.rotations, 1);
    assert_eq!(w.current_key(), FileKey::dated(date(10), 24));
    // Past midnight, at 00:15: a new date starts at its hour, 0.
    clock.advance(mins(60));
    let s = w.write_batch([&b"dd"[..]]).unwrap();
    assert_eq!(s.rotations, 1);
    assert_eq!(w.current_key(), FileKey::dated(date(11), 0));
    assert_eq!(
        names(d.path(), &c),
        [
            "h-2024-01-10_00022",
            "h-2024-01-10_00023",
            "h-2024-01-10_00024",
            "h-2024-01-11_00000"
        ]
    );
    assert_eq!(read_all(d.path(), &c), b"a\nbb\ncc\ndd\n");
}

fn date(day: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2024, 1, day).unwrap()
}

#[test]
fn every_n_counts_from_when_the_file_was_started() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("n");
    let (mut opts, clock) = clocked(12, 0);
    opts.rotate_period = RotatePeriod::parse("90s").unwrap();
    opts.max_size = 3;
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    clock.advance(Duration::from_secs(60));
    // A size rotation at 12:01 restarts the period.
    w.write_batch([&b"ab"[..], b"cd"]).unwrap();
    assert_eq!(w.current_suffix(), 1);
    clock.advance(Duration::from_secs(89));
    assert!(!w.check_time().unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(w.check_time().unwrap());
    assert_eq!(w.current_key(), FileKey::dated(date(10), 2));
}

#[test]
fn write_batch_rotates_a_due_file_before_writing() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let (mut opts, clock) = clocked(12, 0);
    opts.rotate_period = RotatePeriod::Daily;
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    w.write_batch([&b"old"[..]]).unwrap();
    clock.advance(mins(24 * 60));
    let s = w.write_batch([&b"new"[..]]).unwrap();
    assert_eq!(s.rotations, 1);
    assert_eq!(
        std::fs::read(d.path().join("t/t-2024-01-11_00000")).unwrap(),
        b"new\n"
    );
}

#[test]
fn reopen_appends_to_the_newest_dated_file_and_rotates_when_due() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("t");
    let (mut opts, clock) = clocked(12, 0);
    opts.rotate_period = RotatePeriod::Daily;
    // Undated files from before the switch to daily come first in the archive.
    {
        let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
        w.write_batch([&b"undated"[..]]).unwrap();
    }
    {
        let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
        // The newest file is undated: appended to, then rotated by day.
        assert_eq!(w.current_key(), FileKey::undated(0));
        clock.advance(mins(24 * 60));
        w.write_batch([&b"d11 a"[..]]).unwrap();
        assert_eq!(w.current_key(), FileKey::dated(date(11), 0));
        w.rotate().unwrap();
        w.write_batch([&b"d11 b"[..]]).unwrap();
    }
    // Same day: appends to the newest dated file.
    let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
    assert_eq!(w.current_key(), FileKey::dated(date(11), 1));
    w.write_batch([&b"d11 c"[..]]).unwrap();
    drop(w);
    // Reopened the next day after the rotate time: the first write goes to a new file.
    clock.advance(mins(24 * 60));
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    assert_eq!(w.current_key(), FileKey::dated(date(11), 1));
    w.write_batch([&b"d12"[..]]).unwrap();
    assert_eq!(w.current_key(), FileKey::dated(date(12), 0));
    assert_eq!(
        names(d.path(), &c),
        [
            "t-2024-01-11_00000",
            "t-2024-01-11_00001",
            "t-2024-01-12_00000",
            "t_00000"
        ]
    );
    assert_eq!(
        read_all(d.path(), &c),
        b"undated\nd11 a\nd11 b\nd11 c\nd12\n"
    );
    let listed = layout::list_archive(d.path(), &c).unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed[3].newest && !listed[2].newest);
}

#[test]
fn write_meta_names_the_new_file_as_the_old_files_last_record() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("m");
    let opts = WriterOptions {
        write_meta: true,
        ..WriterOptions::new(0)
    };
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    w.write_batch([&b"x"[..]]).unwrap();
    w.rotate().unwrap();
    let new = w.current_path().to_path_buf();
    assert!(new.is_absolute());
    assert_eq!(
        new,
        std::path::absolute(d.path().join("m/m_00001")).unwrap()
    );
    let mut want = b"x\nscribe_meta<new_logfile>: ".to_vec();
    want.extend_from_slice(new.as_os_str().as_bytes());
    want.push(b'\n');
    assert_eq!(std::fs::read(d.path().join("m/m_00000")).unwrap(), want);
    assert_eq!(std::fs::read(&new).unwrap(), b"");
}

#[test]
fn fsync_policies() {
    let d = tempfile::tempdir().unwrap();
    let (base, clock) = clocked(12, 0);
    let open = |name: &str, fsync| {
        let opts = WriterOptions {
            fsync,
            ..base.clone()
        };
        RotatingWriter::open(d.path(), &cat(name), opts).unwrap()
    };

    let mut never = open("never", Fsync::Never);
    never.write_batch([&b"x"[..]]).unwrap();
    assert!(never.has_unsynced());
    assert!(!never.maybe_sync().unwrap());
    assert_eq!(never.fsync_count(), 0);
    never.rotate().unwrap();
    assert_eq!(
        never.fsync_count(),
        1,
        "rotation always fsyncs the closed file"
    );

    let mut batch = open("batch", Fsync::Batch);
    batch.write_batch([&b"x"[..]]).unwrap();
    assert!(!batch.has_unsynced());
    assert_eq!(batch.fsync_count(), 1);
    batch.write_batch(std::iter::empty()).unwrap();
    assert_eq!(batch.fsync_count(), 1, "nothing written, nothing to sync");

    let mut interval = open("interval", Fsync::Interval(Duration::from_secs(5)));
    interval.write_batch([&b"x"[..]]).unwrap();
    assert!(interval.has_unsynced());
    assert!(!interval.maybe_sync().unwrap());
    clock.advance(Duration::from_secs(4));
    assert!(!interval.maybe_sync().unwrap());
    clock.advance(Duration::from_secs(1));
    assert!(interval.maybe_sync().unwrap());
    assert!(!interval.has_unsynced());
    // Nothing new: no sync however long it waits.
    clock.advance(Duration::from_secs(60));
    assert!(!interval.maybe_sync().unwrap());
    // A batch after the interval has passed syncs by itself.
    interval.write_batch([&b"y"[..]]).unwrap();
    assert!(!interval.has_unsynced());
    assert_eq!(interval.fsync_count(), 2);
    // Clock stepped back: sync rather than wait for it to catch up.
    interval.write_batch([&b"z"[..]]).unwrap();
    assert!(interval.has_unsynced());
    clock.advance(Duration::from_secs(1));
    clock.set(clock.now() - chrono::Duration::hours(1));
    assert!(interval.maybe_sync().unwrap());
}

#[test]
fn compressed_rotation_reads_back_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("z");
    let (mut opts, _clock) = clocked(12, 0);
    opts.compress = true;
    opts.max_size = 64 * 1024;
    let compressor = opts.compressor.clone();
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    let mut want = Vec::new();
    for i in 0..20_000u32 {
        let line = format!("{i} GET /index.html?q={} 200\n", i * 7919);
        want.extend_from_slice(line.as_bytes());
        w.write_batch([line.as_bytes()]).unwrap();
    }
    compressor.wait_idle();
    let files = layout::list_archive(d.path(), &c).unwrap();
    assert!(files.len() > 3);
    for f in &files[..files.len() - 1] {
        assert!(f.compressed, "{}", f.path.display());
    }
    let last = files.last().unwrap();
    assert!(last.newest && !last.compressed);
    assert_eq!(last.path, w.current_path());
    assert_eq!(read_all(d.path(), &c), want);
    assert!(!names(d.path(), &c).iter().any(|n| n.ends_with(".tmp")));
    assert_eq!(compressor.stats().failed, 0);
}

#[test]
fn open_recovers_and_queues_leftovers_but_never_the_newest() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("r");
    let dir = d.path().join("r");
    std::fs::create_dir(&dir).unwrap();
    let put = |n: &str, b: &[u8]| std::fs::write(dir.join(n), b).unwrap();
    put("r_00000", b"zero\n"); // closed, never compressed
    put("r_00001", b"one\n"); // crashed mid-compression
    put("r_00001.gz.tmp", b"\x1f\x8b partial");
    put("r_00002", b"two\n"); // the newest: appended to, left plain
    let (mut opts, _clock) = clocked(12, 0);
    opts.compress = true;
    let compressor = opts.compressor.clone();
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    compressor.wait_idle();
    assert_eq!(names(d.path(), &c), ["r_00000.gz", "r_00001.gz", "r_00002"]);
    w.write_batch([&b"more"[..]]).unwrap();
    assert_eq!(read_all(d.path(), &c), b"zero\none\ntwo\nmore\n");
}

#[test]
fn open_after_everything_was_compressed_starts_a_new_file() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("g");
    let dir = d.path().join("g");
    std::fs::create_dir(&dir).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"old\n").unwrap();
    std::fs::write(dir.join("g_00004.gz"), enc.finish().unwrap()).unwrap();
    let mut w = RotatingWriter::open(d.path(), &c, WriterOptions::new(0)).unwrap();
    assert_eq!(w.current_suffix(), 5);
    w.write_batch([&b"new"[..]]).unwrap();
    assert_eq!(read_all(d.path(), &c), b"old\nnew\n");
}

#[test]
fn retention_removes_the_oldest_only() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("k");
    let (mut opts, _clock) = clocked(12, 0);
    opts.keep_files = Some(3);
    opts.max_size = 2;
    let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
    for m in ["a", "b", "c", "d", "e", "f"] {
        w.write_batch([m.as_bytes()]).unwrap();
    }
    assert_eq!(names(d.path(), &c), ["k_00003", "k_00004", "k_00005"]);
    assert_eq!(read_all(d.path(), &c), b"d\ne\nf\n");
    drop(w);
    // At open too, with a tighter limit; the current file is never deleted.
    opts.keep_files = Some(1);
    let w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    assert_eq!(names(d.path(), &c), ["k_00005"]);
    assert_eq!(w.current_suffix(), 5);
}

#[test]
fn retention_by_bytes_counts_compressed_sizes() {
    let d = tempfile::tempdir().unwrap();
    let c = cat("b");
    let (mut opts, _clock) = clocked(12, 0);
    opts.compress = true;
    opts.max_size = 10_000;
    let compressor = opts.compressor.clone();
    let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
    let line = [b'q'; 999];
    for _ in 0..50 {
        w.write_batch([&line[..]]).unwrap();
    }
    compressor.wait_idle();
    // 5 files of 10,000 bytes; the 4 closed ones compress to well under 1,000 bytes each.
    assert_eq!(layout::list_archive(d.path(), &c).unwrap().len(), 5);
    drop(w);
    opts.keep_bytes = Some(10_500);
    let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
    let files = layout::list_archive(d.path(), &c).unwrap();
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(&f.path).unwrap().len())
        .sum();
    assert!(total <= 10_500, "{total}");
    assert!(files.len() >= 2, "only as many as needed were deleted");
    assert_eq!(files[0].suffix + files.len() as u64, 5);
    assert_eq!(w.apply_retention().unwrap(), 0);
}
