//! Where the writer gets the time from.
//!
//! Time-based rotation, dated file names, the fsync interval and `keep_days` all ask a
//! [`Clock`] instead of the system, so tests can drive a [`ManualClock`] across an hour or a
//! midnight instantly and deterministically.
//!
//! Local time, as Scribe: file dates and `rotate_hour`/`rotate_minute` are wall-clock values in
//! the process's time zone.

use std::fmt;
use std::sync::Mutex;

use chrono::{DateTime, Local, TimeZone};

/// A source of the current local time.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Local>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Local> {
        Local::now()
    }
}

/// A clock that only moves when told to. Share it as `Arc<ManualClock>` (which coerces to
/// `Arc<dyn Clock>`) and keep a handle to advance it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Local>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Local>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// A clock at the given local wall-clock time.
    ///
    /// # Panics
    /// If the time does not exist or is ambiguous in the local time zone (a DST transition);
    /// meant for tests, which should pick unambiguous times.
    pub fn at_local(year: i32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> ManualClock {
        let t = Local
            .with_ymd_and_hms(year, month, day, hour, min, sec)
            .single()
            .expect("an unambiguous local time");
        ManualClock::new(t)
    }

    pub fn set(&self, t: DateTime<Local>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }

    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let by = chrono::Duration::from_std(by).expect("advance by a sane duration");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Local> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Arc::new(ManualClock::at_local(2024, 1, 10, 23, 59, 30));
        let dynclock: Arc<dyn Clock> = c.clone();
        let t0 = dynclock.now();
        assert_eq!(dynclock.now(), t0);
        c.advance(Duration::from_secs(45));
        let t1 = dynclock.now();
        assert_eq!((t1 - t0).num_seconds(), 45);
        assert_eq!((t1.hour(), t1.minute(), t1.second()), (0, 0, 15));
    }

    #[test]
    fn system_clock_is_close_to_now() {
        let d = (SystemClock.now() - Local::now()).num_seconds().abs();
        assert!(d < 5);
    }
}
