//! The follower's error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::identity::FileId;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// An I/O operation failed; `op` says which (e.g. "read") and `path` on what.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The watched path exists but is not a regular file (a directory, a FIFO, ...).
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    /// The positions file does not parse or fails its checksum. Nothing was loaded: the
    /// caller decides between refusing to start and starting without checkpoints.
    #[error("positions file {path}: line {line}: {reason}")]
    CheckpointFormat {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
    /// An include or exclude glob does not parse.
    #[error("bad pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    /// Change notifications could not be set up (the caller falls back to polling).
    #[error("change notifications: {0}")]
    Notify(String),
    /// `commit` was given an offset past what was read from that file: a caller bug.
    #[error("cannot commit offset {offset} of file {file_id}: only {read} bytes were read")]
    InvalidCommit {
        file_id: FileId,
        offset: u64,
        read: u64,
    },
}

impl FollowError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> FollowError {
        FollowError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A crash-safe write's failure keeps its step and path.
impl From<scribe_fs::FsError> for FollowError {
    fn from(e: scribe_fs::FsError) -> FollowError {
        FollowError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
