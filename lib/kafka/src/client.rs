//! Client settings every Kafka client of the pipeline takes, turned into a librdkafka
//! configuration once, and the client context that logs librdkafka through `tracing`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use scribe_cli::RateLimitedWarn;

/// Where the brokers are and how to reach them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// librdkafka's `client.id`.
    pub client_id: String,
    /// Connect with TLS (`security.protocol` `ssl`, or `sasl_ssl` with SASL).
    pub tls: bool,
    /// CA bundle for the brokers' certificates (default: the system's).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub sasl: Option<Sasl>,
    /// librdkafka properties, set last (callers keep out the ones their promises rest on).
    pub properties: BTreeMap<String, String>,
}

/// SASL credentials; the password is read from a file when the client is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password_file: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading sasl_password_file {path}: {source}")]
    Password {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ClientSettings {
    /// The librdkafka configuration: brokers, client id, TLS, SASL, then the pass-through
    /// properties.
    pub fn config(&self) -> Result<ClientConfig, SettingsError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.join(","))
            .set("client.id", &self.client_id);
        let protocol = match (self.tls, self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        c.set("security.protocol", protocol);
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        if let Some(ca) = &self.tls_ca {
            c.set("ssl.ca.location", path(ca));
        }
        if let Some(cert) = &self.tls_cert {
            c.set("ssl.certificate.location", path(cert));
        }
        if let Some(key) = &self.tls_key {
            c.set("ssl.key.location", path(key));
        }
        if let Some(s) = &self.sasl {
            let password = std::fs::read_to_string(&s.password_file).map_err(|source| {
                SettingsError::Password {
                    path: s.password_file.clone(),
                    source,
                }
            })?;
            c.set("sasl.mechanisms", &s.mechanism)
                .set("sasl.username", &s.username)
                .set("sasl.password", password.trim_end_matches(['\n', '\r']));
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        Ok(c)
    }
}

/// How much a consumer may buffer: librdkafka prefetches into a queue per partition, which
/// unbounded would hold up to 64 MiB each (its default `queued.max.messages.kbytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchBounds {
    /// Prefetched bytes per partition (`queued.max.messages.kbytes`, in bytes).
    pub queue_bytes: u64,
    /// Most bytes one fetch response may carry (`fetch.max.bytes`; a partition's share
    /// `max.partition.fetch.bytes` is kept at or below it).
    pub fetch_bytes: u64,
}

impl Default for FetchBounds {
    fn default() -> Self {
        FetchBounds {
            queue_bytes: 16 << 20,
            fetch_bytes: 16 << 20,
        }
    }
}

/// A consumer's configuration: the settings, offsets committed only by the caller (never
/// automatically), fetch buffers bounded, then the pass-through properties again so they
/// win over these defaults. `group`: the consumer group, if the consumer uses one (tailgate
/// assigns partitions itself and has none).
pub fn consumer_config(
    settings: &ClientSettings,
    group: Option<&str>,
    bounds: FetchBounds,
) -> Result<ClientConfig, SettingsError> {
    let mut c = settings.config()?;
    if let Some(g) = group {
        c.set("group.id", g);
    }
    let fetch = bounds.fetch_bytes.max(1024);
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "queued.max.messages.kbytes",
            (bounds.queue_bytes / 1024).max(1).to_string(),
        )
        .set("fetch.max.bytes", fetch.to_string())
        .set("max.partition.fetch.bytes", fetch.min(1 << 20).to_string());
    for (k, v) in &settings.properties {
        c.set(k, v);
    }
    Ok(c)
}

/// Logs librdkafka's messages through `tracing` (warnings rate-limited: a broker that is down
/// is reported on every reconnect attempt) and keeps the last error for status pages.
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
                tracing::info!(client = %self.name, "librdkafka {fac}: {message}")
            }
            RDKafkaLogLevel::Debug => {
                tracing::debug!(client = %self.name, "librdkafka {fac}: {message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        self.warn
            .warn(|| format!("{}: kafka client error: {text}", self.name));
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        // "All brokers down" follows the error that took each down (a refused certificate,
        // a refused connection): the one that names the cause is kept.
        let consequence = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
        if !(consequence && last.is_some()) {
            *last = Some(text);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_librdkafka_properties() {
        let mut s = ClientSettings {
            brokers: vec!["a:1".into(), "b:2".into()],
            client_id: "t".into(),
            tls: true,
            ..Default::default()
        };
        s.properties
            .insert("fetch.max.bytes".into(), "2000000".into());
        let c = consumer_config(&s, None, FetchBounds::default()).unwrap();
        assert_eq!(c.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("group.id"), None);
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(
            c.get("fetch.max.bytes"),
            Some("2000000"),
            "pass-through wins"
        );
        let dir = std::env::temp_dir().join(format!("scribe-kafka-{}", std::process::id()));
        s.sasl = Some(Sasl {
            mechanism: "PLAIN".into(),
            username: "u".into(),
            password_file: dir.join("missing"),
        });
        let e = s.config().unwrap_err().to_string();
        assert!(e.starts_with("reading sasl_password_file"), "{e}");
    }
}
