//! Glob discovery: which paths a set of include/exclude patterns names right now.
//!
//! Patterns are shell globs (`*`, `?`, `[...]`, `**` for any depth) expanded with the `glob`
//! crate; excludes are matched against every expanded path. A pattern without glob
//! characters names its path whether or not it exists yet (a file that appears later is
//! followed from its beginning). Expansion is re-run by the caller (say once a second, or
//! sooner on a change notification): directories that appear later are found on the next
//! scan, as with Vector's and Fluent Bit's periodic re-globbing. Only regular files (or
//! symlinks to them) are returned.

use std::path::{Path, PathBuf};

use crate::error::FollowError;

/// A compiled set of include and exclude patterns.
#[derive(Debug, Clone)]
pub struct Globs {
    include: Vec<String>,
    /// Include patterns without glob characters: watched even before they exist.
    literal: Vec<PathBuf>,
    exclude: Vec<glob::Pattern>,
}

/// Whether `s` contains a character the `glob` crate treats specially.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Globs {
    /// Checks every pattern; an invalid one is an error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Globs, FollowError> {
        let bad = |p: &str, e: glob::PatternError| FollowError::Pattern {
            pattern: p.to_string(),
            reason: e.msg.to_string(),
        };
        let mut globs = Globs {
            include: Vec::new(),
            literal: Vec::new(),
            exclude: Vec::new(),
        };
        for p in include {
            if is_glob(p) {
                glob::Pattern::new(p).map_err(|e| bad(p, e))?;
                globs.include.push(p.clone());
            } else {
                globs.literal.push(PathBuf::from(p));
            }
        }
        for p in exclude {
            globs
                .exclude
                .push(glob::Pattern::new(p).map_err(|e| bad(p, e))?);
        }
        Ok(globs)
    }

    /// Whether an exclude pattern matches `path`.
    pub fn excluded(&self, path: &Path) -> bool {
        self.exclude.iter().any(|p| p.matches_path(path))
    }

    /// Every path the patterns name now, sorted, without excluded ones. Unreadable
    /// directories met during expansion are skipped (the next scan tries again).
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .literal
            .iter()
            .filter(|p| !self.excluded(p))
            .cloned()
            .collect();
        for pattern in &self.include {
            // Validated in `new`, so expansion cannot fail on the pattern itself.
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if !self.excluded(&path) && path.metadata().is_ok_and(|m| m.is_file()) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The directories whose changes can add or change a matching path: each pattern's
    /// longest leading part without glob characters (for change notifications).
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        let literal_dirs = self.literal.iter().filter_map(|p| p.parent());
        let glob_roots = self.include.iter().map(|p| {
            let mut root = PathBuf::new();
            for part in Path::new(p).components() {
                if is_glob(&part.as_os_str().to_string_lossy()) {
                    break;
                }
                root.push(part);
            }
            root
        });
        for r in literal_dirs.map(Path::to_path_buf).chain(glob_roots) {
            let r = if r.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                r
            };
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn expands_includes_minus_excludes_and_keeps_literals() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        for f in ["a.log", "b.log", "c.txt", "old.log", "sub/d.log"] {
            fs::write(d.join(f), "x\n").unwrap();
        }
        fs::create_dir(d.join("dir.log")).unwrap(); // a directory is never followed
        let g = Globs::new(
            &s(&[
                &format!("{}/*.log", d.display()),
                &format!("{}/**/d.log", d.display()),
                &format!("{}/later.txt", d.display()),
            ]),
            &s(&[&format!("{}/old.*", d.display())]),
        )
        .unwrap();
        let names: Vec<String> = g
            .scan()
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.log", "b.log", "later.txt", "sub/d.log"]);
        assert_eq!(g.roots(), vec![d.to_path_buf()]);
        fs::write(d.join("e.log"), "y\n").unwrap();
        assert!(g.scan().contains(&d.join("e.log")), "a new file is found");
    }

    #[test]
    fn invalid_pattern_is_an_error_naming_it() {
        let e = Globs::new(&s(&["/var/log/[a.log"]), &[]).unwrap_err();
        assert!(e.to_string().contains("[a.log"), "{e}");
    }
}
