//! Ordered parallel execution: tasks (files, or byte ranges of one large file) run on a pool
//! of workers, and their output reaches stdout in task order, as if run one after another.
//!
//! Each task writes into a [`TaskOut`], which hands full blocks to the main thread through a
//! small bounded channel per task. The main thread drains task 0's channel to the end, then
//! task 1's, and so on; workers take tasks in index order, so the lowest unfinished task
//! always has a worker and the pipeline cannot deadlock, while a worker far ahead blocks on
//! its full channel: memory stays bounded by `workers × (CHANNEL_BLOCKS + 1) × BLOCK`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use anyhow::{anyhow, Result};

const BLOCK: usize = 256 * 1024;
const CHANNEL_BLOCKS: usize = 4;

enum Msg<R> {
    Data(Vec<u8>),
    Done(Result<R>),
}

/// A task's output stream.
pub struct TaskOut<R> {
    buf: Vec<u8>,
    tx: SyncSender<Msg<R>>,
    /// Set once the main thread has gone away (stdout closed): writes fail fast.
    dead: bool,
    /// Whether a block (possibly empty, see [`TaskOut::mark_output`]) was sent.
    sent: bool,
    /// Hand over every finished line at once (live output, see
    /// [`crate::source::line_buffered`]).
    line_buffered: bool,
}

impl<R> TaskOut<R> {
    /// Counts the task as having output for the separator even if it wrote no byte: GNU
    /// `grep -o -v -A1` selects lines and prints none of them, yet separates files' groups.
    pub fn mark_output(&mut self) -> io::Result<()> {
        if !self.sent && self.buf.is_empty() {
            self.send(Vec::new())?;
        }
        Ok(())
    }

    fn send(&mut self, block: Vec<u8>) -> io::Result<()> {
        if self.tx.send(Msg::Data(block)).is_err() {
            self.dead = true;
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "output closed"));
        }
        self.sent = true;
        Ok(())
    }
}

impl<R> Write for TaskOut<R> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.dead {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "output closed"));
        }
        self.buf.extend_from_slice(data);
        let line_end = self.line_buffered && matches!(data.last(), Some(b'\n' | 0));
        if self.buf.len() >= BLOCK || line_end {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.send(block)
    }
}

/// Number of workers: one per core (the machine's parallelism), at most `tasks`.
pub fn workers(tasks: usize) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(tasks)
        .max(1)
}

/// Runs `work(i, out)` for `i in 0..n` on `threads` workers, writing each task's output to
/// `dest` in task order, with `separator` between the outputs of two tasks that both wrote
/// something (grep's `--` between files' context groups). Returns the tasks' results in
/// order; the first error (in task order) stops the run.
pub fn run_ordered<R, F>(
    n: usize,
    threads: usize,
    dest: &mut dyn Write,
    separator: Option<&[u8]>,
    work: F,
) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(usize, &mut TaskOut<R>) -> Result<R> + Sync,
{
    let mut txs: Vec<Option<SyncSender<Msg<R>>>> = Vec::with_capacity(n);
    let mut rxs: Vec<Receiver<Msg<R>>> = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = sync_channel(CHANNEL_BLOCKS);
        txs.push(Some(tx));
        rxs.push(rx);
    }
    let senders = std::sync::Mutex::new(txs);
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let line_buffered = crate::source::line_buffered();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                if abort.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let tx = senders.lock().expect("sender table")[i]
                    .take()
                    .expect("each task runs once");
                let mut out = TaskOut {
                    buf: Vec::with_capacity(BLOCK),
                    tx: tx.clone(),
                    dead: false,
                    sent: false,
                    line_buffered,
                };
                let res = work(i, &mut out).and_then(|r| {
                    out.flush()?;
                    Ok(r)
                });
                if res.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                // The receiver may be gone (output closed); nothing left to tell it then.
                let _ = tx.send(Msg::Done(res));
            });
        }
        let result = drain(&rxs, dest, separator);
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        // Dropping the receivers unblocks any worker waiting on a full channel.
        drop(rxs);
        result
    })
}

fn drain<R>(
    rxs: &[Receiver<Msg<R>>],
    dest: &mut dyn Write,
    separator: Option<&[u8]>,
) -> Result<Vec<R>> {
    let mut results = Vec::with_capacity(rxs.len());
    let mut wrote_any = false;
    for rx in rxs {
        let mut first = true;
        loop {
            match rx.recv() {
                Ok(Msg::Data(block)) => {
                    if first && wrote_any {
                        if let Some(sep) = separator {
                            dest.write_all(sep)?;
                        }
                    }
                    first = false;
                    wrote_any = true;
                    dest.write_all(&block)?;
                }
                Ok(Msg::Done(res)) => {
                    results.push(res?);
                    break;
                }
                Err(_) => return Err(anyhow!("a worker stopped without a result")),
            }
        }
    }
    dest.flush()?;
    Ok(results)
}
