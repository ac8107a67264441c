//! Reads a byte stream on a dedicated thread and hands over chunks that end on a line boundary.
//!
//! Lines are bytes: no UTF-8 check, `\r` and NUL are kept. The reader never holds more than one
//! partial line of at most `max_line` bytes plus one read buffer, so a stream with no newlines
//! cannot make it grow without bound.

use std::io::{self, Read};
use std::thread;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Bytes asked of each `read(2)`.
const READ_SIZE: usize = 1024 * 1024;

/// Whole lines, each ending in `\n` except possibly the very last line of the stream.
pub struct Chunk {
    pub data: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
    #[error("line {line} is longer than the maximum of {max} bytes")]
    LineTooLong { line: u64, max: usize },
}

/// Starts the reader thread. Chunks arrive on the returned channel; the thread's result (an
/// error, or the number of lines read) is returned by its join handle.
pub fn spawn_reader<R: Read + Send + 'static>(
    input: R,
    max_line: usize,
    capacity: usize,
) -> (
    mpsc::Receiver<Chunk>,
    thread::JoinHandle<Result<u64, ReadError>>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let handle = thread::Builder::new()
        .name("ship-reader".into())
        .spawn(move || read_lines(input, max_line, &tx))
        .expect("spawning the reader thread");
    (rx, handle)
}

fn read_lines<R: Read>(
    mut input: R,
    max_line: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<u64, ReadError> {
    let mut buf = BytesMut::with_capacity(READ_SIZE * 2);
    let mut lines: u64 = 0;
    loop {
        let start = buf.len();
        buf.resize(start + READ_SIZE, 0);
        let n = match input.read(&mut buf[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        buf.truncate(start + n);
        if n == 0 {
            if !buf.is_empty() {
                check_partial(&buf, lines, max_line)?;
                lines += 1;
                let _ = tx.blocking_send(Chunk { data: buf.freeze() });
            }
            return Ok(lines);
        }
        match memchr::memrchr(b'\n', &buf[start..]) {
            Some(i) => {
                let whole = buf.split_to(start + i + 1).freeze();
                lines += memchr::memchr_iter(b'\n', &whole).count() as u64;
                if tx.blocking_send(Chunk { data: whole }).is_err() {
                    // The consumer stopped (it found an error); it reports why.
                    return Ok(lines);
                }
            }
            None => check_partial(&buf, lines, max_line)?,
        }
        if buf.capacity() - buf.len() < READ_SIZE {
            buf.reserve(READ_SIZE);
        }
    }
}

/// A line with no newline yet must not already be longer than allowed.
fn check_partial(buf: &[u8], lines_before: u64, max_line: usize) -> Result<(), ReadError> {
    if buf.len() > max_line {
        return Err(ReadError::LineTooLong {
            line: lines_before + 1,
            max: max_line,
        });
    }
    Ok(())
}

/// Splits a chunk into lines, each keeping its `\n` (the last may have none). Plain slices:
/// the lines are copied into a batch right away, so refcounted handles would only add two
/// atomic operations per line.
pub fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', data);
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let end = ends.next().map_or(data.len(), |i| i + 1);
        let line = &data[start..end];
        start = end;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &'static [u8], max: usize) -> (Vec<Vec<u8>>, Result<u64, ReadError>) {
        let (mut rx, h) = spawn_reader(input, max, 4);
        let mut out = Vec::new();
        while let Some(c) = rx.blocking_recv() {
            out.extend(split_lines(&c.data).map(<[u8]>::to_vec));
        }
        (out, h.join().unwrap())
    }

    #[test]
    fn lines_keep_bytes_and_newlines() {
        let (lines, n) = collect(b"a\r\n\xff\x00b\n\nlast", 100);
        assert_eq!(lines, vec![&b"a\r\n"[..], b"\xff\x00b\n", b"\n", b"last"]);
        assert_eq!(n.unwrap(), 4);
    }

    #[test]
    fn overlong_unterminated_line_is_an_error_naming_it() {
        let (_, r) = collect(b"ok\nxxxxxxxxxxxx", 5);
        assert!(matches!(r, Err(ReadError::LineTooLong { line: 2, max: 5 })));
    }

    #[test]
    fn empty_input_has_no_lines() {
        let (lines, n) = collect(b"", 10);
        assert!(lines.is_empty());
        assert_eq!(n.unwrap(), 0);
    }
}
