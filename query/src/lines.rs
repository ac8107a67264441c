//! Splitting a byte stream into lines: large reads into one reusable buffer, `memchr` for the
//! newlines, lines handed out as borrowed slices (no per-line allocation).
//!
//! A line is the bytes before `\n`, without it; a final line without a trailing newline is
//! still a line (as for grep, cut and awk). A line longer than the buffer grows the buffer, up
//! to [`max_line`] (`--max-line`): one corrupt file without newlines must give an error, not
//! take all the memory of the machine.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default `--max-line`: far above any real log line, far below a machine's memory.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024 * 1024;

/// The longest line any reader buffers. A process-wide setting (set once from the command
/// line before any input is read) rather than a parameter, because every reader of the crate
/// (line splitter, time filter, grep searcher) must apply the same limit.
static MAX_LINE: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_LINE);

pub fn set_max_line(n: usize) {
    MAX_LINE.store(n.max(1), Ordering::Relaxed);
}

pub fn max_line() -> usize {
    MAX_LINE.load(Ordering::Relaxed)
}

/// The byte that ends a line: `\n`, or NUL for `cut -z`. Process-wide for the same reason
/// as [`max_line`].
static TERMINATOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(b'\n');

pub fn set_terminator(b: u8) {
    TERMINATOR.store(b, Ordering::Relaxed);
}

pub fn terminator() -> u8 {
    TERMINATOR.load(Ordering::Relaxed)
}

/// The error for a line over the limit (callers add which input).
pub fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "a line is longer than {} bytes (raise --max-line to read it)",
            max_line()
        ),
    )
}

/// Initial buffer: large enough that read(2) and memchr dominate, small enough for caches.
const BUF: usize = 1024 * 1024;

/// Calls `f` for each line of `r` until it returns `Break`. Returns the number of bytes read.
pub fn for_each_line<R: Read>(
    mut r: R,
    mut f: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<u64> {
    let eol = terminator();
    let mut buf = vec![0u8; BUF];
    // buf[..len] holds unprocessed bytes; buf[..start] of them are a partial line carried over.
    let mut len = 0usize;
    let mut total = 0u64;
    loop {
        if len > max_line() {
            return Err(too_long());
        }
        if len == buf.len() {
            let grown = (buf.len() * 2).min(max_line() + 1);
            buf.resize(grown, 0);
        }
        let n = match r.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if n == 0 {
            if len > 0 {
                let _ = f(&buf[..len]);
            }
            return Ok(total);
        }
        let scan_from = len;
        len += n;
        // Process every complete line in the buffer; only the final newline needs finding
        // from the back, the rest are found by memchr_iter front to back.
        let Some(last_nl) = memchr::memrchr(eol, &buf[scan_from..len]).map(|i| i + scan_from)
        else {
            continue;
        };
        let mut start = 0;
        for nl in memchr::memchr_iter(eol, &buf[..=last_nl]) {
            if f(&buf[start..nl]).is_break() {
                return Ok(total);
            }
            start = nl + 1;
        }
        buf.copy_within(last_nl + 1..len, 0);
        len -= last_nl + 1;
    }
}

/// Like [`for_each_line`], over a slice already in memory.
pub fn for_each_line_in(data: &[u8], mut f: impl FnMut(&[u8]) -> ControlFlow<()>) {
    let mut start = 0;
    for nl in memchr::memchr_iter(terminator(), data) {
        if f(&data[start..nl]).is_break() {
            return;
        }
        start = nl + 1;
    }
    if start < data.len() {
        let _ = f(&data[start..]);
    }
}

/// awk's default field splitting: fields are separated by runs of spaces and tabs; leading
/// and trailing blanks do not make empty fields.
pub fn blank_split(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t')
        .filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for_each_line(data, |l| {
            v.push(l.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
        v
    }

    #[test]
    fn splits_with_and_without_trailing_newline() {
        assert_eq!(collect(b"a\nb\n"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            collect(b"a\n\nb"),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert!(collect(b"").is_empty());
    }

    #[test]
    fn lines_over_the_limit_are_an_error() {
        // The limit is process-wide: the other tests' lines stay far below this one.
        set_max_line(BUF * 5);
        let mut data = vec![b'x'; BUF * 6];
        data.extend_from_slice(b"\nshort\n");
        let e = for_each_line(data.as_slice(), |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("--max-line"), "{e}");
        set_max_line(DEFAULT_MAX_LINE);
    }

    #[test]
    fn lines_longer_than_the_buffer() {
        let mut data = vec![b'x'; BUF * 3 + 7];
        data.push(b'\n');
        data.extend_from_slice(b"tail");
        let v = collect(&data);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len(), BUF * 3 + 7);
        assert_eq!(v[1], b"tail");
    }
}
