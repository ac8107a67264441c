//! Settings: a TOML file (`--config`) overridden by flags, resolved and validated into
//! [`Settings`]. `scribed --check-config FILE` runs exactly this validation.

mod cli;
mod schema;
pub mod values;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cli::Args;
pub use schema::{BucketSpec, BufferSpec, FileSpec, MultiSpec, NetworkSpec, NullSpec, StoreSpec};
use scribe_archive::Category;
use serde::Deserialize;

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

/// A config problem, phrased for the operator: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

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
            if !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(format!(
                    "prefix pattern {s:?} may only contain A-Z a-z 0-9 . _ - before the '*'"
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
    pub listen: Vec<SocketAddr>,
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
}

impl Settings {
    /// Reads `args.config` (if any), applies the flags on top, validates.
    pub fn load(args: &Args) -> Result<Settings, ConfigError> {
        let path = args.config.clone().or_else(|| args.check_config.clone());
        let file = match &path {
            Some(p) => read_file(p)?,
            None => schema::FileConfig::default(),
        };
        resolve(file, args, path)
    }
}

/// Parses and validates a config file's text exactly as `--check-config` does, with no flags
/// and no file access (`name` stands for the file in errors). The entry point of the
/// `scribed_config` fuzz target.
pub fn check_config_text(name: &Path, text: &str) -> Result<Settings, ConfigError> {
    let file = parse_text(name, text)?;
    resolve(file, &Args::default(), Some(name.to_path_buf()))
}

fn read_file(path: &Path) -> Result<schema::FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse_text(path, &text)
}

fn parse_text(path: &Path, text: &str) -> Result<schema::FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        file: path.display().to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

fn resolve(
    file: schema::FileConfig,
    args: &Args,
    path: Option<PathBuf>,
) -> Result<Settings, ConfigError> {
    let file_name = path
        .as_ref()
        .map_or_else(|| "command line".to_string(), |p| p.display().to_string());
    let err = |message: String| ConfigError {
        file: file_name.clone(),
        message,
    };
    let listen = if !args.listen.is_empty() {
        args.listen.clone()
    } else {
        file.listen
            .unwrap_or_else(|| vec![DEFAULT_LISTEN.parse().expect("valid default")])
    };
    if listen.is_empty() {
        return Err(err("listen: at least one address is needed".into()));
    }
    let data_dir = args
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let size = |flag: Option<u64>, key: Option<values::Size>, default: u64| {
        flag.or(key.map(|s| s.0)).unwrap_or(default)
    };
    let max_frame = size(
        args.max_frame,
        file.max_frame,
        scribe_protocol::frame::DEFAULT_MAX_FRAME as u64,
    );
    if max_frame < 1024 {
        return Err(err(format!(
            "max_frame: {max_frame} bytes is too small (at least 1K)"
        )));
    }
    // Above 1 GiB a Thrift frame length could begin with the native protocol's magic byte
    // (0xF5), and the two protocols could no longer be told apart (docs/protocol.md).
    if max_frame > 1 << 30 {
        return Err(err(format!(
            "max_frame: {max_frame} bytes is too large (at most 1G)"
        )));
    }
    let mut settings = Settings {
        config_path: path.clone(),
        listen,
        data_dir,
        max_size: size(args.max_size, file.max_size, DEFAULT_MAX_SIZE),
        max_frame,
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
    };
    if settings.idle_timeout.is_zero() {
        return Err(err("idle_timeout: must be more than 0".into()));
    }
    if settings.max_connections == 0 {
        return Err(err("max_connections: must be at least 1".into()));
    }
    for (i, table) in file.store.into_iter().enumerate() {
        settings.stores.push(store_block(i, table).map_err(err)?);
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
    let mut spools = HashSet::new();
    for b in &settings.stores {
        validate_spec(&b.spec, &b.at, &b.key, &settings, &mut spools).map_err(err)?;
    }
    Ok(settings)
}

fn store_block(i: usize, mut table: toml::Table) -> Result<StoreBlock, String> {
    let at = format!("store[{i}]");
    let mut names: Vec<String> = Vec::new();
    for key in ["category", "categories"] {
        match table.remove(key) {
            None => {}
            Some(toml::Value::String(s)) => names.extend(s.split_whitespace().map(String::from)),
            Some(toml::Value::Array(a)) => {
                for v in a {
                    match v {
                        toml::Value::String(s) => names.push(s),
                        other => {
                            return Err(format!(
                                "{at}.{key}: expected category names as strings, found {}",
                                other.type_str()
                            ))
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "{at}.{key}: expected a string or an array of strings, found {}",
                    other.type_str()
                ))
            }
        }
    }
    if names.is_empty() {
        return Err(format!(
            "{at}: needs `category` or `categories` (a name, a prefix like \"web*\", or \"default\")"
        ));
    }
    let patterns = names
        .iter()
        .map(|n| CategoryPattern::parse(n).map_err(|e| format!("{at}.categories: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !table.contains_key("type") {
        return Err(format!(
            "{at}: missing `type` (file, network, buffer, multi, bucket or null)"
        ));
    }
    let spec = StoreSpec::deserialize(toml::Value::Table(table))
        .map_err(|e| format!("{at}: {}", e.to_string().trim_end()))?;
    let key = spool_key(&names);
    Ok(StoreBlock {
        name: format!("{at} ({})", names.join(" ")),
        at: at.clone(),
        patterns,
        spec,
        key,
    })
}

/// A directory name for a block's categories that does not depend on their order in the file:
/// the sorted names, or a hash of them when that would be too long for a file name.
fn spool_key(names: &[String]) -> String {
    let mut sorted: Vec<String> = names.iter().map(|n| n.replace('*', "_prefix")).collect();
    sorted.sort();
    sorted.dedup();
    let joined = sorted.join("+");
    if joined.len() <= 100 {
        return joined;
    }
    // FNV-1a: stable across builds and versions, unlike std's hasher.
    let hash = joined.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}", &joined[..40])
}

/// Longest accepted duration for timeouts and retry intervals: longer ones are typos, and
/// they would overflow deadline arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(7 * 86_400);

fn check_duration(at: &str, key: &str, d: Option<values::Dur>) -> Result<(), String> {
    match d {
        Some(values::Dur(d)) if d.is_zero() => Err(format!("{at}.{key}: must be more than 0")),
        Some(values::Dur(d)) if d > MAX_DURATION => Err(format!(
            "{at}.{key}: {} is longer than the limit of 7 days",
            humantime::format_duration(d)
        )),
        _ => Ok(()),
    }
}

/// Checks what serde cannot: enumerated strings, ranges, combinations.
fn validate_spec(
    spec: &StoreSpec,
    at: &str,
    key: &str,
    settings: &Settings,
    spools: &mut HashSet<PathBuf>,
) -> Result<(), String> {
    match spec {
        StoreSpec::File(f) => {
            if let Some(p) = &f.rotate_period {
                values::parse_rotate_period(p).map_err(|e| format!("{at}.rotate_period: {e}"))?;
            }
            if let Some(h) = f.rotate_hour.filter(|h| *h > 23) {
                return Err(format!("{at}.rotate_hour: {h} is not an hour (0-23)"));
            }
            if let Some(m) = f.rotate_minute.filter(|m| *m > 59) {
                return Err(format!("{at}.rotate_minute: {m} is not a minute (0-59)"));
            }
            if let Some(p) = &f.fsync {
                values::parse_fsync(p).map_err(|e| format!("{at}.fsync: {e}"))?;
            }
        }
        StoreSpec::Network(n) => {
            if n.remote.is_empty() {
                return Err(format!(
                    "{at}.remote: at least one upstream host:port is needed"
                ));
            }
            for r in &n.remote {
                if r.rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(format!("{at}.remote: {r:?} is not host:port"));
                }
            }
            if n.connections == Some(0) {
                return Err(format!("{at}.connections: must be at least 1"));
            }
            check_duration(at, "connect_timeout", n.connect_timeout)?;
            check_duration(at, "timeout", n.timeout)?;
            if let Some(m) = n.max_frame.filter(|m| !(1024..=1 << 30).contains(&m.0)) {
                return Err(format!(
                    "{at}.max_frame: {} bytes is out of range (1K to 1G)",
                    m.0
                ));
            }
        }
        StoreSpec::Buffer(b) => {
            if matches!(*b.primary, StoreSpec::Multi(_) | StoreSpec::Buffer(_)) {
                return Err(format!(
                    "{at}.primary: a buffer's primary may not be a {} store",
                    b.primary.type_name()
                ));
            }
            check_duration(at, "retry_interval", b.retry_interval)?;
            if b.max_spool_bytes.is_some_and(|s| s.0 == 0) {
                return Err(format!("{at}.max_spool_bytes: must be more than 0"));
            }
            let dir = spool_dir(b, key, settings);
            if !spools.insert(dir.clone()) {
                return Err(format!(
                    "{at}: spool directory {} is used by another buffer store; set spool_dir",
                    dir.display()
                ));
            }
            validate_spec(&b.primary, &format!("{at}.primary"), key, settings, spools)?;
        }
        StoreSpec::Multi(m) => {
            if m.stores.is_empty() {
                return Err(format!("{at}.stores: at least one store is needed"));
            }
            parse_report_success(m.report_success.as_deref())
                .map_err(|e| format!("{at}.report_success: {e}"))?;
            for (i, s) in m.stores.iter().enumerate() {
                validate_spec(
                    s,
                    &format!("{at}.stores[{i}]"),
                    &child_key(key, i),
                    settings,
                    spools,
                )?;
            }
        }
        StoreSpec::Bucket(b) => {
            if b.num_buckets == 0 || b.num_buckets > 999 {
                return Err(format!(
                    "{at}.num_buckets: must be 1 to 999, not {}",
                    b.num_buckets
                ));
            }
            parse_bucket_type(b.bucket_type.as_deref())
                .map_err(|e| format!("{at}.bucket_type: {e}"))?;
            parse_delimiter(b.delimiter.as_deref()).map_err(|e| format!("{at}.delimiter: {e}"))?;
            if !matches!(*b.bucket, StoreSpec::File(_) | StoreSpec::Null(_)) {
                return Err(format!(
                    "{at}.bucket: bucket copies must be file or null stores, not {}",
                    b.bucket.type_name()
                ));
            }
            validate_spec(&b.bucket, &format!("{at}.bucket"), key, settings, spools)?;
        }
        StoreSpec::Null(_) => {}
    }
    Ok(())
}

/// Spool directories under `<data_dir>/.spool` that no buffer store of `settings` uses but that
/// still hold data: a backlog stranded by a config change. scribed warns about them at start
/// and on reload (it never deletes them).
pub fn unclaimed_spools(settings: &Settings) -> Vec<PathBuf> {
    fn claimed(spec: &StoreSpec, key: &str, settings: &Settings, out: &mut HashSet<PathBuf>) {
        match spec {
            StoreSpec::Buffer(b) => {
                out.insert(spool_dir(b, key, settings));
            }
            StoreSpec::Multi(m) => {
                for (i, s) in m.stores.iter().enumerate() {
                    claimed(s, &child_key(key, i), settings, out);
                }
            }
            _ => {}
        }
    }
    let mut used = HashSet::new();
    for b in &settings.stores {
        claimed(&b.spec, &b.key, settings, &mut used);
    }
    let Ok(entries) = std::fs::read_dir(settings.data_dir.join(".spool")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|dir| !used.contains(dir))
        .filter(|dir| {
            std::fs::read_dir(dir).is_ok_and(|files| {
                files.filter_map(|f| f.ok()).any(|f| {
                    f.path().extension().is_some_and(|x| x == "seg")
                        && f.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        })
        .collect()
}

/// Logs a warning for every spool holding a backlog that no buffer store will replay.
pub fn warn_unclaimed_spools(settings: &Settings) {
    for dir in unclaimed_spools(settings) {
        tracing::warn!(
            spool = %dir.display(),
            "a spool with a backlog belongs to no buffer store in this configuration; \
             point a buffer store's spool_dir at it to replay it"
        );
    }
}

/// The key of a multi store's `i`-th child, from which a nested buffer store's default spool
/// directory is named. Validation, building and the unclaimed-spool check must agree on it.
pub fn child_key(key: &str, i: usize) -> String {
    format!("{key}.{i}")
}

/// Where a buffer store spools.
pub fn spool_dir(b: &BufferSpec, key: &str, settings: &Settings) -> PathBuf {
    b.spool_dir
        .clone()
        .unwrap_or_else(|| settings.data_dir.join(".spool").join(key))
}

/// The dead-letter directory beside (inside) a spool directory: the spool itself only reads
/// its segment files and cursor, and its directory lock covers this too.
pub fn dead_letter_dir(spool_dir: &Path) -> PathBuf {
    spool_dir.join("dead-letter")
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
}

#[cfg(test)]
mod tests;
