//! The crate's error type. Every I/O failure names the operation and the path it concerned,
//! so a log line alone says what went wrong where.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A `WriterOptions` value out of range (checked by `RotatingWriter::open`).
    #[error("invalid writer option: {0}")]
    InvalidOptions(String),
}

/// `map_err` helper: wraps an `io::Error` with the operation and path.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The shared crash-safe steps (`scribe_fs`) fail with the step and path, as ours do.
impl From<scribe_fs::FsError> for WriteError {
    fn from(e: scribe_fs::FsError) -> WriteError {
        WriteError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}
