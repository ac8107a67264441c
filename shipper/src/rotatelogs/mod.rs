//! `ship rotatelogs`: a drop-in replacement for Apache's `rotatelogs` that loses nothing.
//!
//! Same command line, same file names, same rotation instants as Debian's `rotatelogs`
//! (apache2-utils 2.4), so `CustomLog "|/usr/bin/ship-rotatelogs -l /var/log/x.%Y%m%d 86400"`
//! behaves as before — except that a failed write (disk full) waits and retries instead of
//! truncating the file and throwing lines away, lines are never split between two files, and
//! there are opt-in extras: gzip of closed files, keep-N, and (on by default) fsync at rotation.
//!
//! - [`args`]: the command line ([`RotatelogsArgs`], a `clap::Args` to embed as a subcommand).
//! - [`naming`]: interval arithmetic and file names (strftime via libc, epoch suffix, `-n`).
//! - [`writer`]: [`RotatelogsWriter`], reusable by anything that writes rotated local files.
//! - [`hooks`]: `-L` link and `-p` program; [`retention`]: `--keep`; [`closer`]: background
//!   fsync of closed files.
//!
//! [`run`] is the stdin loop: read up to 64 KiB (as rotatelogs does), write, echo with `-e`;
//! with `-c` it polls stdin with a timeout so an empty interval still gets its file. On
//! SIGTERM, SIGINT or SIGHUP it empties the pipe before exiting ([`signals`]).
//! Exit codes follow rotatelogs: 1 usage, 2 cannot open the first file, 3 cannot read stdin,
//! 4 cannot echo to stdout, 5 cannot poll stdin.

pub mod args;
pub mod closer;
pub mod hooks;
pub mod naming;
pub mod retention;
pub mod signals;
pub mod writer;
#[cfg(test)]
mod writer_tests;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub use args::{ArgsError, RotatelogsArgs};
pub use closer::LogFile;
pub use naming::Zone;
pub use writer::{FsOpener, Opener, RotateError, RotateOptions, RotatelogsWriter, WriterStats};

/// Bytes asked of each read of stdin; rotatelogs' BUFSIZE. Size rotation is checked per read,
/// so the same buffer size gives the same files.
const READ_SIZE: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(name = "ship-rotatelogs", version)]
struct Cli {
    #[command(flatten)]
    args: RotatelogsArgs,
}

/// Entry point of the standalone `ship-rotatelogs` binary: `argv` includes the program name.
/// Returns the process exit code.
pub fn main(argv: Vec<OsString>) -> anyhow::Result<i32> {
    match Cli::try_parse_from(argv) {
        Ok(cli) => run(cli.args),
        Err(e) => {
            let _ = e.print();
            // rotatelogs exits 1 on a usage error; help and version are not errors.
            Ok(if e.use_stderr() { 1 } else { 0 })
        }
    }
}

/// Writer options from a rotatelogs command line without the program name, e.g. the words of
/// `-l logs/app.%Y%m%d 86400` (for `ship run --local`). `-e`, `-f` and `-c` are accepted but
/// concern the stdin loop, not the writer. Errors are the messages a user should see.
pub fn options_from_words<I, S>(words: I) -> Result<RotateOptions, String>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let argv =
        std::iter::once(OsString::from("rotatelogs")).chain(words.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
    cli.args.to_options().map_err(|e| e.to_string())
}

/// Runs `ship rotatelogs` with parsed arguments on this process's stdin and stdout until
/// stdin ends. Returns the exit code (see the module doc).
pub fn run(args: RotatelogsArgs) -> anyhow::Result<i32> {
    let opts = match args.to_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ship rotatelogs: {e}");
            return Ok(1);
        }
    };
    if args.verbose {
        dump_config(&args, &opts);
    }
    // Our own descriptors for 0 and 1: unbuffered, no locking, any bytes.
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    widen_pipe(&input);
    let echo = if args.echo {
        Some(File::from(io::stdout().as_fd().try_clone_to_owned()?))
    } else {
        None
    };
    let mut writer = RotatelogsWriter::new(opts)?;
    // `input` lives until the process exits (`pump` returns the exit code).
    signals::interrupt_reads(input.as_raw_fd());
    signals::install();
    let code = pump(&mut writer, input, echo, args.force_open, args.create_empty);
    writer.close();
    Ok(code)
}

/// The read-write loop. Returns the exit code.
fn pump(
    writer: &mut RotatelogsWriter,
    mut input: File,
    mut echo: Option<File>,
    force_open: bool,
    create_empty: bool,
) -> i32 {
    if force_open {
        if let Err(e) = writer.open_now() {
            eprintln!("ship rotatelogs: {e}");
            return 2;
        }
    }
    let mut buf = vec![0u8; READ_SIZE];
    // Reads block in read(2) itself: a stop signal interrupts them (see signals). Only `-c`
    // waits in poll(2), for the end of the interval.
    let mut stopping = false;
    let mut tick_at: Option<Instant> = None;
    loop {
        if !stopping && signals::requested() {
            stopping = true;
            tracing::info!("stop signal: writing what is left in the pipe, then exiting");
            if let Err(e) = set_nonblocking(&input) {
                tracing::warn!("cannot drain stdin without blocking: {e}");
            }
        }
        if !stopping {
            // -c: when the current interval ends (before the first file: one period after
            // the start, as rotatelogs waits), rotate even without input.
            if create_empty && tick_at.is_none() {
                tick_at = writer.until_interval_end().map(|d| Instant::now() + d);
            }
            if tick_at.is_some() {
                let wait = tick_at.map_or(signals::CHECK_EVERY, |t| {
                    t.saturating_duration_since(Instant::now())
                        .min(signals::CHECK_EVERY)
                });
                match readable_within(input.as_fd(), wait) {
                    Ok(true) => {}
                    Ok(false) => {
                        if tick_at.is_some_and(|t| Instant::now() >= t) {
                            tick_at = None;
                            if let Err(e) = writer.tick() {
                                eprintln!("ship rotatelogs: {e}");
                                return 2;
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        eprintln!("ship rotatelogs: unable to poll stdin: {e}");
                        return 5;
                    }
                }
            }
        }
        let n = match input.read(&mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if stopping && e.kind() == io::ErrorKind::WouldBlock => return 0,
            // The stop signal came after the check above and made stdin non-blocking.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && signals::requested() => continue,
            Err(e) => {
                eprintln!("ship rotatelogs: reading stdin: {e}");
                return 3;
            }
        };
        if create_empty {
            // A write may have opened or rotated the file: the interval end may have moved.
            tick_at = None;
        }
        if let Err(e) = writer.write(&buf[..n]) {
            eprintln!("ship rotatelogs: {e}");
            return 2;
        }
        if let Some(out) = echo.as_mut() {
            if let Err(e) = out.write_all(&buf[..n]) {
                eprintln!("ship rotatelogs: unable to write to stdout: {e}");
                return 4;
            }
        }
    }
}

/// Bytes a pipe on stdin is asked to hold (Linux's default is 64 KiB).
const PIPE_SIZE: i32 = 1 << 20;

/// Asks for a 1 MiB pipe buffer on stdin: with the default 64 KiB the producer blocks every
/// 64 KiB and both sides are woken once per read; with room for 16 reads they mostly run
/// without waiting for each other. Reads stay 64 KiB, so the files are the same. Nothing
/// happens when stdin is not a pipe, or the system's `pipe-max-size` is lower.
fn widen_pipe(input: &File) {
    if let Err(e) = fcntl(input.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE)) {
        tracing::debug!("stdin pipe left at its size: {e}");
    }
}

fn set_nonblocking(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Waits until `fd` is readable (or at EOF) or `wait` passed. `Ok(false)` on timeout or when
/// a signal interrupted the wait.
fn readable_within(fd: BorrowedFd<'_>, wait: Duration) -> io::Result<bool> {
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], timeout) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `-v`: the configuration, in the layout of rotatelogs' `dumpConfig`.
fn dump_config(args: &RotatelogsArgs, o: &RotateOptions) {
    let yn = |b: bool| if b { "yes" } else { "no" };
    let offset = match o.zone {
        Zone::Fixed(s) => s,
        Zone::Local => 0,
    };
    eprintln!("Rotation time interval:      {:>12}", o.period.unwrap_or(0));
    eprintln!(
        "Rotation size interval:      {:>12}",
        o.max_size.unwrap_or(0)
    );
    eprintln!("Rotation time UTC offset:    {offset:>12}");
    eprintln!(
        "Rotation based on localtime: {:>12}",
        yn(o.zone == Zone::Local)
    );
    eprintln!(
        "Rotation file date pattern:  {:>12}",
        yn(matches!(o.naming(), naming::Naming::Strftime(_)))
    );
    eprintln!("Rotation file forced open:   {:>12}", yn(args.force_open));
    eprintln!("Create parent directories:   {:>12}", yn(o.create_dirs));
    eprintln!("Rotation verbose:            {:>12}", yn(o.verbose));
    eprintln!("Rotation create empty logs:  {:>12}", yn(args.create_empty));
    eprintln!("Rotation file name: {:>21}", o.pattern.to_string_lossy());
    eprintln!(
        "Post-rotation prog: {:>21}",
        o.program
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(null)".into())
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_from_a_rotatelogs_command_line() {
        let o = super::options_from_words(["-l", "-n", "3", "logs/app", "86400", "5M"]).unwrap();
        assert_eq!(o.zone, super::Zone::Local);
        assert_eq!(
            (o.period, o.max_size, o.num_files),
            (Some(86400), Some(5 << 20), Some(3))
        );
        assert!(
            super::options_from_words(["-l", "logs/app", "86400", "-300"])
                .unwrap_err()
                .contains("not valid with -l")
        );
        assert!(super::options_from_words(["logs/app"]).is_err());
    }
}
