//! The kafka store against librdkafka's in-process mock cluster (a Kafka-protocol broker on
//! 127.0.0.1 inside the test): delivery with ids and keys, broker down, request errors the
//! idempotent producer retries, oversize records, a full queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use scribe_protocol::{EntryId, ProducerId};

use super::*;
use crate::config::values::{Dur, Size};
use crate::config::{Args, Settings};
use crate::stores::CategoryBatch;

struct Fixture {
    store: KafkaStore,
    counters: Arc<Counters>,
    dead: tempfile::TempDir,
}

fn store(brokers: String, tweak: impl FnOnce(&mut KafkaSpec)) -> Fixture {
    let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    let dead = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    let mut spec = KafkaSpec {
        brokers: vec![brokers],
        timeout: Some(Dur(Duration::from_secs(5))),
        ..Default::default()
    };
    tweak(&mut spec);
    let ctx = BuildContext {
        settings: &settings,
        counters: counters.clone(),
        name: "kafka".into(),
        key: "k".into(),
        dead_letter: Some(dead.path().to_path_buf()),
    };
    Fixture {
        store: KafkaStore::from_spec(&spec, &ctx).unwrap(),
        counters,
        dead,
    }
}

/// `n` messages of category `cat`, ids from `producer` (byte ranges of a stream), if given.
fn batch(cat: &str, n: usize, producer: Option<ProducerId>) -> Batch {
    let messages: Vec<Bytes> = (0..n)
        .map(|i| Bytes::from(format!("{cat} line {i:05}")))
        .collect();
    let ids = (0..n as u64)
        .map(|i| {
            producer.map(|producer| EntryId {
                producer,
                start: i * 100,
                end: i * 100 + 100,
            })
        })
        .collect();
    Arc::new(CategoryBatch::with_ids(cat.parse().unwrap(), messages, ids))
}

/// A record as read back: partition, key, payload, id header.
type Record = (i32, Vec<u8>, Vec<u8>, Option<EntryId>);

/// Reads every partition of `topic` from the start until `want` records came (or 20 s).
fn read_back(brokers: &str, topic: &str, partitions: i32, want: usize) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < want && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let id = m.headers().and_then(|h| {
            h.iter()
                .find(|h| h.key == kafka_client::ID_HEADER)
                .and_then(|h| h.value.and_then(kafka_client::decode_id))
        });
        out.push((
            m.partition(),
            m.key().unwrap_or_default().to_vec(),
            m.payload().unwrap_or_default().to_vec(),
            id,
        ));
    }
    // Anything past `want` would be a duplicate: give it a moment to show up.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
        panic!("more records than sent: {:?}", m.payload_view::<str>());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_ids_and_are_keyed_by_producer_so_a_stream_stays_in_order() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 4, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers.clone(), |_| {});
    let (a, b) = (ProducerId::random(), ProducerId::random());
    let batches = [batch("web", 50, Some(a)), batch("web", 50, Some(b))];
    f.store.write(&batches).await.unwrap();
    assert_eq!(f.counters.get("web:kafka delivered"), 100);

    let got = read_back(&brokers, "logs.web", 4, 100);
    assert_eq!(got.len(), 100);
    let mut per_producer: HashMap<Vec<u8>, Vec<&Record>> = HashMap::new();
    for r in &got {
        per_producer.entry(r.1.clone()).or_default().push(r);
    }
    for (producer, sent) in [(a, &batches[0]), (b, &batches[1])] {
        let recs = &per_producer[&producer.0.to_vec()];
        assert!(
            recs.iter().all(|r| r.0 == recs[0].0),
            "one partition per producer"
        );
        let payloads: Vec<&[u8]> = recs.iter().map(|r| &r.2[..]).collect();
        let want: Vec<&[u8]> = sent.messages.iter().map(|m| &m[..]).collect();
        assert_eq!(payloads, want, "in order");
        let ids: Vec<EntryId> = recs.iter().map(|r| r.3.unwrap()).collect();
        let want_ids: Vec<EntryId> = (0..50).map(|i| sent.id(i).unwrap()).collect();
        assert_eq!(ids, want_ids);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_without_ids_are_keyed_by_the_store_key_and_carry_no_header() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t-web-x", 2, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers.clone(), |s| {
        s.topic = Some("t-{category}-x".into());
        s.key = Some("hostA".into());
        s.compression = Some("zstd".into());
    });
    f.store.write(&[batch("web", 10, None)]).await.unwrap();
    let got = read_back(&brokers, "t-web-x", 2, 10);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|r| r.1 == b"hostA" && r.3.is_none()));
}

/// With the only broker down, a batch fails within the timeout with a message that says so,
/// counted, and `/status` shows the problem; once it is back, writes succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_fails_the_batch_within_the_timeout_and_recovers() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers.clone(), |s| {
        s.timeout = Some(Dur(Duration::from_secs(1)))
    });
    f.store.write(&[batch("web", 1, None)]).await.unwrap();
    mock.broker_down(1).unwrap();
    let t = Instant::now();
    let err = f.store.write(&[batch("web", 5, None)]).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(err.to_string().contains("no delivery report"), "{err}");
    assert_eq!(f.counters.get("web:kafka delivery errors"), 5);
    let mut st = Vec::new();
    f.store.status(&mut st);
    assert_eq!(st[0].state, "failing");
    assert!(st[0].problem.is_some());

    mock.broker_up(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match f.store.write(&[batch("web", 5, None)]).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => eprintln!("not yet: {e}"),
            Err(e) => panic!("still failing after broker_up: {e}"),
        }
    }
    let mut st = Vec::new();
    f.store.status(&mut st);
    assert_eq!(st[0].state, "ok");
}

/// Retriable produce errors are retried by the idempotent producer: the batch is acknowledged
/// and every record is in the topic once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_request_errors_are_retried_without_duplicates() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers.clone(), |_| {});
    f.store.write(&[batch("web", 1, None)]).await.unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ],
    );
    let p = ProducerId::random();
    f.store.write(&[batch("web", 20, Some(p))]).await.unwrap();
    let got = read_back(&brokers, "logs.web", 1, 21);
    assert_eq!(got.len(), 21);
    let payloads: Vec<&[u8]> = got[1..].iter().map(|r| &r.2[..]).collect();
    let b = batch("web", 20, None);
    let want: Vec<&[u8]> = b.messages.iter().map(|m| &m[..]).collect();
    assert_eq!(payloads, want);
}

/// A non-retriable error (the topic is refused) fails the batch with the topic named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_topic_fails_the_batch_naming_the_topic() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers, |_| {});
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let err = f.store.write(&[batch("web", 3, None)]).await.unwrap_err();
    assert!(err.to_string().contains("logs.web"), "{err}");
    assert_eq!(f.counters.get("web:kafka delivery errors"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_longer_than_max_message_is_dead_lettered_and_the_rest_delivered() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers.clone(), |s| s.max_message = Some(Size(2048)));
    let big = Bytes::from(vec![b'B'; 5000]);
    let mut messages = batch("web", 6, None).messages.clone();
    messages.insert(3, big.clone());
    let b = Arc::new(CategoryBatch::new("web".parse().unwrap(), messages.clone()));
    f.store.write(&[b]).await.unwrap();
    assert_eq!(f.counters.get("web:dead lettered"), 1);
    assert_eq!(
        std::fs::read(f.dead.path().join("web")).unwrap(),
        [&big[..], b"\n"].concat()
    );
    messages.remove(3);
    let got = read_back(&brokers, "logs.web", 1, 6);
    let payloads: Vec<Bytes> = got.into_iter().map(|r| Bytes::from(r.2)).collect();
    assert_eq!(payloads, messages);
}

/// The producer holds at most `max_queue_bytes`: past it the batch is refused at once (the
/// client hears TRY_LATER), never buffered without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_refuses_the_batch() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers, |s| {
        s.max_queue_bytes = Some(Size(1 << 20));
        s.timeout = Some(Dur(Duration::from_millis(500)));
    });
    mock.broker_down(1).unwrap();
    let line = Bytes::from(vec![b'x'; 10_000]);
    let b = Arc::new(CategoryBatch::new("web".parse().unwrap(), vec![line; 200]));
    let err = f.store.write(&[b]).await.unwrap_err();
    assert!(err.to_string().contains("queue is full"), "{err}");
    assert_eq!(f.counters.get("web:kafka queue full"), 1);
}

/// A producer the brokers fence (tansu does after the epoch bump that follows a delivery
/// timeout) is replaced by a new one, so writes succeed again instead of failing for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_is_replaced() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("logs.web", 1, 1).unwrap();
    let brokers = mock.bootstrap_servers();
    let f = store(brokers, |s| s.timeout = Some(Dur(Duration::from_secs(2))));
    f.store.write(&[batch("web", 1, None)]).await.unwrap();
    let before = f.store.producer();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED; 3],
    );
    assert!(f.store.write(&[batch("web", 3, None)]).await.is_err());
    assert!(!Arc::ptr_eq(&before, &f.store.producer()), "not replaced");
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = f.store.write(&[batch("web", 3, None)]).await {
        assert!(Instant::now() < deadline, "still failing: {e}");
    }
}
