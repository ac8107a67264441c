//! Dead letters: messages the next hop can never accept (longer than it takes), kept on disk
//! rather than retried for ever — which would hold up every message behind them — or dropped.
//!
//! A dead-letter directory holds one file per category, named after the category, in the
//! archive's framing: each message followed by `\n` unless it ends with one. So a file replays
//! with `ship CATEGORY < FILE` (once the next hop takes such messages, or to another one),
//! reads with logq or any text tool, and, like an archive file, shows a message holding `\n`
//! as several lines.
//!
//! Files are only appended to. Each append is `fdatasync`ed (a new file's directory fsynced
//! too) before it returns, so a caller may then acknowledge the batch the message came in. A
//! crash in the middle of an append leaves a last line without its `\n`: the next append to
//! that file cuts it off first (that message was never acknowledged, so it comes again).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::Category;

/// Read size when looking back for the end of the last whole message.
const SCAN_CHUNK: u64 = 64 * 1024;

/// A failed dead-letter write: the step and the path.
#[derive(Debug, thiserror::Error)]
#[error("dead letter: {op} {path}: {source}")]
pub struct DeadLetterError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The shared crash-safe steps (`scribe_fs`) fail with the step and path, as ours do.
impl From<scribe_fs::FsError> for DeadLetterError {
    fn from(e: scribe_fs::FsError) -> DeadLetterError {
        DeadLetterError {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DeadLetterError + 'a {
    move |source| DeadLetterError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A dead-letter directory (created on the first append). Appends are blocking I/O, one at
/// a time per directory.
#[derive(Debug)]
pub struct DeadLetter {
    dir: PathBuf,
    /// Appends to one file must not interleave.
    appending: Mutex<()>,
}

impl DeadLetter {
    pub fn new(dir: impl Into<PathBuf>) -> DeadLetter {
        DeadLetter {
            dir: dir.into(),
            appending: Mutex::new(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `category`.
    pub fn path(&self, category: &Category) -> PathBuf {
        self.dir.join(category.as_str())
    }

    /// Appends `message` to its category's file and syncs it; returns the file's path.
    pub fn append(&self, category: &Category, message: &[u8]) -> Result<PathBuf, DeadLetterError> {
        let _one = self
            .appending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new_dir = !self.dir.is_dir();
        if new_dir {
            std::fs::create_dir_all(&self.dir).map_err(at("create", &self.dir))?;
            scribe_fs::sync_parent(&self.dir)?;
        }
        let path = self.path(category);
        let new_file = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(at("open", &path))?;
        cut_torn_tail(&file).map_err(at("cut torn tail of", &path))?;
        file.write_all(message).map_err(at("write", &path))?;
        if !message.ends_with(b"\n") {
            file.write_all(b"\n").map_err(at("write", &path))?;
        }
        file.sync_data().map_err(at("fdatasync", &path))?;
        if new_file {
            scribe_fs::sync_dir(&self.dir)?;
        }
        Ok(path)
    }
}

/// Cuts the file back to just after its last `\n`: every append ends with one, so anything
/// after it is a torn append.
fn cut_torn_tail(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = vec![0u8; SCAN_CHUNK.min(len) as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN_CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        tracing::warn!(
            cut = len - end,
            "dead-letter file ends in a torn append (a crash mid-write): cutting it off"
        );
        file.set_len(end)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> Category {
        s.parse().unwrap()
    }

    #[test]
    fn messages_are_appended_in_archive_framing_per_category() {
        let tmp = tempfile::tempdir().unwrap();
        let dl = DeadLetter::new(tmp.path().join("dead"));
        dl.append(&cat("a"), b"one\n").unwrap();
        let p = dl.append(&cat("a"), b"two").unwrap();
        dl.append(&cat("b"), b"\xff\x00raw\n").unwrap();
        assert_eq!(p, tmp.path().join("dead/a"));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\n");
        assert_eq!(std::fs::read(dl.path(&cat("b"))).unwrap(), b"\xff\x00raw\n");
    }

    #[test]
    fn a_torn_append_is_cut_before_the_next() {
        let tmp = tempfile::tempdir().unwrap();
        let dl = DeadLetter::new(tmp.path());
        let c = cat("c");
        dl.append(&c, b"whole\n").unwrap();
        // A crash mid-append: part of a long message, no newline.
        let torn = vec![b'x'; 200_000];
        std::fs::OpenOptions::new()
            .append(true)
            .open(dl.path(&c))
            .unwrap()
            .write_all(&torn)
            .unwrap();
        dl.append(&c, b"next\n").unwrap();
        assert_eq!(std::fs::read(dl.path(&c)).unwrap(), b"whole\nnext\n");
        // Nothing whole at all before the tear.
        std::fs::write(dl.path(&c), &torn).unwrap();
        dl.append(&c, b"only\n").unwrap();
        assert_eq!(std::fs::read(dl.path(&c)).unwrap(), b"only\n");
    }
}
