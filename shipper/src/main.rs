//! `ship` binary: `cat access.log | ship apache.access`, `ship --follow PATH=CAT`,
//! `ship run --category CAT -- COMMAND`. A thin shell over the `shipper` library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use scribe_archive::Category;
use scribe_cli::parse_size;
use scribe_protocol::client::ClientOptions;
use scribe_protocol::frame::DEFAULT_MAX_FRAME;
use scribe_spool::SpoolOptions;
use shipper::batch::{max_line_for_frame, BatchLimits};
use shipper::config::{default_state_dir, parse_duration, ConfigFile, FollowSpec};
use shipper::follow::{self, FollowSettings};
use shipper::outbox::{self, OutboxOptions, OutboxReport};
use shipper::rotatelogs::args::parse_specs;
use shipper::rotatelogs::naming::init_local_zone;
use shipper::rotatelogs::{RotateOptions, RotatelogsArgs, Zone};
use shipper::run::{run_command, RunOptions};
use shipper::{ship_stream, StreamOptions};
use tokio::signal::unix::{signal, SignalKind};

/// ship: send log lines to a Scribe aggregator — from standard input, from files it follows
/// across rotation, or from a command's output.
#[derive(Debug, Parser)]
#[command(name = "ship", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,

    /// Category for standard input ([A-Za-z0-9._-], 1-200 bytes).
    #[arg(value_parser = parse_category)]
    category: Option<Category>,

    /// Follow files: PATH=CATEGORY (repeatable). PATH may be a glob (`/var/log/*.log`);
    /// CATEGORY may use {stem}, {name} and {dir} of each file.
    #[arg(long, value_name = "PATH=CATEGORY")]
    follow: Vec<String>,

    /// TOML file with [[follow]] entries and defaults for these flags (docs/ship.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Read files that exist at the first start from their beginning (default: their end).
    #[arg(long)]
    from_beginning: bool,

    /// Do not use change notifications (inotify); poll only (NFS).
    #[arg(long)]
    poll: bool,

    /// How often followed files are checked (sooner on a change notification).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,

    #[command(flatten)]
    delivery: Delivery,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run COMMAND and ship its stdout and stderr lines; exits with its exit status.
    Run(RunArgs),
    /// Apache rotatelogs drop-in: write stdin to rotated files, losing nothing on a full disk.
    Rotatelogs(RotatelogsArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("sink").required(true).multiple(true).args(["category", "local"]))]
struct RunArgs {
    /// Category for the command's stdout.
    #[arg(long, value_parser = parse_category)]
    category: Option<Category>,

    /// Category for the command's stderr (default: CATEGORY.stderr).
    #[arg(long, value_parser = parse_category, requires = "category")]
    stderr_category: Option<Category>,

    /// Also (or, without --category, only) write both streams to rotated local files named
    /// by this rotatelogs pattern (strftime if it has `%`; see `ship rotatelogs`).
    #[arg(long, value_name = "PATTERN")]
    local: Option<OsString>,

    /// Rotation of the --local files: seconds and/or a size with B/K/M/G, as rotatelogs takes
    /// them (repeat for both).
    #[arg(
        long,
        value_name = "TIME|SIZE",
        default_value = "86400",
        requires = "local"
    )]
    rotate: Vec<String>,

    /// Name and rotate --local files by local time instead of UTC.
    #[arg(long, requires = "local")]
    local_time: bool,

    #[command(flatten)]
    delivery: Delivery,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// How lines are batched and delivered (every mode).
#[derive(Debug, Args)]
struct Delivery {
    /// Aggregator to send to; repeat for failover, in order of preference.
    #[arg(long, value_name = "HOST:PORT")]
    to: Vec<String>,

    /// Standard input without a spool: give up (exit 1) when no batch has been acknowledged
    /// for this long. With a spool: how long ship keeps replaying it after the input ended.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Longest accepted line, not counting its newline. Default: 16 MiB less room for the
    /// Thrift envelope.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_line: Option<u64>,

    /// Largest frame to send; must not exceed the server's limit (scribed: --max-frame, 16M).
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    max_frame: u64,

    /// Most lines per batch.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    batch_lines: usize,

    /// Most bytes per batch.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    batch_bytes: u64,

    /// Most batches in flight at once (scribed only; other servers get one at a time).
    #[arg(long, value_name = "N", default_value_t = 4)]
    window: usize,

    /// `auto`: scribed's native protocol when the aggregator speaks it (lines carry ids, so
    /// none is written twice after a retry or a restart), else Scribe's Thrift; `native`:
    /// refuse aggregators without it; `thrift`: Thrift only (at-least-once).
    #[arg(long, value_name = "PROTOCOL", default_value = "auto")]
    protocol: scribe_protocol::client::Protocol,

    /// Gzip batches on native connections (for slow links; costs CPU on both ends).
    #[arg(long)]
    compress: bool,

    /// Send a partial batch once its oldest line has waited this long (the most latency
    /// batching adds).
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = humantime::parse_duration)]
    linger: Duration,

    /// Where positions (checkpoints) and the default spool live. Default: $STATE_DIRECTORY,
    /// /var/lib/ship for root, else ~/.local/state/ship.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Disk spool used while the aggregator is unreachable or refuses (default with --follow
    /// and run: STATE_DIR/spool...; standard input spools only when this is given).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,

    /// Spool bound; when it is full, ship stops reading (nothing is dropped). 0: no spool.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    spool_max: Option<u64>,

    /// With a spool: how long without an acknowledgement before batches go to the spool.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    spool_after: Duration,
}

/// Holds an exclusive lock on `<dir>/lock` for as long as the returned file lives.
fn lock_state_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "state dir {} is in use by another ship (give each its own --state-dir)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Settings shared by every mode, after the config file and flags are merged.
struct Common {
    limits: BatchLimits,
    outbox: OutboxOptions,
    state_dir: PathBuf,
}

impl Delivery {
    /// `default_spool`: the spool directory used unless `--spool-dir` says otherwise.
    fn resolve(
        &self,
        file: &ConfigFile,
        default_spool: impl FnOnce(&std::path::Path) -> Option<PathBuf>,
    ) -> anyhow::Result<Common> {
        let max_frame = usize::try_from(self.max_frame).unwrap_or(DEFAULT_MAX_FRAME);
        let frame_line = max_line_for_frame(max_frame);
        let max_line = self
            .max_line
            .map_or(frame_line, |m| usize::try_from(m).unwrap_or(usize::MAX));
        if max_line > frame_line {
            bail!("--max-line {max_line} does not fit in --max-frame {max_frame} (at most {frame_line})");
        }
        let state_dir = self
            .state_dir
            .clone()
            .or_else(|| file.state_dir.clone())
            .unwrap_or_else(default_state_dir);
        let spool_max = match (&self.spool_max, &file.spool_max) {
            (Some(m), _) => *m,
            (None, Some(s)) => parse_size(s)
                .map_err(anyhow::Error::msg)
                .context("spool_max")?,
            (None, None) => 1 << 30,
        };
        let spool_dir = self
            .spool_dir
            .clone()
            .or_else(|| file.spool_dir.clone())
            .or_else(|| default_spool(&state_dir));
        let spool = match spool_dir {
            Some(dir) if spool_max > 0 => Some((
                dir,
                SpoolOptions {
                    max_bytes: spool_max,
                    ..SpoolOptions::default()
                },
            )),
            _ => None,
        };
        let mut to = self.to.clone();
        if to.is_empty() {
            to = file.to.clone();
        }
        if to.is_empty() {
            to.push("127.0.0.1:1463".to_string());
        }
        Ok(Common {
            limits: BatchLimits {
                max_line,
                batch_lines: self.batch_lines.max(1),
                batch_bytes: usize::try_from(self.batch_bytes)
                    .unwrap_or(usize::MAX)
                    .min(max_frame),
                linger: self.linger,
            },
            outbox: OutboxOptions {
                to,
                client: ClientOptions {
                    max_frame,
                    protocol: self.protocol,
                    gzip: self.compress,
                    ..ClientOptions::default()
                },
                window: self.window.max(1),
                spool_after: self.spool_after,
                give_up: None,
                spool,
                drain_after_input: self.timeout,
                max_frame,
            },
            state_dir,
        })
    }
}

fn main() -> ExitCode {
    scribe_cli::init_logging("warn");
    let cli = Cli::parse();
    if let Some(Cmd::Rotatelogs(args)) = cli.command {
        // Synchronous: a pipe in, files out; no runtime needed.
        return match shipper::rotatelogs::run(args) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("ship rotatelogs: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ship: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ship: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Cmd::Run(args)) => return run_mode(args).await,
        Some(Cmd::Rotatelogs(_)) => unreachable!("handled before the runtime starts"),
        None => {}
    }
    let file = match &cli.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let following = !cli.follow.is_empty() || !file.follow.is_empty();
    match (&cli.category, following) {
        (Some(category), false) => stdin_mode(category.clone(), &cli.delivery, &file).await,
        (None, true) => follow_mode(&cli, &file).await,
        (Some(_), true) => bail!("give either a CATEGORY for standard input or files to follow, not both"),
        (None, false) => bail!("nothing to ship: give a CATEGORY (standard input), --follow PATH=CATEGORY or --config FILE; see ship --help"),
    }
}

async fn stdin_mode(
    category: Category,
    delivery: &Delivery,
    file: &ConfigFile,
) -> anyhow::Result<ExitCode> {
    let mut common = delivery.resolve(file, |_| None)?;
    if common.outbox.spool.is_none() {
        common.outbox.give_up = Some(delivery.timeout);
    }
    let opts = StreamOptions {
        category,
        limits: common.limits,
        outbox: common.outbox,
    };
    let report = ship_stream(std::io::stdin(), opts).await?;
    tracing::info!(?report, "all lines delivered");
    Ok(ExitCode::SUCCESS)
}

async fn run_mode(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = ConfigFile::default();
    let spool_name = match &args.category {
        Some(c) => format!("run-{c}"),
        None => "run".to_string(),
    };
    let common = args
        .delivery
        .resolve(&file, |state| Some(state.join(spool_name).join("spool")))?;
    let categories = match &args.category {
        Some(out) => {
            let err = match &args.stderr_category {
                Some(c) => c.clone(),
                None => format!("{out}.stderr")
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--category {out}: {e}"))?,
            };
            Some((out.clone(), err))
        }
        None => None,
    };
    let local = match &args.local {
        Some(pattern) => {
            let specs = parse_specs(&args.rotate).map_err(|e| anyhow::anyhow!("--rotate: {e}"))?;
            let mut o = RotateOptions::new(pattern.clone());
            o.period = specs.period;
            o.max_size = specs.max_size;
            o.create_dirs = true;
            o.zone = if args.local_time {
                init_local_zone();
                Zone::Local
            } else {
                Zone::Fixed(specs.offset_minutes.unwrap_or(0) * 60)
            };
            Some(o)
        }
        None => None,
    };
    let (code, report) = run_command(RunOptions {
        categories,
        local,
        command: args.command,
        limits: common.limits,
        outbox: common.outbox,
    })
    .await?;
    tracing::info!(?report, code, "command finished");
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

async fn follow_mode(cli: &Cli, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let common = cli
        .delivery
        .resolve(file, |state| Some(state.join("spool")))?;
    let mut entries = Vec::new();
    for (i, spec) in file.follow.iter().enumerate() {
        entries.push(spec.compile(&format!("follow[{i}]"), cli.from_beginning)?);
    }
    for flag in &cli.follow {
        let spec = FollowSpec::from_flag(flag, cli.from_beginning)?;
        entries.push(spec.compile(&format!("--follow {flag}"), cli.from_beginning)?);
    }
    std::fs::create_dir_all(&common.state_dir)
        .with_context(|| format!("creating state dir {}", common.state_dir.display()))?;
    // Two ships following with one positions file would each resend what the other
    // committed: one state directory, one ship.
    let _lock = lock_state_dir(&common.state_dir)?;
    let poll_interval = match (cli.poll_interval, &file.poll_interval) {
        (Some(d), _) => d,
        (None, Some(s)) => parse_duration(s)?,
        (None, None) => Duration::from_millis(250),
    };
    let settings = FollowSettings {
        entries,
        positions: common.state_dir.join("positions"),
        poll_interval,
        notify: !(cli.poll || file.poll.unwrap_or(false)),
        rescan_interval: Duration::from_secs(1),
        limits: common.limits,
        producer: shipper::batch::load_producer_id(&common.state_dir)?,
    };

    // One batch waits beside the window: what a `kill -9` can send twice (read, not yet
    // committed) stays about `--window` + 2 batches.
    let (batches_tx, batches_rx) = tokio::sync::mpsc::channel(1);
    let (commits_tx, commits_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let tail = follow::spawn(settings, batches_tx, commits_rx, stop.clone())?;

    let mut report = OutboxReport::default();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let grace = cli.delivery.timeout.min(Duration::from_secs(10));
    let mut failed = None;
    {
        let sent = outbox::run(
            batches_rx,
            move |c| {
                let _ = commits_tx.send(c);
            },
            common.outbox,
            &mut report,
        );
        tokio::pin!(sent);
        let ended = tokio::select! {
            r = &mut sent => Some(r),
            _ = term.recv() => None,
            _ = int.recv() => None,
        };
        stop.store(true, Ordering::Release);
        let ended = match ended {
            Some(r) => Some(r),
            // Let what was read be delivered (bounded): the follow thread stops and closes
            // the outbox's input; acknowledged batches commit their offsets.
            None => tokio::time::timeout(grace, &mut sent).await.ok(),
        };
        if let Some(Err(e)) = ended {
            failed = Some(e);
        }
    }
    let stats = tokio::task::spawn_blocking(move || tail.join())
        .await
        .context("follow thread")?
        .map_err(|_| anyhow::anyhow!("the follow thread panicked"))??;
    eprintln!(
        "ship: stats lines={} bytes={} rotations={} truncations={} truncated_unread_bytes={} \
         vanished={} long_lines={} delivered={} spooled={} replayed={} retries={}",
        stats.lines,
        stats.bytes,
        stats.rotations,
        stats.truncations,
        stats.truncated_unread,
        stats.vanished,
        stats.long_lines,
        report.lines_delivered,
        report.lines_spooled,
        report.lines_replayed,
        report.retries,
    );
    if let Some(e) = failed {
        bail!("{e}");
    }
    Ok(ExitCode::SUCCESS)
}
