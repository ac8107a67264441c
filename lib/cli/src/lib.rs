//! Plumbing shared by the pipeline's binaries (`scribed`, `ship`, `tailgate`, `logq`): logging
//! setup, the size syntax (`64K`, `1G`) their flags take, the size and duration values their
//! config files take ([`Size`], [`Dur`]), SIGINT/SIGTERM handling ([`cancel_on_signals`]), and
//! [`RateLimitedWarn`] for what a peer can provoke over and over. (Crash-safe file writes live
//! in `scribe-fs`, which the libraries use too.)

#![forbid(unsafe_code)]

pub mod signals;
pub mod size;
pub mod values;
pub mod warn;

pub use signals::cancel_on_signals;
pub use size::parse_size;
pub use values::{Dur, Size};
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
