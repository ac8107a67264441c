//! The [`Follower`]: one reconcile pass per [`Follower::poll`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::{Checkpoint, Checkpoints};
use crate::error::FollowError;
use crate::identity::{FileKey, Fingerprint};
use crate::pass::Pass;

/// Names one generation of one followed file in [`Event`]s and in [`Follower::commit`]. A new
/// file at a watched path, and a file that was truncated, get a new id, so a late commit for
/// the old contents can never move the new contents' offset.
///
/// A `FileId` lives only as long as the [`Follower`]; what names a generation across restarts
/// is its stream nonce ([`Follower::stream_of`]), kept in the [`Checkpoint`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub(crate) u64);

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
    /// `offset_after` once the line is acknowledged. The line is the bytes
    /// `[offset_after - bytes.len(), offset_after)` of the generation named by `stream`.
    Line {
        path: &'a Path,
        file_id: FileId,
        /// The generation's stream nonce (see [`Follower::stream_of`]).
        stream: u64,
        offset_after: u64,
        bytes: &'a [u8],
    },
    /// Started following a file at `offset`: a new generation, with a fresh `stream` nonce,
    /// or one restored from a checkpoint (then `stream` is the checkpoint's).
    Opened {
        path: &'a Path,
        file_id: FileId,
        stream: u64,
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
    /// bytes (copytruncate, or a rewrite in place). Reading restarts at 0 under a new id
    /// and a new stream nonce, `new_stream` (the byte offsets start over). Whatever was
    /// written after `offset` and before the truncation is lost.
    Truncated {
        path: &'a Path,
        file_id: FileId,
        new_file_id: FileId,
        new_stream: u64,
        offset: u64,
        size: u64,
        /// The copy (copytruncate's) the unread rest of the old contents is read from, under
        /// `file_id`, before the truncated file; `None`: that rest is lost.
        copy: Option<&'a Path>,
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
pub(crate) struct Tracked {
    pub(crate) id: FileId,
    /// The stream nonce: names this generation's byte offsets across restarts (never 0).
    pub(crate) stream: u64,
    pub(crate) key: FileKey,
    pub(crate) fp: Fingerprint,
    /// Read position: every byte before it was delivered or is in `partial`.
    pub(crate) offset: u64,
    pub(crate) committed: u64,
    /// Size at the last `fstat`, for [`FollowStats::truncated_unread`].
    pub(crate) size_seen: u64,
    /// Modification time at the last `fstat`: a change without growth means a rewrite in
    /// place (or a reused inode) that only the fingerprint can tell apart.
    pub(crate) mtime_seen: (i64, i64),
    pub(crate) partial: Vec<u8>,
    pub(crate) partial_start: u64,
    /// Inside a too-long line: discard bytes up to the next `\n`.
    pub(crate) skipping: bool,
    /// False for a checkpoint entry whose fingerprint was not checked yet.
    pub(crate) verified: bool,
    /// Where to look for the file if it leaves the path: the path's directory and the
    /// directory of its symlink target.
    pub(crate) dirs: Vec<PathBuf>,
    /// Open only while being drained after a rotation.
    pub(crate) file: Option<File>,
    pub(crate) last_growth: Instant,
    /// A copy made by copytruncate: it never grows, so it is closed at its end instead of
    /// after `rotate_wait`.
    pub(crate) snapshot: bool,
}

pub(crate) struct Watch {
    pub(crate) path: PathBuf,
    /// Start a file found at the first reconcile at its end.
    pub(crate) from_end: bool,
    pub(crate) current: Option<Tracked>,
    /// Rotated-away files, oldest first; each is drained before anything newer is read.
    pub(crate) draining: Vec<Tracked>,
    /// Checkpoint entries not yet matched to a file.
    pub(crate) restored: Vec<Tracked>,
    /// Closed files whose lines are not all committed yet (kept for checkpoints).
    pub(crate) retired: Vec<Tracked>,
    /// Identities of the last files closed here: a sweep for skipped generations never
    /// takes them for new ones.
    pub(crate) closed_keys: VecDeque<FileKey>,
    /// Wall-clock time of the previous reconcile (file times are wall-clock times).
    pub(crate) last_poll: Option<SystemTime>,
    pub(crate) error_reported: bool,
}

/// Follows a set of paths. See the crate documentation.
pub struct Follower {
    opts: FollowOptions,
    watches: Vec<Watch>,
    /// The paths of `watches`, for lookups.
    watched: HashSet<PathBuf>,
    checkpoints: HashMap<PathBuf, Vec<Checkpoint>>,
    started: bool,
    next_id: u64,
    /// A stream nonce was assigned since the last [`Follower::checkpoints`]. Atomic (not a
    /// `Cell`) so that `checkpoints` can clear it through `&self` and the follower stays `Sync`.
    unsaved_streams: AtomicBool,
    stats: FollowStats,
    buf: Vec<u8>,
}

pub(crate) const CHUNK: usize = 64 << 10;

impl Follower {
    pub fn new(opts: FollowOptions) -> Follower {
        Follower::with_checkpoints(opts, &Checkpoints::default())
    }

    /// A follower that resumes every file in `checkpoints` at its committed offset, provided
    /// the file is still the same (device, inode and fingerprint), whether it is still at its
    /// path or was rotated to a name in the same directory. A path with a checkpoint is never
    /// "preexisting": a different file found there starts at 0. A restored file keeps its
    /// checkpoint's stream nonce; an entry without one (stream 0, from a version-1 positions
    /// file) gets a fresh nonce when its path is watched, and counts as unsaved (see
    /// [`has_unsaved_streams`](Follower::has_unsaved_streams)).
    pub fn with_checkpoints(opts: FollowOptions, checkpoints: &Checkpoints) -> Follower {
        let mut by_path: HashMap<PathBuf, Vec<Checkpoint>> = HashMap::new();
        for c in &checkpoints.entries {
            by_path.entry(c.path.clone()).or_default().push(c.clone());
        }
        Follower {
            opts,
            watches: Vec::new(),
            watched: HashSet::new(),
            checkpoints: by_path,
            started: false,
            next_id: 0,
            unsaved_streams: AtomicBool::new(false),
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
        if !self.watched.insert(path.clone()) {
            return;
        }
        let restored = self.checkpoints.remove(&path);
        let from_end = !self.started && !from_beginning && restored.is_none();
        let now = Instant::now();
        let restored = restored
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let stream = if c.stream == 0 {
                    self.unsaved_streams.store(true, Ordering::Relaxed);
                    new_stream()
                } else {
                    c.stream
                };
                let mut t = Tracked::new(
                    alloc_id(&mut self.next_id),
                    stream,
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
            closed_keys: VecDeque::new(),
            last_poll: None,
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
            let w = self.watches.remove(i);
            self.watched.remove(&w.path);
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
            watched: &self.watched,
            stats: &mut self.stats,
            buf: &mut self.buf,
            next_id: &mut self.next_id,
            new_streams: false,
            now: Instant::now(),
        };
        let mut pending = false;
        for w in &mut self.watches {
            pending |= pass.reconcile(w, out);
        }
        if pass.new_streams {
            self.unsaved_streams.store(true, Ordering::Relaxed);
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

    /// The stream nonce of the generation `file_id` names, while it is followed (at its
    /// path, drained after rotation, read back from a copytruncate copy, or closed with
    /// uncommitted lines). Never 0.
    ///
    /// A nonce names one byte-offset space: the same bytes of the same generation carry the
    /// same nonce after a restart from checkpoints, and any event that restarts the offsets
    /// (a new file at the path, a truncation or rewrite in place) comes with a new nonce. So
    /// (nonce, byte range) identifies a line for exactly-once delivery. Nonces are random
    /// 64-bit numbers (not checked for uniqueness; a collision needs two random draws to
    /// meet).
    pub fn stream_of(&self, file_id: FileId) -> Option<u64> {
        self.watches.iter().find_map(|w| {
            let files = w.current.iter().chain(&w.draining).chain(&w.retired);
            files
                .chain(&w.restored)
                .find(|t| t.id == file_id)
                .map(|t| t.stream)
        })
    }

    /// Whether a stream nonce was assigned (a new generation opened, a truncation, a
    /// version-1 checkpoint given a nonce) that is not yet in a set returned by
    /// [`checkpoints`](Follower::checkpoints); calling `checkpoints` clears it.
    ///
    /// **The contract for exactly-once delivery:** when this is true, the caller must save
    /// [`checkpoints`](Follower::checkpoints) *durably* ([`Checkpoints::save`], with fsync)
    /// before it sends any line of the new stream. Otherwise a `kill -9` (or power loss) after
    /// sending could restart from positions that do not know the nonce, and the same bytes
    /// would be read again under a different nonce — a duplicate the receiver cannot
    /// recognise. Checking after every [`poll`](Follower::poll), before handing its lines
    /// on, is enough: new nonces appear only in `poll` and
    /// [`watch`](Follower::watch)/[`watch_with`](Follower::watch_with).
    pub fn has_unsaved_streams(&self) -> bool {
        self.unsaved_streams.load(Ordering::Relaxed)
    }

    /// The committed position of every followed file, to [`save`](Checkpoints::save). Clears
    /// [`has_unsaved_streams`](Follower::has_unsaved_streams): every nonce in use is in the
    /// returned set.
    pub fn checkpoints(&self) -> Checkpoints {
        self.unsaved_streams.store(false, Ordering::Relaxed);
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
                    stream: t.stream,
                });
            }
        }
        Checkpoints { entries }
    }
}

pub(crate) fn alloc_id(next: &mut u64) -> FileId {
    *next += 1;
    FileId(*next)
}

/// A fresh stream nonce: random, never 0 (0 means "unknown" in a positions file).
pub(crate) fn new_stream() -> u64 {
    fastrand::u64(1..)
}

pub(crate) fn dirs_for(path: &Path) -> Vec<PathBuf> {
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
pub(crate) fn open_path(path: &Path) -> Result<Option<(File, fs::Metadata)>, FollowError> {
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
    pub(crate) fn new(
        id: FileId,
        stream: u64,
        key: FileKey,
        fp: Fingerprint,
        offset: u64,
        dirs: Vec<PathBuf>,
        now: Instant,
    ) -> Tracked {
        Tracked {
            id,
            stream,
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
            snapshot: false,
        }
    }
}
