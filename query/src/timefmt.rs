//! Timestamp parsing for the formats logs use, to Unix seconds (UTC), hand-written for the
//! hot path: bucketing a gigabyte of access-log lines by minute parses every line's time, and
//! a general-purpose strptime costs several times more than the fixed-position parse below.
//! `--since`/`--until` arguments, parsed once, use chrono.

use anyhow::{bail, Context, Result};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The times a log line may carry: 1970-01-01 through 9999-12-31 UTC. Anything outside is
/// taken as no time at all (such a line is counted among the lines without a time and
/// warned about), so that one hostile line (`ts=1e300`, year 0) cannot overflow time
/// arithmetic or make a time series span millennia.
pub const MIN_TIME: i64 = 0;
pub const MAX_TIME: i64 = 253_402_300_799;

fn in_range(t: i64) -> Option<i64> {
    (MIN_TIME..=MAX_TIME).contains(&t).then_some(t)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

pub fn month(b: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(b))
        .map(|i| i as u32 + 1)
}

fn civil_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // A day past the month's end (`02-31`) is refused, not rolled into the next month.
    if !(1..=12).contains(&mo)
        || !(1..=days_in_month(y, mo)).contains(&d)
        || h > 23
        || mi > 59
        || s > 60
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + (h * 3600 + mi * 60 + s) as i64)
}

/// `+hhmm`, `-hh:mm` or `Z` → offset seconds east of UTC.
fn zone(b: &[u8]) -> Option<i64> {
    match b {
        [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let off = (h * 3600 + m * 60) as i64;
            Some(if *sign == b'-' { -off } else { off })
        }
        _ => None,
    }
}

/// Apache `%t` without brackets: `10/Oct/2000:13:55:36 -0700`.
pub fn parse_clf(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    let d = digits(&b[0..2])?;
    let mo = month(&b[3..6])?;
    let y = digits(&b[7..11])? as i64;
    let h = digits(&b[12..14])?;
    let mi = digits(&b[15..17])?;
    let s = digits(&b[18..20])?;
    let t = civil_seconds(y, mo, d, h, mi, s)?;
    let off = match b.get(20) {
        Some(b' ') => zone(&b[21..])?,
        None => 0,
        _ => return None,
    };
    in_range(t - off)
}

/// RFC 3339 / ISO 8601 at the start of `b`: `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±hh:mm]`; no zone
/// means UTC. Returns the time and the length consumed.
pub fn parse_iso_prefix(b: &[u8]) -> Option<(i64, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[10] != b'T' && b[10] != b' ' && b[10] != b't' {
        return None;
    }
    let y = digits(&b[0..4])? as i64;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let s = digits(&b[17..19])?;
    let mut t = civil_seconds(y, mo, d, h, mi, s)?;
    let mut i = 19;
    let mut zoned = false;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if let Some(&c) = b.get(i) {
        if c == b'Z' || c == b'z' {
            i += 1;
            zoned = true;
        } else if c == b'+' || c == b'-' {
            let len = if b.get(i + 3) == Some(&b':') { 6 } else { 5 };
            if let Some(off) = b.get(i..i + len).and_then(zone) {
                t -= off;
                i += len;
                zoned = true;
            }
        }
    }
    if !zoned {
        // No zone: the --tz zone's wall clock (UTC without --tz).
        t = crate::zone::local_to_utc(t)?;
    }
    Some((in_range(t)?, i))
}

pub fn parse_iso(b: &[u8]) -> Option<i64> {
    parse_iso_prefix(b).map(|(t, _)| t)
}

/// RFC 3164 `Mmm dd hh:mm:ss` (day space-padded). The format has no year: the year is the
/// one that puts the time closest before `now` (a December line read in January is last year's).
pub fn parse_3164(b: &[u8], now: i64) -> Option<i64> {
    if b.len() < 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let mo = month(&b[0..3])?;
    let d = digits(b[4..6].trim_ascii_start())?;
    let h = digits(&b[7..9])?;
    let mi = digits(&b[10..12])?;
    let s = digits(&b[13..15])?;
    let year = 1970 + now.div_euclid(86400 * 365 + 86400 / 4);
    // Candidate years around now; pick the latest not more than a day in the future.
    let mut best = None;
    for y in [year + 1, year, year - 1] {
        if let Some(t) = civil_seconds(y, mo, d, h, mi, s) {
            if t <= now + 86400 {
                best = Some(t);
                break;
            }
        }
    }
    // No zone: the --tz zone's wall clock (UTC without --tz).
    best.and_then(crate::zone::local_to_utc).and_then(in_range)
}

/// A number of seconds (or milliseconds, microseconds, nanoseconds: told apart by magnitude)
/// since the epoch, as JSON logs often write it.
pub fn parse_epoch(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let secs = if v > 1e17 {
        v / 1e9
    } else if v > 1e14 {
        v / 1e6
    } else if v > 1e11 {
        v / 1e3
    } else {
        v
    };
    // `as` saturates (1e300 becomes i64::MAX); the range check then refuses it.
    in_range(secs as i64)
}

/// Any of the timestamp shapes above.
pub fn parse_any(b: &[u8], now: i64) -> Option<i64> {
    parse_iso(b)
        .or_else(|| parse_clf(b))
        .or_else(|| parse_3164(b, now))
        .or_else(|| parse_epoch(b))
}

/// Current time, Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A `--since`/`--until` value: an age (`90s`, `2h`, `7d`, `1w`, `2h30m`) before `now`, or an
/// absolute time (RFC 3339, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]`; without a zone, in the
/// `--tz` zone, UTC by default).
pub fn parse_user_time(s: &str, now: i64) -> Result<i64> {
    let s = s.trim();
    if let Ok(d) = humantime::parse_duration(s) {
        return i64::try_from(d.as_secs())
            .ok()
            .and_then(|age| now.checked_sub(age))
            .and_then(in_range)
            .with_context(|| format!("{s:?} reaches back before 1970"));
    }
    match parse_iso_prefix(s.as_bytes()) {
        Some((t, n)) if n == s.len() => return Ok(t),
        _ => {}
    }
    if s.len() >= 19 && s.as_bytes()[4] == b'-' {
        // Shaped like RFC 3339 but refused above: say what is wrong rather than guess.
        bail!(
            "invalid time {s:?} (no such date, time or zone; a zone is Z or ±hh:mm up to ±23:59)"
        );
    }
    // `2026-11-23 06:00` and `2026-11-23T06:00` (no seconds, UTC).
    let minutes = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok());
    if let Some(dt) = minutes {
        return crate::zone::local_to_utc(dt.and_utc().timestamp())
            .and_then(in_range)
            .with_context(|| format!("{s:?} is outside 1970..=9999"));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let t = d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp();
        return crate::zone::local_to_utc(t)
            .and_then(in_range)
            .with_context(|| format!("{s:?} is outside 1970..=9999"));
    }
    bail!("cannot parse time {s:?} (use e.g. 2h, 7d, 2026-11-23, 2026-11-23T06:00:00Z)")
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, or in the `--tz` zone: how bucket times are shown.
pub fn format_time(t: i64) -> String {
    crate::zone::format(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_and_iso() {
        assert_eq!(parse_clf(b"10/Oct/2000:13:55:36 -0700"), Some(971211336));
        assert_eq!(parse_iso(b"2000-10-10T20:55:36Z"), Some(971211336));
        assert_eq!(parse_iso(b"2000-10-10T13:55:36.123-07:00"), Some(971211336));
        assert_eq!(parse_iso(b"2000-10-10 20:55:36"), Some(971211336));
        assert_eq!(parse_clf(b"10/Foo/2000:13:55:36 -0700"), None);
    }

    #[test]
    fn syslog_year_is_the_latest_past_one() {
        let now = parse_iso(b"2026-01-02T00:00:00Z").unwrap();
        assert_eq!(
            parse_3164(b"Dec 31 23:00:00", now),
            parse_iso(b"2025-12-31T23:00:00Z")
        );
        assert_eq!(
            parse_3164(b"Jan  1 10:00:00", now),
            parse_iso(b"2026-01-01T10:00:00Z")
        );
    }

    #[test]
    fn user_times() {
        let now = 1_000_000;
        assert_eq!(parse_user_time("2h", now).unwrap(), now - 7200);
        assert_eq!(parse_user_time("7d", now).unwrap(), now - 7 * 86400);
        assert_eq!(parse_user_time("1970-01-02", now).unwrap(), 86400);
        assert!(parse_user_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn impossible_and_hostile_times_are_refused() {
        let now = 1_000_000;
        assert!(parse_user_time("300000000000y", now).is_err());
        assert!(parse_user_time("2026-02-31", now).is_err());
        assert_eq!(
            parse_user_time("2023-11-16T06:00", now).unwrap(),
            parse_user_time("2023-11-16 06:00", now).unwrap()
        );
        assert_eq!(
            parse_user_time("2023-11-16T06:00", now).unwrap(),
            1_700_114_400
        );
        assert!(parse_user_time("2026-02-31T00:00:00Z", now).is_err());
        assert!(parse_user_time("2026-02-01T00:00:00+99:99", now).is_err());
        assert_eq!(
            parse_user_time("2024-02-29T00:00:00+01:00", now).unwrap(),
            parse_iso(b"2024-02-28T23:00:00Z").unwrap()
        );
        assert_eq!(parse_iso(b"2026-02-31T00:00:00Z"), None);
        assert_eq!(parse_epoch(b"1e300"), None);
        assert_eq!(parse_clf(b"31/Dec/9999:23:55:36 -0700"), None);
        assert!(parse_clf(b"10/Oct/9999:23:55:36 -0700").is_some());
        assert_eq!(parse_clf(b"10/Oct/0001:13:55:36 -0700"), None);
        assert_eq!(parse_clf(b"10/Oct/2000:13:55:36 +9999"), None);
    }
}
