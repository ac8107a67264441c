//! fb303 counters with Scribe's names: `<category>:<name>` mirrored as `scribe_overall:<name>`.

use std::collections::BTreeMap;
use std::sync::Mutex;

pub const RECEIVED_GOOD: &str = "received good";
pub const RECEIVED_BAD: &str = "received bad";
pub const RECEIVED_BLANK: &str = "received blank category";
pub const DENIED_QUEUE: &str = "denied for queue size";
pub const DENIED_RATE: &str = "denied for rate";
pub const WRITE_ERRORS: &str = "write errors";
pub const STORE_ERRORS: &str = "denied for store error";
pub const WRITTEN_MESSAGES: &str = "written messages";
pub const WRITTEN_BYTES: &str = "written bytes";
/// Entries with ids a file store had already written (a resend after a lost answer, a
/// restarted shipper, a replayed spool): acknowledged, not written again.
pub const DUPLICATES: &str = "duplicates skipped";
pub const IGNORED: &str = "ignored";
pub const SPOOLED: &str = "spooled";
pub const REPLAYED: &str = "replayed";
pub const DROPPED_CORRUPT: &str = "dropped corrupt";
/// Messages an upstream can never accept (longer than it takes), kept in a dead-letter file.
pub const DEAD_LETTERED: &str = "dead lettered";
pub const RELOADS: &str = "reloads";
pub const RELOAD_FAILURES: &str = "reload failures";

pub const OVERALL: &str = "scribe_overall";

/// Most categories that get counters of their own; past it only `scribe_overall` moves, so a
/// client inventing names cannot grow the map (and `/metrics`) without bound.
pub const MAX_COUNTED_CATEGORIES: usize = 50_000;

/// Counter values; cheap enough to update once per batch under a mutex.
#[derive(Default)]
pub struct Counters {
    values: Mutex<Values>,
}

#[derive(Default)]
struct Values {
    map: BTreeMap<String, i64>,
    categories: std::collections::HashSet<String>,
    warned: bool,
}

impl Counters {
    /// Adds `n` to `<category>:<name>` and `scribe_overall:<name>`. With no category (names
    /// that failed validation), only the overall counter moves: a hostile client must not be
    /// able to grow the counter map with arbitrary names.
    pub fn add(&self, category: Option<&str>, name: &str, n: i64) {
        if n == 0 {
            return;
        }
        let mut v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = category {
            let counted = v.categories.contains(c)
                || (v.categories.len() < MAX_COUNTED_CATEGORIES
                    && v.categories.insert(c.to_string()));
            if counted {
                *v.map.entry(format!("{c}:{name}")).or_default() += n;
            } else if !v.warned {
                v.warned = true;
                tracing::warn!(
                    "over {MAX_COUNTED_CATEGORIES} categories: new ones are counted only in {OVERALL}"
                );
            }
        }
        *v.map.entry(format!("{OVERALL}:{name}")).or_default() += n;
    }

    pub fn get(&self, key: &str) -> i64 {
        let v = self.values.lock().unwrap_or_else(|e| e.into_inner());
        v.map.get(key).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, i64> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_counters_mirror_overall() {
        let c = Counters::default();
        c.add(Some("a"), RECEIVED_GOOD, 2);
        c.add(Some("b"), RECEIVED_GOOD, 3);
        c.add(None, RECEIVED_BAD, 1);
        assert_eq!(c.get("a:received good"), 2);
        assert_eq!(c.get("scribe_overall:received good"), 5);
        assert_eq!(c.get("scribe_overall:received bad"), 1);
        assert_eq!(c.snapshot().len(), 4);
    }
}
