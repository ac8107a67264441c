//! Time-based rotation: Scribe's `rotate_period`, `rotate_hour` and `rotate_minute`, and which
//! file comes next.
//!
//! When a file is due (the writer asks on every batch and whenever its owner calls
//! `check_time`):
//!
//! - `daily`: the local date is past the file's date and the local time of day has reached
//!   `rotate_hour:rotate_minute`. So with the defaults (1:15), a file of Monday takes writes
//!   until Tuesday 01:15, as in Scribe.
//! - `hourly`: the local hour is past the hour the file was started in and the minute has
//!   reached `rotate_minute`: a file started at 10:05 or 10:40 rotates at 11:15.
//! - every N: N has elapsed since the file was started.
//!
//! One deliberate difference from Scribe: Scribe tests `hour >= rotate_hour` and
//! `minute >= rotate_minute` separately, so a daily check at 02:05 (missed 01:15..01:59, e.g.
//! because the store was idle) would not rotate until 02:15. Here the rotation instant is the
//! time of day `rotate_hour:rotate_minute` (compared as one time), so any check at or after it
//! rotates. With checks every second both rotate at exactly the same instant.
//!
//! Daily and hourly compare local wall-clock (naive) times, so a DST change neither skips nor
//! doubles a rotation instant: a 02:30 instant in a spring-forward gap fires at the first check
//! after it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::layout::FileKey;

/// How often files rotate by time (Scribe's `rotate_period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RotatePeriod {
    /// Size rotation only; files are named `<cat>_NNNNN`.
    #[default]
    Never,
    Hourly,
    Daily,
    /// A fixed duration since the file was started (at least one second).
    Every(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rotate_period {input:?}: {reason} (expected never, hourly, daily, or a number followed by s, m, h, d or w, e.g. 30m)")]
pub struct RotatePeriodError {
    pub input: String,
    pub reason: &'static str,
}

impl RotatePeriod {
    /// Parses Scribe's syntax: `never`, `hourly`, `daily`, or `N` followed by an optional unit
    /// `s`, `m`, `h`, `d` or `w` (no unit = seconds, as in Scribe). Keywords and units are
    /// case-insensitive; surrounding whitespace is ignored.
    pub fn parse(input: &str) -> Result<RotatePeriod, RotatePeriodError> {
        let err = |reason| RotatePeriodError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        match s.to_ascii_lowercase().as_str() {
            "never" => return Ok(RotatePeriod::Never),
            "hourly" => return Ok(RotatePeriod::Hourly),
            "daily" => return Ok(RotatePeriod::Daily),
            "" => return Err(err("empty")),
            _ => {}
        }
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(digits_end);
        if num.is_empty() {
            return Err(err("no number"));
        }
        let n: u64 = num.parse().map_err(|_| err("number too large"))?;
        let secs_per_unit: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(err("unknown unit")),
        };
        if n == 0 {
            return Err(err("a period must be at least one second"));
        }
        // Bounded so that adding it to a date can never overflow chrono's range.
        const MAX_SECS: u64 = 100 * 366 * 86_400;
        match n.checked_mul(secs_per_unit) {
            Some(secs) if secs <= MAX_SECS => Ok(RotatePeriod::Every(Duration::from_secs(secs))),
            _ => Err(err("longer than 100 years")),
        }
    }

    /// Whether file names carry a date (Scribe: whenever rotate_period is not `never`).
    pub fn dated_names(&self) -> bool {
        !matches!(self, RotatePeriod::Never)
    }
}

impl std::str::FromStr for RotatePeriod {
    type Err = RotatePeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RotatePeriod::parse(s)
    }
}

impl fmt::Display for RotatePeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotatePeriod::Never => f.write_str("never"),
            RotatePeriod::Hourly => f.write_str("hourly"),
            RotatePeriod::Daily => f.write_str("daily"),
            RotatePeriod::Every(d) => {
                let s = d.as_secs();
                for (unit, len) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
                    if s % len == 0 {
                        return write!(f, "{}{unit}", s / len);
                    }
                }
                write!(f, "{s}s")
            }
        }
    }
}

/// The time of day daily rotation happens at, and the minute hourly rotation happens at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RotateAt {
    pub hour: u32,
    pub minute: u32,
}

impl RotateAt {
    pub fn time(&self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.hour, self.minute, 0).unwrap_or(NaiveTime::MIN)
    }
}

/// Whether a file started at `started` (dated `file_date` if its name has one) is due to rotate
/// at `now`.
pub(crate) fn is_due(
    period: RotatePeriod,
    at: RotateAt,
    started: DateTime<Local>,
    file_date: Option<NaiveDate>,
    now: DateTime<Local>,
) -> bool {
    let now_local = now.naive_local();
    match period {
        RotatePeriod::Never => false,
        RotatePeriod::Daily => {
            // The name's date is what the file is "of"; an undated file (rotate_period was
            // `never` when it was made) belongs to the day it was started.
            let day = file_date.unwrap_or_else(|| started.date_naive());
            match day.succ_opt() {
                Some(next) => now_local >= NaiveDateTime::new(next, at.time()),
                None => false,
            }
        }
        RotatePeriod::Hourly => {
            let s = started.naive_local();
            let hour_start = NaiveDateTime::new(
                s.date(),
                NaiveTime::from_hms_opt(s.hour(), 0, 0).unwrap_or(NaiveTime::MIN),
            );
            let instant = hour_start
                + chrono::Duration::hours(1)
                + chrono::Duration::minutes(i64::from(at.minute));
            now_local >= instant
        }
        RotatePeriod::Every(d) => match chrono::Duration::from_std(d) {
            Ok(d) => now >= started + d,
            Err(_) => false,
        },
    }
}

/// The key of the file to create after `newest` (the newest existing file, if any).
///
/// The result always sorts after `newest`, whatever the clock says, so write order stays file
/// order: a dated file's date is never earlier than the newest file's date (a clock stepped
/// back keeps counting suffixes on the newest date), and once dated files exist new files stay
/// dated even if rotate_period went back to `never` (an undated name would sort first).
///
/// A date's first file is `_00000`, except with `hourly`, where it is the current hour (Scribe
/// did this at startup; for a rotation just after midnight the hour is 0 anyway).
pub(crate) fn next_key(
    newest: Option<FileKey>,
    period: RotatePeriod,
    now: DateTime<Local>,
) -> FileKey {
    let newest_date = newest.and_then(|k| k.date);
    if !period.dated_names() && newest_date.is_none() {
        return FileKey::undated(newest.map_or(0, |k| k.suffix.saturating_add(1)));
    }
    let today = now.date_naive();
    let date = newest_date.map_or(today, |d| d.max(today));
    match newest {
        Some(k) if k.date == Some(date) => FileKey::dated(date, k.suffix.saturating_add(1)),
        _ if period == RotatePeriod::Hourly => FileKey::dated(date, u64::from(now.hour())),
        _ => FileKey::dated(date, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Local> {
        Local
            .with_ymd_and_hms(2024, 1, d, h, m, s)
            .single()
            .unwrap()
    }

    fn date(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 1, d).unwrap()
    }

    const AT: RotateAt = RotateAt {
        hour: 1,
        minute: 15,
    };

    #[test]
    fn parses_scribe_periods() {
        use RotatePeriod::*;
        let secs = |s| Every(Duration::from_secs(s));
        for (input, want) in [
            ("never", Never),
            ("hourly", Hourly),
            (" Daily ", Daily),
            ("30", secs(30)),
            ("30s", secs(30)),
            ("5m", secs(300)),
            ("2h", secs(7200)),
            ("1d", secs(86_400)),
            ("1W", secs(604_800)),
        ] {
            assert_eq!(RotatePeriod::parse(input), Ok(want), "{input}");
            assert_eq!(RotatePeriod::parse(&want.to_string()), Ok(want));
        }
        for (bad, reason) in [
            ("", "empty"),
            ("weekly", "no number"),
            ("h", "no number"),
            ("10x", "unknown unit"),
            ("10 m", "unknown unit"),
            ("-5m", "no number"),
            ("0", "a period must be at least one second"),
            ("99999999999999999999", "number too large"),
            ("10000000w", "longer than 100 years"),
        ] {
            let e = RotatePeriod::parse(bad).unwrap_err();
            assert_eq!(e.reason, reason, "{bad}");
            assert!(e.to_string().contains("expected never, hourly"));
        }
    }

    #[test]
    fn daily_rotates_on_the_next_day_at_rotate_time() {
        let p = RotatePeriod::Daily;
        let started = t(10, 9, 0, 0);
        let d = Some(date(10));
        assert!(!is_due(p, AT, started, d, t(10, 23, 59, 59)));
        assert!(!is_due(p, AT, started, d, t(11, 0, 30, 0)));
        assert!(!is_due(p, AT, started, d, t(11, 1, 14, 59)));
        assert!(is_due(p, AT, started, d, t(11, 1, 15, 0)));
        // A missed window still rotates (Scribe would wait for minute >= 15 again).
        assert!(is_due(p, AT, started, d, t(11, 2, 5, 0)));
        // Undated file: the day it was started counts.
        assert!(!is_due(p, AT, started, None, t(11, 1, 0, 0)));
        assert!(is_due(p, AT, started, None, t(12, 0, 0, 0)));
        // A file dated yesterday reopened today rotates once the time is reached.
        assert!(is_due(
            p,
            AT,
            t(11, 3, 0, 0),
            Some(date(10)),
            t(11, 3, 0, 0)
        ));
    }

    #[test]
    fn hourly_rotates_in_the_next_hour_at_rotate_minute() {
        let p = RotatePeriod::Hourly;
        for started in [t(10, 10, 5, 0), t(10, 10, 40, 0)] {
            assert!(!is_due(p, AT, started, None, t(10, 10, 59, 59)));
            assert!(!is_due(p, AT, started, None, t(10, 11, 14, 59)));
            assert!(is_due(p, AT, started, None, t(10, 11, 15, 0)));
        }
        // Across midnight, and 24 h later at the same hour (Scribe compared tm_hour only).
        assert!(is_due(p, AT, t(10, 23, 30, 0), None, t(11, 0, 15, 0)));
        assert!(is_due(p, AT, t(10, 10, 5, 0), None, t(11, 10, 5, 0)));
    }

    #[test]
    fn every_n_counts_from_the_start() {
        let p = RotatePeriod::Every(Duration::from_secs(90));
        let s = t(10, 10, 0, 0);
        assert!(!is_due(p, AT, s, None, t(10, 10, 1, 29)));
        assert!(is_due(p, AT, s, None, t(10, 10, 1, 30)));
        assert!(!is_due(RotatePeriod::Never, AT, s, None, t(20, 0, 0, 0)));
    }

    #[test]
    fn next_key_dates_and_counts() {
        use RotatePeriod::*;
        let now = t(10, 13, 20, 0);
        assert_eq!(next_key(None, Never, now), FileKey::undated(0));
        assert_eq!(
            next_key(Some(FileKey::undated(4)), Never, now),
            FileKey::undated(5)
        );
        assert_eq!(next_key(None, Daily, now), FileKey::dated(date(10), 0));
        // Hourly: a date's first file takes the hour.
        assert_eq!(next_key(None, Hourly, now), FileKey::dated(date(10), 13));
        assert_eq!(
            next_key(Some(FileKey::dated(date(9), 23)), Hourly, now),
            FileKey::dated(date(10), 13)
        );
        assert_eq!(
            next_key(Some(FileKey::dated(date(10), 13)), Hourly, now),
            FileKey::dated(date(10), 14)
        );
        // Undated newest, dated period: a date sorts after every undated file.
        assert_eq!(
            next_key(Some(FileKey::undated(7)), Daily, now),
            FileKey::dated(date(10), 0)
        );
        // Back to never after dated files: stay dated so the order holds.
        assert_eq!(
            next_key(Some(FileKey::dated(date(10), 2)), Never, now),
            FileKey::dated(date(10), 3)
        );
        // Clock stepped back a day: keep counting on the newest date.
        assert_eq!(
            next_key(Some(FileKey::dated(date(11), 2)), Daily, now),
            FileKey::dated(date(11), 3)
        );
        for newest in [
            None,
            Some(FileKey::undated(3)),
            Some(FileKey::dated(date(9), 1)),
        ] {
            for p in [Never, Hourly, Daily, Every(Duration::from_secs(60))] {
                let k = next_key(newest, p, now);
                assert!(newest.is_none_or(|n| k > n), "{newest:?} {p:?} -> {k:?}");
            }
        }
    }
}
