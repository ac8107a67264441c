//! One poll's work on one watched path: reconcile what is at the path with what was being
//! read (rotation, truncation, skipped generations), then read new lines.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io;
use std::mem;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::FollowError;
use crate::identity::{find_by_key, FileId, FileKey, Fingerprint};
use crate::state::{
    alloc_id, dirs_for, new_stream, remember, Event, FollowOptions, FollowStats, Tracked, Watch,
    CHUNK,
};

/// How many closed files each watch remembers (see `Watch::closed_keys`).
pub(crate) const CLOSED_KEYS: usize = 64;

/// Slack for comparing file modification times with our own clock readings: the kernel
/// stamps files with a coarse clock.
const MTIME_SLACK: Duration = Duration::from_secs(1);

/// Rotated names with these extensions are compressed copies, never generations to read.
const COMPRESSED: [&str; 7] = ["gz", "bz2", "xz", "zst", "lz4", "Z", "zip"];

/// The state one poll works with, split from the watches so both can be borrowed.
pub(crate) struct Pass<'a> {
    pub(crate) opts: &'a FollowOptions,
    pub(crate) watched: &'a HashSet<PathBuf>,
    pub(crate) stats: &'a mut FollowStats,
    pub(crate) buf: &'a mut Vec<u8>,
    pub(crate) next_id: &'a mut u64,
    /// Files drained and closed lately, read to their end and committed (newest last).
    pub(crate) recent: &'a mut VecDeque<Tracked>,
    /// A stream nonce was assigned in this pass (see `Follower::has_unsaved_streams`).
    pub(crate) new_streams: bool,
    pub(crate) now: Instant,
}

/// How a read ended.
enum Read {
    Eof { grew: bool },
    Budget,
}

impl Pass<'_> {
    /// Returns whether some file of `w` has more to read right away.
    /// `others`: every other watch (a file may move here from one of them).
    pub(crate) fn reconcile(
        &mut self,
        w: &mut Watch,
        others: [&mut [Watch]; 2],
        out: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        let previous_poll = w.last_poll.replace(SystemTime::now());
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
                if let Some(since) = previous_poll {
                    self.sweep_generations(w, key_now, since, out);
                }
            }
        }
        if let (None, Some((file, meta))) = (&w.current, &at_path) {
            // A symlink pointed back at a file still being drained: carry on with it.
            if let Some(i) = w.draining.iter().position(|d| Some(d.key) == key_now) {
                let mut t = w.draining.remove(i);
                t.file = None;
                w.current = Some(t);
            } else if let Some(mut t) = self.adopt(others, file, meta) {
                // A file followed (or lately drained) under another watched path moved
                // here: a rotation count under a glob that matches the rotated names too
                // (`app.log` -> `app.log.1`, both watched). It carries on where it was read
                // to, under its id and stream nonce, so no line is read twice.
                t.file = None;
                t.recall = false;
                t.dirs = dirs_for(&w.path);
                t.last_growth = self.now;
                // Its checkpoint moves to this path (and one closed lately may no longer be
                // in the saved positions): save before its next line leaves.
                self.new_streams = true;
                let offset = if t.partial.is_empty() {
                    t.offset
                } else {
                    t.partial_start
                };
                out(Event::Opened {
                    path: &w.path,
                    file_id: t.id,
                    stream: t.stream,
                    offset,
                });
                w.current = Some(t);
            } else {
                let size = meta.len();
                let start = if w.from_end { size } else { 0 };
                let fp = Fingerprint::compute(file, size, self.opts.fingerprint_bytes);
                match fp {
                    Ok(fp) => {
                        let id = alloc_id(self.next_id);
                        let stream = self.new_stream();
                        let key = FileKey::of(meta);
                        let dirs = dirs_for(&w.path);
                        let t = Tracked::new(id, stream, key, fp, start, dirs, self.now);
                        out(Event::Opened {
                            path: &w.path,
                            file_id: id,
                            stream,
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
        let mut cut = size < t.offset;
        if !cut && (size > t.offset || !t.verified || mtime != t.mtime_seen) {
            let checked =
                t.fp.verify_and_extend(&file, size, self.opts.fingerprint_bytes);
            match checked {
                Ok(Some(fp)) => {
                    t.fp = fp;
                    t.verified = true;
                }
                Ok(None) => cut = true,
                Err(e) => {
                    self.error(&w.path, FollowError::io("read", &w.path, e), out);
                    return false;
                }
            }
        }
        if cut && self.truncated(w, &file, size, key_now, previous_poll, out) {
            return true; // the rest of the old contents, from the copy, comes first
        }
        let Some(t) = w.current.as_mut() else {
            return false;
        };
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
            // A rotated file (or copy) rewritten in place — `cp` over an old copy, a reused
            // rotated name — is someone else's content now: stop reading it.
            let rewritten = match file.metadata() {
                Ok(m) if m.len() < t.offset => true,
                Ok(m) if m.len() > t.size_seen => {
                    t.size_seen = m.len();
                    !t.fp.matches(&file, m.len()).unwrap_or(false)
                }
                Ok(_) => false,
                Err(_) => true,
            };
            let read = if rewritten {
                Ok(Read::Eof { grew: false })
            } else {
                self.read(&w.path, t, &file, out)
            };
            t.file = Some(file);
            match read {
                Ok(Read::Budget) => return true,
                Ok(Read::Eof { grew }) => {
                    if grew {
                        t.last_growth = self.now;
                    }
                    let waiting = self.now.duration_since(t.last_growth) < self.opts.rotate_wait;
                    if waiting && !t.snapshot && !rewritten {
                        i += 1;
                        continue;
                    }
                }
                Err(e) => self.error(&w.path, e, out),
            }
            let mut t = w.draining.remove(i);
            t.file = None;
            if w.closed_keys.len() == CLOSED_KEYS {
                w.closed_keys.pop_front();
            }
            w.closed_keys.push_back(t.key);
            self.close(w, t, true, out);
        }
        false
    }

    /// Reading `t` is over with nothing seen left unread: deliver its partial line, report it
    /// closed, and keep it for checkpoints until its lines are committed. With `recall`
    /// (a file drained after it left the path, so still on disk), a committed one is kept
    /// among the recent files another watched path may find again (see [`Pass::adopt`]).
    fn close(
        &mut self,
        w: &mut Watch,
        mut t: Tracked,
        recall: bool,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        self.flush_partial(&w.path, &mut t, out);
        out(Event::Closed {
            path: &w.path,
            file_id: t.id,
            offset: t.offset,
        });
        t.recall = recall;
        if t.committed < t.offset {
            w.retired.push(t);
        } else if recall {
            remember(self.recent, t);
        }
    }

    /// A file newly at a watched path that the follower already follows, or followed lately,
    /// under another watched path: being drained there, closed there with lines not yet
    /// committed, among the recent closed files, or current there though it has left that
    /// path (that watch has not looked yet in this pass). Same (device, inode), at least as
    /// long as what was read, and starting with the same bytes. It is taken from where it
    /// was, to be continued here; a file still at the other path (a hard link, a symlink to
    /// it) stays there.
    fn adopt(
        &mut self,
        mut others: [&mut [Watch]; 2],
        file: &File,
        meta: &fs::Metadata,
    ) -> Option<Tracked> {
        let (key, size) = (FileKey::of(meta), meta.len());
        let same = |t: &Tracked| {
            t.key == key && size >= t.offset && t.fp.matches(file, size).unwrap_or(false)
        };
        if let Some(i) = self.recent.iter().rposition(same) {
            return self.recent.remove(i);
        }
        for o in others.iter_mut().flat_map(|ws| ws.iter_mut()) {
            if let Some(i) = o.draining.iter().position(same) {
                return Some(o.draining.remove(i));
            }
            if let Some(i) = o.retired.iter().position(same) {
                return Some(o.retired.remove(i));
            }
            if o.current.as_ref().is_some_and(same) {
                let there = open_path(&o.path).ok().flatten();
                if there.is_none_or(|(_, m)| FileKey::of(&m) != key) {
                    return o.current.take();
                }
            }
        }
        None
    }

    /// `t` left the watched path: find it by identity and drain it, or report it gone.
    ///
    /// A file that is gone was lost only if it had bytes past the read offset. Its size when
    /// last seen is all there is to go by: a rotated file that logrotate compressed and
    /// removed before this poll, or an old rotated name deleted by the rotation count, was
    /// usually read to its end long before, and calling that a loss would make every
    /// `compress` rotation look like one. What a file gained after the last look and lost
    /// before this one cannot be seen (as with copytruncate's window); callers that stop
    /// polling for a while keep the last look recent with [`Follower::observe`].
    ///
    /// [`Follower::observe`]: crate::Follower::observe
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
            None if t.size_seen <= t.offset => {
                // Not remembered in `closed_keys` (nor among the recent files): the inode
                // is free for reuse, and a generation that gets it must not be taken for
                // this file by the sweep.
                self.close(w, t, false, out);
            }
            None => {
                self.flush_partial(&w.path, &mut t, out);
                let unread = t.size_seen - t.offset;
                self.stats.vanished += 1;
                self.stats.vanished_unread += unread;
                out(Event::Vanished {
                    path: &w.path,
                    file_id: t.id,
                    offset: t.offset,
                    unread,
                });
            }
        }
    }

    /// After a rotation: files that came *and went* at the path since the previous poll
    /// (two or more rotations between polls — a stalled poller, a burst of rotations). Such a
    /// generation is in the path's directory under a rotated name that starts with the
    /// path's file name (`app.log.1`, `app.log-20261123`), was modified since that poll, and
    /// is none of the files known here. They are drained oldest first, after the file that
    /// left the path and before the file now there, so no line is lost and order holds.
    /// Compressed copies and paths watched on their own (a glob matching rotated names) are
    /// left alone.
    fn sweep_generations(
        &mut self,
        w: &mut Watch,
        key_now: Option<FileKey>,
        since: SystemTime,
        out: &mut dyn FnMut(Event<'_>),
    ) {
        for (_, to) in self.siblings(w, key_now, since, true) {
            let Ok(Some((file, meta))) = open_path(&to) else {
                continue;
            };
            let Ok(fp) = Fingerprint::compute(&file, meta.len(), self.opts.fingerprint_bytes)
            else {
                continue;
            };
            let id = alloc_id(self.next_id);
            let stream = self.new_stream();
            let (key, dirs) = (FileKey::of(&meta), dirs_for(&w.path));
            let mut t = Tracked::new(id, stream, key, fp, 0, dirs, self.now);
            t.file = Some(file);
            self.stats.rotations += 1;
            out(Event::Opened {
                path: &w.path,
                file_id: id,
                stream,
                offset: 0,
            });
            out(Event::Rotated {
                path: &w.path,
                file_id: id,
                to: &to,
            });
            w.draining.push(t);
        }
    }

    /// Rotated siblings of `w`'s path: files in its directory whose names start with its file
    /// name (`app.log.1`, `app.log-20261123`), modified since `since` (less some slack), that
    /// are not compressed copies, not watched paths of their own, not being read, and (with
    /// `skip_known`) none of the files read here before. Oldest first.
    fn siblings(
        &self,
        w: &Watch,
        key_now: Option<FileKey>,
        since: SystemTime,
        skip_known: bool,
    ) -> Vec<(SystemTime, PathBuf)> {
        let (Some(dir), Some(name)) = (w.path.parent(), w.path.file_name()) else {
            return Vec::new();
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let cutoff = since.checked_sub(MTIME_SLACK).unwrap_or(since);
        let name = name.as_encoded_bytes();
        let known = |k: FileKey| {
            Some(k) == key_now
                || w.draining.iter().any(|t| t.key == k)
                || (skip_known
                    && (w.retired.iter().any(|t| t.key == k) || w.closed_keys.contains(&k)))
        };
        let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let bytes = file_name.as_encoded_bytes();
            if bytes.len() <= name.len() || !bytes.starts_with(name) {
                continue;
            }
            let path = entry.path();
            let compressed = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| COMPRESSED.contains(&e));
            if compressed || self.watched.contains(&path) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let Ok(mtime) = meta.modified() else {
                continue;
            };
            if meta.is_file() && mtime >= cutoff && !known(FileKey::of(&meta)) {
                found.push((mtime, path));
            }
        }
        found.sort();
        found
    }

    /// The current file of `w` was truncated in place (copytruncate, or a rewrite). The bytes
    /// it had that were not read yet may still be in the copy logrotate just made: a
    /// rotated sibling (see [`Pass::siblings`]) that starts with the same fingerprinted bytes
    /// and is at least as long as what was read. If there is one, it is drained from the read
    /// offset on, under the old file id and stream nonce, before the truncated file is read again from 0
    /// (returns true); only what was written after the copy and before the truncation is then
    /// lost, as it is for every reader. Otherwise the unread bytes seen are counted as lost.
    fn truncated(
        &mut self,
        w: &mut Watch,
        file: &File,
        size: u64,
        key_now: Option<FileKey>,
        since: Option<SystemTime>,
        out: &mut dyn FnMut(Event<'_>),
    ) -> bool {
        let copy = match (w.current.as_ref(), since) {
            (Some(t), Some(since)) => self.find_copy(w, t, key_now, since),
            _ => None,
        };
        let Some(t) = w.current.as_mut() else {
            return false;
        };
        let mut from_copy = None;
        let lost = match copy {
            Some((to, copy_file, copy_meta)) => {
                let lost = t.size_seen.saturating_sub(copy_meta.len());
                let rest = Tracked {
                    id: t.id,
                    // The copy holds the old generation's bytes at the old offsets.
                    stream: t.stream,
                    key: FileKey::of(&copy_meta),
                    fp: t.fp,
                    offset: t.offset,
                    committed: t.committed,
                    size_seen: copy_meta.len(),
                    mtime_seen: (0, 0),
                    // A partial line continues in the copy.
                    partial: mem::take(&mut t.partial),
                    partial_start: t.partial_start,
                    skipping: t.skipping,
                    verified: true,
                    dirs: t.dirs.clone(),
                    file: Some(copy_file),
                    last_growth: self.now,
                    snapshot: true,
                    recall: false,
                };
                from_copy = Some((to, rest));
                lost
            }
            None => {
                self.flush_partial(&w.path, t, out);
                t.size_seen.saturating_sub(t.offset)
            }
        };
        self.stats.truncations += 1;
        self.stats.truncated_unread += lost;
        let old = (t.id, t.offset);
        t.id = alloc_id(self.next_id);
        t.stream = self.new_stream();
        t.offset = 0;
        t.committed = 0;
        t.partial_start = 0;
        t.skipping = false;
        t.verified = true;
        t.fp = Fingerprint::compute(file, size, self.opts.fingerprint_bytes).unwrap_or_default();
        out(Event::Truncated {
            path: &w.path,
            file_id: old.0,
            new_file_id: t.id,
            new_stream: t.stream,
            offset: old.1,
            size,
            copy: from_copy.as_ref().map(|(to, _)| to.as_path()),
        });
        match from_copy {
            Some((_, rest)) => {
                w.draining.push(rest);
                true
            }
            None => false,
        }
    }

    /// The copy copytruncate made of `t`: the newest rotated sibling holding at least what
    /// was read of `t` and starting with the same bytes.
    fn find_copy(
        &self,
        w: &Watch,
        t: &Tracked,
        key_now: Option<FileKey>,
        since: SystemTime,
    ) -> Option<(PathBuf, File, fs::Metadata)> {
        // Known files are not excluded: `cp` rewrites an old copy in place, under an inode
        // already read and closed. The fingerprint decides.
        let mut siblings = self.siblings(w, key_now, since, false);
        siblings.reverse(); // newest first
        siblings.into_iter().find_map(|(_, path)| {
            let (file, meta) = open_path(&path).ok()??;
            let same = meta.len() >= t.offset && t.fp.matches(&file, meta.len()).ok()?;
            same.then_some((path, file, meta))
        })
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
        let mut start = 0usize;
        loop {
            if self.opts.line_runs && t.partial.is_empty() && !t.skipping {
                // Every line within `max` bytes of `start` is short enough: up to the last
                // newline there, one run.
                let window = &chunk[start..chunk.len().min(start.saturating_add(max))];
                if let Some(i) = memchr::memrchr(b'\n', window) {
                    let end = start + i + 1;
                    let lines = &chunk[start..end];
                    self.lines(path, t.id, t.stream, base + end as u64, lines, out);
                    start = end;
                    continue;
                }
            }
            let Some(i) = memchr::memchr(b'\n', &chunk[start..]) else {
                break;
            };
            let end = start + i + 1;
            let offset_after = base + end as u64;
            if t.skipping {
                t.skipping = false;
            } else if t.partial.is_empty() {
                if end - start > max {
                    self.too_long(path, t.id, base + start as u64, out);
                } else {
                    self.line(path, t.id, t.stream, offset_after, &chunk[start..end], out);
                }
            } else if t.partial.len() + (end - start) > max {
                self.too_long(path, t.id, t.partial_start, out);
            } else {
                t.partial.extend_from_slice(&chunk[start..end]);
                self.line(path, t.id, t.stream, offset_after, &t.partial, out);
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
            self.line(path, t.id, t.stream, after, &t.partial, out);
        }
        t.partial = Vec::new();
        t.skipping = false;
    }

    fn line(
        &mut self,
        path: &Path,
        file_id: FileId,
        stream: u64,
        offset_after: u64,
        bytes: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        self.stats.lines += 1;
        self.stats.bytes += bytes.len() as u64;
        out(Event::Line {
            path,
            file_id,
            stream,
            offset_after,
            bytes,
        });
    }

    /// A run of whole lines ([`FollowOptions::line_runs`](crate::FollowOptions)).
    fn lines(
        &mut self,
        path: &Path,
        file_id: FileId,
        stream: u64,
        offset_after: u64,
        bytes: &[u8],
        out: &mut dyn FnMut(Event<'_>),
    ) {
        let count = memchr::memchr_iter(b'\n', bytes).count();
        self.stats.lines += count as u64;
        self.stats.bytes += bytes.len() as u64;
        out(Event::Lines {
            path,
            file_id,
            stream,
            offset_after,
            bytes,
            count,
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

    /// A fresh stream nonce for a new generation, remembered as not yet saved.
    fn new_stream(&mut self) -> u64 {
        self.new_streams = true;
        new_stream()
    }

    fn error(&mut self, path: &Path, error: FollowError, out: &mut dyn FnMut(Event<'_>)) {
        self.stats.errors += 1;
        out(Event::Error { path, error });
    }
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
