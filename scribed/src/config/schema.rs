//! The TOML schema: what a config file may contain. Every key is documented, with its default,
//! in docs/config.md; unknown keys are errors, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Dur, Size};

/// The top level of a config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<SocketAddr>>,
    pub data_dir: Option<PathBuf>,
    pub max_size: Option<Size>,
    pub max_frame: Option<Size>,
    pub max_queue_bytes: Option<Size>,
    pub max_total_queue_bytes: Option<Size>,
    pub max_msg_per_second: Option<u64>,
    pub max_connections: Option<usize>,
    pub idle_timeout: Option<Dur>,
    pub status_listen: Option<SocketAddr>,
    /// `[[store]]` blocks, read as raw tables: `category`/`categories` are taken out and the rest
    /// is a [`StoreSpec`], so errors can name the block they come from.
    #[serde(default)]
    pub store: Vec<toml::Table>,
    /// `[[listener]]` blocks: addresses with their TLS files and anonymous permissions.
    #[serde(default)]
    pub listener: Vec<super::security::ListenerSpec>,
    /// `[[client]]` blocks: known clients, how they are recognised, what they may write.
    #[serde(default)]
    pub client: Vec<super::security::ClientSpec>,
    /// A file holding the token `/metrics` and `/status` require (`Authorization: Bearer`).
    pub status_token_file: Option<PathBuf>,
    /// `[[syslog]]` and `[[otlp]]` listeners (`inputs.rs`).
    #[serde(default)]
    pub syslog: Vec<super::inputs::SyslogConfig>,
    #[serde(default)]
    pub otlp: Vec<super::inputs::OtlpConfig>,
    /// `[[kafka_input]]` blocks: topics read back into the stores (`kafka.rs`).
    #[serde(default)]
    pub kafka_input: Vec<super::kafka::KafkaInputConfig>,
}

/// One store and its settings; nested stores (buffer primary, multi children, bucket model)
/// use the same shape without categories.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StoreSpec {
    File(FileSpec),
    Network(NetworkSpec),
    Buffer(BufferSpec),
    Multi(MultiSpec),
    Bucket(BucketSpec),
    Null(NullSpec),
    Kafka(super::kafka::KafkaSpec),
}

impl StoreSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            StoreSpec::File(_) => "file",
            StoreSpec::Network(_) => "network",
            StoreSpec::Buffer(_) => "buffer",
            StoreSpec::Multi(_) => "multi",
            StoreSpec::Bucket(_) => "bucket",
            StoreSpec::Null(_) => "null",
            StoreSpec::Kafka(_) => "kafka",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSpec {}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Base directory; each category writes under `<path>/<category>/`. Default: `data_dir`.
    pub path: Option<PathBuf>,
    /// Default: the global `max_size`.
    pub max_size: Option<Size>,
    /// `never` (default), `hourly`, `daily`, or `N` with a unit s/m/h/d.
    pub rotate_period: Option<String>,
    pub rotate_hour: Option<u32>,
    pub rotate_minute: Option<u32>,
    #[serde(default)]
    pub write_meta: bool,
    #[serde(default)]
    pub compress: bool,
    pub keep_files: Option<usize>,
    pub keep_bytes: Option<Size>,
    pub keep_days: Option<u32>,
    /// `never` (default), `batch`, or an interval such as `1s`.
    pub fsync: Option<String>,
    /// Exactly-once: keep a commit log beside each category's files so entries with ids
    /// (native clients) already written are recognised, and cut an unacknowledged tail after
    /// a crash. Default `true`.
    pub idempotent: Option<bool>,
    /// `[store.s3]`: copy closed files to an S3-API bucket (see `config::s3`).
    pub s3: Option<super::s3::S3Spec>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Upstreams, `host:port`, tried in order; the first that answers is used until it fails.
    pub remote: Vec<String>,
    /// Connect to the upstreams with TLS (implied by any `tls_*` key).
    #[serde(default)]
    pub tls: bool,
    /// CA bundle that verifies the upstreams' certificates; default the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key presented to upstreams that require one (mutual TLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The name the upstreams' certificates must carry, instead of the host in `remote`.
    pub tls_server_name: Option<String>,
    /// A file holding the bearer token sent to native upstreams.
    pub token_file: Option<PathBuf>,
    pub connect_timeout: Option<Dur>,
    /// How long to wait for an upstream's answer to one batch.
    pub timeout: Option<Dur>,
    /// Connections kept per store (batches from different clients go in parallel).
    pub connections: Option<usize>,
    /// `auto` (native if the upstream speaks it, else Thrift), `native` or `thrift`. Only
    /// the native protocol carries entry ids upstream (exactly-once across a relay tree).
    #[serde(default, deserialize_with = "super::values::protocol")]
    pub protocol: Option<scribe_protocol::client::Protocol>,
    /// Gzip batch bodies to a native upstream (for slow links).
    pub compress: Option<bool>,
    /// Largest frame the upstreams read. Default: this server's `max_frame`. A native
    /// upstream says its own limit when connecting, which lowers this; a Thrift upstream
    /// cannot, so this is all the store knows of it.
    pub max_frame: Option<Size>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSpec {
    pub primary: Box<StoreSpec>,
    /// Spool directory. Default: `<data_dir>/.spool/<store name>`.
    pub spool_dir: Option<PathBuf>,
    pub max_spool_bytes: Option<Size>,
    /// How long to wait after the primary failed before trying it again.
    pub retry_interval: Option<Dur>,
    /// Most bytes sent to the primary in one replayed batch.
    pub replay_batch_bytes: Option<Size>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiSpec {
    pub stores: Vec<StoreSpec>,
    /// `all` (default): OK only when every child accepted; `any`: when at least one did.
    pub report_success: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSpec {
    pub num_buckets: u32,
    /// `key_hash` (default) or `random`.
    pub bucket_type: Option<String>,
    /// The byte that ends the key (default `:`).
    pub delimiter: Option<String>,
    /// Strip the key and delimiter before storing.
    #[serde(default)]
    pub remove_key: bool,
    /// File-store buckets write under `<path>/<bucket_subdir>NNN/` (default `bucket`).
    pub bucket_subdir: Option<String>,
    /// The store each bucket gets a copy of.
    pub bucket: Box<StoreSpec>,
}
