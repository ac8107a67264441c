//! `[[kafka_input]]`: the archiver. Reads the topics a glob matches (`logs.*`) and routes their
//! records like a `Log` call, as the category the topic template names (`logs.{category}`
//! read backwards), each with the entry id of its `scribe.id` header. Routed to a file store,
//! the category's commit log then writes a record that was produced twice (a producer retry,
//! a replay after a crash) once.
//!
//! Offsets are committed to the consumer group only after the stores answered `OK` for every
//! record up to them, so a crash at any point re-reads at most the batches since the last
//! commit, and the commit log drops what had been written already: every line exactly once.
//! While the stores refuse (`TRY_LATER`), the batch is retried and nothing more is read.
//!
//! Modes: `group` joins the consumer group (the partitions are shared among the archivers;
//! librdkafka rebalances as they come and go); `assign` reads every partition of the matching
//! topics itself, starting at the group's committed offsets (tests, and a single archiver
//! that should not wait for a group join). Topics are discovered every 10 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use scribe_cli::RateLimitedWarn;
use scribe_protocol::server::Incoming;
use scribe_protocol::ResultCode;
use tokio::time::Instant;

use super::InputStats;
use crate::config::kafka::KafkaInput;
use crate::stores::kafka_client::{self, LogContext};
use crate::{handler, Server};

type Client = StreamConsumer<LogContext>;

/// How long a batch waits for more records before it is routed.
const LINGER: Duration = Duration::from_millis(100);
/// How often the topic list is read again.
const DISCOVER_EVERY: Duration = Duration::from_secs(10);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts each `[[kafka_input]]` on `tracker`; each stops at shutdown after routing and
/// committing the batch it holds (if the stores take it).
pub fn spawn(
    inputs: &[KafkaInput],
    server: &Arc<Server>,
    tracker: &tokio_util::task::TaskTracker,
) -> anyhow::Result<()> {
    for input in inputs {
        let consumer = Arc::new(new_consumer(input)?);
        let stats = InputStats::new(&input.name, "kafka");
        server.inputs.register(stats.clone());
        let archiver = Archiver {
            input: input.clone(),
            consumer,
            server: server.clone(),
            stats,
            warn: RateLimitedWarn::new(Duration::from_secs(10)),
            topics: BTreeSet::new(),
            partitions: BTreeSet::new(),
            template: input.client.template(),
        };
        tracker.spawn(archiver.run());
    }
    Ok(())
}

fn new_consumer(input: &KafkaInput) -> anyhow::Result<Client> {
    let bounds = scribe_kafka::FetchBounds {
        queue_bytes: input.max_fetch_queue_bytes,
        ..Default::default()
    };
    let c = scribe_kafka::consumer_config(
        &kafka_client::settings(&input.client),
        Some(&input.group),
        bounds,
    )
    .with_context(|| format!("{}: kafka settings", input.name))?;
    c.create_with_context(LogContext::new(&input.name, Default::default()))
        .map_err(|e| anyhow::anyhow!("{}: creating the kafka consumer: {e}", input.name))
}

struct Archiver {
    input: KafkaInput,
    consumer: Arc<Client>,
    server: Arc<Server>,
    stats: Arc<InputStats>,
    warn: RateLimitedWarn,
    /// Topics subscribed to (group mode) or assigned (assign mode).
    topics: BTreeSet<String>,
    /// Assign mode: partitions assigned.
    partitions: BTreeSet<(String, i32)>,
    template: scribe_kafka::TopicTemplate,
}

/// A batch read and not yet committed: its entries and the next offset of each partition.
#[derive(Default)]
struct Pending {
    entries: Vec<Incoming>,
    bytes: u64,
    next: BTreeMap<(String, i32), i64>,
}

impl Archiver {
    async fn run(mut self) {
        let shutdown = self.server.shutdown.clone();
        let mut discover_at = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= discover_at {
                if let Err(e) = self.discover().await {
                    let name = &self.input.name;
                    self.warn.warn(|| format!("{name}: listing topics: {e:#}"));
                }
                discover_at = Instant::now() + DISCOVER_EVERY;
            }
            let pending = self.read_batch(discover_at).await;
            if pending.next.is_empty() {
                continue;
            }
            if !self.route(&pending).await {
                break;
            }
            self.commit(&pending).await;
        }
        let name = self.input.name.clone();
        tracing::info!(input = %name, "kafka input stopped");
    }

    /// Reads records until `max_batch_bytes`, a pause of [`LINGER`] after the first, the
    /// next discovery, or shutdown.
    async fn read_batch(&self, until: Instant) -> Pending {
        let mut p = Pending::default();
        let shutdown = self.server.shutdown.clone();
        let mut deadline = until;
        while p.bytes < self.input.max_batch_bytes {
            let m = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = tokio::time::timeout_at(deadline, self.consumer.recv()) => match r {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        let name = &self.input.name;
                        self.warn.warn(|| format!("{name}: reading: {e}"));
                        // Errors (brokers down) can come back at once: do not spin on them.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                    Ok(Ok(m)) => m,
                },
            };
            if p.next.is_empty() {
                deadline = deadline.min(Instant::now() + LINGER);
            }
            self.take(&m, &mut p);
        }
        p
    }

    /// Adds one record to the batch (or only its offset, when it cannot be routed).
    fn take(&self, m: &BorrowedMessage<'_>, p: &mut Pending) {
        p.next
            .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
        let Some(category) = self.category_of(m.topic()) else {
            let (name, topic) = (&self.input.name, m.topic());
            self.warn.warn(|| {
                format!("{name}: topic {topic} does not fit the topic template; its records are skipped")
            });
            InputStats::add(&self.stats.bad_input, 1);
            return;
        };
        let payload = Bytes::copy_from_slice(m.payload().unwrap_or_default());
        let id = m.headers().and_then(|h| {
            let header = h.iter().find(|h| h.key == kafka_client::ID_HEADER)?;
            let id = header.value.and_then(kafka_client::decode_id);
            if id.is_none() {
                let name = &self.input.name;
                self.warn.warn(|| {
                    format!(
                        "{name}: a malformed {} header (read without an id)",
                        kafka_client::ID_HEADER
                    )
                });
                InputStats::add(&self.stats.bad_input, 1);
            }
            id
        });
        InputStats::add(&self.stats.messages, 1);
        InputStats::add(&self.stats.bytes, payload.len() as u64);
        p.bytes += payload.len() as u64;
        p.entries.push((category, payload, id));
    }

    /// The category a topic holds, by the template read backwards.
    fn category_of(&self, topic: &str) -> Option<Bytes> {
        let name = self.template.category_of(topic)?;
        Some(Bytes::copy_from_slice(name.as_bytes()))
    }

    /// Routes the batch until the stores take it; `false` if shutdown came first (the batch
    /// is not committed and will be read again).
    async fn route(&self, p: &Pending) -> bool {
        let peer = crate::auth::Peer::input(&self.input.name);
        let mut backoff = Duration::from_millis(50);
        loop {
            match handler::route(&self.server, &peer, p.entries.iter().cloned()).await {
                Ok(ResultCode::Ok) => return true,
                other => {
                    InputStats::add(&self.stats.refused, 1);
                    let name = &self.input.name;
                    self.warn.warn(|| {
                        format!("{name}: the stores refused a batch ({other:?}); retrying, reading paused")
                    });
                }
            }
            tokio::select! {
                _ = self.server.shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Commits the batch's offsets (synchronously, so a clean stop leaves nothing to re-read).
    /// A failed commit costs a re-read, which the commit log makes harmless.
    async fn commit(&self, p: &Pending) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &p.next {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!("{}: offset of {topic}/{partition}: {e}", self.input.name);
            }
        }
        let consumer = self.consumer.clone();
        let problem = match tokio::task::spawn_blocking(move || {
            consumer.commit(&tpl, CommitMode::Sync)
        })
        .await
        {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("commit task: {e}"),
        };
        let name = &self.input.name;
        self.warn.warn(|| {
            format!("{name}: committing offsets: {problem} (the records will be read again; the commit log skips them)")
        });
    }

    /// Lists the topics, and subscribes to (group) or assigns (assign) the matching ones.
    async fn discover(&mut self) -> anyhow::Result<()> {
        let consumer = self.consumer.clone();
        let meta = tokio::task::spawn_blocking(move || {
            consumer.fetch_metadata(None, METADATA_TIMEOUT).map(|m| {
                m.topics()
                    .iter()
                    .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                    .collect::<Vec<_>>()
            })
        })
        .await??;
        let matching: Vec<(String, i32)> = meta
            .into_iter()
            .filter(|(t, _)| self.input.topics.matches(t) && self.category_of(t).is_some())
            .collect();
        if self.input.assign {
            return self.assign_new(&matching).await;
        }
        let topics: BTreeSet<String> = matching.into_iter().map(|(t, _)| t).collect();
        if topics != self.topics && !topics.is_empty() {
            let list: Vec<&str> = topics.iter().map(String::as_str).collect();
            self.consumer.subscribe(&list)?;
            tracing::info!(input = %self.input.name, topics = ?list, "kafka input subscribed");
            self.topics = topics;
        }
        Ok(())
    }

    /// Assign mode: adds the partitions not yet assigned, each from the group's committed
    /// offset (the beginning when there is none).
    async fn assign_new(&mut self, matching: &[(String, i32)]) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        let mut new = Vec::new();
        for (topic, count) in matching {
            for p in 0..*count {
                if !self.partitions.contains(&(topic.clone(), p)) {
                    tpl.add_partition(topic, p);
                    new.push((topic.clone(), p));
                }
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        let mut tpl =
            tokio::task::spawn_blocking(move || consumer.committed_offsets(tpl, METADATA_TIMEOUT))
                .await??;
        let starts: Vec<(String, i32, Offset)> = tpl
            .elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    o @ Offset::Offset(_) => o,
                    // Not committed yet: everything the topic holds.
                    _ => Offset::Beginning,
                };
                (e.topic().to_string(), e.partition(), o)
            })
            .collect();
        for (t, p, o) in &starts {
            tpl.set_partition_offset(t, *p, *o)?;
        }
        self.consumer.incremental_assign(&tpl)?;
        tracing::info!(input = %self.input.name, partitions = new.len(), "kafka input assigned");
        self.partitions.extend(new);
        Ok(())
    }
}
