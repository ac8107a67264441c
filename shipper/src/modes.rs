//! The three ways `ship` runs, as its `main` hands them over: standard input
//! ([`stdin_mode`]), `--follow`/`[[follow]]` ([`follow_mode`]) and `ship run` ([`run_mode`]).
//! Each merges the flags over the config file ([`crate::config`]), calls the mode's library
//! function ([`crate::ship_stream`], [`crate::follow::ship_files`],
//! [`crate::run::run_command`]) and turns its outcome into what the user sees: messages on
//! stderr and the exit code. A module of its own so that those modules need neither the
//! command line nor the config file (`config` itself builds on `follow`: an import loop
//! otherwise).

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use scribe_archive::Category;
use scribe_fs::LockError;
use scribe_protocol::ProducerId;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Cmd, Delivery, RunArgs};
use crate::config::{ConfigFile, DeliverySettings};
use crate::dead_letter::{self, Describe, Oversized};
use crate::follow::{self, FollowSettings};
use crate::rotatelogs::args::parse_specs;
use crate::rotatelogs::naming::init_local_zone;
use crate::rotatelogs::{RotateOptions, Zone};
use crate::run::{run_command, RunOptions};
use crate::{ship_stream, StreamOptions};

/// Longest a stopping `ship --follow` waits for what it read to be delivered (or spooled);
/// `--timeout` when that is shorter.
const FOLLOW_GRACE: Duration = Duration::from_secs(10);

/// Runs the mode the command line asks for (not `rotatelogs`, which needs no runtime: `main`
/// runs it before starting one). Follow mode stops on SIGINT or SIGTERM.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Cmd::Run(args)) => return run_mode(*args).await,
        Some(Cmd::Rotatelogs(_)) => bail!("ship rotatelogs runs without a runtime"),
        None => {}
    }
    let file = match &cli.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    match (&cli.category, cli.is_following(&file)) {
        (Some(category), false) => stdin_mode(category.clone(), &cli.delivery, &file).await,
        (None, true) => {
            let shutdown = CancellationToken::new();
            scribe_cli::cancel_on_signals(shutdown.clone(), "delivering what was read")?;
            follow_mode(&cli, &file, shutdown).await
        }
        (Some(_), true) => bail!("give either a CATEGORY for standard input or files to follow, not both"),
        (None, false) => bail!("nothing to ship: give a CATEGORY (standard input), --follow PATH=CATEGORY or --config FILE; see ship --help"),
    }
}

/// `cat access.log | ship CATEGORY`: ships the process's standard input.
pub async fn stdin_mode(
    category: Category,
    delivery: &Delivery,
    file: &ConfigFile,
) -> anyhow::Result<ExitCode> {
    let mut settings = delivery.resolve(file, |_| None)?;
    if settings.outbox.spool.is_none() {
        settings.outbox.give_up = Some(delivery.timeout);
    }
    // Standard input keeps over-long lines only when asked: by default they fail the run.
    let oversized = set_aside(&mut settings, None, dead_letter::describe_stdin());
    let opts = StreamOptions {
        category,
        limits: settings.limits,
        outbox: settings.outbox,
    };
    let spooling = opts.outbox.spool.is_some();
    let report = ship_stream(std::io::stdin(), opts).await?;
    if let Some(summary) = oversized.summary() {
        eprintln!("ship: {summary}");
    }
    if let Some(why) = oversized.failure() {
        let delivered = report.lines_delivered.saturating_sub(oversized.reported());
        bail!("{why}; {delivered} lines delivered");
    }
    tracing::info!(?report, "all lines delivered");
    // With a spool, how it went is worth a line (as for the other modes); a plain pipe stays
    // quiet on success.
    if spooling {
        eprintln!("ship: stats {report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Hands lines too long for the aggregator to an [`Oversized`] that keeps them in
/// `--dead-letter` (else in `default_dir`, if any) and reports them as `describe` says.
fn set_aside(
    settings: &mut DeliverySettings,
    default_dir: Option<std::path::PathBuf>,
    describe: Describe,
) -> std::sync::Arc<Oversized> {
    let oversized = Oversized::new(settings.dead_letter.clone().or(default_dir));
    settings.outbox.client.oversize = Some(oversized.sink(describe));
    oversized
}

/// `ship run -- COMMAND`: exits with the command's status (see [`crate::run`]).
pub async fn run_mode(args: RunArgs) -> anyhow::Result<ExitCode> {
    // No config file: `ship run` takes its settings from flags only.
    let file = ConfigFile::default();
    let spool_name = match &args.category {
        Some(c) => format!("run-{c}"),
        None => "run".to_string(),
    };
    let mut settings = args
        .delivery
        .resolve(&file, |state| Some(state.join(&spool_name).join("spool")))?;
    let dead_dir = settings.state_dir.join(&spool_name).join("dead-letter");
    let oversized = set_aside(
        &mut settings,
        Some(dead_dir),
        dead_letter::describe_stream("command output"),
    );
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
    let (code, report) = run_command(RunOptions {
        categories,
        local: local_options(&args)?,
        command: args.command,
        limits: settings.limits,
        outbox: settings.outbox,
    })
    .await?;
    tracing::info!(?report, code, "command finished");
    if args.category.is_some() {
        eprintln!("ship: stats {report}");
    }
    if let Some(summary) = oversized.summary() {
        eprintln!("ship: {summary}");
    }
    if let (0, Some(why)) = (code, oversized.failure()) {
        bail!("{why}");
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `--local PATTERN`, `--rotate` and `--local-time` as the rotatelogs writer takes them.
fn local_options(args: &RunArgs) -> anyhow::Result<Option<RotateOptions>> {
    let Some(pattern) = &args.local else {
        return Ok(None);
    };
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
    Ok(Some(o))
}

/// `ship --follow PATH=CATEGORY` / `[[follow]]` entries: follows until `shutdown` is
/// cancelled, then prints the counters (`ship: stats ...`) on stderr. Exits 1 if delivery
/// failed for good.
pub async fn follow_mode(
    cli: &Cli,
    file: &ConfigFile,
    shutdown: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let mut settings = cli
        .delivery
        .resolve(file, |state| Some(state.join("spool")))?;
    let dead_dir = settings.state_dir.join("dead-letter");
    let names = dead_letter::FileNames::default();
    let oversized = set_aside(
        &mut settings,
        Some(dead_dir),
        dead_letter::describe_followed(names.clone()),
    );
    let following = cli.following(file)?;
    let state_dir = &settings.state_dir;
    // Nothing is read before the state directory is ready, so a full disk is simply waited
    // out (a stop meanwhile loses nothing).
    let ready = crate::disk::wait_for_room(&shutdown, || open_state_dir(state_dir)).await?;
    let Some((_lock, producer)) = ready else {
        return Ok(ExitCode::SUCCESS);
    };
    let follow_settings = FollowSettings {
        entries: following.entries,
        positions: state_dir.join("positions"),
        poll_interval: following.poll_interval,
        notify: following.notify,
        rescan_interval: Duration::from_secs(1),
        limits: settings.limits,
        producer,
        names,
    };
    let grace = cli.delivery.timeout.min(FOLLOW_GRACE);
    let report = follow::ship_files(follow_settings, settings.outbox, grace, shutdown).await?;
    eprintln!("ship: stats {report}");
    if let Some(summary) = oversized.summary() {
        eprintln!("ship: {summary}");
    }
    if let Some(e) = report.failed {
        bail!("{e}");
    }
    if let Some(why) = oversized.failure() {
        bail!("{why}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates and locks the state directory and loads (or makes) this ship's producer id.
fn open_state_dir(state_dir: &Path) -> anyhow::Result<(File, ProducerId)> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating state dir {}", state_dir.display()))?;
    // Two ships following with one positions file would each resend what the other
    // committed: one state directory, one ship.
    let lock = match scribe_fs::lock_dir(state_dir) {
        Ok(lock) => lock,
        Err(LockError::Held { dir }) => bail!(
            "state dir {} is in use by another ship (give each its own --state-dir)",
            dir.display()
        ),
        Err(e) => return Err(e.into()),
    };
    Ok((lock, crate::batch::load_producer_id(state_dir)?))
}
