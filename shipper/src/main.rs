//! `ship` binary: `cat access.log | ship apache.access`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scribe_archive::Category;
use scribe_cli::parse_size;
use scribe_protocol::client::ClientOptions;
use scribe_protocol::frame::DEFAULT_MAX_FRAME;
use shipper::stream::max_line_for_frame;
use shipper::{ship_stream, StreamOptions};

/// ship: send standard input, one message per line, to a Scribe aggregator. Exits 0 only
/// after every line was acknowledged.
#[derive(Debug, Parser)]
#[command(name = "ship", version, about)]
struct Args {
    /// Category to log under ([A-Za-z0-9._-], 1-200 bytes).
    #[arg(value_parser = parse_category)]
    category: Category,

    /// Aggregator to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:1463")]
    to: String,

    /// Give up (exit 1) when no batch has been acknowledged for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,

    /// Longest accepted line, not counting its newline; a longer line is an error and nothing
    /// from it on is sent. Default: 16 MiB less room for the Thrift envelope.
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

    /// Most batches in flight at once. Used only with scribed, which closes the connection
    /// after refusing a batch so none behind it is written out of order; other Scribe servers
    /// get one batch at a time.
    #[arg(long, value_name = "N", default_value_t = 4)]
    window: usize,

    /// Send a partial batch when no input arrived for this long.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = humantime::parse_duration)]
    linger: Duration,
}

fn parse_category(s: &str) -> Result<Category, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn main() -> ExitCode {
    scribe_cli::init_logging("warn");
    let args = Args::parse();
    let max_frame = usize::try_from(args.max_frame).unwrap_or(DEFAULT_MAX_FRAME);
    let frame_line = max_line_for_frame(max_frame);
    let max_line = args
        .max_line
        .map_or(frame_line, |m| usize::try_from(m).unwrap_or(usize::MAX));
    if max_line > frame_line {
        eprintln!(
            "ship: --max-line {max_line} does not fit in --max-frame {max_frame} (at most {frame_line})"
        );
        return ExitCode::from(2);
    }
    let opts = StreamOptions {
        to: args.to,
        category: args.category,
        max_line,
        batch_lines: args.batch_lines.max(1),
        batch_bytes: usize::try_from(args.batch_bytes)
            .unwrap_or(usize::MAX)
            .min(max_frame),
        linger: args.linger,
        timeout: args.timeout,
        window: args.window.max(1),
        client: ClientOptions {
            max_frame,
            ..ClientOptions::default()
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ship: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ship_stream(std::io::stdin(), opts)) {
        Ok(report) => {
            tracing::info!(?report, "all lines delivered");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ship: {e}");
            ExitCode::FAILURE
        }
    }
}
