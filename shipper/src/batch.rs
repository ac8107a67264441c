//! The batch being built, shared by every mode (stdin, `--follow`, `run`, spool replay), and
//! the producer identity its entries carry.
//!
//! Batches are native bodies ([`scribe_protocol::native::BatchBuilder`]). Their size is
//! counted as the Thrift `Log` call they would become (which repeats the category in every
//! entry), so a batch fits the frame limit whichever protocol the aggregator speaks.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use scribe_protocol::frame::LOG_ENVELOPE_OVERHEAD;
use scribe_protocol::native::BatchBuilder;
use scribe_protocol::scribe::ENTRY_OVERHEAD;
use scribe_protocol::{EntryId, ProducerId};

/// How lines are grouped into batches, in every mode.
#[derive(Debug, Clone)]
pub struct BatchLimits {
    /// Longest line accepted, in bytes, not counting its newline.
    pub max_line: usize,
    pub batch_lines: usize,
    pub batch_bytes: usize,
    /// Send a partial batch once its first line has waited this long.
    pub linger: Duration,
}

/// A batch under construction.
pub struct BatchBuf {
    builder: BatchBuilder,
    /// Size as a Thrift call, which is what `batch_bytes` bounds.
    thrift_len: usize,
}

impl BatchBuf {
    pub fn new(limits: &BatchLimits) -> BatchBuf {
        BatchBuf {
            builder: BatchBuilder::with_capacity(limits.batch_bytes.min(1 << 20)),
            thrift_len: 0,
        }
    }

    /// A batch that takes runs of whole lines as one entry each ([`Self::push_run`]): the
    /// body is encoded with no per-line work. A client re-encodes it for an aggregator that
    /// does not read runs.
    pub fn with_runs(limits: &BatchLimits) -> BatchBuf {
        BatchBuf {
            builder: BatchBuilder::with_runs(limits.batch_bytes.min(1 << 20)),
            thrift_len: 0,
        }
    }

    /// Whether `len` bytes of `count` whole lines fit this batch as they are (no count
    /// needed: the caller knows it).
    pub fn fits_run(
        &self,
        limits: &BatchLimits,
        category: &[u8],
        len: usize,
        count: usize,
    ) -> bool {
        self.builder.len() + count <= limits.batch_lines
            && self.thrift_len + len + count * (category.len() + ENTRY_OVERHEAD)
                <= limits.batch_bytes
    }

    /// The longest prefix of `lines` (whole lines, each ending in `\n`) this batch can take
    /// within the limits: its length in bytes and its number of lines; `(0, 0)` when not even
    /// the first line fits (then send the batch, or, if it is empty, push that line alone).
    /// Counted as [`Self::is_full_for`] counts line by line. One vectorized count over the
    /// candidate, then a step per line only for the lines given back.
    pub fn fit_run(&self, limits: &BatchLimits, category: &[u8], lines: &[u8]) -> (usize, usize) {
        let per_line = category.len() + ENTRY_OVERHEAD;
        let room_lines = limits.batch_lines.saturating_sub(self.builder.len());
        let room = limits.batch_bytes.saturating_sub(self.thrift_len);
        if room_lines == 0 {
            return (0, 0);
        }
        let mut limit = room.min(lines.len());
        for _ in 0..FIT_ROUNDS {
            let Some(nl) = memchr::memrchr(b'\n', &lines[..limit]) else {
                return (0, 0);
            };
            let mut end = nl + 1;
            let mut n = count_lines(&lines[..end]);
            if n > room_lines {
                let nth = memchr::memchr_iter(b'\n', &lines[..end]).nth(room_lines - 1);
                (end, n) = (nth.map_or(end, |nl| nl + 1), room_lines);
            }
            let cost = end + n * per_line;
            if cost <= room {
                return (end, n);
            }
            // Over by the lines' overhead: scale the candidate down by the excess (short lines
            // cost more per byte), so the walk below gives back a few lines, not most of them.
            let scaled = (end as u128 * room as u128 / cost as u128) as usize;
            if scaled + 4096 >= end {
                // Close: each line given back from the end, once.
                let mut cost = cost;
                while cost > room && n > 0 {
                    let prev = memchr::memrchr(b'\n', &lines[..end - 1]).map_or(0, |i| i + 1);
                    cost -= end - prev + per_line;
                    (end, n) = (prev, n - 1);
                }
                return (end, n);
            }
            limit = scaled;
        }
        (0, 0)
    }

    /// Appends whole lines (each ending in `\n`; `line_count` of them) as one run, `id`
    /// covering exactly their bytes.
    pub fn push_run(&mut self, category: &[u8], lines: &[u8], line_count: usize, id: EntryId) {
        self.builder.push_run(category, lines, line_count, Some(id));
        self.thrift_len += lines.len() + line_count * (category.len() + ENTRY_OVERHEAD);
    }

    /// Whether adding a message of `msg_len` bytes to `category` would pass the limits (an
    /// empty batch always takes one message).
    pub fn is_full_for(&self, limits: &BatchLimits, category: &[u8], msg_len: usize) -> bool {
        !self.builder.is_empty()
            && (self.builder.len() >= limits.batch_lines
                || self.thrift_len + category.len() + msg_len + ENTRY_OVERHEAD > limits.batch_bytes)
    }

    pub fn push(&mut self, category: &[u8], message: &[u8], id: Option<EntryId>) {
        self.builder.push(category, message, id);
        self.thrift_len += category.len() + message.len() + ENTRY_OVERHEAD;
    }

    pub fn len(&self) -> usize {
        self.builder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// Finishes the batch: its body, line count and message bytes; `self` starts over.
    pub fn take(&mut self, limits: &BatchLimits) -> (Bytes, u64, u64) {
        let fresh = if self.builder.has_runs_layout() {
            BatchBuf::with_runs(limits)
        } else {
            BatchBuf::new(limits)
        };
        let full = std::mem::replace(self, fresh);
        let (lines, bytes) = (full.builder.len() as u64, full.builder.message_bytes());
        (full.builder.finish(), lines, bytes)
    }
}

/// How many times [`BatchBuf::fit_run`] scales its candidate down at most: each round cuts
/// it by its excess, so two are the rule; after these, the batch is sent as it is.
const FIT_ROUNDS: usize = 8;

/// Newlines in `data`: memchr's vectorized count, with no step per line. (A plain
/// `filter(..).count()` compiles to 4 bytes a step and took half of ship's CPU.)
pub fn count_lines(data: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', data).count()
}

/// Largest line that fits one frame of `max_frame` bytes with a category of any valid length.
pub fn max_line_for_frame(max_frame: usize) -> usize {
    max_frame.saturating_sub(LOG_ENVELOPE_OVERHEAD + scribe_archive::category::MAX_CATEGORY_LEN + 1)
}

/// This ship's producer id, kept in `<state dir>/producer-id` (created on first use, written
/// atomically). Every followed file's entries are identified by an id derived from it and the
/// file's stream nonce (kept with the file's checkpoint), so after a restart the same bytes
/// carry the same ids and an aggregator that already wrote them recognises them.
pub fn load_producer_id(state_dir: &Path) -> anyhow::Result<ProducerId> {
    let path = state_dir.join("producer-id");
    match std::fs::read_to_string(&path) {
        Ok(s) => ProducerId::from_hex(s.trim()).with_context(|| {
            format!(
                "{} does not hold a producer id (32 hex digits); remove it to make a new one \
                 (lines in flight may then be delivered twice)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = ProducerId::random();
            scribe_fs::write_atomically(&path, format!("{id}\n").as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_producer_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_producer_id(dir.path()).unwrap();
        let b = load_producer_id(dir.path()).unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.path().join("producer-id"), "garbage").unwrap();
        let err = load_producer_id(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("producer id"), "{err:#}");
    }

    #[test]
    fn batches_are_cut_by_their_thrift_size() {
        let limits = BatchLimits {
            max_line: 1024,
            batch_lines: 1000,
            batch_bytes: 100,
            linger: Duration::from_millis(10),
        };
        let mut b = BatchBuf::new(&limits);
        assert!(
            !b.is_full_for(&limits, b"cat", 500),
            "an empty batch takes anything"
        );
        b.push(b"cat", &[b'x'; 40], None);
        assert!(!b.is_full_for(&limits, b"cat", 20));
        assert!(b.is_full_for(&limits, b"cat", 50));
        let (body, lines, bytes) = b.take(&limits);
        assert_eq!((lines, bytes), (1, 40));
        assert_eq!(scribe_protocol::native::decode_body(body).unwrap().len(), 1);
        assert!(b.is_empty());
    }
}
