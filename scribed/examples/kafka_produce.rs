//! The raw-produce baseline of `bench/kafka.sh`: standard input's lines as records of one
//! topic through librdkafka with the kafka store's producer settings (`acks=all`,
//! idempotence, `murmur2_random`, 5 ms linger), waiting for every delivery report; what the
//! store adds (routing, Scribe protocol, per-batch waits) is measured against it. Debian's
//! `kcat` (librdkafka 2.0.2) cannot talk to tansu, the test broker.
//!
//!   kafka_produce BROKERS TOPIC [COMPRESSION] < lines

use std::collections::VecDeque;
use std::io::BufRead;
use std::time::Instant;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(brokers), Some(topic)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: kafka_produce BROKERS TOPIC [COMPRESSION] < lines");
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set(
            "compression.codec",
            args.get(3).map_or("none", String::as_str),
        )
        .set("queue.buffering.max.kbytes", "32768")
        .set("queue.buffering.max.messages", "100000")
        .create()?;
    let start = Instant::now();
    let mut pending = VecDeque::new();
    let (mut lines, mut bytes) = (0u64, 0u64);
    let key = b"bench".to_vec();
    for line in std::io::stdin().lock().split(b'\n') {
        let mut payload = line?;
        payload.push(b'\n');
        loop {
            match producer.send_result(FutureRecord::to(topic).payload(&payload).key(&key)) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                // Full queue: wait for the oldest report, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let f = pending.pop_front().expect("a full queue has records");
                    f.await?.map_err(|(e, _)| e)?;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        lines += 1;
        bytes += payload.len() as u64;
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{lines} {bytes} {secs:.3}");
    Ok(())
}
