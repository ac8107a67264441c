//! `logq`: see docs/logq.md. Parses the command line and hands it to `logq::app::run`.

use clap::Parser;

fn main() {
    scribe_cli::init_logging("warn");
    let args = logq::cli::expand_context_shorthand(std::env::args_os().collect());
    let cli = logq::cli::Cli::parse_from(args);
    let code = match logq::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`logq ... | head`) is how pipelines end, not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                0
            } else {
                eprintln!("logq: {e:#}");
                2
            }
        }
    };
    std::process::exit(code);
}
