//! `--keep N`: after a rotation, delete all but the N newest closed files of this log.
//!
//! Which files belong to the log is decided from its naming scheme: the directory is the
//! pattern's (it must not contain `%`), and a file name matches when it fits the file-name part
//! of the pattern with each strftime conversion standing for one or more bytes (or, without
//! `%`, `NAME.` followed by digits), optionally followed by `.gz`. "Newest" is by modification
//! time, which gzip preserves. The file being written is never deleted.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::naming::Naming;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Vec<u8>),
    /// One or more bytes.
    Any,
    /// One or more ASCII digits.
    Digits,
}

/// Recognises the file names a naming scheme produces.
#[derive(Debug, Clone)]
pub struct Matcher {
    dir: PathBuf,
    toks: Vec<Tok>,
}

impl Matcher {
    /// `None` for schemes without a family of names (-n, -t) or with `%` in the directory.
    pub fn new(naming: &Naming) -> Option<Matcher> {
        let (pattern, epoch) = match naming {
            Naming::Strftime(p) => (p, false),
            Naming::EpochSuffix(p) => (p, true),
            _ => return None,
        };
        let bytes = pattern.as_bytes();
        let (dir, name) = match bytes.iter().rposition(|&b| b == b'/') {
            Some(i) => (&bytes[..i.max(1)], &bytes[i + 1..]),
            None => (&b"."[..], bytes),
        };
        if dir.contains(&b'%') || name.is_empty() {
            return None;
        }
        let mut toks = Vec::new();
        let mut lit = Vec::new();
        if epoch {
            lit.extend_from_slice(name);
            lit.push(b'.');
            toks.push(Tok::Lit(lit));
            toks.push(Tok::Digits);
        } else {
            let mut i = 0;
            while i < name.len() {
                if name[i] == b'%' && i + 1 < name.len() {
                    if name[i + 1] == b'%' {
                        lit.push(b'%');
                        i += 2;
                        continue;
                    }
                    if !lit.is_empty() {
                        toks.push(Tok::Lit(std::mem::take(&mut lit)));
                    }
                    if toks.last() != Some(&Tok::Any) {
                        toks.push(Tok::Any);
                    }
                    // Skip glibc flags and width (`%-d`, `%_H`, `%010Y`, `%Ey`), then the
                    // conversion character.
                    let mut j = i + 1;
                    while j + 1 < name.len()
                        && (b"-_0^#EO".contains(&name[j]) || name[j].is_ascii_digit())
                    {
                        j += 1;
                    }
                    i = j + 1;
                    continue;
                }
                lit.push(name[i]);
                i += 1;
            }
            if !lit.is_empty() {
                toks.push(Tok::Lit(lit));
            }
        }
        Some(Matcher {
            dir: PathBuf::from(OsStr::from_bytes(dir)),
            toks,
        })
    }

    /// Whether `name` (a file name, no directory) is one of this log's files.
    pub fn matches(&self, name: &[u8]) -> bool {
        if name.ends_with(b".gz.tmp") {
            return false;
        }
        let plain = name.strip_suffix(b".gz").unwrap_or(name);
        glob(&self.toks, plain) || glob(&self.toks, name)
    }
}

fn glob(toks: &[Tok], s: &[u8]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Lit(l), rest)) => s.starts_with(l) && glob(rest, &s[l.len()..]),
        Some((Tok::Digits, rest)) => {
            let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
            (1..=n).any(|k| glob(rest, &s[k..]))
        }
        // Patterns have a handful of conversions and names are short: backtracking is cheap.
        Some((Tok::Any, rest)) => (1..=s.len()).any(|k| glob(rest, &s[k..])),
    }
}

/// Deletes all but the `keep` newest files of the log other than `current`.
pub fn keep_newest(m: &Matcher, keep: usize, current: &Path) {
    let entries = match std::fs::read_dir(&m.dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("--keep: cannot list {}: {e}", m.dir.display());
            return;
        }
    };
    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !m.matches(name.as_bytes()) {
            continue;
        }
        let path = entry.path();
        if same_file(&path, current) {
            continue;
        }
        match entry.metadata() {
            Ok(md) if md.is_file() => {
                files.push((md.modified().unwrap_or(SystemTime::UNIX_EPOCH), path))
            }
            _ => {}
        }
    }
    // Newest first; names break ties (rotatelogs' names sort by time).
    files.sort_by(|a, b| b.cmp(a));
    for (_, path) in files.into_iter().skip(keep) {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("--keep: removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("--keep: cannot remove {}: {e}", path.display()),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || a.file_name() == b.file_name()
            && a.parent().map(Path::canonicalize).and_then(Result::ok)
                == b.parent().map(Path::canonicalize).and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, truncate: bool) -> Option<Matcher> {
        Matcher::new(&Naming::new(OsStr::new(p), truncate, None))
    }

    #[test]
    fn strftime_names_match_their_pattern() {
        let mm = m("/var/log/access.%Y-%m-%d", false).unwrap();
        assert_eq!(mm.dir, Path::new("/var/log"));
        assert!(mm.matches(b"access.2026-11-23"));
        assert!(mm.matches(b"access.2026-11-23.gz"));
        assert!(!mm.matches(b"access.2026-11-23.gz.tmp"));
        assert!(!mm.matches(b"error.2026-11-23"));
        assert!(!mm.matches(b"access."));
        let pct = m("x/%_H%%h", false).unwrap();
        assert!(pct.matches(b" 8%h"));
        assert!(!pct.matches(b" 8h"));
    }

    #[test]
    fn epoch_names_match_digits_only() {
        let mm = m("logs/access", false).unwrap();
        assert!(mm.matches(b"access.1795420800"));
        assert!(mm.matches(b"access.1795420800.gz"));
        assert!(!mm.matches(b"access.bak"));
        assert!(!mm.matches(b"access"));
    }

    #[test]
    fn unusable_patterns_are_refused() {
        assert!(m("/var/%Y/access.%d", false).is_none());
        assert!(m("/var/log/access", true).is_none());
    }
}
