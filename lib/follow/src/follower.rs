//! The [`Follower`]: one reconcile pass per [`Follower::poll`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::checkpoint::{Checkpoint, Checkpoints};
use crate::error::FollowError;
use crate::identity::{FileId, FileKey};
use crate::pass::{open_path, Pass};
use crate::state::{
    alloc_id, dirs_for, new_stream, remember, Event, FollowOptions, FollowStats, Tracked, Watch,
    CHUNK,
};

/// The result of one [`Follower::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PollOutcome {
    /// Some file stopped at [`FollowOptions::max_read_bytes`]: poll again without waiting.
    pub pending: bool,
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
    /// The last files closed after being drained, read to their end and committed: a
    /// watched path (a glob matching rotated names) that finds one of them later carries on
    /// with it instead of reading it again (see `Pass::adopt`).
    recent: VecDeque<Tracked>,
}

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
            recent: VecDeque::new(),
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
            recent: &mut self.recent,
            new_streams: false,
            now: Instant::now(),
        };
        let mut pending = false;
        for i in 0..self.watches.len() {
            // The other watches, for a file that moved here from one of them.
            let (before, rest) = self.watches.split_at_mut(i);
            let Some((w, after)) = rest.split_first_mut() else {
                break;
            };
            pending |= pass.reconcile(w, [before, after], out);
        }
        if pass.new_streams {
            self.unsaved_streams.store(true, Ordering::Relaxed);
        }
        self.started = true;
        PollOutcome { pending }
    }

    /// Looks at the file at each watched path without reading it, and remembers its size.
    ///
    /// For a caller that stops polling for a while (its output is full): a file that grows
    /// meanwhile and is deleted before the next poll is then known to have had unread bytes,
    /// and reported as [`Event::Vanished`] instead of [`Event::Closed`] (and a truncation's
    /// unread bytes are counted better). Emits nothing. Costs an `open`, an `fstat` and a read
    /// of the fingerprinted bytes per watched path that has a file.
    pub fn observe(&mut self) {
        for w in &mut self.watches {
            let Some(t) = w.current.as_mut() else {
                continue;
            };
            let Ok(Some((file, meta))) = open_path(&w.path) else {
                continue;
            };
            // Only the same file, still starting with the same bytes: anything else is the
            // next poll's to sort out (rotation, rewrite in place).
            let len = meta.len();
            let same = FileKey::of(&meta) == t.key && t.fp.matches(&file, len).unwrap_or(false);
            if same && len > t.size_seen {
                t.size_seen = len;
            }
        }
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
                // A drained file whose lines are all committed is remembered a while, for a
                // watched path that finds it later (a rotation count under a glob).
                for r in mem::take(&mut w.retired) {
                    if r.committed < r.offset {
                        w.retired.push(r);
                    } else if r.recall {
                        remember(&mut self.recent, r);
                    }
                }
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
