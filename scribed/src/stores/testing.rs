//! A scriptable in-memory store for unit tests of the composite stores.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::{Batch, Store, StoreError, StoreStatus};

/// Records what it accepts; fails while `down`, or at random with `fail_ratio`. A failure
/// records nothing (a clean refusal, so any loss or duplicate seen is the caller's doing).
#[derive(Default)]
pub struct MockStore {
    pub down: AtomicBool,
    /// Failures in 1/1000ths.
    pub fail_permille: AtomicU64,
    pub received: Mutex<Vec<(String, bytes::Bytes)>>,
    pub calls: AtomicU64,
}

impl MockStore {
    pub fn messages(&self) -> Vec<(String, bytes::Bytes)> {
        self.received.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Store for MockStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let fail = self.down.load(Ordering::Relaxed)
            || fastrand::u64(..1000) < self.fail_permille.load(Ordering::Relaxed);
        if fail {
            return Err(StoreError::Unavailable {
                store: "mock".into(),
                reason: "scripted failure".into(),
            });
        }
        let mut r = self.received.lock().unwrap();
        for b in batches {
            for m in &b.messages {
                r.push((b.category.to_string(), m.clone()));
            }
        }
        Ok(())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new("mock", "mock"));
    }

    async fn close(&self) {}
}
