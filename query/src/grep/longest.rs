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
        let syntax = regex_automata::util::syntax::Config::new().utf8(false);
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
        out: &mut Vec<(usize, usize)>,
    ) {
        let mut at = 0;
        while at <= line.len() {
            let Ok(Some(m)) = first.find_at(line, at) else {
                return;
            };
            let s = m.start();
            let e = self.longest_end(c, line, s).unwrap_or(m.end()).max(m.end());
            if e > s {
                out.push((s, e));
                at = e;
            } else {
                at = s + 1;
            }
        }
    }

    fn longest_end(&self, c: &mut Caches, line: &[u8], s: usize) -> Option<usize> {
        let input = Input::new(line).range(s..).anchored(Anchored::Yes);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(p: &str, hay: &str) -> Vec<String> {
        let l = Longest::new(p).unwrap();
        let first = RegexMatcher::new(p).unwrap();
        let mut c = l.caches();
        let mut v = Vec::new();
        l.spans(&first, &mut c, hay.as_bytes(), &mut v);
        v.into_iter().map(|(s, e)| hay[s..e].to_string()).collect()
    }

    #[test]
    fn longest_alternative_wins() {
        assert_eq!(spans("foo|foobar", "xfoobar foo"), ["foobar", "foo"]);
        assert_eq!(spans("(?:a|ab)(?:c|bcd)", "abcd"), ["abcd"]);
        assert_eq!(spans("x*", "axxb"), ["xx"]);
    }

    #[test]
    fn word_boundaries_next_to_non_ascii_fall_back() {
        let p = r"\b{start-half}(?:é|éa)\b{end-half}";
        assert_eq!(spans(p, "éa é éab"), ["éa", "é"]);
    }
}
