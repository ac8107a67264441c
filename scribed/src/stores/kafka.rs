//! The kafka store: each category's messages become records of a topic (`logs.{category}` by
//! default), produced with `acks=all` and (unless `idempotence = false`) idempotence, so `OK`
//! means every in-sync replica of the partition has them (as many as the topic's
//! `min.insync.replicas` demands).
//!
//! - **Key.** A message with an entry id is keyed by its producer (one shipper stream), so the
//!   Java-compatible partitioner (`murmur2_random`) keeps a stream's lines in one partition,
//!   in order; messages without ids (Thrift clients) by the store's `key`, default this host.
//! - **Ids.** The entry id travels in the `scribe.id` header ([`kafka_client::ID_HEADER`]), so an
//!   archiver's commit log writes a record produced twice (a batch retried after a lost
//!   delivery report or a timeout) once.
//! - **Acknowledgement.** `write` returns `Ok` only after the delivery report of every record
//!   of the batches; any failure is `Err` (the client is told `TRY_LATER` and resends; the
//!   records that did arrive are recognised by id downstream). A buffer store around this one
//!   spools instead.
//! - **Bounds.** The producer's queue is bounded (`max_queue_bytes`); a full queue refuses the
//!   batch at once (`kafka queue full`) instead of growing. Each batch waits at most `timeout`
//!   for its reports.
//! - **Oversize.** A message longer than `max_message` (or refused by a broker as too large)
//!   can never be delivered: it goes to the dead-letter file (fsynced before `OK`, counted
//!   `dead lettered`), like a network store's, and the rest goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use scribe_archive::{Category, DeadLetter};

use super::dead_letters::DeadLetters;
use super::kafka_client::{self, encode_id, LogContext, ID_HEADER};
use super::{Batch, BuildContext, Store, StoreError, StoreStatus};
use crate::config::kafka::KafkaSpec;
use crate::counters::Counters;

/// Records delivered (acknowledged by the brokers).
pub const DELIVERED: &str = "kafka delivered";
/// Records whose delivery failed (the batch was answered `TRY_LATER`).
pub const DELIVERY_ERRORS: &str = "kafka delivery errors";
/// Batches refused because the producer's queue was full.
pub const QUEUE_FULL: &str = "kafka queue full";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_LINGER: Duration = Duration::from_millis(5);
const DEFAULT_QUEUE_BYTES: u64 = 32 << 20;
/// librdkafka keeps a few hundred bytes per queued record besides its bytes: this bound keeps
/// that overhead (and so the RSS of an outage) in check when lines are short.
const MAX_QUEUE_RECORDS: &str = "100000";
const DEFAULT_MAX_MESSAGE: u64 = 1_000_000;
/// Room for a record's key, headers and batch framing above `max_message`, so that the
/// store's own check, not librdkafka's, decides what is too long.
const RECORD_OVERHEAD: u64 = 1024;

type Client = FutureProducer<LogContext>;

pub struct KafkaStore {
    name: String,
    spec: KafkaSpec,
    /// Replaced when librdkafka reports a fatal error (an idempotent producer that lost its
    /// sequence cannot go on; a new one starts a new sequence).
    producer: Mutex<Arc<Client>>,
    topic: scribe_kafka::TopicTemplate,
    host_key: Bytes,
    max_message: usize,
    timeout: Duration,
    dead: Arc<DeadLetters>,
    counters: Arc<Counters>,
    last_error: Arc<Mutex<Option<String>>>,
    /// The client's own last error (a TLS handshake refused, brokers down), which explains
    /// a delivery timeout; cleared by a delivered batch.
    client_error: Arc<Mutex<Option<String>>>,
}

/// Errors after which the producer's identity (id, epoch, sequence numbers) is of no more use
/// and only a new producer gets on. librdkafka does not always call them fatal for an
/// idempotent producer: tansu answers `ProducerFenced` to every batch after the epoch bump
/// that follows a delivery timeout.
fn identity_lost(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::InvalidProducerIdMapping
    )
}

/// A record handed to the producer: its batch, its index there, its delivery report.
type Pending = (usize, usize, DeliveryFuture);

/// Why one record was not delivered.
enum Failure {
    TooLarge,
    Other(String),
}

impl KafkaStore {
    pub fn from_spec(spec: &KafkaSpec, ctx: &BuildContext<'_>) -> anyhow::Result<KafkaStore> {
        let last_error = Arc::new(Mutex::new(None));
        let client_error = Arc::new(Mutex::new(None));
        let timeout = spec.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        let producer = new_producer(spec, &ctx.name, &client_error)?;
        let host_key = match &spec.key {
            Some(k) => k.clone(),
            None => hostname(),
        };
        Ok(KafkaStore {
            name: ctx.name.clone(),
            spec: spec.clone(),
            producer: Mutex::new(Arc::new(producer)),
            topic: spec.template(),
            host_key: Bytes::from(host_key),
            max_message: usize::try_from(spec.max_message.map_or(DEFAULT_MAX_MESSAGE, |m| m.0))
                .unwrap_or(usize::MAX),
            timeout,
            dead: Arc::new(DeadLetters::new(
                ctx.name.clone(),
                DeadLetter::new(ctx.dead_letter_dir()),
                ctx.counters.clone(),
            )),
            counters: ctx.counters.clone(),
            last_error,
            client_error,
        })
    }

    pub fn topic_of(&self, category: &Category) -> String {
        self.topic.topic_of(category)
    }

    fn producer(&self) -> Arc<Client> {
        self.producer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After a failure: if librdkafka declared the producer dead, or the brokers refuse its
    /// identity (`identity_lost`), start a new one, unless another write already did.
    fn renew_if_dead(&self, producer: &Arc<Client>, identity_lost: bool) {
        let reason = match producer.client().fatal_error() {
            Some((code, reason)) => format!("{code:?}: {reason}"),
            None if identity_lost => "the brokers refuse its producer id or epoch".into(),
            None => return,
        };
        let mut current = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, producer) {
            return;
        }
        tracing::warn!(store = %self.name, "kafka producer failed for good ({reason}); starting a new one");
        match new_producer(&self.spec, &self.name, &self.client_error) {
            Ok(p) => {
                let old = std::mem::replace(&mut *current, Arc::new(p));
                // Destroying a librdkafka handle can wait for its threads: not on this one.
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(e) => self.set_error(format!("starting a new producer: {e:#}")),
        }
    }

    fn set_error(&self, text: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }

    /// Hands every record of `b` to the producer; the futures of their delivery reports, or
    /// the error that stopped the hand-over.
    async fn enqueue(
        &self,
        producer: &Client,
        b: &Batch,
        batch_index: usize,
        pending: &mut Vec<Pending>,
    ) -> Result<(), StoreError> {
        let topic = self.topic_of(&b.category);
        for (i, m) in b.messages.iter().enumerate() {
            let id = b.id(i);
            let id_bytes = id.map(|id| encode_id(&id));
            let key: &[u8] = match &id {
                Some(id) => &id.producer.0,
                None => &self.host_key,
            };
            if m.len() + key.len() > self.max_message {
                self.dead_letter(&b.category, m).await?;
                continue;
            }
            let mut record = FutureRecord::to(&topic).payload(&m[..]).key(key);
            if let Some(v) = &id_bytes {
                record = record.headers(OwnedHeaders::new_with_capacity(1).insert(Header {
                    key: ID_HEADER,
                    value: Some(&v[..]),
                }));
            }
            match producer.send_result(record) {
                Ok(f) => pending.push((batch_index, i, f)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.counters.add(Some(b.category.as_str()), QUEUE_FULL, 1);
                    return Err(StoreError::Failed {
                        store: self.name.clone(),
                        reason: format!(
                            "the producer's queue is full (max_queue_bytes {}, or \
                             {MAX_QUEUE_RECORDS} records): the brokers take less than scribed \
                             receives",
                            self.spec
                                .max_queue_bytes
                                .map_or(DEFAULT_QUEUE_BYTES, |s| s.0)
                        ),
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    self.dead_letter(&b.category, m).await?;
                }
                Err((e, _)) => {
                    return Err(StoreError::Failed {
                        store: self.name.clone(),
                        reason: format!("producing to {topic}: {e}"),
                    })
                }
            }
        }
        Ok(())
    }

    /// Keeps a message no broker will take in the dead-letter file (append + fdatasync on the
    /// blocking pool), counts it, and logs the first of each category.
    async fn dead_letter(&self, category: &Category, message: &Bytes) -> Result<(), StoreError> {
        let hop = "the brokers (max_message)";
        self.dead
            .keep(category, message.clone(), hop, self.max_message)
            .await
            .map_err(|reason| StoreError::Failed {
                store: self.name.clone(),
                reason: format!("dead-letter file: {reason}"),
            })
    }

    /// When the client's last error was a TLS handshake, why (see
    /// [`kafka_client::tls_diagnosis`]).
    async fn tls_failure(&self) -> Option<String> {
        let ssl = self
            .client_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|e| e.contains("SSL"));
        if !ssl || !self.spec.wants_tls() {
            return None;
        }
        kafka_client::tls_diagnosis(&self.spec).await
    }

    fn explain(&self, topic: &str, e: &KafkaError) -> String {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                format!("topic {topic} does not exist on the brokers (create it, or let them auto-create topics): {e}")
            }
            Some(RDKafkaErrorCode::MessageTimedOut) => {
                let within = humantime::format_duration(self.timeout);
                match self
                    .client_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                {
                    // What the client last failed at names the cause (a refused certificate).
                    Some(cause) => format!(
                        "no delivery report for a record of {topic} within {within} (timeout): \
                         {cause}"
                    ),
                    None => format!(
                        "no delivery report for a record of {topic} within {within} (timeout): \
                         brokers down or unreachable? ({e})"
                    ),
                }
            }
            _ => format!("delivering to {topic}: {e}"),
        }
    }
}

fn new_producer(
    spec: &KafkaSpec,
    name: &str,
    client_error: &Arc<Mutex<Option<String>>>,
) -> anyhow::Result<Client> {
    let mut c = kafka_client::base_config(spec)?;
    let ms = |d: Duration| d.as_millis().to_string();
    let max_message = spec.max_message.map_or(DEFAULT_MAX_MESSAGE, |m| m.0);
    c.set("acks", "all")
        .set("enable.idempotence", spec.idempotent().to_string())
        .set("partitioner", "murmur2_random")
        .set(
            "compression.codec",
            spec.compression.as_deref().unwrap_or("none"),
        )
        .set(
            "message.timeout.ms",
            ms(spec.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0)),
        )
        .set("linger.ms", ms(spec.linger.map_or(DEFAULT_LINGER, |d| d.0)))
        .set(
            "queue.buffering.max.kbytes",
            (spec.max_queue_bytes.map_or(DEFAULT_QUEUE_BYTES, |s| s.0) / 1024).to_string(),
        )
        .set("queue.buffering.max.messages", MAX_QUEUE_RECORDS)
        .set(
            "message.max.bytes",
            (max_message + RECORD_OVERHEAD).to_string(),
        )
        // An unknown topic fails a record in 2 s (librdkafka's default waits 30 s for a new
        // topic to propagate), so the error names the topic instead of timing out.
        .set("topic.metadata.propagation.max.ms", "2000");
    if !spec.idempotent() {
        // Without sequence numbers only one request in flight keeps a retry ahead of the
        // batches behind it (validation keeps `properties` from raising it).
        c.set(crate::config::kafka::IN_FLIGHT, "1");
    }
    // Pass-through properties win over the store's defaults (not over its promises, which
    // validation keeps out of `properties`).
    for (k, v) in &spec.properties {
        c.set(k, v);
    }
    c.create_with_context(LogContext::new(name, client_error.clone()))
        .map_err(|e| anyhow::anyhow!("{name}: creating the kafka producer: {e}"))
}

/// This host's name (the key of messages without entry ids).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "scribed".into())
}

#[async_trait::async_trait]
impl Store for KafkaStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        let producer = self.producer();
        let mut pending = Vec::with_capacity(batches.iter().map(|b| b.messages.len()).sum());
        let mut result = Ok(());
        for (i, b) in batches.iter().enumerate() {
            result = self.enqueue(&producer, b, i, &mut pending).await;
            if result.is_err() {
                break;
            }
        }
        // Wait for every report, even after a failure: records already queued are delivered
        // or fail on their own, and their futures must not outlive the batch's answer.
        let mut first_failure: Option<Failure> = None;
        let mut lost_identity = false;
        // Records delivered per batch (so per category), counted once at the end.
        let mut delivered = vec![0i64; batches.len()];
        for (bi, mi, f) in pending {
            let (category, message) = (&batches[bi].category, &batches[bi].messages[mi]);
            let outcome = match f.await {
                Ok(Ok(_)) => None,
                Ok(Err((e, _)))
                    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge) =>
                {
                    Some(Failure::TooLarge)
                }
                Ok(Err((e, _))) => {
                    lost_identity |= e.rdkafka_error_code().is_some_and(identity_lost);
                    Some(Failure::Other(self.explain(&self.topic_of(category), &e)))
                }
                Err(_) => Some(Failure::Other("the producer was shut down".into())),
            };
            match outcome {
                None => delivered[bi] += 1,
                // The broker's limit is below ours: this record can never go.
                Some(Failure::TooLarge) => {
                    if let Err(e) = self.dead_letter(category, message).await {
                        result = result.and(Err(e));
                    }
                }
                Some(failure) => {
                    self.counters
                        .add(Some(category.as_str()), DELIVERY_ERRORS, 1);
                    first_failure.get_or_insert(failure);
                }
            }
        }
        for (b, n) in batches.iter().zip(delivered) {
            self.counters.add(Some(b.category.as_str()), DELIVERED, n);
        }
        if let Some(Failure::Other(mut reason)) = first_failure {
            if let Some(why) = self.tls_failure().await {
                reason = format!("{reason}; {why}");
            }
            result = result.and(Err(StoreError::Unavailable {
                store: self.name.clone(),
                reason,
            }));
        }
        match &result {
            Ok(()) => {
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                *self.client_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                self.set_error(e.to_string());
                self.renew_if_dead(&producer, lost_identity);
            }
        }
        result
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        let lock = |m: &Mutex<Option<String>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // A failed write's reason, else what the client last failed at (brokers down while
        // nothing was written).
        let problem = lock(&self.last_error).or_else(|| lock(&self.client_error));
        out.push(StoreStatus {
            state: if problem.is_some() { "failing" } else { "ok" }.into(),
            upstream_connected: Some(problem.is_none()),
            problem,
            ..StoreStatus::new(&self.name, "kafka")
        });
    }

    async fn close(&self) {
        let producer = self.producer();
        let timeout = self.timeout;
        let name = self.name.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = producer.flush(timeout) {
                tracing::warn!(store = %name, "kafka producer: records still unacknowledged at close: {e}");
            }
        })
        .await;
    }
}

#[cfg(test)]
#[path = "kafka_tests.rs"]
mod tests;
