//! From grep's patterns and flags to the matchers: GNU syntax translated ([`super::posix`]),
//! `-i`, `-w` and `-x` applied, and errors and warnings on one line each.

use grep_matcher::{Match, Matcher, NoCaptures, NoError};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};

use super::longest::Longest;
use super::posix::{translate, PatternError, Syntax};

/// What decides how patterns match.
#[derive(Debug, Clone, Default)]
pub struct PatternOptions {
    pub syntax: Syntax,
    pub ignore_case: bool,
    pub word: bool,
    pub line: bool,
}

/// Every pattern (GNU splits each at newlines), each translated to Rust syntax and wrapped
/// for `-x` (`-w` is [`WordMatcher`]'s search, not a wrapper). An empty list (`-f /dev/null`) matches nothing.
pub fn translate_all(patterns: &[String], o: &PatternOptions) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for p in patterns.iter().flat_map(|p| p.split('\n')) {
        let (mut t, warnings) = translate(p, o.syntax, o.ignore_case).map_err(|e| fail(p, &e))?;
        for w in warnings {
            eprintln!("logq: grep: warning: {w}");
        }
        if o.syntax == Syntax::Rust {
            check_rust(&t).map_err(|e| fail(p, &e))?;
        }
        if o.line {
            t = format!("^(?:{t})$");
        }
        if o.ignore_case {
            t = format!("(?i:{t})");
        }
        out.push(t);
    }
    Ok(out)
}

fn fail(pattern: &str, e: &PatternError) -> anyhow::Error {
    anyhow::anyhow!("grep: {} (pattern {pattern:?})", e.0)
}

/// A `-P` pattern's syntax error as one line (the parser's own message draws a caret
/// under the pattern on several lines).
fn check_rust(p: &str) -> Result<(), PatternError> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(p)
        .map(|_| ())
        .map_err(|e| PatternError(one_line_syntax_error(&e)))
}

fn one_line_syntax_error(e: &regex_syntax::Error) -> String {
    match e {
        regex_syntax::Error::Parse(p) => format!("{} at byte {}", p.kind(), p.span().start.offset),
        regex_syntax::Error::Translate(t) => {
            format!("{} at byte {}", t.kind(), t.span().start.offset)
        }
        other => other.to_string().lines().last().unwrap_or("").to_string(),
    }
}

/// Never matches: what an empty pattern list compiles to.
const NOTHING: &str = "[a&&b]";

/// The line selector (fast, leftmost-first).
pub fn selector(translated: &[String], eol: u8) -> anyhow::Result<RegexMatcher> {
    let mut b = RegexMatcherBuilder::new();
    // Lines never contain their terminator: lets the matcher search whole buffers safely.
    b.line_terminator(Some(eol));
    let r = match translated {
        [] => b.build(NOTHING),
        [one] => b.build(one),
        many => b.build_many(many),
    };
    r.map_err(|e| {
        let msg = e.to_string();
        let line = msg
            .lines()
            .find(|l| l.trim_start().starts_with("error:"))
            .or(msg.lines().next())
            .unwrap_or("")
            .trim();
        anyhow::anyhow!("grep: invalid pattern: {line}")
    })
}

/// The span finder for `-o` and `--color` (POSIX leftmost-longest).
pub fn spans(translated: &[String]) -> anyhow::Result<Longest> {
    let joined = if translated.is_empty() {
        NOTHING.to_string()
    } else {
        translated
            .iter()
            .map(|t| format!("(?:{t})"))
            .collect::<Vec<_>>()
            .join("|")
    };
    Longest::new(&joined).map_err(|e| anyhow::anyhow!("grep: invalid pattern: {e}"))
}

/// `-w` as GNU grep does it, as a [`Matcher`] the searcher runs: see
/// [`Longest::find_word`]. Slower than a plain regex, which a wrapper around the pattern
/// could not replace: no regex assertion treats an invalid byte as a non-word character.
pub struct WordMatcher {
    pub inner: RegexMatcher,
    longest: Longest,
    caches: std::sync::Mutex<Vec<super::longest::Caches>>,
}

impl WordMatcher {
    pub fn new(inner: RegexMatcher, translated: &[String]) -> anyhow::Result<WordMatcher> {
        Ok(WordMatcher {
            inner,
            longest: spans(translated)?,
            caches: std::sync::Mutex::new(Vec::new()),
        })
    }
}

impl Matcher for WordMatcher {
    type Captures = NoCaptures;
    type Error = NoError;

    fn find_at(&self, hay: &[u8], at: usize) -> Result<Option<Match>, NoError> {
        let pooled = self
            .caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut c = pooled.unwrap_or_else(|| self.longest.caches());
        let m = self.longest.find_word(&self.inner, &mut c, hay, at);
        self.caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(c);
        // The end of a buffer that ends a line is no position in a line.
        let eol = self.inner.line_terminator().map(|t| t.as_byte());
        let past_last_line =
            |&(s, e): &(usize, usize)| s == e && s == hay.len() && s > 0 && Some(hay[s - 1]) == eol;
        Ok(m.filter(|m| !past_last_line(m))
            .map(|(s, e)| Match::new(s, e)))
    }

    fn new_captures(&self) -> Result<NoCaptures, NoError> {
        Ok(NoCaptures::new())
    }

    fn line_terminator(&self) -> Option<grep_matcher::LineTerminator> {
        self.inner.line_terminator()
    }
}
