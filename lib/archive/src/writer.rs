//! The rotating category file writer.
//!
//! On-disk framing: each message is written as its bytes followed by one `\n`, unless the
//! message already ends in `\n`. So `cat f | ship c` (which sends each line with its newline)
//! reproduces `f`, and Scribe clients that send their own newlines are not doubled.
//!
//! Rotation, by size: before writing a message, if the current file is not empty and the
//! message would push it past `max_size`, the writer moves to the next file. A message never
//! straddles two files; a single message larger than `max_size` gets a file of its own.
//! By time: see [`crate::rotation`]; checked before every batch and by [`RotatingWriter::check_time`].
//!
//! At a rotation the old file gets the `write_meta` record (if enabled), is fsynced, and only
//! then is the new file created (and the directory fsynced), so every closed file is complete
//! on disk. The closed file is then queued for compression (if enabled) and retention runs.
//!
//! # Durability by [`Fsync`] policy
//!
//! "Acknowledged" = `write_batch` returned `Ok`. In every policy a **process crash or kill
//! loses nothing acknowledged** (the bytes were accepted by `write(2)` into the page cache) and
//! every closed file and directory entry is on disk. What a **power loss or kernel crash** can
//! lose differs, and only ever concerns the current file:
//!
//! | policy | power loss / kernel crash can lose |
//! |---|---|
//! | `Never` | acknowledged data in the current file the kernel had not written back yet (Linux: typically up to ~30 s, `vm.dirty_expire_centisecs`), back to the file's last rotation or `sync()` |
//! | `Interval(d)` | acknowledged data in the current file written since the last sync: at most `d` plus the owner's `maybe_sync` period (a batch also syncs at its end once `d` has passed) |
//! | `Batch` | nothing acknowledged: `write_batch` fsyncs (`fdatasync`) before returning |
//!
//! Not covered by any policy: retention's deletions are not fsynced (a deleted file may
//! reappear after a power loss and is deleted again later).
//!
//! # Idempotent writes
//!
//! With [`WriterOptions::idempotent`], [`RotatingWriter::write_entries`] skips entries whose
//! [`EntryId`] is already committed and records every batch in a commit log, so retries (also
//! after `kill -9`) write each producer range once; see [`crate::commit`] for the log, its
//! durability per policy and the recovery `open` runs.
//!
//! Blocking I/O by design: callers run it on a blocking thread (scribed does, one writer per
//! category), which keeps the hot loop free of per-write async overhead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use scribe_ids::EntryId;

use scribe_fs::sync_dir;

use crate::category::Category;
use crate::clock::{Clock, SystemClock};
use crate::commit::{self, CommitStats, Committer};
use crate::compress::{self, Compressor, Submit};
use crate::error::io_err;
pub use crate::error::WriteError;
use crate::layout::{self, FileKey};
use crate::retention::{self, Retention};
use crate::rotation::{self, RotateAt, RotatePeriod};
use crate::uploads;

mod pieces;
pub use pieces::Piece;

/// Bytes gathered before a `write(2)`; bigger messages bypass the buffer.
pub(crate) const WRITE_BUFFER: usize = 256 * 1024;

/// `max_size` of [`WriterOptions::default`]: scribed's `--max-size` default, 1 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// The record `write_meta` appends to a file when it is rotated, before the new file's path.
pub const META_PREFIX: &[u8] = b"scribe_meta<new_logfile>: ";

/// When the current file's data is fsynced. See the module docs for what each guarantees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Only at rotation (the closed file) and on explicit [`RotatingWriter::sync`].
    #[default]
    Never,
    /// Every `write_batch` fsyncs before returning.
    Batch,
    /// At most this long after data was written, when `maybe_sync` or a batch finds it due.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rotate when the next message would take the file past this many bytes; 0 = never.
    pub max_size: u64,
    /// Time rotation; anything but `Never` also gives files dated names.
    pub rotate_period: RotatePeriod,
    /// Daily rotation's hour (0–23, local time). Scribe's default: 1.
    pub rotate_hour: u32,
    /// Daily rotation's minute, and the minute of the hour hourly rotation happens at (0–59).
    /// Scribe's default: 15.
    pub rotate_minute: u32,
    /// Append `scribe_meta<new_logfile>: <absolute path of the new file>\n` to a file when it
    /// is rotated (it counts toward the file's size but may take it past `max_size`).
    pub write_meta: bool,
    pub fsync: Fsync,
    /// gzip each rotated file in the background on `compressor`'s thread.
    pub compress: bool,
    /// The worker for `compress`; the default is the process-wide [`Compressor::global`].
    /// Also guards retention and recovery against a compression of the same file, so writers
    /// of one category should share it.
    pub compressor: Compressor,
    /// Retention (see [`Retention`]): at most this many files, the current one included.
    pub keep_files: Option<usize>,
    /// Retention: at most this many bytes on disk, the current file included.
    pub keep_bytes: Option<u64>,
    /// Retention: delete closed files not modified for this many days.
    pub keep_days: Option<u32>,
    /// Source of the time for rotation, dates, fsync intervals and `keep_days`.
    pub clock: Arc<dyn Clock>,
    /// Exactly-once writes: skip entries whose id is committed and keep the commit log
    /// `<cat>/.commits` (see [`crate::commit`]). Off: ids are ignored and an existing commit
    /// log is removed at open.
    pub idempotent: bool,
    /// Forget a producer not seen for this long (default 7 days).
    pub producer_ttl: Duration,
    /// At most this many producers per category; more forget the least recently seen
    /// (default 100,000; at least 1).
    pub max_producers: usize,
    /// The files are copied to an object store: record when each file starts in the upload
    /// ledger ([`crate::uploads`]), and let retention delete only files recorded as uploaded.
    pub hold_for_upload: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_size: DEFAULT_MAX_SIZE,
            rotate_period: RotatePeriod::Never,
            rotate_hour: 1,
            rotate_minute: 15,
            write_meta: false,
            fsync: Fsync::Never,
            compress: false,
            compressor: Compressor::global(),
            keep_files: None,
            keep_bytes: None,
            keep_days: None,
            clock: Arc::new(SystemClock),
            idempotent: false,
            producer_ttl: commit::DEFAULT_PRODUCER_TTL,
            max_producers: commit::DEFAULT_MAX_PRODUCERS,
            hold_for_upload: false,
        }
    }
}

impl WriterOptions {
    /// The defaults with `max_size` (0 = no size rotation).
    pub fn new(max_size: u64) -> WriterOptions {
        WriterOptions {
            max_size,
            ..WriterOptions::default()
        }
    }

    pub fn retention(&self) -> Retention {
        Retention {
            keep_files: self.keep_files,
            keep_bytes: self.keep_bytes,
            keep_days: self.keep_days,
            uploaded_only: self.hold_for_upload,
        }
    }

    /// Checks ranges (done by `open`).
    pub fn validate(&self) -> Result<(), WriteError> {
        if self.rotate_hour > 23 {
            return Err(WriteError::InvalidOptions(format!(
                "rotate_hour {} is not in 0..=23",
                self.rotate_hour
            )));
        }
        if self.rotate_minute > 59 {
            return Err(WriteError::InvalidOptions(format!(
                "rotate_minute {} is not in 0..=59",
                self.rotate_minute
            )));
        }
        if self.max_producers == 0 {
            return Err(WriteError::InvalidOptions(
                "max_producers must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn rotate_at(&self) -> RotateAt {
        RotateAt {
            hour: self.rotate_hour,
            minute: self.rotate_minute,
        }
    }
}

/// What one `write_batch` / `write_entries` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    /// Messages written (duplicates not included).
    pub messages: u64,
    /// Entries skipped because their range was already committed (or appeared earlier in
    /// the same batch).
    pub duplicates: u64,
    /// Bytes written to disk, framing newlines included.
    pub bytes: u64,
    pub rotations: u64,
}

/// Appends messages to a category's newest file (`<cat>_NNNNN` or `<cat>-YYYY-MM-DD_NNNNN`),
/// rotating by size and time and keeping `<category>_current` pointing at the newest file.
pub struct RotatingWriter {
    /// Absolute, so `write_meta` records and compression requests name files unambiguously.
    dir: PathBuf,
    category: Category,
    opts: WriterOptions,
    file: File,
    path: PathBuf,
    key: FileKey,
    /// Bytes in the current file, including what sits in `buf`.
    size: u64,
    /// Where the batch being written began in the current file (for cutting back on error).
    batch_start: u64,
    buf: Vec<u8>,
    /// When the current file was started: time rotation counts from here.
    started: DateTime<Local>,
    last_sync: DateTime<Local>,
    /// Bytes were written to the current file since its last fsync.
    unsynced: bool,
    fsyncs: u64,
    /// `Some` when `idempotent`.
    commit: Option<Box<Committer>>,
    /// Test hook: bytes `write(2)` may still accept before failing (a full disk).
    #[cfg(test)]
    pub(crate) fail_after: Option<u64>,
}

impl RotatingWriter {
    /// Opens the category's newest file for appending (creating the directory and a first file
    /// if there are none, or a next one if the newest is compressed) and points
    /// `<category>_current` at it.
    ///
    /// Also recovers from a crash during compression (see [`crate::compress`]), queues closed
    /// uncompressed files for compression when `compress` is on, and applies retention.
    /// Failures of these housekeeping steps are logged, not returned: they must not stop
    /// writes.
    pub fn open(
        data_dir: &Path,
        category: &Category,
        opts: WriterOptions,
    ) -> Result<Self, WriteError> {
        opts.validate()?;
        let rel = layout::category_dir(data_dir, category);
        let dir = std::path::absolute(&rel).map_err(io_err("resolve", &rel))?;
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let now = opts.clock.now();
        let mut slots = layout::scan_dir(&dir, category).map_err(io_err("list", &dir))?;
        if let Err(e) = compress::recover(&opts.compressor, &mut slots) {
            tracing::warn!(%category, "recovering compressed files: {e}");
        }
        // Before the current file is chosen: recovery may cut files (never remove them).
        let recovered = if opts.idempotent {
            Some(commit::recover(
                &dir,
                category,
                opts.producer_ttl,
                opts.max_producers,
                now,
            )?)
        } else {
            commit::discard(&dir, category);
            None
        };
        let newest = slots.iter().rev().find(|(_, s)| s.is_file());
        let (key, path, created) = match newest {
            Some((k, slot)) if slot.plain.is_some() => (*k, dir.join(k.file_name(category)), false),
            // Nothing yet, or the newest file is compressed and so closed: start the next one.
            other => {
                let k = rotation::next_key(other.map(|(k, _)| *k), opts.rotate_period, now);
                (k, dir.join(k.file_name(category)), true)
            }
        };
        let file = open_append(&path)?;
        let meta = file.metadata().map_err(io_err("stat", &path))?;
        let started = if created { now } else { file_birth(&meta, now) };
        let size = meta.len();
        let mut w = RotatingWriter {
            dir,
            category: category.clone(),
            opts,
            file,
            path,
            key,
            size,
            batch_start: size,
            buf: Vec::with_capacity(WRITE_BUFFER),
            started,
            last_sync: now,
            unsynced: false,
            fsyncs: 0,
            commit: None,
            #[cfg(test)]
            fail_after: None,
        };
        w.point_current_link()?;
        if created {
            sync_dir(&w.dir)?;
            w.record_start(now);
        } else if w.opts.hold_for_upload && !uploads::ledger_path(&w.dir).exists() {
            // Uploads were just switched on: the ledger's presence is what tells an uploader
            // that this category is its store's (see `uploads`).
            w.record_start(started);
        }
        if let Some(rec) = recovered {
            w.commit = Some(Box::new(Committer::start(
                &w.dir, rec, category, key, size, now,
            )?));
        }
        w.housekeeping();
        Ok(w)
    }

    /// Path of the file being written (absolute).
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    pub fn current_suffix(&self) -> u64 {
        self.key.suffix
    }

    /// Date and suffix of the file being written.
    pub fn current_key(&self) -> FileKey {
        self.key
    }

    /// Bytes in the current file.
    pub fn current_size(&self) -> u64 {
        self.size
    }

    pub fn category(&self) -> &Category {
        &self.category
    }

    pub fn options(&self) -> &WriterOptions {
        &self.opts
    }

    /// Whether bytes were written to the current file since it was last fsynced.
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// fsyncs of data files this writer made (rotations, policy, `sync`).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs
    }

    /// Writes every message, framed, and returns only after `write(2)` accepted all of them
    /// (and, with [`Fsync::Batch`], after they were fsynced). Rotates first if the current
    /// file is due by time. [`Self::write_entries`] without ids.
    ///
    /// On error, the current file is cut back to where this batch began in it, so a failed
    /// batch leaves no partial message behind. Messages that went to files closed by a
    /// rotation earlier in the batch stay (a retried batch may duplicate them, unless
    /// `idempotent` recognises them by their ids).
    pub fn write_batch<'a, I>(&mut self, messages: I) -> Result<WriteStats, WriteError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.write_entries(messages.into_iter().map(|m| (m, None)))
    }

    /// Writes a batch of entries like [`Self::write_batch`]; with `idempotent`, entries whose
    /// id is already committed, or was written earlier in this batch, are skipped (counted in
    /// [`WriteStats::duplicates`]) and the batch's commit record is appended before this
    /// returns (the table learns the new ranges only then). Entries without an id, or with an
    /// empty range, are always written. Without `idempotent` the ids are ignored.
    ///
    /// An iterator, so callers can pass a slice (`entries.iter().copied()`) or zip messages
    /// with ids without building a vector.
    ///
    /// On error nothing is committed and the current file is cut back to where this batch
    /// began in it; if a rotation happened within the batch, the part written to the closed
    /// file was committed by the rotation (a retry skips it by id).
    pub fn write_entries<'a, I>(&mut self, entries: I) -> Result<WriteStats, WriteError>
    where
        I: IntoIterator<Item = (&'a [u8], Option<EntryId>)>,
    {
        self.write_pieces(entries.into_iter().map(|(m, id)| Piece::Message(m, id)))
    }

    /// Writes a batch like [`Self::write_entries`], where some of it may come as runs of whole
    /// lines ([`Piece::Lines`]): a run none of whose lines can be a duplicate and inside which
    /// no size rotation falls is written as it is, in one piece, with no per-line work; any
    /// other run line by line, exactly as the same lines given one by one.
    pub fn write_pieces<'a, I>(&mut self, pieces: I) -> Result<WriteStats, WriteError>
    where
        I: IntoIterator<Item = Piece<'a>>,
    {
        let mut stats = WriteStats::default();
        // Set before anything can fail, so a cut-back never reaches into an earlier batch.
        self.batch_start = self.size;
        let result = self.write_pieces_inner(pieces, &mut stats);
        if result.is_ok() {
            // Everything up to here is committed (a rotation before the next batch then
            // knows there is nothing new to record).
            self.batch_start = self.size;
        } else {
            if let Some(c) = self.commit.as_mut() {
                c.abort();
            }
            self.buf.clear();
            if self.file.set_len(self.batch_start).is_ok() {
                self.size = self.batch_start;
            } else if let Ok(m) = self.file.metadata() {
                self.size = m.len();
            }
        }
        result.map(|()| stats)
    }

    fn write_pieces_inner<'a, I>(
        &mut self,
        pieces: I,
        stats: &mut WriteStats,
    ) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = Piece<'a>>,
    {
        if self.check_time()? {
            stats.rotations += 1;
        }
        for piece in pieces {
            match piece {
                Piece::Message(msg, id) => self.put_message(msg, id, stats)?,
                Piece::Lines { bytes, count, id } => self.put_lines(bytes, count, id, stats)?,
            }
        }
        self.flush_buf()?;
        match self.opts.fsync {
            Fsync::Never => {}
            Fsync::Batch => {
                if self.unsynced {
                    self.sync()?;
                }
            }
            Fsync::Interval(_) => {
                self.maybe_sync()?;
            }
        }
        // Bytes in the current file since the batch began (or since a rotation's record):
        // commit them. A batch of duplicates only wrote nothing and needs no record.
        if self.size > self.batch_start {
            self.commit_position()?;
        }
        Ok(())
    }

    /// Appends the commit record for everything up to `self.size` in the current file.
    fn commit_position(&mut self) -> Result<(), WriteError> {
        let Some(c) = self.commit.as_mut() else {
            return Ok(());
        };
        let name = self.key.file_name(&self.category);
        let durable = self.opts.fsync == Fsync::Batch;
        c.commit(&name, self.size, self.opts.clock.now(), durable)
    }

    /// Whether `id`'s range is committed (always false without `idempotent`).
    pub fn is_committed(&self, id: &EntryId) -> bool {
        self.commit.as_ref().is_some_and(|c| c.is_committed(id))
    }

    /// The commit table's state, if `idempotent`.
    pub fn commit_stats(&self) -> Option<CommitStats> {
        self.commit.as_ref().map(|c| c.stats())
    }

    fn flush_buf(&mut self) -> Result<(), WriteError> {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            let r = self.write_raw(&buf);
            self.buf = buf;
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    /// The one place bytes reach the file.
    fn write_raw(&mut self, data: &[u8]) -> Result<(), WriteError> {
        #[cfg(test)]
        if let Some(budget) = self.fail_after.as_mut() {
            if data.len() as u64 > *budget {
                // Like a full disk: a short write, then an error.
                let n = usize::try_from(*budget).unwrap_or(usize::MAX);
                let _ = self.file.write_all(&data[..n]);
                *budget = 0;
                self.unsynced = true;
                return Err(io_err("write", &self.path)(io::Error::other(
                    "injected failure",
                )));
            }
            *budget -= data.len() as u64;
        }
        self.unsynced = true;
        self.file
            .write_all(data)
            .map_err(io_err("write", &self.path))
    }

    /// fsyncs the current file's data, then commit records appended since the last sync
    /// (data first: a record must not reach the disk before the data it covers).
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.flush_buf()?;
        self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        self.fsyncs += 1;
        self.unsynced = false;
        self.last_sync = self.opts.clock.now();
        if let Some(c) = self.commit.as_mut() {
            c.sync()?;
        }
        Ok(())
    }

    /// With [`Fsync::Interval`]: fsyncs if there are unsynced bytes and the interval has passed
    /// since the last sync (or the clock went backwards). Returns whether it synced. The owner
    /// calls this periodically (e.g. every second) so that an idle writer's last batches reach
    /// the disk too. Other policies: does nothing.
    pub fn maybe_sync(&mut self) -> Result<bool, WriteError> {
        let Fsync::Interval(every) = self.opts.fsync else {
            return Ok(false);
        };
        if !self.unsynced && self.buf.is_empty() {
            return Ok(false);
        }
        let elapsed = self.opts.clock.now() - self.last_sync;
        let due = match elapsed.to_std() {
            Ok(e) => e >= every,
            Err(_) => true, // negative: the clock was stepped back
        };
        if due {
            self.sync()?;
        }
        Ok(due)
    }

    /// Rotates if the current file is due by time (see [`crate::rotation`]). Returns whether it
    /// rotated. The owner calls this periodically (e.g. every second); `write_batch` also calls
    /// it before writing.
    pub fn check_time(&mut self) -> Result<bool, WriteError> {
        if self.opts.rotate_period == RotatePeriod::Never {
            // Every batch asks; skip reading the clock (and the local time zone).
            return Ok(false);
        }
        let now = self.opts.clock.now();
        let due = rotation::is_due(
            self.opts.rotate_period,
            self.opts.rotate_at(),
            self.started,
            self.key.date,
            now,
        );
        if due {
            self.rotate()?;
        }
        Ok(due)
    }

    /// Closes the current file and starts the next one: the `write_meta` record, fsync of the
    /// old file, (with `idempotent`) a commit record for the old file, then the new file,
    /// `<cat>_current`, a directory fsync; then compression of the old file and retention. If
    /// the new file cannot be created, the old one stays current and its meta record is cut
    /// off again.
    ///
    /// The commit record covers the old file's data up to its meta record and whatever the
    /// batch in progress wrote to it, so nothing in a closed file ever needs cutting and a
    /// retry after a later failure in the batch sees that part as committed.
    pub fn rotate(&mut self) -> Result<(), WriteError> {
        self.flush_buf()?;
        let now = self.opts.clock.now();
        let next = rotation::next_key(Some(self.key), self.opts.rotate_period, now);
        let next_path = self.dir.join(next.file_name(&self.category));
        let before = self.size;
        let mut committed = false;
        let opened = self
            .finish_current(&next_path)
            .and_then(|()| {
                committed = self.commit_rotation(before)?;
                Ok(())
            })
            .and_then(|()| open_append(&next_path));
        if committed {
            // The batch's part in the old file is committed: a failure from here on must not
            // cut it.
            self.batch_start = before;
        }
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                // Also cuts off a partly written meta record (its bytes were never counted).
                if self.file.set_len(before).is_ok() {
                    self.size = before;
                }
                return Err(e);
            }
        };
        let size = file.metadata().map_err(io_err("stat", &next_path))?.len();
        tracing::debug!(category = %self.category, from = %self.path.display(), to = %next_path.display(), "rotating");
        let old_path = std::mem::replace(&mut self.path, next_path);
        self.file = file;
        self.key = next;
        self.size = size;
        self.batch_start = size;
        self.started = now;
        self.last_sync = now;
        self.unsynced = false;
        self.point_current_link()?;
        sync_dir(&self.dir)?;
        self.record_start(now);
        if self.opts.compress {
            self.submit_compression(old_path);
        }
        self.housekeeping();
        Ok(())
    }

    /// With `hold_for_upload`, records in the upload ledger when the current file started (its
    /// object's `dt=`/`hour=`). Logged, never fatal: without it the uploader falls back on
    /// the file's modification time.
    fn record_start(&self, now: DateTime<Local>) {
        if !self.opts.hold_for_upload {
            return;
        }
        let rec = uploads::Record::First {
            name: self.key.file_name(&self.category),
            unix_ms: now.timestamp_millis(),
        };
        if let Err(e) = uploads::append(&self.dir, &rec, true) {
            tracing::warn!(category = %self.category, "recording the file's start: {e}");
        }
    }

    /// With `idempotent`, the commit record of a file being closed: `end` is its data's end,
    /// not the meta record's (should the new file fail to open, the meta record is cut off
    /// again and the next batch goes where it was). Returns whether a record was appended.
    fn commit_rotation(&mut self, end: u64) -> Result<bool, WriteError> {
        let Some(c) = self.commit.as_mut() else {
            return Ok(false);
        };
        if end == self.batch_start {
            // Nothing written since the last record (or since this file began): nothing to
            // commit, and nothing past `end` that recovery could want to cut.
            return Ok(false);
        }
        let name = self.key.file_name(&self.category);
        let durable = self.opts.fsync == Fsync::Batch;
        c.commit(&name, end, self.opts.clock.now(), durable)?;
        Ok(true)
    }

    /// The old file's last steps: the meta record, then fsync (always, whatever the policy:
    /// a closed file must be complete on disk before its successor exists).
    fn finish_current(&mut self, next_path: &Path) -> Result<(), WriteError> {
        if self.opts.write_meta {
            let mut rec = META_PREFIX.to_vec();
            rec.extend_from_slice(next_path.as_os_str().as_bytes());
            rec.push(b'\n');
            self.write_raw(&rec)?;
            self.size += rec.len() as u64;
        }
        self.file.sync_data().map_err(io_err("fsync", &self.path))?;
        self.fsyncs += 1;
        Ok(())
    }

    /// Applies retention now (it also runs after every rotation and at open). Returns how many
    /// files (keys) were deleted.
    pub fn apply_retention(&mut self) -> Result<usize, WriteError> {
        let retention = self.opts.retention();
        if retention.is_unlimited() {
            return Ok(0);
        }
        let mut slots =
            layout::scan_dir(&self.dir, &self.category).map_err(io_err("list", &self.dir))?;
        Ok(self.retain(&retention, &mut slots)?.len())
    }

    /// Deletes the files `retention` no longer keeps from `slots` (and from disk).
    fn retain(
        &self,
        retention: &Retention,
        slots: &mut std::collections::BTreeMap<FileKey, layout::Slot>,
    ) -> Result<Vec<FileKey>, WriteError> {
        retention::apply(
            retention,
            &self.dir,
            &self.category,
            slots,
            self.key,
            self.opts.clock.now(),
            &self.opts.compressor,
        )
    }

    /// Retention, then (re)queues closed plain files for compression, which picks up files a
    /// full queue or a failed compression left behind. Logged, never fatal.
    fn housekeeping(&mut self) {
        let retention = self.opts.retention();
        if retention.is_unlimited() && !self.opts.compress {
            return;
        }
        let mut slots = match layout::scan_dir(&self.dir, &self.category) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(category = %self.category, "listing {}: {e}", self.dir.display());
                return;
            }
        };
        if let Err(e) = self.retain(&retention, &mut slots) {
            tracing::warn!(category = %self.category, "retention: {e}");
        }
        if self.opts.compress {
            for (k, slot) in slots.range(..self.key) {
                if let (Some(plain), None) = (&slot.plain, &slot.gz) {
                    tracing::debug!(category = %self.category, file = %k.file_name(&self.category), "queueing for compression");
                    self.submit_compression(plain.clone());
                }
            }
        }
    }

    fn submit_compression(&self, path: PathBuf) {
        if self.opts.compressor.submit(path) == Submit::QueueFull {
            tracing::debug!(category = %self.category, "compression queue full; retrying at the next rotation");
        }
    }

    /// Replaces `<category>_current` atomically: a new symlink under a temporary name, then
    /// `rename(2)` over the old one, so readers never see it missing.
    fn point_current_link(&self) -> Result<(), WriteError> {
        let link = self.dir.join(layout::current_link_name(&self.category));
        let tmp = self.dir.join(format!(
            ".{}.tmp",
            layout::current_link_name(&self.category)
        ));
        let target = self.key.file_name(&self.category);
        if let Ok(existing) = std::fs::read_link(&link) {
            if existing == Path::new(&target) {
                return Ok(());
            }
        }
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &tmp)(e)),
        }
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("symlink", &tmp))?;
        std::fs::rename(&tmp, &link).map_err(io_err("rename", &link))
    }
}

/// When an existing file was started, for time rotation after a reopen: its birth time where
/// the filesystem records one (so a writer closed while idle and reopened does not restart the
/// period), else now (Scribe's behaviour: the period restarts at open). Never in the future.
fn file_birth(meta: &std::fs::Metadata, now: DateTime<Local>) -> DateTime<Local> {
    meta.created()
        .ok()
        .map(DateTime::<Local>::from)
        .filter(|t| *t <= now)
        .unwrap_or(now)
}

fn open_append(path: &Path) -> Result<File, WriteError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err("open", path))
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "commit_tests.rs"]
mod commit_tests;
