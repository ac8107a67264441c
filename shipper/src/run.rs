//! `ship run -- COMMAND`: runs a daemon and ships what it writes to stdout and stderr.
//!
//! With `--local PATTERN` the lines (both streams, whole lines interleaved) are also, or only,
//! written to rotated local files by [`RotatelogsWriter`] — `ship rotatelogs`' writer, which
//! blocks and retries on a full disk instead of dropping. The two streams share those files, so
//! a line must never run into a line of the other stream: a stream's last line without a `\n`
//! is written with one added when that stream ends (the aggregator's file store adds it the
//! same way).
//!
//! Signals: ship is the command's supervisor. It installs its SIGTERM/SIGINT/SIGHUP handlers
//! *before* starting the command, so `exec` resets those three to their default action in the
//! command even when ship itself was started with them ignored (`nohup`, `cmd &` in a script):
//! otherwise a forwarded signal would do nothing and `kill ship` could never stop the command.
//! Service managers (systemd, runit) give their children the same clean start.
//!
//! The command's stdout lines go to one category and its stderr lines to another (by default
//! `CATEGORY.stderr`), through the same batcher and outbox as stdin mode, so an aggregator
//! outage spools to disk (when a spool is configured) instead of blocking the daemon; without a
//! spool, or while the spool (or the disk under it) is full, a full pipe blocks the daemon's
//! writes, as a pipe to any logger does — ship never stops reading for good, so the daemon
//! never gets SIGPIPE from it. SIGTERM,
//! SIGINT and SIGHUP are forwarded to the command. `ship run` exits with the command's exit
//! status (128 + signal number if it was killed) once everything it wrote was delivered or
//! is safe in the spool; if delivery failed for good it exits 1 unless the command itself
//! failed.

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use scribe_archive::Category;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::batch::BatchLimits;
use crate::lines::{self, Chunk};
use crate::outbox::{self, Batch, OutboxOptions, OutboxReport};
use crate::rotatelogs::{RotateOptions, RotatelogsWriter};
use crate::stream::batch_lines;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Categories for stdout and stderr; `None`: nothing is shipped (`--local` only).
    pub categories: Option<(Category, Category)>,
    /// Rotated local files to write both streams to.
    pub local: Option<RotateOptions>,
    pub command: Vec<OsString>,
    pub limits: BatchLimits,
    pub outbox: OutboxOptions,
}

/// Runs the command to completion; returns the exit status to exit with.
pub async fn run_command(opts: RunOptions) -> anyhow::Result<(i32, OutboxReport)> {
    let (program, args) = opts.command.split_first().context("no command to run")?;
    // Before the spawn: a caught signal is reset to default by exec, an ignored one is not.
    let signals = ForwardedSignals::install().context("installing signal handlers")?;
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let pid = Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;

    // The local writer runs on its own thread: its writes block (and retry) on a full disk.
    let (local_tx, local_thread) = match opts.local.clone() {
        Some(local) => {
            let mut writer = RotatelogsWriter::new(local).context("opening the local log")?;
            let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(16);
            let thread = std::thread::spawn(move || {
                while let Some(data) = rx.blocking_recv() {
                    if let Err(e) = writer.write(&data) {
                        tracing::error!("local log: {e}");
                        return Err(e);
                    }
                }
                writer.close();
                Ok(())
            });
            (Some(tx), Some(thread))
        }
        None => (None, None),
    };

    let (tx, rx) = mpsc::channel::<Batch<()>>(4);
    let mut tasks = Vec::new();
    for (input, stream) in [
        (Box::new(stdout) as Box<dyn std::io::Read + Send>, 0),
        (Box::new(stderr), 1),
    ] {
        let (chunks, _reader) = lines::spawn_reader(input, opts.limits.max_line, 8);
        let to_batcher = match &opts.categories {
            Some((out, err)) => {
                let category = if stream == 0 { out } else { err }.clone();
                let (ctx, crx) = mpsc::channel::<Chunk>(8);
                let (tx, limits) = (tx.clone(), opts.limits.clone());
                tasks.push(tokio::spawn(async move {
                    let counter = Arc::new(AtomicU64::new(0));
                    if let Err(e) = batch_lines(crx, tx, category, limits, counter).await {
                        tracing::warn!("{e:?}: the rest of that stream was not shipped");
                    }
                }));
                Some(ctx)
            }
            None => None,
        };
        tasks.push(tokio::spawn(tee(chunks, to_batcher, local_tx.clone())));
    }
    drop(tx);
    drop(local_tx);

    let forward = tokio::spawn(signals.forward_to(pid));
    let waited = tokio::task::spawn_blocking(move || child.wait());
    let mut report = OutboxReport::default();
    let delivered = match opts.categories {
        Some(_) => outbox::run(rx, |()| {}, opts.outbox.clone(), &mut report).await,
        None => {
            drop(rx);
            Ok(())
        }
    };
    let status = waited
        .await
        .context("waiting for the command")?
        .context("waiting for the command")?;
    forward.abort();
    for t in tasks {
        let _ = t.await;
    }
    let local = match local_thread {
        Some(t) => tokio::task::spawn_blocking(move || t.join())
            .await
            .ok()
            .and_then(|r| r.ok()),
        None => Some(Ok(())),
    };
    let code = exit_code(status);
    if !matches!(local, Some(Ok(()))) {
        eprintln!("ship: the local log failed; the rest of the command's output was not written");
        return Ok((if code == 0 { 1 } else { code }, report));
    }
    if let Err(e) = delivered {
        eprintln!(
            "ship: {e}; {} lines delivered, the rest of the command's output was lost",
            report.lines_delivered
        );
        return Ok((if code == 0 { 1 } else { code }, report));
    }
    Ok((code, report))
}

/// Hands each chunk of whole lines to the batcher and the local writer.
async fn tee(
    mut chunks: mpsc::Receiver<Chunk>,
    batcher: Option<mpsc::Sender<Chunk>>,
    local: Option<mpsc::Sender<bytes::Bytes>>,
) {
    while let Some(chunk) = chunks.recv().await {
        if let Some(l) = &local {
            if l.send(terminated(&chunk.data)).await.is_err() {
                return;
            }
        }
        if let Some(b) = &batcher {
            if b.send(chunk).await.is_err() {
                return;
            }
        }
    }
}

/// The chunk as it goes into a file shared with the other stream: only a stream's very last
/// chunk can lack its final `\n` (the reader hands over whole lines), and that line gets one,
/// so the other stream's next line starts a line of its own.
fn terminated(data: &bytes::Bytes) -> bytes::Bytes {
    if data.last().is_none_or(|&b| b == b'\n') {
        return data.clone();
    }
    let mut whole = Vec::with_capacity(data.len() + 1);
    whole.extend_from_slice(data);
    whole.push(b'\n');
    whole.into()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// SIGTERM, SIGINT and SIGHUP, caught by ship to be passed on to the command.
struct ForwardedSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl ForwardedSignals {
    fn install() -> std::io::Result<Self> {
        Ok(ForwardedSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Passes each signal on to the command until it exits.
    async fn forward_to(mut self, pid: Pid) {
        loop {
            let sig = tokio::select! {
                _ = self.term.recv() => Signal::SIGTERM,
                _ = self.int.recv() => Signal::SIGINT,
                _ = self.hup.recv() => Signal::SIGHUP,
            };
            tracing::info!(?sig, "forwarding to the command");
            if kill(pid, sig).is_err() {
                return;
            }
        }
    }
}
