//! What a subscription names: one category, or a glob over category names.
//!
//! Category names are `[A-Za-z0-9._-]` (see `scribe_archive::Category`), so the glob needs
//! only `*` (any run, including empty) and `?` (one character); no escaping or character
//! classes. That is a dozen lines, so it is written here rather than pulling in a glob crate
//! built for paths.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a category name or glob (letters, digits, '.', '_', '-', '*', '?'; 1 to 200 characters)")]
pub struct PatternError(String);

impl Pattern {
    pub fn new(s: &str) -> Result<Pattern, PatternError> {
        let ok = !s.is_empty()
            && s.len() <= 200
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*' | b'?')
            });
        if ok {
            Ok(Pattern(s.to_string()))
        } else {
            Err(PatternError(s.chars().take(64).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

/// Iterative wildcard match with single backtrack point: linear-ish, no recursion, so a
/// hostile pattern like `*a*a*a*b` cannot blow the stack or take exponential time.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let p = Pattern::new("apache.*").unwrap();
        assert!(p.matches("apache.access"));
        assert!(p.matches("apache."));
        assert!(!p.matches("apache"));
        assert!(!p.matches("xapache.access"));
        assert!(Pattern::new("a?c").unwrap().matches("abc"));
        assert!(Pattern::new("*").unwrap().matches("anything"));
        assert!(Pattern::new("*.err*").unwrap().matches("web.errors"));
        assert!(!Pattern::new("*.err").unwrap().matches("web.errors"));
        assert!(Pattern::new("exact").unwrap().matches("exact"));
        assert!(!Pattern::new("exact").unwrap().is_glob());
    }

    #[test]
    fn rejects_hostile_names() {
        for bad in ["", "../x", "a/b", "a b", "<script>"] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
        assert!(Pattern::new(&"a".repeat(201)).is_err());
    }
}
