//! fsync-and-close of the files a rotation leaves behind, on a thread of its own, so the
//! writer never waits for the device.
//!
//! An fsync of a 100 MiB file can take a second; done inline it would stall the pipe and so the
//! daemon writing to it. Here the writer hands the old descriptor over and goes on with the new
//! file. At most `QUEUE` (8) descriptors wait for their fsync; past that (the disk is slower
//! than the rotations), the writer closes the file itself and hands over only its path, which
//! the thread opens again to fsync: on Linux an fsync writes back every dirty page of the file,
//! whichever descriptor wrote it. So the hand-over never blocks and descriptors stay bounded
//! (the queue of paths grows by one path per rotation while the disk lags). A write-back error
//! that happened before such a reopen is not reported to it; the fsync is still done. Each file
//! counts in [`Closer::synced`] once its fsync returned. [`Closer::finish`] waits for every
//! fsync, so at exit each file is on disk.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// An open log file, as the writer and the closer need it (tests put
/// failing files behind it).
pub trait LogFile: Write + Send {
    fn sync_all(&self) -> io::Result<()>;
    fn size(&self) -> io::Result<u64>;
}

impl LogFile for File {
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Closed files whose descriptors may wait for their fsync (an fsync can take 100 ms or more
/// while a fast stream with a small size limit rotates every few milliseconds).
const QUEUE: usize = 8;

enum Job {
    /// A closed file, still open, to fsync.
    File(Box<dyn LogFile>, PathBuf),
    /// A closed file whose descriptor was already closed (`QUEUE` were waiting).
    Path(PathBuf),
}

pub struct Closer {
    tx: Option<Sender<Job>>,
    /// Descriptors handed over and not yet fsynced.
    waiting: Arc<AtomicUsize>,
    synced: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Closer {
    pub fn spawn() -> Closer {
        let (tx, rx) = channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let synced = Arc::new(AtomicU64::new(0));
        let (w, n) = (waiting.clone(), synced.clone());
        let thread = std::thread::Builder::new()
            .name("rotatelogs-fsync".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::File(file, path) => {
                            sync(file.as_ref(), &path);
                            drop(file);
                            w.fetch_sub(1, Ordering::AcqRel);
                        }
                        Job::Path(path) => sync_path(&path),
                    }
                    n.fetch_add(1, Ordering::AcqRel);
                }
            });
        match thread {
            Ok(t) => Closer {
                tx: Some(tx),
                waiting,
                synced,
                thread: Some(t),
            },
            Err(e) => {
                tracing::warn!("no fsync thread ({e}); files are fsynced inline");
                Closer {
                    tx: None,
                    waiting,
                    synced,
                    thread: None,
                }
            }
        }
    }

    /// fsyncs and closes `file`, in the background when possible; never waits for the disk
    /// unless there is no background thread.
    pub fn close(&self, file: Box<dyn LogFile>, path: PathBuf) {
        if let Some(tx) = &self.tx {
            let job = if self.waiting.fetch_add(1, Ordering::AcqRel) < QUEUE {
                Job::File(file, path)
            } else {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                drop(file);
                Job::Path(path)
            };
            match tx.send(job) {
                Ok(()) => return,
                // The thread is gone (it panicked): do it here.
                Err(e) => match e.0 {
                    Job::File(file, path) => {
                        self.waiting.fetch_sub(1, Ordering::AcqRel);
                        sync(file.as_ref(), &path);
                    }
                    Job::Path(path) => sync_path(&path),
                },
            }
        } else {
            sync(file.as_ref(), &path);
        }
        self.synced.fetch_add(1, Ordering::AcqRel);
    }

    /// Files handed over whose fsync has returned.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::Acquire)
    }

    /// Waits until every handed-over file is fsynced and closed.
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// fsyncs a closed file through a new descriptor. A file gone meanwhile (`--keep`, gzip)
/// has nothing left to sync.
fn sync_path(path: &Path) {
    match File::open(path) {
        Ok(f) => sync(&f, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "fsync of closed log file {}: cannot open it: {e}",
            path.display()
        ),
    }
}

fn sync(file: &dyn LogFile, path: &std::path::Path) {
    if let Err(e) = file.sync_all() {
        tracing::warn!("fsync of closed log file {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// A file whose fsync waits until the gate opens.
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl LogFile for Stuck {
        fn sync_all(&self) -> io::Result<()> {
            let (open, cv) = &*self.0;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            Ok(())
        }
        fn size(&self) -> io::Result<u64> {
            Ok(0)
        }
    }

    #[test]
    fn handing_over_never_waits_for_a_stuck_disk() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let files = 3 * QUEUE;
        let (done, handed) = std::sync::mpsc::channel();
        let (g, d) = (gate.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let closer = Closer::spawn();
            for i in 0..files {
                let path = d.join(format!("f{i}"));
                std::fs::write(&path, b"x").unwrap();
                closer.close(Box::new(Stuck(g.clone())), path);
            }
            done.send(closer).ok();
        });
        // Every fsync is held up by the first one; a hand-over that waited for room would
        // never get through the loop.
        let mut closer = handed
            .recv_timeout(Duration::from_secs(10))
            .expect("close() waited for the stuck fsyncs");
        assert_eq!(closer.synced(), 0);
        assert!(closer.waiting.load(Ordering::Acquire) <= QUEUE);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        closer.finish();
        assert_eq!(closer.synced(), files as u64);
        assert_eq!(closer.waiting.load(Ordering::Acquire), 0);
    }
}
