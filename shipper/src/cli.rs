//! `ship`'s command line: the clap tree, and nothing else. Flags are merged over the TOML file
//! in [`crate::config`] (`Delivery::resolve`, `Cli::following`); [`crate::modes`] runs them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use scribe_archive::Category;
use scribe_cli::parse_size;

use crate::rotatelogs::RotatelogsArgs;

/// ship: send log lines to a Scribe aggregator — from standard input, from files it follows
/// across rotation, or from a command's output.
#[derive(Debug, Parser)]
#[command(name = "ship", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,

    /// Category for standard input ([A-Za-z0-9._-], 1-200 bytes).
    #[arg(value_parser = parse_category)]
    pub category: Option<Category>,

    /// Follow files: PATH=CATEGORY (repeatable). PATH may be a glob (`/var/log/*.log`);
    /// CATEGORY may use {stem}, {name} and {dir} of each file.
    #[arg(long, value_name = "PATH=CATEGORY")]
    pub follow: Vec<String>,

    /// TOML file with [[follow]] entries and defaults for these flags (docs/ship.md).
    #[arg(long, value_name = "FILE")]
    // This doc comment is the --help text, where the brackets are TOML, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    pub config: Option<PathBuf>,

    /// Read files that exist at the first start from their beginning (default: their end).
    #[arg(long)]
    pub from_beginning: bool,

    /// Do not use change notifications (inotify); poll only (NFS).
    #[arg(long)]
    pub poll: bool,

    /// How often followed files are checked (sooner on a change notification).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,

    #[command(flatten)]
    pub delivery: Delivery,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run COMMAND and ship its stdout and stderr lines; exits with its exit status.
    Run(Box<RunArgs>),
    /// Apache rotatelogs drop-in: write stdin to rotated files, losing nothing on a full disk.
    Rotatelogs(RotatelogsArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("sink").required(true).multiple(true).args(["category", "local"]))]
pub struct RunArgs {
    /// Category for the command's stdout.
    #[arg(long, value_parser = parse_category)]
    pub category: Option<Category>,

    /// Category for the command's stderr (default: CATEGORY.stderr).
    #[arg(long, value_parser = parse_category, requires = "category")]
    pub stderr_category: Option<Category>,

    /// Also (or, without --category, only) write both streams to rotated local files named
    /// by this rotatelogs pattern (strftime if it has `%`; see `ship rotatelogs`).
    #[arg(long, value_name = "PATTERN")]
    pub local: Option<OsString>,

    /// Rotation of the --local files: seconds and/or a size with B/K/M/G, as rotatelogs takes
    /// them (repeat for both).
    #[arg(
        long,
        value_name = "TIME|SIZE",
        default_value = "86400",
        requires = "local"
    )]
    pub rotate: Vec<String>,

    /// Name and rotate --local files by local time instead of UTC.
    #[arg(long, requires = "local")]
    pub local_time: bool,

    #[command(flatten)]
    pub delivery: Delivery,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// How lines are batched and delivered (every mode).
#[derive(Debug, Args)]
pub struct Delivery {
    /// Aggregator to send to; repeat for failover, in order of preference.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Vec<String>,

    /// Standard input without a spool: give up (exit 1) when no batch has been acknowledged
    /// for this long. With a spool: how long ship keeps replaying it after the input ended.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Longest accepted line, not counting its newline. Default: 16 MiB less room for the
    /// Thrift envelope.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_line: Option<u64>,

    /// Largest frame to send. scribed says its own limit when ship connects (and ship cuts
    /// batches to it); to other servers, which cannot, keep this within theirs.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub max_frame: u64,

    /// Keep lines longer than the aggregator takes in DIR/CATEGORY (replay with
    /// `ship CATEGORY < DIR/CATEGORY`) and go on. Default with --follow and run:
    /// STATE_DIR/dead-letter; standard input: report such lines and exit 1 at the end.
    #[arg(long, value_name = "DIR")]
    pub dead_letter: Option<PathBuf>,

    /// Most lines per batch.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub batch_lines: usize,

    /// Most bytes per batch.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub batch_bytes: u64,

    /// Most batches in flight at once (scribed only; other servers get one at a time).
    // 8: with runs of lines a batch costs so little on either side that the round trip
    // showed: `--follow` of a backlog ran 10-20% faster with 8 than with 4 (stdin the same
    // with 4, 8 or 16); 8 MiB in flight at most.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub window: usize,

    /// `auto`: scribed's native protocol when the aggregator speaks it (lines carry ids, so
    /// none is written twice after a retry or a restart), else Scribe's Thrift; `native`:
    /// refuse aggregators without it; `thrift`: Thrift only (at-least-once).
    #[arg(long, value_name = "PROTOCOL", default_value = "auto")]
    pub protocol: scribe_protocol::client::Protocol,

    /// Gzip batches on native connections (for slow links; costs CPU on both ends).
    #[arg(long)]
    pub compress: bool,

    /// Send a partial batch once its oldest line has waited this long (the most latency
    /// batching adds).
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub linger: Duration,

    /// Where positions (checkpoints) and the default spool live. Default: $STATE_DIRECTORY,
    /// /var/lib/ship for root, else ~/.local/state/ship.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Disk spool used while the aggregator is unreachable or refuses (default with --follow
    /// and run: STATE_DIR/spool...; standard input spools only when this is given).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Spool bound; when it is full, ship stops reading (nothing is dropped). 0: no spool.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub spool_max: Option<u64>,

    /// With a spool: how long without an acknowledgement before batches go to the spool.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub spool_after: Duration,

    /// Connect with TLS (implied by the other --tls-* flags). Key `tls`.
    #[arg(long)]
    pub tls: bool,

    /// CA bundle (PEM) that verifies the aggregator's certificate; default: the system's
    /// trusted roots. Key `tls_ca`.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for aggregators that require one (mutual TLS), with
    /// --tls-key. Key `tls_cert`.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM). Key `tls_key`.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// The name the aggregator's certificate must carry, when it is not the host in --to.
    /// Key `tls_server_name`.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// File holding a bearer token sent when connecting (the native protocol's handshake);
    /// the aggregator maps it to the categories ship may write. Key `token_file`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse().map_err(|e| format!("{e}"))
}
