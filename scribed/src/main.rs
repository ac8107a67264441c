//! `scribed` binary: parses flags, sets up logging and signals, and runs the server.

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    scribe_cli::init_logging("info");
    let config = scribed::Config::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        scribed::shutdown::on_signals(shutdown.clone())?;
        scribed::run(config, shutdown).await
    })
}
