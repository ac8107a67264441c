//! fsync-and-close of the files a rotation leaves behind, on a thread of its own.
//!
//! An fsync of a 100 MiB file can take a second; done inline it would stall the pipe and so the
//! daemon writing to it. Here the writer hands the old descriptor over and goes on with the new
//! file. The queue holds `QUEUE` (8) files: if the disk cannot keep up, the hand-over blocks
//! (back-pressure) rather than piling up descriptors. [`Closer::finish`] waits for every
//! fsync, so at exit each file is on disk.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
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

/// Closed files that may wait for their fsync (an fsync can take 100 ms or more while a fast
/// stream with a small size limit rotates every few milliseconds).
const QUEUE: usize = 8;

type Job = (Box<dyn LogFile>, PathBuf);

pub struct Closer {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Closer {
    pub fn spawn() -> Closer {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("rotatelogs-fsync".into())
            .spawn(move || {
                for (file, path) in rx {
                    sync(file.as_ref(), &path);
                }
            });
        match thread {
            Ok(t) => Closer {
                tx: Some(tx),
                thread: Some(t),
            },
            Err(e) => {
                tracing::warn!("no fsync thread ({e}); files are fsynced inline");
                Closer {
                    tx: None,
                    thread: None,
                }
            }
        }
    }

    /// fsyncs and closes `file`, in the background when possible.
    pub fn close(&self, file: Box<dyn LogFile>, path: PathBuf) {
        let job = match &self.tx {
            Some(tx) => match tx.send((file, path)) {
                Ok(()) => return,
                Err(e) => e.0,
            },
            None => (file, path),
        };
        sync(job.0.as_ref(), &job.1);
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

fn sync(file: &dyn LogFile, path: &std::path::Path) {
    if let Err(e) = file.sync_all() {
        tracing::warn!("fsync of closed log file {}: {e}", path.display());
    }
}
