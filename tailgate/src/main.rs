use clap::Parser;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    scribe_cli::init_logging("info");
    let args = tailgate::Args::parse();
    let shutdown = CancellationToken::new();
    scribe_cli::cancel_on_signals(shutdown.clone(), "shutting down")?;
    tailgate::run(args, shutdown).await
}
