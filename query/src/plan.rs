//! Turning inputs into tasks for the workers: one task per input, except that a large plain
//! file may be split into byte ranges that start and end on line boundaries, so that even a
//! single big file keeps both cores busy (when the operation allows it).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use anyhow::{Context, Result};

use crate::input::{Input, InputKind};

/// Files of at least twice this size are split into pieces of about this size.
const PIECE: u64 = 32 * 1024 * 1024;

/// The piece size: [`PIECE`], or `LOGQ_PIECE_BYTES` (a testing knob: the tests use small
/// pieces to check that split files give the same output as whole ones).
fn piece() -> u64 {
    std::env::var("LOGQ_PIECE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(PIECE)
}

#[derive(Debug, Clone)]
pub struct Task {
    pub input: usize,
    /// Byte range `[start, end)` of a plain file; `None` for the whole input.
    pub range: Option<(u64, u64)>,
}

/// One task per input, or (if `split`) several per large plain file.
pub fn plan(inputs: &[Input], split: bool) -> Result<Vec<Task>> {
    let piece = piece();
    let mut tasks = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let whole = Task {
            input: i,
            range: None,
        };
        let splittable = split
            && match &input.kind {
                InputKind::Stdin | InputKind::Follow(_) | InputKind::Merge(_) => false,
                InputKind::Object(_) => false,
                InputKind::Path(_) => true,
                // The newest file of an archive is being appended to: read it as a stream.
                InputKind::Archive(a) => !a.compressed && !a.newest,
            };
        if !splittable || input.disk_len() < 2 * piece || input.is_gzip().unwrap_or(true) {
            tasks.push(whole);
            continue;
        }
        let path = input.path().expect("splittable inputs are files");
        let mut f = File::open(path).with_context(|| format!("opening {}", input.name))?;
        let len = f.metadata()?.len();
        let mut start = 0u64;
        while start < len {
            let end = if len - start < 2 * piece {
                len
            } else {
                next_line_start(&mut f, start + piece, len)
                    .with_context(|| format!("reading {}", input.name))?
            };
            tasks.push(Task {
                input: i,
                range: Some((start, end)),
            });
            start = end;
        }
    }
    Ok(tasks)
}

/// The offset just after the first `\n` at or after `from` (or `len`).
fn next_line_start(f: &mut File, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    f.seek(SeekFrom::Start(from))?;
    while pos < len {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(len)
}

/// Files smaller than this are read, not mapped: mapping costs more than it saves there.
const MIN_MAP: u64 = 1024 * 1024;

/// A task's bytes mapped into memory.
pub struct Mapped {
    map: memmap2::Mmap,
    start: usize,
    end: usize,
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// Maps a task's bytes if that is safe and worth it: plain files of some size that nothing
/// appends to or truncates. The newest file of a category archive is excluded (a writer may
/// cut it back after a failed write, and reading a truncated mapping is SIGBUS), as are gzip
/// files and stdin.
pub fn map(inputs: &[Input], task: &Task) -> Result<Option<Mapped>> {
    let input = &inputs[task.input];
    let mappable = match &input.kind {
        InputKind::Stdin | InputKind::Follow(_) | InputKind::Merge(_) => false,
        InputKind::Object(_) => false,
        InputKind::Path(_) => true,
        InputKind::Archive(a) => !a.compressed && !a.newest,
    };
    if !mappable || input.disk_len() < MIN_MAP || input.is_gzip().unwrap_or(true) {
        return Ok(None);
    }
    let path = input.path().expect("mappable inputs are files");
    if recently_modified(path) {
        tracing::debug!(input = %input.name, "not mapped: written to in the last seconds");
        return Ok(None);
    }
    let f = File::open(path).with_context(|| format!("opening {}", input.name))?;
    // SAFETY: the mapping is only read. Another process truncating the file while we read it
    // would make reads past the new end fault (SIGBUS), which is why files a writer may still
    // change (the archive's newest file) are read with read(2) instead; ripgrep makes the same
    // trade for single files given on the command line.
    let map =
        unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("mapping {}", input.name))?;
    let len = map.len();
    let (start, end) = match task.range {
        None => (0, len),
        Some((s, e)) => ((s as usize).min(len), (e as usize).min(len)),
    };
    Ok(Some(Mapped { map, start, end }))
}

/// How recently a file must have been written to for logq to read it rather than map it.
const LIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a file looks live (modified within [`LIVE_WINDOW`]): a file under /var/log that a
/// daemon is writing is the one a `copytruncate` rotation may cut while we read it, and a
/// truncated mapping is SIGBUS. An unknown mtime counts as live.
fn recently_modified(path: &std::path::Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age < LIVE_WINDOW)
}

/// Opens a task's bytes.
pub fn open(inputs: &[Input], task: &Task) -> Result<Box<dyn Read + Send>> {
    let input = &inputs[task.input];
    match task.range {
        None => input.open(),
        Some((start, end)) => {
            let path = input.path().expect("ranges are planned for files only");
            let mut f = File::open(path).with_context(|| format!("opening {}", input.name))?;
            f.seek(SeekFrom::Start(start))?;
            Ok(Box::new(f.take(end - start)))
        }
    }
}
