//! Read-back: a client resuming by offsets that asks for offsets of a partition older than
//! the ring holds (its tailgate restarted with a small ring, or it was away a long time) gets
//! them read back from Kafka, for it alone, instead of an `offset_gap`.
//!
//! The hub marks the partition *held* for that subscription, under the feed lock, and hands
//! a [`ReadBack`] to the source (`kafka::readback` reads the span with a consumer of its
//! own). While held, neither the ring's lines nor live lines of that partition are queued
//! for the client; the read-back queues what it reads, and once the ring holds everything
//! from where the read-back stands ([`Ring::floor_of`]) it hands over, under the feed lock:
//! the ring's lines of the partition from there are queued and the hold is lifted, so the
//! next live line is queued as usual. Per partition, the client sees every offset once, in
//! order; other partitions flow live meanwhile.
//!
//! What is not read back (below the topic's low watermark, past the per-resume cap, or after
//! the read failed) is named by an `offset_gap` with its [`GapReason`], in order.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};

use bytes::Bytes;

use super::{lock, queue_runs, Feed, FeedState, Hub, Item, Subscription};
use crate::chunk::Chunk;
use crate::ring::{Origin, Ring};

/// Why offsets asked for by a resume are not sent (the `reason` of `offset_gap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapReason {
    /// Older than the ring, and nothing reads them back (or a line too big for the ring).
    NotHeld,
    /// Below the partition's low watermark: the topic's retention removed them.
    Retention,
    /// The resume was more than this many lines behind (`--kafka-read-back-lines`).
    BehindLines(u64),
    /// Reading back passed this many bytes (`--kafka-read-back-bytes`).
    BehindBytes(u64),
    /// Reading them back from Kafka failed, for this cause.
    Failed(Arc<str>),
    /// This many read-backs were already waiting for their turn.
    Busy(usize),
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GapReason::NotHeld => f.write_str("older than this tailgate's ring"),
            GapReason::Retention => f.write_str("older than the topic's retention"),
            GapReason::BehindLines(n) => write!(f, "more than {n} lines behind"),
            GapReason::BehindBytes(n) => write!(f, "more than {n} bytes behind"),
            GapReason::Failed(e) => write!(f, "reading back from Kafka failed: {e}"),
            GapReason::Busy(n) => write!(f, "{n} read-backs already waiting"),
        }
    }
}

/// Most read-backs waiting for a worker: requests are cheap to make (a subscribe), so a
/// client re-subscribing in a loop must not queue them without end.
pub const MAX_WAITING: usize = 1024;

/// One partition of one subscription to read back: offsets `from..end` (the ring held the
/// partition from `end` on when it was asked for).
pub struct ReadBack {
    sub: Arc<Subscription>,
    feed: Arc<Feed>,
    /// The hub's count of read-backs not yet finished, which this one leaves when dropped.
    waiting: Arc<AtomicUsize>,
    pub partition: i32,
    /// The offset the client wants next.
    pub from: i64,
    /// Where the ring's lines of the partition began when the read-back was asked for.
    pub end: i64,
}

/// What a read-back does after [`ReadBack::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The ring does not reach back to where the read-back stands yet: read on.
    More,
    /// Handed over to the ring: the read-back is done.
    Done,
}

impl ReadBack {
    /// The category (the topic is the source's to name).
    pub fn category(&self) -> &str {
        &self.feed.name
    }

    /// The client unsubscribed or left: stop.
    pub fn cancelled(&self) -> bool {
        self.sub.cancelled.load(Ordering::Acquire)
    }

    /// Bytes of lines the client's queue takes before its bound: a read-back reads no more
    /// than that ahead of the client, so a slow client slows its read-back instead of
    /// growing tailgate's memory.
    pub fn room(&self) -> usize {
        self.sub.queue.room()
    }

    /// Offsets `from..=to` will not be sent, for `reason`: tells the client, in order.
    pub fn gap(&self, from: i64, to: i64, reason: GapReason) {
        if from > to {
            return;
        }
        self.sub.queue.push_unbounded(Item::OffsetGap {
            key: self.sub.key,
            category: self.feed.name.clone(),
            partition: self.partition,
            from,
            to,
            reason,
        });
        self.sub.queue.notify.notify_one();
    }

    /// Lines read back, the partition's records from offset `at` up to (not including)
    /// `next`, in offset order: queues those older than what the ring holds and, once the
    /// ring holds the rest, hands over to it.
    pub fn deliver(&self, at: i64, lines: Vec<(Bytes, Origin)>, next: i64) -> Step {
        let mut st = lock(&self.feed.state);
        let floor = st.ring.floor_of(self.partition);
        let below = floor.unwrap_or(i64::MAX);
        let (lines, origins): (Vec<Bytes>, Vec<Origin>) =
            lines.into_iter().filter(|(_, o)| o.offset < below).unzip();
        if !lines.is_empty() {
            let chunk = Chunk::read_back(lines, origins);
            let to = chunk.len();
            self.sub.queue.push_unbounded(Item::Lines {
                key: self.sub.key,
                category: self.feed.name.clone(),
                chunk,
                from: 0,
                to,
            });
        }
        let step = match floor {
            Some(f) if f <= next => {
                self.hand_over(&mut st, at.max(f));
                Step::Done
            }
            _ => Step::More,
        };
        drop(st);
        self.sub.queue.notify.notify_one();
        step
    }

    /// Gives up at offset `at` for `reason`: what the ring does not hold from there gets an
    /// `offset_gap`, then the ring takes over. A partition this tailgate has not started
    /// reading yet goes back to waiting for its start (which compares it again).
    pub fn finish(&self, at: i64, reason: GapReason) {
        let mut st = lock(&self.feed.state);
        match st.ring.floor_of(self.partition) {
            Some(floor) => {
                self.gap(at, floor - 1, reason);
                self.hand_over(&mut st, at.max(floor));
            }
            None => {
                if let Some(r) = &self.sub.resume {
                    let mut r = lock(r);
                    unhold(&mut r.held, &self.feed.name, self.partition);
                    r.ahead
                        .entry(self.feed.name.to_string())
                        .or_default()
                        .insert(self.partition, at);
                }
            }
        }
        drop(st);
        self.sub.queue.notify.notify_one();
    }

    /// Under the feed lock: queues the ring's lines of the partition from offset `from` on
    /// and lifts the hold, so the next live line of the partition is queued as usual. If the
    /// feed has not read as far as `from` yet, lines below it are skipped live.
    fn hand_over(&self, st: &mut MutexGuard<'_, FeedState>, from: i64) {
        let ring: &Ring = &st.ring;
        let lines = ring.partition_from(self.partition, from);
        queue_runs(
            &self.sub.queue,
            self.sub.key,
            &self.feed.name,
            ring,
            &lines,
            |_, _| {},
        );
        let read = ring.cursor().get(&self.partition).copied();
        let Some(r) = &self.sub.resume else { return };
        let mut r = lock(r);
        unhold(&mut r.held, &self.feed.name, self.partition);
        if read.is_none_or(|n| n < from) {
            r.ahead
                .entry(self.feed.name.to_string())
                .or_default()
                .insert(self.partition, from);
        }
    }
}

impl Drop for ReadBack {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

fn unhold(
    held: &mut std::collections::HashMap<String, std::collections::BTreeSet<i32>>,
    category: &str,
    partition: i32,
) {
    if let Some(h) = held.get_mut(category) {
        h.remove(&partition);
        if h.is_empty() {
            held.remove(category);
        }
    }
}

impl Hub {
    /// Offsets older than the ring are read back by whoever takes from `tx` (the Kafka
    /// source); set once.
    pub fn enable_read_back(&self, tx: std::sync::mpsc::Sender<ReadBack>) {
        let _ = self.read_back.set(tx);
    }

    /// Under the feed lock: asks for offsets `from..end` of `partition` to be read back for
    /// `sub`, holding the partition's ring and live lines back from it meanwhile. `Err`:
    /// not read back, for that reason (the caller sends an `offset_gap`).
    pub(super) fn read_back(
        &self,
        sub: &Arc<Subscription>,
        feed: &Arc<Feed>,
        partition: i32,
        from: i64,
        end: i64,
    ) -> Result<(), GapReason> {
        let (Some(tx), Some(resume)) = (self.read_back.get(), &sub.resume) else {
            return Err(GapReason::NotHeld);
        };
        if sub.holds(&feed.name, partition) {
            return Ok(());
        }
        if self.read_backs_waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.read_backs_waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(GapReason::Busy(MAX_WAITING));
        }
        let job = ReadBack {
            sub: sub.clone(),
            feed: feed.clone(),
            waiting: self.read_backs_waiting.clone(),
            partition,
            from,
            end,
        };
        if tx.send(job).is_err() {
            return Err(GapReason::NotHeld);
        }
        lock(resume)
            .held
            .entry(feed.name.to_string())
            .or_default()
            .insert(partition);
        self.metrics.read_backs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
