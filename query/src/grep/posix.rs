//! GNU grep's pattern syntaxes (BRE by default, `-E` ERE, `-F` fixed strings), translated to
//! the Rust regex syntax the matchers run, with GNU's errors.
//!
//! The translation follows GNU grep 3.8 in a UTF-8 locale (`C.UTF-8`): `.` and bracket
//! expressions match one valid UTF-8 character (never an invalid byte); POSIX classes
//! (`[[:upper:]]`) follow glibc's Unicode classification; a misspelt class, an unmatched
//! bracket or parenthesis, a bad interval or a reversed range is an error with GNU's message.
//! GNU extensions are kept: `\w \W \s \S \b \B \< \> \` \'`, and in BRE `\+ \? \|`.
//! Back-references (`\1`) are refused: the engines behind logq are automata.
//! Everything else after a backslash is the character itself, with GNU's "stray \" warning.

use std::fmt::Write as _;

/// Which syntax a pattern is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    /// `-G`, the default: POSIX basic regular expressions with GNU's extensions.
    #[default]
    Basic,
    /// `-E`: POSIX extended regular expressions.
    Extended,
    /// `-F`: every pattern is a literal string.
    Fixed,
    /// `-P`: the Rust regex syntax, as is.
    Rust,
}

/// A pattern GNU grep would refuse, with GNU's words for why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn err<T>(msg: &str) -> Result<T, PatternError> {
    Err(PatternError(msg.to_string()))
}

/// RE_DUP_MAX: the largest count an interval may name.
const DUP_MAX: u32 = 32767;

/// Translates one pattern (no newline in it). Returns the Rust-syntax pattern and GNU's
/// warnings (`stray \ before d`), which do not stop the search.
pub fn translate(
    pat: &str,
    syntax: Syntax,
    icase: bool,
) -> Result<(String, Vec<String>), PatternError> {
    match syntax {
        Syntax::Fixed => Ok((regex_syntax::escape(pat), Vec::new())),
        Syntax::Rust => Ok((pat.to_string(), Vec::new())),
        Syntax::Basic | Syntax::Extended => {
            let mut p = Parser {
                chars: pat.chars().collect(),
                at: 0,
                ere: syntax == Syntax::Extended,
                icase,
                warnings: Vec::new(),
            };
            let out = p.parse()?;
            Ok((out, p.warnings))
        }
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    ere: bool,
    icase: bool,
    warnings: Vec<String>,
}

/// One piece of a branch: its Rust text, and whether it is an anchor (`^` in BRE makes a
/// following `*` literal).
struct Piece {
    text: String,
    anchor: bool,
}

/// A group being read: finished alternatives and the current branch.
#[derive(Default)]
struct Group {
    alts: Vec<String>,
    branch: Vec<Piece>,
}

impl Group {
    fn close_branch(&mut self) {
        let b: String = self.branch.drain(..).map(|p| p.text).collect();
        self.alts.push(b);
    }

    fn finish(mut self) -> String {
        self.close_branch();
        self.alts.join("|")
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.at + 1).copied()
    }

    fn parse(&mut self) -> Result<String, PatternError> {
        let mut stack: Vec<Group> = vec![Group::default()];
        while let Some(c) = self.peek() {
            self.at += 1;
            let depth = stack.len();
            if c == '\\' {
                self.escape(&mut stack)?;
                continue;
            }
            if self.ere && c == '(' {
                stack.push(Group::default());
                continue;
            }
            if self.ere && c == ')' && depth > 1 {
                close_group(&mut stack);
                continue;
            }
            let top = stack.last_mut().expect("a group");
            match c {
                '|' if self.ere => top.close_branch(),
                '*' => self.quantify(top, "*", "*")?,
                '+' | '?' if self.ere => self.quantify(top, &c.to_string(), &c.to_string())?,
                '{' if self.ere => match self.interval(false)? {
                    Some(q) => self.quantify(top, &q, "{")?,
                    None => push(top, lit('{')),
                },
                '^' if self.ere || top.branch.is_empty() => top.branch.push(Piece {
                    text: "^".into(),
                    anchor: true,
                }),
                '$' if self.ere || self.bre_dollar_is_anchor() => push(top, "$".into()),
                '.' => push(top, ".".into()),
                '[' => {
                    let class = self.bracket()?;
                    push(top, class);
                }
                c => push(top, lit(c)),
            }
        }
        if stack.len() > 1 {
            return err("Unmatched ( or \\(");
        }
        Ok(stack.pop().expect("the outer group").finish())
    }

    /// In BRE, `$` is an anchor only at the end of the pattern or of a group or branch.
    fn bre_dollar_is_anchor(&self) -> bool {
        match self.peek() {
            None => true,
            Some('\\') => matches!(self.peek2(), Some(')') | Some('|')),
            _ => false,
        }
    }

    /// A repetition operator after the last piece. At the start of a branch (or after a BRE
    /// `^`), BRE reads it as the literal character and ERE ignores it, as GNU grep does.
    fn quantify(&mut self, top: &mut Group, q: &str, name: &str) -> Result<(), PatternError> {
        let at_start = top.branch.last().is_none_or(|p| p.anchor && !self.ere);
        if at_start {
            if self.ere {
                self.warnings.push(format!("{name} at start of expression"));
            } else {
                let text = q.strip_prefix('\\').unwrap_or(q);
                let text: String = text.chars().map(lit).collect();
                push(top, text);
            }
            return Ok(());
        }
        let last = top.branch.last_mut().expect("checked above");
        last.text = format!("(?:{}){q}", last.text);
        Ok(())
    }

    /// After `\`.
    fn escape(&mut self, stack: &mut Vec<Group>) -> Result<(), PatternError> {
        let Some(c) = self.peek() else {
            return err("Trailing backslash");
        };
        self.at += 1;
        let top = stack.last_mut().expect("a group");
        let bre = !self.ere;
        match c {
            '(' if bre => stack.push(Group::default()),
            ')' if bre => {
                if stack.len() == 1 {
                    return err("Unmatched ) or \\)");
                }
                close_group(stack);
            }
            '|' if bre => top.close_branch(),
            '+' | '?' if bre => self.quantify(top, &c.to_string(), &format!("\\{c}"))?,
            '{' if bre => match self.interval(true)? {
                Some(q) => self.quantify(top, &q, "\\{")?,
                None => return err("Unmatched \\{"),
            },
            '1'..='9' => return err("back-references are not supported"),
            'w' | 'W' => push(top, word_class(c == 'W')),
            's' | 'S' => push(top, format!("[{}{}]", neg(c == 'S'), SPACE)),
            // GNU's word boundaries never hold next to an invalid byte: the half boundaries
            // see to that (Rust's `\b` alone would hold between `\xff` and a letter).
            'b' => push(top, format!("(?:{START}|{END})")),
            'B' => push(top, "\\B".into()),
            '<' => push(top, START.into()),
            '>' => push(top, END.into()),
            '`' => push(top, "^".into()),
            '\'' => push(top, "$".into()),
            '.' | '*' | '[' | ']' | '^' | '$' | '\\' => push(top, lit(c)),
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => push(top, lit(c)),
            c => {
                self.warnings.push(stray(c));
                push(top, lit(c));
            }
        }
        Ok(())
    }

    /// An interval after `{` (ERE) or `\{` (BRE): `{n}`, `{n,}`, `{,m}`, `{n,m}`. In ERE
    /// anything else leaves `{` a literal (`None`); in BRE it is an error.
    fn interval(&mut self, bre: bool) -> Result<Option<String>, PatternError> {
        let start = self.at;
        let mut text = String::new();
        let close = loop {
            match self.peek() {
                None => break false,
                Some('\\') if bre && self.peek2() == Some('}') => {
                    self.at += 2;
                    break true;
                }
                Some('}') if !bre => {
                    self.at += 1;
                    break true;
                }
                Some(c) if c.is_ascii_digit() || c == ',' => {
                    text.push(c);
                    self.at += 1;
                }
                Some(_) => break false,
            }
        };
        let parsed = close.then(|| parse_bounds(&text)).flatten();
        match parsed {
            Some((lo, hi)) => {
                if lo.max(hi.unwrap_or(0)) > DUP_MAX {
                    return err("Regular expression too big");
                }
                if hi.is_some_and(|h| h < lo) {
                    return err("Invalid content of \\{\\}");
                }
                Ok(Some(match hi {
                    Some(h) if h == lo => format!("{{{lo}}}"),
                    Some(h) => format!("{{{lo},{h}}}"),
                    None => format!("{{{lo},}}"),
                }))
            }
            None if bre => {
                let closes_later = self.chars[self.at..].windows(2).any(|w| w == ['\\', '}']);
                if close || closes_later {
                    err("Invalid content of \\{\\}")
                } else {
                    err("Unmatched \\{")
                }
            }
            None => {
                self.at = start;
                Ok(None)
            }
        }
    }
}

/// `n`, `n,`, `,m`, `n,m` (at least one number).
fn parse_bounds(text: &str) -> Option<(u32, Option<u32>)> {
    let num = |s: &str| s.parse::<u32>().ok().or((s.len() > 9).then_some(u32::MAX));
    match text.split_once(',') {
        None => num(text).map(|n| (n, Some(n))),
        Some((a, b)) if a.contains(',') || b.contains(',') => None,
        Some(("", "")) => Some((0, None)),
        Some(("", b)) => num(b).map(|m| (0, Some(m))),
        Some((a, "")) => num(a).map(|n| (n, None)),
        Some((a, b)) => Some((num(a)?, Some(num(b)?))),
    }
}

fn close_group(stack: &mut Vec<Group>) {
    let inner = stack.pop().expect("an open group").finish();
    push(
        stack.last_mut().expect("the outer group"),
        format!("(?:{inner})"),
    );
}

fn push(g: &mut Group, text: String) {
    g.branch.push(Piece {
        text,
        anchor: false,
    });
}

fn stray(c: char) -> String {
    if c.is_whitespace() {
        "stray \\ before white space".into()
    } else if c.is_control() {
        "stray \\ before unprintable character".into()
    } else {
        format!("stray \\ before {c}")
    }
}

/// A character as a Rust regex literal (also valid inside a class).
fn lit(c: char) -> String {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        c.to_string()
    } else {
        format!("\\x{{{:x}}}", c as u32)
    }
}

fn neg(yes: bool) -> &'static str {
    if yes {
        "^"
    } else {
        ""
    }
}

const START: &str = "\\b{start}\\b{start-half}";
const END: &str = "\\b{end}\\b{end-half}";

/// glibc's `[:space:]` in a UTF-8 locale (no-break spaces are not spaces).
const SPACE: &str =
    "\\t\\n\\x0B\\x0C\\r \\x{1680}\\x{2000}-\\x{2006}\\x{2008}-\\x{200A}\\x{2028}\\x{2029}\\x{205F}\\x{3000}";
const BLANK: &str = "\\t \\x{1680}\\x{2000}-\\x{2006}\\x{2008}-\\x{200A}\\x{205F}\\x{3000}";
/// glibc's `[:alnum:]`: letters, and digits of every script.
const ALNUM: &str = "\\p{Alphabetic}\\p{Nd}";

/// GNU's `\w` (`[_[:alnum:]]`) and `\W`.
fn word_class(negated: bool) -> String {
    format!("[{}_{ALNUM}]", neg(negated))
}

/// The Rust class for a POSIX class name (as an item inside a bracket), or `None` for a
/// name POSIX does not have. With `-i`, upper and lower mean any letter (as in GNU).
fn posix_class(name: &str, icase: bool) -> Option<String> {
    let body = match name {
        "upper" | "lower" if icase => "[\\p{Alphabetic}\\p{Nd}--0-9]".to_string(),
        "upper" => "\\p{Uppercase}".into(),
        "lower" => "\\p{Lowercase}".into(),
        // glibc counts non-ASCII digits as letters; `[:digit:]` is ASCII only.
        "alpha" => "[\\p{Alphabetic}\\p{Nd}--0-9]".into(),
        "digit" => "0-9".into(),
        "alnum" => ALNUM.into(),
        "xdigit" => "0-9A-Fa-f".into(),
        "space" => SPACE.into(),
        "blank" => BLANK.into(),
        // glibc: punct is every printable character that is neither alnum nor space (so a
        // no-break space is punctuation), graph is print without space.
        "punct" => format!("^\\p{{Cc}}\\p{{Cn}}{SPACE}{ALNUM}"),
        "cntrl" => "\\p{Cc}\\x{2028}\\x{2029}".into(),
        "print" => "^\\p{Cc}\\p{Cn}\\x{2028}\\x{2029}".into(),
        "graph" => format!("^\\p{{Cc}}\\p{{Cn}}{SPACE}"),
        _ => return None,
    };
    Some(if body.starts_with('[') {
        body
    } else {
        format!("[{body}]")
    })
}

const UNMATCHED_BRACKET: &str = "Unmatched [, [^, [:, [., or [=";

impl Parser {
    /// A bracket expression, after its `[`.
    fn bracket(&mut self) -> Result<String, PatternError> {
        let open = self.at;
        let negated = self.peek() == Some('^');
        if negated {
            self.at += 1;
        }
        let mut out = String::from("[");
        out.push_str(neg(negated));
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return err(UNMATCHED_BRACKET);
            };
            if c == ']' && !first {
                self.at += 1;
                break;
            }
            first = false;
            let lo = match self.bracket_item()? {
                Item::Class(text) => {
                    out.push_str(&text);
                    continue;
                }
                Item::Char(c) => c,
            };
            // A range `lo-hi`, unless the `-` is the last thing before `]`.
            if self.peek() == Some('-') && self.peek2().is_some_and(|c| c != ']') {
                self.at += 1;
                let hi = match self.bracket_item()? {
                    Item::Char(c) => c,
                    Item::Class(_) => return err("Invalid range end"),
                };
                if hi < lo {
                    return err("Invalid range end");
                }
                let _ = write!(out, "{}-{}", lit(lo), lit(hi));
            } else {
                out.push_str(&lit(lo));
            }
        }
        let raw: String = self.chars[open..self.at - 1].iter().collect();
        if raw.len() >= 2 && raw.starts_with(':') && raw.ends_with(':') {
            return Err(PatternError(format!(
                "character class syntax is [[{raw}]], not [{raw}]"
            )));
        }
        out.push(']');
        Ok(out)
    }

    /// One item inside a bracket: a character, `[:class:]`, `[=c=]` or `[.c.]`.
    fn bracket_item(&mut self) -> Result<Item, PatternError> {
        let c = self
            .peek()
            .ok_or_else(|| PatternError(UNMATCHED_BRACKET.into()))?;
        self.at += 1;
        let kind = match (c, self.peek()) {
            ('[', Some(k @ (':' | '=' | '.'))) => k,
            _ => return Ok(Item::Char(c)),
        };
        self.at += 1;
        let start = self.at;
        while !(self.peek() == Some(kind) && self.peek2() == Some(']')) {
            if self.peek().is_none() {
                return err(UNMATCHED_BRACKET);
            }
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        self.at += 2;
        if kind == ':' {
            return posix_class(&name, self.icase)
                .map(Item::Class)
                .ok_or_else(|| PatternError("Invalid character class name".into()));
        }
        let mut it = name.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => Ok(Item::Char(c)),
            _ => err("Invalid collation character"),
        }
    }
}

enum Item {
    Char(char),
    Class(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str, s: Syntax) -> String {
        translate(p, s, false).unwrap().0
    }

    fn fails(p: &str, s: Syntax) -> String {
        translate(p, s, false).unwrap_err().0
    }

    fn matches(p: &str, s: Syntax, hay: &str) -> Option<String> {
        let re = regex::Regex::new(&ok(p, s)).unwrap();
        re.find(hay).map(|m| m.as_str().to_string())
    }

    #[test]
    fn bre_operators_need_backslashes() {
        use Syntax::Basic as B;
        assert_eq!(matches("a\\+", B, "caaat").as_deref(), Some("aaa"));
        assert_eq!(matches("a+", B, "caaat"), None);
        assert_eq!(matches("a+", B, "a+").as_deref(), Some("a+"));
        assert_eq!(matches("o\\{2\\}", B, "foo").as_deref(), Some("oo"));
        assert_eq!(matches("\\(ab\\)*c", B, "ababc").as_deref(), Some("ababc"));
        assert_eq!(matches("x\\|y", B, "y").as_deref(), Some("y"));
        assert_eq!(matches("*a", B, "*a").as_deref(), Some("*a"));
        assert_eq!(matches("a^b$c", B, "a^b$c").as_deref(), Some("a^b$c"));
        assert_eq!(matches("^*", B, "*x").as_deref(), Some("*"));
    }

    #[test]
    fn ere_operators() {
        use Syntax::Extended as E;
        assert_eq!(matches("a{1", E, "a{1").as_deref(), Some("a{1"));
        assert_eq!(matches("(ab)+", E, "xababy").as_deref(), Some("abab"));
        assert_eq!(matches("a)", E, "a)").as_deref(), Some("a)"));
        assert_eq!(matches("*a", E, "a").as_deref(), Some("a"));
        assert_eq!(matches("a{1,2}{2}", E, "aaa").as_deref(), Some("aaa"));
        assert_eq!(matches("\\d", E, "1d").as_deref(), Some("d"));
    }

    #[test]
    fn brackets() {
        use Syntax::Basic as B;
        assert_eq!(matches("[]a]*", B, "]a]").as_deref(), Some("]a]"));
        assert_eq!(matches("[^]a]", B, "]ab").as_deref(), Some("b"));
        assert_eq!(matches("[a-]*", B, "a-a").as_deref(), Some("a-a"));
        assert_eq!(matches("[\\n]*", B, "\\n").as_deref(), Some("\\n"));
        assert_eq!(matches("[[:upper:]]*", B, "CAFÉ").as_deref(), Some("CAFÉ"));
        assert_eq!(matches("[[=a=]]", B, "a").as_deref(), Some("a"));
        assert_eq!(matches("[[:digit:]]", B, "٣3").as_deref(), Some("3"));
    }

    #[test]
    fn gnu_errors() {
        use Syntax::{Basic as B, Extended as E};
        assert_eq!(fails("[[:digits:]]", B), "Invalid character class name");
        assert_eq!(fails("[[:space]]", B), UNMATCHED_BRACKET);
        assert_eq!(fails("[abc", E), UNMATCHED_BRACKET);
        assert!(fails("[:space:]", B).starts_with("character class syntax is"));
        assert_eq!(fails("[z-a]", B), "Invalid range end");
        assert_eq!(fails("[[.space.]]", B), "Invalid collation character");
        assert_eq!(fails("a\\", B), "Trailing backslash");
        assert_eq!(fails("\\(a", B), "Unmatched ( or \\(");
        assert_eq!(fails("a\\)", B), "Unmatched ) or \\)");
        assert_eq!(fails("(a", E), "Unmatched ( or \\(");
        assert_eq!(fails("a\\{1", B), "Unmatched \\{");
        assert_eq!(fails("a{2,1}", E), "Invalid content of \\{\\}");
        assert_eq!(fails("a{99999}", E), "Regular expression too big");
        assert_eq!(fails("\\(a\\)\\1", B), "back-references are not supported");
    }

    #[test]
    fn fixed_and_rust() {
        assert_eq!(ok("a.b*", Syntax::Fixed), "a\\.b\\*");
        assert_eq!(ok("\\d+", Syntax::Rust), "\\d+");
    }
}
