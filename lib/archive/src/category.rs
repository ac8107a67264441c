//! Category names: which byte strings may name a category, and therefore a directory; and
//! [`CategoryGlob`], the one glob that selects categories by name.
//!
//! Allowed: 1..=[`MAX_CATEGORY_LEN`] bytes for which [`is_category_byte`] holds
//! (`[A-Za-z0-9._-]`), except `.` and `..`. No separator can appear, so
//! `<data-dir>/<category>` always names a direct child of the data directory.
//!
//! Every binary takes these rules from here: scribed validates the categories it is sent and
//! its routing patterns with them, and tailgate subscriptions and `logq --category` select
//! categories with [`CategoryGlob`], so one pattern means the same in both.

use std::fmt;

mod glob;

pub use glob::{CategoryGlob, GlobError, MAX_GLOB_ALTERNATIVES, MAX_GLOB_DEPTH, MAX_GLOB_LEN};

/// Longest accepted category name, in bytes.
pub const MAX_CATEGORY_LEN: usize = 200;

/// Whether `b` may appear in a category name: `[A-Za-z0-9._-]`. Nothing that separates path
/// components, quotes, or needs escaping in a URL, a shell word or a metric label.
pub const fn is_category_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("empty category")]
    Empty,
    #[error("category is {0} bytes long (at most {MAX_CATEGORY_LEN})")]
    TooLong(usize),
    #[error("category contains byte {byte:#04x} at offset {offset} (allowed: A-Z a-z 0-9 . _ -)")]
    InvalidByte { byte: u8, offset: usize },
    #[error("category may not be '.' or '..'")]
    DotName,
}

/// A validated category name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    pub fn new(name: &[u8]) -> Result<Category, CategoryError> {
        if name.is_empty() {
            return Err(CategoryError::Empty);
        }
        if name.len() > MAX_CATEGORY_LEN {
            return Err(CategoryError::TooLong(name.len()));
        }
        if let Some(offset) = name.iter().position(|&b| !is_category_byte(b)) {
            return Err(CategoryError::InvalidByte {
                byte: name[offset],
                offset,
            });
        }
        if name == b"." || name == b".." {
            return Err(CategoryError::DotName);
        }
        // Every byte was checked to be ASCII above.
        Ok(Category(String::from_utf8_lossy(name).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Category {
    type Err = CategoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::new(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_scribe_style_names() {
        for ok in [
            "apache.access",
            "a",
            "web-01_errors",
            "...",
            "a..b",
            &"x".repeat(200),
        ] {
            assert!(Category::new(ok.as_bytes()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_hostile_names() {
        assert_eq!(Category::new(b""), Err(CategoryError::Empty));
        assert_eq!(Category::new(b"."), Err(CategoryError::DotName));
        assert_eq!(Category::new(b".."), Err(CategoryError::DotName));
        assert_eq!(
            Category::new("x".repeat(201).as_bytes()),
            Err(CategoryError::TooLong(201))
        );
        for bad in [
            &b"../etc"[..],
            b"a/b",
            b"/abs",
            b"a\0b",
            b"a b",
            b"\xff",
            b"a\\b",
        ] {
            assert!(
                matches!(Category::new(bad), Err(CategoryError::InvalidByte { .. })),
                "{bad:?}"
            );
        }
    }
}
