//! A scriptable in-memory store for unit tests of the composite stores.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Batch, Pending, Pipeline, Store, StoreError, StoreStatus};

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

    fn record(&self, batches: &[Batch]) {
        let mut r = self.received.lock().unwrap();
        for b in batches {
            for m in &b.messages {
                r.push((b.category.to_string(), m.clone()));
            }
        }
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
        self.record(batches);
        Ok(())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new("mock", "mock"));
    }

    async fn close(&self) {}
}

/// A primary with an ordered pipeline, as a network store's lane behaves: writes are answered
/// in the order started, one at a time after a short delay, so several are in flight; a
/// failure (`fail_permille`) halts it, and every write started before the next `resume` fails
/// too, recording nothing.
pub struct MockPipeline {
    pub store: MockStore,
    tx: tokio::sync::mpsc::UnboundedSender<PipeMsg>,
    in_flight: Arc<AtomicU64>,
    /// The most writes started and unanswered at once.
    pub max_in_flight: Arc<AtomicU64>,
    window: usize,
}

enum PipeMsg {
    Write(
        Vec<Batch>,
        tokio::sync::oneshot::Sender<Result<(), StoreError>>,
    ),
    Resume,
}

impl MockPipeline {
    /// Starts its task (on the current runtime); `window` as a lane's.
    pub fn start(window: usize) -> Arc<MockPipeline> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PipeMsg>();
        let me = Arc::new(MockPipeline {
            store: MockStore::default(),
            tx,
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            window,
        });
        let weak = Arc::downgrade(&me);
        tokio::spawn(async move {
            let mut halted = false;
            while let Some(msg) = rx.recv().await {
                let (batches, done) = match msg {
                    PipeMsg::Resume => {
                        halted = false;
                        continue;
                    }
                    PipeMsg::Write(b, d) => (b, d),
                };
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                let Some(me) = weak.upgrade() else { return };
                me.in_flight.fetch_sub(1, Ordering::AcqRel);
                halted = halted
                    || fastrand::u64(..1000) < me.store.fail_permille.load(Ordering::Relaxed);
                let result = if halted {
                    Err(StoreError::TryLater {
                        store: "mock".into(),
                        upstream: "mock".into(),
                    })
                } else {
                    me.store.record(&batches);
                    Ok(())
                };
                let _ = done.send(result);
            }
        });
        me
    }
}

impl Pipeline for MockPipeline {
    fn window(&self) -> usize {
        self.window
    }

    fn start(&self, batches: &[Batch]) -> Pending {
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_in_flight.fetch_max(now, Ordering::AcqRel);
        let (done, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(PipeMsg::Write(batches.to_vec(), done));
        Box::pin(async move {
            rx.await.unwrap_or(Err(StoreError::Closed {
                store: "mock".into(),
            }))
        })
    }

    fn resume(&self) {
        let _ = self.tx.send(PipeMsg::Resume);
    }
}

/// A store whose only way in is its [`MockPipeline`] (as a buffer store uses a network store).
pub struct PipelinedStore(pub Arc<MockPipeline>);

#[async_trait::async_trait]
impl Store for PipelinedStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        self.0.start(batches).await
    }

    fn pipeline(&self) -> Option<Arc<dyn Pipeline>> {
        Some(self.0.clone())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        out.push(StoreStatus::new("mock", "mock"));
    }

    async fn close(&self) {}
}
