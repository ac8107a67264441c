//! POSIX leftmost-longest match spans, for what `grep -o` and `--color` show.
//!
//! Line selection does not care which match is reported, so it runs on the fast
//! leftmost-first engines (`grep-regex`). The spans printed do: GNU grep shows the longest
//! match at the leftmost position (`echo xfoobar | grep -oE 'foo|foobar'` is `foobar`). The
//! leftmost start is the same under both semantics, so the line selector (leftmost-first)
//! finds it; a lazy DFA built with `MatchKind::All`, run anchored at that start, then
//! reports the longest end. When the lazy DFA gives up (a Unicode word boundary next to
//! non-ASCII text), a PikeVM with the same semantics, built on first use, answers instead.

use std::sync::OnceLock;

use grep_matcher::Matcher;
use grep_regex::RegexMatcher;
use regex_automata::hybrid::dfa::{Cache as DfaCache, DFA};
use regex_automata::nfa::thompson::pikevm::{Cache as VmCache, PikeVM};
use regex_automata::nfa::thompson::{Config as NfaConfig, NFA};
use regex_automata::{Anchored, Input, MatchKind};

/// The longest-match automata for one (translated, combined) pattern.
pub struct Longest {
    nfa: NFA,
    dfa: DFA,
    vm: OnceLock<PikeVM>,
}

/// Per-thread scratch space of a [`Longest`].
pub struct Caches {
    dfa: DfaCache,
    vm: Option<VmCache>,
}

impl Longest {
    pub fn new(pattern: &str) -> Result<Longest, String> {
        // Multi-line: `-w` searches whole buffers of lines, where `^`/`$` are line edges.
        let syntax = regex_automata::util::syntax::Config::new()
            .utf8(false)
            .multi_line(true);
        let nfa = NFA::compiler()
            .syntax(syntax)
            .configure(NfaConfig::new().utf8(false))
            .build(pattern)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true),
            )
            .build_from_nfa(nfa.clone())
            .map_err(|e| e.to_string())?;
        Ok(Longest {
            nfa,
            dfa,
            vm: OnceLock::new(),
        })
    }

    pub fn caches(&self) -> Caches {
        Caches {
            dfa: self.dfa.create_cache(),
            vm: None,
        }
    }

    /// The non-empty leftmost-longest matches of `line`, left to right, not overlapping
    /// (GNU grep shows no empty match). `first` is the leftmost-first matcher of the same
    /// pattern.
    pub fn spans(
        &self,
        first: &RegexMatcher,
        c: &mut Caches,
        line: &[u8],
        word: bool,
        out: &mut Vec<(usize, usize)>,
    ) {
        let mut at = 0;
        while at <= line.len() {
            let (s, e) = if word {
                match self.find_word(first, c, line, at) {
                    Some(m) => m,
                    None => return,
                }
            } else {
                let Ok(Some(m)) = first.find_at(line, at) else {
                    return;
                };
                let s = m.start();
                (
                    s,
                    self.longest_end(c, line, s).unwrap_or(m.end()).max(m.end()),
                )
            };
            if e > s {
                out.push((s, e));
                at = e;
            } else {
                at = s + 1;
            }
        }
    }

    fn longest_end(&self, c: &mut Caches, line: &[u8], s: usize) -> Option<usize> {
        self.longest_end_within(c, line, s, line.len())
    }

    /// GNU grep's `-w` match at or after `at`: the leftmost match of the pattern, cut back
    /// to the longest of its lengths that ends a word (preceded and followed by a non-word
    /// character, an invalid UTF-8 byte being one, or the edge); else the next start.
    pub fn find_word(
        &self,
        first: &RegexMatcher,
        c: &mut Caches,
        hay: &[u8],
        at: usize,
    ) -> Option<(usize, usize)> {
        let mut from = at;
        while from <= hay.len() {
            let s = first.find_at(hay, from).ok()??.start();
            let mut limit = hay.len();
            while let Some(e) = self.longest_end_within(c, hay, s, limit) {
                // An empty match inside a character is no position to GNU.
                let inside = e == s && inside_char(hay, s);
                if !inside && !word_char_before(hay, s) && !word_char_at(hay, e) {
                    return Some((s, e));
                }
                if e == s {
                    break;
                }
                limit = e - 1;
            }
            from = s + 1;
        }
        None
    }

    /// The end of the longest match that starts at `s` and ends at or before `limit`.
    fn longest_end_within(
        &self,
        c: &mut Caches,
        line: &[u8],
        s: usize,
        limit: usize,
    ) -> Option<usize> {
        let input = Input::new(line).range(s..limit).anchored(Anchored::Yes);
        match self.dfa.try_search_fwd(&mut c.dfa, &input) {
            Ok(hm) => hm.map(|h| h.offset()),
            Err(_) => {
                let vm = self.vm.get_or_init(|| {
                    PikeVM::builder()
                        .configure(PikeVM::config().match_kind(MatchKind::All))
                        .build_from_nfa(self.nfa.clone())
                        .expect("a PikeVM builds from any NFA")
                });
                let cache = c.vm.get_or_insert_with(|| vm.create_cache());
                let mut caps = vm.create_captures();
                vm.search(cache, &input, &mut caps);
                caps.get_match().map(|m| m.end())
            }
        }
    }
}

/// GNU's word characters: `_` and alphanumerics (letters and digits of every script);
/// an invalid UTF-8 byte is not one.
fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn word_char_before(hay: &[u8], at: usize) -> bool {
    let start = at.saturating_sub(4);
    (start..at)
        .rev()
        .find_map(|i| std::str::from_utf8(&hay[i..at]).ok())
        .and_then(|s| s.chars().next_back())
        .is_some_and(is_word)
}

/// Whether `at` falls inside the encoding of a valid UTF-8 character.
fn inside_char(hay: &[u8], at: usize) -> bool {
    (at.saturating_sub(3)..at).any(|i| {
        let chunk = &hay[i..(i + 4).min(hay.len())];
        let valid = match std::str::from_utf8(chunk) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or(""),
        };
        valid.chars().next().is_some_and(|c| i + c.len_utf8() > at)
    })
}

fn word_char_at(hay: &[u8], at: usize) -> bool {
    let end = (at + 4).min(hay.len());
    let chunk = &hay[at..end];
    let valid = match std::str::from_utf8(chunk) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or(""),
    };
    valid.chars().next().is_some_and(is_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(p: &str, hay: &str) -> Vec<String> {
        let l = Longest::new(p).unwrap();
        let first = RegexMatcher::new(p).unwrap();
        let mut c = l.caches();
        let mut v = Vec::new();
        l.spans(&first, &mut c, hay.as_bytes(), false, &mut v);
        v.into_iter().map(|(s, e)| hay[s..e].to_string()).collect()
    }

    #[test]
    fn longest_alternative_wins() {
        assert_eq!(spans("foo|foobar", "xfoobar foo"), ["foobar", "foo"]);
        assert_eq!(spans("(?:a|ab)(?:c|bcd)", "abcd"), ["abcd"]);
        assert_eq!(spans("x*", "axxb"), ["xx"]);
    }

    #[test]
    fn word_matches_are_cut_back_to_a_word_end() {
        let l = Longest::new("é|éa|a*").unwrap();
        let first = RegexMatcher::new("é|éa|a*").unwrap();
        let mut c = l.caches();
        let hay = "éab é aa".as_bytes();
        let mut v = Vec::new();
        l.spans(&first, &mut c, hay, true, &mut v);
        let got: Vec<&[u8]> = v.iter().map(|&(s, e)| &hay[s..e]).collect();
        assert_eq!(got, [&b"\xc3\xa9"[..], b"aa"]);
        // An invalid byte is not a word character.
        let (l, first) = (Longest::new("é").unwrap(), RegexMatcher::new("é").unwrap());
        let mut c = l.caches();
        assert_eq!(
            l.find_word(&first, &mut c, b"\xff\xc3\xa9", 0),
            Some((1, 3))
        );
    }
}
