//! [`Chunk`]: lines published together into one category, with consecutive seqs, shared by
//! every subscriber's queue.
//!
//! Fan-out used to cost a queue item per line per client, and each client serialized each
//! line to JSON again. A chunk is queued once per client (as a range of its lines), and its
//! lines' JSON is built once, by the first client that sends it, then copied by every other
//! client into its `lines` message ([`Chunk::json`]): serialization is per line, not per line
//! per client.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::protocol::LineOut;
use crate::ring::{Origin, LINE_OVERHEAD};

/// Lines `first_seq`, `first_seq + 1`, ... of one category.
pub struct Chunk {
    pub first_seq: u64,
    pub lines: Vec<Bytes>,
    /// Kafka lines: each line's (partition, offset); `None` for every other source.
    origins: Option<Vec<Origin>>,
    /// Lines read back from Kafka for one client ([`crate::hub::ReadBack`]): not in the
    /// ring, so they have no seq (each is 0).
    read_back: bool,
    /// `cost[i]`: what `lines[..i]` count against a queue's bound (`len + LINE_OVERHEAD`
    /// each), so any range's cost is one subtraction.
    cost: Vec<usize>,
    json: OnceLock<Json>,
}

/// Every line as a JSON value (a string, or `{"b64":...}`), each followed by a comma.
struct Json {
    text: String,
    /// `starts[i]`: where line `i` begins in `text`; `starts[len]` is `text.len()`.
    starts: Vec<usize>,
}

impl Chunk {
    pub fn new(first_seq: u64, lines: Vec<Bytes>) -> Arc<Chunk> {
        Chunk::with_origins(first_seq, lines, None)
    }

    /// A chunk of Kafka lines: `origins[i]` is where `lines[i]` is in its topic.
    pub fn with_origins(
        first_seq: u64,
        lines: Vec<Bytes>,
        origins: Option<Vec<Origin>>,
    ) -> Arc<Chunk> {
        debug_assert!(origins.as_ref().is_none_or(|o| o.len() == lines.len()));
        let mut cost = Vec::with_capacity(lines.len() + 1);
        let mut sum = 0usize;
        cost.push(0);
        for l in &lines {
            sum += l.len() + LINE_OVERHEAD;
            cost.push(sum);
        }
        Arc::new(Chunk {
            first_seq,
            lines,
            origins,
            read_back: false,
            cost,
            json: OnceLock::new(),
        })
    }

    /// Lines read back from Kafka (older than the ring): their seqs are 0.
    pub fn read_back(lines: Vec<Bytes>, origins: Vec<Origin>) -> Arc<Chunk> {
        let mut c = Chunk::with_origins(0, lines, Some(origins));
        if let Some(c) = Arc::get_mut(&mut c) {
            c.read_back = true;
        }
        c
    }

    /// Whether the lines were read back from Kafka (and have no seqs).
    pub fn is_read_back(&self) -> bool {
        self.read_back
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Where line `i` is in its Kafka topic (`None` for other sources).
    pub fn origin(&self, i: usize) -> Option<Origin> {
        self.origins.as_ref().and_then(|o| o.get(i).copied())
    }

    /// Whether the lines came from Kafka (and carry origins).
    pub fn has_origins(&self) -> bool {
        self.origins.is_some()
    }

    /// The seq of line `i` (0 for a line read back from Kafka).
    pub fn seq(&self, i: usize) -> u64 {
        if self.read_back {
            return 0;
        }
        self.first_seq + i as u64
    }

    /// What lines `r` count against a queue's bound.
    pub fn cost(&self, r: Range<usize>) -> usize {
        self.cost[r.end] - self.cost[r.start]
    }

    /// How many lines from `from` on fit in `room` bytes of bound (whole lines, in order).
    pub fn fit(&self, from: usize, room: usize) -> usize {
        let limit = self.cost[from].saturating_add(room);
        // `cost` is increasing: the first index past the limit ends the run.
        self.cost[from + 1..].partition_point(|c| *c <= limit)
    }

    /// How many lines from `from` on fit in `max_lines` lines and `max_bytes` bytes of line
    /// text: how a `lines` message is cut.
    pub fn fit_text(&self, from: usize, max_lines: usize, max_bytes: usize) -> usize {
        let mut bytes = 0usize;
        let mut n = 0;
        for l in self.lines[from..].iter().take(max_lines) {
            if bytes + l.len() > max_bytes {
                break;
            }
            bytes += l.len();
            n += 1;
        }
        n
    }

    /// Lines `r` as the inside of a JSON array (`"a","b"`), built once per chunk.
    pub fn json(&self, r: Range<usize>) -> &str {
        let j = self.json.get_or_init(|| {
            let mut v = Vec::with_capacity(self.cost[self.len()]);
            let mut starts = Vec::with_capacity(self.len() + 1);
            for l in &self.lines {
                starts.push(v.len());
                // Writing to a Vec cannot fail, and a line always serializes (a str or
                // base64); an empty string stands in should that ever change.
                if serde_json::to_writer(&mut v, &LineOut::new(l)).is_err() {
                    v.extend_from_slice(br#""""#);
                }
                v.push(b',');
            }
            starts.push(v.len());
            // serde_json writes UTF-8; checked once per chunk, not per client. Were it ever
            // not, every line becomes `null` rather than the server panicking on a slice.
            let text = String::from_utf8(v).unwrap_or_else(|_| {
                starts = (0..=self.len()).map(|i| i * 5).collect();
                "null,".repeat(self.len())
            });
            Json { text, starts }
        });
        if r.is_empty() {
            return "";
        }
        // Without the comma after the last line of the range.
        &j.text[j.starts[r.start]..j.starts[r.end] - 1]
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("first_seq", &self.first_seq)
            .field("lines", &self.lines.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(lines: &[&[u8]]) -> Arc<Chunk> {
        Chunk::new(7, lines.iter().map(|l| Bytes::copy_from_slice(l)).collect())
    }

    #[test]
    fn json_of_any_range_matches_serde() {
        let c = chunk(&[b"plain", b"\"quoted\" \\ \n", b"\xff\xfebin", b""]);
        for a in 0..=c.len() {
            for b in a..=c.len() {
                let want: Vec<LineOut> = c.lines[a..b].iter().map(LineOut::new).collect();
                let want = serde_json::to_string(&want).unwrap();
                assert_eq!(format!("[{}]", c.json(a..b)), want, "{a}..{b}");
            }
        }
        assert_eq!(c.seq(2), 9);
    }

    #[test]
    fn fits_whole_lines() {
        let c = chunk(&[b"a", b"bb", b"ccc"]);
        let one = 1 + LINE_OVERHEAD;
        assert_eq!(c.cost(0..3), 6 + 3 * LINE_OVERHEAD);
        assert_eq!(c.fit(0, 0), 0);
        assert_eq!(c.fit(0, one), 1);
        assert_eq!(c.fit(0, one + 2 + LINE_OVERHEAD - 1), 1);
        assert_eq!(c.fit(1, 2 + LINE_OVERHEAD), 1);
        assert_eq!(c.fit(0, usize::MAX), 3);
        assert_eq!(c.fit(3, usize::MAX), 0);
        assert_eq!(c.fit_text(0, 2, usize::MAX), 2);
        assert_eq!(c.fit_text(0, 10, 3), 2);
        assert_eq!(c.fit_text(2, 10, 2), 0);
    }
}
