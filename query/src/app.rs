//! Runs a parsed command line: hands it to its command and returns the process exit status
//! (grep's convention: 0 something selected, 1 nothing selected; errors are returned as `Err`
//! and exit 2). Each command lives beside what it runs: [`crate::grep::run_grep`],
//! [`crate::cut::run_cut`], and `where`/`print`/`count`/`stats` in [`crate::records`].

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::{cut, grep, input, records};

pub fn run(cli: Cli) -> Result<i32> {
    let quiet = matches!(&cli.cmd, Command::Grep(a) if a.quiet);
    let code = run_command(cli)?;
    // An input that could not be read was reported and skipped; the status still says so
    // (except `grep -q` that found a match: 0, like GNU grep).
    if input::had_input_errors() && !(quiet && code == 0) {
        return Ok(2);
    }
    Ok(code)
}

fn run_command(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Command::Grep(a) => grep::run_grep(a),
        Command::Cut(a) => cut::run_cut(a),
        Command::Where(a) => records::run_where(a),
        Command::Print(a) => records::run_print(a),
        Command::Count(a) => records::run_stats("count", a),
        Command::Stats(a) => records::run_stats(&a.aggs, a.stats),
    }
}
