//! `ship-rotatelogs`: the same as `ship rotatelogs`, as its own executable so it can be named
//! where a path to rotatelogs is expected: `CustomLog "|/usr/bin/ship-rotatelogs ... " common`.

use std::process::ExitCode;

fn main() -> ExitCode {
    scribe_cli::init_logging("info");
    match shipper::rotatelogs::main(std::env::args_os().collect()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("ship-rotatelogs: {e:#}");
            ExitCode::from(2)
        }
    }
}
