//! `logq`: see docs/logq.md. Parses the command line and hands it to `logq::app::run`.

use clap::Parser;

fn main() {
    scribe_cli::init_logging("warn");
    let args = logq::cli::expand_context_shorthand(std::env::args_os().collect());
    let args = logq::custom::join_parse_args(args);
    let is_cut = args.get(1).is_some_and(|a| a == "cut");
    let cli = match logq::cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // GNU cut's usage errors are status 1; grep's (and ours) are 2.
            let usage = e.use_stderr();
            std::process::exit(match (usage, is_cut) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            });
        }
    };
    let code = match logq::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if logq::app::is_broken_pipe(&e) {
                0
            } else {
                eprintln!("logq: {e:#}");
                2
            }
        }
    };
    logq::input::report_archive_stats();
    std::process::exit(code);
}
