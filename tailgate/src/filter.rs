//! A subscription's server-side filters: an include and an exclude regex (Rust `regex`, so
//! linear-time on any line) compiled within size limits, and context lines around matches
//! (like `grep -C`), kept per category across batches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use regex::bytes::{Regex, RegexBuilder};

/// Longest filter accepted, and the compiled size and lazy-DFA cache limits, so a request
/// cannot make the server build a huge automaton: one filter costs at most about
/// `REGEX_SIZE_LIMIT` plus `DFA_SIZE_LIMIT` per lazy DFA (see docs/tailgate.md).
pub const MAX_FILTER_LEN: usize = 4096;
const REGEX_SIZE_LIMIT: usize = 256 << 10;
const DFA_SIZE_LIMIT: usize = 256 << 10;
/// Most context lines asked for around a match.
pub const MAX_CONTEXT: usize = 10;
/// Most bytes of lines held per category as "before" context (longer lines are not kept).
const CONTEXT_BYTES: usize = 64 << 10;

/// A line is sent if it matches `include` (when set) and not `exclude` (when set), or as
/// context: one of the `context` lines before or after such a line. Each regex holds one of
/// the `--max-filters` slots.
pub struct Filters {
    pub include: Option<Regex>,
    pub exclude: Option<Regex>,
    pub context: usize,
    pub slots: tokio::sync::OwnedSemaphorePermit,
    /// Per category: the lines that may become "before" context, and how many "after"
    /// context lines are still due.
    state: Mutex<HashMap<Arc<str>, Context>>,
}

#[derive(Default)]
struct Context {
    before: VecDeque<(u64, Bytes)>,
    bytes: usize,
    after: usize,
}

/// What to do with one line.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Not sent.
    Skip,
    /// A match: send these context lines (older seqs, in order), then it.
    Match(Vec<(u64, Bytes)>),
    /// Sent as context after a match.
    Context,
}

impl Filters {
    pub fn new(
        include: Option<Regex>,
        exclude: Option<Regex>,
        context: usize,
        slots: tokio::sync::OwnedSemaphorePermit,
    ) -> Filters {
        Filters {
            include,
            exclude,
            context: context.min(MAX_CONTEXT),
            slots,
            state: Mutex::default(),
        }
    }

    pub fn keeps(&self, line: &[u8]) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(line))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(line))
    }

    /// Judges the next line of `category` (lines come in seq order per category).
    pub fn judge(&self, category: &Arc<str>, seq: u64, line: &Bytes) -> Verdict {
        let keep = self.keeps(line);
        if self.context == 0 {
            return if keep {
                Verdict::Match(Vec::new())
            } else {
                Verdict::Skip
            };
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let c = st.entry(category.clone()).or_default();
        if keep {
            c.after = self.context;
            c.bytes = 0;
            return Verdict::Match(c.before.drain(..).collect());
        }
        if c.after > 0 {
            c.after -= 1;
            return Verdict::Context;
        }
        if line.len() <= CONTEXT_BYTES {
            c.before.push_back((seq, line.clone()));
            c.bytes += line.len();
            while c.before.len() > self.context || c.bytes > CONTEXT_BYTES {
                if let Some((_, l)) = c.before.pop_front() {
                    c.bytes -= l.len();
                }
            }
        } else {
            c.before.clear();
            c.bytes = 0;
        }
        Verdict::Skip
    }

    /// Lines of `category` went missing (dropped, a gap): context does not reach across.
    pub fn reset(&self, category: &str) {
        if self.context > 0 {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.remove(category);
        }
    }
}

/// Compiles one filter regex within the size limits; `None` for an empty one.
pub fn compile(what: &str, f: Option<String>) -> Result<Option<Regex>, String> {
    match f.filter(|f| !f.is_empty()) {
        None => Ok(None),
        Some(f) if f.len() > MAX_FILTER_LEN => Err(format!("{what} over {MAX_FILTER_LEN} bytes")),
        Some(f) => RegexBuilder::new(&f)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map(Some)
            .map_err(|e| format!("bad {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(include: &str, context: usize) -> Filters {
        let slots = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        Filters::new(
            compile("filter", Some(include.into())).unwrap(),
            None,
            context,
            slots,
        )
    }

    #[test]
    fn context_before_and_after_a_match() {
        let f = filters("ERR", 2);
        let cat: Arc<str> = Arc::from("a");
        let mut out = Vec::new();
        for (i, l) in ["1", "2", "3", "ERR 4", "5", "6", "7", "8", "ERR 9", "10"]
            .iter()
            .enumerate()
        {
            let seq = i as u64 + 1;
            match f.judge(&cat, seq, &Bytes::from(l.to_string())) {
                Verdict::Skip => {}
                Verdict::Context => out.push(format!("c{seq}")),
                Verdict::Match(before) => {
                    out.extend(before.iter().map(|(s, _)| format!("b{s}")));
                    out.push(format!("m{seq}"));
                }
            }
        }
        assert_eq!(out, ["b2", "b3", "m4", "c5", "c6", "b7", "b8", "m9", "c10"]);
    }

    #[test]
    fn reset_forgets_context_across_a_hole() {
        let f = filters("ERR", 1);
        let cat: Arc<str> = Arc::from("a");
        assert_eq!(f.judge(&cat, 1, &Bytes::from("x")), Verdict::Skip);
        f.reset("a");
        assert_eq!(
            f.judge(&cat, 5, &Bytes::from("ERR")),
            Verdict::Match(Vec::new())
        );
        let plain = filters("ERR", 0);
        assert_eq!(plain.judge(&cat, 1, &Bytes::from("x")), Verdict::Skip);
    }
}
