//! The [`Follower`]: one reconcile pass per [`Follower::poll`].

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::mem;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::checkpoint::{Checkpoint, Checkpoints};
use crate::error::FollowError;
use crate::identity::{find_by_key, FileKey, Fingerprint};

/// Names one generation of one followed file in [`Event`]s and in [`Follower::commit`]. A new
/// file at a watched path, and a file that was truncated, get a new id, so a late commit for
/// the old contents can never move the new contents' offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a [`Follower`] reads.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Read files that exist when following starts from their beginning instead of their end.
    /// Only applies to paths watched before the first poll that have no checkpoint.
    pub from_beginning: bool,
    /// How many leading bytes the identity fingerprint covers (once the file has them).
    pub fingerprint_bytes: u32,
    /// The longest line delivered, counting its `\n`. A longer line is reported as
    /// [`Event::LineTooLong`] and skipped; it is never held whole in memory.
    pub max_line_bytes: usize,
    /// At most this many bytes are read from one file in one poll, so one busy file cannot
    /// starve the others; [`PollOutcome::pending`] says when a file has more.
    pub max_read_bytes: u64,
    /// A file rotated away from its path is kept open and read until it has had no new bytes
    /// for this long (the writer may not have reopened its log yet), then closed.
    pub rotate_wait: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            from_beginning: false,
            fingerprint_bytes: 1024,
            // A line must fit in one 16 MiB Scribe frame with its envelope.
            max_line_bytes: (16 << 20) - (64 << 10),
            max_read_bytes: 4 << 20,
            rotate_wait: Duration::from_secs(5),
        }
    }
}

/// What one poll found. `path` is always the watched path, even for a file being drained
/// under its rotated name.
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete line (ending in `\n`), or the held partial last line of a file that rotated
    /// away or was truncated (no `\n`). Bytes are passed through unchanged. Commit
    /// `offset_after` once the line is acknowledged.
    Line {
        path: &'a Path,
        file_id: FileId,
        offset_after: u64,
        bytes: &'a [u8],
    },
    /// Started following a file at `offset`.
    Opened {
        path: &'a Path,
        file_id: FileId,
        offset: u64,
    },
    /// The file left the watched path and was found again at `to`; it is drained to its end
    /// before the next file at the path is read.
    Rotated {
        path: &'a Path,
        file_id: FileId,
        to: &'a Path,
    },
    /// The file shrank below the read offset, or no longer starts with its fingerprinted
    /// bytes (copytruncate, or a rewrite in place). Reading restarts at 0 under a new id.
    /// Whatever was written after `offset` and before the truncation is lost.
    Truncated {
        path: &'a Path,
        file_id: FileId,
        new_file_id: FileId,
        offset: u64,
        size: u64,
    },
    /// The file left the path and could not be found again (deleted, or moved to another
    /// directory). Bytes written after `offset` and not yet read are lost.
    Vanished {
        path: &'a Path,
        file_id: FileId,
        offset: u64,
    },
    /// A rotated file was drained and closed at `offset`.
    Closed {
        path: &'a Path,
        file_id: FileId,
        offset: u64,
    },
    /// A line starting at `offset` exceeds `max` bytes; it is skipped up to its `\n`.
    LineTooLong {
        path: &'a Path,
        file_id: FileId,
        offset: u64,
        max: usize,
    },
    /// The path could not be read (reported once until it recovers).
    Error { path: &'a Path, error: FollowError },
}

/// The result of one [`Follower::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollOutcome {
    /// Some file stopped at [`FollowOptions::max_read_bytes`]: poll again without waiting.
    pub pending: bool,
}

/// Counters since the follower was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub lines: u64,
    pub bytes: u64,
    pub rotations: u64,
    pub truncations: u64,
    /// Bytes seen to exist past the read offset when a truncation was detected: a lower
    /// bound of what copytruncate lost. Bytes written and truncated between two polls are
    /// invisible and not counted.
    pub truncated_unread: u64,
    pub vanished: u64,
    pub long_lines: u64,
    pub errors: u64,
}

/// One generation of one file.
struct Tracked {
    id: FileId,
    key: FileKey,
    fp: Fingerprint,
    /// Read position: every byte before it was delivered or is in `partial`.
    offset: u64,
    committed: u64,
    /// Size at the last `fstat`, for [`FollowStats::truncated_unread`].
    size_seen: u64,
    /// Modification time at the last `fstat`: a change without growth means a rewrite in
    /// place (or a reused inode) that only the fingerprint can tell apart.
    mtime_seen: (i64, i64),
    partial: Vec<u8>,
    partial_start: u64,
    /// Inside a too-long line: discard bytes up to the next `\n`.
    skipping: bool,
    /// False for a checkpoint entry whose fingerprint was not checked yet.
    verified: bool,
    /// Where to look for the file if it leaves the path: the path's directory and the
    /// directory of its symlink target.
    dirs: Vec<PathBuf>,
    /// Open only while being drained after a rotation.
    file: Option<File>,
    last_growth: Instant,
}

struct Watch {
    path: PathBuf,
    /// Start a file found at the first reconcile at its end.
    from_end: bool,
    current: Option<Tracked>,
    /// Rotated-away files, oldest first; each is drained before anything newer is read.
    draining: Vec<Tracked>,
    /// Checkpoint entries not yet matched to a file.
    restored: Vec<Tracked>,
    /// Closed files whose lines are not all committed yet (kept for checkpoints).
    retired: Vec<Tracked>,
    error_reported: bool,
}

/// Follows a set of paths. See the crate documentation.
pub struct Follower {
    opts: FollowOptions,
    watches: Vec<Watch>,
    checkpoints: HashMap<PathBuf, Vec<Checkpoint>>,
    started: bool,
    next_id: u64,
    stats: FollowStats,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 << 10;

impl Follower {
    pub fn new(opts: FollowOptions) -> Follower {
        Follower::with_checkpoints(opts, &Checkpoints::default())
    }

    /// A follower that resumes every file in `checkpoints` at its committed offset, provided
    /// the file is still the same (device, inode and fingerprint), whether it is still at its
    /// path or was rotated to a name in the same directory. A path with a checkpoint is never
    /// "preexisting": a different file found there starts at 0.
    pub fn with_checkpoints(opts: FollowOptions, checkpoints: &Checkpoints) -> Follower {
        let mut by_path: HashMap<PathBuf, Vec<Checkpoint>> = HashMap::new();
        for c in &checkpoints.entries {
            by_path.entry(c.path.clone()).or_default().push(c.clone());
        }
        Follower {
            opts,
            watches: Vec::new(),
            checkpoints: by_path,
            started: false,
            next_id: 0,
            stats: FollowStats::default(),
            buf: vec![0; CHUNK],
        }
    }

    /// Starts following `path` (an exact path; it need not exist yet). Watching a path twice
    /// is a no-op. A path watched after the first poll counts as new: read from its beginning.
    pub fn watch(&mut self, path: impl Into<PathBuf>) {
        let from_beginning = self.opts.from_beginning;
        self.watch_with(path, from_beginning);
    }

    /// [`watch`](Follower::watch) with this path's own
    /// [`from_beginning`](FollowOptions::from_beginning).
    pub fn watch_with(&mut self, path: impl Into<PathBuf>, from_beginning: bool) {
        let path = path.into();
        if self.watches.iter().any(|w| w.path == path) {
            return;
        }
        let restored = self.checkpoints.remove(&path);
        let from_end = !self.started && !from_beginning && restored.is_none();
        let now = Instant::now();
        let restored = restored
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let mut t = Tracked::new(
                    alloc_id(&mut self.next_id),
                    FileKey {
                        dev: c.device,
                        ino: c.inode,
                    },
                    c.fingerprint,
                    c.offset,
                    dirs_for(&path),
                    now,
                );
                t.verified = false;
                t
            })
            .collect();
        self.watches.push(Watch {
            path,
            from_end,
            current: None,
            draining: Vec::new(),
            restored,
            retired: Vec::new(),
            error_reported: false,
        });
    }

    /// Stops following `path` if nothing there needs it any more: no file at the path, none
    /// being drained, and every line read committed. Returns whether it was removed. Glob
    /// discovery calls it for paths whose files are gone, so the watch list does not grow
    /// forever with dated file names; the path's checkpoint entries go with it.
    pub fn unwatch_if_idle(&mut self, path: &Path) -> bool {
        let Some(i) = self.watches.iter().position(|w| w.path == path) else {
            return false;
        };
        let w = &self.watches[i];
        let idle = w.current.is_none()
            && w.draining.is_empty()
            && w.retired.is_empty()
            && w.restored.is_empty();
        if idle {
            self.watches.remove(i);
        }
        idle
    }

    /// Whether the file with this (device, inode) is being followed under some watched path
    /// (at the path, or drained under its rotated name). Glob discovery skips such a file
    /// when a pattern also matches its rotated name, so it is not read twice.
    pub fn is_following(&self, device: u64, inode: u64) -> bool {
        let key = FileKey {
            dev: device,
            ino: inode,
        };
        self.watches
            .iter()
            .any(|w| w.current.iter().chain(&w.draining).any(|t| t.key == key))
    }

    /// The watched paths (for setting up change notifications, which are only a hint to
    /// poll sooner).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.watches.iter().map(|w| w.path.as_path())
    }

    pub fn stats(&self) -> &FollowStats {
        &self.stats
    }

    /// One reconcile pass over every watched path: notice rotation, truncation and new
    /// files, then read new lines (rotated files first), calling `out` for each event.
    /// Files are opened and closed within the pass, except rotated files being drained.
    pub fn poll(&mut self, out: &mut dyn FnMut(Event<'_>)) -> PollOutcome {
        let mut pass = Pass {
            opts: &self.opts,
            stats: &mut self.stats,
            buf: &mut self.buf,
            next_id: &mut self.next_id,
            now: Instant::now(),
        };
        let mut pending = false;
        for w in &mut self.watches {
            pending |= pass.reconcile(w, out);
        }
        self.started = true;
        PollOutcome { pending }
    }

    /// Records that the lines of `file_id` up to `offset` (an `offset_after` from a
    /// [`Event::Line`]) were acknowledged; [`checkpoints`](Follower::checkpoints) resumes
    /// there. Commits of files no longer followed (vanished, truncated since) are ignored.
    /// Linear in the number of followed files.
    pub fn commit(&mut self, file_id: FileId, offset: u64) -> Result<(), FollowError> {
        for w in &mut self.watches {
            let live = w.current.iter_mut().chain(w.draining.iter_mut());
            for t in live.chain(w.retired.iter_mut()) {
                if t.id != file_id {
                    continue;
                }
                if offset > t.offset {
                    return Err(FollowError::InvalidCommit {
                        file_id,
                        offset,
                        read: t.offset,
                    });
                }
                t.committed = t.committed.max(offset);
                w.retired.retain(|r| r.committed < r.offset);
                return Ok(());
            }
        }
        Ok(())
    }

    /// The committed position of every followed file, to [`save`](Checkpoints::save).
    pub fn checkpoints(&self) -> Checkpoints {
        let mut entries = Vec::new();
        for w in &self.watches {
            let files = w.retired.iter().chain(&w.draining).chain(&w.restored);
            for t in files.chain(&w.current) {
                entries.push(Checkpoint {
                    path: w.path.clone(),
                    device: t.key.dev,
                    inode: t.key.ino,
                    fingerprint: t.fp,
                    offset: t.committed,
                });
            }
        }
        Checkpoints { entries }
    }
}

fn alloc_id(next: &mut u64) -> FileId {
    *next += 1;
    FileId(*next)
}

fn dirs_for(path: &Path) -> Vec<PathBuf> {
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = vec![parent(path)];
    if let Ok(target) = fs::canonicalize(path) {
        let d = parent(&target);
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs
}

/// Opens what is at `path` now. A FIFO or device would block or never end, so the path is
/// `stat`ed before it is opened; the `fstat` after opening is the identity that counts.
fn open_path(path: &Path) -> Result<Option<(File, fs::Metadata)>, FollowError> {
    let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    match fs::metadata(path) {
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(FollowError::io("stat", path, e)),
        Ok(m) if !m.is_file() => {
            return Err(FollowError::NotAFile {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
    }
    let file = match File::open(path) {
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(FollowError::io("open", path, e)),
        Ok(f) => f,
    };
    let meta = file
        .metadata()
        .map_err(|e| FollowError::io("fstat", path, e))?;
    Ok(Some((file, meta)))
}

impl Tracked {
    fn new(
        id: FileId,
        key: FileKey,
        fp: Fingerprint,
        offset: u64,
        dirs: Vec<PathBuf>,
        now: Instant,
    ) -> Tracked {
        Tracked {
            id,
            key,
            fp,
            offset,
            committed: offset,
            size_seen: offset,
            mtime_seen: (0, 0),
            partial: Vec::new(),
            partial_start: offset,
            skipping: false,
            verified: true,
            dirs,
            file: None,
            last_growth: now,
        }
    }
}

/// The state one poll works with, split from the watches so both can be borrowed.
struct Pass<'a> {
    opts: &'a FollowOptions,
    stats: &'a mut FollowStats,
    buf: &'a mut Vec<u8>,
    next_id: &'a mut u64,
    now: Instant,
}

/// How a read ended.
enum Read {
    Eof { grew: bool },
    Budget,
}

impl Pass<'_> {
    /// Returns whether some file of `w` has more to read right away.
    fn reconcile(&mut self, w: &mut Watch, out: &mut dyn FnMut(Event<'_>)) -> bool {
        let at_path = match open_path(&w.path) {
            Ok(x) => {
                w.error_reported = false;
                x
            }
            Err(error) => {
                // Unknown state (e.g. permissions): keep the current file's record as it is.
                if !w.error_reported {
                    w.error_reported = true;
                    self.stats.errors += 1;
                    out(Event::Error {
                        path: &w.path,
                        error,
                    });
                }
                return self.drain(w, out);
            }
        };
        let key_now = at_path.as_ref().map(|(_, m)| FileKey::of(m));

        // Checkpointed files: the one still at the path carries on there, the others are
        // looked for under their rotated names.
        for t in mem::take(&mut w.restored) {
            if w.current.is_none() && Some(t.key) == key_now {
                w.current = Some(t);
            } else {
                self.relocate(w, t, out);
            }
        }
        // The file at the path is not the one we were reading: rotation, delete, retarget.
        if w.current.as_ref().is_some_and(|t| Some(t.key) != key_now) {
            if let Some(t) = w.current.take() {
                self.relocate(w, t, out);
            }
        }
        if let (None, Some((file, meta))) = (&w.current, &at_path) {
            // A symlink pointed back at a file still being drained: carry on with it.
            if let Some(i) = w.draining.iter().position(|d| Some(d.key) == key_now) {
                let mut t = w.draining.remove(i);
                t.file = None;
                w.current = Some(t);
            } else {
                let size = meta.len();
                let start = if w.from_end { size } else { 0 };
                let fp = Fingerprint::compute(file, size, self.opts.fingerprint_bytes);
                match fp {
                    Ok(fp) => {
                        let id = alloc_id(self.next_id);
                        let key = FileKey::of(meta);
                        let t = Tracked::new(id, key, fp, start, dirs_for(&w.path), self.now);
                        out(Event::Opened {
                            path: &w.path,
                            file_id: id,
                            offset: start,
                        });
                        w.current = Some(t);
                    }
                    Err(e) => self.error(&w.path, FollowError::io("read", &w.path, e), out),
                }
            }
        }
        w.from_end = false;

        if self.drain(w, out) {
            return true; // an older file still has bytes: the current one waits
        }
        let (Some(t), Some((file, meta))) = (w.current.as_mut(), at_path) else {
            return false;
        };
        let size = meta.len();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        if size < t.offset {
            self.truncated(&w.path, t, &file, size, out);
        } else if size > t.offset || !t.verified || mtime != t.mtime_seen {
            let checked =
                t.fp.verify_and_extend(&file, size, self.opts.fingerprint_bytes);
            match checked {
                Ok(Some(fp)) => {
                    t.fp = fp;
                    t.verified = true;
                }
                Ok(None) => self.truncated(&w.path, t, &file, size, out),
                Err(e) => {
                    self.error(&w.path, FollowError::io("read", &w.path, e), out);
                    return false;
                }
            }
        }
        t.size_seen = size;
        t.mtime_seen = mtime;
        if size <= t.offset {
            return false;
        }
        match self.read(&w.path, t, &file, out) {
            Ok(Read::Budget) => true,
            Ok(Read::Eof { .. }) => false,
            Err(e) => {
                self.error(&w.path, e, out);
                false
            }
        }
    }

    /// Reads the rotated files of `w`, oldest first, and closes those that have been idle at
    /// their end for `rotate_wait`. Returns whether one of them has more to read.
    fn drain(&mut self, w: &mut Watch, out: &mut dyn FnMut(Event<'_>)) -> bool {
        let mut i = 0;
        while i < w.draining.len() {
            let t = &mut w.draining[i];
            let Some(file) = t.file.take() else {
                i += 1;
                continue;
            };
            let read = self.read(&w.path, t, &file, out);
            t.file = Some(file);
            match read {
                Ok(Read::Budget) => return true,
                Ok(Read::Eof { grew }) => {
                    if grew {
                        t.last_growth = self.now;
                    }
                    if self.now.duration_since(t.last_growth) < self.opts.rotate_wait {
                        i += 1;
                        continue;
                    }
                }
                Err(e) => self.error(&w.path, e, out),
            }
            let mut t = w.draining.remove(i);
            t.file = None;
            self.flush_partial(&w.path, &mut t, out);
            out(Event::Closed {
                path: &w.path,
                file_id: t.id,
                offset: t.offset,
            });
            if t.committed < t.offset {
                w.retired.push(t);
            }
        }
        false
    }

    /// `t` left the watched path: find it by identity and drain it, or report it gone.
    fn relocate(&mut self, w: &mut Watch, mut t: Tracked, out: &mut dyn FnMut(Event<'_>)) {
        let dirs: Vec<&Path> = t.dirs.iter().map(PathBuf::as_path).collect();
        let found = find_by_key(&dirs, t.key).filter(|(_, file, meta)| {
            meta.len() >= t.offset && t.fp.matches(file, meta.len()).unwrap_or(false)
        });
        match found {
            Some((to, file, _)) => {
                self.stats.rotations += 1;
                out(Event::Rotated {
                    path: &w.path,
                    file_id: t.id,
                    to: &to,
                });
                t.file = Some(file);
                t.verified = true;
                t.last_growth = self.now;
                w.draining.push(t);
            }
            None => {
                self.flush_partial(&w.path, &mut t, out);
                self.stats.vanished += 1;
                out(Event::Vanished {
                    path: &w.path,
                    file_id: t.id,
                    offset: t.offset,
                });
            }
        }
    }

    fn truncated(
        &mut self,
        path: &Path,
        t: &mut Tracked,
        file: &File,
        size: u64,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        self.flush_partial(path, t, out);
        self.stats.truncations += 1;
        self.stats.truncated_unread += t.size_seen.saturating_sub(t.offset);
        let old = (t.id, t.offset);
        t.id = alloc_id(self.next_id);
        t.offset = 0;
        t.committed = 0;
        t.partial_start = 0;
        t.skipping = false;
        t.verified = true;
        t.fp = Fingerprint::compute(file, size, self.opts.fingerprint_bytes).unwrap_or_default();
        out(Event::Truncated {
            path,
            file_id: old.0,
            new_file_id: t.id,
            offset: old.1,
            size,
        });
    }

    /// Reads from `t.offset` to the end of `file` (or the per-poll budget), delivering
    /// complete lines and holding a partial last line.
    fn read(
        &mut self,
        path: &Path,
        t: &mut Tracked,
        file: &File,
        out: &mut dyn FnMut(Event<'_>),
    ) -> Result<Read, FollowError> {
        let mut total = 0u64;
        loop {
            let room = self.opts.max_read_bytes.saturating_sub(total);
            if room == 0 {
                return Ok(Read::Budget);
            }
            let want = CHUNK.min(usize::try_from(room).unwrap_or(CHUNK));
            let n = match file.read_at(&mut self.buf[..want], t.offset) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FollowError::io("read", path, e)),
            };
            if n == 0 {
                return Ok(Read::Eof { grew: total > 0 });
            }
            let buf = mem::take(self.buf);
            self.split(path, t, &buf[..n], out);
            *self.buf = buf;
            t.offset += n as u64;
            total += n as u64;
        }
    }

    /// Splits `chunk` (the bytes at `t.offset`) into lines.
    fn split(
        &mut self,
        path: &Path,
        t: &mut Tracked,
        chunk: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let max = self.opts.max_line_bytes;
        let base = t.offset;
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
            let end = start + i + 1;
            let offset_after = base + end as u64;
            if t.skipping {
                t.skipping = false;
            } else if t.partial.is_empty() {
                if end - start > max {
                    self.too_long(path, t.id, base + start as u64, out);
                } else {
                    self.line(path, t.id, offset_after, &chunk[start..end], out);
                }
            } else if t.partial.len() + (end - start) > max {
                self.too_long(path, t.id, t.partial_start, out);
            } else {
                t.partial.extend_from_slice(&chunk[start..end]);
                self.line(path, t.id, offset_after, &t.partial, out);
            }
            t.partial.clear();
            start = end;
        }
        let rest = &chunk[start..];
        if rest.is_empty() || t.skipping {
            return;
        }
        if t.partial.is_empty() {
            t.partial_start = base + start as u64;
        }
        if t.partial.len() + rest.len() > max {
            self.too_long(path, t.id, t.partial_start, out);
            t.partial = Vec::new(); // give the memory back, not just the length
            t.skipping = true;
        } else {
            t.partial.extend_from_slice(rest);
        }
    }

    /// Delivers a held partial line as is: its file will not grow any more for us.
    fn flush_partial(&mut self, path: &Path, t: &mut Tracked, out: &mut dyn FnMut(Event<'_>)) {
        if !t.partial.is_empty() && !t.skipping {
            let after = t.partial_start + t.partial.len() as u64;
            self.line(path, t.id, after, &t.partial, out);
        }
        t.partial = Vec::new();
        t.skipping = false;
    }

    fn line(
        &mut self,
        path: &Path,
        file_id: FileId,
        offset_after: u64,
        bytes: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        self.stats.lines += 1;
        self.stats.bytes += bytes.len() as u64;
        out(Event::Line {
            path,
            file_id,
            offset_after,
            bytes,
        });
    }

    fn too_long(
        &mut self,
        path: &Path,
        file_id: FileId,
        offset: u64,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        self.stats.long_lines += 1;
        let max = self.opts.max_line_bytes;
        out(Event::LineTooLong {
            path,
            file_id,
            offset,
            max,
        });
    }

    fn error(&mut self, path: &Path, error: FollowError, out: &mut dyn FnMut(Event<'_>)) {
        self.stats.errors += 1;
        out(Event::Error { path, error });
    }
}
