//! Idempotent commit: which producer ranges a category's archive already holds, kept in a
//! commit log beside the data so that a retry, or a retry after `kill -9`, writes each range
//! once.
//!
//! With [`crate::WriterOptions::idempotent`], every successful batch write appends one record
//! to `<data>/<cat>/.commits` (`log.rs`): the data file it wrote, the committed end offset in
//! that file, and the ranges it committed per producer. Batches without ids (Thrift clients)
//! get a record too, so the last record always marks the end of acknowledged data. The
//! in-memory `ProducerTable` (`producers.rs`) is updated only after the record was written.
//!
//! # Durability
//!
//! With [`crate::Fsync::Batch`] the data file is fdatasync'ed, then the record appended and
//! the log fdatasync'ed, then the write returns: an acknowledged entry and its commit survive
//! power loss. With other policies the record reaches the page cache only (and is fsynced with
//! the data by [`crate::RotatingWriter::sync`]): it survives `kill -9` but a power loss may
//! lose records or data, in which case a retry may be written again or, if a record outlived
//! its data, skipped as already written (the same window in which those policies lose
//! acknowledged data anyway).
//!
//! # Recovery (at open)
//!
//! The log is read; a torn or CRC-bad **last** record is dropped (it was never acknowledged).
//! The last record names `(file, offset)`: if that file is still the newest data file it is
//! cut back to `offset` (the tail is a batch that was never acknowledged), and every data file
//! newer than it is truncated to 0 (created after the last commit, so nothing in it was
//! acknowledged). If newer files exist, the named file was closed by a rotation, whose record
//! covers all its data; anything past `offset` is only its `write_meta` record and is kept.
//!
//! Unless the data is much newer than the log (over 5 minutes past its last write, where a
//! batch that died before its record leaves a gap of one write and fsync): then something
//! wrote without the log, such as a rollback to a version without idempotent writes, and
//! nothing is cut.
//!
//! A bad record in the **middle** (a good one follows it): the log is moved aside to
//! `.commits.corrupt-<unix time>`, the table starts empty and nothing is truncated: delivery
//! degrades to at-least-once for ranges committed before, nothing is lost.
//!
//! No log (first start, or an upgrade from a version without it): nothing to recover. After
//! recovery the log is rewritten as one snapshot of the table and the writer's position.
//!
//! With `idempotent` off, an existing log is removed at open: it would not describe writes
//! made without it, and a later open with `idempotent` on would cut them.
//!
//! Like the data files, the log assumes one writer per category directory at a time.
//!
//! The log and its temporary and aside files (`.commits`, `.commits.tmp`,
//! `.commits.corrupt-<secs>[.N]`) never parse as a data file name of any category
//! ([`crate::layout`] accepts only `<cat>_NNNNN` and `<cat>-YYYY-MM-DD_NNNNN`, with `.gz`), so
//! `list_archive`, retention and compression never see them.

mod log;
pub(crate) mod producers;

use std::ops::Bound;
use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Local};
use scribe_ids::{EntryId, ProducerId, ProducerMap};

use scribe_fs::remove_if_exists;

use crate::category::Category;
use crate::error::{io_err, WriteError};
use crate::layout::{self, FileKey};
pub use producers::{DEFAULT_MAX_PRODUCERS, DEFAULT_PRODUCER_TTL, MAX_RANGES};

use self::log::{CommitLog, Loaded, Position, LOG_NAME, TMP_NAME};
use self::producers::{ProducerTable, RangeSet};

#[cfg(test)]
pub(crate) use self::log::FAIL_APPEND;

/// Producers expire at most this often on commit (a sweep walks only the expired ones).
const SWEEP_EVERY_SECS: u64 = 60;

/// State of a writer's commit table, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Producers in the table.
    pub producers: u64,
    /// Committed ranges over all producers.
    pub ranges: u64,
    /// Bytes in the commit log.
    pub log_bytes: u64,
    /// fsyncs of the commit log.
    pub log_fsyncs: u64,
    /// Times the log was rewritten as a snapshot since open.
    pub compactions: u64,
    /// Ranges, producers forgotten because of the table's bounds (each can only cause a
    /// duplicate later).
    pub forgotten_ranges: u64,
    pub evicted_producers: u64,
    pub expired_producers: u64,
}

fn unix_secs(t: DateTime<Local>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// What recovery hands to the writer before it picks its file.
pub(crate) struct Recovered {
    table: ProducerTable,
}

/// Reads `<dir>/.commits` and repairs the data files as the module docs describe. Runs before
/// the writer chooses its current file.
pub(crate) fn recover(
    dir: &Path,
    category: &Category,
    ttl: std::time::Duration,
    max_producers: usize,
    now: DateTime<Local>,
) -> Result<Recovered, WriteError> {
    let mut table = ProducerTable::new(ttl, max_producers);
    let path = dir.join(LOG_NAME);
    remove_if_exists(&dir.join(TMP_NAME))?;
    if !path.exists() {
        return Ok(Recovered { table });
    }
    let (last, how, good) = log::load(&path, &mut table)?;
    match how {
        Loaded::Clean => {}
        Loaded::TornTail => {
            tracing::warn!(%category, "commit log: dropped an incomplete last record at byte {good} (never acknowledged)");
        }
        Loaded::Corrupt => {
            let aside = aside_path(dir, unix_secs(now));
            tracing::error!(%category, "commit log: corrupt record at byte {good}; moved to {} and starting an empty table (retries of earlier writes may be duplicated; nothing is truncated)", aside.display());
            std::fs::rename(&path, &aside).map_err(io_err("rename", &path))?;
            table.clear();
            return Ok(Recovered { table });
        }
    }
    if let Some(pos) = last {
        let log_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        cut_uncommitted(dir, category, &pos, log_mtime)?;
    }
    table.expire(unix_secs(now));
    Ok(Recovered { table })
}

/// `.commits.corrupt-<secs>`, not overwriting an earlier one.
fn aside_path(dir: &Path, secs: u64) -> std::path::PathBuf {
    let base = format!("{LOG_NAME}.corrupt-{secs}");
    (0..100)
        .map(|i| match i {
            0 => dir.join(&base),
            i => dir.join(format!("{base}.{i}")),
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(base))
}

/// Data modified this long after the commit log's last write was not written by a batch that
/// died before its record (that gap is one batch's write and fsync): the log is stale.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// Cuts what was written after the last commit at `pos`, unless the data is much newer than
/// the log (`log_mtime`): then something wrote without the log (a rollback to a version
/// without idempotent writes) and the tail is acknowledged data; nothing is cut.
fn cut_uncommitted(
    dir: &Path,
    category: &Category,
    pos: &Position,
    log_mtime: Option<SystemTime>,
) -> Result<(), WriteError> {
    let Some((key, layout::FileKind::Plain)) = layout::parse_name(category, &pos.file) else {
        tracing::warn!(%category, "commit log names {:?}, not a data file of this category; nothing cut", pos.file);
        return Ok(());
    };
    let slots = layout::scan_dir(dir, category).map_err(io_err("list", dir))?;
    // (path, cut to, why)
    let mut cuts: Vec<(&Path, u64, &str)> = Vec::new();
    for (k, slot) in slots.range((Bound::Excluded(key), Bound::Unbounded)) {
        match &slot.plain {
            Some(p) => cuts.push((p, 0, "created after the last commit")),
            None if slot.gz.is_some() => {
                tracing::warn!(%category, file = %k.file_name(category), "compressed file newer than the last commit; left alone");
            }
            None => {}
        }
    }
    if cuts.is_empty() {
        if let Some(p) = slots.get(&key).and_then(|s| s.plain.as_ref()) {
            cuts.push((p, pos.offset, "past the last commit"));
        }
    }
    let mut planned = Vec::new();
    for (path, to, why) in cuts {
        let meta = std::fs::metadata(path).map_err(io_err("stat", path))?;
        if meta.len() <= to {
            continue;
        }
        let stale = match (meta.modified(), log_mtime) {
            (Ok(m), Some(l)) => m.duration_since(l).is_ok_and(|d| d > STALE_AFTER),
            _ => false,
        };
        if stale {
            tracing::error!(%category, file = %path.display(), "data written long after the commit log's last record (by a version without idempotent writes?): keeping it, cutting nothing");
            return Ok(());
        }
        planned.push((path, to, why));
    }
    for (path, to, why) in planned {
        truncate(category, path, to, why)?;
    }
    Ok(())
}

fn truncate(category: &Category, path: &Path, to: u64, why: &str) -> Result<(), WriteError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let len = f.metadata().map_err(io_err("stat", path))?.len();
    if len > to {
        tracing::warn!(%category, file = %path.display(), "recovery: cutting {} unacknowledged bytes {why}", len - to);
        f.set_len(to).map_err(io_err("truncate", path))?;
        f.sync_data().map_err(io_err("fsync", path))?;
    }
    Ok(())
}

/// With `idempotent` off: an existing log would not describe the writes about to be made.
pub(crate) fn discard(dir: &Path, category: &Category) {
    if let Err(e) = remove_if_exists(&dir.join(TMP_NAME)) {
        tracing::warn!(%category, "{e}");
    }
    match remove_if_exists(&dir.join(LOG_NAME)) {
        Ok(true) => {
            tracing::info!(%category, "idempotent writes are off: removed the commit log");
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(%category, "{e}"),
    }
}

/// Contiguous entries of one producer written in the current batch: `[start, end)`.
struct Run {
    producer: ProducerId,
    start: u64,
    end: u64,
    /// Where the producer's committed and pending ranges ended when the run began.
    clear_from: u64,
}

impl Run {
    fn continued_by(&self, id: &EntryId) -> bool {
        self.producer == id.producer && id.start == self.end
    }
}

/// A writer's commit state: the table, the log, and the ranges of the batch in progress.
pub(crate) struct Committer {
    table: ProducerTable,
    log: CommitLog,
    /// Ranges written in the current batch and not committed yet (but the run).
    pending: ProducerMap<RangeSet>,
    /// The newest of them while entries continue it: noting an entry and checking the next
    /// one cost no map lookup per entry (they showed in profiles of a busy category).
    run: Option<Run>,
    last_sweep: u64,
    buf: Vec<u8>,
}

impl Committer {
    /// Starts the log afresh as one snapshot of the recovered table at the writer's position.
    pub fn start(
        dir: &Path,
        rec: Recovered,
        category: &Category,
        key: FileKey,
        size: u64,
        now: DateTime<Local>,
    ) -> Result<Committer, WriteError> {
        let now = unix_secs(now);
        let mut buf = Vec::new();
        let name = key.file_name(category);
        snapshot(&mut buf, &rec.table, now, &name, size);
        let log = CommitLog::create(dir, &buf)?;
        Ok(Committer {
            table: rec.table,
            log,
            pending: ProducerMap::default(),
            run: None,
            last_sweep: now,
            buf,
        })
    }

    /// Whether `id` is committed, or was already written earlier in this batch.
    pub fn is_duplicate(&mut self, id: &EntryId) -> bool {
        if let Some(r) = &self.run {
            if r.continued_by(id) && id.start >= r.clear_from {
                // Every range known for the producer ends at or before `id.start`.
                return false;
            }
        }
        self.flush_run();
        self.table.is_committed(id)
            || self
                .pending
                .get(&id.producer)
                .is_some_and(|r| r.contains(id.start, id.end))
    }

    pub fn is_committed(&self, id: &EntryId) -> bool {
        self.table.is_committed(id)
    }

    /// Whether nothing of `id`'s range can be a duplicate: every range known for its
    /// producer, committed or written earlier in this batch, ends at or before `id.start`.
    /// (A run of lines is written in one piece only then; else line by line.)
    pub fn is_clear(&mut self, id: &EntryId) -> bool {
        if let Some(r) = &self.run {
            if r.continued_by(id) && id.start >= r.clear_from {
                return true;
            }
        }
        self.flush_run();
        self.table.end(&id.producer) <= id.start
            && self
                .pending
                .get(&id.producer)
                .and_then(RangeSet::end)
                .is_none_or(|end| end <= id.start)
    }

    /// Notes that `id` was written in this batch.
    pub fn note(&mut self, id: &EntryId) {
        if let Some(r) = &mut self.run {
            if r.continued_by(id) {
                r.end = id.end;
                return;
            }
        }
        self.flush_run();
        let pending_end = self.pending.get(&id.producer).and_then(RangeSet::end);
        self.run = Some(Run {
            producer: id.producer,
            start: id.start,
            end: id.end,
            clear_from: self.table.end(&id.producer).max(pending_end.unwrap_or(0)),
        });
    }

    /// Moves the run into `pending`.
    fn flush_run(&mut self) {
        if let Some(r) = self.run.take() {
            self.pending
                .entry(r.producer)
                .or_default()
                .insert(r.start, r.end);
        }
    }

    /// Forgets the batch's ranges (it failed).
    pub fn abort(&mut self) {
        self.run = None;
        self.pending.clear();
    }

    /// Appends the record for `(file, offset)` and the pending ranges (fsyncing the log if
    /// `durable`), then moves the pending ranges into the table. On error nothing changes.
    pub fn commit(
        &mut self,
        file: &str,
        offset: u64,
        now: DateTime<Local>,
        durable: bool,
    ) -> Result<(), WriteError> {
        let now = unix_secs(now);
        self.flush_run();
        log::encode(
            &mut self.buf,
            false,
            now,
            (file, offset),
            self.pending.iter().map(|(id, r)| (*id, now, r)),
        );
        self.log.append(&self.buf)?;
        if durable {
            if let Err(e) = self.log.sync() {
                // Whatever reached the disk, the caller cuts the data: the record must go.
                self.log.unappend(self.buf.len() as u64);
                return Err(e);
            }
        }
        for (id, ranges) in self.pending.drain() {
            self.table.commit(id, &ranges, now);
        }
        if now.saturating_sub(self.last_sweep) >= SWEEP_EVERY_SECS {
            self.table.expire(now);
            self.last_sweep = now;
        }
        if self.log.needs_compaction() {
            self.compact(file, offset, now);
        }
        Ok(())
    }

    /// Rewrites the log as one snapshot. Failure is logged: the old log stays valid.
    fn compact(&mut self, file: &str, offset: u64, now: u64) {
        self.table.expire(now);
        self.last_sweep = now;
        snapshot(&mut self.buf, &self.table, now, file, offset);
        let dir = self.log_dir();
        if let Err(e) = self.log.compact(&self.buf) {
            tracing::warn!(dir = %dir.display(), "commit log compaction: {e}");
        }
    }

    fn log_dir(&self) -> std::path::PathBuf {
        self.log.dir().to_path_buf()
    }

    /// fsyncs records appended since the last sync.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.log.sync()
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            producers: self.table.len() as u64,
            ranges: self.table.range_count() as u64,
            log_bytes: self.log.len(),
            log_fsyncs: self.log.fsyncs,
            compactions: self.log.compactions,
            forgotten_ranges: self.table.forgotten_ranges,
            evicted_producers: self.table.evicted_producers,
            expired_producers: self.table.expired_producers,
        }
    }
}

fn snapshot(buf: &mut Vec<u8>, table: &ProducerTable, now: u64, file: &str, offset: u64) {
    let producers: Vec<_> = table.iter().collect();
    log::encode(buf, true, now, (file, offset), producers.into_iter());
}
