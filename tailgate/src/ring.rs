//! A category's bounded ring of recent lines, each with its sequence number.
//!
//! Sequence numbers start at 1 and increase by one per line for the life of the process, so a
//! client that saw up to `seq` can ask for exactly what follows, and learn whether the ring
//! still holds it. Lines a source could not read take seqs too ([`Ring::skip`]), without
//! lines: a hole between two held lines is a gap, and is reported as one.

use std::collections::VecDeque;

use bytes::Bytes;

/// Per-line bookkeeping counted against the byte bound on top of the line itself, so a flood
/// of empty lines is bounded too.
pub const LINE_OVERHEAD: usize = 32;

#[derive(Debug)]
pub struct Ring {
    lines: VecDeque<(u64, Bytes)>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    /// The sequence number the next line gets.
    next_seq: u64,
}

/// Where a resume from `since` starts.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Everything after `since` is in the ring.
    Complete,
    /// Lines `from..=to` were evicted (or, after a restart of the server, never existed
    /// here); the ring continues after them.
    Gap { from: u64, to: u64 },
}

impl Ring {
    pub fn new(max_lines: usize, max_bytes: usize) -> Ring {
        Ring {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes,
            next_seq: 1,
        }
    }

    /// Appends a line and returns its sequence number, evicting the oldest lines beyond the
    /// bounds. A single line larger than the byte bound is counted but not kept.
    pub fn push(&mut self, line: Bytes) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let cost = line.len() + LINE_OVERHEAD;
        if cost <= self.max_bytes {
            self.bytes += cost;
            self.lines.push_back((seq, line));
        }
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some((_, l)) => self.bytes -= l.len() + LINE_OVERHEAD,
                None => break,
            }
        }
        seq
    }

    /// Gives the next `count` (at least 1) seqs to lines that will never be pushed (a source
    /// lost them); returns the range.
    pub fn skip(&mut self, count: u64) -> (u64, u64) {
        let from = self.next_seq;
        self.next_seq += count.max(1);
        (from, self.next_seq - 1)
    }

    /// The sequence number of the newest line ever pushed or skipped (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The newest `n` lines, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &(u64, Bytes)> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }

    /// The lines after `since`, oldest first, and whether any right after `since` are
    /// missing (holes further on show as jumps in the lines' seqs).
    pub fn after(&self, since: u64) -> (Resume, impl ExactSizeIterator<Item = &(u64, Bytes)>) {
        // A resume point this ring never reached means the server restarted (sequence
        // numbers begin again at 1): everything held is new to the client. A stale point
        // below the newest seq cannot be told apart; clients compare `hello.instance`
        // (docs/tailgate-protocol.md).
        let since = if since >= self.next_seq { 0 } else { since };
        // Seqs increase along the ring but may jump (skipped seqs, lines too big to keep).
        let start = self.lines.partition_point(|(s, _)| *s <= since);
        let first = self.lines.get(start).map_or(self.next_seq, |(s, _)| *s);
        let resume = if since + 1 < first {
            Resume::Gap {
                from: since + 1,
                to: first - 1,
            }
        } else {
            Resume::Complete
        };
        (resume, self.lines.iter().skip(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_with(n: u64, max_lines: usize) -> Ring {
        let mut r = Ring::new(max_lines, usize::MAX);
        for i in 1..=n {
            assert_eq!(r.push(Bytes::from(format!("l{i}"))), i);
        }
        r
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let r = ring_with(10, 3);
        let seqs: Vec<u64> = r.last(10).map(|(s, _)| *s).collect();
        assert_eq!(seqs, [8, 9, 10]);

        let mut r = Ring::new(100, 2 * (LINE_OVERHEAD + 4));
        for _ in 0..5 {
            r.push(Bytes::from_static(b"abcd"));
        }
        assert_eq!(r.len(), 2);
        r.push(Bytes::from(vec![0; 1000]));
        assert_eq!(r.last_seq(), 6, "an oversized line still takes a seq");
    }

    #[test]
    fn resume_inside_and_before_the_ring() {
        let r = ring_with(10, 5); // holds 6..=10
        let (res, it) = r.after(7);
        assert_eq!(res, Resume::Complete);
        assert_eq!(it.map(|(s, _)| *s).collect::<Vec<_>>(), [8, 9, 10]);
        let (res, it) = r.after(5);
        assert_eq!(res, Resume::Complete);
        assert_eq!(it.count(), 5);
        let (res, it) = r.after(2);
        assert_eq!(res, Resume::Gap { from: 3, to: 5 });
        assert_eq!(it.count(), 5);
        let (res, it) = r.after(10);
        assert_eq!(res, Resume::Complete);
        assert_eq!(it.count(), 0);
        let (res, it) = r.after(50);
        assert_eq!(res, Resume::Gap { from: 1, to: 5 });
        assert_eq!(it.count(), 5);
        // After a restart with everything still held: all of it, no gap.
        let r = ring_with(3, 5);
        let (res, it) = r.after(50);
        assert_eq!(res, Resume::Complete);
        assert_eq!(it.count(), 3);
    }

    #[test]
    fn skipped_seqs_are_holes() {
        let mut r = ring_with(3, 10);
        assert_eq!(r.skip(2), (4, 5));
        assert_eq!(r.push(Bytes::from_static(b"l6")), 6);
        assert_eq!(r.skip(0), (7, 7), "at least one seq");
        assert_eq!(r.last_seq(), 7);
        let seqs =
            |it: &mut dyn Iterator<Item = &(u64, Bytes)>| it.map(|(s, _)| *s).collect::<Vec<_>>();
        let (res, mut it) = r.after(2);
        assert_eq!(res, Resume::Complete);
        assert_eq!(seqs(&mut it), [3, 6]);
        // Right after the resume point: a gap up to the next line held.
        let (res, mut it) = r.after(3);
        assert_eq!(res, Resume::Gap { from: 4, to: 5 });
        assert_eq!(seqs(&mut it), [6]);
        let (res, mut it) = r.after(6);
        assert_eq!(res, Resume::Gap { from: 7, to: 7 });
        assert_eq!(seqs(&mut it), [0u64; 0]);
        assert_eq!(r.after(7).0, Resume::Complete);
    }
}
