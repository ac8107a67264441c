//! The `kafka` store's settings (`type = "kafka"`): brokers, the topic template, the producer's
//! bounds, TLS and SASL, and librdkafka properties passed through. Read into [`KafkaSpec`] like
//! every other store; [`validate`] makes the checks serde cannot. The properties that carry
//! the store's promise (`acks`, idempotence) cannot be overridden.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::locate::KeyError;
use super::values::{Dur, Size};

/// The default topic template (one topic per category), the placeholder a template holds
/// once, and Kafka's longest topic name: `scribe_kafka`'s, which tailgate reads too.
pub use scribe_kafka::{
    DEFAULT_TEMPLATE as DEFAULT_TOPIC, MAX_TOPIC_LEN, PLACEHOLDER as CATEGORY_PLACEHOLDER,
};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// Bootstrap brokers, `host:port` (librdkafka's `bootstrap.servers`).
    pub brokers: Vec<String>,
    /// Topic per category: `{category}` is replaced by the category name. Default
    /// `logs.{category}`.
    pub topic: Option<String>,
    /// librdkafka's `client.id`. Default `scribed`.
    pub client_id: Option<String>,
    /// `none` (default), `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: Option<String>,
    /// How long a batch may wait for the brokers' delivery reports before the client is told
    /// `TRY_LATER` (librdkafka's `message.timeout.ms`). Default 10 s.
    pub timeout: Option<Dur>,
    /// How long the producer waits to fill a produce request (`linger.ms`). Default 5 ms.
    pub linger: Option<Dur>,
    /// Bytes the producer may hold before it answers `TRY_LATER`
    /// (`queue.buffering.max.kbytes`; at most 100,000 records too). Default 32 MiB.
    pub max_queue_bytes: Option<Size>,
    /// The longest record the brokers accept (`message.max.bytes`); a longer message goes to
    /// the dead-letter file. Default 1 MB, Kafka's own default.
    pub max_message: Option<Size>,
    /// Record key for messages without an entry id (Thrift clients): default this host's
    /// name, so their order holds like a shipper's. Messages with ids are keyed by their
    /// producer.
    pub key: Option<String>,
    /// Connect with TLS (implied by any `tls_*` key): `security.protocol` `ssl`/`sasl_ssl`.
    #[serde(default)]
    pub tls: bool,
    /// CA bundle for the brokers' certificates (`ssl.ca.location`); default the system's.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (`ssl.certificate.location`, `ssl.key.location`).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (`sasl.mechanisms`).
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    /// A file holding the SASL password (read when the store is built; trailing newline
    /// dropped), so the password is not in the config file.
    pub sasl_password_file: Option<PathBuf>,
    /// The idempotent producer (default `true`): the broker drops a batch retried with a
    /// sequence number it has already written. `false` is for brokers whose producer state is
    /// not written atomically with the batch (tansu 0.6.0 on its S3 engine records the
    /// sequence before the batch, so a broker killed between the two answers the retry
    /// `DuplicateSequenceNumber` and the batch is lost). The store then sends one request at a
    /// time per broker (`max.in.flight.requests.per.connection = 1`, so retries keep the order)
    /// and a retried batch may reach the topic twice; an archiver's commit log writes it once,
    /// by its `scribe.id`.
    pub idempotence: Option<bool>,
    /// Any librdkafka property, passed through as is (say `"socket.keepalive.enable" =
    /// "true"`); set last, over the keys above, except the ones the store's promise rests on.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Properties a `properties` table may not set: `OK` means every replica in sync has the
/// batch (`acks=all`), once (idempotence); and keys the store derives from its own settings.
const RESERVED: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "bootstrap.servers",
    "metadata.broker.list",
    "sasl.password",
    "delivery.report.only.error",
];

/// The compression codecs librdkafka is built with here.
pub const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

impl KafkaSpec {
    /// Whether the producer is idempotent (the default).
    pub fn idempotent(&self) -> bool {
        self.idempotence.unwrap_or(true)
    }

    pub fn topic_template(&self) -> &str {
        self.topic.as_deref().unwrap_or(DEFAULT_TOPIC)
    }

    /// The checked template (validation refused a bad one; the default stands in for it).
    pub fn template(&self) -> scribe_kafka::TopicTemplate {
        scribe_kafka::TopicTemplate::new(self.topic_template()).unwrap_or_default()
    }

    /// Whether the store connects with TLS.
    pub fn wants_tls(&self) -> bool {
        let files = scribe_tls::ClientTlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: None,
        };
        files.is_wanted(self.tls)
    }
}

fn bad(at: &str, key: &str, problem: impl Into<String>) -> Result<(), KeyError> {
    Err(KeyError::new(format!("{at}.{key}"), problem))
}

/// Checks what serde cannot.
pub fn validate(k: &KafkaSpec, at: &str) -> Result<(), KeyError> {
    if k.brokers.is_empty() {
        return bad(at, "brokers", "at least one broker host:port is needed");
    }
    for b in &k.brokers {
        let port = b.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
        if port.is_none() || b.contains(',') {
            return bad(at, "brokers", format!("{b:?} is not host:port"));
        }
    }
    if let Err(e) = check_template(k.topic_template()) {
        return bad(at, "topic", e);
    }
    if let Some(c) = k
        .compression
        .as_deref()
        .filter(|c| !COMPRESSIONS.contains(c))
    {
        let all = COMPRESSIONS.join(", ");
        return bad(at, "compression", format!("{c:?} is not one of {all}"));
    }
    if let Some(m) = k.sasl_mechanism.as_deref() {
        if !SASL_MECHANISMS.contains(&m) {
            let all = SASL_MECHANISMS.join(", ");
            return bad(at, "sasl_mechanism", format!("{m:?} is not one of {all}"));
        }
        if k.sasl_username.is_none() || k.sasl_password_file.is_none() {
            return bad(
                at,
                "sasl_mechanism",
                "needs sasl_username and sasl_password_file",
            );
        }
    } else if k.sasl_username.is_some() || k.sasl_password_file.is_some() {
        return bad(at, "sasl_mechanism", "missing (sasl_username is set)");
    }
    if k.tls_cert.is_some() != k.tls_key.is_some() {
        return bad(at, "tls_cert", "tls_cert and tls_key go together");
    }
    if let Some(Dur(d)) = k.timeout {
        if d.as_millis() < 100 || d.as_secs() > 3600 {
            return bad(at, "timeout", "must be 100ms to 1h");
        }
    }
    if let Some(Dur(d)) = k.linger {
        if d.as_secs() > 60 {
            return bad(at, "linger", "must be at most 1 minute");
        }
    }
    if let Some(Size(s)) = k.max_queue_bytes {
        if !(1 << 20..=1 << 31).contains(&s) {
            return bad(
                at,
                "max_queue_bytes",
                format!("{s} is out of range (1M to 2G)"),
            );
        }
    }
    if let Some(Size(s)) = k.max_message {
        if !(1024..=1_000_000_000).contains(&s) {
            return bad(at, "max_message", format!("{s} is out of range (1K to 1G)"));
        }
    }
    for key in k.properties.keys() {
        if RESERVED.contains(&key.as_str()) {
            return bad(
                at,
                &format!("properties.{key}"),
                "may not be set: the store's acknowledgement depends on it (or it has a key of \
                 its own)",
            );
        }
    }
    if !k.idempotent() && k.properties.contains_key(IN_FLIGHT) {
        return bad(
            at,
            &format!("properties.{IN_FLIGHT}"),
            "may not be set with idempotence = false: more than one request in flight would let \
             a retried batch overtake the next one",
        );
    }
    Ok(())
}

/// What keeps a non-idempotent producer's retries in order when it is 1.
pub const IN_FLIGHT: &str = "max.in.flight.requests.per.connection";

/// A template holds `{category}` exactly once, and its fixed parts are legal in a topic name
/// and short enough that every category gives a legal topic ([`scribe_kafka::TopicTemplate`]).
pub fn check_template(t: &str) -> Result<(), String> {
    scribe_kafka::TopicTemplate::new(t)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KafkaSpec {
        KafkaSpec {
            brokers: vec!["127.0.0.1:9092".into()],
            ..Default::default()
        }
    }

    #[test]
    fn templates_need_the_placeholder_once_and_legal_short_fixed_parts() {
        assert!(check_template("logs.{category}").is_ok());
        assert!(check_template("{category}").is_ok());
        assert!(check_template("logs").unwrap_err().contains("exactly once"));
        assert!(check_template("{category}.{category}").is_err());
        assert!(check_template("logs/{category}")
            .unwrap_err()
            .contains("'/' is not allowed"));
        let long = format!("{}{{category}}", "x".repeat(50));
        assert!(check_template(&long).unwrap_err().contains("at most 49"));
    }

    #[test]
    fn validation_names_the_key_and_the_problem() {
        let err = |k: KafkaSpec| {
            let e = validate(&k, "store[0]").unwrap_err();
            format!("{}: {}", e.key, e.message)
        };
        assert!(validate(&spec(), "store[0]").is_ok());
        assert!(err(KafkaSpec {
            brokers: vec![],
            ..spec()
        })
        .contains("store[0].brokers"));
        assert!(err(KafkaSpec {
            compression: Some("brotli".into()),
            ..spec()
        })
        .contains("store[0].compression: \"brotli\" is not one of"));
        let mut props = BTreeMap::new();
        props.insert("acks".to_string(), "1".to_string());
        assert!(err(KafkaSpec {
            properties: props,
            ..spec()
        })
        .contains("store[0].properties.acks: may not be set"));
        assert!(err(KafkaSpec {
            sasl_mechanism: Some("SCRAM-SHA-256".into()),
            ..spec()
        })
        .contains("needs sasl_username"));
        let mut props = BTreeMap::new();
        props.insert(IN_FLIGHT.to_string(), "5".to_string());
        assert!(validate(
            &KafkaSpec {
                properties: props.clone(),
                ..spec()
            },
            "store[0]"
        )
        .is_ok());
        assert!(err(KafkaSpec {
            idempotence: Some(false),
            properties: props,
            ..spec()
        })
        .contains("may not be set with idempotence = false"));
    }
}

/// A `[[kafka_input]]` block: the archiver side. Consumes the topics `topics` matches and
/// routes their records as the category the topic template names, with the entry ids of their
/// `scribe.id` headers, committing offsets to `group` only once the stores said `OK`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaInputConfig {
    pub name: Option<String>,
    pub brokers: Vec<String>,
    /// A glob over topic names (`*`, `?`, `[...]`, `{a,b}`). Default: every topic the
    /// template can have produced (`logs.*`).
    pub topics: Option<String>,
    /// The producers' topic template, read backwards to get the category. Default
    /// `logs.{category}`.
    pub topic: Option<String>,
    /// The consumer group whose committed offsets say where to resume. Default
    /// `scribed-archive`.
    pub group: Option<String>,
    /// `group` (default): join the group, which shares the partitions among the archivers;
    /// `assign`: read every partition here, no group join (offsets still committed to
    /// `group`).
    pub mode: Option<String>,
    /// Most bytes of records routed (and committed) together. Default 4 MiB.
    pub max_batch_bytes: Option<Size>,
    /// librdkafka's fetch buffer bound per partition (`queued.max.messages.kbytes`, in
    /// bytes). Default 16 MiB.
    pub max_fetch_queue_bytes: Option<Size>,
    pub client_id: Option<String>,
    #[serde(default)]
    pub tls: bool,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// One `[[kafka_input]]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaInput {
    pub name: String,
    /// The connection settings (brokers, template, TLS, SASL, properties), as a store's.
    pub client: KafkaSpec,
    pub topics: scribe_archive::category::CategoryGlob,
    pub group: String,
    /// `false`: join the group; `true`: assign every partition.
    pub assign: bool,
    pub max_batch_bytes: u64,
    pub max_fetch_queue_bytes: u64,
}

/// Properties a kafka input's `properties` may not set: where and when offsets are committed
/// is the archiver's promise.
const INPUT_RESERVED: &[&str] = &[
    "enable.auto.commit",
    "enable.auto.offset.store",
    "group.id",
    "bootstrap.servers",
    "metadata.broker.list",
    "sasl.password",
    "isolation.level",
];

pub fn resolve_inputs(configs: Vec<KafkaInputConfig>) -> Result<Vec<KafkaInput>, KeyError> {
    let mut out = Vec::new();
    for (i, c) in configs.into_iter().enumerate() {
        let at = format!("kafka_input[{i}]");
        for key in c.properties.keys() {
            if INPUT_RESERVED.contains(&key.as_str()) {
                return Err(KeyError::new(
                    format!("{at}.properties.{key}"),
                    "may not be set: offsets are committed only after the stores said OK",
                ));
            }
        }
        let client = KafkaSpec {
            brokers: c.brokers,
            topic: c.topic,
            client_id: c.client_id,
            tls: c.tls,
            tls_ca: c.tls_ca,
            tls_cert: c.tls_cert,
            tls_key: c.tls_key,
            sasl_mechanism: c.sasl_mechanism,
            sasl_username: c.sasl_username,
            sasl_password_file: c.sasl_password_file,
            properties: c.properties,
            ..Default::default()
        };
        validate(&client, &at)?;
        let default_topics = client.template().glob();
        let pattern = c.topics.unwrap_or(default_topics);
        let topics = scribe_archive::category::CategoryGlob::new(&pattern)
            .map_err(|e| KeyError::new(format!("{at}.topics"), format!("{pattern:?}: {e}")))?;
        let assign = match c.mode.as_deref().unwrap_or("group") {
            "group" => false,
            "assign" => true,
            other => {
                return Err(KeyError::new(
                    format!("{at}.mode"),
                    format!("{other:?} is not `group` or `assign`"),
                ))
            }
        };
        let size = |key: &str, v: Option<Size>, default: u64| match v.map_or(default, |s| s.0) {
            v if (64 << 10..=1 << 30).contains(&v) => Ok(v),
            v => Err(KeyError::new(
                format!("{at}.{key}"),
                format!("{v} bytes is out of range (64K to 1G)"),
            )),
        };
        out.push(KafkaInput {
            name: c.name.unwrap_or_else(|| at.clone()),
            client,
            topics,
            group: c.group.unwrap_or_else(|| "scribed-archive".into()),
            assign,
            max_batch_bytes: size("max_batch_bytes", c.max_batch_bytes, 4 << 20)?,
            max_fetch_queue_bytes: size(
                "max_fetch_queue_bytes",
                c.max_fetch_queue_bytes,
                16 << 20,
            )?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod doc_tests {
    use std::path::Path;

    /// The TOML block of docs/config.md that starts with `# <name>`.
    fn example(name: &str) -> String {
        let doc = include_str!("../../../docs/config.md");
        let start = doc
            .find(&format!("```toml\n# {name}"))
            .unwrap_or_else(|| panic!("no {name} example in docs/config.md"));
        let body = &doc[start + "```toml\n".len()..];
        body[..body.find("```").expect("closed block")].to_string()
    }

    /// The worked example of docs/config.md is a valid configuration, as documented.
    #[test]
    fn the_worked_example_of_the_docs_checks() {
        let leaf = super::super::check_config_text(Path::new("leaf.toml"), &example("leaf.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let super::super::StoreSpec::Buffer(b) = &leaf.stores[0].spec else {
            panic!("a buffer store");
        };
        let super::super::StoreSpec::Kafka(k) = &*b.primary else {
            panic!("a kafka primary");
        };
        assert_eq!(k.compression.as_deref(), Some("zstd"));
        assert!(k.wants_tls());
        let arch =
            super::super::check_config_text(Path::new("archiver.toml"), &example("archiver.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let input = &arch.kafka_inputs[0];
        assert!(!input.assign);
        assert_eq!(input.group, "archive");
        assert!(input.topics.matches("logs.web") && !input.topics.matches("metrics.web"));
    }

    #[test]
    fn kafka_input_errors_name_the_key() {
        let text = "[[kafka_input]]\nbrokers = [\"b:1\"]\nmode = \"both\"\n";
        let e = super::super::check_config_text(Path::new("a.toml"), text).unwrap_err();
        assert!(e.to_string().contains("kafka_input[0].mode"), "{e}");
        let text = "[[kafka_input]]\nbrokers = [\"b:1\"]\nproperties = { \"enable.auto.commit\" = \"true\" }\n";
        let e = super::super::check_config_text(Path::new("a.toml"), text).unwrap_err();
        assert!(e.to_string().contains("may not be set"), "{e}");
    }
}
