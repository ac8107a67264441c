//! The rotating category file writer.
//!
//! On-disk framing: each message is written as its bytes followed by one `\n`, unless the
//! message already ends in `\n`. So `cat f | ship c` (which sends each line with its newline)
//! reproduces `f`, and Scribe clients that send their own newlines are not doubled.
//!
//! Rotation: before writing a message, if the current file is not empty and the message would
//! push it past `max_size`, the writer moves to the next suffix. A message never straddles two
//! files; a single message larger than `max_size` gets a file of its own.
//!
//! Blocking I/O by design: callers run it on a blocking thread (scribed does, one writer per
//! category), which keeps the hot loop free of per-write async overhead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::category::Category;
use crate::layout;

/// Bytes gathered before a `write(2)`; bigger messages bypass the buffer.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rotate when the next message would take the file past this many bytes; 0 = never.
    pub max_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What one `write_batch` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub messages: u64,
    /// Bytes written to disk, framing newlines included.
    pub bytes: u64,
    pub rotations: u64,
}

/// Appends messages to `<data-dir>/<category>/<category>_NNNNN`, rotating by size and keeping
/// `<category>_current` pointing at the newest file.
pub struct RotatingWriter {
    dir: PathBuf,
    category: Category,
    opts: WriterOptions,
    file: File,
    path: PathBuf,
    suffix: u64,
    /// Bytes in the current file, including what sits in `buf`.
    size: u64,
    /// Where the batch being written began in the current file (for cutting back on error).
    batch_start: u64,
    buf: Vec<u8>,
}

impl RotatingWriter {
    /// Opens the category's newest file for appending (creating the directory and
    /// `<category>_00000` if there are none) and points `<category>_current` at it.
    pub fn open(
        data_dir: &Path,
        category: &Category,
        opts: WriterOptions,
    ) -> Result<Self, WriteError> {
        let dir = layout::category_dir(data_dir, category);
        std::fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let files = layout::list_files(data_dir, category).map_err(io_err("list", &dir))?;
        let suffix = files.last().map_or(0, |(s, _)| *s);
        let path = dir.join(layout::file_name(category, suffix));
        let file = open_append(&path)?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        let w = RotatingWriter {
            dir,
            category: category.clone(),
            opts,
            file,
            path,
            suffix,
            size,
            batch_start: size,
            buf: Vec::with_capacity(WRITE_BUFFER),
        };
        w.point_current_link()?;
        if files.is_empty() {
            sync_dir(&w.dir)?;
        }
        Ok(w)
    }

    /// Path of the file being written.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    pub fn current_suffix(&self) -> u64 {
        self.suffix
    }

    /// Bytes in the current file.
    pub fn current_size(&self) -> u64 {
        self.size
    }

    /// Writes every message, framed, and returns only after `write(2)` accepted all of them.
    ///
    /// On error, the current file is cut back to where this batch began in it, so a failed
    /// batch leaves no partial message behind. Messages that went to files closed by a
    /// rotation earlier in the batch stay (a retried batch may duplicate them).
    pub fn write_batch<'a, I>(&mut self, messages: I) -> Result<WriteStats, WriteError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut stats = WriteStats::default();
        let result = self.write_all_messages(messages, &mut stats);
        if result.is_err() {
            self.buf.clear();
            if self.file.set_len(self.batch_start).is_ok() {
                self.size = self.batch_start;
            } else if let Ok(m) = self.file.metadata() {
                self.size = m.len();
            }
        }
        result.map(|()| stats)
    }

    fn write_all_messages<'a, I>(
        &mut self,
        messages: I,
        stats: &mut WriteStats,
    ) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        self.batch_start = self.size;
        for msg in messages {
            let framed = msg.len() as u64 + u64::from(!msg.ends_with(b"\n"));
            if self.opts.max_size > 0 && self.size > 0 && self.size + framed > self.opts.max_size {
                self.rotate()?;
                self.batch_start = 0;
                stats.rotations += 1;
            }
            if msg.len() >= WRITE_BUFFER {
                self.flush_buf()?;
                self.file
                    .write_all(msg)
                    .map_err(io_err("write", &self.path))?;
            } else {
                if self.buf.len() + msg.len() + 1 > WRITE_BUFFER {
                    self.flush_buf()?;
                }
                self.buf.extend_from_slice(msg);
            }
            if framed > msg.len() as u64 {
                self.buf.push(b'\n');
            }
            self.size += framed;
            stats.messages += 1;
            stats.bytes += framed;
        }
        self.flush_buf()
    }

    fn flush_buf(&mut self) -> Result<(), WriteError> {
        if !self.buf.is_empty() {
            self.file
                .write_all(&self.buf)
                .map_err(io_err("write", &self.path))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// fsyncs the current file's data.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.flush_buf()?;
        self.file.sync_data().map_err(io_err("fsync", &self.path))
    }

    /// Closes the current file and starts the next suffix.
    pub fn rotate(&mut self) -> Result<(), WriteError> {
        self.flush_buf()?;
        let next = self.suffix + 1;
        let path = self.dir.join(layout::file_name(&self.category, next));
        let file = open_append(&path)?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        tracing::debug!(category = %self.category, from = %self.path.display(), to = %path.display(), "rotating");
        self.file = file;
        self.path = path;
        self.suffix = next;
        self.size = size;
        self.point_current_link()?;
        sync_dir(&self.dir)
    }

    /// Replaces `<category>_current` atomically: a new symlink under a temporary name, then
    /// `rename(2)` over the old one, so readers never see it missing.
    fn point_current_link(&self) -> Result<(), WriteError> {
        let link = self.dir.join(layout::current_link_name(&self.category));
        let tmp = self.dir.join(format!(
            ".{}.tmp",
            layout::current_link_name(&self.category)
        ));
        let target = layout::file_name(&self.category, self.suffix);
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

fn open_append(path: &Path) -> Result<File, WriteError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// fsyncs a directory so that a file created or renamed in it survives a power loss.
fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> Category {
        s.parse().unwrap()
    }

    fn read_all(dir: &Path, c: &Category) -> Vec<u8> {
        let mut out = Vec::new();
        for (_, p) in layout::list_files(dir, c).unwrap() {
            out.extend(std::fs::read(p).unwrap());
        }
        out
    }

    #[test]
    fn frames_messages_with_one_newline() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("t");
        let mut w = RotatingWriter::open(d.path(), &c, WriterOptions { max_size: 0 }).unwrap();
        let msgs: [&[u8]; 4] = [b"a", b"b\n", b"", b"\xff\x00c"];
        let s = w.write_batch(msgs).unwrap();
        assert_eq!(read_all(d.path(), &c), b"a\nb\n\n\xff\x00c\n");
        assert_eq!(s.messages, 4);
        assert_eq!(s.bytes, 9);
        assert_eq!(
            std::fs::read_link(d.path().join("t/t_current")).unwrap(),
            Path::new("t_00000")
        );
    }

    #[test]
    fn rotates_before_a_message_would_exceed_max_size() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("t");
        let mut w = RotatingWriter::open(d.path(), &c, WriterOptions { max_size: 10 }).unwrap();
        let big = vec![b'x'; 25];
        let msgs: Vec<&[u8]> = vec![b"1234", b"5678", b"90", &big, b"a"];
        let s = w.write_batch(msgs).unwrap();
        let files = layout::list_files(d.path(), &c).unwrap();
        let sizes: Vec<u64> = files
            .iter()
            .map(|(_, p)| std::fs::metadata(p).unwrap().len())
            .collect();
        // "1234\n5678\n" = 10 fills file 0; "90\n" starts file 1; the 26-byte message gets file 2
        // alone; "a\n" goes to file 3.
        assert_eq!(sizes, vec![10, 3, 26, 2]);
        assert_eq!(s.rotations, 3);
        assert_eq!(
            std::fs::read_link(d.path().join("t/t_current")).unwrap(),
            Path::new("t_00003")
        );
    }

    #[test]
    fn reopen_appends_to_newest_file() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("t");
        let opts = WriterOptions { max_size: 100 };
        {
            let mut w = RotatingWriter::open(d.path(), &c, opts.clone()).unwrap();
            w.write_batch([&b"one"[..]]).unwrap();
            w.rotate().unwrap();
            w.write_batch([&b"two"[..]]).unwrap();
        }
        let mut w = RotatingWriter::open(d.path(), &c, opts).unwrap();
        assert_eq!(w.current_suffix(), 1);
        assert_eq!(w.current_size(), 4);
        w.write_batch([&b"three"[..]]).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("t/t_00001")).unwrap(),
            b"two\nthree\n"
        );
    }

    #[test]
    fn large_messages_bypass_the_buffer_in_order() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("t");
        let mut w = RotatingWriter::open(d.path(), &c, WriterOptions { max_size: 0 }).unwrap();
        let big = vec![b'B'; WRITE_BUFFER * 2];
        let msgs: Vec<&[u8]> = vec![b"small", &big, b"tail"];
        w.write_batch(msgs).unwrap();
        let mut want = b"small\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\ntail\n");
        assert_eq!(read_all(d.path(), &c), want);
    }
}
