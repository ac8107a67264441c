//! The pieces a batch is written in: single messages, framed one by one, and runs of whole
//! lines, written as they arrived when nothing in them needs a look per line.

use scribe_ids::EntryId;

use super::{RotatingWriter, WriteStats, WRITE_BUFFER};
use crate::error::WriteError;

/// One piece of a batch for [`RotatingWriter::write_pieces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// One message (framed with a `\n` unless it ends in one) and its id.
    Message(&'a [u8], Option<EntryId>),
    /// Whole lines back to back, each ending in `\n`, `count` of them; `id`, if any, covers
    /// exactly their bytes, each line its own part of it (as a native run of lines arrives).
    Lines {
        bytes: &'a [u8],
        count: usize,
        id: Option<EntryId>,
    },
}

impl RotatingWriter {
    /// One message: skipped if a duplicate, framed, rotated before if it would not fit.
    pub(super) fn put_message(
        &mut self,
        msg: &[u8],
        id: Option<EntryId>,
        stats: &mut WriteStats,
    ) -> Result<(), WriteError> {
        // Ids matter only when idempotent, and only for a non-empty range.
        let id = id.filter(|i| i.start < i.end && self.commit.is_some());
        if let (Some(id), Some(c)) = (&id, self.commit.as_mut()) {
            if c.is_duplicate(id) {
                stats.duplicates += 1;
                return Ok(());
            }
        }
        let framed = msg.len() as u64 + u64::from(!msg.ends_with(b"\n"));
        if self.opts.max_size > 0 && self.size > 0 && self.size + framed > self.opts.max_size {
            self.rotate()?;
            stats.rotations += 1;
        }
        self.put_bytes(msg)?;
        if framed > msg.len() as u64 {
            self.buf.push(b'\n');
        }
        self.size += framed;
        stats.messages += 1;
        stats.bytes += framed;
        if let (Some(id), Some(c)) = (&id, self.commit.as_mut()) {
            c.note(id);
        }
        Ok(())
    }

    /// A run of whole lines ([`Piece::Lines`]): in one piece when it can be, else line by line.
    pub(super) fn put_lines(
        &mut self,
        bytes: &[u8],
        count: usize,
        id: Option<EntryId>,
        stats: &mut WriteStats,
    ) -> Result<(), WriteError> {
        let len = bytes.len() as u64;
        let whole = scribe_ids::is_whole_run(bytes, id);
        let fits = self.opts.max_size == 0 || self.size + len <= self.opts.max_size;
        let id = id.filter(|_| self.commit.is_some());
        let clear = match (&id, self.commit.as_mut()) {
            (Some(id), Some(c)) => c.is_clear(id),
            _ => true,
        };
        if !(whole && fits && clear) {
            for (line, line_id) in scribe_ids::run_lines(bytes, id) {
                self.put_message(line, line_id, stats)?;
            }
            return Ok(());
        }
        self.put_bytes(bytes)?;
        self.size += len;
        stats.messages += count as u64;
        stats.bytes += len;
        if let (Some(id), Some(c)) = (&id, self.commit.as_mut()) {
            c.note(id);
        }
        Ok(())
    }

    /// Bytes into the write buffer, or, when they are as large as it, straight to the file
    /// (after what the buffer holds): a large run is written from where it arrived, uncopied.
    /// Leaves room for one framing newline in the buffer.
    fn put_bytes(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if data.len() >= WRITE_BUFFER {
            self.flush_buf()?;
            return self.write_raw(data);
        }
        if self.buf.len() + data.len() + 1 > WRITE_BUFFER {
            self.flush_buf()?;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
