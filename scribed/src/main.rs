//! `scribed` binary: parses flags, sets up logging and signals, and runs the server.

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = scribed::Config::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        scribed::shutdown::on_signals(shutdown.clone())?;
        scribed::run(config, shutdown).await
    })
}
