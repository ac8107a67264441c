//! A category's bounded ring of recent lines, each with its sequence number.
//!
//! Sequence numbers start at 1 and increase by one per line for the life of the process, so a
//! client that saw up to `seq` can ask for exactly what follows, and learn whether the ring
//! still holds it.

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

    /// The sequence number of the newest line ever pushed (0 before the first).
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

    /// The lines after `since`, oldest first, and whether any between are missing.
    pub fn after(&self, since: u64) -> (Resume, impl ExactSizeIterator<Item = &(u64, Bytes)>) {
        let oldest = self.lines.front().map_or(self.next_seq, |(s, _)| *s);
        // A resume point this ring never reached means the server restarted (sequence
        // numbers begin again at 1): everything held is new to the client. A stale point
        // below the newest seq cannot be told apart; clients compare `hello.instance`
        // (docs/tailgate-protocol.md).
        let since = if since >= self.next_seq { 0 } else { since };
        let (resume, start) = if since + 1 < oldest {
            let gap = Resume::Gap {
                from: since + 1,
                to: oldest - 1,
            };
            (gap, 0)
        } else {
            (Resume::Complete, (since + 1 - oldest) as usize)
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
}
