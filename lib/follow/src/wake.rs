//! Change notifications as a wake-up hint for the poll loop.
//!
//! inotify (through the `notify` crate) tells us sooner than the next poll that something in
//! a watched directory changed, so lines reach the aggregator within milliseconds instead of
//! a poll interval. It is only a hint: events are coalesced, can overflow, name paths that
//! were renamed since, and never arrive on NFS, so the caller still polls every interval and
//! the poll decides what happened. If notifications cannot be set up (no inotify watches
//! left, an unsupported filesystem), the waker falls back to plain polling and says so once.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::error::FollowError;

/// Sleeps until the poll interval ends or, sooner, something changed in a watched directory.
pub struct Waker {
    watcher: Option<notify::RecommendedWatcher>,
    events: Receiver<()>,
    watched: Vec<PathBuf>,
    interval: Duration,
}

impl Waker {
    /// Notifications plus a poll every `interval`.
    pub fn notifying(interval: Duration) -> Result<Waker, FollowError> {
        let (tx, events) = mpsc::sync_channel(1);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Opening and reading a file are events too (IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE),
            // and the poll itself opens and reads every file: waking on them would poll
            // forever. Only changes count; errors (say, a queue overflow) wake to be safe.
            if let Ok(e) = &event {
                if matches!(e.kind, notify::EventKind::Access(_)) {
                    return;
                }
            }
            // One pending wake-up is enough: the poll looks at everything anyway.
            let _ = tx.try_send(());
        })
        .map_err(|e| FollowError::Notify(e.to_string()))?;
        Ok(Waker {
            watcher: Some(watcher),
            events,
            watched: Vec::new(),
            interval,
        })
    }

    /// Polling only, every `interval` (for NFS and other filesystems without events).
    pub fn polling(interval: Duration) -> Waker {
        let (_tx, events) = mpsc::sync_channel(1);
        Waker {
            watcher: None,
            events,
            watched: Vec::new(),
            interval,
        }
    }

    /// Watches directory `dir` (not recursively) if it exists and is not watched yet. A
    /// directory that does not exist yet is tried again on the next call.
    pub fn watch_dir(&mut self, dir: &Path) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if self.watched.iter().any(|d| d == dir) || !dir.is_dir() {
            return;
        }
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => self.watched.push(dir.to_path_buf()),
            Err(e) => {
                tracing::warn!(
                    dir = %dir.display(),
                    "cannot watch for changes ({e}); polling every {:?} instead",
                    self.interval
                );
                self.watcher = None;
            }
        }
    }

    /// Waits for a change or the end of the interval, whichever comes first.
    pub fn wait(&self) {
        match self.events.recv_timeout(self.interval) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            // The polling waker has no sender: sleep out the interval.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(self.interval),
        }
    }

    /// Whether notifications are in use.
    pub fn is_notifying(&self) -> bool {
        self.watcher.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_change_wakes_before_the_interval_and_polling_sleeps_it_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Waker::notifying(Duration::from_secs(10)).unwrap();
        w.watch_dir(dir.path());
        assert!(w.is_notifying());
        let path = dir.path().join("a.log");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(path, "x\n").unwrap();
        });
        let t = Instant::now();
        w.wait();
        assert!(t.elapsed() < Duration::from_secs(5), "woken by the write");
        writer.join().unwrap();

        let p = Waker::polling(Duration::from_millis(50));
        let t = Instant::now();
        p.wait();
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn reading_files_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let mut w = Waker::notifying(Duration::from_millis(400)).unwrap();
        w.watch_dir(dir.path());
        // What every poll does: open, read, close.
        std::fs::read(&path).unwrap();
        let t = Instant::now();
        w.wait();
        assert!(
            t.elapsed() >= Duration::from_millis(350),
            "woken by our own read after {:?}",
            t.elapsed()
        );
    }
}
