//! Warnings that a client's bad input triggers, at most one a second: a peer that sends garbage
//! in a loop must not be able to flood the log (or fill the disk it goes to). Servers keep one
//! [`RateLimitedWarn`] per kind of trouble, so one noisy kind does not hide the others.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Logs a warning at most once per interval, saying how many were suppressed in between.
#[derive(Debug)]
pub struct RateLimitedWarn {
    interval: Duration,
    /// When the last warning was logged, and how many were suppressed since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedWarn {
    /// A limiter that lets one warning through per `interval`.
    pub fn new(interval: Duration) -> Self {
        RateLimitedWarn {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Logs `message()` at `WARN` unless a warning went out less than the interval ago; the
    /// message is only built when it is logged.
    pub fn warn(&self, message: impl FnOnce() -> String) {
        match self.admit(Instant::now()) {
            Some(0) => tracing::warn!("{}", message()),
            Some(suppressed) => tracing::warn!(suppressed, "{}", message()),
            None => {}
        }
    }

    /// `Some(warnings suppressed since the last one)` when a warning may go out at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked while counting: the count is
        // still usable.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                s.1 += 1;
                None
            }
            _ => {
                s.0 = Some(now);
                Some(std::mem::take(&mut s.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_then_the_count_of_suppressed_ones() {
        let w = RateLimitedWarn::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(w.admit(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(w.admit(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(w.admit(t0 + Duration::from_secs(1)), Some(5));
        assert_eq!(w.admit(t0 + Duration::from_millis(1500)), None);
        assert_eq!(w.admit(t0 + Duration::from_secs(3)), Some(1));
    }

    /// (Without a subscriber `tracing` builds none at all, hence `<=`.)
    #[test]
    fn messages_are_built_only_when_logged() {
        let w = RateLimitedWarn::new(Duration::from_secs(3600));
        let mut built = 0;
        for _ in 0..10 {
            w.warn(|| {
                built += 1;
                "bad input".to_string()
            });
        }
        assert!(built <= 1, "{built} messages built");
    }
}
