//! `ship` binary: `cat access.log | ship apache.access`, `ship --follow PATH=CATEGORY`,
//! `ship run --category CAT -- COMMAND`, `ship rotatelogs`. Parses the command line, sets up
//! logging, runs the mode ([`shipper::modes`]) and turns errors into exit codes.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use shipper::cli::{Cli, Cmd};

fn main() -> ExitCode {
    scribe_cli::init_logging("warn");
    let cli = Cli::parse();
    if let Some(Cmd::Rotatelogs(args)) = cli.command {
        // Synchronous: a pipe in, files out; no runtime needed.
        return match shipper::rotatelogs::run(args) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => {
                eprintln!("ship rotatelogs: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let result = tokio::runtime::Runtime::new()
        .context("starting runtime")
        .and_then(|rt| rt.block_on(shipper::modes::dispatch(cli)));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ship: {e:#}");
            ExitCode::FAILURE
        }
    }
}
