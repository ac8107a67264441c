//! RotatelogsWriter decisions with a manual clock: interval alignment, names of rotations
//! inside an interval, whole lines across rotations, failed opens, `-c` ticks.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scribe_archive::{Clock, ManualClock};

use super::closer::LogFile;
use super::writer::{FsOpener, Opener, RotateOptions, RotatelogsWriter};

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::at_local(2026, 11, 23, 8, 0, 0)),
        }
    }
    fn opts(&self) -> RotateOptions {
        let mut o = RotateOptions::new(self.dir.path().join("log"));
        o.retry_interval = Duration::from_millis(1);
        o.fsync = false;
        o
    }
    fn writer(&self, o: RotateOptions) -> RotatelogsWriter {
        RotatelogsWriter::with_parts(o, self.clock.clone(), Arc::new(FsOpener)).unwrap()
    }
    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }
    fn path(&self, t: i64) -> PathBuf {
        self.dir.path().join(format!("log.{t:010}"))
    }
    fn read(&self, t: i64) -> String {
        String::from_utf8(std::fs::read(self.path(t)).unwrap()).unwrap()
    }
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }
}

#[test]
fn time_rotation_names_files_after_aligned_interval_starts() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.period = Some(60);
    let mut w = f.writer(o);
    f.advance(30);
    let first = f.now() / 60 * 60;
    w.write(b"a\n").unwrap();
    f.advance(20);
    w.write(b"b\n").unwrap();
    f.advance(20);
    w.write(b"c\n").unwrap();
    assert_eq!(f.read(first), "a\nb\n");
    assert_eq!(f.read(first + 60), "c\n");
    assert_eq!(f.count(), 2);
}

#[test]
fn size_rotation_inside_an_interval_is_named_after_now() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.period = Some(3600);
    o.max_size = Some(10);
    let mut w = f.writer(o);
    let start = f.now() / 3600 * 3600;
    w.write(b"twelve bytes").unwrap();
    f.advance(5);
    let t = f.now();
    w.write(b"\nmore\n").unwrap();
    // The line in progress finished in the old file; the rotation then named the new one
    // after the current second, not the interval start.
    assert_eq!(f.read(start), "twelve bytes\n");
    assert_eq!(f.read(t), "more\n");
}

#[test]
fn a_line_longer_than_the_grace_is_split_after_it() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.max_size = Some(10);
    let mut w = f.writer(o);
    let t0 = f.now();
    w.write(&[b'x'; 20]).unwrap();
    f.advance(1);
    let long = vec![b'y'; super::writer::LINE_GRACE + 10];
    w.write(&long).unwrap();
    let first = std::fs::read(f.path(t0)).unwrap();
    assert_eq!(first.len(), super::writer::LINE_GRACE);
    let second = std::fs::read(f.path(t0 + 1)).unwrap();
    assert_eq!(second.len(), 20 + 10);
}

/// Fails every open while `fail` is set.
struct FailingOpener(Arc<AtomicBool>);

impl Opener for FailingOpener {
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Box<dyn LogFile>> {
        if self.0.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        FsOpener.open(path, truncate)
    }
}

#[test]
fn a_failed_open_keeps_the_old_file_and_retries_the_same_name() {
    let f = Fixture::new();
    let fail = Arc::new(AtomicBool::new(false));
    let mut o = f.opts();
    o.period = Some(60);
    let mut w =
        RotatelogsWriter::with_parts(o, f.clock.clone(), Arc::new(FailingOpener(fail.clone())))
            .unwrap();
    let first = f.now() / 60 * 60;
    w.write(b"a\n").unwrap();
    fail.store(true, Ordering::SeqCst);
    f.advance(61);
    w.write(b"b\n").unwrap();
    assert_eq!(w.stats().open_retries, 1);
    fail.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    f.advance(10);
    w.write(b"c\n").unwrap();
    assert_eq!(f.read(first), "a\nb\n");
    assert_eq!(f.read(first + 60), "c\n");
}

#[test]
fn the_first_open_fails_for_good_on_a_permanent_error() {
    let f = Fixture::new();
    let mut o = RotateOptions::new(f.dir.path().join("missing/log"));
    o.max_size = Some(10);
    let mut w = f.writer(o);
    assert!(w.write(b"a\n").is_err());
}

#[test]
fn ticks_create_a_file_per_interval_and_wait_for_its_end() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.period = Some(60);
    let mut w = f.writer(o);
    assert_eq!(w.until_interval_end(), Some(Duration::from_secs(60)));
    f.advance(15);
    w.write(b"a\n").unwrap();
    assert_eq!(w.until_interval_end(), Some(Duration::from_secs(45)));
    w.tick().unwrap();
    assert_eq!(f.count(), 1);
    f.advance(45);
    w.tick().unwrap();
    let second = f.now();
    assert_eq!(f.count(), 2);
    assert_eq!(f.read(second), "");
    assert_eq!(w.current_path(), Some(f.path(second).as_path()));
}

#[test]
fn write_line_adds_a_missing_newline() {
    let f = Fixture::new();
    let mut o = f.opts();
    o.max_size = Some(1 << 20);
    let mut w = f.writer(o);
    let t = f.now();
    w.write_line(b"one").unwrap();
    w.write_line(b"two\n").unwrap();
    assert_eq!(f.read(t), "one\ntwo\n");
}
