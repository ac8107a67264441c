//! What scribed's Kafka producer and consumer share: the librdkafka configuration built from a
//! [`KafkaSpec`] (brokers, TLS, SASL, pass-through properties), a client context that logs
//! through `tracing` (rate-limited: a broker that is down is reported on every reconnect
//! attempt) and remembers the last error for `/status`, and the entry-id record header.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use scribe_cli::RateLimitedWarn;
use scribe_protocol::EntryId;

use crate::config::kafka::KafkaSpec;

/// The record header holding a message's entry id: 16 bytes of producer id, then the range's
/// start and end as big-endian u64s. The archiver hands it to the file store's commit log, so
/// a record produced twice (a retry after a lost delivery report) is written once.
pub const ID_HEADER: &str = "scribe.id";
const ID_LEN: usize = 32;

pub fn encode_id(id: &EntryId) -> [u8; ID_LEN] {
    let mut out = [0u8; ID_LEN];
    out[..16].copy_from_slice(&id.producer.0);
    out[16..24].copy_from_slice(&id.start.to_be_bytes());
    out[24..].copy_from_slice(&id.end.to_be_bytes());
    out
}

/// `None` unless `b` is a well-formed id (32 bytes, `start < end`).
pub fn decode_id(b: &[u8]) -> Option<EntryId> {
    let b: &[u8; ID_LEN] = b.try_into().ok()?;
    let mut producer = [0u8; 16];
    producer.copy_from_slice(&b[..16]);
    let start = u64::from_be_bytes(b[16..24].try_into().ok()?);
    let end = u64::from_be_bytes(b[24..].try_into().ok()?);
    (start < end).then_some(EntryId {
        producer: scribe_protocol::ProducerId(producer),
        start,
        end,
    })
}

/// The settings every client of a `KafkaSpec` gets: brokers, client id, TLS, SASL, then the
/// pass-through properties (validation refused the ones the store's promise rests on).
pub fn base_config(spec: &KafkaSpec) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", spec.brokers.join(","))
        .set("client.id", spec.client_id.as_deref().unwrap_or("scribed"));
    let sasl = spec.sasl_mechanism.is_some();
    let protocol = match (spec.wants_tls(), sasl) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    if let Some(ca) = &spec.tls_ca {
        c.set("ssl.ca.location", path(ca));
    }
    if let Some(cert) = &spec.tls_cert {
        c.set("ssl.certificate.location", path(cert));
    }
    if let Some(key) = &spec.tls_key {
        c.set("ssl.key.location", path(key));
    }
    if let (Some(m), Some(user), Some(file)) = (
        &spec.sasl_mechanism,
        &spec.sasl_username,
        &spec.sasl_password_file,
    ) {
        let password = std::fs::read_to_string(file)
            .with_context(|| format!("reading sasl_password_file {}", file.display()))?;
        c.set("sasl.mechanisms", m)
            .set("sasl.username", user)
            .set("sasl.password", password.trim_end_matches(['\n', '\r']));
    }
    for (k, v) in &spec.properties {
        c.set(k, v);
    }
    Ok(c)
}

/// Logs librdkafka's messages through `tracing` and keeps the last error for `/status`.
pub struct LogContext {
    name: String,
    warn: RateLimitedWarn,
    last_error: Arc<Mutex<Option<String>>>,
}

impl LogContext {
    pub fn new(name: &str, last_error: Arc<Mutex<Option<String>>>) -> LogContext {
        LogContext {
            name: name.to_string(),
            warn: RateLimitedWarn::new(Duration::from_secs(10)),
            last_error,
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => self
                .warn
                .warn(|| format!("{}: librdkafka {fac}: {message}", self.name)),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(store = %self.name, "librdkafka {fac}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(store = %self.name, "librdkafka {fac}: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        self.warn
            .warn(|| format!("{}: kafka client error: {text}", self.name));
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;
    use scribe_protocol::ProducerId;

    #[test]
    fn ids_round_trip_and_malformed_headers_are_refused() {
        let id = EntryId {
            producer: ProducerId::random(),
            start: 5,
            end: 1 << 40,
        };
        assert_eq!(decode_id(&encode_id(&id)), Some(id));
        assert_eq!(decode_id(&encode_id(&id)[..31]), None);
        let empty = EntryId { end: 5, ..id };
        assert_eq!(decode_id(&encode_id(&empty)), None);
    }
}
