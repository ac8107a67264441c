//! The outbox: delivers batches (native bodies whose entries carry ids) to the aggregator,
//! through a disk spool while it is unreachable — ship's store-and-forward. Entry ids go into
//! the spool with their lines, so a replayed line the aggregator already has is recognised.
//!
//! Every mode of `ship` (stdin, `--follow`, `run`) hands its batches to one outbox task. Each
//! batch carries a caller's tag (for followed files: the file offsets it covers); the outbox
//! hands the tag back through `done` once the batch is **safe**: acknowledged `OK` by the
//! aggregator, or appended to the spool and fsynced. Only then may the caller advance its
//! checkpoints, so a line is never both forgotten by the source and not yet safe.
//!
//! The modes and the replay bookkeeping (when to commit, rewinding after a failure,
//! committing past damage once drained) are `scribe_spool::forward`'s, shared with scribed's
//! buffer store:
//! - **streaming**: batches go to the aggregator, up to `window` in flight.
//! - **spooling** (spool configured, and the aggregator refused or made no progress for
//!   `spool_after`): unacknowledged batches and every new batch are appended to the spool;
//!   after a backoff the outbox tries to drain.
//! - **draining**: the spool is replayed oldest first, up to `window` replayed batches in
//!   flight; new batches keep going to the spool *behind* the backlog, so order holds. Empty
//!   spool: streaming again.
//!
//! What is ship's own policy: a full spool stops the outbox from taking new batches (it holds
//! the one that did not fit), so the caller blocks, and for followed files that means it stops
//! reading — the files are the buffer, nothing is dropped. Without a spool, the outbox keeps
//! retrying (or gives up after `give_up`, for stdin).
//!
//! A full **disk** under the spool (`ENOSPC`, `EDQUOT`: an append, its fsync, creating the
//! spool) is handled like a full spool, never as an error ([`crate::disk`]): the batches the
//! spool could not take are held, oldest first, and no more input is taken (`ship run`'s
//! command blocks on its pipe, followed files wait, stdin is not read). The spool is tried
//! again with its own backoff (at most 5 s apart) and the aggregator with the usual one (the
//! spool's backlog is replayed, then the held batches are sent); whichever takes the held
//! batches first ends the wait. A spool that could not even be created is opened when it is
//! next needed. A failed commit of the replay position is not an error either: the lines were
//! delivered, and a restart before the next commit sends them again under the same ids.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use scribe_protocol::client::ClientOptions;
use scribe_protocol::native::{decode_body, BatchBuilder};
use scribe_protocol::sender::{Backoff, DeliveryError, PipelinedSender};
use scribe_spool::forward::{Forwarder, Mode, Next};
use scribe_spool::{Entry, ReplayBatch, Spool, SpoolError, SpoolOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::disk::DiskWait;

/// A spool's directory and options.
pub type SpoolAt = (PathBuf, SpoolOptions);

/// One batch body (see [`crate::batch::BatchBuf`]) and what it covers.
pub struct Batch<T> {
    pub body: Bytes,
    pub lines: u64,
    pub bytes: u64,
    pub tag: T,
}

#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// Aggregators in order of preference.
    pub to: Vec<String>,
    pub client: ClientOptions,
    pub window: usize,
    /// With a spool: how long without progress before batches go to the spool.
    pub spool_after: Duration,
    /// Without a spool: give up after this long without progress (`None`: never).
    pub give_up: Option<Duration>,
    pub spool: Option<SpoolAt>,
    /// With a spool: once the input has ended and everything is safe, keep replaying for at
    /// most this long, then return and leave the rest in the spool for the next run.
    pub drain_after_input: Duration,
    /// Largest frame the aggregator takes: bounds a replayed batch.
    pub max_frame: usize,
}

/// Counters of one outbox run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxReport {
    pub lines_delivered: u64,
    pub bytes_delivered: u64,
    pub batches: u64,
    pub retries: u64,
    /// Lines appended to the spool.
    pub lines_spooled: u64,
    /// Lines replayed from the spool and acknowledged.
    pub lines_replayed: u64,
    /// Spool bytes not delivered when the outbox stopped.
    pub left_in_spool: u64,
    /// Times the spool's disk was full (each wait for room counted once).
    pub disk_full: u64,
}

/// The counters as ship prints them at exit (`delivered=... disk_full=...`).
impl fmt::Display for OutboxReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered={} spooled={} replayed={} retries={} disk_full={} left_in_spool={}",
            self.lines_delivered,
            self.lines_spooled,
            self.lines_replayed,
            self.retries,
            self.disk_full,
            self.left_in_spool,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    #[error("a batch to spool does not decode: {0}")]
    Decode(String),
}

/// What the sender carries with each batch.
enum Tag<T> {
    Live {
        tag: T,
        lines: u64,
        bytes: u64,
    },
    /// Replayed from the spool (the forwarder keeps its position).
    Replay {
        lines: u64,
    },
}

enum Flow {
    Continue,
    Done,
}

/// Delivers every batch from `input` until it closes, calling `done` with each batch's tag
/// once it is safe. Returns once `input` is closed and everything received was delivered
/// (with a spool, that includes replaying it). `report` is updated as it goes, so a caller
/// that stops waiting (dropping the future at a shutdown deadline) still has the counts;
/// that is safe at any await point: the spool on disk is always consistent, and batches
/// whose tags were not handed back are simply not safe yet.
pub async fn run<T: Send + 'static>(
    input: mpsc::Receiver<Batch<T>>,
    done: impl FnMut(T),
    opts: OutboxOptions,
    report: &mut OutboxReport,
) -> Result<(), OutboxError> {
    let mut outbox = Outbox::open(input, done, &opts, report)?;
    let result = outbox.run().await;
    outbox.report.retries += outbox.sender.retries;
    result
}

/// The batches coming in, and those waiting to go before them.
struct Input<T> {
    rx: mpsc::Receiver<Batch<T>>,
    /// The channel is closed and empty.
    closed: bool,
    /// Batches that go before any new one, oldest first: what a full spool or a full disk
    /// could not take, and unacknowledged batches on their way to the spool.
    held: VecDeque<Batch<T>>,
}

impl<T> Input<T> {
    /// The oldest held batch, or the next one from the channel: waiting for it until `until`,
    /// or without waiting if `None`. `None` when there is none by then.
    async fn next(&mut self, until: Option<Instant>) -> Option<Batch<T>> {
        if let Some(b) = self.held.pop_front() {
            return Some(b);
        }
        if self.closed {
            return None;
        }
        let got = match until {
            Some(deadline) => tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .ok()?,
            None => match self.rx.try_recv() {
                Ok(b) => Some(b),
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            },
        };
        self.closed = got.is_none();
        got
    }

    /// The oldest held batch, or the next one from the channel however long it takes; `None`
    /// once the channel is closed.
    async fn wait(&mut self) -> Option<Batch<T>> {
        if let Some(b) = self.held.pop_front() {
            return Some(b);
        }
        if self.closed {
            return None;
        }
        let got = self.rx.recv().await;
        self.closed = got.is_none();
        got
    }

    /// Nothing more will come.
    fn finished(&self) -> bool {
        self.closed && self.held.is_empty()
    }

    /// Puts `batches` (oldest first) back ahead of everything else.
    fn hold_first(&mut self, batches: Vec<Batch<T>>) {
        for b in batches.into_iter().rev() {
            self.held.push_front(b);
        }
    }

    fn held_lines(&self) -> u64 {
        self.held.iter().map(|b| b.lines).sum()
    }
}

/// One run of the outbox: a method per mode. The mode itself is the forwarder's (always
/// streaming without a spool).
struct Outbox<'r, T, D> {
    input: Input<T>,
    /// Hands a batch's tag back once it is safe.
    done: D,
    report: &'r mut OutboxReport,
    sender: PipelinedSender<Tag<T>>,
    spool: Option<Forwarder>,
    /// A configured spool that could not be created for lack of room: opened when needed.
    unopened: Option<SpoolAt>,
    /// With the spool still unopened: the aggregator failed, and what it did not take waits
    /// for the spool (the mode is spooling).
    awaiting_spool: bool,
    /// The wait for room when the spool's disk is full.
    disk: DiskWait,
    backoff: Backoff,
    /// While spooling: when to try draining.
    retry_at: Instant,
    /// Once the input ended with everything safe in the spool: when to stop replaying.
    drain_deadline: Option<Instant>,
    drain_after_input: Duration,
    /// Bound of a replayed batch, so that it fits a frame.
    max_replay: usize,
}

impl<'r, T: Send + 'static, D: FnMut(T)> Outbox<'r, T, D> {
    fn open(
        rx: mpsc::Receiver<Batch<T>>,
        done: D,
        opts: &OutboxOptions,
        report: &'r mut OutboxReport,
    ) -> Result<Self, OutboxError> {
        let timeout = match (&opts.spool, opts.give_up) {
            (Some(_), _) => opts.spool_after,
            (None, Some(t)) => t,
            // Practically forever; each failure is still logged with its retry delay.
            (None, None) => Duration::from_secs(10 * 365 * 86_400),
        };
        let sender = PipelinedSender::with_failover(
            opts.to.clone(),
            opts.client.clone(),
            opts.window,
            timeout,
        );
        let (spool, unopened) = open_at_start(opts.spool.as_ref())?;
        Ok(Outbox {
            input: Input {
                rx,
                closed: false,
                held: VecDeque::new(),
            },
            done,
            report,
            sender,
            spool,
            unopened,
            awaiting_spool: false,
            disk: DiskWait::default(),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            retry_at: Instant::now(),
            drain_deadline: None,
            drain_after_input: opts.drain_after_input,
            max_replay: opts.max_frame / 2,
        })
    }

    async fn run(&mut self) -> Result<(), OutboxError> {
        loop {
            if self.out_of_time()? {
                return Ok(());
            }
            let flow = match self.mode() {
                Mode::Streaming => self.stream().await?,
                Mode::Spooling => self.spool_until_retry().await?,
                Mode::Draining => self.drain().await?,
            };
            if let Flow::Done = flow {
                return Ok(());
            }
        }
    }

    fn mode(&self) -> Mode {
        match &self.spool {
            Some(fwd) => fwd.mode(),
            None if self.awaiting_spool => Mode::Spooling,
            None => Mode::Streaming,
        }
    }

    /// Once the input has ended and everything is safe in the spool, replay goes on for at
    /// most `drain_after_input`; then the outbox stops, leaving the rest to the next ship
    /// using this spool. True when that time is up.
    fn out_of_time(&mut self) -> Result<bool, OutboxError> {
        if !self.input.finished() || self.mode() == Mode::Streaming {
            return Ok(false);
        }
        let deadline = *self
            .drain_deadline
            .get_or_insert_with(|| Instant::now() + self.drain_after_input);
        if Instant::now() < deadline {
            return Ok(false);
        }
        let mut left = 0;
        if let Some(fwd) = self.spool.as_mut() {
            let committed = blocking(|| fwd.commit_acked());
            left = fwd.spool().bytes();
            self.commit_result(committed)?;
        }
        tracing::warn!(
            left_bytes = left,
            "stopping with undelivered lines safe in the spool; the next ship using it sends them"
        );
        self.report.left_in_spool = left;
        Ok(true)
    }

    /// Streaming: keeps the window full of new batches and waits for the oldest's `OK`; on a
    /// failure, spools everything unacknowledged (or, without a spool, gives up).
    async fn stream(&mut self) -> Result<Flow, OutboxError> {
        while self.sender.has_room() {
            // Wait for input only with nothing in flight: acknowledgements come first.
            let next = if self.sender.in_flight() == 0 {
                self.input.wait().await
            } else {
                self.input.next(None).await
            };
            let Some(b) = next else { break };
            let tag = Tag::Live {
                tag: b.tag,
                lines: b.lines,
                bytes: b.bytes,
            };
            self.sender.send(b.body, tag).await;
        }
        if self.sender.in_flight() == 0 {
            // The input is closed and everything was delivered.
            return Ok(Flow::Done);
        }
        match self.sender.next_ack().await {
            Ok(tag) => self.complete(tag),
            Err(e) => self.spool_unacked(e)?,
        }
        Ok(Flow::Continue)
    }

    /// The aggregator failed while streaming: every unacknowledged batch goes to the spool, in
    /// order, ahead of anything held (spooling appends them first; each is safe once fsynced).
    fn spool_unacked(&mut self, e: DeliveryError) -> Result<(), OutboxError> {
        if self.spool.is_none() && self.unopened.is_none() {
            return Err(e.into());
        }
        if self.disk.waiting() {
            tracing::debug!("{e}; the spool's disk is still full");
        } else {
            tracing::warn!("{e}; spooling to disk until it is back");
        }
        let unacked = self
            .sender
            .take_unacked()
            .into_iter()
            .filter_map(|(body, tag)| match tag {
                Tag::Live { tag, lines, bytes } => Some(Batch {
                    body,
                    lines,
                    bytes,
                    tag,
                }),
                Tag::Replay { .. } => None,
            })
            .collect();
        self.input.hold_first(unacked);
        match self.spool.as_mut() {
            // Streaming: this only changes the mode (no commit).
            Some(fwd) => fwd.failed()?,
            None => self.awaiting_spool = true,
        }
        if e.denied {
            // The aggregator will not take these lines from this client (a category it may
            // not write, an unknown token): retrying cannot help. They are held or spooled
            // above; stop and say so.
            return Err(e.into());
        }
        self.retry_later();
        Ok(())
    }

    /// Spooling: new batches go to the spool until it is time to try draining.
    async fn spool_until_retry(&mut self) -> Result<Flow, OutboxError> {
        let retry_at = self.retry_at;
        let more = self.spool_input(Some(retry_at)).await?;
        if Instant::now() < retry_at {
            if more {
                return Ok(Flow::Continue);
            }
            // Nothing can be taken now (spool or disk full, or input closed): wait for the
            // aggregator's next try, or the disk's.
            let mut wake = self.drain_deadline.map_or(retry_at, |d| d.min(retry_at));
            wake = self.disk.next_try().map_or(wake, |t| t.min(wake));
            tokio::time::sleep_until(wake).await;
            if Instant::now() < retry_at {
                return Ok(Flow::Continue);
            }
        }
        match self.spool.as_mut() {
            Some(fwd) => fwd.start_draining(),
            // No spool could be created, so no backlog: try the aggregator with what is held.
            None => self.awaiting_spool = false,
        }
        Ok(Flow::Continue)
    }

    /// Draining: new batches queue behind the backlog; the window is filled with replayed
    /// batches; then the oldest's acknowledgement is awaited.
    async fn drain(&mut self) -> Result<Flow, OutboxError> {
        self.spool_input(None).await?;
        if self.send_replays().await? {
            if self.input.finished() {
                return Ok(Flow::Done);
            }
            self.backoff.reset();
            tracing::info!("spool drained; streaming again");
            return Ok(Flow::Continue);
        }
        if self.sender.in_flight() > 0 {
            self.await_replay_ack().await?;
        }
        Ok(Flow::Continue)
    }

    /// Reads replayed batches into the sender's window. True when the spool is drained (the
    /// forwarder is streaming again).
    async fn send_replays(&mut self) -> Result<bool, OutboxError> {
        let Some(fwd) = self.spool.as_mut() else {
            return Ok(false);
        };
        while self.sender.has_room() {
            match blocking(|| fwd.next_batch(self.max_replay)) {
                Ok(Next::Send(batch)) => {
                    let lines = batch.entries.len() as u64;
                    let body = replay_body(&batch, self.max_replay);
                    self.sender.send(body, Tag::Replay { lines }).await;
                }
                Ok(Next::Wait) => break,
                Ok(Next::Drained) => return Ok(true),
                // Everything was delivered, only the final commit failed: streaming anyway.
                Err(e) if e.is_disk_full() && fwd.mode() == Mode::Streaming => {
                    self.commit_result(Err(e))?;
                    return Ok(true);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    /// The oldest replayed batch's `OK` (counted and handed to the forwarder, which commits by
    /// its rule) or a failure (the forwarder commits what was acknowledged and rewinds; the
    /// outbox spools until the next try).
    async fn await_replay_ack(&mut self) -> Result<(), OutboxError> {
        let ack = self.sender.next_ack().await;
        let Some(fwd) = self.spool.as_mut() else {
            return Ok(());
        };
        match ack {
            Ok(Tag::Replay { lines }) => {
                self.report.lines_replayed += lines;
                self.report.lines_delivered += lines;
                self.report.batches += 1;
                let committed = blocking(|| fwd.acked());
                self.commit_result(committed)?;
            }
            Ok(live) => self.complete(live),
            Err(e) => {
                tracing::warn!("{e}; replay paused");
                // The replayed batches are still in the spool: the forwarder rewinds to them.
                self.sender.take_unacked();
                let committed = blocking(|| fwd.failed());
                self.commit_result(committed)?;
                if e.denied {
                    return Err(e.into());
                }
                self.retry_later();
            }
        }
        Ok(())
    }

    /// A commit's outcome: a full disk is only reported (see the module docs).
    fn commit_result(&mut self, r: Result<(), SpoolError>) -> Result<(), OutboxError> {
        match (r, self.spool.as_ref()) {
            (Err(e), Some(fwd)) if e.is_disk_full() => {
                self.disk.commit_failed(fwd.spool().dir(), &e);
                Ok(())
            }
            (r, _) => Ok(r?),
        }
    }

    /// Moves batches (held ones first) from the input to the spool until `until` (or, without
    /// a deadline, until the input has nothing ready), fsyncing once per group before handing
    /// the tags back. Returns false when nothing more can be taken now (spool or disk full,
    /// or input closed). While the disk is full, tries only when its next try is due.
    async fn spool_input(&mut self, until: Option<Instant>) -> Result<bool, OutboxError> {
        if !self.disk.may_try(Instant::now()) || !self.open_spool()? {
            return Ok(false);
        }
        let Some(fwd) = self.spool.as_mut() else {
            return Ok(false);
        };
        let mut spooled = Vec::new();
        let mut refused = None;
        // Wait for input until the deadline, but hand back what is spooled first.
        while let Some(b) = self.input.next(until.filter(|_| spooled.is_empty())).await {
            match spool_batch(fwd, &b.body) {
                Ok(()) => spooled.push(b),
                // A full spool: stop taking input (the caller blocks, files stay unread) until
                // replay frees room. A full disk: the append was cut back, and the same batch
                // goes first on the next try.
                Err(OutboxError::Spool(e))
                    if matches!(e, SpoolError::Full { .. }) || e.is_disk_full() =>
                {
                    self.input.held.push_front(b);
                    refused = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !spooled.is_empty() {
            refused = self.sync_spooled(spooled)?.or(refused);
        }
        match refused {
            Some(e) if e.is_disk_full() => self.disk_full(&e),
            Some(_) => {}
            None => return Ok(!self.input.closed),
        }
        Ok(false)
    }

    /// fsyncs the batches just appended and hands their tags back; after a failed fsync on a
    /// full disk, holds them again (first) and returns that error.
    fn sync_spooled(&mut self, spooled: Vec<Batch<T>>) -> Result<Option<SpoolError>, OutboxError> {
        let Some(fwd) = self.spool.as_mut() else {
            return Ok(None);
        };
        match blocking(|| fwd.sync()) {
            Ok(()) => {
                for b in spooled {
                    self.report.lines_spooled += b.lines;
                    (self.done)(b.tag);
                }
                self.disk.ended("the spool has room again");
                Ok(None)
            }
            Err(e) if e.is_disk_full() => {
                // Not durable, and a later fsync would prove nothing about these pages: cut
                // them off and append the batches again on the next try.
                if let Err(cut) = blocking(|| fwd.discard_unsynced()) {
                    tracing::warn!("{cut}; those lines may be delivered twice");
                }
                self.input.hold_first(spooled);
                Ok(Some(e))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The spool, opened now if it could not be created at start. False while it still
    /// cannot (a full disk, handled as a failed append).
    fn open_spool(&mut self) -> Result<bool, OutboxError> {
        if self.spool.is_some() {
            return Ok(true);
        }
        let Some((dir, o)) = &self.unopened else {
            return Ok(false);
        };
        match blocking(|| Spool::open(dir, o.clone())) {
            Ok(spool) => {
                let mut fwd = Forwarder::new(spool);
                // Opened during an outage: spooling (nothing to commit, so no I/O).
                fwd.failed()?;
                self.spool = Some(fwd);
                self.unopened = None;
                self.awaiting_spool = false;
                Ok(true)
            }
            Err(e) if e.is_disk_full() => {
                self.disk_full(&e);
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writing the spool failed for lack of room: hold on (see [`DiskWait`]).
    fn disk_full(&mut self, e: &SpoolError) {
        if self.disk.failed(e, self.input.held_lines()) {
            self.report.disk_full += 1;
        }
    }

    fn complete(&mut self, tag: Tag<T>) {
        match tag {
            Tag::Live { tag, lines, bytes } => {
                self.report.lines_delivered += lines;
                self.report.bytes_delivered += bytes;
                self.report.batches += 1;
                (self.done)(tag);
                if self.input.held.is_empty() {
                    self.disk.ended("the aggregator took what was held");
                }
            }
            // Replay tags are handled where the forwarder is at hand.
            Tag::Replay { lines } => self.report.lines_replayed += lines,
        }
    }

    fn retry_later(&mut self) {
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }
}

/// The configured spool, or, when its disk has no room to create it, what to open later
/// (opening an existing spool needs no room, so one that does not fit yet has no backlog to
/// replay before new batches).
fn open_at_start(
    spool: Option<&SpoolAt>,
) -> Result<(Option<Forwarder>, Option<SpoolAt>), OutboxError> {
    let Some((dir, o)) = spool else {
        return Ok((None, None));
    };
    match blocking(|| Spool::open(dir, o.clone())) {
        Ok(s) => {
            let fwd = Forwarder::new(s);
            if fwd.mode() == Mode::Draining {
                let bytes = fwd.spool().bytes();
                tracing::info!(bytes, "replaying the spool left by the last run");
            }
            Ok((Some(fwd), None))
        }
        Err(e) if e.is_disk_full() => {
            tracing::info!("{e}; the spool is created when it is needed");
            Ok((None, Some((dir.clone(), o.clone()))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Appends the entries of a batch body to the spool as one record, ids included.
fn spool_batch(fwd: &mut Forwarder, body: &Bytes) -> Result<(), OutboxError> {
    let entries = decode_body(body.clone()).map_err(|e| OutboxError::Decode(e.to_string()))?;
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|e| Entry::with_id(e.category, e.message, e.id))
        .collect();
    blocking(|| fwd.append(&entries))?;
    Ok(())
}

/// A replayed batch as a native body, ids included. The records' on-disk size (at most
/// `max`) is about the body's, so the buffer is allocated once.
fn replay_body(batch: &ReplayBatch, max: usize) -> Bytes {
    let size = usize::try_from(batch.bytes).map_or(max, |b| b.min(max));
    let mut builder = BatchBuilder::with_capacity(size);
    for e in &batch.entries {
        builder.push(&e.category, &e.message, e.id);
    }
    builder.finish()
}

/// Runs blocking file I/O without stalling the runtime's other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}
