//! Reads a byte stream on a dedicated thread and hands over chunks that end on a line boundary.
//!
//! Lines are bytes: no UTF-8 check, `\r` and NUL are kept. The reader never holds more than one
//! partial line of at most `max_line` bytes plus one read buffer, so a stream with no newlines
//! cannot make it grow without bound.

use std::io::{self, Read};
use std::sync::mpsc as std_mpsc;
use std::thread;

use bytes::Bytes;
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
    /// The line after the last one handed over has no newline within `max` bytes.
    #[error("a line is longer than the maximum of {max} bytes")]
    LineTooLong { max: usize },
}

/// Starts the reader thread. Chunks arrive on the returned channel; the thread's result (an
/// error, or the end of the input) is returned by its join handle. Lines are not counted
/// here (the batcher counts them; a [`ReadError::LineTooLong`] is the line after its last).
pub fn spawn_reader<R: Read + Send + 'static>(
    input: R,
    max_line: usize,
    capacity: usize,
) -> (
    mpsc::Receiver<Chunk>,
    thread::JoinHandle<Result<(), ReadError>>,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let handle = thread::Builder::new()
        .name("ship-reader".into())
        .spawn(move || read_lines(input, max_line, &tx))
        .expect("spawning the reader thread");
    (rx, handle)
}

/// Read buffers, reused: a chunk's buffer comes back when the last handle to the chunk is
/// dropped, so reading neither zero-fills nor page-faults fresh memory for every megabyte
/// (both showed in profiles). At most the chunks in flight plus one exist, as before.
struct Pool {
    back: std_mpsc::Receiver<Vec<u8>>,
    home: std_mpsc::Sender<Vec<u8>>,
}

/// A chunk's bytes: `buf[..len]`, returned to its pool when dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    home: std_mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // The reader may be gone: then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

impl Pool {
    fn new() -> Pool {
        let (home, back) = std_mpsc::channel();
        Pool { back, home }
    }

    /// A buffer with room for `keep` carried bytes plus one read.
    fn take(&self, keep: usize) -> Vec<u8> {
        let mut buf = self.back.try_recv().unwrap_or_default();
        if buf.len() < keep + READ_SIZE {
            buf.resize(keep + READ_SIZE, 0);
        }
        buf
    }

    fn chunk(&self, buf: Vec<u8>, len: usize) -> Chunk {
        Chunk {
            data: Bytes::from_owner(Pooled {
                buf,
                len,
                home: self.home.clone(),
            }),
        }
    }
}

fn read_lines<R: Read>(
    mut input: R,
    max_line: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), ReadError> {
    let pool = Pool::new();
    let mut buf = pool.take(0);
    // `buf[..filled]`: the start of a line whose newline has not been read yet.
    let mut filled = 0;
    loop {
        if buf.len() < filled + READ_SIZE {
            buf.resize(filled + READ_SIZE, 0);
        }
        let n = match input.read(&mut buf[filled..filled + READ_SIZE]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if filled > 0 {
                check_partial(filled, max_line)?;
                let _ = tx.blocking_send(pool.chunk(buf, filled));
            }
            return Ok(());
        }
        let end = filled + n;
        match memchr::memrchr(b'\n', &buf[filled..end]) {
            Some(i) => {
                // Whole lines go; the partial line after them starts the next buffer.
                let whole = filled + i + 1;
                let mut next = pool.take(end - whole);
                next[..end - whole].copy_from_slice(&buf[whole..end]);
                filled = end - whole;
                let full = std::mem::replace(&mut buf, next);
                if tx.blocking_send(pool.chunk(full, whole)).is_err() {
                    // The consumer stopped (it found an error); it reports why.
                    return Ok(());
                }
            }
            None => {
                filled = end;
                check_partial(filled, max_line)?;
            }
        }
    }
}

/// A line with no newline yet must not already be longer than allowed.
fn check_partial(len: usize, max_line: usize) -> Result<(), ReadError> {
    if len > max_line {
        return Err(ReadError::LineTooLong { max: max_line });
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

    fn collect(input: &'static [u8], max: usize) -> (Vec<Vec<u8>>, Result<(), ReadError>) {
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
        n.unwrap();
    }

    #[test]
    fn overlong_unterminated_line_is_an_error_naming_it() {
        let (_, r) = collect(b"ok\nxxxxxxxxxxxx", 5);
        assert!(matches!(r, Err(ReadError::LineTooLong { max: 5 })));
    }

    /// Reads in pieces of uneven sizes, some far below and some above a read buffer.
    struct Uneven {
        data: Vec<u8>,
        at: usize,
        rng: fastrand::Rng,
    }

    impl Read for Uneven {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let want = self.rng.usize(1..=3 * READ_SIZE / 2).min(out.len());
            let n = want.min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn reused_buffers_hand_over_every_byte_once_in_order() {
        let mut rng = fastrand::Rng::with_seed(22);
        let mut data = Vec::new();
        let mut want = Vec::new();
        while data.len() < 12 * READ_SIZE {
            // Mostly short lines, now and then one longer than a read.
            let len = if rng.u8(..) == 0 {
                rng.usize(READ_SIZE..2 * READ_SIZE)
            } else {
                rng.usize(0..300)
            };
            let mut line: Vec<u8> = (0..len).map(|_| rng.u8(..).max(1) & 0x7f | 1).collect();
            line.retain(|&b| b != b'\n');
            line.push(b'\n');
            data.extend_from_slice(&line);
            want.push(line);
        }
        data.extend_from_slice(b"tail");
        want.push(b"tail".to_vec());
        let input = Uneven {
            data,
            at: 0,
            rng: fastrand::Rng::with_seed(7),
        };
        let (mut rx, h) = spawn_reader(input, 4 * READ_SIZE, 2);
        let mut got = Vec::new();
        let mut held = Vec::new();
        while let Some(c) = rx.blocking_recv() {
            assert!(c.data.ends_with(b"\n") || c.data.ends_with(b"tail"));
            got.extend(split_lines(&c.data).map(<[u8]>::to_vec));
            // Keep a few chunks alive a while: their buffers must not be reused meanwhile.
            held.push(c);
            if held.len() > 3 {
                held.remove(0);
            }
        }
        h.join().unwrap().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "lines differ");
    }

    #[test]
    fn empty_input_has_no_lines() {
        let (lines, n) = collect(b"", 10);
        assert!(lines.is_empty());
        n.unwrap();
    }
}
