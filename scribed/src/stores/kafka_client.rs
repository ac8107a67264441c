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

/// Why a TLS handshake with the first broker fails, in `scribe_tls`'s words ("certificate
/// refused: expired on ...", "... signed by an unknown CA"): librdkafka's OpenSSL says only
/// "certificate verify failed". Made with the store's own `tls_*` settings, bounded to a few
/// seconds; `None` when the handshake succeeds or cannot be tried.
pub async fn tls_diagnosis(spec: &KafkaSpec) -> Option<String> {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(3);
    let files = scribe_tls::ClientTlsFiles {
        ca: spec.tls_ca.clone(),
        cert: spec.tls_cert.clone(),
        key: spec.tls_key.clone(),
        server_name: None,
    };
    let tls = match scribe_tls::ClientTls::load(&files) {
        Ok(t) => t,
        Err(e) => return Some(e.to_string()),
    };
    let broker = spec.brokers.first()?;
    let host = broker.rsplit_once(':').map_or(broker.as_str(), |(h, _)| h);
    let tcp = tokio::time::timeout(LIMIT, tokio::net::TcpStream::connect(broker))
        .await
        .ok()?
        .ok()?;
    tls.connect(host, tcp, LIMIT).await.err()
}
