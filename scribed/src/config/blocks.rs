//! `[[store]]` blocks: categories, the store spec, and the checks serde cannot make. Every
//! problem is a [`KeyError`] whose key is the full path (`store[1].primary.timeout`), which
//! `locate` turns into `file:line:col`.

use std::fmt::Write;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::locate::KeyError;
use super::{
    parse_bucket_type, parse_delimiter, parse_report_success, values, CategoryPattern, StoreBlock,
    StoreSpec,
};

const TYPES: &str = "file, network, buffer, multi, bucket, null or kafka";

/// Block `i` of the file: its categories taken out, the rest read as a store spec.
pub fn store_block(i: usize, mut table: toml::Table) -> Result<StoreBlock, KeyError> {
    let at = format!("store[{i}]");
    let mut names: Vec<String> = Vec::new();
    let mut patterns = Vec::new();
    for key in ["category", "categories"] {
        for (name, pattern) in category_names(table.remove(key), &format!("{at}.{key}"))? {
            names.push(name);
            patterns.push(pattern);
        }
    }
    if names.is_empty() {
        return Err(KeyError::new(
            &at,
            "needs `category` or `categories` (a name, a prefix like \"web*\", or \"default\")",
        ));
    }
    let spec = parse_spec(table, &at)?;
    Ok(StoreBlock {
        name: format!("{at} ({})", names.join(" ")),
        at,
        patterns,
        spec,
        key: spool_key(&names),
    })
}

/// The names a `category`/`categories` value holds (a string of names separated by spaces, or
/// an array of strings), each parsed as a pattern.
fn category_names(
    value: Option<toml::Value>,
    at: &str,
) -> Result<Vec<(String, CategoryPattern)>, KeyError> {
    let names: Vec<String> = match value {
        None => return Ok(Vec::new()),
        Some(toml::Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(j, v)| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(KeyError::new(
                    format!("{at}[{j}]"),
                    format!("expected a category name, found {}", other.type_str()),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(KeyError::new(
                at,
                format!(
                    "expected a string or an array of strings, found {}",
                    other.type_str()
                ),
            ))
        }
    };
    names
        .into_iter()
        .map(|n| match CategoryPattern::parse(&n) {
            Ok(p) => Ok((n, p)),
            Err(e) => Err(KeyError::new(at, e)),
        })
        .collect()
}

/// Reads a store table (a block less its categories, or a nested store) into its spec, so that
/// a problem anywhere inside is named by its full key path. serde alone cannot: `StoreSpec` is
/// tagged by `type`, and a tagged enum buffers its table before choosing the variant, losing
/// which key failed. So the tag is read here, nested stores are checked under their own paths
/// first, and the variant's struct is read with its field path tracked.
fn parse_spec(mut table: toml::Table, at: &str) -> Result<StoreSpec, KeyError> {
    let kind = match table.remove("type") {
        None => return Err(KeyError::new(at, format!("missing `type` ({TYPES})"))),
        Some(toml::Value::String(s)) => s,
        Some(other) => {
            return Err(KeyError::new(
                format!("{at}.type"),
                format!("expected a string ({TYPES}), found {}", other.type_str()),
            ))
        }
    };
    let nested = match kind.as_str() {
        "buffer" => Some("primary"),
        "bucket" => Some("bucket"),
        _ => None,
    };
    if let Some(v) = nested.and_then(|k| table.get(k)) {
        check_nested(v, &format!("{at}.{}", nested.unwrap_or_default()))?;
    }
    if let (Some(toml::Value::Array(stores)), "multi") = (table.get("stores"), kind.as_str()) {
        for (i, v) in stores.iter().enumerate() {
            check_nested(v, &format!("{at}.stores[{i}]"))?;
        }
    }
    Ok(match kind.as_str() {
        "file" => StoreSpec::File(fields(table, at)?),
        "network" => StoreSpec::Network(fields(table, at)?),
        "buffer" => StoreSpec::Buffer(fields(table, at)?),
        "multi" => StoreSpec::Multi(fields(table, at)?),
        "bucket" => StoreSpec::Bucket(fields(table, at)?),
        "null" => StoreSpec::Null(fields(table, at)?),
        "kafka" => StoreSpec::Kafka(fields(table, at)?),
        other => {
            return Err(KeyError::new(
                format!("{at}.type"),
                format!("unknown store type {other:?}: expected {TYPES}"),
            ))
        }
    })
}

fn check_nested(value: &toml::Value, at: &str) -> Result<(), KeyError> {
    match value {
        toml::Value::Table(t) => parse_spec(t.clone(), at).map(drop),
        other => Err(KeyError::new(
            at,
            format!("expected a store table, found {}", other.type_str()),
        )),
    }
}

/// Deserializes a store's struct from its table, naming the failing key by its path under `at`.
fn fields<T: DeserializeOwned>(table: toml::Table, at: &str) -> Result<T, KeyError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let mut key = at.to_string();
        for segment in e.path().iter() {
            let _ = match segment {
                Segment::Seq { index } => write!(key, "[{index}]"),
                Segment::Map { key: k } | Segment::Enum { variant: k } => write!(key, ".{k}"),
                Segment::Unknown => Ok(()),
            };
        }
        KeyError::new(key, e.into_inner().message())
    })
}

/// A directory name for a block's categories that does not depend on their order in the file:
/// the sorted names, or a hash of them when that would be too long for a file name.
pub fn spool_key(names: &[String]) -> String {
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

fn check_duration(at: &str, key: &str, d: Option<values::Dur>) -> Result<(), KeyError> {
    let problem = match d {
        Some(values::Dur(d)) if d.is_zero() => "must be more than 0".to_string(),
        Some(values::Dur(d)) if d > MAX_DURATION => format!(
            "{} is longer than the limit of 7 days",
            humantime::format_duration(d)
        ),
        _ => return Ok(()),
    };
    Err(KeyError::new(format!("{at}.{key}"), problem))
}

/// `Err` naming `<at>.<key>` with `problem`.
fn bad<T>(at: &str, key: &str, problem: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError::new(format!("{at}.{key}"), problem))
}

/// Checks what serde cannot: enumerated strings, ranges, combinations.
pub fn validate_spec(spec: &StoreSpec, at: &str) -> Result<(), KeyError> {
    match spec {
        StoreSpec::File(f) => {
            if let Some(p) = &f.rotate_period {
                values::parse_rotate_period(p).or_else(|e| bad(at, "rotate_period", e))?;
            }
            if let Some(h) = f.rotate_hour.filter(|h| *h > 23) {
                return bad(at, "rotate_hour", format!("{h} is not an hour (0-23)"));
            }
            if let Some(m) = f.rotate_minute.filter(|m| *m > 59) {
                return bad(at, "rotate_minute", format!("{m} is not a minute (0-59)"));
            }
            if let Some(p) = &f.fsync {
                values::parse_fsync(p).or_else(|e| bad(at, "fsync", e))?;
            }
            if let Some(s3) = &f.s3 {
                super::s3::validate(s3, &format!("{at}.s3"))?;
            }
        }
        StoreSpec::Network(n) => {
            if n.remote.is_empty() {
                return bad(at, "remote", "at least one upstream host:port is needed");
            }
            for r in &n.remote {
                if r.rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return bad(at, "remote", format!("{r:?} is not host:port"));
                }
            }
            if n.connections == Some(0) {
                return bad(at, "connections", "must be at least 1");
            }
            check_duration(at, "connect_timeout", n.connect_timeout)?;
            check_duration(at, "timeout", n.timeout)?;
            if let Some(m) = n.max_frame.filter(|m| !(1024..=1 << 30).contains(&m.0)) {
                return bad(
                    at,
                    "max_frame",
                    format!("{} bytes is out of range (1K to 1G)", m.0),
                );
            }
        }
        StoreSpec::Buffer(b) => {
            if matches!(*b.primary, StoreSpec::Multi(_) | StoreSpec::Buffer(_)) {
                let kind = b.primary.type_name();
                return bad(
                    at,
                    "primary",
                    format!("a buffer's primary may not be a {kind} store"),
                );
            }
            check_duration(at, "retry_interval", b.retry_interval)?;
            if b.max_spool_bytes.is_some_and(|s| s.0 == 0) {
                return bad(at, "max_spool_bytes", "must be more than 0");
            }
            validate_spec(&b.primary, &format!("{at}.primary"))?;
        }
        StoreSpec::Multi(m) => {
            if m.stores.is_empty() {
                return bad(at, "stores", "at least one store is needed");
            }
            parse_report_success(m.report_success.as_deref())
                .or_else(|e| bad(at, "report_success", e))?;
            for (i, s) in m.stores.iter().enumerate() {
                validate_spec(s, &format!("{at}.stores[{i}]"))?;
            }
        }
        StoreSpec::Bucket(b) => {
            if b.num_buckets == 0 || b.num_buckets > 999 {
                let n = b.num_buckets;
                return bad(at, "num_buckets", format!("must be 1 to 999, not {n}"));
            }
            parse_bucket_type(b.bucket_type.as_deref()).or_else(|e| bad(at, "bucket_type", e))?;
            parse_delimiter(b.delimiter.as_deref()).or_else(|e| bad(at, "delimiter", e))?;
            if matches!(&*b.bucket, StoreSpec::File(f) if f.s3.is_some()) {
                // Copies share category and file names: their objects would collide.
                return bad(
                    at,
                    "bucket.s3",
                    "bucket copies cannot upload to an object store",
                );
            }
            if !matches!(*b.bucket, StoreSpec::File(_) | StoreSpec::Null(_)) {
                let kind = b.bucket.type_name();
                return bad(
                    at,
                    "bucket",
                    format!("bucket copies must be file or null stores, not {kind}"),
                );
            }
            validate_spec(&b.bucket, &format!("{at}.bucket"))?;
        }
        StoreSpec::Null(_) => {}
        StoreSpec::Kafka(k) => super::kafka::validate(k, at)?,
    }
    Ok(())
}
