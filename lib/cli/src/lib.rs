//! Plumbing shared by the pipeline's binaries (`scribed`, `ship`, `tailgate`, `logq`): logging
//! setup and the size syntax (`64K`, `1G`) their flags and config files accept. (Crash-safe
//! file writes live in `scribe-fs`, which the libraries use too.)

#![forbid(unsafe_code)]

pub mod size;
pub mod warn;

pub use size::parse_size;
pub use warn::RateLimitedWarn;

/// Sends `tracing` output to stderr, filtered by `RUST_LOG` (default: `default_filter`), with
/// colours only when stderr is a terminal.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
}
