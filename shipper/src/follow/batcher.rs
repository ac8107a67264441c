//! The batch `--follow` is building from the follower's lines, and the hand-over of finished
//! batches to the outbox.

use std::path::Path;
use std::time::Duration;

use scribe_archive::Category;
use scribe_follow::FileId;
use scribe_protocol::{EntryId, ProducerId};
use tokio::sync::mpsc;

use super::{Commits, FileIdMap};
use crate::batch::{BatchBuf, BatchLimits};
use crate::dead_letter::FileNames;
use crate::outbox::Batch;

/// The batch being built, and where it goes.
pub(super) struct Batcher {
    pub(super) limits: BatchLimits,
    pub(super) out: mpsc::Sender<Batch<Commits>>,
    pub(super) builder: BatchBuf,
    pub(super) commits: FileIdMap<u64>,
    /// Finished batches waiting for the positions to be saved (see the module docs).
    pub(super) ready: Vec<Batch<Commits>>,
    pub(super) producer: ProducerId,
    /// Per file generation: its producer id and where its next entry starts.
    pub(super) streams: FileIdMap<(ProducerId, u64)>,
    /// The path of each generation's producer id.
    pub(super) names: FileNames,
    /// The outbox has gone: stop.
    pub(super) closed: bool,
    /// The runtime the outbox runs on, to wait for room in it with a timeout (none when
    /// started outside one: plain blocking sends).
    pub(super) runtime: Option<tokio::runtime::Handle>,
    /// While the outbox is full, how often the followed files are looked at (see
    /// [`Batcher::send_ready`]).
    pub(super) look_every: Duration,
}

impl Batcher {
    /// Records a file generation's stream nonce and where its next entry starts, the first
    /// time the generation is seen (an open, a truncation's new generation, or its first line).
    pub(super) fn note_stream(&mut self, path: &Path, file_id: FileId, stream: u64, start: u64) {
        let (producer, names) = (self.producer, &self.names);
        self.streams.entry(file_id).or_insert_with(|| {
            let p = producer.derive(stream);
            names.insert(p, path.to_path_buf());
            (p, start)
        });
    }

    /// The file generation is done: no more lines will come from it.
    pub(super) fn forget_stream(&mut self, file_id: FileId) {
        if let Some((producer, _)) = self.streams.remove(&file_id) {
            self.names.remove(&producer);
        }
    }

    /// Adds one message of `path`, ending at `(file, offset)`, to the batch being built,
    /// finishing the batch first if it is full. `stream`: the nonce of the line's file
    /// generation, when the caller has the event (one map lookup both notes a new generation
    /// and finds the entry's start).
    pub(super) fn add(
        &mut self,
        path: &Path,
        category: &Category,
        bytes: &[u8],
        (file_id, offset_after): (FileId, u64),
        stream: Option<u64>,
    ) {
        let cat = category.as_str().as_bytes();
        if self.builder.is_full_for(&self.limits, cat, bytes.len()) {
            self.flush();
        }
        let (producer, names) = (self.producer, &self.names);
        let position = match stream {
            Some(nonce) => Some(self.streams.entry(file_id).or_insert_with(|| {
                let p = producer.derive(nonce);
                names.insert(p, path.to_path_buf());
                (p, offset_after - bytes.len() as u64)
            })),
            None => self.streams.get_mut(&file_id),
        };
        // The entry covers the file's bytes from where the previous one ended (including
        // any skipped over-long line) to the end of this line or record.
        let id = match position {
            Some((producer, next)) if offset_after > *next => {
                let id = EntryId {
                    producer: *producer,
                    start: *next,
                    end: offset_after,
                };
                *next = offset_after;
                Some(id)
            }
            _ => {
                // Cannot happen with the follower's events; sent without an id (at worst
                // delivered twice, never lost).
                tracing::debug!(%file_id, offset_after, "line without a stream position");
                None
            }
        };
        self.builder.push(cat, bytes, id);
        let end = self.commits.entry(file_id).or_insert(0);
        *end = (*end).max(offset_after);
    }

    /// Adds `count` whole lines of `path` read together (the file's bytes up to
    /// `(file, offset)`) in as few runs as the batch limits allow, finishing batches as they
    /// fill. Each run's id covers exactly its bytes; a line after a gap (a skipped over-long
    /// line) goes alone through [`Self::add`], which gives it the gap, as it always has, so
    /// a restarted ship's ids are the same however its batches are cut.
    pub(super) fn add_lines(
        &mut self,
        path: &Path,
        category: &Category,
        bytes: &[u8],
        count: usize,
        (file_id, offset_after): (FileId, u64),
        stream: u64,
    ) {
        let cat = category.as_str().as_bytes();
        let start = offset_after - bytes.len() as u64;
        self.note_stream(path, file_id, stream, start);
        let (mut at, mut left) = (0, count);
        while at < bytes.len() && !self.closed {
            let rest = &bytes[at..];
            let run_start = start + at as u64;
            let continues =
                matches!(self.streams.get(&file_id), Some(&(_, next)) if next == run_start);
            let (len, n) = match continues {
                false => (0, 0),
                true if self.builder.fits_run(&self.limits, cat, rest.len(), left) => {
                    (rest.len(), left)
                }
                true => self.builder.fit_run(&self.limits, cat, rest),
            };
            if n == 0 {
                if continues && !self.builder.is_empty() {
                    self.flush();
                    continue;
                }
                // After a gap, or a line over the batch's byte limit: that line alone.
                let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                let at_end = (file_id, run_start + end as u64);
                self.add(path, category, &rest[..end], at_end, Some(stream));
                (at, left) = (at + end, left.saturating_sub(1));
                continue;
            }
            let Some((producer, next)) = self.streams.get_mut(&file_id) else {
                return; // noted above
            };
            let id = EntryId {
                producer: *producer,
                start: run_start,
                end: run_start + len as u64,
            };
            *next = id.end;
            self.builder.push_run(cat, &rest[..len], n, id);
            let end = self.commits.entry(file_id).or_insert(0);
            *end = (*end).max(id.end);
            (at, left) = (at + len, left - n);
        }
    }

    /// Finishes the batch being built; [`Self::send_ready`] sends it.
    pub(super) fn flush(&mut self) {
        if self.builder.is_empty() || self.closed {
            return;
        }
        let (body, lines, bytes) = self.builder.take(&self.limits);
        self.ready.push(Batch {
            body,
            lines,
            bytes,
            tag: self.commits.drain().collect(),
        });
    }

    /// Sends the finished batches, blocking while the outbox is full.
    ///
    /// Blocked, the thread does not poll, and a file deleted meanwhile would look read to its
    /// end (the follower goes by the size it last saw). So every `look_every` it calls
    /// `waiting` (the follower's `observe`): a file that grows while delivery is stuck and is
    /// then deleted is counted as vanished with the bytes it had.
    pub(super) fn send_ready(&mut self, waiting: &mut dyn FnMut()) {
        for batch in std::mem::take(&mut self.ready) {
            if self.closed || !self.send(batch, waiting) {
                self.closed = true;
            }
        }
    }

    /// One batch into the outbox; false if the outbox has gone.
    pub(super) fn send(&mut self, batch: Batch<Commits>, waiting: &mut dyn FnMut()) -> bool {
        let Some(runtime) = self.runtime.clone() else {
            return self.out.blocking_send(batch).is_ok();
        };
        let (out, every) = (&self.out, self.look_every);
        loop {
            // The timer is made inside `block_on`: it needs the runtime's context.
            let room = runtime.block_on(async { tokio::time::timeout(every, out.reserve()).await });
            match room {
                Ok(Ok(permit)) => {
                    permit.send(batch);
                    return true;
                }
                Ok(Err(_)) => return false,
                Err(_) => waiting(),
            }
        }
    }
}
