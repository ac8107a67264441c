//! What scribed's Kafka producer and consumer share, from `scribe_kafka` (which tailgate's
//! `--kafka` source uses too): the librdkafka configuration built from a [`KafkaSpec`]
//! (brokers, TLS, SASL, pass-through properties), a client context that logs through
//! `tracing` and remembers the last error for `/status`, and the entry-id record header.

use anyhow::Context;
use rdkafka::config::ClientConfig;

pub use scribe_kafka::{decode_id, encode_id, LogContext, ID_HEADER};

use crate::config::kafka::KafkaSpec;

/// The client settings of a store's or input's keys.
pub fn settings(spec: &KafkaSpec) -> scribe_kafka::ClientSettings {
    let sasl = match (
        &spec.sasl_mechanism,
        &spec.sasl_username,
        &spec.sasl_password_file,
    ) {
        (Some(m), Some(user), Some(file)) => Some(scribe_kafka::Sasl {
            mechanism: m.clone(),
            username: user.clone(),
            password_file: file.clone(),
        }),
        _ => None,
    };
    scribe_kafka::ClientSettings {
        brokers: spec.brokers.clone(),
        client_id: spec.client_id.clone().unwrap_or_else(|| "scribed".into()),
        tls: spec.wants_tls(),
        tls_ca: spec.tls_ca.clone(),
        tls_cert: spec.tls_cert.clone(),
        tls_key: spec.tls_key.clone(),
        sasl,
        properties: spec.properties.clone(),
    }
}

/// The settings every client of a `KafkaSpec` gets: brokers, client id, TLS, SASL, then the
/// pass-through properties (validation refused the ones the store's promise rests on).
pub fn base_config(spec: &KafkaSpec) -> anyhow::Result<ClientConfig> {
    settings(spec).config().context("kafka client settings")
}
