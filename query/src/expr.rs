//! Filter expressions, awk-style: `$3 > 20`, `status >= 500 && path ~ "^/api"`,
//! `!(method == "GET") || agent !~ /bot/i`.
//!
//! Grammar (loosest first): `a || b`, `a && b`, `!a`, comparisons `== != < <= > >=`, regex
//! match `~ !~` (right side a "string" or /regex/, compiled once), operands `$N`, `$0`, field
//! names, "strings", numbers, parentheses. `and`, `or`, `not` are accepted for `&&`, `||`, `!`.
//!
//! Comparison follows awk: if both sides look numeric (a number literal, or a field whose value
//! parses as a number) they compare as numbers, otherwise as byte strings. A missing field is
//! the empty string (0 when compared with a number). A bare operand is true when it is neither
//! empty nor numerically zero.

use std::borrow::Cow;

use regex::bytes::Regex;
use thiserror::Error;

use crate::formats::{FieldRef, Record};

#[derive(Debug, Error, PartialEq, Eq)]
#[error("expression error {}: {msg}", where_(*.pos))]
pub struct ParseError {
    /// Byte offset in the expression; `usize::MAX` for "at the end".
    pub pos: usize,
    pub msg: String,
}

#[derive(Debug, Clone)]
pub enum Operand {
    Field(FieldRef),
    Str(Vec<u8>),
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub enum Expr {
    /// Any of the terms (a chain `a || b || c` is one flat list, so that a long chain is no
    /// deeper to evaluate or drop than a short one).
    Or(Vec<Expr>),
    /// All of the terms.
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    Match(Operand, Regex, bool),
    Truthy(Operand),
}

fn where_(pos: usize) -> String {
    if pos == usize::MAX {
        "at the end".to_string()
    } else {
        format!("at offset {pos}")
    }
}

/// Parses a number the way awk recognises numeric strings (surrounding blanks allowed).
pub fn as_number(b: &[u8]) -> Option<f64> {
    let b = b.trim_ascii();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None;
    }
    if b.len() <= 18 && b.iter().all(u8::is_ascii_digit) {
        return Some(b.iter().fold(0u64, |v, &c| v * 10 + (c - b'0') as u64) as f64);
    }
    std::str::from_utf8(b).ok()?.parse::<f64>().ok()
}

enum Value<'a> {
    Str(Cow<'a, [u8]>),
    Num(f64),
    Missing,
}

impl Expr {
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        let mut p = Parser {
            toks: tokenize(src)?,
            i: 0,
            depth: 0,
        };
        let e = p.or()?;
        if let Some((pos, t)) = p.toks.get(p.i) {
            return Err(ParseError {
                pos: *pos,
                msg: format!("unexpected {t:?}"),
            });
        }
        Ok(e)
    }

    pub fn eval(&self, rec: &mut Record<'_>) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|t| t.eval(rec)),
            Expr::And(terms) => terms.iter().all(|t| t.eval(rec)),
            Expr::Not(a) => !a.eval(rec),
            Expr::Truthy(o) => match value(o, rec) {
                Value::Num(n) => n != 0.0,
                Value::Str(s) => !s.is_empty() && as_number(&s) != Some(0.0),
                Value::Missing => false,
            },
            Expr::Match(o, re, negate) => {
                let hit = match value(o, rec) {
                    Value::Str(s) => re.is_match(&s),
                    Value::Num(n) => re.is_match(fmt_num(n).as_bytes()),
                    Value::Missing => re.is_match(b""),
                };
                hit != *negate
            }
            Expr::Cmp(a, op, b) => {
                let (a_lit, b_lit) = (matches!(a, Operand::Str(_)), matches!(b, Operand::Str(_)));
                let (va, vb) = (value(a, rec), value(b, rec));
                let ord = match (&va, &vb) {
                    _ if a_lit || b_lit => bytes_of(&va).cmp(&bytes_of(&vb)),
                    (Value::Missing, Value::Missing) => std::cmp::Ordering::Equal,
                    _ => match (num_of(&va), num_of(&vb)) {
                        (Some(x), Some(y)) => match x.partial_cmp(&y) {
                            Some(o) => o,
                            None => return false,
                        },
                        _ => bytes_of(&va).cmp(&bytes_of(&vb)),
                    },
                };
                use std::cmp::Ordering::*;
                match op {
                    CmpOp::Eq => ord == Equal,
                    CmpOp::Ne => ord != Equal,
                    CmpOp::Lt => ord == Less,
                    CmpOp::Le => ord != Greater,
                    CmpOp::Gt => ord == Greater,
                    CmpOp::Ge => ord != Less,
                }
            }
        }
    }

    /// Every field the expression reads (to know whether lines need parsing).
    pub fn fields(&self, out: &mut Vec<FieldRef>) {
        let op = |o: &Operand, out: &mut Vec<FieldRef>| {
            if let Operand::Field(f) = o {
                out.push(f.clone());
            }
        };
        match self {
            Expr::Or(terms) | Expr::And(terms) => {
                for t in terms {
                    t.fields(out);
                }
            }
            Expr::Not(a) => a.fields(out),
            Expr::Cmp(a, _, b) => {
                op(a, out);
                op(b, out);
            }
            Expr::Match(a, _, _) | Expr::Truthy(a) => op(a, out),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn value<'a>(o: &Operand, rec: &mut Record<'a>) -> Value<'a> {
    match o {
        Operand::Field(f) => match rec.get(f) {
            Some(v) => Value::Str(v),
            None => Value::Missing,
        },
        Operand::Str(s) => Value::Str(Cow::Owned(s.clone())),
        Operand::Num(n) => Value::Num(*n),
    }
}

fn num_of(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Num(n) => Some(*n),
        Value::Str(s) => as_number(s),
        Value::Missing => Some(0.0),
    }
}

fn bytes_of<'v>(v: &'v Value<'_>) -> Cow<'v, [u8]> {
    match v {
        Value::Str(s) => Cow::Borrowed(s),
        Value::Num(n) => Cow::Owned(fmt_num(*n).into_bytes()),
        Value::Missing => Cow::Borrowed(b""),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Str(String),
    Regex(String, bool),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
}

fn tokenize(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, msg: &str| ParseError {
        pos,
        msg: msg.to_string(),
    };
    let prev_is_match =
        |out: &Vec<(usize, Tok)>| matches!(out.last(), Some((_, Tok::Op("~" | "!~"))));
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'"' | b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(err(start, "unterminated string"));
                    };
                    i += 1;
                    if ch == c {
                        break;
                    }
                    if ch == b'\\' && b.get(i) == Some(&c) {
                        s.push(c as char);
                        i += 1;
                        continue;
                    }
                    // Keep other escapes for the regex engine (`"\d+"`).
                    let len = utf8_len(ch);
                    s.push_str(&src[i - 1..i - 1 + len]);
                    i += len - 1;
                }
                Tok::Str(s)
            }
            b'/' if prev_is_match(&out) => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(err(start, "unterminated /regex/"));
                    };
                    if ch == b'/' {
                        i += 1;
                        break;
                    }
                    if ch == b'\\' && b.get(i + 1) == Some(&b'/') {
                        s.push('/');
                        i += 2;
                        continue;
                    }
                    let len = utf8_len(ch);
                    s.push_str(&src[i..i + len]);
                    i += len;
                }
                let ci = b.get(i) == Some(&b'i');
                if ci {
                    i += 1;
                }
                Tok::Regex(s, ci)
            }
            b'$' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == start + 1 {
                    return Err(err(start, "expected a field number after $"));
                }
                Tok::Field(src[start..i].to_string())
            }
            // A negative literal (there is no subtraction to confuse it with), or a number;
            // an exponent may have a sign (`1e-3`).
            b'-' | b'0'..=b'9' | b'.'
                if c != b'-'
                    || b.get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b'.') =>
            {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_digit()
                        || b[i] == b'.'
                        || b[i] == b'e'
                        || (b"+-".contains(&b[i]) && b[i - 1] == b'e'))
                {
                    i += 1;
                }
                let n = src[start..i]
                    .parse()
                    .map_err(|_| err(start, "bad number"))?;
                Tok::Num(n)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'@' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.@".contains(&b[i])) {
                    i += 1;
                }
                match &src[start..i] {
                    "and" => Tok::Op("&&"),
                    "or" => Tok::Op("||"),
                    "not" => Tok::Op("!"),
                    name => Tok::Field(name.to_string()),
                }
            }
            _ => {
                const OPS: [&str; 12] = [
                    "==", "!=", "<=", ">=", "&&", "||", "!~", "<", ">", "~", "!", "=",
                ];
                let op = OPS
                    .iter()
                    .find(|op| src[i..].starts_with(**op))
                    .ok_or_else(|| err(start, &format!("unexpected character {:?}", c as char)))?;
                i += op.len();
                // A lone `=` is a typo for `==` often enough to accept it.
                Tok::Op(if *op == "=" { "==" } else { op })
            }
        };
        out.push((start, tok));
    }
    Ok(out)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Deepest nesting of `(` and `!` accepted: parsing, evaluating and dropping recurse once per
/// level, and a hostile `((((...` must be a parse error, not a stack overflow.
pub const MAX_DEPTH: usize = 256;

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    /// Current nesting of `(` and `!`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map(|t| t.0).unwrap_or(usize::MAX)
    }

    fn err<T>(&self, msg: &str) -> Result<T, ParseError> {
        Err(ParseError {
            pos: self.pos(),
            msg: msg.to_string(),
        })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(&Tok::Op("||")) {
            self.i += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.not()?];
        while self.peek() == Some(&Tok::Op("&&")) {
            self.i += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth == MAX_DEPTH {
            return self.err(&format!(
                "nested more than {MAX_DEPTH} levels deep (parentheses and !)"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Op("!")) {
            self.enter()?;
            self.i += 1;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::LParen) {
            self.enter()?;
            self.i += 1;
            let e = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return self.err("expected )");
            }
            self.i += 1;
            self.depth -= 1;
            return Ok(e);
        }
        let lhs = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return Ok(Expr::Truthy(lhs)),
        };
        let cmp = match op {
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "~" | "!~" => {
                self.i += 1;
                let (src, ci) = match self.peek().cloned() {
                    Some(Tok::Str(s)) => (s, false),
                    Some(Tok::Regex(s, ci)) => (s, ci),
                    _ => return self.err("expected a \"string\" or /regex/ after ~"),
                };
                let re = regex::bytes::RegexBuilder::new(&src)
                    .case_insensitive(ci)
                    .build()
                    .map_err(|e| ParseError {
                        pos: self.pos(),
                        msg: format!("bad regex: {e}"),
                    })?;
                self.i += 1;
                return Ok(Expr::Match(lhs, re, op == "!~"));
            }
            _ => return Ok(Expr::Truthy(lhs)),
        };
        self.i += 1;
        let rhs = self.operand()?;
        Ok(Expr::Cmp(lhs, cmp, rhs))
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let t = match self.peek() {
            Some(t) => t.clone(),
            None => return self.err("expression ends too early"),
        };
        let o = match t {
            Tok::Field(name) => match FieldRef::parse(&name) {
                Some(f) => Operand::Field(f),
                None => return self.err(&format!("bad field {name:?}")),
            },
            Tok::Str(s) => Operand::Str(s.into_bytes()),
            Tok::Num(n) => Operand::Num(n),
            _ => return self.err("expected a field, string or number"),
        };
        self.i += 1;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::Format;

    fn eval(expr: &str, line: &str, fmt: Format) -> bool {
        let e = Expr::parse(expr).unwrap();
        e.eval(&mut Record::new(line.as_bytes(), fmt, 0))
    }

    #[test]
    fn awk_comparisons() {
        assert!(eval("$3 > 20", "root 1 25.5 x", Format::Plain));
        assert!(!eval("$3 > 20", "root 1 3.0 x", Format::Plain));
        // Numeric, not string, comparison: "9" < "10".
        assert!(eval("$1 < $2", "9 10", Format::Plain));
        // Negative literals and signed exponents.
        assert!(eval("$1 > -5", "-3", Format::Plain));
        assert!(!eval("$1 > -5", "-7", Format::Plain));
        assert!(eval("$1 < 1e-2", "0.001", Format::Plain));
        assert!(Expr::parse("$1 > -").is_err());
        // A string literal makes it a string comparison.
        assert!(eval("$1 > \"10\"", "9 10", Format::Plain));
        assert!(!eval("$5 > 0", "a b", Format::Plain));
        assert!(eval(
            "$1 == \"a\" && !($2 == \"c\") || $9",
            "a b",
            Format::Plain
        ));
    }

    #[test]
    fn named_fields_and_regex() {
        let line = r#"10.0.0.1 - - [23/Nov/2026:06:00:00 +0000] "GET /api/v1/items HTTP/1.1" 503 12 "-" "curl/8""#;
        assert!(eval(
            r#"status >= 500 && path ~ "^/api""#,
            line,
            Format::Clf
        ));
        assert!(eval(
            "agent ~ /CURL/i and method == \"GET\"",
            line,
            Format::Clf
        ));
        assert!(!eval("path !~ /items/", line, Format::Clf));
    }

    #[test]
    fn deep_nesting_is_an_error_and_long_chains_are_fine() {
        let deep = format!("{}$1{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = Expr::parse(&deep).unwrap_err();
        assert!(e.msg.contains("nested more than 256"), "{e}");
        assert!(Expr::parse(&"!".repeat(100_000)).is_err());
        let ok = format!("{}$1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(eval(&ok, "x", Format::Plain));
        // A long chain is flat: evaluating it must not recurse per term.
        let chain = vec!["$1 == \"a\""; 200_000].join(" || ") + " || $1 == \"x\"";
        assert!(eval(&chain, "x", Format::Plain));
        assert!(!eval(&chain, "y", Format::Plain));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(Expr::parse("$3 >").unwrap_err().pos, usize::MAX);
        assert_eq!(Expr::parse("a ~ b").unwrap_err().pos, 4);
        assert!(Expr::parse("(a == 1").is_err());
        assert!(Expr::parse("a == 1 )").is_err());
    }
}
