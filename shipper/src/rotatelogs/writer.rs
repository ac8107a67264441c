//! [`RotatelogsWriter`]: bytes in, rotated files out, with Apache rotatelogs' decisions
//! (when to rotate, which name, which truncation) and without its data loss.
//!
//! Rotation is checked before each write, as rotatelogs checks before each `read(2)` chunk: a
//! file is rotated when none is open, when its size is already ABOVE the limit (so a file
//! exceeds it by at most one write), or when the adjusted clock reached the end of the
//! current interval. One refinement: if the previous write ended inside a line, the rest of
//! that line (up to [`LINE_GRACE`] bytes) still goes to the old file, so a line is never split
//! across two files. rotatelogs splits wherever `read(2)` happened to stop.
//!
//! Where rotatelogs loses data, this writer waits instead:
//! - a failed or short write (disk full, quota, EIO) is retried every `retry_interval`, with a
//!   message on stderr, until it succeeds. Input is held meanwhile: the caller blocks, and
//!   behind it the pipe fills and the daemon writing it blocks (as multilog and svlogd do).
//!   rotatelogs instead truncates the file to zero and writes "N messages lost";
//! - a new file that cannot be opened at rotation leaves the old one in use (retried at the
//!   next write); rotatelogs truncates the old file. Only the very first open exits when the
//!   error is not a transient one (no such directory, permission denied), as rotatelogs does.
//!
//! File system access goes through [`Opener`] so tests can inject `ENOSPC`.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scribe_archive::{Clock, Compressor, SystemClock};

use super::closer::{Closer, LogFile};
use super::hooks::Hooks;
use super::naming::{init_local_zone, interval, NameError, Naming, Zone};
use super::retention::{self, Matcher};

/// Bytes of an unfinished line that may still go to the old file once a rotation is due.
pub const LINE_GRACE: usize = 64 * 1024;

/// How often a still-failing write repeats its message on stderr.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// Everything a [`RotatelogsWriter`] needs to know. `RotateOptions::new(pattern)` gives
/// rotatelogs' defaults (UTC, no rotation); set `period` and/or `max_size`.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// File name, or strftime pattern if it contains `%`.
    pub pattern: OsString,
    /// Rotation time in seconds; intervals are aligned to multiples of it (adjusted time).
    pub period: Option<u32>,
    /// Rotate once a file is larger than this many bytes.
    pub max_size: Option<u64>,
    pub zone: Zone,
    /// `-n`: cycle through this many names.
    pub num_files: Option<u32>,
    /// `-t`: truncate at every open; no suffix.
    pub truncate: bool,
    /// `-T`: truncate at every open but the first.
    pub truncate_rotated: bool,
    /// `-D`
    pub create_dirs: bool,
    /// `-L`: hard link to the current file.
    pub link: Option<PathBuf>,
    /// `-p`: program run with the new and the old file name.
    pub program: Option<PathBuf>,
    /// `-v`: describe opens and closes on stderr, in rotatelogs' words.
    pub verbose: bool,
    /// gzip closed files in the background.
    pub gzip: bool,
    /// Keep at most this many closed files.
    pub keep: Option<usize>,
    /// fsync each file after it is closed at rotation (on a background thread, see
    /// [`super::closer`]), and the last one at [`RotatelogsWriter::close`].
    pub fsync: bool,
    /// Wait between attempts of a failed write or open.
    pub retry_interval: Duration,
}

impl RotateOptions {
    pub fn new(pattern: impl Into<OsString>) -> RotateOptions {
        RotateOptions {
            pattern: pattern.into(),
            period: None,
            max_size: None,
            zone: Zone::Fixed(0),
            num_files: None,
            truncate: false,
            truncate_rotated: false,
            create_dirs: false,
            link: None,
            program: None,
            verbose: false,
            gzip: false,
            keep: None,
            fsync: true,
            retry_interval: Duration::from_secs(1),
        }
    }

    /// The naming scheme these options select.
    pub fn naming(&self) -> Naming {
        Naming::new(&self.pattern, self.truncate, self.num_files)
    }
}

/// Errors that stop the writer. Write errors never do: they are retried.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no rotation time or size specified")]
    NoRotation,
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("could not open log file {path:?}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

/// Opens log files (append mode, created if missing, truncated if asked).
pub trait Opener: Send + Sync {
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Box<dyn LogFile>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsOpener;

impl Opener for FsOpener {
    fn open(&self, path: &Path, truncate: bool) -> io::Result<Box<dyn LogFile>> {
        // std refuses append together with truncate; O_APPEND as a flag is what C does.
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_APPEND)
            .create(true)
            .truncate(truncate)
            .open(path)?;
        Ok(Box::new(f))
    }
}

/// Counters of what a writer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Bytes written to log files.
    pub bytes: u64,
    /// Files opened (the first one included).
    pub opens: u64,
    /// Failed write attempts that were retried.
    pub write_retries: u64,
    /// Failed opens (of a new file at rotation) that were retried.
    pub open_retries: u64,
}

struct OpenFailure {
    last_try: Instant,
    last_log: Instant,
}

struct Current {
    file: Box<dyn LogFile>,
    path: PathBuf,
    size: u64,
}

/// Writes bytes into files rotated the way Apache rotatelogs rotates them. See the module doc.
pub struct RotatelogsWriter {
    opts: RotateOptions,
    naming: Naming,
    clock: Arc<dyn Clock>,
    opener: Arc<dyn Opener>,
    current: Option<Current>,
    /// End of the current interval (adjusted seconds); 0 before the first open.
    log_end: i64,
    /// Slot of the current file with `-n`.
    slot: Option<u32>,
    /// Bytes written since the last newline (capped); > 0 means mid-line.
    partial_line: usize,
    /// The last failed open of a new file, while the old one stays in use.
    open_failure: Option<OpenFailure>,
    hooks: Hooks,
    compressor: Option<Compressor>,
    /// Files handed to the compressor, which may still be working on them.
    compressing: HashSet<PathBuf>,
    matcher: Option<Matcher>,
    /// fsyncs closed files in the background (with `fsync`).
    closer: Option<Closer>,
    stats: WriterStats,
}

impl RotatelogsWriter {
    /// A writer on the real file system and clock. Opens nothing yet (see [`Self::open_now`]).
    pub fn new(opts: RotateOptions) -> Result<RotatelogsWriter, RotateError> {
        Self::with_parts(opts, Arc::new(SystemClock), Arc::new(FsOpener))
    }

    /// A writer with an injected clock and file system (tests).
    pub fn with_parts(
        opts: RotateOptions,
        clock: Arc<dyn Clock>,
        opener: Arc<dyn Opener>,
    ) -> Result<RotatelogsWriter, RotateError> {
        if opts.period.is_none() && opts.max_size.is_none() {
            return Err(RotateError::NoRotation);
        }
        if opts.zone == Zone::Local {
            init_local_zone();
        }
        let naming = opts.naming();
        let matcher = opts.keep.and_then(|_| Matcher::new(&naming));
        Ok(RotatelogsWriter {
            compressor: opts.gzip.then(|| Compressor::new(1024)),
            hooks: Hooks::new(opts.link.clone(), opts.program.clone(), opts.verbose),
            naming,
            clock,
            opener,
            current: None,
            log_end: 0,
            slot: None,
            partial_line: 0,
            open_failure: None,
            compressing: HashSet::new(),
            matcher,
            closer: opts.fsync.then(Closer::spawn),
            stats: WriterStats::default(),
            opts,
        })
    }

    pub fn options(&self) -> &RotateOptions {
        &self.opts
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// The file being written, if one is open.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    /// Adjusted now (seconds) and the zone offset used.
    fn now(&self) -> (i64, i32) {
        self.opts.zone.adjust(self.clock.now().timestamp())
    }

    /// Opens the first file now (`-f`) instead of at the first write.
    pub fn open_now(&mut self) -> Result<(), RotateError> {
        if self.current.is_none() {
            self.rotate("Open a new file")?;
        }
        Ok(())
    }

    /// Why a rotation is due before the next write, if it is.
    fn rotation_due(&self) -> Option<&'static str> {
        let Some(cur) = &self.current else {
            return Some("Open a new file");
        };
        if let Some(f) = &self.open_failure {
            // Retry a failed open at most every retry_interval, not at every write.
            if f.last_try.elapsed() < self.opts.retry_interval {
                return None;
            }
        }
        if matches!(self.opts.max_size, Some(max) if cur.size > max) {
            return Some("Maximum size reached");
        }
        if self.opts.period.is_some() && self.now().0 >= self.log_end {
            return Some("Time interval expired");
        }
        None
    }

    /// Writes `data` (any bytes), rotating first if due. Blocks while writes fail.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), RotateError> {
        if data.is_empty() {
            return Ok(());
        }
        if let Some(reason) = self.rotation_due() {
            if self.current.is_some() && self.partial_line > 0 && self.partial_line < LINE_GRACE {
                // Finish the line in the file it started in.
                let room = LINE_GRACE - self.partial_line;
                match memchr::memchr(b'\n', &data[..data.len().min(room)]) {
                    Some(i) => {
                        self.write_all(&data[..=i]);
                        data = &data[i + 1..];
                    }
                    None => {
                        let n = data.len().min(room);
                        self.write_all(&data[..n]);
                        data = &data[n..];
                    }
                }
                if data.is_empty() {
                    return Ok(());
                }
                if self.partial_line == 0 || self.partial_line >= LINE_GRACE {
                    self.rotate(reason)?;
                }
            } else {
                self.rotate(reason)?;
            }
        }
        self.write_all(data);
        Ok(())
    }

    /// Writes one line, adding the `\n` if `line` lacks it.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), RotateError> {
        if line.last() == Some(&b'\n') {
            self.write(line)
        } else {
            // Two writes would let a rotation fall between the line and its newline.
            let mut v = Vec::with_capacity(line.len() + 1);
            v.extend_from_slice(line);
            v.push(b'\n');
            self.write(&v)
        }
    }

    /// For `-c`: when the interval is over, start the next file even without input.
    pub fn tick(&mut self) -> Result<(), RotateError> {
        if self.opts.period.is_some() && self.now().0 >= self.log_end {
            let reason = if self.current.is_none() {
                "Open a new file"
            } else {
                "Time interval expired"
            };
            self.rotate(reason)?;
        }
        Ok(())
    }

    /// How long until the current interval ends (for `-c`): `None` without a rotation time.
    /// Before the first file, a whole period, as rotatelogs waits.
    pub fn until_interval_end(&self) -> Option<Duration> {
        let period = self.opts.period?;
        if self.log_end == 0 {
            return Some(Duration::from_secs(period.into()));
        }
        // In milliseconds: waking a little early would see the old interval and sleep again.
        let now = self.clock.now();
        let (adj, _) = self.opts.zone.adjust(now.timestamp());
        let now_ms = adj * 1000 + i64::from(now.timestamp_subsec_millis());
        let left = self.log_end * 1000 - now_ms;
        Some(Duration::from_millis(left.max(0) as u64))
    }

    fn rotate(&mut self, reason: &str) -> Result<(), RotateError> {
        if self.opts.verbose {
            eprintln!("File rotation needed, reason: {reason}");
        }
        let (now, offset) = self.now();
        let prev_end = self.log_end;
        let start = match self.opts.period {
            Some(p) => {
                let (start, end) = interval(now, p);
                // A rotation inside the interval (size, or a retried open) is named after now.
                let start = if start < self.log_end { now } else { start };
                self.log_end = end;
                start
            }
            None => now,
        };
        let (path, slot) = self.naming.name(start, offset, self.opts.zone, self.slot)?;
        let truncate = self.opts.truncate
            || ((self.opts.num_files.is_some() || self.opts.truncate_rotated)
                && self.current.is_some());
        let made_dirs = if self.opts.create_dirs {
            self.create_parent(&path)
        } else {
            Ok(())
        };
        if self.compressing.remove(&path) {
            // Reusing a name (-n, or a coarse pattern) the compressor may still be reading:
            // it must finish (and remove the plain file) before we write a new one.
            if let Some(c) = &self.compressor {
                c.wait_idle();
            }
        }
        if self.opts.verbose {
            eprintln!("Opening file {}", path.display());
        }
        let file = match made_dirs.and_then(|()| self.open_retrying(&path, truncate)) {
            Ok(f) => f,
            Err(source) => {
                // Keep writing to the old file rather than lose anything; rotatelogs would
                // truncate it. No old file: nothing to fall back to, so give up.
                if self.current.is_none() {
                    return Err(RotateError::Open { path, source });
                }
                // The retry computes the same interval, hence the same name.
                self.log_end = prev_end;
                self.stats.open_retries += 1;
                let now = Instant::now();
                let log = match &self.open_failure {
                    None => true,
                    Some(f) => now - f.last_log >= REMIND_EVERY,
                };
                if log {
                    tracing::error!(
                        "could not open new log file {}: {source}; still writing to {} and retrying every {:?}",
                        path.display(),
                        self.current_path().map(|p| p.display().to_string()).unwrap_or_default(),
                        self.opts.retry_interval
                    );
                }
                let f = self.open_failure.get_or_insert(OpenFailure {
                    last_try: now,
                    last_log: now,
                });
                f.last_try = now;
                if log {
                    f.last_log = now;
                }
                return Ok(());
            }
        };
        if self.open_failure.take().is_some() {
            tracing::warn!("opened {}; rotation resumed", path.display());
        }
        self.stats.opens += 1;
        let size = file.size().unwrap_or(0);
        let old = self.current.take();
        let old_path = old.as_ref().map(|c| c.path.clone());
        self.current = Some(Current {
            file,
            path: path.clone(),
            size,
        });
        self.slot = slot;
        self.partial_line = 0;
        self.hooks.opened(&path, old_path.as_deref());
        if let Some(old) = old {
            self.close_file(old, &path);
        }
        if let (Some(keep), Some(m)) = (self.opts.keep, &self.matcher) {
            retention::keep_newest(m, keep, &path);
        }
        Ok(())
    }

    /// `-D`: creates the directories `path` needs.
    fn create_parent(&self, path: &Path) -> io::Result<()> {
        let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        if dir.is_dir() {
            return Ok(());
        }
        if self.opts.verbose {
            eprintln!("Creating directory tree {}", dir.display());
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("creating directory {}: {e}", dir.display()),
            )
        })
    }

    /// Opens `path`; waits out transient errors (no space, quota, descriptor limits) when a
    /// file is needed to write at all, and fails at once on others.
    fn open_retrying(&mut self, path: &Path, truncate: bool) -> io::Result<Box<dyn LogFile>> {
        let mut since: Option<(Instant, Instant)> = None;
        loop {
            match self.opener.open(path, truncate) {
                Ok(f) => {
                    if let Some((t0, _)) = since {
                        tracing::warn!(
                            "opened {} after {:.1}s of retries",
                            path.display(),
                            t0.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(f);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.current.is_none() && is_transient(&e) => {
                    let now = Instant::now();
                    match since {
                        None => {
                            tracing::error!(
                                "cannot open log file {}: {e}; input is held and the open retried every {:?}",
                                path.display(),
                                self.opts.retry_interval
                            );
                            since = Some((now, now));
                        }
                        Some((t0, last)) if now - last >= REMIND_EVERY => {
                            tracing::error!(
                                "still cannot open {} after {:.0}s: {e}",
                                path.display(),
                                (now - t0).as_secs_f64()
                            );
                            since = Some((t0, now));
                        }
                        Some(_) => {}
                    }
                    std::thread::sleep(self.opts.retry_interval);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn close_file(&mut self, old: Current, new_path: &Path) {
        if self.opts.verbose {
            eprintln!("Closing file {}", old.path.display());
        }
        match &self.closer {
            // Reopened under the same name (size rotation within one second, -t, -n 1): the
            // same inode stays open, and its fsync at the next real close covers these bytes.
            Some(c) if old.path != new_path => c.close(old.file, old.path.clone()),
            _ => drop(old.file),
        }
        let Some(c) = &self.compressor else { return };
        // A file reopened under the same name (size rotation within a second, -t, -n 1) is
        // still in use.
        if old.path == new_path {
            return;
        }
        let mut gz = old.path.clone().into_os_string();
        gz.push(".gz");
        // With -n, -t or -T a reused name starts empty by design, and so may its .gz.
        let reuse_discards =
            self.opts.num_files.is_some() || self.opts.truncate || self.opts.truncate_rotated;
        if !reuse_discards && Path::new(&gz).exists() {
            // A name used before (e.g. a pattern with %H but no date, appended to as
            // rotatelogs does): compressing would replace the older .gz.
            tracing::warn!(
                "not compressing {}: {} exists and would be replaced",
                old.path.display(),
                Path::new(&gz).display()
            );
            return;
        }
        c.submit(old.path.clone());
        self.compressing.insert(old.path);
    }

    /// Writes all of `data` to the current file, retrying failed writes until they succeed.
    fn write_all(&mut self, mut data: &[u8]) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let mut failing: Option<(Instant, Instant)> = None;
        while !data.is_empty() {
            let err = match cur.file.write(data) {
                Ok(0) => io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"),
                Ok(n) => {
                    let (done, rest) = data.split_at(n);
                    data = rest;
                    cur.size += n as u64;
                    self.stats.bytes += n as u64;
                    self.partial_line = match memchr::memrchr(b'\n', done) {
                        Some(i) => done.len() - 1 - i,
                        None => self.partial_line.saturating_add(done.len()),
                    };
                    if let Some((t0, _)) = failing.take() {
                        tracing::warn!(
                            "writing to {} again after {:.1}s; nothing was lost",
                            cur.path.display(),
                            t0.elapsed().as_secs_f64()
                        );
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            self.stats.write_retries += 1;
            let now = Instant::now();
            match failing {
                None => {
                    tracing::error!(
                        "error writing to log file {} at offset {}: {err}; holding {} bytes and retrying every {:?} (input is paused, nothing is dropped)",
                        cur.path.display(),
                        cur.size,
                        data.len(),
                        self.opts.retry_interval
                    );
                    failing = Some((now, now));
                }
                Some((t0, last)) if now - last >= REMIND_EVERY => {
                    tracing::error!(
                        "still cannot write to {} after {:.0}s: {err}",
                        cur.path.display(),
                        (now - t0).as_secs_f64()
                    );
                    failing = Some((t0, now));
                }
                Some(_) => {}
            }
            std::thread::sleep(self.opts.retry_interval);
        }
    }

    /// Ends writing: fsyncs the current file (if `fsync`), and waits for pending gzips.
    pub fn close(mut self) {
        if let Some(cur) = self.current.take() {
            if let Some(c) = &self.closer {
                c.close(cur.file, cur.path);
            }
        }
        if let Some(c) = self.closer.as_mut() {
            c.finish();
        }
        if let Some(c) = &self.compressor {
            c.wait_idle();
        }
        self.hooks.reap();
    }
}

/// Errors worth waiting out rather than exiting on.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EMFILE | libc::ENFILE | libc::EIO | libc::ENOMEM)
    )
}
