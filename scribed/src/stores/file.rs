//! The file store: one writer task per active category, each owning a [`RotatingWriter`] for
//! `<path>/<category>/`.
//!
//! The file I/O runs on tokio's blocking pool. Jobs that queued up while a write was running are
//! written together by the next blocking call (group commit: with `fsync = "batch"` one fsync
//! covers them all), so a busy category pays one thread hop per group, not per batch. The lock
//! on the category map is held to look a writer up and queue a job (never across I/O).
//!
//! Bounded by design, however many categories clients invent: every second each writer checks
//! time rotation and interval fsync; a category idle for a minute has its file closed and its
//! task retired (under the map lock, and only with an empty queue, so no job can be lost to a
//! retiring task); and a writer opens its file only with one of a process-wide number of slots
//! (half the descriptor limit), giving it back after each write while the slots are all taken,
//! and within a tick when idle while others wait for one.
//!
//! The store takes batches over ([`Store::submit`]): a job is queued to its category's writer
//! at once and answered once written, so a native connection reads its next batch (and the
//! kernel copies it in) while the writer writes this one, instead of taking turns. Order and
//! "nothing written behind a refusal" hold: a writer writes its queue in order, a job that
//! fails breaks its connection's [`Chain`] before the next job is looked at, and a job of a
//! broken chain is refused unwritten. What is queued stays bounded by the admission caps
//! (`max_queue_bytes`, `max_total_queue_bytes`) and by each connection's read-ahead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use scribe_archive::{Category, RotatingWriter, WriteError, WriteStats, WriterOptions};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::{take_queued, Batch, BuildContext, Chain, Pending, Store, StoreError, StoreStatus};
use crate::config::values::{parse_fsync, parse_rotate_period};
use crate::config::FileSpec;
use crate::counters::{Counters, DUPLICATES, WRITE_ERRORS, WRITTEN_BYTES, WRITTEN_MESSAGES};

/// Most bytes one blocking call writes before answering; bounds acknowledgement latency when a
/// category's queue is deep.
const MAX_GROUP_BYTES: u64 = 8 * 1024 * 1024;

/// How often a writer checks time rotation and interval fsync.
const TICK: Duration = Duration::from_secs(1);

/// A category with no writes for this long has its file closed and its task retired.
const IDLE_CLOSE: Duration = Duration::from_secs(60);

/// Permits to keep a category file open, process-wide. A writer takes one before opening its
/// file and gives it back when it closes; when none are free, writers close their files after
/// each write so that waiting ones get a turn. This bounds open descriptors however many
/// categories clients invent.
static OPEN_SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// Writers waiting for a slot. While any are, writers idle for a tick give theirs back, so a
/// new category is never held up behind files that merely sit open.
static WAITING_FOR_SLOT: AtomicUsize = AtomicUsize::new(0);

/// Waits for a slot, counted in [`WAITING_FOR_SLOT`] meanwhile.
async fn acquire_slot() -> Option<OwnedSemaphorePermit> {
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            WAITING_FOR_SLOT.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if let Ok(p) = open_slots().clone().try_acquire_owned() {
        return Some(p);
    }
    WAITING_FOR_SLOT.fetch_add(1, Ordering::AcqRel);
    let _waiting = Waiting;
    open_slots().clone().acquire_owned().await.ok()
}

/// Sizes the open-file budget from the descriptor limit: half of it for writers, each of
/// which holds two (its data file and its commit log), leaving the rest for connections,
/// spools and the directory operations of opening files. Call once at start; without it the
/// budget is 512 writers.
pub fn set_open_file_budget(nofile_limit: u64) {
    let budget = usize::try_from(nofile_limit / 4)
        .unwrap_or(usize::MAX)
        .clamp(16, Semaphore::MAX_PERMITS);
    let _ = OPEN_SLOTS.set(Arc::new(Semaphore::new(budget)));
}

fn open_slots() -> &'static Arc<Semaphore> {
    OPEN_SLOTS.get_or_init(|| Arc::new(Semaphore::new(512)))
}

/// A writer and the permit its open file holds.
struct OpenWriter {
    w: RotatingWriter,
    _slot: OwnedSemaphorePermit,
}

impl OpenWriter {
    fn open(task: &WriterTask, slot: OwnedSemaphorePermit) -> Result<OpenWriter, WriteError> {
        let w = RotatingWriter::open(&task.base, &task.category, task.opts.clone())?;
        Ok(OpenWriter { w, _slot: slot })
    }

    /// fsyncs and closes, returning the permit.
    fn close(mut self) {
        if let Err(e) = self.w.sync() {
            tracing::warn!("closing: {e}");
        }
    }
}

struct WriteJob {
    batch: Batch,
    /// The connection's chain, for a job taken over (see the module docs).
    chain: Option<Chain>,
    done: oneshot::Sender<Result<WriteStats, JobError>>,
}

/// Why a job was not written.
#[derive(Debug, Clone)]
enum JobError {
    Write(Arc<WriteError>),
    /// An earlier job of the same connection was refused.
    CutOff,
}

type Writers = Arc<Mutex<HashMap<Category, mpsc::UnboundedSender<WriteJob>>>>;

pub struct FileStore {
    name: String,
    base: PathBuf,
    opts: WriterOptions,
    counters: Arc<Counters>,
    queued: Arc<AtomicU64>,
    writers: Writers,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    failing: Arc<Mutex<Option<String>>>,
    /// The lock on the base directory the spec names (shared by bucket copies and by other
    /// stores of this process under it; see [`crate::locks`]).
    _lock: Arc<scribe_fs::DirLock>,
    /// `[store.s3]`: copies closed files to a bucket.
    uploader: super::upload::StoreUploader,
}

impl FileStore {
    /// `base` overrides the spec's path (bucket copies write to their own sub-directories).
    pub fn from_spec(
        spec: &FileSpec,
        ctx: &BuildContext<'_>,
        base: Option<PathBuf>,
    ) -> anyhow::Result<FileStore> {
        // Locked before any category in it is opened (and recovered).
        let locked = crate::config::file_base(spec, ctx.settings);
        let lock = crate::locks::lock(&locked, &format!("{} directory", ctx.name))?;
        let base = base.unwrap_or(locked);
        std::fs::create_dir_all(&base)
            .map_err(|e| anyhow::anyhow!("{}: creating {}: {e}", ctx.name, base.display()))?;
        let uploader = super::upload::StoreUploader::start(spec, &base, &ctx.name)?;
        Ok(FileStore {
            name: ctx.name.clone(),
            uploader,
            base,
            opts: writer_options(spec, ctx.settings.max_size)?,
            counters: ctx.counters.clone(),
            queued: Arc::new(AtomicU64::new(0)),
            writers: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(Vec::new()),
            failing: Arc::new(Mutex::new(None)),
            _lock: lock,
        })
    }

    /// Queues a job to the category's writer, starting one if there is none. Runs under the
    /// map lock, which a retiring writer also takes: a job is never sent to a writer that is
    /// going away.
    fn queue(
        &self,
        writers: &mut HashMap<Category, mpsc::UnboundedSender<WriteJob>>,
        job: WriteJob,
    ) -> Result<(), StoreError> {
        let category = job.batch.category.clone();
        if !writers.contains_key(&category) {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run_writer(
                WriterTask {
                    base: self.base.clone(),
                    category: category.clone(),
                    opts: self.opts.clone(),
                    counters: self.counters.clone(),
                    queued: self.queued.clone(),
                    failing: self.failing.clone(),
                    writers: self.writers.clone(),
                },
                rx,
            ));
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
            writers.insert(category.clone(), tx);
        }
        writers
            .get(&category)
            .ok_or_else(|| StoreError::Closed {
                store: self.name.clone(),
            })?
            .send(job)
            .map_err(|_| StoreError::Closed {
                store: self.name.clone(),
            })
    }

    /// Queues one job per batch to its category's writer; their answers to wait for.
    fn queue_all(
        &self,
        batches: &[Batch],
        chain: Option<&Chain>,
    ) -> Result<Vec<oneshot::Receiver<Result<WriteStats, JobError>>>, StoreError> {
        let mut pending = Vec::with_capacity(batches.len());
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        for b in batches {
            let (done, rx) = oneshot::channel();
            self.queued.fetch_add(b.bytes, Ordering::AcqRel);
            let job = WriteJob {
                batch: b.clone(),
                chain: chain.cloned(),
                done,
            };
            if let Err(e) = self.queue(&mut writers, job) {
                self.queued.fetch_sub(b.bytes, Ordering::AcqRel);
                return Err(e);
            }
            pending.push(rx);
        }
        Ok(pending)
    }
}

/// The first error among the jobs' answers, once all came.
async fn answer(
    store: String,
    pending: Vec<oneshot::Receiver<Result<WriteStats, JobError>>>,
) -> Result<(), StoreError> {
    let mut first_error = None;
    for rx in pending {
        let r = match rx.await {
            Ok(Ok(_)) => continue,
            Ok(Err(JobError::Write(e))) => StoreError::Failed {
                store: store.clone(),
                reason: e.to_string(),
            },
            Ok(Err(JobError::CutOff)) => Chain::cut_off_error(&store),
            Err(_) => StoreError::Closed {
                store: store.clone(),
            },
        };
        first_error.get_or_insert(r);
    }
    first_error.map_or(Ok(()), Err)
}

#[async_trait::async_trait]
impl Store for FileStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let pending = self.queue_all(batches, None)?;
        answer(self.name.clone(), pending).await
    }

    fn takes_over(&self) -> bool {
        true
    }

    fn submit(&self, batches: &[Batch], chain: &Chain) -> Option<Pending> {
        Some(match self.queue_all(batches, Some(chain)) {
            Ok(pending) => Box::pin(answer(self.name.clone(), pending)),
            Err(e) => {
                chain.break_off();
                Box::pin(std::future::ready(Err(e)))
            }
        })
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
            upload: self.uploader.state(),
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
        self.uploader.stop().await;
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
    writers: Writers,
}

async fn run_writer(task: WriterTask, mut rx: mpsc::UnboundedReceiver<WriteJob>) {
    let task = Arc::new(task);
    let mut writer: Option<OpenWriter> = None;
    let mut last_write = Instant::now();
    loop {
        let first = match tokio::time::timeout(TICK, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_) => {
                if last_write.elapsed() >= IDLE_CLOSE && retire(&task, &rx) {
                    break;
                }
                writer = tick(&task, writer).await;
                continue;
            }
        };
        last_write = Instant::now();
        let (jobs, bytes) = take_queued(
            first,
            MAX_GROUP_BYTES,
            |j| j.batch.bytes,
            || rx.try_recv().ok(),
        );
        // Wait for a slot before opening (not while holding one), so writers queue rather than
        // run the process out of descriptors.
        let slot = match writer {
            Some(_) => None,
            None => acquire_slot().await,
        };
        let t = task.clone();
        let joined = tokio::task::spawn_blocking(move || {
            write_jobs(&t, &mut writer, slot, jobs);
            // Others are waiting for a slot: give ours back; the next write reopens.
            if open_slots().available_permits() == 0 {
                if let Some(w) = writer.take() {
                    w.close();
                }
            }
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
        let _ = tokio::task::spawn_blocking(move || w.close()).await;
    }
}

/// Removes this writer from the map if nothing is queued for it; true when it did (the task
/// then ends). Holding the map lock, no job can be queued in between.
fn retire(task: &WriterTask, rx: &mpsc::UnboundedReceiver<WriteJob>) -> bool {
    let mut writers = task.writers.lock().unwrap_or_else(|e| e.into_inner());
    if !rx.is_empty() {
        return false;
    }
    writers.remove(&task.category);
    true
}

/// Periodic work: time rotation and interval fsync; and, when other writers wait for a slot,
/// closing this idle file to give its slot back.
async fn tick(task: &Arc<WriterTask>, writer: Option<OpenWriter>) -> Option<OpenWriter> {
    let mut w = writer?;
    let t = task.clone();
    tokio::task::spawn_blocking(move || {
        if WAITING_FOR_SLOT.load(Ordering::Acquire) > 0 {
            w.close();
            return None;
        }
        if let Err(e) = w.w.check_time().and_then(|_| w.w.maybe_sync()) {
            tracing::warn!(category = %t.category, "{e}");
        }
        Some(w)
    })
    .await
    .ok()
    .flatten()
}

fn write_jobs(
    task: &WriterTask,
    writer: &mut Option<OpenWriter>,
    mut slot: Option<OwnedSemaphorePermit>,
    jobs: Vec<WriteJob>,
) {
    let cat = task.category.as_str();
    for job in jobs {
        if Chain::cuts_off(job.chain.as_ref()) {
            let _ = job.done.send(Err(JobError::CutOff));
            continue;
        }
        let result = open_writer(writer, &mut slot, task).and_then(|w| {
            let b = &job.batch;
            w.w.write_pieces(b.pieces()).map_err(Arc::new)
        });
        match &result {
            Ok(s) => {
                task.counters
                    .add(Some(cat), WRITTEN_MESSAGES, s.messages as i64);
                task.counters.add(Some(cat), WRITTEN_BYTES, s.bytes as i64);
                if s.duplicates > 0 {
                    task.counters
                        .add(Some(cat), DUPLICATES, s.duplicates as i64);
                }
                task.failing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
            }
            Err(e) => {
                tracing::error!(category = cat, "{e}");
                task.counters.add(None, WRITE_ERRORS, 1);
                *task.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                // Before the next job is looked at: nothing of this connection is written
                // behind the refusal.
                if let Some(chain) = &job.chain {
                    chain.break_off();
                }
            }
        }
        let _ = job.done.send(result.map_err(JobError::Write));
    }
}

fn open_writer<'a>(
    writer: &'a mut Option<OpenWriter>,
    slot: &mut Option<OwnedSemaphorePermit>,
    task: &WriterTask,
) -> Result<&'a mut OpenWriter, Arc<WriteError>> {
    if writer.is_none() {
        // Normally the slot taken before this group; after a failed open earlier in the group
        // it was spent, so try for another without waiting.
        let permit = match slot.take() {
            Some(p) => p,
            None => open_slots().clone().try_acquire_owned().map_err(|_| {
                Arc::new(WriteError::Io {
                    op: "open (no free descriptor slot)",
                    path: task.base.join(task.category.as_str()),
                    source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
                })
            })?,
        };
        *writer = Some(OpenWriter::open(task, permit).map_err(Arc::new)?);
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
    o.idempotent = spec.idempotent.unwrap_or(true);
    o.hold_for_upload = spec.s3.is_some();
    o.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Args, Settings};
    use crate::stores::CategoryBatch;
    use bytes::Bytes;
    use clap::Parser;

    fn batch(cat: &str, msg: &str) -> Batch {
        Arc::new(CategoryBatch::new(
            cat.parse().unwrap(),
            vec![Bytes::from(format!("{msg}\n"))],
        ))
    }

    /// A connection's batch queued behind one its category's writer refused is refused too,
    /// unwritten, even once the cause is gone; a new connection's chain writes again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_taken_over_behind_a_refused_one_is_not_written() {
        let tmp = tempfile::tempdir().unwrap();
        let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
        let ctx = BuildContext {
            settings: &settings,
            counters: Arc::new(Counters::default()),
            name: "files".into(),
            key: "k".into(),
            dead_letter: None,
        };
        let spec = FileSpec {
            path: Some(tmp.path().join("data")),
            ..FileSpec::default()
        };
        let store = FileStore::from_spec(&spec, &ctx, None).unwrap();
        assert!(store.takes_over());
        // The category's directory cannot be made: a file is in its place.
        let blocker = tmp.path().join("data").join("a");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let chain = Chain::default();
        let first = store.submit(&[batch("a", "one")], &chain).unwrap();
        let second = store.submit(&[batch("a", "two")], &chain).unwrap();
        let (first, second) = (first.await, second.await);
        assert!(matches!(first, Err(StoreError::Failed { .. })), "{first:?}");
        assert!(
            matches!(&second, Err(StoreError::Failed { reason, .. }) if reason.contains("behind a refused batch")),
            "{second:?}"
        );
        assert!(chain.is_broken());
        // The cause is gone, but this chain stays refused: the client resends from the
        // refused batch on a new connection.
        std::fs::remove_file(&blocker).unwrap();
        let third = store.submit(&[batch("a", "three")], &chain).unwrap().await;
        assert!(third.is_err(), "{third:?}");
        assert!(!blocker.exists(), "nothing is written behind a refusal");
        let fresh = Chain::default();
        store
            .submit(&[batch("a", "one")], &fresh)
            .unwrap()
            .await
            .unwrap();
        store.write(&[batch("a", "two")]).await.unwrap();
        store.close().await;
        let mut written = Vec::new();
        for e in std::fs::read_dir(&blocker).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // The numbered files (not the `a_current` link to the newest).
            if name
                .strip_prefix("a_")
                .is_some_and(|n| n.bytes().all(|c| c.is_ascii_digit()))
            {
                written.extend(std::fs::read(p).unwrap());
            }
        }
        assert_eq!(written, b"one\ntwo\n");
        assert!(!fresh.is_broken());
    }
}
