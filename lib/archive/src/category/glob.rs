//! [`CategoryGlob`]: selecting categories by name, for tailgate subscriptions and
//! `logq --category`.
//!
//! Syntax: `*` any run of bytes (including none), `?` one byte, `[abc]`, `[a-z]` one byte of a
//! class (`[!...]` or `[^...]`: one byte not in it; `-` first or last, and `]` first, are
//! themselves), `{a,b}` one of the alternatives (which may hold any of the above, and nest),
//! `\x` the byte `x` itself. Every other byte must be one a category may contain
//! ([`is_category_byte`]); a pattern with none of the syntax is a plain category name, held to
//! [`Category`]'s rules. This is globset's syntax less what only paths need, so
//! `logq --category` still takes every glob it took when it used globset, within the limits
//! below (globset had none, and no nested braces), and matches the same names, except that an
//! empty alternative matches the empty string, as in a shell (`web{,.old}`: `web` and
//! `web.old`; globset ignored it). `tests/category_glob.rs` compares the two.
//!
//! Why not a glob crate: `globset` compiles to a regex (a much bigger engine, with limits of
//! its own to tune for tailgate's untrusted input), and `glob` and `wildmatch` backtrack.
//! Category names need no path rules, so a small automaton is simpler to bound.
//!
//! What a hostile pattern costs: braces are never expanded. A pattern compiles to about one
//! instruction per byte (an alternative is a branch of the program), so `{a,b}{a,b}{a,b}...`
//! costs space linear in its length, not the product of its lists. A name is matched by a
//! bit-parallel Thompson NFA: one bit per instruction, every live instruction moved at once
//! for each byte of the name, without backtracking, so `*a*a*a*a*b` against a long run of
//! `a`s is as fast as any other match. A byte costs a few word operations per 64
//! instructions, plus a visit to each live brace (see [`Program::close`]). [`MAX_GLOB_LEN`]
//! bounds the program, [`MAX_GLOB_ALTERNATIVES`] the visits, [`MAX_GLOB_DEPTH`] the
//! compiler's recursion. Measured (callgrind): the costliest 200-byte glob found matches a
//! 200-byte name in about 400,000 instructions, a `*`-only one in about 70,000; the `*`/`?`
//! matcher tailgate had before took about 230,000 at its worst.

use std::{fmt, mem};

use super::{is_category_byte, Category, CategoryError, MAX_CATEGORY_LEN};

/// Longest accepted glob, in bytes: as long as a name (so a glob fits wherever a name does,
/// e.g. as tailgate's default subscription id). Several categories that no one glob covers
/// are several `--category` arguments, or several subscriptions.
pub const MAX_GLOB_LEN: usize = MAX_CATEGORY_LEN;

/// Most alternatives in one glob, over all its braces (`{a,b}{c,d,e}` has 5). Each adds
/// positions a match may have to visit for every byte of the name.
pub const MAX_GLOB_ALTERNATIVES: usize = 32;

/// Deepest accepted nesting of braces (`{a,{b,{c,d}}}` is 3).
pub const MAX_GLOB_DEPTH: usize = 8;

/// Why a pattern is not a category name or glob. Offsets are byte offsets in the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// A pattern without glob syntax is a category name, and this one is not valid.
    #[error(transparent)]
    Name(#[from] CategoryError),
    #[error("glob is {0} bytes long (at most {MAX_GLOB_LEN})")]
    TooLong(usize),
    #[error(
        "byte {byte:#04x} at offset {offset} is neither allowed in a category \
         (A-Z a-z 0-9 . _ -) nor glob syntax (* ? [...] {{a,b}} \\)"
    )]
    InvalidByte { byte: u8, offset: usize },
    #[error("'[' at offset {0} is never closed")]
    UnclosedClass(usize),
    #[error("range {lo}-{hi} in a class is reversed")]
    ReversedRange { lo: char, hi: char },
    #[error("'{{' at offset {0} is never closed")]
    UnclosedBrace(usize),
    #[error("'}}' at offset {0} closes nothing")]
    UnmatchedBrace(usize),
    #[error("',' at offset {0} is outside braces")]
    StrayComma(usize),
    #[error("braces at offset {0} nest deeper than {MAX_GLOB_DEPTH}")]
    TooDeep(usize),
    #[error("more than {MAX_GLOB_ALTERNATIVES} alternatives in braces")]
    TooManyAlternatives,
    #[error("'\\' at the end of the pattern escapes nothing")]
    TrailingEscape,
}

/// A category name or a glob over category names; see the module documentation.
#[derive(Clone)]
pub struct CategoryGlob {
    text: String,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Name(Category),
    Glob(Program),
}

impl CategoryGlob {
    /// Parses a category name or glob.
    pub fn new(pattern: &str) -> Result<CategoryGlob, GlobError> {
        let kind = if pattern.bytes().any(starts_syntax) {
            if pattern.len() > MAX_GLOB_LEN {
                return Err(GlobError::TooLong(pattern.len()));
            }
            Kind::Glob(Compiler::compile(pattern.as_bytes())?)
        } else {
            Kind::Name(Category::new(pattern.as_bytes())?)
        };
        Ok(CategoryGlob {
            text: pattern.to_string(),
            kind,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern uses glob syntax (else it names one category, see
    /// [`as_category`](CategoryGlob::as_category)).
    pub fn is_glob(&self) -> bool {
        matches!(self.kind, Kind::Glob(_))
    }

    /// The category a pattern without glob syntax names.
    pub fn as_category(&self) -> Option<&Category> {
        match &self.kind {
            Kind::Name(c) => Some(c),
            Kind::Glob(_) => None,
        }
    }

    /// Whether `name` matches. Linear in `name`, for any pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_bytes(name.as_bytes())
    }

    /// [`matches`](CategoryGlob::matches) for a name that may not be UTF-8 (`?` and classes
    /// take one byte).
    pub fn matches_bytes(&self, name: &[u8]) -> bool {
        match &self.kind {
            Kind::Name(c) => c.as_str().as_bytes() == name,
            Kind::Glob(p) => p.matches(name),
        }
    }
}

impl PartialEq for CategoryGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CategoryGlob {}

impl fmt::Debug for CategoryGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CategoryGlob").field(&self.text).finish()
    }
}

impl fmt::Display for CategoryGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for CategoryGlob {
    type Err = GlobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CategoryGlob::new(s)
    }
}

/// The bytes that make a pattern a glob rather than a name. (`]`, `}`, `,`, `!` and `^` only
/// mean something after one of these.)
fn starts_syntax(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[' | b'{' | b'\\')
}

/// One instruction of a compiled glob. Targets are indexes into the program; every move that
/// consumes no byte goes forward, which lets [`Program::close`] work in one sweep.
#[derive(Debug, Clone, Copy)]
enum Inst {
    /// Consumes this byte.
    Byte(u8),
    /// `?`: consumes any byte.
    Any,
    /// Consumes a byte of the compiler's `classes[i]`.
    Class(usize),
    /// `*`: consumes any byte and stays, or moves on without one.
    Star,
    /// `{...}`: continues at the start of every alternative, `targets[first..][..len]`.
    Fork {
        first: usize,
        len: usize,
    },
    Jump(usize),
    /// The last instruction: the whole pattern matched.
    Match,
}

/// A `[...]` class: bits for the ASCII bytes, and whether the other bytes are in it (they
/// are exactly when the class is negated).
#[derive(Debug, Clone, Copy)]
struct ByteClass {
    ascii: u128,
    high: bool,
}

impl ByteClass {
    fn contains(self, b: u8) -> bool {
        match 1u128.checked_shl(u32::from(b)) {
            Some(bit) => self.ascii & bit != 0,
            None => self.high,
        }
    }
}

/// A compiled glob, run as a bit-parallel Thompson NFA: the set of live positions is a bit
/// mask, and one name byte moves every live position at once (a shift and two masks, a word
/// at a time); then [`close`](Program::close) follows the moves that consume nothing.
#[derive(Clone)]
struct Program {
    insts: Box<[Inst]>,
    /// Words in a set of positions.
    words: usize,
    /// Each byte's column of `accept`: bytes no instruction tells apart share one.
    column: Box<[u8; 256]>,
    /// Column `c` is `accept[c * words..][..words]`: the positions whose instruction
    /// consumes its bytes (`Byte`, `?`, `[...]`).
    accept: Box<[u64]>,
    /// Positions of `*`, which consume any byte and stay, and move on to the next position
    /// without one (to a star too, in `{a,*}*`).
    stars: Box<[u64]>,
    /// Positions of forks and jumps, which [`close`](Program::close) visits one by one.
    visit: Box<[u64]>,
    /// Where forks go: the start of each alternative.
    targets: Box<[usize]>,
}

impl Program {
    fn new(insts: Vec<Inst>, classes: &[ByteClass], targets: Vec<usize>) -> Program {
        let words = insts.len().div_ceil(64);
        let (mut stars, mut visit) = (vec![0; words], vec![0; words]);
        for (pc, inst) in insts.iter().enumerate() {
            match inst {
                Inst::Star => insert(&mut stars, pc),
                Inst::Fork { .. } | Inst::Jump(_) => insert(&mut visit, pc),
                _ => {}
            }
        }
        let mut column = Box::new([0u8; 256]);
        let mut accept: Vec<u64> = Vec::new();
        let mut takes = vec![0; words];
        for b in 0..=u8::MAX {
            takes.fill(0);
            for (pc, inst) in insts.iter().enumerate() {
                let yes = match *inst {
                    Inst::Byte(c) => c == b,
                    Inst::Any => true,
                    Inst::Class(i) => classes[i].contains(b),
                    _ => false,
                };
                if yes {
                    insert(&mut takes, pc);
                }
            }
            let found = accept.chunks(words).position(|c| c == takes);
            let col = found.unwrap_or_else(|| {
                accept.extend_from_slice(&takes);
                accept.len() / words - 1
            });
            // At most 256 distinct columns, one per byte value.
            column[usize::from(b)] = col as u8;
        }
        Program {
            insts: insts.into(),
            words,
            column,
            accept: accept.into(),
            stars: stars.into(),
            visit: visit.into(),
            targets: targets.into(),
        }
    }

    fn matches(&self, name: &[u8]) -> bool {
        let w = self.words;
        let (mut cur, mut next) = (vec![0u64; w], vec![0u64; w]);
        cur[0] = 1;
        self.close(&mut cur);
        for &b in name {
            let col = usize::from(self.column[usize::from(b)]);
            let accept = &self.accept[col * w..][..w];
            let (mut carry, mut live) = (0, 0);
            for i in 0..w {
                // A consuming instruction moves to the next position; a star also stays.
                let moved = cur[i] & accept[i];
                next[i] = moved << 1 | carry | (cur[i] & self.stars[i]);
                carry = moved >> 63;
                live |= next[i];
            }
            if live == 0 {
                return false;
            }
            self.close(&mut next);
            mem::swap(&mut cur, &mut next);
        }
        let end = self.insts.len() - 1;
        cur[end / 64] >> (end % 64) & 1 == 1
    }

    /// Adds every position reachable from `set` without consuming a byte. Such moves only go
    /// forward, so after the stars' moves (a shift, all at once), one ascending sweep over the
    /// live forks and jumps reaches them all: a byte costs a few word operations, plus a visit
    /// per live fork or jump, of which [`MAX_GLOB_ALTERNATIVES`] bounds the number.
    fn close(&self, set: &mut [u64]) {
        // Once per star in a row (`{a,*}*` puts two side by side): usually once.
        loop {
            let (mut carry, mut grew) = (0, false);
            for (word, stars) in set.iter_mut().zip(&self.stars) {
                let skip = *word & stars;
                let old = *word;
                *word |= skip << 1 | carry;
                carry = skip >> 63;
                grew |= *word != old;
            }
            if !grew {
                break;
            }
        }
        for i in 0..self.words {
            let mut seen = 0u64;
            loop {
                let todo = set[i] & self.visit[i] & !seen;
                if todo == 0 {
                    break;
                }
                let bit = todo.trailing_zeros();
                seen |= 1 << bit;
                let pc = i * 64 + bit as usize;
                match self.insts[pc] {
                    Inst::Fork { first, len } => {
                        for &t in &self.targets[first..][..len] {
                            self.enter(set, t);
                        }
                    }
                    Inst::Jump(t) => self.enter(set, t),
                    _ => {}
                }
            }
        }
    }

    /// Adds `pc`, and while it is a star, the position after it.
    fn enter(&self, set: &mut [u64], mut pc: usize) {
        insert(set, pc);
        while self.stars[pc / 64] >> (pc % 64) & 1 == 1 {
            pc += 1;
            insert(set, pc);
        }
    }
}

fn insert(set: &mut [u64], pc: usize) {
    set[pc / 64] |= 1 << (pc % 64);
}

/// Compiles a pattern (known to contain glob syntax) into a [`Program`].
struct Compiler<'a> {
    pat: &'a [u8],
    pos: usize,
    insts: Vec<Inst>,
    classes: Vec<ByteClass>,
    targets: Vec<usize>,
    alternatives: usize,
}

impl Compiler<'_> {
    fn compile(pat: &[u8]) -> Result<Program, GlobError> {
        let mut c = Compiler {
            pat,
            pos: 0,
            insts: Vec::with_capacity(pat.len() + 1),
            classes: Vec::new(),
            targets: Vec::new(),
            alternatives: 0,
        };
        c.sequence(0)?;
        match pat.get(c.pos) {
            None => {}
            Some(b',') => return Err(GlobError::StrayComma(c.pos)),
            Some(_) => return Err(GlobError::UnmatchedBrace(c.pos)),
        }
        c.insts.push(Inst::Match);
        Ok(Program::new(c.insts, &c.classes, c.targets))
    }

    /// Compiles up to the end of the pattern, or up to a `,` or `}` (left for the caller).
    fn sequence(&mut self, depth: usize) -> Result<(), GlobError> {
        let mut after_star = false;
        while let Some(&b) = self.pat.get(self.pos) {
            let at = self.pos;
            self.pos += 1;
            let star = b == b'*';
            if star && after_star {
                continue; // `**` is `*`: one state, not two that do the same
            }
            after_star = star;
            let inst = match b {
                b',' | b'}' => {
                    self.pos = at;
                    return Ok(());
                }
                b'*' => Inst::Star,
                b'?' => Inst::Any,
                b'[' => self.class(at)?,
                b'{' => {
                    self.alternation(at, depth + 1)?;
                    continue;
                }
                b'\\' => match self.pat.get(self.pos) {
                    Some(&e) if is_category_byte(e) || is_syntax(e) => {
                        self.pos += 1;
                        Inst::Byte(e)
                    }
                    Some(&byte) => {
                        return Err(GlobError::InvalidByte {
                            byte,
                            offset: self.pos,
                        })
                    }
                    None => return Err(GlobError::TrailingEscape),
                },
                b if is_category_byte(b) => Inst::Byte(b),
                byte => return Err(GlobError::InvalidByte { byte, offset: at }),
            };
            self.insts.push(inst);
        }
        Ok(())
    }

    /// `{a,b,c}` after its `{` at `open`: a fork to the start of each alternative; each but
    /// the last then jumps past the last, which runs on.
    fn alternation(&mut self, open: usize, depth: usize) -> Result<(), GlobError> {
        if depth > MAX_GLOB_DEPTH {
            return Err(GlobError::TooDeep(open));
        }
        let fork = self.insts.len();
        self.insts.push(Inst::Fork { first: 0, len: 0 }); // patched below
        let (mut starts, mut jumps) = (Vec::new(), Vec::new());
        loop {
            self.alternatives += 1;
            if self.alternatives > MAX_GLOB_ALTERNATIVES {
                return Err(GlobError::TooManyAlternatives);
            }
            starts.push(self.insts.len());
            self.sequence(depth)?;
            match self.pat.get(self.pos) {
                Some(b',') => {
                    self.pos += 1;
                    jumps.push(self.insts.len());
                    self.insts.push(Inst::Jump(0)); // patched below
                }
                Some(_) => {
                    self.pos += 1; // the `}`
                    break;
                }
                None => return Err(GlobError::UnclosedBrace(open)),
            }
        }
        let end = self.insts.len();
        for j in jumps {
            self.insts[j] = Inst::Jump(end);
        }
        self.insts[fork] = Inst::Fork {
            first: self.targets.len(),
            len: starts.len(),
        };
        self.targets.extend(starts);
        Ok(())
    }

    /// `[...]` after its `[` at `open`.
    fn class(&mut self, open: usize) -> Result<Inst, GlobError> {
        let negated = matches!(self.pat.get(self.pos), Some(b'!' | b'^'));
        if negated {
            self.pos += 1;
        }
        let mut ascii = 0u128;
        if self.pat.get(self.pos) == Some(&b']') {
            // `[]...]`: a `]` first is itself (it matches no category, but globset took it).
            ascii |= 1 << b']';
            self.pos += 1;
        }
        loop {
            let lo = match self.pat.get(self.pos) {
                None => return Err(GlobError::UnclosedClass(open)),
                Some(b']') => break,
                Some(_) => self.class_byte(open)?,
            };
            // `a-z` is a range; a `-` just before the `]` is itself.
            let hi = match self.pat.get(self.pos..self.pos + 2) {
                Some([b'-', b']']) | None => lo,
                Some([b'-', _]) => {
                    self.pos += 1;
                    self.class_byte(open)?
                }
                Some(_) => lo,
            };
            if hi < lo {
                return Err(GlobError::ReversedRange {
                    lo: char::from(lo),
                    hi: char::from(hi),
                });
            }
            for b in lo..=hi {
                ascii |= 1u128 << b;
            }
        }
        self.pos += 1; // the `]`
        self.classes.push(if negated {
            ByteClass {
                ascii: !ascii,
                high: true,
            }
        } else {
            ByteClass { ascii, high: false }
        });
        Ok(Inst::Class(self.classes.len() - 1))
    }

    /// One member of a class: a byte a category may contain (so ASCII).
    fn class_byte(&mut self, open: usize) -> Result<u8, GlobError> {
        match self.pat.get(self.pos) {
            Some(&b) if is_category_byte(b) => {
                self.pos += 1;
                Ok(b)
            }
            Some(&byte) => Err(GlobError::InvalidByte {
                byte,
                offset: self.pos,
            }),
            None => Err(GlobError::UnclosedClass(open)),
        }
    }
}

/// Bytes with a meaning in a glob somewhere (what `\` may escape besides category bytes).
fn is_syntax(b: u8) -> bool {
    starts_syntax(b) || matches!(b, b']' | b'}' | b',' | b'!' | b'^')
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn glob(p: &str) -> CategoryGlob {
        CategoryGlob::new(p).unwrap_or_else(|e| panic!("{p:?}: {e}"))
    }

    /// Asserts which of `names` the pattern matches (`yes`) and which it does not (`no`).
    fn check(p: &str, yes: &[&str], no: &[&str]) {
        let g = glob(p);
        for n in yes {
            assert!(g.matches(n), "{p:?} should match {n:?}");
        }
        for n in no {
            assert!(!g.matches(n), "{p:?} should not match {n:?}");
        }
    }

    #[test]
    fn names_are_held_to_the_category_rules() {
        let g = glob("apache.access");
        assert!(!g.is_glob());
        assert_eq!(g.as_category().map(Category::as_str), Some("apache.access"));
        check(
            "apache.access",
            &["apache.access"],
            &["apache.accesss", "apache"],
        );
        for bad in ["", ".", "..", "../x", "a/b", "a b", "<script>", "é"] {
            assert!(
                matches!(CategoryGlob::new(bad), Err(GlobError::Name(_))),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_CATEGORY_LEN + 1);
        assert!(matches!(
            CategoryGlob::new(&long),
            Err(GlobError::Name(CategoryError::TooLong(_)))
        ));
    }

    #[test]
    fn stars_and_question_marks() {
        check(
            "apache.*",
            &["apache.access", "apache."],
            &["apache", "xapache.access"],
        );
        check("a?c", &["abc", "a.c"], &["ac", "abbc"]);
        check("*", &["anything", ""], &[]);
        check("**", &["x"], &[]);
        check("*.err*", &["web.errors", ".err"], &["web.er"]);
        check("*.err", &["web.err"], &["web.errors"]);
        check("*a*b", &["ab", "xaxb", "aaab"], &["ba", "aaa"]);
        assert!(glob("a*").is_glob() && glob("a*").as_category().is_none());
    }

    #[test]
    fn classes() {
        check(
            "web.[ab]*",
            &["web.a", "web.b1"],
            &["web.c", "web.", "web.A"],
        );
        check("x[a-c0-2]", &["xa", "xc", "x1"], &["xd", "x3", "x-"]);
        check("x[!a-c]", &["xd", "x-"], &["xa", "xb", "x"]);
        // Bytes, not characters: a negated class holds every byte outside it.
        assert!(glob("x[!a-c]").matches_bytes(b"x\xe9"));
        assert!(!glob("x[a-c]").matches_bytes(b"x\xe9"));
        check("x[^a]", &["xb"], &["xa"]);
        check("x[-a]", &["x-", "xa"], &["xb"]);
        check("x[a-]", &["x-", "xa"], &["xb"]);
        check("x[._-]", &["x.", "x_", "x-"], &["xa"]);
    }

    #[test]
    fn alternatives() {
        check(
            "{apache,nginx}.*",
            &["apache.access", "nginx.error"],
            &["mysql.slow", "apache", "nginx"],
        );
        check("web.{a,b}", &["web.a", "web.b"], &["web.c", "web.ab"]);
        check("a{,b}", &["a", "ab"], &["abb"]);
        check("a{}", &["a"], &["ab"]);
        check("{a,{b,{c,d}}}x", &["ax", "bx", "cx", "dx"], &["ex", "x"]);
        check("{*.err,db}", &["web.err", "db"], &["dbx"]);
        check("{a*,*b}c", &["abc", "bc", "ac"], &["ca"]);
        // A star ending the last alternative and one after the braces are two stars.
        check("{a,*}*", &["a", "ab", "", "x"], &[]);
        check("{a,b*}c*d", &["acd", "bcd", "bxxcxxd"], &["axcd", "bd"]);
    }

    #[test]
    fn escapes_match_the_byte_itself() {
        check("a\\.b*", &["a.b", "a.bc"], &["axb"]);
        check("a\\*", &["a*"], &["ab"]);
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = |p: &str| CategoryGlob::new(p).unwrap_err();
        assert_eq!(
            err("a*/b"),
            GlobError::InvalidByte {
                byte: b'/',
                offset: 2
            }
        );
        assert_eq!(
            err("<*>"),
            GlobError::InvalidByte {
                byte: b'<',
                offset: 0
            }
        );
        assert_eq!(err("x[ab"), GlobError::UnclosedClass(1));
        assert_eq!(err("x[a-"), GlobError::UnclosedClass(1));
        assert_eq!(err("x[]"), GlobError::UnclosedClass(1));
        check("x[]a]", &["xa", "x]"], &["xb"]);
        assert_eq!(err("x[!]"), GlobError::UnclosedClass(1));
        assert_eq!(
            err("x[a/]"),
            GlobError::InvalidByte {
                byte: b'/',
                offset: 3
            }
        );
        assert_eq!(err("x[z-a]"), GlobError::ReversedRange { lo: 'z', hi: 'a' });
        assert_eq!(err("{a,b"), GlobError::UnclosedBrace(0));
        assert_eq!(err("a}*"), GlobError::UnmatchedBrace(1));
        assert_eq!(err("a,b*"), GlobError::StrayComma(1));
        assert_eq!(err("a*\\"), GlobError::TrailingEscape);
        assert_eq!(
            err("a*\\/"),
            GlobError::InvalidByte {
                byte: b'/',
                offset: 3
            }
        );
        let msg = err("a*/b").to_string();
        assert!(
            msg.contains("offset 2") && msg.contains("A-Z a-z 0-9"),
            "{msg}"
        );
    }

    #[test]
    fn hostile_sizes_are_refused() {
        let long = "*".repeat(MAX_GLOB_LEN + 1);
        assert_eq!(
            CategoryGlob::new(&long).unwrap_err(),
            GlobError::TooLong(MAX_GLOB_LEN + 1)
        );
        assert!(CategoryGlob::new(&"*".repeat(MAX_GLOB_LEN)).is_ok());
        let nest = |d: usize| format!("{}a{}", "{".repeat(d), "}".repeat(d));
        check(&nest(MAX_GLOB_DEPTH), &["a"], &["b"]);
        assert_eq!(
            CategoryGlob::new(&nest(MAX_GLOB_DEPTH + 1)).unwrap_err(),
            GlobError::TooDeep(MAX_GLOB_DEPTH)
        );
        let alternatives = |n: usize| format!("{{{}}}", ",".repeat(n - 1));
        assert!(CategoryGlob::new(&alternatives(MAX_GLOB_ALTERNATIVES)).is_ok());
        assert_eq!(
            CategoryGlob::new(&alternatives(MAX_GLOB_ALTERNATIVES + 1)).unwrap_err(),
            GlobError::TooManyAlternatives
        );
        // Braces are not expanded: these 16 lists of two would be 65,536 patterns.
        let product = "{a,b}".repeat(MAX_GLOB_ALTERNATIVES / 2);
        let g = glob(&product);
        let Kind::Glob(p) = &g.kind else {
            unreachable!()
        };
        assert!(p.insts.len() <= product.len(), "{}", p.insts.len());
        assert!(g.matches(&"ab".repeat(MAX_GLOB_ALTERNATIVES / 4)));
        assert!(!g.matches(&("ab".repeat(MAX_GLOB_ALTERNATIVES / 4) + "a")));
    }

    /// A backtracking matcher takes exponential time here; this one is linear in the name.
    #[test]
    fn pathological_patterns_match_quickly() {
        let started = Instant::now();
        let many_a = "a".repeat(100_000);
        assert!(!glob("*a*a*a*a*a*a*a*b").matches(&many_a));
        assert!(glob("*a*a*a*a*a*a*a*a").matches(&many_a));
        assert!(!glob("{*a,a*}{*a,a*}{*a,a*}{*a,a*}b").matches(&many_a));
        // The costliest patterns (every alternative live at every byte) against a name of the
        // longest length, as often as tailgate may match one subscription against its
        // categories (1,000 by default).
        let branches = format!("{{{}}}", vec!["*a"; MAX_GLOB_ALTERNATIVES].join(","));
        let pairs = "{*a,b}".repeat(MAX_GLOB_ALTERNATIVES / 2);
        let name = "a".repeat(MAX_CATEGORY_LEN);
        for p in [
            "*a".repeat(MAX_GLOB_LEN / 2 - 1) + "*b",
            "*".to_string() + &"a".repeat(MAX_GLOB_LEN - 2) + "b",
            branches.clone() + "b",
            pairs.clone() + &"*a".repeat((MAX_GLOB_LEN - pairs.len()) / 2 - 1) + "*b",
        ] {
            let g = glob(&p);
            for _ in 0..1000 {
                assert!(!g.matches(&name[1..]), "{p}");
            }
        }
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }
}
