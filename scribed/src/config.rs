//! Server settings. Flag names are the keys a config file will use (`--max-size` ↔ `max_size`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use scribe_cli::parse_size;

/// scribed: a Scribe-compatible log aggregator that writes size-rotated category files.
#[derive(Debug, Clone, Parser)]
#[command(name = "scribed", version, about)]
pub struct Config {
    /// Address to listen on for Scribe (Thrift, framed) clients. Repeatable.
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:1463")]
    pub listen: Vec<SocketAddr>,

    /// Directory holding one sub-directory per category.
    #[arg(long, value_name = "DIR", default_value = "./scribe-data")]
    pub data_dir: PathBuf,

    /// Rotate a category file before a message would take it past this size (K/M/G suffixes,
    /// powers of 1024; 0 = never).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub max_size: u64,

    /// Largest accepted frame (one Thrift call). Bigger frames close the connection.
    #[arg(long, value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub max_frame: u64,

    /// Bytes one category may have queued for writing before clients get TRY_LATER.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub max_category_queue: u64,

    /// Bytes all categories together may have queued before clients get TRY_LATER.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub max_queue: u64,

    /// Most simultaneous client connections; more are closed at once with a warning.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Once listening, write the bound addresses (one per line) to this file, atomically.
    /// Lets scripts and tests use port 0.
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_scribe_conventions() {
        let c = Config::parse_from(["scribed"]);
        assert_eq!(c.listen, vec!["127.0.0.1:1463".parse().unwrap()]);
        assert_eq!(c.max_size, 1 << 30);
        assert_eq!(c.max_frame, 16 << 20);
    }
}
