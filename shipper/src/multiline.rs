//! Multiline records: lines joined into one message, each record starting at a line that
//! matches a regex (say, a timestamp), so a stack trace travels as one message.
//!
//! A record is complete when the next record starts, when it would exceed the longest
//! message allowed, or when no line joined it for the timeout (the writer may be done). Its
//! bytes are the lines as they were, `\n`s included. The record remembers where its last line
//! ended, so the offset committed for it covers exactly the lines it holds.

use std::time::{Duration, Instant};

use regex::bytes::Regex;
use scribe_follow::FileId;

/// How records start and when a partial one is sent anyway.
#[derive(Debug, Clone)]
pub struct MultilineRule {
    pub start: Regex,
    pub timeout: Duration,
}

/// A finished record, with the file offset after its last line.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub file_id: FileId,
    pub offset_after: u64,
}

/// The record being assembled for one followed path.
#[derive(Debug, Default)]
pub struct Joiner {
    bytes: Vec<u8>,
    end: Option<(FileId, u64)>,
    last_line: Option<Instant>,
}

impl Joiner {
    /// Adds a line; returns the record it completed, if any.
    pub fn push(
        &mut self,
        rule: &MultilineRule,
        max_bytes: usize,
        line: &[u8],
        file_id: FileId,
        offset_after: u64,
        now: Instant,
    ) -> Option<Record> {
        let starts = rule.start.is_match(line);
        let other_file = self.end.is_some_and(|(id, _)| id != file_id);
        let done = if !self.bytes.is_empty()
            && (starts || other_file || self.bytes.len() + line.len() > max_bytes)
        {
            self.take()
        } else {
            None
        };
        self.bytes.extend_from_slice(line);
        self.end = Some((file_id, offset_after));
        self.last_line = Some(now);
        done
    }

    /// The pending record if no line joined it for the rule's timeout.
    pub fn expire(&mut self, rule: &MultilineRule, now: Instant) -> Option<Record> {
        match self.last_line {
            Some(t) if now.duration_since(t) >= rule.timeout => self.take(),
            _ => None,
        }
    }

    /// The pending record, complete or not (at shutdown, rotation or truncation).
    pub fn take(&mut self) -> Option<Record> {
        let (file_id, offset_after) = self.end.take()?;
        self.last_line = None;
        Some(Record {
            bytes: std::mem::take(&mut self.bytes),
            file_id,
            offset_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> MultilineRule {
        MultilineRule {
            start: Regex::new(r"^\d{4}-").unwrap(),
            timeout: Duration::from_millis(100),
        }
    }

    #[test]
    fn continuation_lines_join_the_record_they_follow() {
        let (r, now) = (rule(), Instant::now());
        let id = FileId::default();
        let mut j = Joiner::default();
        let mut out = Vec::new();
        let lines: [&[u8]; 5] = [
            b"2026-11-23 boom\n",
            b"  at a()\n",
            b"  at b()\n",
            b"2026-11-23 fine\n",
            b"2026-11-23 last\n",
        ];
        let mut off = 0;
        for l in lines {
            off += l.len() as u64;
            out.extend(j.push(&r, 1 << 20, l, id, off, now));
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].bytes, b"2026-11-23 boom\n  at a()\n  at b()\n");
        assert_eq!(out[0].offset_after, 34);
        assert_eq!(out[1].bytes, b"2026-11-23 fine\n");
        assert!(j.expire(&r, now).is_none(), "not timed out yet");
        let last = j.expire(&r, now + Duration::from_millis(100)).unwrap();
        assert_eq!(last.bytes, b"2026-11-23 last\n");
        assert_eq!(last.offset_after, off);
        assert!(j.take().is_none());
    }

    #[test]
    fn a_record_never_outgrows_the_limit() {
        let (r, now) = (rule(), Instant::now());
        let mut j = Joiner::default();
        let id = FileId::default();
        assert!(j.push(&r, 10, b"2026-x\n", id, 7, now).is_none());
        let first = j.push(&r, 10, b"cont\n", id, 12, now).unwrap();
        assert_eq!(first.bytes, b"2026-x\n");
        assert_eq!(j.take().unwrap().bytes, b"cont\n");
    }
}
