//! The command line of Apache `rotatelogs` (2.4.56+, as Debian ships it), plus `ship`'s
//! extensions as long options.
//!
//! `logfile` is followed by one to three specs, read as `rotatelogs.c` reads them: an argument
//! with a unit letter is the size limit (once); otherwise the LAST argument, when a time or a
//! size came before it, is the UTC offset in minutes; anything else is the rotation time in
//! seconds (once). So `5M 60` means "5 MiB, offset 60 minutes", exactly as Apache reads it.
//! Apache's `atoi` accepts junk (`10KB` is 10 bytes there, `abc` is 0); we reject it with a
//! message instead, since a silently wrong limit is worse than a refused start.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::naming::Zone;
use super::writer::RotateOptions;

/// `ship rotatelogs`: a drop-in for Apache's rotatelogs that never drops a line.
///
/// Reads standard input (bytes) and writes it to LOGFILE, starting a new file every
/// ROTATIONTIME seconds (aligned to multiples of it) and/or when the file exceeds FILESIZE.
/// A `%` in LOGFILE makes it a strftime(3) pattern; otherwise the interval start is appended
/// as `.NNNNNNNNNN` (Unix seconds, adjusted by the UTC offset).
#[derive(Debug, Clone, clap::Args)]
pub struct RotatelogsArgs {
    /// Use local time (TZ) instead of UTC for intervals and file names.
    #[arg(short = 'l')]
    pub local_time: bool,

    /// Keep a hard link LINKNAME to the current file (for `tail -F`).
    #[arg(short = 'L', value_name = "LINKNAME")]
    pub link: Option<PathBuf>,

    /// Run PROGRAM NEWFILE [OLDFILE] whenever a file is opened (not waited for).
    #[arg(short = 'p', value_name = "PROGRAM")]
    // This doc comment is the --help text, where the brackets mean optional, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    pub program: Option<PathBuf>,

    /// Open the log file at start instead of at the first input.
    #[arg(short = 'f')]
    pub force_open: bool,

    /// Create the parent directories of each log file.
    #[arg(short = 'D')]
    pub create_dirs: bool,

    /// Truncate the log file instead of rotating (no suffix is added).
    #[arg(short = 't')]
    pub truncate: bool,

    /// Truncate every log file opened by a rotation, but not the first one.
    #[arg(short = 'T')]
    pub truncate_rotated: bool,

    /// Describe the configuration and every open and close on stderr.
    #[arg(short = 'v')]
    pub verbose: bool,

    /// Copy the input to stdout too.
    #[arg(short = 'e')]
    pub echo: bool,

    /// With a rotation time, create a file for each interval even without input.
    #[arg(short = 'c')]
    pub create_empty: bool,

    /// Cycle through NUMBER-OF-FILES names: LOGFILE, LOGFILE.1, ... (overwriting).
    #[arg(short = 'n', value_name = "NUMBER-OF-FILES", value_parser = clap::value_parser!(u32).range(1..))]
    pub num_files: Option<u32>,

    /// (ship) gzip each closed file in the background (FILE -> FILE.gz).
    #[arg(long)]
    pub gzip: bool,

    /// (ship) After each rotation delete all but the N newest closed files of this log
    /// (by modification time; with or without .gz). Needs a pattern whose directory part has
    /// no `%`; not with -n or -t.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// (ship) Do not fsync a file before closing it at rotation.
    #[arg(long)]
    pub no_fsync: bool,

    /// (ship) How long to wait between attempts when a write fails (e.g. disk full); input is
    /// held, never dropped, until the write succeeds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_interval: Duration,

    /// Log file name or strftime pattern.
    #[arg(value_name = "LOGFILE")]
    pub logfile: OsString,

    /// ROTATIONTIME (seconds) and/or FILESIZE (with B, K, M or G), then an optional
    /// offset in minutes from UTC.
    #[arg(value_name = "ROTATIONTIME|FILESIZE [OFFSET]", num_args = 1..=3, required = true, allow_negative_numbers = true)]
    pub specs: Vec<String>,
}

/// A command line that parses but cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("invalid rotation size {0:?}: want a positive number followed by one of B, K, M, G")]
    Size(String),
    #[error("rotation size parameter allowed only once")]
    SizeTwice,
    #[error("invalid rotation time {0:?}: want a positive number of seconds")]
    Time(String),
    #[error("rotation time parameter allowed only once")]
    TimeTwice,
    #[error("invalid UTC offset {0:?}: want minutes, e.g. -300")]
    Offset(String),
    #[error("UTC offset parameter is not valid with -l")]
    OffsetWithLocal,
    #[error("no rotation time or size specified")]
    NoRotation,
    #[error("--keep needs a log file pattern without % in its directory part")]
    KeepDirPattern,
    #[error("--keep does not apply to -n (circular names) or -t (one truncated file)")]
    KeepWithCircular,
}

/// Parsed `ROTATIONTIME|FILESIZE [OFFSET]` arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Specs {
    pub period: Option<u32>,
    pub max_size: Option<u64>,
    pub offset_minutes: Option<i32>,
}

/// Reads the specs after the log file name (see the module doc for the rules).
pub fn parse_specs(specs: &[String]) -> Result<Specs, ArgsError> {
    let mut out = Specs::default();
    for (i, arg) in specs.iter().enumerate() {
        let last = i + 1 == specs.len();
        if let Some(unit) = arg
            .bytes()
            .position(|b| matches!(b, b'B' | b'K' | b'M' | b'G'))
        {
            if out.max_size.is_some() {
                return Err(ArgsError::SizeTwice);
            }
            out.max_size = Some(parse_size_spec(arg, unit)?);
        } else if last && (out.max_size.is_some() || out.period.is_some()) {
            let minutes: i32 = arg.parse().map_err(|_| ArgsError::Offset(arg.clone()))?;
            // A day either way is the widest real offset; more is a typo.
            if minutes.abs() > 24 * 60 {
                return Err(ArgsError::Offset(arg.clone()));
            }
            out.offset_minutes = Some(minutes);
        } else {
            if out.period.is_some() {
                return Err(ArgsError::TimeTwice);
            }
            match arg.parse::<u32>() {
                Ok(secs) if secs > 0 && secs <= i32::MAX as u32 => out.period = Some(secs),
                _ => return Err(ArgsError::Time(arg.clone())),
            }
        }
    }
    if out.period.is_none() && out.max_size.is_none() {
        return Err(ArgsError::NoRotation);
    }
    Ok(out)
}

fn parse_size_spec(arg: &str, unit_at: usize) -> Result<u64, ArgsError> {
    let bad = || ArgsError::Size(arg.to_owned());
    if unit_at + 1 != arg.len() {
        return Err(bad());
    }
    let mult: u64 = match arg.as_bytes()[unit_at] {
        b'B' => 1,
        b'K' => 1 << 10,
        b'M' => 1 << 20,
        _ => 1 << 30,
    };
    let n: u64 = arg[..unit_at].parse().map_err(|_| bad())?;
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(bad()),
    }
}

impl RotatelogsArgs {
    /// The writer configuration these arguments describe.
    pub fn to_options(&self) -> Result<RotateOptions, ArgsError> {
        let specs = parse_specs(&self.specs)?;
        let zone = match (self.local_time, specs.offset_minutes) {
            (true, Some(_)) => return Err(ArgsError::OffsetWithLocal),
            (true, None) => Zone::Local,
            (false, m) => Zone::Fixed(m.unwrap_or(0) * 60),
        };
        let mut o = RotateOptions::new(self.logfile.clone());
        o.period = specs.period;
        o.max_size = specs.max_size;
        o.zone = zone;
        o.link = self.link.clone();
        o.program = self.program.clone();
        o.create_dirs = self.create_dirs;
        o.truncate = self.truncate;
        o.truncate_rotated = self.truncate_rotated;
        o.num_files = self.num_files;
        o.verbose = self.verbose;
        o.gzip = self.gzip;
        o.keep = self.keep;
        o.fsync = !self.no_fsync;
        o.retry_interval = self.retry_interval;
        if o.keep.is_some() {
            let naming = o.naming();
            if !matches!(
                naming,
                super::naming::Naming::Strftime(_) | super::naming::Naming::EpochSuffix(_)
            ) {
                return Err(ArgsError::KeepWithCircular);
            }
            if super::retention::Matcher::new(&naming).is_none() {
                return Err(ArgsError::KeepDirPattern);
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(a: &[&str]) -> Result<Specs, ArgsError> {
        parse_specs(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn specs_are_read_like_rotatelogs() {
        assert_eq!(
            specs(&["86400"]).unwrap(),
            Specs {
                period: Some(86400),
                ..Specs::default()
            }
        );
        assert_eq!(specs(&["5M"]).unwrap().max_size, Some(5 << 20));
        let s = specs(&["3600", "5M", "-300"]).unwrap();
        assert_eq!(
            (s.period, s.max_size, s.offset_minutes),
            (Some(3600), Some(5 << 20), Some(-300))
        );
        // The last argument after a size is an offset, as in Apache.
        let s = specs(&["5M", "60"]).unwrap();
        assert_eq!((s.period, s.offset_minutes), (None, Some(60)));
        assert_eq!(specs(&["4G"]).unwrap().max_size, Some(4 << 30));
        assert_eq!(specs(&["10B"]).unwrap().max_size, Some(10));
    }

    #[test]
    fn junk_is_refused() {
        assert!(matches!(specs(&["10KB"]), Err(ArgsError::Size(_))));
        assert!(matches!(specs(&["0M"]), Err(ArgsError::Size(_))));
        assert!(matches!(specs(&["0"]), Err(ArgsError::Time(_))));
        assert!(matches!(specs(&["abc"]), Err(ArgsError::Time(_))));
        assert_eq!(specs(&["5M", "6M"]), Err(ArgsError::SizeTwice));
        assert_eq!(specs(&["60", "60", "1"]), Err(ArgsError::TimeTwice));
        assert!(matches!(specs(&["60", "x"]), Err(ArgsError::Offset(_))));
    }
}
