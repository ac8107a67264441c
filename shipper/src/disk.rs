//! A full disk under ship's state directory: telling it apart from other I/O errors, and
//! waiting it out.
//!
//! ship treats a full disk (`ENOSPC`) and a used-up quota (`EDQUOT`) like a full spool: it
//! holds what it could not write, reads no more input, and tries again with backoff — the spool
//! (in [`crate::outbox`]) and, meanwhile, the aggregator; the positions file and the producer
//! id (in [`crate::follow`] and [`crate::modes`]). It never exits over it and never drops a
//! line. Both conditions pass once space is freed, which is why they are not errors here.
//!
//! Each wait is logged once when it starts and once when it ends, not at every retry: a disk
//! stays full for minutes, and a warning per retry would be noise (and more writes to a log
//! that may share the full disk).

use std::error::Error;
use std::io;
use std::path::Path;
use std::time::Duration;

use scribe_protocol::sender::Backoff;
use scribe_spool::SpoolError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First and longest wait between two tries of a full disk. Writing a record that does not
/// fit costs one failed `write(2)`, so trying every few seconds is cheap, and it keeps the
/// wait after space is freed short.
const FIRST_TRY: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Whether `e`, or any error it wraps, is `ENOSPC` or `EDQUOT`.
pub fn is_disk_full(e: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(e) = next {
        // A `SpoolError::Io` names its `io::Error` as its source, so the chain reaches it.
        if e.downcast_ref::<io::Error>()
            .is_some_and(scribe_fs::is_disk_full)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// [`is_disk_full`] for an `anyhow` error's chain.
pub fn anyhow_is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(is_disk_full)
}

/// Runs `step` (files ship must write before it reads anything: the state directory's lock,
/// the producer id) until it succeeds, waiting out a full disk with backoff and saying so once.
/// `None` when `shutdown` came first; other errors are returned as they are.
pub async fn wait_for_room<R>(
    shutdown: &CancellationToken,
    mut step: impl FnMut() -> anyhow::Result<R>,
) -> anyhow::Result<Option<R>> {
    let mut backoff = Backoff::new(FIRST_TRY, LONGEST_WAIT);
    let mut since: Option<Instant> = None;
    loop {
        match step() {
            Ok(r) => {
                if let Some(since) = since {
                    let waited = since.elapsed();
                    tracing::info!(?waited, "the state directory has room again");
                }
                return Ok(Some(r));
            }
            Err(e) if anyhow_is_disk_full(&e) => {
                if since.is_none() {
                    since = Some(Instant::now());
                    tracing::warn!(
                        "{e:#}; the disk is full: waiting for room before reading anything"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shutdown.cancelled() => return Ok(None),
        }
    }
}

/// The outbox's wait for room in the spool: whether it is waiting, when it tries next, and
/// the one warning per wait.
#[derive(Debug)]
pub struct DiskWait {
    /// When the current wait began; `None` while the spool can be written.
    since: Option<Instant>,
    next_try: Instant,
    backoff: Backoff,
    /// A failed commit of the replay position was reported during this wait.
    commit_reported: bool,
}

impl Default for DiskWait {
    fn default() -> Self {
        DiskWait {
            since: None,
            next_try: Instant::now(),
            backoff: Backoff::new(FIRST_TRY, LONGEST_WAIT),
            commit_reported: false,
        }
    }
}

impl DiskWait {
    /// Waiting for room.
    pub fn waiting(&self) -> bool {
        self.since.is_some()
    }

    /// Whether to try writing the spool at `now`: always, unless waiting and the next try is
    /// not due yet.
    pub fn may_try(&self, now: Instant) -> bool {
        self.since.is_none() || now >= self.next_try
    }

    /// While waiting: when to try next.
    pub fn next_try(&self) -> Option<Instant> {
        self.since.map(|_| self.next_try)
    }

    /// Writing (or creating) the spool failed for lack of room (`error`, which names the file)
    /// with `held` lines waiting: logs it if this starts a wait, and schedules the next try.
    /// True when a wait starts.
    pub fn failed(&mut self, error: &SpoolError, held: u64) -> bool {
        let now = Instant::now();
        self.next_try = now + self.backoff.next_delay();
        if self.since.is_some() {
            tracing::debug!(held_lines = held, "{error}; the spool's disk is still full");
            return false;
        }
        self.since = Some(now);
        tracing::warn!(
            held_lines = held,
            "{error}; the disk is full: holding what does not fit and reading no more input; \
             retrying the spool and the aggregator until either takes it (nothing is dropped)"
        );
        true
    }

    /// The wait is over: `how` says what took the held lines. Logs it, once.
    pub fn ended(&mut self, how: &str) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                waited = ?since.elapsed(),
                "{how}: done waiting for room in the spool's disk; nothing was lost"
            );
        }
        self.backoff.reset();
        self.commit_reported = false;
    }

    /// A commit of the replay position failed for lack of room: only reported (once per
    /// wait), since the lines were delivered; a restart before the next commit sends them
    /// again, under the same ids, so the aggregator skips them.
    pub fn commit_failed(&mut self, dir: &Path, error: &SpoolError) {
        if !std::mem::replace(&mut self.commit_reported, true) {
            tracing::warn!(
                dir = %dir.display(),
                "cannot commit the spool's replay position: {error}; retrying at the next \
                 commit (a restart before then sends delivered lines again, which the \
                 aggregator recognises)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(28)
    }

    #[test]
    fn full_disks_and_quotas_are_told_apart_through_wrappers() {
        let spool = SpoolError::Io {
            op: "write segment",
            path: "/x".into(),
            source: enospc(),
        };
        assert!(is_disk_full(&spool));
        let quota = io::Error::from_raw_os_error(122); // EDQUOT
        assert!(is_disk_full(&quota));
        let wrapped = anyhow::Error::new(enospc()).context("saving positions");
        assert!(anyhow_is_disk_full(&wrapped));
        let other = anyhow::Error::new(io::Error::from_raw_os_error(13)).context("x");
        assert!(!anyhow_is_disk_full(&other));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_backs_off_and_starts_and_ends_once() {
        let mut w = DiskWait::default();
        let e = SpoolError::Io {
            op: "write segment",
            path: "/x".into(),
            source: enospc(),
        };
        assert!(w.may_try(Instant::now()) && !w.waiting());
        assert!(w.failed(&e, 10));
        assert!(
            !w.failed(&e, 10),
            "a second failure continues the same wait"
        );
        let next = w.next_try().unwrap();
        assert!(next <= Instant::now() + LONGEST_WAIT);
        tokio::time::sleep_until(next).await;
        assert!(w.may_try(Instant::now()));
        w.ended("test");
        assert!(!w.waiting() && w.next_try().is_none());
    }
}
