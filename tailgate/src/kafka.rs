//! `--kafka BROKERS --topics 'logs.*'`: Kafka topics as categories (cargo feature `kafka`).
//!
//! One consumer on its own thread, in no consumer group: it assigns itself every partition
//! of every topic the glob matches (listed again every `--kafka-refresh`, so new topics and
//! partitions join), so every tailgate sees every line and none commits anything. A topic's
//! category is the topic template read backwards (`logs.{category}`, the rule scribed's
//! `kafka` store writes by, from `scribe_kafka`).
//!
//! Each partition starts at its end minus its share of the ring (`--ring-lines` over the
//! partitions), so the rings fill with the newest lines as a file category's do. Every line
//! carries its (partition, offset) into the hub, and clients get per-partition offsets to
//! resume by ([`crate::hub::Start::Offsets`]): unlike seqs they mean the same to the next
//! tailgate process, so a client that reconnects to a restarted tailgate gets what follows
//! its offsets, no gap and no duplicate; what it asks for below the ring is read back from
//! Kafka for it (`kafka/readback.rs`), as far as the topic's retention reaches.
//!
//! A record is one line (one Scribe message; its trailing `\n`, if any, is dropped). The
//! fetch buffers are bounded (`--kafka-fetch-queue` per partition, `fetch.max.bytes`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use scribe_archive::category::CategoryGlob;
use scribe_cli::RateLimitedWarn;
use scribe_kafka::{ClientSettings, FetchBounds, LogContext, TopicTemplate};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::ring::Origin;

mod readback;
pub use readback::ReadBackOptions;

/// What `--kafka` and its companion flags say.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub brokers: Vec<String>,
    /// Topics to tail (a glob over topic names).
    pub topics: CategoryGlob,
    pub template: TopicTemplate,
    /// librdkafka properties (TLS, SASL, timeouts), set last.
    pub properties: BTreeMap<String, String>,
    /// Prefetched bytes per partition.
    pub fetch_queue: u64,
    /// How often the topic list is read again.
    pub refresh: Duration,
    /// Resumes older than the ring, read back from the topic.
    pub read_back: ReadBackOptions,
}

/// Most records taken before they are published (and the next poll waits).
const BATCH: usize = 2000;
/// Longest wait for a record in one poll.
const POLL: Duration = Duration::from_millis(100);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// The consumer's `group.id`: never joined, nothing committed.
const GROUP: &str = "tailgate";
/// The read-backs' `group.id`, likewise never joined.
const READ_BACK_GROUP: &str = "tailgate-read-back";

type Client = BaseConsumer<LogContext>;
/// A category's lines with their origins, as the hub takes them.
type Lines = Vec<(Bytes, Option<Origin>)>;

/// Starts the consumer thread; it stops when `shutdown` is cancelled.
pub fn spawn(
    hub: Arc<Hub>,
    opts: KafkaOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let settings = ClientSettings {
        brokers: opts.brokers.clone(),
        client_id: "tailgate".into(),
        properties: opts.properties.clone(),
        ..Default::default()
    };
    let bounds = FetchBounds {
        queue_bytes: opts.fetch_queue,
        fetch_bytes: opts.fetch_queue.max(1 << 20),
    };
    // librdkafka assigns only through a group handle, so the consumer names one; it never
    // joins it (no subscribe) and never commits to it.
    let config = scribe_kafka::consumer_config(&settings, Some(GROUP), bounds)?;
    let consumer: Client = config
        .create_with_context(LogContext::new("tailgate --kafka", Default::default()))
        .context("creating the kafka consumer")?;
    let (tx, jobs) = std::sync::mpsc::channel();
    let read_back_config = scribe_kafka::consumer_config(&settings, Some(READ_BACK_GROUP), bounds)?;
    let workers = readback::spawn(
        hub.clone(),
        read_back_config,
        opts.template.clone(),
        opts.read_back.clone(),
        jobs,
        shutdown.clone(),
    )?;
    hub.enable_read_back(tx);
    let mut tail = Tail {
        hub,
        opts,
        consumer,
        assigned: BTreeSet::new(),
        warn: RateLimitedWarn::new(Duration::from_secs(10)),
    };
    std::thread::Builder::new()
        .name("kafka".into())
        .spawn(move || {
            tail.run(&shutdown);
            for w in workers {
                let _ = w.join();
            }
        })
        .context("starting the kafka thread")
}

struct Tail {
    hub: Arc<Hub>,
    opts: KafkaOptions,
    consumer: Client,
    assigned: BTreeSet<(String, i32)>,
    warn: RateLimitedWarn,
}

impl Tail {
    fn run(&mut self, shutdown: &CancellationToken) {
        let mut refresh_at = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= refresh_at {
                if let Err(e) = self.discover() {
                    self.warn.warn(|| format!("kafka: listing topics: {e:#}"));
                }
                refresh_at = Instant::now() + self.opts.refresh;
            }
            self.read_batch();
        }
        tracing::info!("kafka source stopped");
    }

    /// Waits up to [`POLL`] for a record, takes what else is ready (up to [`BATCH`]), and
    /// publishes it per category in the order read.
    fn read_batch(&self) {
        // Per category, in the order first read, its lines in the order read.
        let mut batch: Vec<(String, Lines)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut taken = 0;
        let mut wait = POLL;
        while taken < BATCH {
            let m = match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    self.warn.warn(|| format!("kafka: reading: {e}"));
                    break;
                }
                Some(Ok(m)) => m,
            };
            wait = Duration::ZERO;
            taken += 1;
            let Some(category) = self.opts.template.category_of(m.topic()) else {
                continue;
            };
            let origin = Origin {
                partition: m.partition(),
                offset: m.offset(),
            };
            let i = *index.entry(category.to_string()).or_insert_with(|| {
                batch.push((category.to_string(), Vec::new()));
                batch.len() - 1
            });
            batch[i].1.push((line_of(m.payload()), Some(origin)));
        }
        for (category, lines) in batch {
            if let Err(e) = self.hub.publish_from(&category, lines) {
                self.warn
                    .warn(|| format!("kafka: lines of {category} refused: {e}"));
            }
        }
    }

    /// Lists the topics and assigns the partitions of matching ones not yet assigned, each
    /// from its end minus its share of the ring.
    fn discover(&mut self) -> anyhow::Result<()> {
        let meta = self.consumer.fetch_metadata(None, METADATA_TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        let mut new = Vec::new();
        for t in meta.topics() {
            let topic = t.name();
            let Some(category) = self.opts.template.category_of(topic) else {
                continue;
            };
            if !self.opts.topics.matches(topic) || t.partitions().is_empty() {
                continue;
            }
            let share = self.hub.config().ring_lines.div_ceil(t.partitions().len()) as i64;
            for p in t.partitions() {
                let key = (topic.to_string(), p.id());
                if self.assigned.contains(&key) {
                    continue;
                }
                let (low, high) =
                    self.consumer
                        .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)?;
                let start = low.max(high - share);
                if let Err(e) = self.hub.start_partition(category, p.id(), start) {
                    self.warn.warn(|| format!("kafka: topic {topic}: {e}"));
                    continue;
                }
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(start))?;
                new.push(key);
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        self.consumer.incremental_assign(&tpl)?;
        tracing::info!(partitions = new.len(), "kafka: assigned");
        self.assigned.extend(new);
        Ok(())
    }
}

/// A record's line: its payload without one trailing `\n`.
fn line_of(payload: Option<&[u8]>) -> Bytes {
    let line = payload.unwrap_or_default();
    Bytes::copy_from_slice(line.strip_suffix(b"\n").unwrap_or(line))
}
