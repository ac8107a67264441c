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
//! States (as scribed's buffer store):
//! - **streaming**: batches go to the aggregator, up to `window` in flight.
//! - **spooling** (spool configured, and the aggregator refused or made no progress for
//!   `spool_after`): unacknowledged batches and every new batch are appended to the spool;
//!   after a backoff the outbox tries to drain.
//! - **draining**: the spool is replayed oldest first; new batches keep going to the spool
//!   *behind* the backlog, so order holds. Empty spool: streaming again.
//!
//! A full spool stops the outbox from taking new batches: the caller blocks, and for followed
//! files that means it stops reading — the files are the buffer, nothing is dropped. Without a
//! spool, the outbox keeps retrying (or gives up after `give_up`, for stdin).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use scribe_protocol::client::{Backoff, ClientOptions, DeliveryError, PipelinedSender};
use scribe_protocol::native::{decode_body, BatchBuilder};
use scribe_spool::{Entry, Position, Spool, SpoolError, SpoolOptions};
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    pub spool: Option<(PathBuf, SpoolOptions)>,
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

enum Tag<T> {
    Live { tag: T, lines: u64, bytes: u64 },
    Replay { position: Position, lines: u64 },
}

enum Mode {
    Streaming,
    Spooling { retry_at: Instant },
    Draining,
}

/// Replayed bytes acknowledged between two commits of the spool's read position.
const COMMIT_EVERY_BYTES: u64 = 16 << 20;

/// Delivers every batch from `input` until it closes, calling `done` with each batch's tag
/// once it is safe. Returns once `input` is closed and everything received was delivered
/// (with a spool, that includes replaying it). `report` is updated as it goes, so a caller
/// that stops waiting (dropping the future at a shutdown deadline) still has the counts;
/// that is safe at any await point: the spool on disk is always consistent, and batches
/// whose tags were not handed back are simply not safe yet.
pub async fn run<T: Send + 'static>(
    mut input: mpsc::Receiver<Batch<T>>,
    mut done: impl FnMut(T),
    opts: OutboxOptions,
    report: &mut OutboxReport,
) -> Result<(), OutboxError> {
    let timeout = match (&opts.spool, opts.give_up) {
        (Some(_), _) => opts.spool_after,
        (None, Some(t)) => t,
        // Practically forever; each failure is still logged with its retry delay.
        (None, None) => Duration::from_secs(10 * 365 * 86_400),
    };
    let mut sender =
        PipelinedSender::with_failover(opts.to.clone(), opts.client.clone(), opts.window, timeout);
    let mut spool = match &opts.spool {
        Some((dir, spool_opts)) => Some(blocking(|| Spool::open(dir, spool_opts.clone()))?),
        None => None,
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut mode = match &spool {
        Some(s) if !s.is_empty() => {
            tracing::info!(
                bytes = s.bytes(),
                "replaying the spool left by the last run"
            );
            Mode::Draining
        }
        _ => Mode::Streaming,
    };
    let mut input_done = false;
    // The held batch did not fit in a full spool; it goes first once there is room.
    let mut held: Option<Batch<T>> = None;
    let mut acked: Option<Position> = None;
    let mut acked_bytes = 0u64;

    // When the input ended with everything safe in the spool: when to stop replaying.
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if input_done && held.is_none() && !matches!(mode, Mode::Streaming) {
            let deadline =
                *drain_deadline.get_or_insert_with(|| Instant::now() + opts.drain_after_input);
            if Instant::now() >= deadline {
                if let (Some(spool), Some(p)) = (spool.as_mut(), acked.take()) {
                    blocking(|| spool.commit(p))?;
                }
                let left = spool.as_ref().map_or(0, |s| s.bytes());
                tracing::warn!(
                    left_bytes = left,
                    "stopping with undelivered lines safe in the spool; the next ship using it \
                     sends them"
                );
                report.left_in_spool = left;
                break;
            }
        }
        match mode {
            Mode::Streaming => {
                while sender.has_room() && !input_done {
                    let next = if sender.in_flight() == 0 {
                        input.recv().await
                    } else {
                        match input.try_recv() {
                            Ok(b) => Some(b),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        }
                    };
                    match next {
                        Some(b) => {
                            let tag = Tag::Live {
                                tag: b.tag,
                                lines: b.lines,
                                bytes: b.bytes,
                            };
                            sender.send(b.body, tag).await;
                        }
                        None => input_done = true,
                    }
                }
                if sender.in_flight() == 0 {
                    if input_done {
                        break;
                    }
                    continue;
                }
                match sender.next_ack().await {
                    Ok(tag) => complete(tag, report, &mut done),
                    Err(e) => {
                        let Some(spool) = spool.as_mut() else {
                            report.retries += sender.retries;
                            return Err(e.into());
                        };
                        tracing::warn!("{e}; spooling to disk until it is back");
                        // Everything unacknowledged goes to the spool, in order.
                        let unacked = sender.take_unacked();
                        let mut tags = Vec::with_capacity(unacked.len());
                        for (call, tag) in unacked {
                            if let Tag::Live { tag, lines, .. } = tag {
                                spool_call(spool, &call)?;
                                report.lines_spooled += lines;
                                tags.push(tag);
                            }
                        }
                        blocking(|| spool.sync())?;
                        tags.into_iter().for_each(&mut done);
                        mode = Mode::Spooling {
                            retry_at: Instant::now() + backoff.next_delay(),
                        };
                    }
                }
            }
            Mode::Spooling { retry_at } => {
                let spool = spool.as_mut().expect("spooling needs a spool");
                let more = spool_input(
                    spool,
                    &mut input,
                    &mut held,
                    &mut input_done,
                    Some(retry_at),
                    report,
                    &mut done,
                )
                .await?;
                if Instant::now() < retry_at {
                    if more {
                        continue;
                    }
                    let wake = drain_deadline.map_or(retry_at, |d| d.min(retry_at));
                    tokio::time::sleep_until(wake).await;
                }
                mode = Mode::Draining;
            }
            Mode::Draining => {
                let spool = spool.as_mut().expect("draining needs a spool");
                // New batches queue behind the backlog.
                spool_input(
                    spool,
                    &mut input,
                    &mut held,
                    &mut input_done,
                    None,
                    report,
                    &mut done,
                )
                .await?;
                while sender.has_room() {
                    let max = opts.max_frame / 2;
                    let Some(batch) = blocking(|| spool.next_batch(max))? else {
                        break;
                    };
                    let lines = batch.entries.len() as u64;
                    let mut builder = BatchBuilder::with_capacity(max);
                    for e in &batch.entries {
                        builder.push(&e.category, &e.message, e.id);
                    }
                    let tag = Tag::Replay {
                        position: batch.position,
                        lines,
                    };
                    sender.send(builder.finish(), tag).await;
                    acked_bytes += batch.bytes;
                }
                if sender.in_flight() == 0 {
                    // Nothing left to replay, and everything read was acknowledged: commit
                    // the read position (past any damaged bytes the reader skipped, which
                    // would otherwise keep the spool from ever counting as empty).
                    acked = None;
                    let end = spool.read_position();
                    if end != spool.committed_position() {
                        blocking(|| spool.commit(end))?;
                    }
                    if held.is_none() && spool.is_empty() {
                        if input_done {
                            break;
                        }
                        backoff.reset();
                        tracing::info!("spool drained; streaming again");
                        mode = Mode::Streaming;
                    }
                    continue;
                }
                match sender.next_ack().await {
                    Ok(Tag::Replay { position, lines }) => {
                        report.lines_replayed += lines;
                        report.lines_delivered += lines;
                        report.batches += 1;
                        acked = Some(position);
                        if acked_bytes >= COMMIT_EVERY_BYTES {
                            acked_bytes = 0;
                            if let Some(p) = acked.take() {
                                blocking(|| spool.commit(p))?;
                            }
                        }
                    }
                    Ok(live) => complete(live, report, &mut done),
                    Err(e) => {
                        tracing::warn!("{e}; replay paused");
                        // Replayed batches are still in the spool: resend from the last
                        // acknowledged one.
                        sender.take_unacked();
                        if let Some(p) = acked.take() {
                            blocking(|| spool.commit(p))?;
                        }
                        spool.rewind();
                        mode = Mode::Spooling {
                            retry_at: Instant::now() + backoff.next_delay(),
                        };
                    }
                }
            }
        }
    }
    report.retries += sender.retries;
    Ok(())
}

fn complete<T>(tag: Tag<T>, report: &mut OutboxReport, done: &mut impl FnMut(T)) {
    match tag {
        Tag::Live { tag, lines, bytes } => {
            report.lines_delivered += lines;
            report.bytes_delivered += bytes;
            report.batches += 1;
            done(tag);
        }
        // Replay tags are handled where the spool is at hand.
        Tag::Replay { lines, .. } => report.lines_replayed += lines,
    }
}

/// Moves batches from `input` to the spool until `until` (or, without a deadline, until
/// `input` has nothing ready), fsyncing once per group before handing the tags back.
/// Returns false when nothing more can be taken now (spool full or input closed).
async fn spool_input<T>(
    spool: &mut Spool,
    input: &mut mpsc::Receiver<Batch<T>>,
    held: &mut Option<Batch<T>>,
    input_done: &mut bool,
    until: Option<Instant>,
    report: &mut OutboxReport,
    done: &mut impl FnMut(T),
) -> Result<bool, OutboxError> {
    let mut tags = Vec::new();
    let mut more = true;
    loop {
        let next = match held.take() {
            Some(b) => Some(b),
            None if *input_done => {
                more = false;
                None
            }
            None => match until {
                // Wait for input until the deadline, but hand back what is spooled first.
                Some(deadline) if tags.is_empty() => {
                    match tokio::time::timeout_at(deadline, input.recv()).await {
                        Ok(Some(b)) => Some(b),
                        Ok(None) => {
                            *input_done = true;
                            more = false;
                            None
                        }
                        Err(_) => None,
                    }
                }
                _ => match input.try_recv() {
                    Ok(b) => Some(b),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        *input_done = true;
                        more = false;
                        None
                    }
                },
            },
        };
        let Some(b) = next else { break };
        match spool_call(spool, &b.body) {
            Ok(()) => {
                report.lines_spooled += b.lines;
                tags.push(b.tag);
            }
            Err(OutboxError::Spool(SpoolError::Full { .. })) => {
                // Stop taking input (the caller blocks, files stay unread) until replay
                // frees room.
                *held = Some(b);
                more = false;
                if let (Some(deadline), true) = (until, tags.is_empty()) {
                    // Nothing to hand back: wait out the deadline instead of spinning.
                    tokio::time::sleep_until(deadline).await;
                }
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !tags.is_empty() {
        blocking(|| spool.sync())?;
        tags.into_iter().for_each(done);
    }
    Ok(more)
}

/// Appends the entries of a batch body to the spool as one record, ids included.
fn spool_call(spool: &mut Spool, body: &Bytes) -> Result<(), OutboxError> {
    let entries = decode_body(body.clone()).map_err(|e| OutboxError::Decode(e.to_string()))?;
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|e| Entry::with_id(e.category, e.message, e.id))
        .collect();
    blocking(|| spool.append(&entries))?;
    Ok(())
}

/// Runs blocking file I/O without stalling the runtime's other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}
