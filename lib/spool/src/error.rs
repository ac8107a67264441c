//! The spool's error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::position::Position;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// An I/O operation failed; `op` says which (e.g. "write segment") and `path` on what.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Appending the record would take the uncommitted bytes past `max_bytes`. Nothing was
    /// written; retry after a [`Spool::commit`](crate::Spool::commit) frees space.
    #[error("spool full: {queued} bytes queued + {record} byte record > {max_bytes} max")]
    Full {
        record: u64,
        queued: u64,
        max_bytes: u64,
    },
    /// The record can never be appended: it is larger than `max_record_bytes` (plus its
    /// header) or than `max_bytes`. Nothing was written.
    #[error("record of {record} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { record: u64, max: u64 },
    /// A category longer than the format's `u16` length field. Nothing was written.
    #[error("category of {len} bytes exceeds the limit of {max} bytes", max = u16::MAX)]
    CategoryTooLong { len: usize },
    /// `commit` was given a position this spool has not read up to.
    #[error("cannot commit {requested}: nothing has been read past {read}")]
    InvalidPosition { requested: Position, read: Position },
    #[error("invalid spool options: {0}")]
    InvalidOptions(&'static str),
    /// Another process (or another `Spool` in this one) has the directory open.
    #[error("spool {dir} is in use by another process (lock file {dir}/lock is held)")]
    Locked { dir: PathBuf },
}

impl SpoolError {
    /// The file system has no room (`ENOSPC`) or the quota is used up (`EDQUOT`): a condition
    /// that passes once space is freed, unlike the other I/O errors. The spool is consistent
    /// after any such error (a failed append was cut back, a failed commit left the previous
    /// cursor), so the caller may hold what it was writing and retry later.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => scribe_fs::is_disk_full(source),
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `map_err` helper: `.map_err(io_err("open segment", &path))`.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::io(op, path, source)
}

/// The shared crash-safe steps (`scribe_fs`) fail with the step and path, as ours do.
impl From<scribe_fs::FsError> for SpoolError {
    fn from(e: scribe_fs::FsError) -> SpoolError {
        SpoolError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
