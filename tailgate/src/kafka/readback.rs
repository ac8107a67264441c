//! Reads back from Kafka what a resume by offsets asks for below the ring (the hub's side,
//! holding and handing over, is `hub/readback.rs`).
//!
//! A few worker threads (`--kafka-read-backs`, 4) take [`ReadBack`]s one at a time; more
//! wait their turn. Each read-back has a consumer of its own, assigned to the one partition
//! at the client's offset (no group, nothing committed; fetch buffers bounded like the
//! tail's), and reads only while the client's queue has room for a batch, so a slow client
//! slows its read-back rather than growing tailgate's memory: at most a batch plus
//! librdkafka's bounded prefetch per worker. It stops at the first of: the ring reaches back
//! to where it stands (hand-over), the per-resume caps (`--kafka-read-back-lines`,
//! `--kafka-read-back-bytes`), no record for `--kafka-read-back-timeout` (the broker is
//! down), the client leaving, shutdown. Whatever it does not send is named by an
//! `offset_gap` with its reason.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use scribe_archive::category::Category;
use scribe_kafka::{LogContext, TopicTemplate};
use tokio_util::sync::CancellationToken;

use super::{line_of, METADATA_TIMEOUT, POLL};
use crate::hub::{GapReason, Hub, ReadBack, Step};
use crate::ring::{Origin, LINE_OVERHEAD};

/// Bounds of read-backs.
#[derive(Debug, Clone)]
pub struct ReadBackOptions {
    /// Read-backs at once (each a consumer and a thread); more wait.
    pub workers: usize,
    /// Most lines one partition of one resume reads back: a client further behind gets an
    /// `offset_gap` for the oldest.
    pub max_lines: u64,
    /// Most bytes one partition of one resume reads back.
    pub max_bytes: u64,
    /// A read-back that gets no record for this long while Kafka should have some gives up
    /// (the broker is down or unreachable).
    pub timeout: Duration,
}

impl Default for ReadBackOptions {
    fn default() -> Self {
        ReadBackOptions {
            workers: 4,
            max_lines: 1_000_000,
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Most line bytes (with [`LINE_OVERHEAD`]) read before they are queued for the client.
const BATCH_BYTES: usize = 256 << 10;
/// How often a read-back waiting for its client's queue to drain looks again.
const PACE: Duration = Duration::from_millis(10);

/// Starts the workers; they take read-backs from `jobs` until `shutdown`.
pub(super) fn spawn(
    hub: Arc<Hub>,
    config: ClientConfig,
    template: TopicTemplate,
    opts: ReadBackOptions,
    jobs: Receiver<ReadBack>,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<std::thread::JoinHandle<()>>> {
    let jobs = Arc::new(Mutex::new(jobs));
    let worker = Arc::new(Worker {
        batch: BATCH_BYTES.min(hub.config().client_buffer / 4).max(1),
        hub,
        config,
        template,
        opts,
        shutdown,
    });
    (0..worker.opts.workers.max(1))
        .map(|i| {
            let (worker, jobs) = (worker.clone(), jobs.clone());
            std::thread::Builder::new()
                .name(format!("kafka-read-back-{i}"))
                .spawn(move || worker.run(&jobs))
                .context("starting a kafka read-back thread")
        })
        .collect()
}

struct Worker {
    hub: Arc<Hub>,
    config: ClientConfig,
    template: TopicTemplate,
    opts: ReadBackOptions,
    shutdown: CancellationToken,
    /// Bytes read per batch, and the room a client's queue needs before the next.
    batch: usize,
}

/// Why a read-back ended early, and where.
struct Failed {
    at: i64,
    cause: String,
}

/// One read-back's consumer and where it stands.
struct Reader {
    consumer: BaseConsumer<LogContext>,
    last_error: Arc<Mutex<Option<String>>>,
    /// The next offset wanted.
    at: i64,
    /// A record read past a jump in offsets: it starts the next batch.
    pending: Option<(Bytes, Origin)>,
}

/// Records read in one go: `lines` from `jump.1` (or the reader's position before), after a
/// jump in offsets from `jump.0` when there was one.
struct Batch {
    lines: Vec<(Bytes, Origin)>,
    jump: Option<(i64, i64)>,
    cost: usize,
}

impl Worker {
    fn run(&self, jobs: &Mutex<Receiver<ReadBack>>) {
        while !self.shutdown.is_cancelled() {
            // One worker waits on the channel at a time; the others wait for the lock.
            let job = match jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(POLL)
            {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if job.cancelled() {
                continue;
            }
            if let Err(f) = self.read_back(&job) {
                tracing::warn!(
                    category = job.category(),
                    partition = job.partition,
                    "kafka read-back from offset {} failed: {}",
                    f.at,
                    f.cause
                );
                job.finish(f.at, GapReason::Failed(f.cause.into()));
            }
        }
    }

    /// Reads `job`'s span and hands over to the ring; `Err` says where it failed and why.
    fn read_back(&self, job: &ReadBack) -> Result<(), Failed> {
        let fail = |at: i64| {
            move |e: &dyn std::fmt::Display| Failed {
                at,
                cause: e.to_string(),
            }
        };
        let category = Category::new(job.category().as_bytes()).map_err(|e| fail(job.from)(&e))?;
        let topic = self.template.topic_of(&category);
        let last_error = Arc::new(Mutex::new(None));
        let consumer: BaseConsumer<LogContext> = self
            .config
            .create_with_context(LogContext::new("tailgate read-back", last_error.clone()))
            .map_err(|e| fail(job.from)(&e))?;
        let (low, _) = consumer
            .fetch_watermarks(&topic, job.partition, METADATA_TIMEOUT)
            .map_err(|e| fail(job.from)(&explain(&e, &last_error)))?;
        let mut at = job.from;
        if at < low {
            job.gap(at, low - 1, GapReason::Retention);
            at = low;
        }
        let max_lines = i64::try_from(self.opts.max_lines).unwrap_or(i64::MAX);
        if job.end.saturating_sub(at) > max_lines {
            job.gap(
                at,
                job.end - max_lines - 1,
                GapReason::BehindLines(self.opts.max_lines),
            );
            at = job.end - max_lines;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, job.partition, Offset::Offset(at))
            .and_then(|()| consumer.assign(&tpl))
            .map_err(|e| fail(at)(&e))?;
        let mut reader = Reader {
            consumer,
            last_error,
            at,
            pending: None,
        };
        self.read_until_handed_over(job, &mut reader, &topic)
    }

    fn read_until_handed_over(
        &self,
        job: &ReadBack,
        r: &mut Reader,
        topic: &str,
    ) -> Result<(), Failed> {
        let (mut lines, mut bytes) = (0u64, 0u64);
        let mut idle = Duration::ZERO;
        // The ring may reach back to the start already (it moved since the request).
        let mut step = job.deliver(r.at, Vec::new(), r.at);
        while step == Step::More {
            if self.shutdown.is_cancelled() || job.cancelled() {
                return Ok(());
            }
            if lines >= self.opts.max_lines {
                job.finish(r.at, GapReason::BehindLines(self.opts.max_lines));
                return Ok(());
            }
            if bytes >= self.opts.max_bytes {
                job.finish(r.at, GapReason::BehindBytes(self.opts.max_bytes));
                return Ok(());
            }
            if job.room() < self.batch {
                std::thread::sleep(PACE);
                continue;
            }
            let before = r.at;
            let batch = r.read(self.batch);
            if batch.lines.is_empty() {
                idle += POLL;
                if idle >= self.opts.timeout {
                    let why = format!("no record from the broker for {:?}", self.opts.timeout);
                    return Err(Failed {
                        at: r.at,
                        cause: explain(&why, &r.last_error),
                    });
                }
            } else {
                idle = Duration::ZERO;
            }
            let mut from = before;
            if let Some((expected, got)) = batch.jump {
                // librdkafka restarts from the low watermark when the offset wanted was
                // deleted meanwhile; a jump for compaction or transaction markers is no loss.
                if let Ok((low, _)) =
                    r.consumer
                        .fetch_watermarks(topic, job.partition, METADATA_TIMEOUT)
                {
                    if low > expected {
                        job.gap(expected, low.min(got) - 1, GapReason::Retention);
                        from = low.min(got);
                    }
                }
            }
            lines += batch.lines.len() as u64;
            bytes += batch.cost as u64;
            self.hub.metrics.lines_read_back.fetch_add(
                batch.lines.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            step = job.deliver(from, batch.lines, r.at);
        }
        Ok(())
    }
}

impl Reader {
    /// Records from the reader's position, up to `max` bytes of lines, stopping before a
    /// jump in offsets (which then starts the next batch, with `jump` set).
    fn read(&mut self, max: usize) -> Batch {
        let mut b = Batch {
            lines: Vec::new(),
            jump: None,
            cost: 0,
        };
        let mut wait = POLL;
        while b.cost < max {
            let record = match self.pending.take() {
                Some(r) => r,
                None => match self.consumer.poll(wait) {
                    None => break,
                    Some(Err(e)) => {
                        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(e.to_string());
                        break;
                    }
                    Some(Ok(m)) => (
                        line_of(m.payload()),
                        Origin {
                            partition: m.partition(),
                            offset: m.offset(),
                        },
                    ),
                },
            };
            wait = Duration::ZERO;
            let offset = record.1.offset;
            if offset < self.at {
                continue;
            }
            if offset > self.at {
                if !b.lines.is_empty() {
                    self.pending = Some(record);
                    break;
                }
                b.jump = Some((self.at, offset));
            }
            b.cost += record.0.len() + LINE_OVERHEAD;
            b.lines.push(record);
            self.at = offset + 1;
        }
        b
    }
}

/// `e`, with the client's last error when that names the cause better (a refused
/// connection behind a timeout).
fn explain(e: &dyn std::fmt::Display, last: &Mutex<Option<String>>) -> String {
    match &*last.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(cause) => format!("{e} ({cause})"),
        None => e.to_string(),
    }
}
