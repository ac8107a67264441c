//! How far back a tail begins: the newest lines within reach, found from the newest file back
//! (plain files scanned backwards from their end, `.gz` files counted whole).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::CHUNK;
use crate::layout::ArchiveFile;

/// Where the first file is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// At this byte offset (a line start) of a plain file.
    Offset(u64),
    /// After dropping this many lines.
    SkipLines(u64),
}

pub(super) enum Measure {
    /// The reach begins inside this file.
    Within(Entry),
    /// The whole file is within reach.
    Whole { lines: u64, bytes: u64 },
}

/// Whether the newest `lines`/`bytes` begin inside `f`.
pub(super) fn measure(f: &ArchiveFile, lines: u64, bytes: u64) -> io::Result<Measure> {
    if !f.compressed {
        let file = File::open(&f.path)?;
        let len = file.metadata()?.len();
        return scan_back(&file, len, lines, bytes);
    }
    let mut r = f.open()?;
    let mut buf = vec![0; CHUNK];
    let (mut count, mut total, mut last) = (0u64, 0u64, b'\n');
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        count += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        total += n as u64;
        last = buf[n - 1];
    }
    count += u64::from(last != b'\n');
    if count > lines {
        return Ok(Measure::Within(Entry::SkipLines(count - lines)));
    }
    Ok(Measure::Whole {
        lines: count,
        bytes: total,
    })
}

/// Scans a plain file backwards for the start of the `lines`-th line from its end, or the
/// line start where the last `bytes` bytes begin.
fn scan_back(file: &File, len: u64, lines: u64, bytes: u64) -> io::Result<Measure> {
    let mut buf = vec![0; CHUNK];
    // The final byte is left out: a `\n` there ends the newest line, it starts none.
    let mut end = len.saturating_sub(1);
    let mut count = 0u64;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        for i in memchr::memrchr_iter(b'\n', chunk) {
            let line_start = start + i as u64 + 1;
            count += 1;
            if count >= lines || len - line_start >= bytes {
                return Ok(Measure::Within(Entry::Offset(line_start)));
            }
        }
        end = start;
    }
    Ok(Measure::Whole {
        lines: count + u64::from(len > 0),
        bytes: len,
    })
}
