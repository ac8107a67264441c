//! Runs a parsed command line: hands it to its command and returns the process exit status
//! (grep's convention: 0 something selected, 1 nothing selected; errors are returned as `Err`
//! and exit 2). Each command lives beside what it runs: [`crate::grep::run_grep`],
//! [`crate::cut::run_cut`], and `where`/`print`/`count`/`stats` in [`crate::records`].

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::{cut, fields, grep, input, records};

pub fn run(cli: Cli) -> Result<i32> {
    let quiet = matches!(&cli.cmd, Command::Grep(a) if a.quiet);
    let is_cut = matches!(&cli.cmd, Command::Cut(_));
    // GNU cut's every failure, usage or input, is status 1.
    let failure = if is_cut { 1 } else { 2 };
    let code = match run_command(cli) {
        Err(e) if is_cut && !is_broken_pipe(&e) => {
            eprintln!("logq: cut: {e:#}");
            return Ok(failure);
        }
        r => r?,
    };
    // An input that could not be read was reported and skipped; the status still says so
    // (except `grep -q` that found a match: 0, like GNU grep).
    if input::had_input_errors() && !(quiet && code == 0) {
        return Ok(failure);
    }
    Ok(code)
}

/// `count`/`stats`: over the inputs, or live (`--follow`), bucket by bucket.
fn run_stats(aggs: &str, a: crate::cli::StatsArgs) -> Result<i32> {
    if a.input.follow {
        let plan = records::stats_plan(aggs, &a)?;
        let src = crate::source::Source::new(&a.input, &a.files)?;
        return crate::live::run_live_stats(&plan, &src, &a);
    }
    records::run_stats(aggs, a)
}

/// A closed pipe (`logq ... | head`) is how pipelines end, not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run_command(cli: Cli) -> Result<i32> {
    // `-F` is `--follow` outside grep.
    match cli.cmd {
        Command::Grep(a) => grep::run_grep(a),
        Command::Cut(mut a) => {
            a.input.follow |= a.follow_short;
            cut::run_cut(a)
        }
        Command::Where(mut a) => {
            a.input.follow |= a.follow_short;
            records::run_where(a)
        }
        Command::Print(mut a) => {
            a.input.follow |= a.follow_short;
            records::run_print(a)
        }
        Command::Count(mut a) => {
            a.input.follow |= a.follow_short;
            run_stats("count", a)
        }
        Command::Fields(a) => fields::run_fields(a),
        Command::Stats(mut a) => {
            a.stats.input.follow |= a.stats.follow_short;
            run_stats(&a.aggs, a.stats)
        }
    }
}
