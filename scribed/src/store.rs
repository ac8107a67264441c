//! The file store: one writer task per category, fed through a queue whose size in bytes is
//! bounded per category and globally.
//!
//! Admission is all-or-nothing per batch: [`FileStore::write`] reserves the batch's bytes
//! against both caps before anything is queued, and refuses the whole batch (the caller answers
//! `TRY_LATER`) when either would be exceeded. An idle store always admits one batch, however
//! large, so a batch bigger than a cap is slow rather than refused forever.
//!
//! Each writer task owns its [`RotatingWriter`]; the file I/O runs on tokio's blocking pool.
//! Jobs that queued up while a write was running are written together by the next blocking
//! call, so a busy category pays one thread hop per group of batches, not per batch. The lock on
//! the category map is held only to look a writer up, never across I/O. A category idle for a
//! minute has its file closed, so quiet categories do not hold descriptors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use scribe_archive::{Category, RotatingWriter, WriteError, WriteStats, WriterOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue full for category {category} ({queued} bytes queued, batch of {batch})")]
    QueueFull {
        category: String,
        queued: u64,
        batch: u64,
    },
    #[error("queue full overall ({queued} bytes queued, batch of {batch})")]
    GlobalQueueFull { queued: u64, batch: u64 },
    #[error("writing category {category}: {error}")]
    Write {
        category: String,
        error: Arc<WriteError>,
    },
    #[error("store is shut down")]
    Closed,
}

#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub max_category_queue: u64,
    pub max_queue: u64,
}

/// Messages of one category from one batch, in arrival order.
pub struct CategoryBatch {
    pub category: Category,
    pub messages: Vec<Bytes>,
    /// Sum of message lengths, what the queue caps count.
    pub bytes: u64,
}

struct WriteJob {
    messages: Vec<Bytes>,
    bytes: u64,
    done: oneshot::Sender<Result<WriteStats, Arc<WriteError>>>,
}

struct WriterHandle {
    tx: mpsc::UnboundedSender<WriteJob>,
    queued: Arc<AtomicU64>,
}

pub struct FileStore {
    data_dir: PathBuf,
    writer_opts: WriterOptions,
    limits: StoreLimits,
    queued: Arc<AtomicU64>,
    writers: Mutex<HashMap<Category, WriterHandle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Undoes a reservation when dropped, so bytes are released on every path (error, cancel).
struct Reservation {
    global: Arc<AtomicU64>,
    category: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.global.fetch_sub(self.bytes, Ordering::AcqRel);
        self.category.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl FileStore {
    pub fn new(data_dir: PathBuf, writer_opts: WriterOptions, limits: StoreLimits) -> Self {
        FileStore {
            data_dir,
            writer_opts,
            limits,
            queued: Arc::new(AtomicU64::new(0)),
            writers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Bytes queued for writing across all categories.
    pub fn queued_bytes(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Writes every group of a batch and returns when all are on disk (`write(2)` returned),
    /// or refuses the whole batch without writing any of it when a queue cap would be exceeded.
    pub async fn write(&self, groups: Vec<CategoryBatch>) -> Result<WriteStats, StoreError> {
        let mut reservations = Vec::with_capacity(groups.len());
        let mut pending = Vec::with_capacity(groups.len());
        {
            let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
            for g in &groups {
                let handle = self.handle_for(&mut writers, &g.category)?;
                reservations.push(self.reserve(&g.category, &handle.queued, g.bytes)?);
            }
            for g in groups {
                let handle = self.handle_for(&mut writers, &g.category)?;
                let (done, rx) = oneshot::channel();
                let job = WriteJob {
                    messages: g.messages,
                    bytes: g.bytes,
                    done,
                };
                handle.tx.send(job).map_err(|_| StoreError::Closed)?;
                pending.push((g.category, rx));
            }
        }
        let mut total = WriteStats::default();
        for (category, rx) in pending {
            match rx.await {
                Ok(Ok(s)) => {
                    total.messages += s.messages;
                    total.bytes += s.bytes;
                    total.rotations += s.rotations;
                }
                Ok(Err(error)) => {
                    return Err(StoreError::Write {
                        category: category.to_string(),
                        error,
                    })
                }
                Err(_) => return Err(StoreError::Closed),
            }
        }
        drop(reservations);
        Ok(total)
    }

    fn reserve(
        &self,
        category: &Category,
        cat_queued: &Arc<AtomicU64>,
        bytes: u64,
    ) -> Result<Reservation, StoreError> {
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        let cat_before = cat_queued.fetch_add(bytes, Ordering::AcqRel);
        let r = Reservation {
            global: self.queued.clone(),
            category: cat_queued.clone(),
            bytes,
        };
        if before > 0 && before + bytes > self.limits.max_queue {
            return Err(StoreError::GlobalQueueFull {
                queued: before,
                batch: bytes,
            });
        }
        if cat_before > 0 && cat_before + bytes > self.limits.max_category_queue {
            return Err(StoreError::QueueFull {
                category: category.to_string(),
                queued: cat_before,
                batch: bytes,
            });
        }
        Ok(r)
    }

    fn handle_for<'a>(
        &self,
        writers: &'a mut HashMap<Category, WriterHandle>,
        category: &Category,
    ) -> Result<&'a WriterHandle, StoreError> {
        if !writers.contains_key(category) {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run_writer(
                self.data_dir.clone(),
                category.clone(),
                self.writer_opts.clone(),
                rx,
            ));
            self.tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(task);
            writers.insert(
                category.clone(),
                WriterHandle {
                    tx,
                    queued: Arc::new(AtomicU64::new(0)),
                },
            );
        }
        writers.get(category).ok_or(StoreError::Closed)
    }

    /// Stops every writer after it has written what is queued, and fsyncs the files.
    pub async fn close(&self) {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Most bytes one blocking call writes before answering; bounds acknowledgement latency when a
/// category's queue is deep.
const MAX_GROUP_BYTES: u64 = 8 * 1024 * 1024;

/// A category with no writes for this long has its file closed until the next write.
const IDLE_CLOSE: std::time::Duration = std::time::Duration::from_secs(60);

async fn run_writer(
    data_dir: PathBuf,
    category: Category,
    opts: WriterOptions,
    mut rx: mpsc::UnboundedReceiver<WriteJob>,
) {
    let mut writer: Option<RotatingWriter> = None;
    loop {
        let first = match tokio::time::timeout(IDLE_CLOSE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_) => {
                // Idle: give the descriptor back (thousands of quiet categories must not
                // exhaust them); the next job reopens the newest file.
                if let Some(w) = writer.take() {
                    close_writer(w).await;
                }
                continue;
            }
        };
        let mut jobs = vec![first];
        let mut bytes = jobs[0].bytes;
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    bytes += j.bytes;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let (dir, cat, o) = (data_dir.clone(), category.clone(), opts.clone());
        let joined = tokio::task::spawn_blocking(move || {
            write_jobs(&mut writer, &dir, &cat, o, jobs);
            writer
        })
        .await;
        match joined {
            Ok(w) => writer = w,
            Err(e) => {
                // A panic inside the writer: its jobs' senders were dropped, so their callers
                // see the store as closed and answer TRY_LATER. Reopen on the next job.
                tracing::error!(%category, "writer task failed: {e}");
                writer = None;
            }
        }
    }
    if let Some(w) = writer {
        close_writer(w).await;
    }
}

/// fsyncs and closes a writer's file on the blocking pool.
async fn close_writer(mut w: RotatingWriter) {
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = w.sync() {
            tracing::warn!("closing: {e}");
        }
    })
    .await;
}

fn write_jobs(
    writer: &mut Option<RotatingWriter>,
    data_dir: &std::path::Path,
    category: &Category,
    opts: WriterOptions,
    jobs: Vec<WriteJob>,
) {
    for job in jobs {
        let result = open_writer(writer, data_dir, category, &opts).and_then(|w| {
            w.write_batch(job.messages.iter().map(|m| &m[..]))
                .map_err(Arc::new)
        });
        if let Err(e) = &result {
            tracing::error!(%category, "{e}");
        }
        let _ = job.done.send(result);
    }
}

fn open_writer<'a>(
    writer: &'a mut Option<RotatingWriter>,
    data_dir: &std::path::Path,
    category: &Category,
    opts: &WriterOptions,
) -> Result<&'a mut RotatingWriter, Arc<WriteError>> {
    if writer.is_none() {
        *writer = Some(RotatingWriter::open(data_dir, category, opts.clone()).map_err(Arc::new)?);
    }
    Ok(writer.as_mut().expect("opened above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(cat: &str, msgs: &[&'static [u8]]) -> CategoryBatch {
        let messages: Vec<Bytes> = msgs.iter().map(|m| Bytes::from_static(m)).collect();
        CategoryBatch {
            category: cat.parse().unwrap(),
            bytes: messages.iter().map(|m| m.len() as u64).sum(),
            messages,
        }
    }

    #[tokio::test]
    async fn writes_groups_to_their_categories() {
        let d = tempfile::tempdir().unwrap();
        let store = FileStore::new(
            d.path().to_path_buf(),
            WriterOptions { max_size: 0 },
            StoreLimits {
                max_category_queue: 1 << 20,
                max_queue: 1 << 20,
            },
        );
        let s = store
            .write(vec![batch("a", &[b"1", b"2"]), batch("b", &[b"3\n"])])
            .await
            .unwrap();
        assert_eq!(s.messages, 3);
        assert_eq!(
            std::fs::read(d.path().join("a/a_00000")).unwrap(),
            b"1\n2\n"
        );
        assert_eq!(std::fs::read(d.path().join("b/b_00000")).unwrap(), b"3\n");
        assert_eq!(store.queued_bytes(), 0);
        store.close().await;
    }

    #[test]
    fn over_cap_is_refused_and_released() {
        let store = FileStore::new(
            PathBuf::from("/nonexistent"),
            WriterOptions { max_size: 0 },
            StoreLimits {
                max_category_queue: 10,
                max_queue: 100,
            },
        );
        let cat: Category = "a".parse().unwrap();
        let q = Arc::new(AtomicU64::new(0));
        // Idle: a batch over the cap is admitted.
        let first = store.reserve(&cat, &q, 50).unwrap();
        // Busy: the next one is refused, and the refusal releases its bytes.
        assert!(matches!(
            store.reserve(&cat, &q, 5),
            Err(StoreError::QueueFull { .. })
        ));
        assert_eq!(store.queued_bytes(), 50);
        drop(first);
        assert_eq!(store.queued_bytes(), 0);
        assert_eq!(q.load(Ordering::Acquire), 0);
    }
}
