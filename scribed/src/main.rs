//! `scribed` binary: parses flags, loads the config, sets up logging and signals, runs.

use std::process::ExitCode;

use clap::Parser;
use scribed::{Args, Settings};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    scribe_cli::init_logging("info");
    let args = Args::parse();
    let settings = match Settings::load(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scribed: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.check_config {
        println!(
            "{}: OK ({} store block{})",
            path.display(),
            settings.stores.len(),
            if settings.stores.len() == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    // Like Scribe, raise the descriptor limit to what the system allows: every connection and
    // every open category file needs one. The file store keeps half as its budget.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => scribed::stores::file::set_open_file_budget(limit),
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}"),
    }
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                scribe_cli::cancel_on_signals(shutdown.clone(), "finishing in-flight batches")?;
                scribed::run(args, settings, shutdown).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scribed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
