//! What the [`Follower`](crate::Follower) and a poll's pass ([`crate::pass`]) share: the
//! options, the events and counters they report, the record of each followed file
//! ([`Tracked`]) and watched path ([`Watch`]), and the helpers both use to start one. It
//! imports neither of them, so neither imports the other.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::FollowError;
use crate::identity::{FileId, FileKey, Fingerprint};

/// How a [`Follower`](crate::Follower) reads.
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
    /// starve the others; [`PollOutcome::pending`](crate::PollOutcome::pending) says when a
    /// file has more.
    pub max_read_bytes: u64,
    /// A file rotated away from its path is kept open and read until it has had no new bytes
    /// for this long (the writer may not have reopened its log yet), then closed.
    pub rotate_wait: Duration,
    /// Deliver whole lines read together as one [`Event::Lines`] (a run) instead of an
    /// [`Event::Line`] each: for a consumer that takes them in bulk (`ship --follow`), a
    /// step per read instead of per line. Lines completing a held partial line, and lines
    /// next to an over-long one, still come one by one.
    pub line_runs: bool,
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
            line_runs: false,
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
        /// The generation's stream nonce (see [`Follower::stream_of`](crate::Follower::stream_of)).
        stream: u64,
        offset_after: u64,
        bytes: &'a [u8],
    },
    /// Complete lines read together, back to back, each ending in `\n` (only with
    /// [`FollowOptions::line_runs`]): `count` lines, the bytes
    /// `[offset_after - bytes.len(), offset_after)` of the generation named by `stream`, as
    /// that many [`Event::Line`]s would have delivered them. Commit `offset_after` once all
    /// of them are acknowledged.
    Lines {
        path: &'a Path,
        file_id: FileId,
        stream: u64,
        offset_after: u64,
        bytes: &'a [u8],
        count: usize,
    },
    /// Started following a file at `offset`: a new generation, with a fresh `stream` nonce,
    /// or one restored from a checkpoint (then `stream` is the checkpoint's), or a file that
    /// moved here from another watched path (then `file_id` and `stream` are the ones it had
    /// there, and `offset` is where its next line starts).
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
    /// directory) before it was read to its end: lines were lost. `unread` is how many bytes
    /// past `offset` the file was last seen to have (a lower bound of the loss: what was
    /// written after that look is invisible). A file that disappears after it was read to the
    /// end of what was seen is [`Event::Closed`] instead: nothing is known to be lost.
    Vanished {
        path: &'a Path,
        file_id: FileId,
        offset: u64,
        unread: u64,
    },
    /// Reading a file ended at `offset`, with nothing seen left unread: a rotated file was
    /// drained and closed, or a file read to its end left the path and was not found again
    /// (a rotated file compressed and removed, an old rotated name deleted).
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
    /// Files that disappeared before they were read to their end (see [`Event::Vanished`]).
    pub vanished: u64,
    /// Bytes those files were seen to have past the read offset: a lower bound of what was
    /// lost, like `truncated_unread`.
    pub vanished_unread: u64,
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
    /// Size at the last `fstat` (or [`Follower::observe`](crate::Follower::observe)), for
    /// [`FollowStats::truncated_unread`] and to tell a file that vanished unread from one
    /// that was read to its end.
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
    /// Closed after being drained (still on disk under another name): once its lines are
    /// committed it goes among the recent files (see [`remember`]).
    pub(crate) recall: bool,
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
            recall: false,
        }
    }
}

/// How many drained and closed files the follower remembers, for a watched path that finds
/// one of them later (a glob matching rotated names, with a rotation count).
const RECENT: usize = 256;

/// Keeps `t`, closed after being drained and with its lines committed, among the recent
/// files (the oldest is forgotten).
pub(crate) fn remember(recent: &mut VecDeque<Tracked>, t: Tracked) {
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(t);
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

/// Bytes read from a file at a time (the size of the follower's read buffer).
pub(crate) const CHUNK: usize = 64 << 10;

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
