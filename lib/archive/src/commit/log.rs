//! The commit log file, `<data>/<cat>/.commits`: append-only, CRC-32'd, length-prefixed
//! binary records.
//!
//! ```text
//! record   = body_len: u32 LE | crc32(body): u32 LE | body
//! body     = kind: u8 (1 commit, 2 snapshot) | time: u64 (unix seconds)
//!          | name_len: u16 | name (data file name) | offset: u64 (committed end in that file)
//!          | producers: u32 | producer*
//! producer = id: [u8; 16] | (snapshot only) last_seen: u64 | ranges: u32 | (start: u64, end: u64)*
//! ```
//!
//! All integers little-endian. A commit record carries the ranges its write newly committed
//! (last seen = the record's time); a snapshot carries the whole table and starts a log.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use scribe_ids::ProducerId;

use scribe_fs::{sync_dir, AtomicFile, SyncMode};

use super::producers::{ProducerTable, RangeSet};
use crate::error::{io_err, WriteError};

pub(crate) const LOG_NAME: &str = ".commits";
pub(crate) const TMP_NAME: &str = ".commits.tmp";
const KIND_COMMIT: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const HEADER: usize = 8;
/// Compact once the log passes this many bytes (or twice its last snapshot, if larger, so a
/// big table does not compact on every write).
pub(crate) const COMPACT_AT: u64 = 4 << 20;
/// No record we write comes near this (a full table is ~30 MB); a bigger length is corruption.
const MAX_RECORD: u32 = 256 << 20;

/// A committed position: everything acknowledged ends at or before `offset` in `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub file: String,
    pub offset: u64,
}

/// Encodes one record into `out` (cleared first).
pub(crate) fn encode<'a>(
    out: &mut Vec<u8>,
    snapshot: bool,
    time: u64,
    pos: (&str, u64),
    producers: impl ExactSizeIterator<Item = (ProducerId, u64, &'a RangeSet)>,
) {
    out.clear();
    out.extend_from_slice(&[0; HEADER]);
    out.push(if snapshot { KIND_SNAPSHOT } else { KIND_COMMIT });
    out.extend_from_slice(&time.to_le_bytes());
    // File names are `<category>` (≤ 200 bytes) plus a short suffix: they fit in a u16.
    let name = pos.0.as_bytes();
    let name = &name[..name.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&pos.1.to_le_bytes());
    out.extend_from_slice(&(producers.len() as u32).to_le_bytes());
    for (id, seen, ranges) in producers {
        out.extend_from_slice(&id.0);
        if snapshot {
            out.extend_from_slice(&seen.to_le_bytes());
        }
        out.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
        for (s, e) in ranges.iter() {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
        }
    }
    let body_len = (out.len() - HEADER) as u32;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[..4].copy_from_slice(&body_len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A bounds-checked reader over one record body.
struct Body<'a>(&'a [u8]);

impl Body<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Applies one record body to `table`; `None` if it does not parse (corruption the CRC
/// missed, or a record from a newer format). Parses fully before changing anything.
fn apply(body: &[u8], table: &mut ProducerTable) -> Option<Position> {
    let mut b = Body(body);
    let snapshot = match b.u8()? {
        KIND_COMMIT => false,
        KIND_SNAPSHOT => true,
        _ => return None,
    };
    let time = b.u64()?;
    let name_len = b.u16()? as usize;
    let file = String::from_utf8(b.take(name_len)?.to_vec()).ok()?;
    let offset = b.u64()?;
    let n = b.u32()? as usize;
    // Every producer takes at least 20 bytes: a count beyond that is corruption, and checking
    // it first keeps allocation bounded by the record's size.
    if n > b.0.len() / 20 {
        return None;
    }
    let mut parsed = Vec::with_capacity(n);
    for _ in 0..n {
        let id = ProducerId(b.take(16)?.try_into().ok()?);
        let seen = if snapshot { b.u64()? } else { time };
        let k = b.u32()? as usize;
        if k > b.0.len() / 16 {
            return None;
        }
        let mut ranges = Vec::with_capacity(k);
        for _ in 0..k {
            let (s, e) = (b.u64()?, b.u64()?);
            if s >= e {
                return None;
            }
            ranges.push((s, e));
        }
        parsed.push((id, seen, ranges));
    }
    if !b.0.is_empty() {
        return None;
    }
    if snapshot {
        table.clear();
        // Oldest first, so that replaying the bounds evicts the same producers.
        parsed.sort_by_key(|(_, seen, _)| *seen);
    }
    for (id, seen, ranges) in parsed {
        table.commit_with(id, ranges.into_iter(), seen);
    }
    Some(Position { file, offset })
}

/// How loading a log ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// Every record was read.
    Clean,
    /// The last record was incomplete or bad, and no good record follows it (a write cut
    /// short by a crash, or blocks never written before a power loss): it was never
    /// acknowledged, so it is dropped.
    TornTail,
    /// A bad record with a good record somewhere after it: the log cannot be trusted past it.
    Corrupt,
}

/// Smallest body: kind, time, name length, offset, producer count.
const MIN_BODY: u32 = 1 + 8 + 2 + 8 + 4;

/// Logs are compacted at a few MiB (or twice a snapshot of at most ~30 MB): one this large
/// is not ours to trust, and reading it whole would be unbounded.
const MAX_LOG: u64 = 1 << 30;

/// Reads the log at `path` into `table`. Returns the last position, how it ended, and the
/// length of the good prefix. On [`Loaded::Corrupt`], `table` holds what was read before the
/// bad record.
pub(crate) fn load(
    path: &Path,
    table: &mut ProducerTable,
) -> Result<(Option<Position>, Loaded, u64), WriteError> {
    let file_len = std::fs::metadata(path).map_err(io_err("stat", path))?.len();
    if file_len > MAX_LOG {
        return Ok((None, Loaded::Corrupt, 0));
    }
    let bytes = std::fs::read(path).map_err(io_err("read", path))?;
    let mut at = 0usize;
    let mut last = None;
    while at < bytes.len() {
        match record_at(&bytes, at).and_then(|(body, end)| Some((apply(body, table)?, end))) {
            Some((pos, end)) => {
                last = Some(pos);
                at = end;
            }
            None => {
                // A torn append leaves nothing good after it; anything good after a bad
                // record means the bad one is in the middle.
                let how = if (at + 1..bytes.len()).any(|q| record_at(&bytes, q).is_some()) {
                    Loaded::Corrupt
                } else {
                    Loaded::TornTail
                };
                return Ok((last, how, at as u64));
            }
        }
    }
    Ok((last, Loaded::Clean, at as u64))
}

/// The body of a whole record with a good CRC at `at`, and where the record ends.
fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?);
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if !(MIN_BODY..=MAX_RECORD).contains(&len) {
        return None;
    }
    let end = (at + HEADER).checked_add(len as usize)?;
    let body = bytes.get(at + HEADER..end)?;
    (crc32fast::hash(body) == crc).then_some((body, end))
}

/// The open log: appends records, fsyncs on request, rewrites itself as a snapshot.
pub(crate) struct CommitLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes of whole records in the file.
    len: u64,
    /// Records were appended since the last fsync.
    unsynced: bool,
    /// A failed append may have left part of a record: cut back to `len` before the next.
    dirty: bool,
    /// Size of the snapshot that started this log (for the compaction threshold).
    snapshot_len: u64,
    pub fsyncs: u64,
    pub compactions: u64,
}

impl CommitLog {
    /// Starts a new log at `<dir>/.commits` holding one snapshot record (`record`, already
    /// encoded): written to `.commits.tmp`, fsynced, renamed over the log, directory fsynced.
    /// The old log, if any, stays in force until the rename.
    pub fn create(dir: &Path, record: &[u8]) -> Result<CommitLog, WriteError> {
        let path = dir.join(LOG_NAME);
        let mut new = AtomicFile::create_appending(&path, &dir.join(TMP_NAME))?;
        new.write_all(record)?;
        let file = new.commit(SyncMode::Data)?;
        // The handle now names `.commits` (same inode), so appends continue there. Without
        // the directory fsync a power loss may bring the old log back, which is still a
        // consistent (older) state.
        if let Err(e) = sync_dir(dir) {
            tracing::warn!("commit log: {e}");
        }
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            path,
            file,
            len: record.len() as u64,
            unsynced: false,
            dirty: false,
            snapshot_len: record.len() as u64,
            fsyncs: 1,
            compactions: 0,
        })
    }

    /// Appends one encoded record. On failure the file is cut back to the last whole record
    /// (now, or before the next append if that fails too), so a failed append never leaves
    /// a bad record in the middle of the log.
    pub fn append(&mut self, record: &[u8]) -> Result<(), WriteError> {
        if self.dirty {
            self.file
                .set_len(self.len)
                .map_err(io_err("truncate", &self.path))?;
            self.dirty = false;
        }
        #[cfg(test)]
        if FAIL_APPEND.with(|f| f.replace(false)) {
            // A short write, then an error (a full disk).
            let _ = self.file.write_all(&record[..record.len() / 2]);
            self.cut_back();
            return Err(io_err("write", &self.path)(std::io::Error::other(
                "injected failure",
            )));
        }
        if let Err(e) = self.file.write_all(record) {
            self.cut_back();
            return Err(io_err("write", &self.path)(e));
        }
        self.len += record.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn cut_back(&mut self) {
        self.dirty = self.file.set_len(self.len).is_err();
    }

    /// Removes the last record appended (`len` bytes): its data could not be kept.
    pub fn unappend(&mut self, len: u64) {
        self.len -= len.min(self.len);
        self.cut_back();
    }

    /// fdatasyncs if records were appended since the last sync.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        if self.unsynced {
            self.file.sync_data().map_err(io_err("fsync", &self.path))?;
            self.fsyncs += 1;
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn needs_compaction(&self) -> bool {
        self.len > COMPACT_AT.max(self.snapshot_len.saturating_mul(2))
    }

    /// Replaces this log with a new one holding only `snapshot` (see [`Self::create`]).
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<(), WriteError> {
        let mut new = CommitLog::create(&self.dir, snapshot)?;
        new.fsyncs += self.fsyncs;
        new.compactions = self.compactions + 1;
        *self = new;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: the next append on this thread writes half its record and fails.
    pub(crate) static FAIL_APPEND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::producers::DEFAULT_PRODUCER_TTL;

    fn table() -> ProducerTable {
        ProducerTable::new(DEFAULT_PRODUCER_TTL, 100)
    }

    fn record(name: &str, offset: u64, p: u8, r: (u64, u64)) -> Vec<u8> {
        let mut set = RangeSet::default();
        set.insert(r.0, r.1);
        let mut out = Vec::new();
        encode(
            &mut out,
            false,
            5,
            (name, offset),
            [(ProducerId([p; 16]), 5, &set)].into_iter(),
        );
        out
    }

    #[test]
    fn records_round_trip_and_bad_tails_are_classified() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(LOG_NAME);
        let mut bytes = record("t_00000", 10, 1, (0, 10));
        bytes.extend(record("t_00000", 20, 1, (10, 20)));
        std::fs::write(&p, &bytes).unwrap();
        let mut t = table();
        let (last, how, len) = load(&p, &mut t).unwrap();
        assert_eq!(how, Loaded::Clean);
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(
            last,
            Some(Position {
                file: "t_00000".into(),
                offset: 20
            })
        );
        assert_eq!(t.range_count(), 1);

        // Half a third record: torn.
        let third = record("t_00000", 30, 1, (20, 30));
        let mut torn = bytes.clone();
        torn.extend_from_slice(&third[..third.len() - 3]);
        std::fs::write(&p, &torn).unwrap();
        let (last, how, len) = load(&p, &mut table()).unwrap();
        assert_eq!((how, len), (Loaded::TornTail, bytes.len() as u64));
        assert_eq!(last.unwrap().offset, 20);

        // A whole last record with a flipped bit: torn too (it ends the file).
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1;
        std::fs::write(&p, &flipped).unwrap();
        let (last, how, _) = load(&p, &mut table()).unwrap();
        assert_eq!(how, Loaded::TornTail);
        assert_eq!(last.unwrap().offset, 10);

        // Zeros after the last record (extended, never written): torn.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        std::fs::write(&p, &zeros).unwrap();
        assert_eq!(load(&p, &mut table()).unwrap().1, Loaded::TornTail);

        // A flipped bit in the first record, with a good one after it: corrupt.
        let mut middle = bytes.clone();
        middle[HEADER + 3] ^= 1;
        std::fs::write(&p, &middle).unwrap();
        let (last, how, len) = load(&p, &mut table()).unwrap();
        assert_eq!((last, how, len), (None, Loaded::Corrupt, 0));
    }
}
