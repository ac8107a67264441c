//! Object keys, in Hive partition style so query engines prune by path:
//!
//! ```text
//! <prefix>/category=<cat>/dt=YYYY-MM-DD/hour=HH/<aggregator-id>-<file name>.gz
//! ```
//!
//! `dt`/`hour` are when the file was started, in UTC. The aggregator id keeps several
//! aggregators' files apart in one bucket; the file name (`<cat>_NNNNN`, or dated) keeps
//! write order within one aggregator's category. One function builds keys and one parses
//! them, so the uploader and the readers (logq) agree.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use scribe_archive::layout::{self, FileKind};
use scribe_archive::{Category, FileKey};

/// Longest aggregator id: keys stay well under S3's 1024 bytes.
pub const MAX_AGGREGATOR_ID: usize = 64;

/// Checks an aggregator id: 1–64 bytes of the category alphabet (`[A-Za-z0-9._-]`), not
/// `.`/`..` (it becomes part of a path).
pub fn check_aggregator_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_AGGREGATOR_ID {
        return Err(format!(
            "aggregator id {id:?} must be 1 to {MAX_AGGREGATOR_ID} bytes"
        ));
    }
    if !id.bytes().all(scribe_archive::category::is_category_byte) || id == "." || id == ".." {
        return Err(format!(
            "aggregator id {id:?} may only hold letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Normalises a key prefix: no leading or trailing `/` (empty = the bucket's root).
pub fn clean_prefix(prefix: &str) -> String {
    prefix.trim_matches('/').to_string()
}

/// The directory of a partition: `<prefix>/category=<cat>/dt=<date>/hour=<HH>` (no trailing
/// slash; without the hour when `hour` is `None`, without the date too when `date` is).
pub fn partition_prefix(
    prefix: &str,
    category: &Category,
    date: Option<NaiveDate>,
    hour: Option<u32>,
) -> String {
    let mut s = String::new();
    if !prefix.is_empty() {
        s.push_str(prefix);
        s.push('/');
    }
    s.push_str("category=");
    s.push_str(category.as_str());
    if let Some(d) = date {
        s.push_str(&format!("/dt={}", d.format("%Y-%m-%d")));
        if let Some(h) = hour {
            s.push_str(&format!("/hour={h:02}"));
        }
    }
    s
}

/// The key of a closed file `file_name` (plain name, without `.gz`) of `category`, started at
/// `start`, uploaded by `aggregator`.
pub fn object_key(
    prefix: &str,
    category: &Category,
    start: DateTime<Utc>,
    aggregator: &str,
    file_name: &str,
) -> String {
    let dir = partition_prefix(
        prefix,
        category,
        Some(start.date_naive()),
        Some(start.hour()),
    );
    format!("{dir}/{aggregator}-{file_name}.gz")
}

/// What a key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub category: Category,
    pub date: NaiveDate,
    pub hour: u32,
    pub aggregator: String,
    /// The local file's key: write order within one aggregator's category.
    pub file: FileKey,
}

impl ObjectName {
    /// The first instant of the object's partition hour (UTC).
    pub fn partition_start(&self) -> DateTime<Utc> {
        self.date
            .and_hms_opt(self.hour, 0, 0)
            .unwrap_or_default()
            .and_utc()
    }
}

/// Parses a key under `prefix` (as cleaned by [`clean_prefix`]); `None` for anything the
/// uploader did not write.
pub fn parse_key(prefix: &str, key: &str) -> Option<ObjectName> {
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let mut parts = rest.split('/');
    let category = Category::new(parts.next()?.strip_prefix("category=")?.as_bytes()).ok()?;
    let date = NaiveDate::parse_from_str(parts.next()?.strip_prefix("dt=")?, "%Y-%m-%d").ok()?;
    let hour_s = parts.next()?.strip_prefix("hour=")?;
    if hour_s.len() != 2 {
        return None;
    }
    let hour: u32 = hour_s.parse().ok().filter(|h| *h < 24)?;
    let name = parts.next()?.strip_suffix(".gz")?;
    if parts.next().is_some() {
        return None;
    }
    // `<aggregator>-<file name>`: the aggregator id may hold '-', so take the first split
    // whose right side is one of this category's file names.
    for (i, _) in name.match_indices('-') {
        let (agg, file) = (&name[..i], &name[i + 1..]);
        if let Some((fk, FileKind::Plain)) = layout::parse_name(&category, file) {
            if check_aggregator_id(agg).is_ok() {
                return Some(ObjectName {
                    category,
                    date,
                    hour,
                    aggregator: agg.to_string(),
                    file: fk,
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_round_trip() {
        let cat: Category = "web-access".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        for (agg, file) in [
            ("agg-1", "web-access_00012"),
            ("a", "web-access-2026-03-04_00000"),
        ] {
            let k = object_key("logs/x", &cat, t, agg, file);
            assert!(k.starts_with("logs/x/category=web-access/dt=2026-03-04/hour=05/"));
            let n = parse_key("logs/x", &k).unwrap();
            assert_eq!(n.aggregator, agg);
            assert_eq!(n.file.file_name(&cat), file);
            assert_eq!(
                n.partition_start(),
                Utc.with_ymd_and_hms(2026, 3, 4, 5, 0, 0).unwrap()
            );
        }
        let k = object_key("", &cat, t, "a", "web-access_00001");
        assert_eq!(
            k,
            "category=web-access/dt=2026-03-04/hour=05/a-web-access_00001.gz"
        );
        assert!(parse_key("", &k).is_some());
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        for k in [
            "p/category=web/dt=2026-03-04/hour=05/a-web_00001",
            "p/category=web/dt=2026-03-04/hour=5/a-web_00001.gz",
            "p/category=web/dt=2026-13-04/hour=05/a-web_00001.gz",
            "p/category=web/dt=2026-03-04/hour=05/web_00001.gz",
            "p/category=web/dt=2026-03-04/hour=05/a-other_00001.gz",
            "q/category=web/dt=2026-03-04/hour=05/a-web_00001.gz",
            "p/category=web/dt=2026-03-04/hour=05/x/a-web_00001.gz",
        ] {
            assert_eq!(parse_key("p", k), None, "{k}");
        }
    }

    #[test]
    fn aggregator_ids_are_checked() {
        assert!(check_aggregator_id("agg-1.eu_west").is_ok());
        for bad in ["", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_aggregator_id(bad).is_err(), "{bad}");
        }
    }
}
