//! The spool: segments on disk, the append head, the read position and the committed cursor.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cursor;
use crate::error::{io_err, SpoolError};
use crate::position::Position;
use crate::record::{self, AsEntry, Entry, HEADER_LEN};
use crate::segment;

/// The encode buffer is kept between appends for reuse, unless a big batch grew it past this.
const SCRATCH_KEEP: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Cap on the uncommitted bytes (records not yet committed as consumed, headers included)
    /// across all segments; an append past it gets [`SpoolError::Full`]. Disk use can exceed it
    /// by the already-consumed front of the oldest segment, which is deleted once the read
    /// position is committed past its end. Default 1 GiB.
    pub max_bytes: u64,
    /// A segment is rolled when the next record would take it past this; a record larger than
    /// this gets a segment of its own. Default 64 MiB.
    pub segment_bytes: u64,
    /// Largest record payload accepted by `append` and believed by replay: a header claiming
    /// more is treated as damage, so this is also the most a damaged length can make replay
    /// allocate. Must not be lowered for a spool holding bigger records (they would read as
    /// damage). At most `u32::MAX`. Default 64 MiB.
    pub max_record_bytes: u32,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
        }
    }
}

/// Counters since [`Spool::open`], plus the current size.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStats {
    pub records_appended: u64,
    pub entries_appended: u64,
    /// Records handed out by `next_batch`, counting again any that are re-read after a
    /// [`Spool::rewind`].
    pub records_replayed: u64,
    pub entries_replayed: u64,
    /// Damaged regions skipped (a torn tail counts as one), each counted once per process even
    /// if re-read after a rewind.
    pub corrupt_records: u64,
    pub corrupt_bytes: u64,
    /// Uncommitted bytes, as [`Spool::bytes`].
    pub bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
}

/// Records read by [`Spool::next_batch`].
#[derive(Debug, Clone)]
pub struct ReplayBatch {
    /// The entries of every record read, in append order. They share each record's buffer.
    pub entries: Vec<Entry>,
    /// The position after the last record: pass it to [`Spool::commit`] once the entries are
    /// safely delivered.
    pub position: Position,
    /// Records read.
    pub records: u64,
    /// On-disk size of those records, headers included.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    /// Bytes that are final: the file length for segments from before `open`, the bytes
    /// successfully written for the head.
    len: u64,
}

/// The segment being appended to; always `segments.back()`.
struct Head {
    id: u64,
    file: File,
}

/// A former head with records not fsynced yet: [`Spool::sync`] must cover it too, and
/// [`Spool::discard_unsynced`] cuts it back to `synced`.
struct Unsynced {
    id: u64,
    path: PathBuf,
    file: File,
    /// Its length at the last successful sync.
    synced: u64,
}

/// A durable, bounded, append-only disk queue of entry batches. See the crate docs.
pub struct Spool {
    dir: PathBuf,
    /// Holds an exclusive lock on `<dir>/lock` for as long as the spool is open: two writers
    /// appending to and committing one spool would corrupt each other's segments and cursor.
    _lock: File,
    opts: SpoolOptions,
    /// Every segment file, oldest first. Ids below `committed.segment` are consumed and only
    /// wait for their file to be removed.
    segments: VecDeque<Segment>,
    head: Option<Head>,
    /// Whether the head has data written since the last `sync`.
    head_dirty: bool,
    /// The head's length at the last successful `sync` (0 when it was created since).
    head_synced: u64,
    /// Former heads with data not yet fsynced.
    unsynced: Vec<Unsynced>,
    /// A segment was created since the last `sync`; its directory entry needs an fsync.
    dir_dirty: bool,
    next_id: u64,
    /// Durable read position (what the cursor file says, normalized).
    committed: Position,
    /// Where the next `next_batch` starts.
    read: Position,
    /// The furthest position ever read: commits may go up to here, and damage before it has
    /// been counted already.
    furthest: Position,
    /// An open handle on the segment being read.
    reader: Option<(u64, File)>,
    /// Last segment a damage warning was logged for (one warning per segment).
    warned_segment: Option<u64>,
    scratch: Vec<u8>,
    stats: SpoolStats,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`: finds the segments, loads the committed
    /// cursor and removes segments wholly before it. Every existing segment is read-only from
    /// now on; the first append starts a new one, so a torn tail left by a crash is never
    /// followed by new records (replay skips it as damage).
    pub fn open(dir: impl AsRef<Path>, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        if opts.segment_bytes == 0 || opts.max_bytes == 0 {
            return Err(SpoolError::InvalidOptions(
                "segment_bytes and max_bytes must be positive",
            ));
        }
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock = lock_dir(&dir)?;
        cursor::remove_temp(&dir)?;
        let listed = segment::list(&dir).map_err(io_err("list segments", &dir))?;
        let saved = cursor::load(&dir)?;
        let segments: VecDeque<Segment> = listed
            .iter()
            .map(|&(id, len)| Segment { id, len })
            .collect();
        let first = segments.front().map_or(0, |s| s.id);
        // Ids come from file names: saturate rather than overflow on a hostile `u64::MAX`.
        let last_plus_one = segments.back().map_or(0, |s| s.id.saturating_add(1));
        let start = saved.unwrap_or(Position {
            segment: first,
            offset: 0,
        });
        // New segment ids stay above the cursor's, so a position never names a segment that
        // is created after it was committed.
        let next_id = match saved {
            Some(p) => last_plus_one.max(p.segment.saturating_add(1)),
            None => last_plus_one,
        };
        if let Some(s) = segments.iter().find(|s| s.id == start.segment) {
            if start.offset > s.len {
                tracing::warn!(
                    dir = %dir.display(), cursor = %start, segment_len = s.len,
                    "spool cursor is past the end of its segment (data lost in a crash?); \
                     continuing with the next segment"
                );
            }
        }
        let mut spool = Spool {
            _lock: lock,
            dir,
            opts,
            segments,
            head: None,
            head_dirty: false,
            head_synced: 0,
            unsynced: Vec::new(),
            dir_dirty: false,
            next_id,
            committed: start,
            read: start,
            furthest: start,
            reader: None,
            warned_segment: None,
            scratch: Vec::new(),
            stats: SpoolStats::default(),
        };
        spool.committed = spool.normalized(start);
        spool.read = spool.committed;
        spool.furthest = spool.committed;
        spool.remove_before(spool.committed);
        tracing::info!(
            dir = %spool.dir.display(),
            segments = spool.segments.len(),
            bytes = spool.bytes(),
            position = %spool.committed,
            "spool opened"
        );
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &SpoolOptions {
        &self.opts
    }

    /// Appends one record holding `entries` (an empty batch is a no-op). On return the record
    /// is in the page cache (safe from a process crash) and visible to `next_batch`; it is
    /// durable only after [`Spool::sync`].
    ///
    /// Refused without writing anything: [`SpoolError::Full`] when the uncommitted bytes plus
    /// this record would pass `max_bytes` (retry after a commit), [`SpoolError::RecordTooLarge`]
    /// or [`SpoolError::CategoryTooLong`] when it can never fit. A failed write — typically a
    /// full disk ([`SpoolError::is_disk_full`]), which may strike after part of the record
    /// was written — is cut back, so it leaves no partial record behind either and the same
    /// append can simply be tried again later (if even the cut fails, the segment is retired,
    /// so no record ever follows the leftover, and replay treats the leftover as damage).
    pub fn append<E: AsEntry>(&mut self, entries: &[E]) -> Result<(), SpoolError> {
        if entries.is_empty() {
            return Ok(());
        }
        let payload = record::payload_len(entries)?;
        let record = HEADER_LEN as u64 + payload;
        let max_record =
            (HEADER_LEN as u64 + u64::from(self.opts.max_record_bytes)).min(self.opts.max_bytes);
        if record > max_record {
            return Err(SpoolError::RecordTooLarge {
                record,
                max: max_record,
            });
        }
        let queued = self.bytes();
        if queued + record > self.opts.max_bytes {
            return Err(SpoolError::Full {
                record,
                queued,
                max_bytes: self.opts.max_bytes,
            });
        }
        self.scratch.clear();
        // `payload <= max_record_bytes <= u32::MAX`, checked above.
        record::encode(entries, payload as u32, &mut self.scratch);

        let len = self.head_len();
        let head = match self.head.take() {
            Some(h) if len == 0 || len + record <= self.opts.segment_bytes => h,
            Some(h) => {
                tracing::debug!(dir = %self.dir.display(), segment = h.id, "rolling spool segment");
                self.retire(h);
                self.create_segment()?
            }
            None => self.create_segment()?,
        };
        // The head is always the newest segment (a new one was just pushed with length 0).
        let offset = self.segments.back().map_or(0, |s| s.len);
        let path = self.segment_path(head.id);
        if let Err(e) = head.file.write_all_at(&self.scratch, offset) {
            // Cut back so the next record does not follow a partial one. If that fails too,
            // stop appending to this file: its length stays `offset` for this process, and
            // after a restart the leftover reads as damage.
            if let Err(cut) = head.file.set_len(offset) {
                tracing::warn!(path = %path.display(), error = %cut, "cannot cut back a failed spool write; retiring the segment");
                self.retire(head);
            } else {
                self.head = Some(head);
            }
            return Err(SpoolError::io("write segment", &path, e));
        }
        if let Some(s) = self.segments.back_mut() {
            s.len += record;
        }
        self.head = Some(head);
        self.head_dirty = true;
        self.stats.records_appended += 1;
        self.stats.entries_appended += entries.len() as u64;
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Makes every record appended so far durable: fdatasyncs each segment written since the
    /// last sync, then the directory if a segment was created. Callers that promise
    /// durability acknowledge upstream only after this returns `Ok`. After an error, treat the
    /// records since the last successful sync as not durable.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        while let Some(u) = self.unsynced.last() {
            u.file
                .sync_data()
                .map_err(io_err("fsync segment", &u.path))?;
            self.unsynced.pop();
        }
        if self.head_dirty {
            if let Some(h) = &self.head {
                let path = self.segment_path(h.id);
                h.file.sync_data().map_err(io_err("fsync segment", &path))?;
            }
            self.head_dirty = false;
            self.head_synced = self.head_len();
        }
        if self.dir_dirty {
            scribe_fs::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// [`Spool::append`] then [`Spool::sync`].
    pub fn append_and_sync<E: AsEntry>(&mut self, entries: &[E]) -> Result<(), SpoolError> {
        self.append(entries)?;
        self.sync()
    }

    /// Cuts off every record appended since the last successful [`Spool::sync`], for a caller
    /// whose `sync` failed and that will append those batches again: after a failed fsync the
    /// kernel may have dropped the written pages, so the records are neither known durable nor
    /// known gone, and a later fsync that succeeds proves nothing about them. Cutting them off
    /// and appending again is what makes the copies that count durable, without a second copy
    /// in the spool. Only for records not read yet (the reader is moved back if it had).
    ///
    /// On an error (a cut failed) the rest of those records stay, and may be replayed besides
    /// the copies appended again: duplicates, never a loss.
    pub fn discard_unsynced(&mut self) -> Result<(), SpoolError> {
        let mut cut: Vec<(u64, u64)> = Vec::new();
        for u in std::mem::take(&mut self.unsynced) {
            u.file
                .set_len(u.synced)
                .map_err(io_err("cut back segment", &u.path))?;
            cut.push((u.id, u.synced));
        }
        if std::mem::take(&mut self.head_dirty) {
            if let Some(h) = &self.head {
                let path = self.segment_path(h.id);
                h.file
                    .set_len(self.head_synced)
                    .map_err(io_err("cut back segment", &path))?;
                cut.push((h.id, self.head_synced));
            }
        }
        for &(id, len) in &cut {
            if let Some(s) = self.segments.iter_mut().find(|s| s.id == id) {
                s.len = s.len.min(len);
            }
        }
        if let Some(&(segment, offset)) = cut.iter().min() {
            let at = Position { segment, offset }.max(self.committed);
            self.read = self.read.min(at);
            self.furthest = self.furthest.min(at);
        }
        Ok(())
    }

    /// Reads records from the read position on, and returns their entries: whole records, as
    /// many as fit in `max_bytes` of on-disk record size, but always at least one (so a record
    /// bigger than `max_bytes` comes alone). `None` when there is nothing more to read right
    /// now; records appended later are read by later calls.
    ///
    /// Only one batch of records is in memory at a time. Damaged regions are skipped and
    /// counted. The read position advances in memory only: [`Spool::commit`] makes it durable,
    /// [`Spool::rewind`] goes back to the last commit.
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Option<ReplayBatch>, SpoolError> {
        let max_bytes = max_bytes as u64;
        let max_payload = self.opts.max_record_bytes;
        let mut pos = self.normalized(self.read);
        let mut entries = Vec::new();
        let (mut records, mut bytes) = (0u64, 0u64);
        while let Some(seg) = self.segment(pos.segment) {
            if pos.offset >= seg.len {
                break; // caught up with the head
            }
            let path = self.segment_path(seg.id);
            let file = self.reader_for(seg.id)?;
            let header = segment::read_header(file, pos.offset, seg.len, max_payload)
                .map_err(io_err("read segment", &path))?;
            let mut damaged = true;
            if let Some(h) = header {
                if records > 0 && bytes + h.record_len() > max_bytes {
                    break;
                }
                let read = segment::read_entries(file, pos.offset, &h)
                    .map_err(io_err("read segment", &path))?;
                if let Some(mut rec) = read {
                    entries.append(&mut rec);
                    records += 1;
                    bytes += h.record_len();
                    pos.offset += h.record_len();
                    damaged = false;
                }
            }
            if damaged {
                let next = segment::resync(file, pos.offset + 1, seg.len, max_payload)
                    .map_err(io_err("read segment", &path))?;
                self.note_damage(seg.id, pos.offset, next);
                pos.offset = next;
            }
            pos = self.normalized(pos);
            if records > 0 && bytes >= max_bytes {
                break;
            }
        }
        self.read = pos;
        self.furthest = self.furthest.max(pos);
        if records == 0 {
            return Ok(None);
        }
        self.stats.records_replayed += records;
        self.stats.entries_replayed += entries.len() as u64;
        Ok(Some(ReplayBatch {
            entries,
            position: pos,
            records,
            bytes,
        }))
    }

    /// Makes `position` (a [`ReplayBatch::position`], or [`Spool::read_position`]) the durable
    /// read position: after a restart, replay resumes there. The cursor file is replaced
    /// atomically and fsynced before this returns; then segment files wholly before the
    /// position are removed (a failed removal is logged and retried by the next commit), and
    /// when nothing is left after it, the head's too: a drained spool keeps no segment file,
    /// and gives its disk space back. Committing a position at or before the committed one
    /// does nothing.
    ///
    /// On a full disk the spool itself may be what fills it, and even the small cursor file
    /// would not fit: then the segments the position consumes are removed first and the cursor
    /// written again. A crash before it lands replays from the start of the position's segment
    /// (duplicates, never a loss).
    pub fn commit(&mut self, position: Position) -> Result<(), SpoolError> {
        if position > self.furthest {
            return Err(SpoolError::InvalidPosition {
                requested: position,
                read: self.furthest,
            });
        }
        let target = self.normalized(position);
        if target <= self.committed {
            return Ok(());
        }
        if let Err(e) = cursor::store(&self.dir, target) {
            if !e.is_disk_full() || !self.remove_before(target) {
                return Err(e);
            }
            tracing::info!(dir = %self.dir.display(), "disk full: removed delivered spool segments to make room for the cursor");
            self.store_after_freeing(target)?;
        }
        self.committed = target;
        self.read = self.read.max(target);
        self.remove_before(target);
        Ok(())
    }

    /// Writes the cursor once files were removed to make room for it: a few tries over about
    /// 60 ms, because the blocks of a removed file can take a moment to be counted as free
    /// (a few milliseconds on tmpfs, seen with other writers busy).
    fn store_after_freeing(&self, target: Position) -> Result<(), SpoolError> {
        let mut wait = Duration::from_millis(2);
        loop {
            match cursor::store(&self.dir, target) {
                Err(e) if e.is_disk_full() && wait <= Duration::from_millis(32) => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
                stored => return stored,
            }
        }
    }

    /// Moves the read position back to the last commit, so that records read but not
    /// committed (say, a send that failed) are read again.
    pub fn rewind(&mut self) {
        self.read = self.committed;
    }

    /// Where the next `next_batch` starts. Committing it once every batch read so far has been
    /// delivered also moves the durable position past damage that no batch ended after.
    pub fn read_position(&self) -> Position {
        self.read
    }

    /// The durable read position.
    pub fn committed_position(&self) -> Position {
        self.committed
    }

    /// Uncommitted bytes on disk (records, headers and any damaged bytes not yet committed
    /// past): what `max_bytes` bounds.
    pub fn bytes(&self) -> u64 {
        let c = self.committed;
        self.segments
            .iter()
            .map(|s| match s.id.cmp(&c.segment) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => s.len.saturating_sub(c.offset),
                std::cmp::Ordering::Greater => s.len,
            })
            .sum()
    }

    /// No uncommitted bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            bytes: self.bytes(),
            segments: self.segments.len() as u64,
            ..self.stats
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(segment::file_name(id))
    }

    fn segment(&self, id: u64) -> Option<Segment> {
        self.segments.iter().find(|s| s.id == id).copied()
    }

    fn head_len(&self) -> u64 {
        match (&self.head, self.segments.back()) {
            (Some(h), Some(s)) if s.id == h.id => s.len,
            _ => 0,
        }
    }

    fn is_head(&self, id: u64) -> bool {
        self.head.as_ref().is_some_and(|h| h.id == id)
    }

    /// The same place, moved past the end of finished segments and gaps in the ids: the first
    /// segment at or after `pos.segment`, at offset 0 if it is a later one. The head's end is
    /// not finished (records may follow), so a position can rest there.
    fn normalized(&self, mut pos: Position) -> Position {
        for s in &self.segments {
            if s.id < pos.segment {
                continue;
            }
            if s.id > pos.segment {
                pos = Position {
                    segment: s.id,
                    offset: 0,
                };
            }
            if pos.offset < s.len || self.is_head(s.id) {
                return pos;
            }
            pos = Position {
                segment: s.id.saturating_add(1),
                offset: 0,
            };
        }
        pos
    }

    /// The read handle for segment `id`, opened on first use.
    fn reader_for(&mut self, id: u64) -> Result<&File, SpoolError> {
        let reader = match self.reader.take() {
            Some(r) if r.0 == id => r,
            _ => {
                let path = self.segment_path(id);
                (
                    id,
                    File::open(&path).map_err(io_err("open segment", &path))?,
                )
            }
        };
        Ok(&self.reader.insert(reader).1)
    }

    fn create_segment(&mut self) -> Result<Head, SpoolError> {
        let id = self.next_id;
        let path = self.segment_path(id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create segment", &path))?;
        self.next_id += 1;
        self.segments.push_back(Segment { id, len: 0 });
        self.dir_dirty = true;
        self.head_synced = 0;
        Ok(Head { id, file })
    }

    /// Stops appending to `head`; it becomes an ordinary finished segment. Its unsynced data
    /// stays on the list for the next `sync`.
    fn retire(&mut self, head: Head) {
        let synced = std::mem::take(&mut self.head_synced);
        if std::mem::take(&mut self.head_dirty) {
            self.unsynced.push(Unsynced {
                id: head.id,
                path: self.segment_path(head.id),
                file: head.file,
                synced,
            });
        }
    }

    fn note_damage(&mut self, segment: u64, from: u64, to: u64) {
        let at = Position {
            segment,
            offset: from,
        };
        if at < self.furthest {
            return; // counted when first read, before a rewind
        }
        self.stats.corrupt_records += 1;
        self.stats.corrupt_bytes += to - from;
        let path = self.segment_path(segment);
        if self.warned_segment != Some(segment) {
            self.warned_segment = Some(segment);
            tracing::warn!(
                path = %path.display(), offset = from, bytes = to - from,
                "skipping damaged spool data (further damage in this segment is logged at debug)"
            );
        } else {
            tracing::debug!(path = %path.display(), offset = from, bytes = to - from, "skipping damaged spool data");
        }
    }

    /// Removes the files of segments wholly before `upto`, and the head's when `upto` is its
    /// end (nothing is left to read: the next record starts a new segment). True when any was
    /// removed.
    fn remove_before(&mut self, upto: Position) -> bool {
        let mut end = upto.segment;
        if self
            .head
            .as_ref()
            .is_some_and(|h| h.id == upto.segment && upto.offset >= self.head_len())
        {
            self.head = None;
            self.head_dirty = false;
            self.head_synced = 0;
            end = end.saturating_add(1);
        }
        let before = self.segments.len();
        while let Some(s) = self.segments.front().copied() {
            if s.id >= end {
                break;
            }
            let path = self.segment_path(s.id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove consumed spool segment; will retry");
                    break;
                }
            }
            self.segments.pop_front();
            self.unsynced.retain(|u| u.id != s.id);
            if self.reader.as_ref().is_some_and(|(id, _)| *id == s.id) {
                self.reader = None;
            }
        }
        self.segments.len() < before
    }
}

/// Takes the spool directory's lock (`scribe_fs::lock_dir`: `<dir>/lock`, held while the
/// `Spool` lives): two writers appending to one spool would interleave records and each commit
/// the other's reads.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    scribe_fs::lock_dir(dir).map_err(|e| match e {
        scribe_fs::LockError::Held { .. } | scribe_fs::LockError::HeldBy { .. } => {
            SpoolError::Locked {
                dir: dir.to_path_buf(),
            }
        }
        scribe_fs::LockError::Fs(e) => e.into(),
    })
}
