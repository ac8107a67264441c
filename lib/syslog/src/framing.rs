//! RFC 6587 framing of syslog over a byte stream (TCP, later TLS per RFC 5425), with a bound
//! on every frame.
//!
//! The framing is chosen once per connection, from its first byte: a digit `1`-`9` means
//! octet counting (`MSG-LEN SP SYSLOG-MSG`, what rsyslog's `omfwd` sends with
//! `TCP_Framing="octet-counted"` and `logger --octet-count`); anything else means
//! non-transparent framing, where a frame ends at LF or NUL (a CR before the LF is dropped).
//!
//! Bounds: a frame longer than `max_frame` is never held. A non-transparent one is skipped up
//! to its terminator (memory stays at one read buffer) and reported as
//! [`Frame::Oversize`]; an octet-counted one whose count is over the limit is skipped by its
//! count, unless the count has more than [`MAX_COUNT_DIGITS`] digits or is over
//! [`MAX_SKIP`], which no sender means: that is a [`FramingError`] and the connection ends.

use bytes::{Buf, Bytes, BytesMut};

/// Most digits in an octet count (counts up to 999,999,999 bytes).
pub const MAX_COUNT_DIGITS: usize = 9;

/// Largest oversize octet-counted frame that is skipped rather than ending the connection.
pub const MAX_SKIP: u64 = 1 << 30;

/// How a connection frames its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 3.4.1: `MSG-LEN SP SYSLOG-MSG`.
    OctetCounting,
    /// RFC 6587 3.4.2: each message ends at LF (or NUL).
    NonTransparent,
}

/// One result of [`Deframer::next_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message, without its framing.
    Message(Bytes),
    /// A message longer than the limit was skipped; its length (as far as it is known: for a
    /// non-transparent frame, the bytes skipped).
    Oversize(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("octet count {digits:?}... is not a number of at most {MAX_COUNT_DIGITS} digits followed by a space")]
    BadCount { digits: String },
    #[error("octet count {0} is over the {MAX_SKIP}-byte bound on skipped frames")]
    CountTooLarge(u64),
}

/// Splits one connection's bytes into frames. Feed it reads with [`Deframer::buffer`], then
/// take frames with [`Deframer::next_frame`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Deframer {
    max_frame: usize,
    framing: Option<Framing>,
    buf: BytesMut,
    /// Bytes of an oversize frame still to drop (octet counting), or `Some(n)` while skipping
    /// a non-transparent frame to its terminator (n dropped so far).
    skipping: Skip,
    /// Bytes of `buf` already searched for a terminator (non-transparent).
    scanned: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    /// Octet counting: (bytes left to drop, the frame's length).
    Count(u64, u64),
    /// Non-transparent: bytes dropped so far.
    ToTerminator(u64),
}

impl Deframer {
    pub fn new(max_frame: usize) -> Deframer {
        Deframer {
            max_frame: max_frame.max(1),
            framing: None,
            buf: BytesMut::with_capacity(8192),
            skipping: Skip::None,
            scanned: 0,
        }
    }

    /// The framing this connection uses, once its first byte has been seen.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Where the next read goes: append to this buffer (it never needs to grow past about
    /// `max_frame` plus one read).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered and not yet framed (a partial frame at the end of a stream).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// What is left when the stream ends: a non-transparent message whose terminator never
    /// came (a sender that closes right after its last message) is still a message; a partial
    /// octet-counted frame is not (`None`; [`Self::pending`] says how much was cut).
    pub fn finish(&mut self) -> Option<Bytes> {
        let complete = self.framing == Some(Framing::NonTransparent)
            && self.skipping == Skip::None
            && !self.buf.is_empty()
            && self.buf.len() <= self.max_frame;
        if !complete {
            return None;
        }
        self.scanned = 0;
        let mut frame = self.buf.split();
        if frame.last() == Some(&b'\r') {
            frame.truncate(frame.len() - 1);
        }
        Some(frame.freeze())
    }

    /// The next complete frame in the buffer, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            if let Some(done) = self.skip() {
                return Ok(Some(done));
            }
            if self.skipping != Skip::None || self.buf.is_empty() {
                return Ok(None);
            }
            let framing = *self.framing.get_or_insert(match self.buf[0] {
                b'1'..=b'9' => Framing::OctetCounting,
                _ => Framing::NonTransparent,
            });
            let frame = match framing {
                Framing::OctetCounting => {
                    // Some senders end octet-counted frames with a newline as well.
                    let blank = self
                        .buf
                        .iter()
                        .take_while(|b| b"\n\r\0 ".contains(b))
                        .count();
                    self.buf.advance(blank);
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    self.octet_counted()?
                }
                Framing::NonTransparent => self.non_transparent(),
            };
            match frame {
                // An empty line between messages is no message.
                Some(Frame::Message(m)) if m.is_empty() => continue,
                Some(f) => return Ok(Some(f)),
                None if self.skipping != Skip::None => continue,
                None => return Ok(None),
            }
        }
    }

    /// Drops buffered bytes of an oversize frame; the report once it is all dropped.
    fn skip(&mut self) -> Option<Frame> {
        match self.skipping {
            Skip::None => None,
            Skip::Count(left, len) => {
                let n = (self.buf.len() as u64).min(left);
                self.buf.advance(n as usize);
                if n == left {
                    self.skipping = Skip::None;
                    Some(Frame::Oversize(len))
                } else {
                    self.skipping = Skip::Count(left - n, len);
                    None
                }
            }
            Skip::ToTerminator(dropped) => match memchr::memchr2(b'\n', 0, &self.buf) {
                Some(at) => {
                    self.buf.advance(at + 1);
                    self.skipping = Skip::None;
                    Some(Frame::Oversize(dropped + at as u64))
                }
                None => {
                    let n = self.buf.len();
                    self.buf.clear();
                    self.skipping = Skip::ToTerminator(dropped + n as u64);
                    None
                }
            },
        }
    }

    fn octet_counted(&mut self) -> Result<Option<Frame>, FramingError> {
        let digits = self
            .buf
            .iter()
            .take(MAX_COUNT_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let bad = |buf: &BytesMut| FramingError::BadCount {
            digits: String::from_utf8_lossy(&buf[..buf.len().min(MAX_COUNT_DIGITS + 2)])
                .into_owned(),
        };
        if digits > MAX_COUNT_DIGITS {
            // Still say how large it claimed to be when that is readable.
            let all = self.buf.iter().take(20).take_while(|b| b.is_ascii_digit());
            let text: String = all.map(|&b| b as char).collect();
            return Err(match text.parse::<u64>() {
                Ok(n) if n > MAX_SKIP => FramingError::CountTooLarge(n),
                _ => bad(&self.buf),
            });
        }
        if digits == self.buf.len() {
            return Ok(None); // the count goes on in the next read
        }
        if digits == 0 || self.buf[digits] != b' ' || self.buf[0] == b'0' {
            return Err(bad(&self.buf));
        }
        // At most nine digits: fits.
        let len: u64 = std::str::from_utf8(&self.buf[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&self.buf))?;
        if len > self.max_frame as u64 {
            if len > MAX_SKIP {
                return Err(FramingError::CountTooLarge(len));
            }
            self.buf.advance(digits + 1);
            self.skipping = Skip::Count(len, len);
            return Ok(None);
        }
        let len = len as usize;
        if self.buf.len() < digits + 1 + len {
            self.buf.reserve(digits + 1 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(digits + 1);
        Ok(Some(Frame::Message(self.buf.split_to(len).freeze())))
    }

    fn non_transparent(&mut self) -> Option<Frame> {
        let from = self.scanned.min(self.buf.len());
        match memchr::memchr2(b'\n', 0, &self.buf[from..]) {
            Some(at) => {
                let end = from + at;
                self.scanned = 0;
                if end > self.max_frame {
                    self.buf.advance(end + 1);
                    return Some(Frame::Oversize(end as u64));
                }
                let mut frame = self.buf.split_to(end + 1);
                frame.truncate(end);
                if frame.last() == Some(&b'\r') {
                    frame.truncate(end - 1);
                }
                Some(Frame::Message(frame.freeze()))
            }
            None if self.buf.len() > self.max_frame => {
                let n = self.buf.len();
                self.buf.clear();
                self.scanned = 0;
                self.skipping = Skip::ToTerminator(n as u64);
                None
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }
}

/// A datagram's message: one datagram is one message (RFC 5426); a trailing LF, CRLF or NUL
/// some senders add is not part of it.
pub fn datagram(mut d: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\0' | b'\r'] = d {
        d = rest;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, input: &[u8], chunk: usize) -> (Vec<Frame>, Option<FramingError>) {
        let mut d = Deframer::new(max);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            d.buffer().extend_from_slice(c);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
            assert!(
                d.buffer().capacity() <= 2 * max + 8192 + chunk,
                "buffer grew"
            );
        }
        (out, None)
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn octet_counting_in_any_chunking() {
        let input = b"5 <13>a12 <13>1 - x y\n\n3 abc";
        for chunk in 1..input.len() {
            let (f, e) = frames(100, input, chunk);
            assert_eq!(e, None);
            assert_eq!(f, vec![msg("<13>a"), msg("<13>1 - x y\n"), msg("abc")]);
        }
    }

    #[test]
    fn non_transparent_lf_crlf_nul() {
        let input = b"<13>one\n<13>two\r\n\n<13>three\0<13>four\n";
        for chunk in 1..input.len() {
            let (f, e) = frames(100, input, chunk);
            assert_eq!(e, None);
            assert_eq!(
                f,
                vec![
                    msg("<13>one"),
                    msg("<13>two"),
                    msg("<13>three"),
                    msg("<13>four")
                ]
            );
        }
    }

    #[test]
    fn oversize_non_transparent_is_skipped_in_bounded_memory() {
        let mut input = b"<13>ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10 << 20));
        input.extend_from_slice(b"\n<13>after\n");
        let (f, e) = frames(1024, &input, 65536);
        assert_eq!(e, None);
        assert_eq!(
            f,
            vec![msg("<13>ok"), Frame::Oversize(10 << 20), msg("<13>after")]
        );
    }

    #[test]
    fn oversize_octet_count_is_skipped() {
        let mut input = b"2000 ".to_vec();
        input.extend(std::iter::repeat_n(b'y', 2000));
        input.extend_from_slice(b"2 ok");
        let (f, e) = frames(1024, &input, 100);
        assert_eq!(e, None);
        assert_eq!(f, vec![Frame::Oversize(2000), msg("ok")]);
    }

    #[test]
    fn absurd_or_malformed_counts_end_the_connection() {
        let (_, e) = frames(1024, b"99999999999 <13>x", 4);
        assert_eq!(e, Some(FramingError::CountTooLarge(99_999_999_999)));
        let (f, e) = frames(1024, b"3 abc4x <13>", 64);
        assert_eq!(f, vec![msg("abc")]);
        assert!(matches!(e, Some(FramingError::BadCount { .. })));
        let (_, e) = frames(1024, b"99999999999999999999999999 x", 64);
        assert!(matches!(e, Some(FramingError::BadCount { .. })));
    }

    #[test]
    fn a_last_line_without_terminator_is_kept() {
        let mut d = Deframer::new(100);
        d.buffer().extend_from_slice(b"<13>a\n<13>b");
        assert_eq!(d.next_frame(), Ok(Some(msg("<13>a"))));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Some(Bytes::from_static(b"<13>b")));
        let mut d = Deframer::new(100);
        d.buffer().extend_from_slice(b"10 <13>b");
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), None);
        assert_eq!(d.pending(), 8);
    }

    #[test]
    fn random_streams_never_panic_and_stay_bounded() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let alphabet = b"0123456789 \n\0\r<>x";
        for _ in 0..2_000 {
            let len = (next() % 400) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let max = 1 + (next() % 64) as usize;
            let chunk = 1 + (next() % 50) as usize;
            let (frames, _) = frames(max, &input, chunk);
            for f in frames {
                if let Frame::Message(m) = f {
                    assert!(m.len() <= max, "{} > {max}", m.len());
                }
            }
        }
    }

    #[test]
    fn datagrams_lose_trailing_terminators() {
        assert_eq!(datagram(b"<13>x\r\n"), b"<13>x");
        assert_eq!(datagram(b"<13>x\0"), b"<13>x");
        assert_eq!(datagram(b""), b"");
    }
}
