//! A category's bounded ring of recent lines, each with its sequence number.
//!
//! Sequence numbers start at 1 and increase by one per line for the life of the process, so a
//! client that saw up to `seq` can ask for exactly what follows, and learn whether the ring
//! still holds it. Lines a source could not read take seqs too ([`Ring::skip`]), without
//! lines: a hole between two held lines is a gap, and is reported as one.
//!
//! Lines from Kafka also carry their [`Origin`] (partition, offset), and the ring keeps a
//! Kafka category's [`Cursor`]s: where each partition stands, and from which offset on it
//! holds every line. Offsets outlive a restart, where seqs do not, so a client resumes by
//! them ([`Ring::after_cursor`]).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Per-line bookkeeping counted against the byte bound on top of the line itself, so a flood
/// of empty lines is bounded too.
pub const LINE_OVERHEAD: usize = 32;

/// Where a Kafka line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}

/// Per partition, an offset: the next one to read (a resume point), or the first held.
pub type Cursor = BTreeMap<i32, i64>;

/// Offsets `from..=to` of `partition` that a resume by offsets cannot send: read before
/// this ring's oldest line of the partition, or never read by this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetGap {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug)]
pub struct Ring {
    lines: VecDeque<(u64, Bytes)>,
    /// Kafka lines: each held line's origin, aligned with `lines` (empty for other sources).
    origins: VecDeque<Origin>,
    /// Kafka: per partition, the offset after the newest line read.
    next: Cursor,
    /// Kafka: per partition, the offset from which every line read is held.
    floor: Cursor,
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
            origins: VecDeque::new(),
            next: Cursor::new(),
            floor: Cursor::new(),
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes,
            next_seq: 1,
        }
    }

    /// Appends a line and returns its sequence number, evicting the oldest lines beyond the
    /// bounds. A single line larger than the byte bound is counted but not kept.
    pub fn push(&mut self, line: Bytes) -> u64 {
        self.push_from(line, None)
    }

    /// [`Ring::push`] for a line with its Kafka origin. A Kafka ring holds only lines with
    /// origins (a source is one or the other).
    pub fn push_from(&mut self, line: Bytes, origin: Option<Origin>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let cost = line.len() + LINE_OVERHEAD;
        if let Some(o) = origin {
            self.next.insert(o.partition, o.offset + 1);
            self.floor.entry(o.partition).or_insert(o.offset);
        }
        if cost <= self.max_bytes {
            self.bytes += cost;
            self.lines.push_back((seq, line));
            if let Some(o) = origin {
                self.origins.push_back(o);
            }
        } else if let Some(o) = origin {
            // Not kept: a resume by offsets cannot send it, nor anything of its partition
            // before it (that would step over a hole).
            self.floor.insert(o.partition, o.offset + 1);
        }
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some((_, l)) => self.bytes -= l.len() + LINE_OVERHEAD,
                None => break,
            }
            if let Some(o) = self.origins.pop_front() {
                let f = self.floor.entry(o.partition).or_insert(0);
                *f = (*f).max(o.offset + 1);
            }
        }
        seq
    }

    /// Kafka: reading `partition` starts at `offset` (so a subscription's cursor names the
    /// partition before it has lines, and a resume from before `offset` is told it is not
    /// held). No effect once the partition has a position.
    pub fn start_partition(&mut self, partition: i32, offset: i64) {
        self.next.entry(partition).or_insert(offset);
        self.floor.entry(partition).or_insert(offset);
    }

    /// Kafka: per partition, the offset after the newest line read (empty for other sources).
    pub fn cursor(&self) -> &Cursor {
        &self.next
    }

    /// The origin of the held line `seq`, if it came from Kafka.
    pub fn origin(&self, seq: u64) -> Option<Origin> {
        if self.origins.is_empty() {
            return None;
        }
        let i = self.lines.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        self.origins.get(i).copied()
    }

    /// Kafka: the held lines a client that has read up to `since` (per partition, the next
    /// offset it wants) has not seen, oldest first, and what it asks for that is not held.
    /// Partitions it does not name are new to it: all their held lines are sent.
    pub fn after_cursor(&self, since: &Cursor) -> (Vec<OffsetGap>, Vec<&(u64, Bytes)>) {
        let gaps = self
            .floor
            .iter()
            .filter_map(|(p, floor)| {
                let want = *since.get(p)?;
                (want < *floor).then_some(OffsetGap {
                    partition: *p,
                    from: want,
                    to: floor - 1,
                })
            })
            .collect();
        let lines = self
            .lines
            .iter()
            .zip(&self.origins)
            .filter(|(_, o)| {
                let floor = self.floor.get(&o.partition).copied().unwrap_or(0);
                let want = since.get(&o.partition).copied().unwrap_or(i64::MIN);
                o.offset >= floor.max(want)
            })
            .map(|(l, _)| l)
            .collect();
        (gaps, lines)
    }

    /// Kafka: the offset of `partition` from which every line read is held, if it was
    /// started.
    pub fn floor_of(&self, partition: i32) -> Option<i64> {
        self.floor.get(&partition).copied()
    }

    /// Kafka: the held lines of `partition` at or after offset `from`, oldest first (a
    /// read-back handing over to the ring).
    pub fn partition_from(&self, partition: i32, from: i64) -> Vec<&(u64, Bytes)> {
        self.lines
            .iter()
            .zip(&self.origins)
            .filter(|(_, o)| o.partition == partition && o.offset >= from)
            .map(|(l, _)| l)
            .collect()
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

    fn from(partition: i32, offset: i64) -> Option<Origin> {
        Some(Origin { partition, offset })
    }

    #[test]
    fn kafka_resume_by_offsets_sends_what_follows_and_names_what_is_gone() {
        let mut r = Ring::new(4, usize::MAX);
        r.start_partition(0, 10);
        r.start_partition(1, 0);
        r.start_partition(2, 7);
        // p0: 10, 11, 12; p1: 0, 1 — interleaved; the first p0 line is evicted.
        for (p, o) in [(0, 10), (1, 0), (0, 11), (1, 1), (0, 12)] {
            r.push_from(Bytes::from(format!("{p}:{o}")), from(p, o));
        }
        assert_eq!(r.cursor(), &Cursor::from([(0, 13), (1, 2), (2, 7)]));
        assert_eq!(r.origin(2), from(1, 0));
        assert_eq!(r.origin(1), None, "evicted");
        let text = |v: Vec<&(u64, Bytes)>| {
            v.iter()
                .map(|(_, l)| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
        };
        // Read up to p0:11 and p1:0: the rest, in ring order, no gap.
        let (gaps, lines) = r.after_cursor(&Cursor::from([(0, 12), (1, 1), (2, 7)]));
        assert!(gaps.is_empty());
        assert_eq!(text(lines), ["1:1", "0:12"]);
        // From before the ring's oldest p0 line (and before p2's start): named, not sent.
        let (gaps, lines) = r.after_cursor(&Cursor::from([(0, 9), (2, 5)]));
        assert_eq!(
            gaps,
            [
                OffsetGap {
                    partition: 0,
                    from: 9,
                    to: 10
                },
                OffsetGap {
                    partition: 2,
                    from: 5,
                    to: 6
                }
            ]
        );
        assert_eq!(
            text(lines),
            ["1:0", "0:11", "1:1", "0:12"],
            "p1 is new to it"
        );
        // A line too big to keep: nothing of its partition before it is sent by offsets.
        let mut r = Ring::new(10, 2 * (LINE_OVERHEAD + 3));
        r.push_from(Bytes::from_static(b"0:0"), from(0, 0));
        r.push_from(Bytes::from(vec![b'x'; 100]), from(0, 1));
        r.push_from(Bytes::from_static(b"0:2"), from(0, 2));
        let (gaps, lines) = r.after_cursor(&Cursor::from([(0, 0)]));
        assert_eq!(
            gaps,
            [OffsetGap {
                partition: 0,
                from: 0,
                to: 1
            }]
        );
        assert_eq!(text(lines), ["0:2"]);
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
