//! `--tz ZONE`: the time zone that zone-less times are read in (syslog's `Mmm dd hh:mm:ss`,
//! ISO times without an offset, error logs, `--since 2026-11-23 06:00`), that time buckets
//! are aligned to (a `--by day` bucket starts at local midnight) and that bucket times are
//! shown in. Without `--tz` all of that is UTC and nothing here costs more than one atomic
//! load.
//!
//! The zone database is the system's (`/usr/share/zoneinfo`), through chrono's `Local`,
//! which follows the `TZ` environment variable: `--tz NAME` sets `TZ` once, at start, before
//! any thread exists.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};
use chrono::{Local, TimeZone};

static ZONED: AtomicBool = AtomicBool::new(false);
static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The zone's name as given (`UTC` without `--tz`), for labels.
pub fn label() -> &'static str {
    NAME.get().map_or("UTC", String::as_str)
}

/// Whether a zone other than UTC was chosen.
pub fn is_set() -> bool {
    ZONED.load(Ordering::Relaxed)
}

/// `UTC`, `local` (the system's zone), an IANA name (`Europe/Berlin`), or an offset
/// (`+05:30`, `-0800`).
pub fn set(spec: &str) -> Result<()> {
    let tz = match spec {
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" => return Ok(()),
        "local" => None,
        s if s.starts_with(['+', '-']) => Some(posix_offset(s)?),
        name => {
            let valid = !name.is_empty()
                && !name
                    .split('/')
                    .any(|p| p.is_empty() || p == "." || p == "..")
                && std::path::Path::new("/usr/share/zoneinfo")
                    .join(name)
                    .is_file();
            if !valid {
                bail!("--tz {name:?}: no such zone in /usr/share/zoneinfo (e.g. Europe/Berlin, UTC, local, +05:30)");
            }
            Some(name.to_string())
        }
    };
    if let Some(tz) = tz {
        // Before any other thread runs (see the module comment).
        std::env::set_var("TZ", tz);
    }
    ZONED.store(true, Ordering::Relaxed);
    let _ = NAME.set(spec.to_string());
    Ok(())
}

/// `+05:30` as the POSIX TZ string `<+0530>-05:30` (POSIX offsets count west).
fn posix_offset(s: &str) -> Result<String> {
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    let ok = digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit());
    let (h, m) = (
        digits.get(..2).and_then(|h| h.parse::<u32>().ok()),
        digits.get(2..).and_then(|m| m.parse::<u32>().ok()),
    );
    match (ok, h, m) {
        (true, Some(h), Some(m)) if h <= 23 && m <= 59 => {
            let west = if s.starts_with('+') { '-' } else { '+' };
            Ok(format!("<{}{digits}>{west}{h:02}:{m:02}", &s[..1]))
        }
        _ => bail!("--tz {s:?}: an offset is ±hh:mm up to ±23:59"),
    }
}

/// The instant of a zone-less wall-clock time, given as seconds as if it were UTC. A time that
/// the zone skips (in a spring-forward gap) is taken an hour later; one it repeats, the first.
pub fn local_to_utc(naive: i64) -> Option<i64> {
    if !is_set() {
        return Some(naive);
    }
    let dt = chrono::DateTime::from_timestamp(naive, 0)?.naive_utc();
    match Local.from_local_datetime(&dt).earliest() {
        Some(t) => Some(t.timestamp()),
        None => Local
            .from_local_datetime(&(dt + chrono::Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp()),
    }
}

/// Wall-clock seconds (as if UTC) of an instant in the zone.
pub fn utc_to_local(t: i64) -> i64 {
    if !is_set() {
        return t;
    }
    match Local.timestamp_opt(t, 0).single() {
        Some(dt) => dt.naive_local().and_utc().timestamp(),
        None => t,
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the zone: how bucket times are shown.
pub fn format(t: i64) -> String {
    match chrono::DateTime::from_timestamp(utc_to_local(t), 0) {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => t.to_string(),
    }
}

/// The start of `t`'s bucket of `span` seconds, aligned in the zone's wall-clock time.
pub fn bucket(t: i64, span: i64) -> i64 {
    if !is_set() {
        return t.div_euclid(span) * span;
    }
    let local = utc_to_local(t);
    local_to_utc(local.div_euclid(span) * span).unwrap_or(t.div_euclid(span) * span)
}

/// The start of the bucket after the one starting at `start` (days are 23 or 25 hours long
/// across a daylight-saving change, so it is looked up, not added).
pub fn next_bucket(start: i64, span: i64) -> i64 {
    let plain = start.saturating_add(span);
    if !is_set() {
        return plain;
    }
    let next = bucket(start.saturating_add(span + span / 8), span);
    if next > start {
        next
    } else {
        plain
    }
}

/// Remembers the last bucket, so that a run of lines in one bucket asks the zone once.
#[derive(Debug, Clone, Copy)]
pub struct Bucketer {
    span: i64,
    last: Option<(i64, i64)>,
}

impl Bucketer {
    pub fn new(span: i64) -> Bucketer {
        Bucketer { span, last: None }
    }

    pub fn of(&mut self, t: i64) -> i64 {
        if !is_set() {
            return t.div_euclid(self.span) * self.span;
        }
        if let Some((lo, hi)) = self.last {
            if (lo..hi).contains(&t) {
                return lo;
            }
        }
        let lo = bucket(t, self.span);
        self.last = Some((lo, next_bucket(lo, self.span)));
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_posix_strings() {
        assert_eq!(posix_offset("+05:30").unwrap(), "<+0530>-05:30");
        assert_eq!(posix_offset("-0800").unwrap(), "<-0800>+08:00");
        assert!(posix_offset("+24:00").is_err());
        assert!(posix_offset("+5").is_err());
    }

    #[test]
    fn utc_is_the_default() {
        // No --tz in unit tests: everything is UTC and buckets are epoch-aligned.
        assert_eq!(bucket(3_661, 3600), 3600);
        assert_eq!(next_bucket(3600, 3600), 7200);
        assert_eq!(format(0), "1970-01-01 00:00:00");
        assert!(set("Nowhere/Atlantis").is_err());
        assert!(set("../etc/passwd").is_err());
    }
}
