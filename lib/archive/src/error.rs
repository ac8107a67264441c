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

/// Removes a file; one that is already gone counts as removed (cleanup paths race benignly
/// with each other and with the compressor).
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, WriteError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// fsyncs a directory so that a file created, renamed or removed in it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}
