//! Which file a rotation opens: the interval arithmetic and the three naming schemes of Apache
//! `rotatelogs` (strftime pattern, `.NNNNNNNNNN` epoch suffix, `-n` circular numbers).
//!
//! Times here are "adjusted seconds", as in `rotatelogs.c`: Unix seconds plus the UTC offset
//! (the fixed `offset` argument, or with `-l` the local zone's offset at that instant). Interval
//! boundaries are multiples of the period in adjusted seconds, so `86400 -l` rotates at local
//! midnight, and the epoch suffix of a `-l` file is the adjusted value, not the Unix time —
//! Debian's rotatelogs 2.4 prints exactly that, and drop-in users' cron scripts rely on it.
//!
//! strftime goes through the C library's `strftime(3)` (and `gmtime_r`/`localtime_r` to break
//! the time down) because that is what rotatelogs uses via APR: every conversion glibc knows
//! (`%e`, `%s`, `%Z`, `%G`, ...) yields the same bytes, in the C locale rotatelogs runs in.
//! chrono's formatter differs in details and fails on unknown conversions.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// Longest file name a pattern may expand to (Linux `PATH_MAX`).
const MAX_NAME: usize = 4096;

/// Why a file name could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("log file pattern contains a NUL byte")]
    Nul,
    #[error("log file pattern {pattern:?} expands to more than {MAX_NAME} bytes (or to nothing)")]
    TooLong { pattern: OsString },
    #[error("time {0} cannot be broken down into a calendar date")]
    Time(i64),
}

/// How the time is adjusted before interval arithmetic and naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC in seconds (the optional `offset` argument, in minutes there).
    Fixed(i32),
    /// The local zone (`-l`; `TZ` or `/etc/localtime`), whose offset may change with DST.
    Local,
}

impl Zone {
    /// The offset from UTC, in seconds, at Unix time `unix`.
    pub fn offset_at(self, unix: i64) -> i32 {
        match self {
            Zone::Fixed(off) => off,
            Zone::Local => local_tm(unix).map(|tm| tm.tm_gmtoff as i32).unwrap_or(0),
        }
    }

    /// Unix seconds adjusted by this zone's offset, and the offset used.
    pub fn adjust(self, unix: i64) -> (i64, i32) {
        let off = self.offset_at(unix);
        (unix + i64::from(off), off)
    }
}

/// Start of the interval of length `period` containing adjusted time `now`, and its end.
/// Apache uses C division, which truncates toward zero; times before 1970 are not a concern,
/// but `div_euclid` keeps a negative offset near the epoch well defined.
pub fn interval(now: i64, period: u32) -> (i64, i64) {
    let p = i64::from(period.max(1));
    let start = now.div_euclid(p) * p;
    (start, start + p)
}

/// The naming scheme, chosen as rotatelogs does: a `%` in the log file name means strftime;
/// otherwise `-t` keeps the bare name, `-n` cycles numbered names, and the default appends the
/// interval start (or, for size rotation, the time of opening) as `.%010d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    Strftime(OsString),
    Bare(OsString),
    Circular { base: OsString, files: u32 },
    EpochSuffix(OsString),
}

impl Naming {
    pub fn new(pattern: &OsStr, truncate: bool, num_files: Option<u32>) -> Naming {
        let p = normalize(pattern);
        let pattern = p.as_os_str();
        if pattern.as_bytes().contains(&b'%') {
            Naming::Strftime(p)
        } else if truncate {
            Naming::Bare(p)
        } else if let Some(files) = num_files {
            Naming::Circular {
                base: p,
                files: files.max(1),
            }
        } else {
            Naming::EpochSuffix(p)
        }
    }

    /// The file for a log starting at adjusted time `start` (with `offset` the zone offset used
    /// to adjust it), and for circular naming the slot after `prev_slot`. Returns the path and
    /// the slot taken (always `None` unless circular).
    pub fn name(
        &self,
        start: i64,
        offset: i32,
        zone: Zone,
        prev_slot: Option<u32>,
    ) -> Result<(PathBuf, Option<u32>), NameError> {
        Ok(match self {
            Naming::Strftime(pattern) => {
                // With -l, rotatelogs breaks down (start - offset) in local time, i.e. the
                // real instant; otherwise it breaks down the adjusted value as if it were UTC.
                let tm = match zone {
                    Zone::Local => local_tm(start - i64::from(offset)),
                    Zone::Fixed(_) => utc_tm(start),
                }
                .ok_or(NameError::Time(start))?;
                (PathBuf::from(strftime(pattern, &tm)?), None)
            }
            Naming::Bare(p) => (PathBuf::from(p), None),
            Naming::Circular { base, files } => {
                let slot = match prev_slot {
                    Some(s) if s + 1 < *files => s + 1,
                    _ => 0,
                };
                let mut name = base.clone();
                if slot > 0 {
                    name.push(format!(".{slot}"));
                }
                (PathBuf::from(name), Some(slot))
            }
            Naming::EpochSuffix(base) => {
                let mut name = base.clone();
                name.push(format!(".{start:010}"));
                (PathBuf::from(name), None)
            }
        })
    }
}

/// Cleans a path lexically as rotatelogs does (through `apr_filepath_merge`): `.` segments
/// and repeated slashes go, `..` removes the segment before it (a leading `..` of a relative
/// path stays). So `./access` opens `access.NNNNNNNNNN`, and `-p` programs get that name.
pub fn normalize(path: &OsStr) -> OsString {
    let bytes = path.as_bytes();
    let absolute = bytes.first() == Some(&b'/');
    let mut segs: Vec<&[u8]> = Vec::new();
    let mut dir_at_end = bytes.ends_with(b"/");
    for seg in bytes.split(|&b| b == b'/') {
        dir_at_end |= seg == b"." || seg == b"..";
        match seg {
            b"" | b"." => {}
            b".." => match segs.last() {
                Some(&last) if last != b".." => {
                    segs.pop();
                }
                _ if absolute => {}
                _ => segs.push(seg),
            },
            _ => {
                dir_at_end = false;
                segs.push(seg);
            }
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&segs.join(&b'/'));
    if dir_at_end && !segs.is_empty() {
        out.push(b'/');
    }
    OsString::from_vec(out)
}

fn utc_tm(t: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(t).ok()?;
    // SAFETY: gmtime_r only writes the tm we hand it; a zeroed tm is a valid initial value.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        (!libc::gmtime_r(&t, &mut tm).is_null()).then_some(tm)
    }
}

fn local_tm(t: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(t).ok()?;
    // SAFETY: as above. localtime_r reads the zone set up by tzset (TZ or /etc/localtime);
    // it is documented thread-safe as long as nobody changes TZ concurrently, which this
    // program never does.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        (!libc::localtime_r(&t, &mut tm).is_null()).then_some(tm)
    }
}

/// Loads the local zone once; `localtime_r`, unlike `localtime`, need not do it itself.
pub fn init_local_zone() {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset takes no arguments and only initialises libc's zone state.
    unsafe { tzset() }
}

fn strftime(pattern: &OsStr, tm: &libc::tm) -> Result<OsString, NameError> {
    let fmt = CString::new(pattern.as_bytes()).map_err(|_| NameError::Nul)?;
    if pattern.is_empty() {
        return Ok(OsString::new());
    }
    let mut buf = vec![0u8; MAX_NAME + 1];
    // SAFETY: buf is writable for buf.len() bytes, fmt is NUL-terminated, tm is initialised;
    // strftime writes at most buf.len() bytes including the terminating NUL.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            fmt.as_ptr(),
            tm as *const libc::tm,
        )
    };
    // 0 means "did not fit" (or an empty result, e.g. a pattern of only "%p" in some locales;
    // an empty file name is unusable either way).
    if n == 0 {
        return Err(NameError::TooLong {
            pattern: pattern.to_owned(),
        });
    }
    buf.truncate(n);
    Ok(OsString::from_vec(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &Naming, start: i64) -> String {
        let (p, _) = n.name(start, 0, Zone::Fixed(0), None).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn intervals_align_to_multiples_of_the_period() {
        assert_eq!(
            interval(1_795_420_830, 3600),
            (1_795_420_800, 1_795_424_400)
        );
        assert_eq!(interval(1_795_420_800, 60), (1_795_420_800, 1_795_420_860));
        assert_eq!(interval(-30, 60), (-60, 0));
    }

    #[test]
    fn schemes_follow_rotatelogs_precedence() {
        let pat = OsStr::new("/l/access.%Y%m%d");
        assert!(matches!(
            Naming::new(pat, true, Some(3)),
            Naming::Strftime(_)
        ));
        let bare = OsStr::new("/l/access");
        assert!(matches!(Naming::new(bare, true, Some(3)), Naming::Bare(_)));
        assert!(matches!(
            Naming::new(bare, false, Some(3)),
            Naming::Circular { files: 3, .. }
        ));
        assert!(matches!(
            Naming::new(bare, false, None),
            Naming::EpochSuffix(_)
        ));
    }

    #[test]
    fn paths_are_cleaned_like_apr() {
        let n = |p: &str| normalize(OsStr::new(p)).to_string_lossy().into_owned();
        assert_eq!(n("./p"), "p");
        assert_eq!(n("sub/./p"), "sub/p");
        assert_eq!(n("/tmp/d/sub/../q"), "/tmp/d/q");
        assert_eq!(n(".//r"), "r");
        assert_eq!(n("../d/s"), "../d/s");
        assert_eq!(n("./%Y"), "%Y");
        assert_eq!(n("./a/../b"), "b");
        assert_eq!(n("a/../../x"), "../x");
        assert_eq!(n("/../tmp/y"), "/tmp/y");
        assert_eq!(n("sub//z"), "sub/z");
        assert_eq!(n("./sub/./w/.."), "sub/");
    }

    #[test]
    fn epoch_suffix_is_ten_digits() {
        let n = Naming::new(OsStr::new("log"), false, None);
        assert_eq!(name(&n, 1_795_420_800), "log.1795420800");
        assert_eq!(name(&n, 86_400), "log.0000086400");
    }

    #[test]
    fn strftime_uses_the_c_library() {
        let n = Naming::new(OsStr::new("a-%Y-%m-%d_%H:%M:%S.%j.%e.%%"), false, None);
        // 2026-11-23 08:00:30 UTC, a Monday, day 327.
        assert_eq!(name(&n, 1_795_420_830), "a-2026-11-23_08:00:30.327.23.%");
    }

    #[test]
    fn circular_names_cycle_through_n_slots() {
        let n = Naming::new(OsStr::new("log"), false, Some(3));
        let mut slot = None;
        let mut names = Vec::new();
        for _ in 0..5 {
            let (p, s) = n.name(0, 0, Zone::Fixed(0), slot).unwrap();
            slot = s;
            names.push(p.to_string_lossy().into_owned());
        }
        assert_eq!(names, ["log", "log.1", "log.2", "log", "log.1"]);
    }

    #[test]
    fn too_long_or_nul_patterns_are_errors() {
        let long = OsString::from("%Y".repeat(3000));
        let n = Naming::Strftime(long);
        assert!(matches!(
            n.name(0, 0, Zone::Fixed(0), None),
            Err(NameError::TooLong { .. })
        ));
        let nul = Naming::Strftime(OsString::from("a%Y\0b"));
        assert!(matches!(
            nul.name(0, 0, Zone::Fixed(0), None),
            Err(NameError::Nul)
        ));
    }
}
