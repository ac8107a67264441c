//! The buffer store: a primary store (usually network) plus a disk spool for while the primary
//! is down — Scribe's store-and-forward, with its gaps closed.
//!
//! States:
//! - **streaming**: batches go to the primary. If it fails (or answers `TRY_LATER`), the batches
//!   are spooled instead and the store turns to *spooling*.
//! - **spooling**: batches are appended to the spool. After `retry_interval` (with jitter) the
//!   store turns to *draining*.
//! - **draining**: the spool is replayed oldest first, streamed in batches of about
//!   `replay_batch_bytes` (at least one record: one client batch); each replayed batch's
//!   position is committed only after the primary answered `OK`. New batches keep going to the
//!   spool *behind* the backlog while a replayed batch is in flight, so per-category order holds
//!   and a slow upstream does not stall clients. When the spool is empty the store is streaming
//!   again; if the primary fails, spooling again.
//!
//! The modes and the replay bookkeeping are `scribe_spool::forward`'s, shared with ship's
//! outbox: the replay position is committed every `min(16 MiB, max_spool_bytes / 4)` the
//! primary acknowledged, before any rewind, and at close; once drained, the read position is
//! committed, past any damage the reader skipped. A crash replays at most one interval again
//! (counted as `replayed`); nothing acknowledged is lost.
//!
//! This store's own policy: acknowledgement is `OK` once the primary acknowledged the batch,
//! or once it was appended to the spool **and fsynced**; a full spool (`max_spool_bytes`)
//! answers `TRY_LATER` rather than drop; retries wait `retry_interval` plus jitter. All
//! batches are handled by one task, in order, so group commit (one fsync for every batch
//! queued meanwhile) comes for free. Each client batch is its own spool record, so a replayed
//! record always fits a frame.
//!
//! Pipelining: through a primary with an ordered pipeline (a network store's lane, see
//! `lane.rs`) several writes are in flight, live or replayed (the lane's window); otherwise one.
//! A failed live write takes every write behind it down too (the lane halts): they are all
//! spooled, in order, before any newer batch, and only then is the lane resumed. A failed
//! replay rewinds the forwarder to what was acknowledged; the replays behind it are sent again.
//! Batches a connection submitted without waiting ([`Store::submit`]) carry its [`Chain`]: once
//! one is refused (a full spool), the connection's later ones are refused too, so nothing of it
//! is written behind a refused batch.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use scribe_archive::Category;
use scribe_protocol::EntryId;
use scribe_spool::forward::{Forwarder, Mode, Next};
use scribe_spool::{Entry, Spool, SpoolError, SpoolOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    build, take_queued, Batch, BuildContext, CategoryBatch, Chain, Pending, Pipeline, Store,
    StoreError, StoreStatus,
};
use crate::config::{dead_letter_dir, defaults, spool_dir, BufferSpec};
use crate::counters::{Counters, DROPPED_CORRUPT, REPLAYED, SPOOLED};

/// Most bytes of queued batches handled (sent or spooled) together.
const MAX_GROUP_BYTES: u64 = 4 * 1024 * 1024;

struct Job {
    batches: Vec<Batch>,
    bytes: u64,
    /// The connection's read-ahead this job belongs to, if it was submitted.
    chain: Option<Chain>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl Job {
    /// Answers the client; a refusal breaks the job's chain (see [`Chain`]).
    fn reply(self, result: Result<(), StoreError>) {
        if let (Err(_), Some(chain)) = (&result, &self.chain) {
            chain.break_off();
        }
        let _ = self.done.send(result);
    }

    fn is_cut_off(&self) -> bool {
        Chain::cuts_off(self.chain.as_ref())
    }
}

/// How batches reach the primary: its ordered pipeline (several in flight, in order), or
/// its `write`, one batch at a time.
enum Route {
    Pipeline(Arc<dyn Pipeline>),
    Write(Arc<dyn Store>),
}

impl Route {
    fn window(&self) -> usize {
        match self {
            Route::Pipeline(p) => p.window(),
            Route::Write(_) => 1,
        }
    }

    fn start(&self, batches: Vec<Batch>) -> Pending {
        match self {
            Route::Pipeline(p) => p.start(&batches),
            Route::Write(store) => {
                let store = store.clone();
                Box::pin(async move { store.write(&batches).await })
            }
        }
    }

    fn resume(&self) {
        if let Route::Pipeline(p) = self {
            p.resume();
        }
    }
}

/// What a write in flight to the primary carries.
enum Sent {
    /// Client batches: answered when the primary answers (or once spooled, if it fails).
    Live(Vec<Job>),
    /// A replayed spool batch: messages per category, counted as `replayed` once taken.
    Replay(Vec<(String, usize)>),
}

struct InFlight {
    sent: Sent,
    answer: Pending,
}

/// What woke the buffer task.
enum Event {
    Answer(Result<(), StoreError>),
    Job(Option<Job>),
    Retry,
}

/// State shared between the store handle and its task.
struct Shared {
    name: String,
    /// The forwarder's mode, as last published by the task.
    mode: Mutex<Mode>,
    queued: AtomicU64,
    spool_bytes: AtomicU64,
    problem: Mutex<Option<String>>,
}

pub struct BufferStore {
    shared: Arc<Shared>,
    primary: Arc<dyn Store>,
    /// Unbounded: what is queued is bounded by the routing's queue caps (bytes reserved
    /// until answered), and each connection's read-ahead by its window.
    tx: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Actor {
    shared: Arc<Shared>,
    route: Route,
    /// Writes to the primary not yet answered, oldest first: live batches while streaming,
    /// replayed ones while draining (never both), at most `route.window()`.
    in_flight: VecDeque<InFlight>,
    fwd: Forwarder,
    counters: Arc<Counters>,
    retry_interval: Duration,
    replay_batch_bytes: u64,
    retry_at: Instant,
}

impl BufferStore {
    pub fn from_spec(spec: &BufferSpec, ctx: &BuildContext<'_>) -> anyhow::Result<BufferStore> {
        let mut primary_ctx = ctx.child(".primary", None);
        // A message the primary's upstream can never take is kept beside the spool, under
        // the same directory lock, and replay moves past it.
        primary_ctx.dead_letter = Some(dead_letter_dir(&spool_dir(spec, &ctx.key, ctx.settings)));
        let primary = build(&spec.primary, &primary_ctx)?;
        BufferStore::with_primary(spec, ctx, primary)
    }

    /// A buffer store in front of an already-built primary.
    pub fn with_primary(
        spec: &BufferSpec,
        ctx: &BuildContext<'_>,
        primary: Arc<dyn Store>,
    ) -> anyhow::Result<BufferStore> {
        let dir: PathBuf = spool_dir(spec, &ctx.key, ctx.settings);
        let max_spool_bytes = spec
            .max_spool_bytes
            .map_or(defaults::MAX_SPOOL_BYTES, |s| s.0);
        let spool = Spool::open(
            &dir,
            SpoolOptions {
                max_bytes: max_spool_bytes,
                ..SpoolOptions::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{}: opening spool {}: {e}", ctx.name, dir.display()))?;
        let fwd = Forwarder::new(spool);
        let shared = Arc::new(Shared {
            name: ctx.name.clone(),
            mode: Mutex::new(fwd.mode()),
            queued: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(fwd.spool().bytes()),
            problem: Mutex::new(None),
        });
        if fwd.mode() == Mode::Draining {
            tracing::info!(store = %ctx.name, bytes = fwd.spool().bytes(), "spool has a backlog: replaying it first");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            shared: shared.clone(),
            route: match primary.pipeline() {
                Some(p) => Route::Pipeline(p),
                None => Route::Write(primary.clone()),
            },
            in_flight: VecDeque::new(),
            fwd,
            counters: ctx.counters.clone(),
            retry_interval: spec
                .retry_interval
                .map_or(defaults::RETRY_INTERVAL, |d| d.0),
            replay_batch_bytes: spec
                .replay_batch_bytes
                .map_or(defaults::REPLAY_BATCH_BYTES, |s| s.0),
            retry_at: Instant::now(),
        };
        let task = tokio::spawn(actor.run(rx));
        Ok(BufferStore {
            shared,
            primary,
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        })
    }
}

impl BufferStore {
    /// Queues a job behind every earlier one, at once.
    fn enqueue(
        &self,
        batches: &[Batch],
        chain: Option<Chain>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let closed = || StoreError::Closed {
            store: self.shared.name.clone(),
        };
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(closed)?;
        let bytes = batches.iter().map(|b| b.bytes).sum();
        let (done, rx) = oneshot::channel();
        self.shared.queued.fetch_add(bytes, Ordering::AcqRel);
        let job = Job {
            batches: batches.to_vec(),
            bytes,
            chain,
            done,
        };
        if tx.send(job).is_err() {
            self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
            return Err(closed());
        }
        Ok(rx)
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            store: self.shared.name.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Store for BufferStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let rx = self.enqueue(batches, None)?;
        rx.await.map_err(|_| self.closed())?
    }

    fn takes_over(&self) -> bool {
        true
    }

    fn submit(&self, batches: &[Batch], chain: &Chain) -> Option<Pending> {
        Some(match self.enqueue(batches, Some(chain.clone())) {
            Ok(rx) => {
                let closed = self.closed();
                Box::pin(async move { rx.await.unwrap_or(Err(closed)) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        })
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        let stopped = self
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| t.is_finished());
        let state = match *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) {
            _ if stopped => "stopped",
            mode => mode.as_str(),
        };
        out.push(StoreStatus {
            state: state.into(),
            queue_bytes: self.shared.queued.load(Ordering::Acquire),
            spool_bytes: self.shared.spool_bytes.load(Ordering::Acquire),
            problem: if stopped {
                Some("buffer task stopped unexpectedly; restart scribed".into())
            } else {
                self.shared
                    .problem
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            },
            ..StoreStatus::new(&self.shared.name, "buffer")
        });
        self.primary.status(out);
    }

    async fn close(&self) {
        // Dropping the sender lets the task finish the queued jobs, then stop.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.primary.close().await;
    }
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut open = true;
        loop {
            if open && self.fwd.mode() == Mode::Draining {
                self.top_up_replay();
            }
            if !open && self.in_flight.is_empty() {
                break;
            }
            let mode = self.fwd.mode();
            // While streaming, new batches wait for room in the window (and are grouped
            // meanwhile); otherwise they go to the spool behind the backlog at once, so a slow
            // upstream does not stall clients.
            let take =
                open && (mode != Mode::Streaming || self.in_flight.len() < self.route.window());
            let retry = open && mode == Mode::Spooling && self.in_flight.is_empty();
            let event = tokio::select! {
                biased;
                answer = next_answer(&mut self.in_flight) => Event::Answer(answer),
                job = rx.recv(), if take => Event::Job(job),
                _ = tokio::time::sleep_until(self.retry_at), if retry => Event::Retry,
            };
            match event {
                Event::Answer(answer) => {
                    let sent = self.in_flight.pop_front().expect("answered").sent;
                    self.answered(sent, answer, open).await;
                }
                Event::Job(Some(first)) => {
                    let mut left = self.group_jobs(rx.len() + 1) - 1;
                    let (jobs, _) = take_queued(
                        first,
                        MAX_GROUP_BYTES,
                        |j| j.bytes,
                        || {
                            left = left.checked_sub(1)?;
                            rx.try_recv().ok()
                        },
                    );
                    self.handle(jobs);
                }
                Event::Job(None) => open = false,
                Event::Retry => {
                    self.fwd.start_draining();
                    self.publish();
                }
            }
        }
        // Closing: every write in flight was answered (replays finish rather than being sent
        // again after the restart), so commit what the primary took.
        if let Err(e) = tokio::task::block_in_place(|| self.fwd.commit_acked()) {
            // Delivered: at worst replayed again after the restart.
            tracing::error!(store = %self.shared.name, "committing spool position: {e}");
        }
        if let Err(e) = tokio::task::block_in_place(|| self.fwd.sync()) {
            tracing::warn!(store = %self.shared.name, "syncing spool at close: {e}");
        }
    }

    /// How many of the `queued` jobs to handle together. While streaming they are spread over
    /// the window's free slots, so a pipelining client's batches stay several writes in flight
    /// upstream (one write holding all of them would wait for one answer, and the client's
    /// next batches behind it); a crowd of small jobs is still grouped into few writes. When
    /// spooling, everything queued goes to the spool together (one fsync).
    fn group_jobs(&self, queued: usize) -> usize {
        if self.fwd.mode() != Mode::Streaming {
            return usize::MAX;
        }
        let free = self
            .route
            .window()
            .saturating_sub(self.in_flight.len())
            .max(1);
        queued.div_ceil(free).max(1)
    }

    /// Streaming: starts the jobs' write to the primary. Otherwise: spools them.
    fn handle(&mut self, jobs: Vec<Job>) {
        if self.fwd.mode() != Mode::Streaming {
            let results = self.spool_jobs(&jobs);
            self.reply(jobs, results);
            return;
        }
        // Behind a refused batch of the same connection: refused too, never sent.
        let (jobs, cut_off): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| !j.is_cut_off());
        let refusals = cut_off.iter().map(|_| Err(self.cut_off())).collect();
        self.reply(cut_off, refusals);
        if jobs.is_empty() {
            return;
        }
        let batches: Vec<Batch> = jobs
            .iter()
            .flat_map(|j| j.batches.iter().cloned())
            .collect();
        let answer = self.route.start(batches);
        self.in_flight.push_back(InFlight {
            sent: Sent::Live(jobs),
            answer,
        });
    }

    /// The primary answered the oldest write in flight. `open`: new jobs may still come (when
    /// closing, no further replays are started).
    async fn answered(&mut self, sent: Sent, answer: Result<(), StoreError>, open: bool) {
        match (sent, answer) {
            (Sent::Live(jobs), Ok(())) => {
                let results = jobs.iter().map(|_| Ok(())).collect();
                self.reply(jobs, results);
            }
            (Sent::Live(jobs), Err(e)) => {
                // The primary may have taken part of the batches before failing (a split
                // call): those parts reach it again on replay (at-least-once; by id,
                // exactly-once into a file store upstream).
                tracing::warn!(store = %self.shared.name, "primary failed, spooling: {e}");
                self.fail(e.to_string());
                // Every write behind the failed one fails too (the pipeline halted): spool
                // them all, in order, before any newer batch.
                let mut failed = jobs;
                while let Some(f) = self.in_flight.pop_front() {
                    let Sent::Live(jobs) = f.sent else { continue };
                    match f.answer.await {
                        Ok(()) => {
                            let results = jobs.iter().map(|_| Ok(())).collect();
                            self.reply(jobs, results);
                        }
                        Err(_) => failed.extend(jobs),
                    }
                }
                let results = self.spool_jobs(&failed);
                self.reply(failed, results);
                self.route.resume();
            }
            (Sent::Replay(counts), Ok(())) => {
                for (c, n) in &counts {
                    self.counters.add(Some(c), REPLAYED, *n as i64);
                }
                let commit = self.fwd.note_acked();
                if commit && open {
                    // The commit's two fsyncs take milliseconds: refill the window first, so
                    // the primary has batches to take meanwhile.
                    self.top_up_replay();
                }
                if commit {
                    if let Err(e) = tokio::task::block_in_place(|| self.fwd.commit_acked()) {
                        // Delivered: at worst replayed again after a restart.
                        tracing::error!(store = %self.shared.name, "committing spool position: {e}");
                    }
                }
                self.publish();
            }
            (Sent::Replay(_), Err(e)) => {
                tracing::warn!(store = %self.shared.name, "replay failed, will retry: {e}");
                // The forwarder rewinds to what was acknowledged: the replays behind this one
                // are sent again after the retry interval, whatever their answers.
                self.fail(e.to_string());
                self.in_flight.clear();
                self.route.resume();
            }
        }
    }

    /// Answers the clients and releases their queued bytes.
    fn reply(&self, jobs: Vec<Job>, results: Vec<Result<(), StoreError>>) {
        let bytes: u64 = jobs.iter().map(|j| j.bytes).sum();
        self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        for (j, r) in jobs.into_iter().zip(results) {
            j.reply(r);
        }
    }

    fn cut_off(&self) -> StoreError {
        Chain::cut_off_error(&self.shared.name)
    }

    /// Appends each job as its own record (so a replayed record is never bigger than the
    /// client batch it came from, which fitted a frame), then fsyncs once for all of them. A
    /// job is acknowledged only if its append and the fsync succeeded.
    fn spool_jobs(&mut self, jobs: &[Job]) -> Vec<Result<(), StoreError>> {
        let name = &self.shared.name;
        let mut results: Vec<Result<(), StoreError>> = Vec::with_capacity(jobs.len());
        let cut_off = self.cut_off();
        tokio::task::block_in_place(|| {
            for job in jobs {
                if job.is_cut_off() {
                    results.push(Err(cut_off.clone()));
                    continue;
                }
                let entries: Vec<Entry> = job
                    .batches
                    .iter()
                    .flat_map(|b| {
                        let cat = Bytes::copy_from_slice(b.category.as_str().as_bytes());
                        // Ids go into the spool with their messages, so a replayed entry is
                        // still recognised upstream if it got there before.
                        b.messages
                            .iter()
                            .enumerate()
                            .map(move |(i, m)| Entry::with_id(cat.clone(), m.clone(), b.id(i)))
                    })
                    .collect();
                let appended = self.fwd.append(&entries);
                if let (Err(_), Some(chain)) = (&appended, &job.chain) {
                    chain.break_off();
                }
                results.push(appended.map_err(|e| match e {
                    SpoolError::Full {
                        queued, max_bytes, ..
                    } => StoreError::SpoolFull {
                        store: name.clone(),
                        spooled: queued,
                        limit: max_bytes,
                    },
                    e => {
                        tracing::error!(store = %name, "spool append failed: {e}");
                        StoreError::Failed {
                            store: name.clone(),
                            reason: format!("spool: {e}"),
                        }
                    }
                }));
            }
            if let Err(e) = self.fwd.sync() {
                // Appended but not durable: refuse. The records may still be replayed later,
                // so a client retry can produce a duplicate (at-least-once).
                tracing::error!(store = %name, "spool fsync failed: {e}");
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(StoreError::Failed {
                        store: name.clone(),
                        reason: format!("spool fsync: {e}"),
                    });
                }
            }
        });
        self.publish();
        for (job, r) in jobs.iter().zip(&results) {
            if r.is_ok() {
                for b in &job.batches {
                    self.counters
                        .add(Some(b.category.as_str()), SPOOLED, b.messages.len() as i64);
                }
            }
        }
        results
    }

    /// Draining: starts replayed batches while the window has room.
    fn top_up_replay(&mut self) {
        while self.fwd.mode() == Mode::Draining && self.in_flight.len() < self.route.window() {
            let Some(replay) = self.next_replay() else {
                break;
            };
            self.in_flight.push_back(replay);
        }
    }

    /// Reads the next spooled batch and starts sending it; `None` when there is none (the
    /// spool is drained: streaming again; or everything was read and some are in flight) or
    /// reading failed (spooling, retry later).
    fn next_replay(&mut self) -> Option<InFlight> {
        let max = usize::try_from(self.replay_batch_bytes).unwrap_or(usize::MAX);
        let next = tokio::task::block_in_place(|| self.fwd.next_batch(max));
        self.note_corruption();
        match next {
            Ok(Next::Send(batch)) => {
                let batches = group_entries(batch.entries, &self.counters);
                let counts = batches
                    .iter()
                    .map(|b| (b.category.to_string(), b.messages.len()))
                    .collect();
                Some(InFlight {
                    sent: Sent::Replay(counts),
                    answer: self.route.start(batches),
                })
            }
            Ok(Next::Drained) => {
                tracing::info!(store = %self.shared.name, "spool drained: streaming again");
                self.shared
                    .problem
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                self.publish();
                None
            }
            Ok(Next::Wait) if !self.in_flight.is_empty() => None,
            Ok(Next::Wait) => {
                // Not while draining with nothing in flight; retrying later beats spinning.
                tracing::error!(store = %self.shared.name, "spool replay stalled");
                self.fail("spool replay stalled".into());
                None
            }
            Err(e) => {
                tracing::error!(store = %self.shared.name, "reading spool: {e}");
                self.fail(format!("reading spool: {e}"));
                None
            }
        }
    }

    /// The primary failed (or the spool could not be read): spooling until `retry_interval`
    /// (plus jitter) has passed. While draining, the forwarder commits what the primary
    /// acknowledged and rewinds to it, so the retry resends exactly the rest.
    fn fail(&mut self, problem: String) {
        if let Err(e) = tokio::task::block_in_place(|| self.fwd.failed()) {
            // Delivered: at worst replayed again after a restart.
            tracing::error!(store = %self.shared.name, "committing spool position: {e}");
        }
        *self
            .shared
            .problem
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(problem);
        // Jitter spreads the retries of many leaves after a central restart.
        let jitter = self.retry_interval.mul_f64(fastrand::f64() * 0.5);
        let wait = self.retry_interval.saturating_add(jitter);
        self.retry_at = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        self.publish();
    }

    /// Shows the mode and the spool's size to `status` (and the `spool_bytes` gauge).
    fn publish(&self) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = self.fwd.mode();
        self.shared
            .spool_bytes
            .store(self.fwd.spool().bytes(), Ordering::Release);
    }

    fn note_corruption(&mut self) {
        let corrupt = self.fwd.take_corrupt_records();
        if corrupt > 0 {
            self.counters.add(None, DROPPED_CORRUPT, corrupt as i64);
        }
    }
}

/// The answer to the oldest write in flight; pending while there is none.
async fn next_answer(in_flight: &mut VecDeque<InFlight>) -> Result<(), StoreError> {
    match in_flight.front_mut() {
        Some(f) => (&mut f.answer).await,
        None => std::future::pending().await,
    }
}

/// Rebuilds per-category batches from spooled entries, keeping their order (consecutive
/// entries of one category form one batch). An entry whose category is not valid can only
/// come from corruption that passed the CRC; it is counted and skipped. The messages are
/// moved, not cloned: they stay slices of the record that was read.
fn group_entries(entries: Vec<Entry>, counters: &Counters) -> Vec<Batch> {
    let mut out: Vec<(Category, Vec<Bytes>, Vec<Option<EntryId>>)> = Vec::new();
    let total = entries.len();
    for e in entries {
        match out.last_mut() {
            Some((cat, messages, ids)) if cat.as_str().as_bytes() == &e.category[..] => {
                messages.push(e.message);
                ids.push(e.id);
            }
            _ => match Category::new(&e.category) {
                // Usually one category per record: the first run is sized for all of them
                // (once only, so alternating categories cannot multiply the allocation).
                Ok(c) => {
                    let cap = if out.is_empty() { total } else { 0 };
                    let (mut messages, mut ids) =
                        (Vec::with_capacity(cap), Vec::with_capacity(cap));
                    messages.push(e.message);
                    ids.push(e.id);
                    out.push((c, messages, ids));
                }
                Err(_) => counters.add(None, DROPPED_CORRUPT, 1),
            },
        }
    }
    out.into_iter()
        .map(|(c, messages, ids)| Arc::new(CategoryBatch::with_ids(c, messages, ids)))
        .collect()
}

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;
