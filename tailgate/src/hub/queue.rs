//! A client's bounded queue ([`ClientQueue`]) of [`Item`]s, and the byte [`Budget`] all the
//! queues share. Pushing never waits: what does not fit is counted as dropped, per
//! subscription and category, and reported in order before the next line that fits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{lock, GapReason, Metrics};
use crate::chunk::Chunk;

/// What a client's sender takes out of its queue.
#[derive(Debug)]
pub enum Item {
    /// Lines `from..to` of a chunk (seqs `chunk.seq(from)`, ...).
    Lines {
        key: u64,
        category: Arc<str>,
        chunk: Arc<Chunk>,
        from: usize,
        to: usize,
    },
    Dropped {
        key: u64,
        category: Arc<str>,
        count: u64,
        from_seq: u64,
    },
    Gap {
        key: u64,
        category: Arc<str>,
        from_seq: u64,
        to_seq: u64,
    },
    /// A resume by offsets asked for offsets `from..=to` of `partition`, which are not sent,
    /// for `reason`.
    OffsetGap {
        key: u64,
        category: Arc<str>,
        partition: i32,
        from: i64,
        to: i64,
        reason: GapReason,
    },
}

/// Bytes queued over all clients, against [`super::HubConfig::total_buffer`].
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    cap: usize,
}

impl Budget {
    pub(super) fn new(cap: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            cap,
        }
    }

    /// Takes `n` bytes whether or not they fit (a backlog already sized to [`Budget::room`]).
    pub(super) fn force(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    /// Takes the cost of the most lines that fit: `count` says how many fit in a room,
    /// `cost` what they take. Returns how many were taken.
    pub(super) fn take_fitting(
        &self,
        count: impl Fn(usize) -> usize,
        cost: impl Fn(usize) -> usize,
    ) -> usize {
        let mut n = 0;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                n = count(self.cap.saturating_sub(u));
                (n > 0).then(|| u + cost(n))
            });
        n
    }

    pub(super) fn give(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    pub(super) fn room(&self) -> usize {
        self.cap.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes queued over all clients now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// A client's bounded queue of lines waiting to be sent.
pub struct ClientQueue {
    state: Mutex<QueueState>,
    cap: usize,
    /// Shared by every client's queue.
    total: Arc<Budget>,
    batch_bytes: usize,
    /// Woken when the queue passes `batch_bytes`.
    pub notify: Notify,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Item>,
    bytes: usize,
    /// Lines refused for lack of room, per (subscription, category): (count, first seq).
    /// Reported in order: as an `Item::Dropped` before the next line that fits, or at the
    /// end of the next drain.
    dropping: HashMap<(u64, Arc<str>), (u64, u64)>,
}

impl ClientQueue {
    /// A queue of at most `cap` bytes, within the shared `total`, waking its sender once
    /// `batch_bytes` are queued.
    pub(super) fn new(cap: usize, total: Arc<Budget>, batch_bytes: usize) -> ClientQueue {
        ClientQueue {
            state: Mutex::new(QueueState::default()),
            cap,
            total,
            batch_bytes,
            notify: Notify::new(),
        }
    }

    /// Queues the lines of `chunk` that fit (whole lines, in order, within this client's
    /// bound and the shared budget) and counts the rest as dropped. One lock, one budget
    /// update and one item per client, whatever the number of lines.
    pub(super) fn push(
        &self,
        key: u64,
        category: &Arc<str>,
        chunk: &Arc<Chunk>,
        metrics: &Metrics,
    ) {
        let n = chunk.len();
        let mut q = lock(&self.state);
        let own = self.cap.saturating_sub(q.bytes);
        let fit = self
            .total
            .take_fitting(|room| chunk.fit(0, own.min(room)), |k| chunk.cost(0..k));
        if fit > 0 {
            if !q.dropping.is_empty() {
                if let Some((count, from_seq)) = q.dropping.remove(&(key, category.clone())) {
                    q.items.push_back(Item::Dropped {
                        key,
                        category: category.clone(),
                        count,
                        from_seq,
                    });
                }
            }
            q.bytes += chunk.cost(0..fit);
            q.items.push_back(Item::Lines {
                key,
                category: category.clone(),
                chunk: chunk.clone(),
                from: 0,
                to: fit,
            });
        }
        if fit < n {
            let dropped = (n - fit) as u64;
            let e = q
                .dropping
                .entry((key, category.clone()))
                .or_insert((0, chunk.seq(fit)));
            e.0 += dropped;
            metrics.lines_dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        let wake = q.bytes >= self.batch_bytes;
        drop(q);
        if wake {
            self.notify.notify_one();
        }
    }

    /// A gap in the seqs of `category` (lines lost at the source), after the lines and drops
    /// queued before it. Consecutive gaps merge, and while the client is over its bound the
    /// gap's seqs are counted with its dropped lines, so lost files cannot grow the queue.
    pub(super) fn push_gap(&self, key: u64, category: &Arc<str>, from: u64, to: u64) {
        let mut q = lock(&self.state);
        let id = (key, category.clone());
        if q.bytes >= self.cap {
            let e = q.dropping.entry(id).or_insert((0, from));
            e.0 += to - from + 1;
            return;
        }
        if let Some((count, from_seq)) = q.dropping.remove(&id) {
            q.items.push_back(Item::Dropped {
                key,
                category: category.clone(),
                count,
                from_seq,
            });
        }
        if let Some(Item::Gap {
            key: k,
            category: c,
            to_seq,
            ..
        }) = q.items.back_mut()
        {
            if *k == key && c == category && *to_seq + 1 == from {
                *to_seq = to;
                return;
            }
        }
        q.items.push_back(Item::Gap {
            key,
            category: category.clone(),
            from_seq: from,
            to_seq: to,
        });
    }

    /// Bytes that fit before the bound (this client's, and all clients' together).
    pub(super) fn room(&self) -> usize {
        self.cap
            .saturating_sub(lock(&self.state).bytes)
            .min(self.total.room())
    }

    /// Backlog and resume lines: the caller keeps them within [`ClientQueue::room`], and they
    /// count toward the bound for the live lines behind.
    pub(super) fn push_unbounded(&self, item: Item) {
        let mut q = lock(&self.state);
        if let Item::Lines {
            chunk, from, to, ..
        } = &item
        {
            let cost = chunk.cost(*from..*to);
            q.bytes += cost;
            self.total.force(cost);
        }
        q.items.push_back(item);
    }

    /// Takes everything queued, then the drops not yet reported (they happened after it).
    pub fn drain(&self) -> Vec<Item> {
        self.drain_upto(usize::MAX)
    }

    /// Takes queued items up to about `max_bytes` of lines (at least one line; a chunk is
    /// split where the bytes run out), so what a sender turns into messages at once is
    /// bounded; then, once the queue is empty, the drops not yet reported (they happened
    /// after it).
    pub fn drain_upto(&self, max_bytes: usize) -> Vec<Item> {
        let mut q = lock(&self.state);
        let mut items = Vec::new();
        let mut taken = 0usize;
        while taken < max_bytes {
            let Some(item) = q.items.pop_front() else {
                break;
            };
            let Item::Lines {
                key,
                category,
                chunk,
                from,
                to,
            } = item
            else {
                items.push(item);
                continue;
            };
            let end = from + chunk.fit(from, max_bytes - taken).clamp(1, to - from);
            if end < to {
                q.items.push_front(Item::Lines {
                    key,
                    category: category.clone(),
                    chunk: chunk.clone(),
                    from: end,
                    to,
                });
            }
            let cost = chunk.cost(from..end);
            taken += cost;
            q.bytes = q.bytes.saturating_sub(cost);
            self.total.give(cost);
            items.push(Item::Lines {
                key,
                category,
                chunk,
                from,
                to: end,
            });
        }
        if !q.items.is_empty() {
            return items;
        }
        self.total.give(q.bytes);
        q.bytes = 0;
        let mut drops: Vec<_> = q.dropping.drain().collect();
        drops.sort_by_key(|((key, cat), _)| (*key, cat.clone()));
        for ((key, category), (count, from_seq)) in drops {
            items.push(Item::Dropped {
                key,
                category,
                count,
                from_seq,
            });
        }
        items
    }

    pub fn is_empty(&self) -> bool {
        let q = lock(&self.state);
        q.items.is_empty() && q.dropping.is_empty()
    }
}

impl Drop for ClientQueue {
    /// A departing client's queued bytes go back to the shared budget.
    fn drop(&mut self) {
        let q = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.total.give(q.bytes);
    }
}
