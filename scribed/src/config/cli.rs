//! Command-line flags. Each flag mirrors a config-file key and, when given, overrides it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use scribe_cli::parse_size;

/// scribed: a Scribe-compatible log aggregator that routes categories to stores.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "scribed", version, about)]
pub struct Args {
    /// TOML configuration file (see docs/config.md). Flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate FILE and exit: 0 if it is good, 1 with the problem otherwise.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,

    /// Address to accept Scribe clients on; repeatable. Key `listen`. [default: 127.0.0.1:1463]
    #[arg(long = "listen", value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,

    /// Base directory of file stores. Key `data_dir`. [default: ./scribe-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Default file size before rotation (K/M/G, powers of 1024; 0 = never). Key `max_size`.
    /// [default: 1G]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Largest accepted frame. Key `max_frame`. [default: 16M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_frame: Option<u64>,

    /// Bytes one store may have queued per category before TRY_LATER. Key `max_queue_bytes`.
    /// [default: 64M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, alias = "max-category-queue")]
    pub max_queue_bytes: Option<u64>,

    /// Bytes all stores together may have queued before TRY_LATER. Key `max_total_queue_bytes`.
    /// [default: 512M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, alias = "max-queue")]
    pub max_total_queue_bytes: Option<u64>,

    /// Messages per second accepted overall (0 = no limit). Key `max_msg_per_second`.
    #[arg(long, value_name = "N")]
    pub max_msg_per_second: Option<u64>,

    /// Most simultaneous client connections. Key `max_connections`. [default: 10000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Close a client connection that starts no new frame for this long (frees its slot
    /// under --max-connections). Key `idle_timeout`. [default: 10m]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<std::time::Duration>,

    /// HTTP address for /metrics, /health, /ready and /status. Key `status_listen`.
    /// [default: 127.0.0.1:1464]
    #[arg(long, value_name = "ADDR")]
    pub status_listen: Option<SocketAddr>,

    /// Once listening, write the bound addresses to this file, atomically: one Scribe address
    /// per line, then `status ADDR`. Lets scripts and tests use port 0.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}
