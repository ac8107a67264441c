//! Admission control, decided for a whole batch before any of it is queued: queue caps (per
//! store and category, and overall) and the `max_msg_per_second` rate limit. A refused batch is
//! answered `TRY_LATER`, as Scribe did, and nothing of it is written.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use scribe_archive::Category;

#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("{store} queue for {category} is full ({queued} bytes queued, batch of {batch})")]
    Queue {
        store: String,
        category: String,
        queued: u64,
        batch: u64,
    },
    #[error("total queue is full ({queued} bytes queued, batch of {batch})")]
    TotalQueue { queued: u64, batch: u64 },
}

/// Size of the per-queue map at which pruning is first considered.
const MIN_PRUNE: usize = 4096;

/// Bytes queued per (store, category) and overall.
pub struct QueueCaps {
    per_queue: u64,
    total: u64,
    queued: Arc<AtomicU64>,
    queues: Mutex<Queues>,
}

/// Per-(store, category) counters. Entries of empty, unreferenced queues are pruned whenever
/// the map has doubled since the last pruning, so invented category names cannot grow it
/// without bound.
#[derive(Default)]
struct Queues {
    map: HashMap<(usize, Category), Arc<AtomicU64>>,
    prune_at: usize,
}

/// Releases its bytes when dropped, on every path (success, error, cancellation).
pub struct Reservation {
    counters: Vec<(Arc<AtomicU64>, u64)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for (c, n) in &self.counters {
            c.fetch_sub(*n, Ordering::AcqRel);
        }
    }
}

impl QueueCaps {
    pub fn new(per_queue: u64, total: u64) -> QueueCaps {
        QueueCaps {
            per_queue,
            total,
            queued: Arc::new(AtomicU64::new(0)),
            queues: Mutex::new(Queues {
                map: HashMap::new(),
                prune_at: MIN_PRUNE,
            }),
        }
    }

    pub fn total_queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Reserves room for every `(store, category, bytes)` of a batch, or none of it. An empty
    /// queue always admits one batch, however large, so an oversized batch is slow, not stuck.
    pub fn reserve(&self, parts: &[(usize, &str, &Category, u64)]) -> Result<Reservation, Denied> {
        let mut r = Reservation {
            counters: Vec::with_capacity(parts.len() + 1),
        };
        let total: u64 = parts.iter().map(|p| p.3).sum();
        let before = self.queued.fetch_add(total, Ordering::AcqRel);
        r.counters.push((self.queued.clone(), total));
        if before > 0 && before + total > self.total {
            return Err(Denied::TotalQueue {
                queued: before,
                batch: total,
            });
        }
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if queues.map.len() >= queues.prune_at {
            queues
                .map
                .retain(|_, q| Arc::strong_count(q) > 1 || q.load(Ordering::Acquire) > 0);
            queues.prune_at = (queues.map.len() * 2).max(MIN_PRUNE);
        }
        for &(store, store_name, category, bytes) in parts {
            let q = queues
                .map
                .entry((store, category.clone()))
                .or_insert_with(|| Arc::new(AtomicU64::new(0)))
                .clone();
            let before = q.fetch_add(bytes, Ordering::AcqRel);
            r.counters.push((q, bytes));
            if before > 0 && before + bytes > self.per_queue {
                return Err(Denied::Queue {
                    store: store_name.to_string(),
                    category: category.to_string(),
                    queued: before,
                    batch: bytes,
                });
            }
        }
        Ok(r)
    }
}

/// `max_msg_per_second` over one-second windows. As in Scribe, a batch bigger than half the
/// limit is always admitted (otherwise it could never be).
pub struct RateLimit {
    max: u64,
    window: Mutex<(Instant, u64)>,
}

impl RateLimit {
    pub fn new(max: u64) -> RateLimit {
        RateLimit {
            max,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    pub fn admit(&self, messages: u64) -> bool {
        if self.max == 0 || messages > self.max / 2 {
            return true;
        }
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.0.elapsed().as_secs() >= 1 {
            *w = (Instant::now(), 0);
        }
        if w.1 + messages > self.max {
            return false;
        }
        w.1 += messages;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_refuse_whole_batches_and_release_on_drop() {
        let caps = QueueCaps::new(10, 100);
        let a: Category = "a".parse().unwrap();
        let b: Category = "b".parse().unwrap();
        // Idle: admitted even though it is over the per-queue cap.
        let first = caps.reserve(&[(0, "s", &a, 50)]).unwrap();
        assert!(matches!(
            caps.reserve(&[(0, "s", &b, 5), (0, "s", &a, 5)]),
            Err(Denied::Queue { .. })
        ));
        // The refused batch released everything, including b's part.
        assert_eq!(caps.total_queued(), 50);
        let other = caps.reserve(&[(1, "t", &a, 5)]).unwrap();
        assert!(matches!(
            caps.reserve(&[(2, "u", &a, 60)]),
            Err(Denied::TotalQueue { .. })
        ));
        drop(first);
        drop(other);
        assert_eq!(caps.total_queued(), 0);
    }

    #[test]
    fn idle_queues_are_pruned() {
        let caps = QueueCaps::new(10, 1 << 40);
        let held: Category = "held".parse().unwrap();
        let keep = caps.reserve(&[(0, "s", &held, 1)]).unwrap();
        for i in 0..3 * MIN_PRUNE {
            let c: Category = format!("c{i}").parse().unwrap();
            drop(caps.reserve(&[(0, "s", &c, 1)]).unwrap());
        }
        let len = caps.queues.lock().unwrap().map.len();
        assert!(len < 2 * MIN_PRUNE, "map kept {len} entries");
        assert!(caps.queues.lock().unwrap().map.contains_key(&(0, held)));
        drop(keep);
    }

    #[test]
    fn rate_limit_counts_messages_per_second() {
        let r = RateLimit::new(100);
        assert!(r.admit(40));
        assert!(r.admit(40));
        assert!(!r.admit(40));
        assert!(r.admit(60), "over half the limit is always admitted");
        assert!(RateLimit::new(0).admit(1_000_000));
    }
}
