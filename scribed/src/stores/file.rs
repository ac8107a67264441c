//! The file store: one writer task per category, each owning a [`RotatingWriter`] for
//! `<path>/<category>/`.
//!
//! The file I/O runs on tokio's blocking pool. Jobs that queued up while a write was running are
//! written together by the next blocking call (group commit: with `fsync = "batch"` one fsync
//! covers them all), so a busy category pays one thread hop per group, not per batch. The lock
//! on the category map is held only to look a writer up, never across I/O.
//!
//! Every second each writer checks time rotation and interval fsync; a category idle for a
//! minute has its file closed, so quiet categories do not hold descriptors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scribe_archive::{
    Category, Fsync, RotatePeriod, RotatingWriter, WriteError, WriteStats, WriterOptions,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Batch, BuildContext, Store, StoreError, StoreStatus};
use crate::config::FileSpec;
use crate::counters::{Counters, WRITE_ERRORS, WRITTEN_BYTES, WRITTEN_MESSAGES};

/// Most bytes one blocking call writes before answering; bounds acknowledgement latency when a
/// category's queue is deep.
const MAX_GROUP_BYTES: u64 = 8 * 1024 * 1024;

/// How often a writer checks time rotation and interval fsync.
const TICK: Duration = Duration::from_secs(1);

/// A category with no writes for this long has its file closed until the next write.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

struct WriteJob {
    batch: Batch,
    done: oneshot::Sender<Result<WriteStats, Arc<WriteError>>>,
}

pub struct FileStore {
    name: String,
    base: PathBuf,
    opts: WriterOptions,
    counters: Arc<Counters>,
    queued: Arc<AtomicU64>,
    writers: Mutex<HashMap<Category, mpsc::UnboundedSender<WriteJob>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    failing: Arc<Mutex<Option<String>>>,
}

impl FileStore {
    /// `base` overrides the spec's path (bucket copies write to their own sub-directories).
    pub fn from_spec(
        spec: &FileSpec,
        ctx: &BuildContext<'_>,
        base: Option<PathBuf>,
    ) -> anyhow::Result<FileStore> {
        let base = base
            .or_else(|| spec.path.clone())
            .unwrap_or_else(|| ctx.settings.data_dir.clone());
        std::fs::create_dir_all(&base)
            .map_err(|e| anyhow::anyhow!("{}: creating {}: {e}", ctx.name, base.display()))?;
        Ok(FileStore {
            name: ctx.name.clone(),
            base,
            opts: writer_options(spec, ctx.settings.max_size)?,
            counters: ctx.counters.clone(),
            queued: Arc::new(AtomicU64::new(0)),
            writers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            failing: Arc::new(Mutex::new(None)),
        })
    }

    fn sender_for(&self, category: &Category) -> mpsc::UnboundedSender<WriteJob> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = writers.get(category) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_writer(
            WriterTask {
                base: self.base.clone(),
                category: category.clone(),
                opts: self.opts.clone(),
                counters: self.counters.clone(),
                queued: self.queued.clone(),
                failing: self.failing.clone(),
            },
            rx,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
        writers.insert(category.clone(), tx.clone());
        tx
    }
}

#[async_trait::async_trait]
impl Store for FileStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let mut pending = Vec::with_capacity(batches.len());
        for b in batches {
            let (done, rx) = oneshot::channel();
            self.queued.fetch_add(b.bytes, Ordering::AcqRel);
            let job = WriteJob {
                batch: b.clone(),
                done,
            };
            if self.sender_for(&b.category).send(job).is_err() {
                self.queued.fetch_sub(b.bytes, Ordering::AcqRel);
                return Err(StoreError::Closed {
                    store: self.name.clone(),
                });
            }
            pending.push(rx);
        }
        let mut first_error = None;
        for rx in pending {
            let r = match rx.await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => StoreError::Failed {
                    store: self.name.clone(),
                    reason: e.to_string(),
                },
                Err(_) => StoreError::Closed {
                    store: self.name.clone(),
                },
            };
            first_error.get_or_insert(r);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        let problem = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        out.push(StoreStatus {
            state: if problem.is_some() { "failing" } else { "ok" }.into(),
            queue_bytes: self.queued.load(Ordering::Acquire),
            problem,
            ..StoreStatus::new(&self.name, "file")
        });
    }

    async fn close(&self) {
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

/// What a writer task owns besides its queue.
struct WriterTask {
    base: PathBuf,
    category: Category,
    opts: WriterOptions,
    counters: Arc<Counters>,
    queued: Arc<AtomicU64>,
    failing: Arc<Mutex<Option<String>>>,
}

async fn run_writer(task: WriterTask, mut rx: mpsc::UnboundedReceiver<WriteJob>) {
    let task = Arc::new(task);
    let mut writer: Option<RotatingWriter> = None;
    let mut last_write = Instant::now();
    loop {
        let first = match tokio::time::timeout(TICK, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_) => {
                writer = tick(&task, writer, last_write.elapsed() >= IDLE_CLOSE).await;
                continue;
            }
        };
        last_write = Instant::now();
        let mut jobs = vec![first];
        let mut bytes = jobs[0].batch.bytes;
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    bytes += j.batch.bytes;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let t = task.clone();
        let joined = tokio::task::spawn_blocking(move || {
            write_jobs(&t, &mut writer, jobs);
            writer
        })
        .await;
        task.queued.fetch_sub(bytes, Ordering::AcqRel);
        match joined {
            Ok(w) => writer = w,
            Err(e) => {
                // A panic inside the writer: its jobs' senders were dropped, so their callers
                // see the store as closed and answer TRY_LATER. Reopen on the next job.
                tracing::error!(category = %task.category, "writer failed: {e}");
                writer = None;
            }
        }
    }
    if let Some(w) = writer {
        let _ = tokio::task::spawn_blocking(move || close_writer(w)).await;
    }
}

/// Periodic work: time rotation, interval fsync, closing idle files.
async fn tick(
    task: &Arc<WriterTask>,
    writer: Option<RotatingWriter>,
    idle: bool,
) -> Option<RotatingWriter> {
    let mut w = writer?;
    let t = task.clone();
    tokio::task::spawn_blocking(move || {
        if idle {
            close_writer(w);
            return None;
        }
        if let Err(e) = w.check_time().and_then(|_| w.maybe_sync()) {
            tracing::warn!(category = %t.category, "{e}");
        }
        Some(w)
    })
    .await
    .ok()
    .flatten()
}

fn close_writer(mut w: RotatingWriter) {
    if let Err(e) = w.sync() {
        tracing::warn!("closing: {e}");
    }
}

fn write_jobs(task: &WriterTask, writer: &mut Option<RotatingWriter>, jobs: Vec<WriteJob>) {
    let cat = task.category.as_str();
    for job in jobs {
        let result = open_writer(writer, task).and_then(|w| {
            w.write_batch(job.batch.messages.iter().map(|m| &m[..]))
                .map_err(Arc::new)
        });
        match &result {
            Ok(s) => {
                task.counters
                    .add(Some(cat), WRITTEN_MESSAGES, s.messages as i64);
                task.counters.add(Some(cat), WRITTEN_BYTES, s.bytes as i64);
                task.failing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            }
            Err(e) => {
                tracing::error!(category = cat, "{e}");
                task.counters.add(None, WRITE_ERRORS, 1);
                *task.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
        let _ = job.done.send(result);
    }
}

fn open_writer<'a>(
    writer: &'a mut Option<RotatingWriter>,
    task: &WriterTask,
) -> Result<&'a mut RotatingWriter, Arc<WriteError>> {
    if writer.is_none() {
        *writer = Some(
            RotatingWriter::open(&task.base, &task.category, task.opts.clone())
                .map_err(Arc::new)?,
        );
    }
    Ok(writer.as_mut().expect("opened above"))
}

/// The writer options a file spec asks for.
pub fn writer_options(spec: &FileSpec, default_max_size: u64) -> anyhow::Result<WriterOptions> {
    let mut o = WriterOptions::new(spec.max_size.map_or(default_max_size, |s| s.0));
    if let Some(p) = &spec.rotate_period {
        o.rotate_period = parse_rotate_period(p).map_err(anyhow::Error::msg)?;
    }
    if let Some(h) = spec.rotate_hour {
        o.rotate_hour = h;
    }
    if let Some(m) = spec.rotate_minute {
        o.rotate_minute = m;
    }
    o.write_meta = spec.write_meta;
    o.compress = spec.compress;
    o.keep_files = spec.keep_files;
    o.keep_bytes = spec.keep_bytes.map(|s| s.0);
    o.keep_days = spec.keep_days;
    if let Some(f) = &spec.fsync {
        o.fsync = parse_fsync(f).map_err(anyhow::Error::msg)?;
    }
    o.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(o)
}

pub fn parse_rotate_period(s: &str) -> Result<RotatePeriod, String> {
    RotatePeriod::parse(s).map_err(|e| e.to_string())
}

/// `never`, `batch`, or an interval such as `1s`.
pub fn parse_fsync(s: &str) -> Result<Fsync, String> {
    match s {
        "never" => Ok(Fsync::Never),
        "batch" => Ok(Fsync::Batch),
        other => humantime::parse_duration(other)
            .ok()
            .filter(|d| !d.is_zero())
            .map(Fsync::Interval)
            .ok_or_else(|| format!("{other:?} is not `never`, `batch` or an interval like \"1s\"")),
    }
}
