//! Pieces of the exactly-once torture suite (`tests/tests/exactly_once.rs`): writers appending
//! sequenced lines to followed files, periodic and kill loops, the bounded drain, and the tally
//! of what reached the archive against what the writers produced.
//!
//! Everything here is bounded: every loop stops on a flag checked at least every few
//! milliseconds, and every thread is told to stop when its handle drops (so a failing assert
//! elsewhere never leaves a writer or a killer running).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scribe_archive::{layout, Category};

pub use crate::tmpfs::{fill, free_bytes, TmpfsMount};
use crate::{seq_line, Rng, SeqReport, SEQ_LINE_LEN};

/// An integer environment knob, `default` when unset or unparsable.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The file being written and the next sequence number, shared by the writer and whoever
/// rotates the file.
pub struct Log {
    pub path: PathBuf,
    pub file: File,
    pub next: u64,
}

fn open_append(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// A thread appending one [`seq_line`] of `src` per `write(2)` at a steady rate, like a busy
/// daemon, to whatever file [`Log::file`] is at the moment.
pub struct Writer {
    pub src: String,
    pub log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(path: &Path, src: &str, per_sec: u64) -> Writer {
        let log = Arc::new(Mutex::new(Log {
            path: path.to_path_buf(),
            file: open_append(path),
            next: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, flag, name) = (log.clone(), stop.clone(), src.to_string());
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                let due = start.elapsed().as_micros() as u64 * per_sec / 1_000_000;
                {
                    let mut log = l.lock().unwrap();
                    // At most 256 lines per turn, so a rotator waiting for the lock gets it.
                    let until = due.min(log.next + 256);
                    while log.next < until {
                        let line = seq_line(&name, log.next);
                        log.file.write_all(&line).expect("writing the log");
                        log.next += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Writer {
            src: src.to_string(),
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops writing; returns (source, lines written).
    pub fn finish(mut self) -> (String, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        let n = self.log.lock().unwrap().next;
        (self.src.clone(), n)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// logrotate's default (`create`) with a daemon that reopens its log a moment later: the file
/// is renamed to `<path>.<round>`, a new one created, and lines written meanwhile land in the
/// renamed file, which the follower must drain before the new one.
pub fn rename_and_recreate(log: &Mutex<Log>, round: u64) {
    let path = log.lock().unwrap().path.clone();
    let rotated = PathBuf::from(format!("{}.{round}", path.display()));
    std::fs::rename(&path, &rotated).expect("renaming the log");
    File::create(&path).expect("creating the new log");
    std::thread::sleep(Duration::from_millis(3));
    log.lock().unwrap().file = open_append(&path);
}

/// logrotate's copytruncate, with the writer held off while the copy and the truncation happen
/// (lines written in between would be in neither the copy nor the file, lost to any follower;
/// excluding them makes what the follower alone loses exactly checkable). Returns the first
/// sequence number of the new generation.
pub fn copy_and_truncate(log: &Mutex<Log>) -> u64 {
    let log = log.lock().unwrap();
    let copy = PathBuf::from(format!("{}.1", log.path.display()));
    std::fs::copy(&log.path, &copy).expect("copying the log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log.path)
        .and_then(|f| f.set_len(0))
        .expect("truncating the log");
    log.next
}

/// A thread calling `each(round)` at jittered intervals of `period` ± `jitter` until stopped
/// (or dropped). A panic in `each` ends the thread and is re-raised by [`Every::finish`].
pub struct Every {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Every {
    pub fn start(
        period: Duration,
        jitter: Duration,
        seed: u64,
        mut each: impl FnMut(u64) + Send + 'static,
    ) -> Every {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::with_seed(seed);
            let mut round = 0;
            loop {
                let spread = jitter.as_millis() as u64;
                let wait = period.as_millis() as u64 + rng.u64(..2 * spread + 1) - spread;
                let next = Instant::now() + Duration::from_millis(wait);
                while Instant::now() < next {
                    if flag.load(Ordering::SeqCst) {
                        return round;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                round += 1;
                each(round);
            }
        });
        Every {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops; returns how many rounds ran (re-raising a panic of the thread).
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(n)) => n,
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => 0,
        }
    }
}

impl Drop for Every {
    /// Stops and joins the thread (a round is bounded), so no process it restarts outlives
    /// the test; a panic of the thread was already reported by the panic hook.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The concatenated bytes of a category's archive in write order, plain and `.gz` files alike
/// (through [`layout::list_archive`]). A file that vanishes while listed (compression finished
/// in between) is retried once from a fresh listing.
pub fn read_archive(data_dir: &Path, category: &str) -> Vec<u8> {
    let c: Category = category.parse().expect("valid category");
    for _ in 0..3 {
        let files = layout::list_archive(data_dir, &c).expect("listing the archive");
        let mut out = Vec::new();
        let mut complete = true;
        for f in &files {
            match f.open().and_then(|mut r| r.read_to_end(&mut out)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    complete = false;
                    break;
                }
                Err(e) => panic!("reading {}: {e}", f.path.display()),
            }
        }
        if complete {
            return out;
        }
    }
    panic!("the archive of {category} kept changing under the reader");
}

/// What one scenario measured: the writers' output against the archive.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Lines the writers produced.
    pub sent: u64,
    /// Lines in the archive, repeats included.
    pub delivered: u64,
    /// Produced lines that never arrived (beyond `window`).
    pub lost: u64,
    /// Arrivals of a line after its first.
    pub duplicated: u64,
    /// First arrivals that came after a later line of the same source had arrived.
    pub reordered: u64,
    /// Pieces of lines (cut or glued): a half-written line in the archive.
    pub torn: u64,
    /// Lines lost in copytruncate's unavoidable window (written between the copy and the
    /// truncation's effect on the reader); counted, not failed. Zero for rename rotation.
    pub window: u64,
    /// The first few pieces, for reports.
    pub torn_samples: Vec<String>,
    /// Cut lines tolerated: one per copytruncate truncation.
    pub torn_allowed: u64,
    /// Per source: (first missing sequence numbers, first duplicated ones), for failures.
    pub detail: BTreeMap<String, (Vec<u64>, Vec<u64>)>,
}

impl Tally {
    /// Compares the archive bytes with what each source wrote: `(source, lines written)`.
    pub fn of(archive: &[u8], written: &[(String, u64)]) -> Tally {
        Tally::with_generations(archive, written, &BTreeMap::new())
    }

    /// As [`Tally::of`], for files rotated by copytruncate: `starts[src]` holds the first
    /// sequence number of each generation after a truncation. Lines missing from the *end* of
    /// a generation that was truncated (written, but not yet read when the file was cut) are
    /// copytruncate's unavoidable window: counted in `window`, not `lost`. Anything else
    /// missing (the middle of a generation, or the last one) is lost. One cut line per
    /// truncation is allowed (`torn_allowed`): the follower gives up a partial line there.
    pub fn with_generations(
        archive: &[u8],
        written: &[(String, u64)],
        starts: &BTreeMap<String, Vec<u64>>,
    ) -> Tally {
        let r = SeqReport::of(archive);
        let mut t = Tally {
            torn: r.malformed.len() as u64,
            torn_samples: r
                .malformed
                .iter()
                .take(3)
                .map(|m| String::from_utf8_lossy(&m[..m.len().min(120)]).into_owned())
                .collect(),
            ..Tally::default()
        };
        for (src, n) in written {
            let arrived = r.per_src.get(src).map_or(&[][..], |v| &v[..]);
            t.sent += n;
            t.delivered += arrived.len() as u64;
            let mut seen = HashSet::with_capacity(arrived.len());
            let (mut dups, mut max_first): (Vec<u64>, Option<u64>) = (Vec::new(), None);
            for &s in arrived {
                if !seen.insert(s) {
                    t.duplicated += 1;
                    if dups.len() < 10 {
                        dups.push(s);
                    }
                    continue;
                }
                if max_first.is_some_and(|m| s < m) {
                    t.reordered += 1;
                }
                max_first = max_first.max(Some(s));
            }
            let cuts = starts.get(src).map_or(&[][..], |v| &v[..]);
            t.torn_allowed += cuts.len() as u64;
            // Each truncated generation [a, b) loses at most its unread tail: the window.
            let mut tail = HashSet::new();
            let bounds: Vec<u64> = std::iter::once(0).chain(cuts.iter().copied()).collect();
            for g in bounds.windows(2) {
                let (a, mut s) = (g[0], g[1]);
                while s > a && !seen.contains(&(s - 1)) {
                    s -= 1;
                    tail.insert(s);
                }
            }
            let missing: Vec<u64> = (0..*n)
                .filter(|s| !seen.contains(s) && !tail.contains(s))
                .collect();
            t.window += tail.len() as u64;
            t.lost += missing.len() as u64;
            t.detail
                .insert(src.clone(), (missing.into_iter().take(10).collect(), dups));
        }
        // Lines of sources nobody wrote (another scenario's, or garbage that parsed).
        for (src, seqs) in &r.per_src {
            if !written.iter().any(|(w, _)| w == src) {
                t.torn += seqs.len() as u64;
            }
        }
        t
    }

    /// The report line, `torture scenario=NAME sent=N ...`.
    pub fn line(&self, scenario: &str, secs: f64, extra: &str) -> String {
        format!(
            "torture scenario={scenario} sent={} delivered={} lost={} duplicated={} \
             reordered={} torn={} window={} secs={secs:.1}{}{extra}",
            self.sent,
            self.delivered,
            self.lost,
            self.duplicated,
            self.reordered,
            self.torn,
            self.window,
            if extra.is_empty() { "" } else { " " },
        )
    }

    /// Prints the report line (and any torn pieces), then [`Self::assert_exactly_once`].
    pub fn report(&self, scenario: &str, secs: f64, extra: &str) {
        println!("{}", self.line(scenario, secs, extra));
        if self.torn > 0 {
            println!("torture torn pieces: {:?}", self.torn_samples);
        }
        self.assert_exactly_once(scenario);
    }

    /// Fails on any loss, reorder or torn line, and on any duplicate unless
    /// `TORTURE_AT_LEAST_ONCE=1` (for binaries that do not dedupe yet: duplicates are then
    /// reported but tolerated).
    pub fn assert_exactly_once(&self, scenario: &str) {
        let at_least_once = std::env::var("TORTURE_AT_LEAST_ONCE").is_ok_and(|v| v == "1");
        assert_eq!(
            self.lost, 0,
            "{scenario}: {} of {} lines lost; first missing per source: {:?}",
            self.lost, self.sent, self.detail
        );
        assert_eq!(
            self.reordered, 0,
            "{scenario}: {} lines arrived out of order",
            self.reordered
        );
        assert!(
            self.torn <= self.torn_allowed,
            "{scenario}: {} cut or glued lines ({} allowed): {:?}",
            self.torn,
            self.torn_allowed,
            self.torn_samples
        );
        if !at_least_once {
            assert_eq!(
                self.duplicated, 0,
                "{scenario}: {} lines delivered more than once (set TORTURE_AT_LEAST_ONCE=1 \
                 to tolerate); first duplicates per source: {:?}",
                self.duplicated, self.detail
            );
        }
    }
}

/// Waits (at most `limit`) until every line written reached the archive of `category`, reading
/// it every 500 ms (a cheap size check first); `alive` runs each round (to fail fast when a
/// process died). Returns whether everything arrived.
pub fn drain(
    data_dir: &Path,
    category: &str,
    written: &[(String, u64)],
    limit: Duration,
    mut alive: impl FnMut(),
) -> bool {
    let total: u64 = written.iter().map(|(_, n)| n).sum();
    let start = Instant::now();
    while start.elapsed() < limit {
        alive();
        if category_dir_bytes(data_dir, category) >= total * SEQ_LINE_LEN as u64
            && Tally::of(&read_archive(data_dir, category), written).lost == 0
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

/// Bytes of a category's files, compressed ones at their compressed size (a lower bound, only
/// used to skip reading the archive while it is clearly incomplete, so `.gz` files count as
/// their original size would: their size is multiplied by a generous ratio).
fn category_dir_bytes(data_dir: &Path, category: &str) -> u64 {
    let Ok(c) = category.parse::<Category>() else {
        return 0;
    };
    layout::list_archive(data_dir, &c)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| {
            let len = std::fs::metadata(&f.path).ok()?.len();
            Some(if f.compressed { len * 1000 } else { len })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(lines: &[(&str, u64)]) -> Vec<u8> {
        lines.iter().flat_map(|(s, n)| seq_line(s, *n)).collect()
    }

    #[test]
    fn tally_counts_loss_duplicates_reorders_and_pieces() {
        let mut bytes = archive(&[("a", 0), ("b", 0), ("a", 2), ("a", 1), ("a", 2), ("b", 1)]);
        bytes.extend_from_slice(&seq_line("b", 2)[..40]);
        let t = Tally::of(&bytes, &[("a".into(), 4), ("b".into(), 3)]);
        assert_eq!(
            (
                t.sent,
                t.delivered,
                t.lost,
                t.duplicated,
                t.reordered,
                t.torn
            ),
            (7, 6, 2, 1, 1, 1)
        );
        assert_eq!(t.detail["a"].0, vec![3]);
        assert_eq!(t.detail["b"].0, vec![2]);
    }

    #[test]
    fn copytruncate_window_is_only_a_truncated_generations_unread_tail() {
        // Generations [0,4), [4,8), [8,10): the first lost its tail 2..4 (window), the second
        // its middle line 5 (lost), the last its end line 9 (lost: never truncated).
        let bytes = archive(&[("a", 0), ("a", 1), ("a", 4), ("a", 6), ("a", 7), ("a", 8)]);
        let starts = BTreeMap::from([("a".to_string(), vec![4, 8])]);
        let t = Tally::with_generations(&bytes, &[("a".into(), 10)], &starts);
        assert_eq!((t.window, t.lost, t.torn_allowed), (2, 2, 2));
        assert_eq!(t.detail["a"].0, vec![5, 9]);
    }
}
