//! The on-disk layout of the category archive, as Scribe's file store wrote it:
//!
//! ```text
//! <data-dir>/<category>/<category>_00000
//! <data-dir>/<category>/<category>_00001
//! <data-dir>/<category>/<category>_current -> <category>_00001   (relative symlink)
//! ```
//!
//! Suffixes are zero-padded to five digits and keep growing past 99999 (six digits and more),
//! so they must be compared as numbers, never as strings.

use std::io;
use std::path::{Path, PathBuf};

use crate::category::Category;

/// Directory holding one category's files.
pub fn category_dir(data_dir: &Path, category: &Category) -> PathBuf {
    data_dir.join(category.as_str())
}

/// File name of the `suffix`-th file of a category.
pub fn file_name(category: &Category, suffix: u64) -> String {
    format!("{category}_{suffix:05}")
}

/// Name of the symlink to the newest file.
pub fn current_link_name(category: &Category) -> String {
    format!("{category}_current")
}

/// The suffix of `name` if it is one of `category`'s numbered files.
pub fn parse_suffix(category: &Category, name: &str) -> Option<u64> {
    let digits = name.strip_prefix(category.as_str())?.strip_prefix('_')?;
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The numbered files of a category, oldest (lowest suffix) first. A missing directory is an
/// empty archive.
pub fn list_files(data_dir: &Path, category: &Category) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = category_dir(data_dir, category);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(suffix) = name.to_str().and_then(|n| parse_suffix(category, n)) {
            files.push((suffix, entry.path()));
        }
    }
    files.sort_by_key(|(s, _)| *s);
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> Category {
        s.parse().unwrap()
    }

    #[test]
    fn names_follow_scribe() {
        assert_eq!(file_name(&cat("test"), 0), "test_00000");
        assert_eq!(file_name(&cat("test"), 123456), "test_123456");
        assert_eq!(current_link_name(&cat("a.b")), "a.b_current");
    }

    #[test]
    fn suffixes_parse_numerically() {
        let c = cat("web");
        assert_eq!(parse_suffix(&c, "web_00007"), Some(7));
        assert_eq!(parse_suffix(&c, "web_100000"), Some(100000));
        assert_eq!(parse_suffix(&c, "web_current"), None);
        assert_eq!(parse_suffix(&c, "web_0001"), None);
        assert_eq!(parse_suffix(&c, "webx_00001"), None);
        assert_eq!(parse_suffix(&c, "web_00001.tmp"), None);
    }

    #[test]
    fn list_sorts_by_number() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("web");
        std::fs::create_dir(d.path().join("web")).unwrap();
        for n in [
            "web_99999",
            "web_100000",
            "web_00002",
            "web_current",
            "other",
        ] {
            std::fs::write(d.path().join("web").join(n), b"").unwrap();
        }
        let got: Vec<u64> = list_files(d.path(), &c)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, vec![2, 99999, 100000]);
        assert!(list_files(d.path(), &cat("none")).unwrap().is_empty());
    }
}
