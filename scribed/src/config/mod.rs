//! Settings: a TOML file (`--config`) overridden by flags, resolved and validated into
//! [`Settings`]. `scribed --check-config FILE` runs exactly this validation, and so does a
//! reload.
//!
//! - `schema` — what the file may contain; `values` — sizes, durations, enumerated strings.
//! - `blocks` — `[[store]]` blocks: categories, the spec read with its key paths, checks.
//! - `dirs` — the directories stores write; two stores writing one are refused.
//! - `locate` — placing every error at `file:line:col` with its key.

mod blocks;
mod cli;
mod dirs;
pub mod inputs;
pub mod kafka;
mod locate;
pub mod s3;
mod schema;
pub mod security;
pub mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cli::Args;
pub use dirs::{
    child_key, claimed_spools, dead_letter_dir, default_spool_dir, file_base, spool_dir,
    unclaimed_spools, warn_unclaimed_spools,
};
use locate::{KeyError, Source};
pub use schema::{BucketSpec, BufferSpec, FileSpec, MultiSpec, NetworkSpec, NullSpec, StoreSpec};
use scribe_archive::category::{is_category_byte, MAX_CATEGORY_LEN};
use scribe_archive::Category;
pub use security::{ClientSettings, ListenerSettings, ANONYMOUS};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1463";
pub const DEFAULT_STATUS_LISTEN: &str = "127.0.0.1:1464";
pub const DEFAULT_DATA_DIR: &str = "./scribe-data";
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
pub const DEFAULT_MAX_QUEUE_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_TOTAL_QUEUE_BYTES: u64 = 512 << 20;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `idle_timeout`: long enough for clients that keep a connection open between sparse
/// batches (Scribe clients do), short enough that abandoned connections free their slots.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// A config problem, phrased for the operator: `file:line:col: key: problem`.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file, or `command line` for a flag.
    pub file: String,
    /// Line and column (1-based) of the key in the file; `None` when the problem is not in the
    /// file (a flag) or the key is absent from it (a default).
    pub at: Option<(usize, usize)>,
    /// The key as a path (`max_frame`, `store[2].primary.remote`, `--max-frame`); `None` only
    /// for a syntax error outside any key.
    pub key: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.at {
            write!(f, ":{line}:{col}")?;
        }
        match &self.key {
            Some(key) => write!(f, ": {key}: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// How a store block selects categories.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CategoryPattern {
    Exact(Category),
    /// `foo*`: every category starting with `foo` (the longest matching prefix wins).
    Prefix(String),
    /// `default`: categories no exact name or prefix matched.
    Default,
}

impl CategoryPattern {
    pub fn parse(s: &str) -> Result<CategoryPattern, String> {
        if s == "default" {
            return Ok(CategoryPattern::Default);
        }
        if let Some(prefix) = s.strip_suffix('*') {
            if !prefix.bytes().all(is_category_byte) {
                return Err(format!(
                    "prefix pattern {s:?} may only contain A-Z a-z 0-9 . _ - before the '*'"
                ));
            }
            if prefix.len() > MAX_CATEGORY_LEN {
                return Err(format!(
                    "prefix pattern {s:?} is longer than any category ({MAX_CATEGORY_LEN} bytes)"
                ));
            }
            return Ok(CategoryPattern::Prefix(prefix.to_string()));
        }
        Category::new(s.as_bytes())
            .map(CategoryPattern::Exact)
            .map_err(|e| format!("{s:?} is not a valid category: {e}"))
    }
}

/// One top-level `[[store]]` block, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreBlock {
    /// For messages and metrics: `store[2]` plus its categories.
    pub name: String,
    /// Its place in the file, `store[2]`, for error messages that name keys.
    pub at: String,
    pub patterns: Vec<CategoryPattern>,
    pub spec: StoreSpec,
    /// Stable identifier derived from the categories (not the block's position), used to name
    /// spool directories so reordering blocks never orphans a spool.
    pub key: String,
}

/// Everything scribed runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub config_path: Option<PathBuf>,
    /// Plaintext addresses (`listen`, `--listen`).
    pub listen: Vec<SocketAddr>,
    /// `[[listener]]` blocks (TLS or plaintext, with anonymous permissions).
    pub listeners: Vec<ListenerSettings>,
    /// `[[client]]` blocks.
    pub clients: Vec<ClientSettings>,
    /// The token `/metrics` and `/status` require, if any.
    pub status_token_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub max_size: u64,
    pub max_frame: u64,
    pub max_queue_bytes: u64,
    pub max_total_queue_bytes: u64,
    pub max_msg_per_second: u64,
    pub max_connections: usize,
    /// A connection that starts no frame for this long is closed.
    pub idle_timeout: Duration,
    pub status_listen: SocketAddr,
    pub ready_file: Option<PathBuf>,
    pub stores: Vec<StoreBlock>,
    /// Syslog and OTLP listeners (`[[syslog]]`, `[[otlp]]`).
    pub inputs: inputs::Inputs,
    /// Kafka topics read back (`[[kafka_input]]`).
    pub kafka_inputs: Vec<kafka::KafkaInput>,
}

impl Settings {
    /// Every address to accept clients on: the plaintext `listen` ones, then the
    /// `[[listener]]` blocks.
    pub fn all_listeners(&self) -> Vec<ListenerSettings> {
        self.listen
            .iter()
            .map(|a| ListenerSettings::plain(*a))
            .chain(self.listeners.iter().cloned())
            .collect()
    }

    /// Reads `args.config` (if any), applies the flags on top, validates.
    pub fn load(args: &Args) -> Result<Settings, ConfigError> {
        let Some(path) = args.config.clone().or_else(|| args.check_config.clone()) else {
            let source = Source::none("command line".into());
            return resolve(schema::FileConfig::default(), args, None, &source);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            at: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        check_text(&path, &text, args)
    }
}

/// Parses and validates a config file's text exactly as `--check-config` does, with no flags
/// and no file access (`name` stands for the file in errors). The entry point of the
/// `scribed_config` fuzz target.
pub fn check_config_text(name: &Path, text: &str) -> Result<Settings, ConfigError> {
    check_text(name, text, &Args::default())
}

fn check_text(path: &Path, text: &str, args: &Args) -> Result<Settings, ConfigError> {
    let source = Source::parse(path.display().to_string(), text)?;
    let file: schema::FileConfig = toml::from_str(text).map_err(|e| source.toml_error(&e))?;
    resolve(file, args, Some(path.to_path_buf()), &source)
}

fn resolve(
    mut file: schema::FileConfig,
    args: &Args,
    path: Option<PathBuf>,
    source: &Source<'_>,
) -> Result<Settings, ConfigError> {
    let blocks = std::mem::take(&mut file.store);
    let listener_specs = std::mem::take(&mut file.listener);
    let client_specs = std::mem::take(&mut file.client);
    let has_listeners = !listener_specs.is_empty();
    let (syslog, otlp) = (
        std::mem::take(&mut file.syslog),
        std::mem::take(&mut file.otlp),
    );
    let kafka_inputs = std::mem::take(&mut file.kafka_input);
    let mut settings = globals(file, args, path, has_listeners).map_err(|e| source.key_error(e))?;
    settings.kafka_inputs = kafka::resolve_inputs(kafka_inputs).map_err(|e| source.key_error(e))?;
    settings.inputs = inputs::resolve(syslog, otlp).map_err(|e| source.key_error(e))?;
    for (i, spec) in listener_specs.into_iter().enumerate() {
        let l = security::listener(i, spec).map_err(|e| source.key_error(e))?;
        settings.listeners.push(l);
    }
    for (i, spec) in client_specs.into_iter().enumerate() {
        let c = security::client(i, spec).map_err(|e| source.key_error(e))?;
        settings.clients.push(c);
    }
    security::check(&settings.all_listeners(), &settings.clients)
        .map_err(|e| source.key_error(e))?;
    for (i, table) in blocks.into_iter().enumerate() {
        let block = blocks::store_block(i, table).map_err(|e| source.key_error(e))?;
        settings.stores.push(block);
    }
    if settings.stores.is_empty() {
        // No [[store]]: every category goes to one file store under data_dir, as the flags-only
        // walking skeleton did.
        settings.stores.push(StoreBlock {
            name: "store[default]".into(),
            at: "store[default]".into(),
            patterns: vec![CategoryPattern::Default],
            spec: StoreSpec::File(FileSpec::default()),
            key: "default".into(),
        });
    }
    for b in &settings.stores {
        blocks::validate_spec(&b.spec, &b.at).map_err(|e| source.key_error(e))?;
    }
    dirs::check_writers(&settings).map_err(|e| source.key_error(e))?;
    Ok(settings)
}

/// The key a global setting's problem is named by: the flag when the value came from one (it is
/// not in the file then), else the file's key.
fn key_of(flag_given: bool, key: &str) -> String {
    if flag_given {
        format!("--{}", key.replace('_', "-"))
    } else {
        key.to_string()
    }
}

/// The global settings: flags over the file's keys over defaults (no stores yet).
fn globals(
    file: schema::FileConfig,
    args: &Args,
    path: Option<PathBuf>,
    has_listeners: bool,
) -> Result<Settings, KeyError> {
    let listen = if !args.listen.is_empty() {
        args.listen.clone()
    } else if has_listeners {
        // `[[listener]]` blocks replace the default address (which might be one of theirs).
        file.listen.unwrap_or_default()
    } else {
        file.listen
            .unwrap_or_else(|| vec![DEFAULT_LISTEN.parse().expect("valid default")])
    };
    if listen.is_empty() && !has_listeners {
        return Err(KeyError::new("listen", "at least one address is needed"));
    }
    let size = |flag: Option<u64>, key: Option<values::Size>, default: u64| {
        flag.or(key.map(|s| s.0)).unwrap_or(default)
    };
    let settings = Settings {
        config_path: path,
        listen,
        listeners: Vec::new(),
        clients: Vec::new(),
        status_token_file: file.status_token_file,
        data_dir: args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        max_size: size(args.max_size, file.max_size, DEFAULT_MAX_SIZE),
        max_frame: size(
            args.max_frame,
            file.max_frame,
            scribe_protocol::frame::DEFAULT_MAX_FRAME as u64,
        ),
        max_queue_bytes: size(
            args.max_queue_bytes,
            file.max_queue_bytes,
            DEFAULT_MAX_QUEUE_BYTES,
        ),
        max_total_queue_bytes: size(
            args.max_total_queue_bytes,
            file.max_total_queue_bytes,
            DEFAULT_MAX_TOTAL_QUEUE_BYTES,
        ),
        max_msg_per_second: args
            .max_msg_per_second
            .or(file.max_msg_per_second)
            .unwrap_or(0),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        idle_timeout: args
            .idle_timeout
            .or(file.idle_timeout.map(|d| d.0))
            .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        status_listen: args
            .status_listen
            .or(file.status_listen)
            .unwrap_or_else(|| DEFAULT_STATUS_LISTEN.parse().expect("valid default")),
        ready_file: args.ready_file.clone(),
        stores: Vec::new(),
        inputs: Default::default(),
        kafka_inputs: Vec::new(),
    };
    check_globals(&settings, args)?;
    Ok(settings)
}

fn check_globals(s: &Settings, args: &Args) -> Result<(), KeyError> {
    let frame_key = key_of(args.max_frame.is_some(), "max_frame");
    let max_frame = s.max_frame;
    if max_frame < 1024 {
        let problem = format!("{max_frame} bytes is too small (at least 1K)");
        return Err(KeyError::new(frame_key, problem));
    }
    // Above 1 GiB a Thrift frame length could begin with the native protocol's magic byte
    // (0xF5), and the two protocols could no longer be told apart (docs/protocol.md).
    if max_frame > 1 << 30 {
        let problem = format!("{max_frame} bytes is too large (at most 1G)");
        return Err(KeyError::new(frame_key, problem));
    }
    if s.idle_timeout.is_zero() {
        let key = key_of(args.idle_timeout.is_some(), "idle_timeout");
        return Err(KeyError::new(key, "must be more than 0"));
    }
    if s.max_connections == 0 {
        let key = key_of(args.max_connections.is_some(), "max_connections");
        return Err(KeyError::new(key, "must be at least 1"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSuccess {
    All,
    Any,
}

pub fn parse_report_success(s: Option<&str>) -> Result<ReportSuccess, String> {
    match s.unwrap_or("all") {
        "all" => Ok(ReportSuccess::All),
        "any" => Ok(ReportSuccess::Any),
        other => Err(format!("{other:?} is not `all` or `any`")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketType {
    KeyHash,
    Random,
}

pub fn parse_bucket_type(s: Option<&str>) -> Result<BucketType, String> {
    match s.unwrap_or("key_hash") {
        "key_hash" => Ok(BucketType::KeyHash),
        "random" => Ok(BucketType::Random),
        other => Err(format!("{other:?} is not `key_hash` or `random`")),
    }
}

/// The delimiter is one byte: a one-character string, or a decimal byte code as Scribe wrote it
/// (`"58"` is `:`).
pub fn parse_delimiter(s: Option<&str>) -> Result<u8, String> {
    let s = s.unwrap_or(":");
    if s.len() == 1 {
        return Ok(s.as_bytes()[0]);
    }
    s.parse::<u8>()
        .map_err(|_| format!("{s:?} is neither one character nor a byte code 0-255"))
}

/// Durations used when a key is absent.
pub mod defaults {
    use super::Duration;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
    pub const MAX_SPOOL_BYTES: u64 = 1 << 30;
    pub const REPLAY_BATCH_BYTES: u64 = 1 << 20;
    pub const NETWORK_CONNECTIONS: usize = 4;
    /// Batches a buffer store keeps in flight to its network primary (as `ship --window`).
    pub const NETWORK_WINDOW: usize = 4;
}

#[cfg(test)]
mod tests;
