//! The producer table: per producer, which ranges of its sequence space are committed.
//!
//! # Bounds
//!
//! Memory is bounded whatever producers send:
//!
//! - at most [`MAX_RANGES`] (16) merged ranges per producer. In the normal case a producer's
//!   entries are contiguous and its ranges merge into one; gaps appear only when failover
//!   delivers ranges out of order, and close once the missing part arrives. On overflow the
//!   **lowest** range is forgotten: an entry inside it would be written again (a duplicate),
//!   never dropped.
//! - producers not seen for `producer_ttl` (default 7 days) are forgotten (swept at open, at
//!   compaction and at most once a minute on commit).
//! - at most `max_producers` (default 100,000) producers per category: committing for a new
//!   producer when the table is full forgets the least recently seen one.
//!
//! Every bound only ever forgets, so its cost is a possible duplicate, never a loss. Worst case
//! memory: `max_producers × (16 × 16 bytes + ~100 bytes)`, about 36 MB at the defaults.

use std::collections::BTreeSet;
use std::time::Duration;

use scribe_ids::{EntryId, ProducerId, ProducerMap};

/// Merged ranges kept per producer.
pub const MAX_RANGES: usize = 16;

/// `producer_ttl` of [`crate::WriterOptions::default`]: 7 days.
pub const DEFAULT_PRODUCER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `max_producers` of [`crate::WriterOptions::default`].
pub const DEFAULT_MAX_PRODUCERS: usize = 100_000;

/// Sorted, disjoint, non-adjacent half-open ranges (adjacent ones are merged on insert).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    /// Whether `[start, end)` lies inside one range.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        // The last range beginning at or before `start` is the only candidate.
        let i = self.ranges.partition_point(|&(s, _)| s <= start);
        i > 0 && self.ranges[i - 1].1 >= end
    }

    /// Adds `[start, end)` (non-empty), merging with every range it overlaps or touches.
    pub fn insert(&mut self, start: u64, end: u64) {
        debug_assert!(start < end);
        // Fast path: the common in-order append extends the last range.
        if let Some(last) = self.ranges.last_mut() {
            if last.0 <= start && start <= last.1 {
                last.1 = last.1.max(end);
                return;
            }
        }
        // First range that ends at or after `start` (it may touch or overlap) ...
        let lo = self.ranges.partition_point(|&(_, e)| e < start);
        // ... and first range that begins after `end` (it neither touches nor overlaps).
        let hi = self.ranges.partition_point(|&(s, _)| s <= end);
        if lo == hi {
            self.ranges.insert(lo, (start, end));
        } else {
            let merged = (self.ranges[lo].0.min(start), self.ranges[hi - 1].1.max(end));
            self.ranges.splice(lo..hi, [merged]);
        }
    }

    /// Forgets the lowest ranges until at most `max` remain; returns how many were forgotten.
    pub fn cap(&mut self, max: usize) -> usize {
        let excess = self.ranges.len().saturating_sub(max);
        self.ranges.drain(..excess);
        excess
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    /// Where the highest range ends.
    pub fn end(&self) -> Option<u64> {
        self.ranges.last().map(|&(_, e)| e)
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }
}

#[derive(Debug, Clone)]
struct Producer {
    ranges: RangeSet,
    /// Unix seconds of the last commit for this producer.
    last_seen: u64,
}

/// Committed ranges per producer, bounded as the module docs describe.
#[derive(Debug, Clone)]
pub(crate) struct ProducerTable {
    producers: ProducerMap<Producer>,
    /// `(last_seen, id)` of every producer: eviction and expiry take from the front.
    by_age: BTreeSet<(u64, ProducerId)>,
    ttl_secs: u64,
    max_producers: usize,
    /// Ranges and producers forgotten because of the bounds (for metrics).
    pub forgotten_ranges: u64,
    pub evicted_producers: u64,
    pub expired_producers: u64,
}

impl ProducerTable {
    pub fn new(ttl: Duration, max_producers: usize) -> ProducerTable {
        ProducerTable {
            producers: ProducerMap::default(),
            by_age: BTreeSet::new(),
            ttl_secs: ttl.as_secs(),
            max_producers: max_producers.max(1),
            forgotten_ranges: 0,
            evicted_producers: 0,
            expired_producers: 0,
        }
    }

    /// Whether `id`'s whole range is inside one committed range of its producer.
    pub fn is_committed(&self, id: &EntryId) -> bool {
        self.producers
            .get(&id.producer)
            .is_some_and(|p| p.ranges.contains(id.start, id.end))
    }

    /// Where `producer`'s highest committed range ends (0: none).
    pub fn end(&self, producer: &ProducerId) -> u64 {
        self.producers
            .get(producer)
            .and_then(|p| p.ranges.end())
            .unwrap_or(0)
    }

    /// Records `ranges` as committed for `producer` at `now` (unix seconds).
    pub fn commit(&mut self, producer: ProducerId, ranges: &RangeSet, now: u64) {
        self.commit_with(producer, ranges.iter(), now);
    }

    pub fn commit_with(
        &mut self,
        producer: ProducerId,
        ranges: impl Iterator<Item = (u64, u64)>,
        now: u64,
    ) {
        if !self.producers.contains_key(&producer) {
            while self.producers.len() >= self.max_producers {
                if !self.evict_oldest() {
                    break;
                }
                self.evicted_producers += 1;
            }
        }
        let p = self.producers.entry(producer).or_insert(Producer {
            ranges: RangeSet::default(),
            last_seen: now,
        });
        // Never move backwards (a clock stepped back): the age index stays consistent.
        self.by_age.remove(&(p.last_seen, producer));
        p.last_seen = p.last_seen.max(now);
        self.by_age.insert((p.last_seen, producer));
        for (s, e) in ranges {
            if s < e {
                p.ranges.insert(s, e);
            }
        }
        self.forgotten_ranges += p.ranges.cap(MAX_RANGES) as u64;
    }

    fn evict_oldest(&mut self) -> bool {
        match self.by_age.pop_first() {
            Some((_, id)) => {
                self.producers.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Forgets producers not seen for the TTL as of `now`; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let Some(cutoff) = now.checked_sub(self.ttl_secs) else {
            return 0;
        };
        let mut n = 0;
        while let Some(&(seen, id)) = self.by_age.first() {
            if seen >= cutoff {
                break;
            }
            self.by_age.pop_first();
            self.producers.remove(&id);
            n += 1;
        }
        self.expired_producers += n as u64;
        n
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn range_count(&self) -> usize {
        self.producers.values().map(|p| p.ranges.len()).sum()
    }

    /// Every producer with its last-seen time and ranges (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (ProducerId, u64, &RangeSet)> + '_ {
        self.producers
            .iter()
            .map(|(id, p)| (*id, p.last_seen, &p.ranges))
    }

    pub fn clear(&mut self) {
        self.producers.clear();
        self.by_age.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::default();
        for &(a, b) in r {
            s.insert(a, b);
        }
        s
    }

    fn ranges(s: &RangeSet) -> Vec<(u64, u64)> {
        s.iter().collect()
    }

    #[test]
    fn ranges_merge_when_touching_or_overlapping() {
        assert_eq!(ranges(&set(&[(0, 10), (10, 20)])), [(0, 20)]);
        assert_eq!(ranges(&set(&[(20, 30), (0, 10)])), [(0, 10), (20, 30)]);
        assert_eq!(ranges(&set(&[(20, 30), (0, 10), (10, 20)])), [(0, 30)]);
        assert_eq!(ranges(&set(&[(20, 30), (0, 10), (5, 25)])), [(0, 30)]);
        assert_eq!(
            ranges(&set(&[(0, 1), (4, 5), (8, 9), (2, 3)])),
            [(0, 1), (2, 3), (4, 5), (8, 9)]
        );
        assert_eq!(ranges(&set(&[(0, 100), (10, 20)])), [(0, 100)]);
        assert_eq!(ranges(&set(&[(10, 20), (0, 100)])), [(0, 100)]);
    }

    #[test]
    fn contains_needs_one_range_to_hold_the_whole_entry() {
        let s = set(&[(0, 10), (20, 30)]);
        assert!(s.contains(0, 10));
        assert!(s.contains(3, 7));
        assert!(s.contains(20, 30));
        assert!(!s.contains(5, 15), "partial overlap is not committed");
        assert!(!s.contains(8, 22), "spanning a gap is not committed");
        assert!(!s.contains(10, 20));
        assert!(!s.contains(30, 31));
        assert!(!RangeSet::default().contains(0, 1));
    }

    #[test]
    fn table_keeps_sixteen_ranges_forgetting_the_lowest() {
        let p = ProducerId([1; 16]);
        let mut t = ProducerTable::new(DEFAULT_PRODUCER_TTL, 10);
        for i in 0..20u64 {
            t.commit_with(p, [(i * 10, i * 10 + 5)].into_iter(), 1);
        }
        let id = |s, e| EntryId {
            producer: p,
            start: s,
            end: e,
        };
        // Ranges 0..=3 were forgotten, 4..=19 kept.
        assert!(!t.is_committed(&id(30, 35)));
        assert!(t.is_committed(&id(40, 45)));
        assert!(t.is_committed(&id(190, 195)));
        assert_eq!(t.range_count(), MAX_RANGES);
        assert_eq!(t.forgotten_ranges, 4);
    }

    #[test]
    fn table_evicts_least_recently_seen_and_expires_idle_producers() {
        let mut t = ProducerTable::new(Duration::from_secs(100), 3);
        let p = |b: u8| ProducerId([b; 16]);
        let one = |n| [(0u64, 1u64)].into_iter().take(n);
        t.commit_with(p(1), one(1), 10);
        t.commit_with(p(2), one(1), 20);
        t.commit_with(p(3), one(1), 30);
        t.commit_with(p(1), one(1), 40); // 1 is now the most recent
        t.commit_with(p(4), one(1), 50); // full: evicts 2
        let has = |t: &ProducerTable, b| {
            t.is_committed(&EntryId {
                producer: p(b),
                start: 0,
                end: 1,
            })
        };
        assert!(has(&t, 1) && !has(&t, 2) && has(&t, 3) && has(&t, 4));
        assert_eq!(t.len(), 3);
        assert_eq!(t.evicted_producers, 1);
        // At 135 the cutoff is 35: producer 3 (seen at 30) expires.
        assert_eq!(t.expire(135), 1);
        assert!(has(&t, 1) && !has(&t, 3) && has(&t, 4));
        assert_eq!(t.expire(1000), 2);
        assert_eq!(t.len(), 0);
    }
}
