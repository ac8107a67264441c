//! `ship run -- COMMAND`: runs a daemon and ships what it writes to stdout and stderr.
//!
//! The command's stdout lines go to one category and its stderr lines to another (by default
//! `CATEGORY.stderr`), through the same batcher and outbox as stdin mode, so an aggregator
//! outage spools to disk (when a spool is configured) instead of blocking the daemon; without a
//! spool, a full pipe blocks the daemon's writes, as a pipe to any logger does. SIGTERM,
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

use crate::lines;
use crate::outbox::{self, Batch, OutboxOptions, OutboxReport};
use crate::stream::{batch_lines, BatchLimits};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub stdout_category: Category,
    pub stderr_category: Category,
    pub command: Vec<OsString>,
    pub limits: BatchLimits,
    pub outbox: OutboxOptions,
}

/// Runs the command to completion; returns the exit status to exit with.
pub async fn run_command(opts: RunOptions) -> anyhow::Result<(i32, OutboxReport)> {
    let (program, args) = opts.command.split_first().context("no command to run")?;
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let pid = Pid::from_raw(child.id() as i32);
    let stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;

    let (tx, rx) = mpsc::channel::<Batch<()>>(4);
    let mut batchers = Vec::new();
    for (input, category) in [
        (
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            &opts.stdout_category,
        ),
        (Box::new(stderr), &opts.stderr_category),
    ] {
        let (chunks, _reader) = lines::spawn_reader(input, opts.limits.max_line, 8);
        batchers.push(tokio::spawn(batch_lines(
            chunks,
            tx.clone(),
            category.clone(),
            opts.limits.clone(),
            Arc::new(AtomicU64::new(0)),
        )));
    }
    drop(tx);

    let forward = tokio::spawn(forward_signals(pid));
    let waited = tokio::task::spawn_blocking(move || child.wait());
    let mut report = OutboxReport::default();
    let delivered = outbox::run(rx, |()| {}, opts.outbox.clone(), &mut report).await;
    let status = waited
        .await
        .context("waiting for the command")?
        .context("waiting for the command")?;
    forward.abort();
    for b in batchers {
        if let Ok(Err(e)) = b.await {
            tracing::warn!("{e:?}: the rest of that stream was not shipped");
        }
    }
    let code = exit_code(status);
    if let Err(e) = delivered {
        eprintln!(
            "ship: {e}; {} lines delivered, the rest of the command's output was lost",
            report.lines_delivered
        );
        return Ok((if code == 0 { 1 } else { code }, report));
    }
    Ok((code, report))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Passes SIGTERM, SIGINT and SIGHUP on to the command until it exits.
async fn forward_signals(pid: Pid) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let sig = tokio::select! {
            _ = term.recv() => Signal::SIGTERM,
            _ = int.recv() => Signal::SIGINT,
            _ = hup.recv() => Signal::SIGHUP,
        };
        tracing::info!(?sig, "forwarding to the command");
        if kill(pid, sig).is_err() {
            return Ok(());
        }
    }
}
