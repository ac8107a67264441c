//! Expressions, awk-style: filters (`$3 > 20`, `status >= 500 && path ~ "^/api"`,
//! `!(method == "GET") || agent !~ /bot/i`), arithmetic and functions over fields
//! (`bytes / 1024 > 10`, `lower(method) == "get"`, `url_param(request, "id")`,
//! `$(NF-1)`), and the columns of `stats` (`count_if(status >= 500) * 100 / count as
//! err_pct`).
//!
//! Grammar (loosest first): `a || b`, `a && b`, `!a`, comparisons `== != < <= > >=` and
//! regex match `~ !~` (right side a "string" or /regex/, compiled once), `+ -`, `* / %`,
//! unary `-`, operands: `$N`, `$0`, `$(EXPR)`, `NF`, field names, "strings", numbers,
//! function calls ([`func`]), parentheses. `and`, `or`, `not` are accepted for `&&`, `||`,
//! `!`.
//!
//! Comparison follows awk: if both sides look numeric (a number, or a field or function text
//! that parses as a number) they compare as numbers, otherwise as byte strings; a string
//! literal makes it a string comparison. A missing field is the empty string (0 when compared
//! with a number). Arithmetic on a missing field or on text that is not a number has no value
//! (unlike awk's 0), so that aggregates skip it as they skip Apache's `-` for an empty body.
//! A bare operand is true when it is neither empty nor numerically zero.

pub mod func;
mod lex;
mod parse;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regex::bytes::Regex;
use thiserror::Error;

use crate::formats::{FieldRef, Record};
use func::Func;
pub use parse::Column;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("expression error {}: {msg}", where_(*.pos))]
pub struct ParseError {
    /// Byte offset in the expression; `usize::MAX` for "at the end".
    pub pos: usize,
    pub msg: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone)]
pub enum Expr {
    /// Any of the terms (a chain `a || b || c` is one flat list, so that a long chain is no
    /// deeper to evaluate or drop than a short one).
    Or(Vec<Expr>),
    /// All of the terms.
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    Match(Box<Expr>, Regex, bool),
    /// `first op1 e1 op2 e2 ...`, left to right, one precedence level (flat, as `Or`).
    Arith(Box<Expr>, Vec<(ArithOp, Expr)>),
    Neg(Box<Expr>),
    /// `$N`, `$0`.
    Field(FieldRef),
    /// A field by name, remembering whether any line had it.
    Name(Arc<Named>),
    /// `$(EXPR)`, `$NF`.
    DynField(Box<Expr>),
    /// The number of whitespace-separated fields.
    Nf,
    /// The line number (awk's `NR`), in `where` and `print`.
    Nr,
    Str(Vec<u8>),
    Num(f64),
    Call(Func, Vec<Expr>),
    /// The value of an aggregate, in a `stats` column (an index into its aggregate list).
    Agg(usize),
}

/// A named field of an expression, and whether some line was asked for it and some line had
/// it (shared by the workers; each flag is set once, so that the hot path only reads them).
#[derive(Debug)]
pub struct Named {
    field: FieldRef,
    tried: AtomicBool,
    found: AtomicBool,
}

impl Named {
    pub fn new(name: String) -> Named {
        Named {
            field: FieldRef::Name(name),
            tried: AtomicBool::new(false),
            found: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        match &self.field {
            FieldRef::Name(n) => n,
            _ => "",
        }
    }

    pub fn tried(&self) -> bool {
        self.tried.load(Ordering::Relaxed)
    }

    pub fn found(&self) -> bool {
        self.found.load(Ordering::Relaxed)
    }

    fn get<'a>(&self, rec: &mut Record<'a>) -> Option<Cow<'a, [u8]>> {
        let v = rec.get(&self.field);
        if !self.tried() {
            self.tried.store(true, Ordering::Relaxed);
        }
        if v.is_some() && !self.found() {
            self.found.store(true, Ordering::Relaxed);
        }
        v
    }
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

/// A value while evaluating.
pub enum Value<'a> {
    /// A string literal: compares as a string.
    Str(Cow<'a, [u8]>),
    /// Text of a field or function: compares as a number when it looks like one.
    Text(Cow<'a, [u8]>),
    Num(f64),
    Missing,
}

impl<'a> Value<'a> {
    /// The value as a number for arithmetic and aggregates (`None`: not a number).
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Str(s) | Value::Text(s) => as_number(s),
            Value::Missing => None,
        }
    }

    /// The value as text (a number formatted as awk prints it).
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Str(s) | Value::Text(s) => Cow::Borrowed(s),
            Value::Num(n) => Cow::Owned(fmt_num(*n).into_bytes()),
            Value::Missing => Cow::Borrowed(b""),
        }
    }

    fn into_bytes(self) -> Cow<'a, [u8]> {
        match self {
            Value::Str(s) | Value::Text(s) => s,
            Value::Num(n) => Cow::Owned(fmt_num(n).into_bytes()),
            Value::Missing => Cow::Borrowed(b""),
        }
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Num(n) => *n != 0.0,
            Value::Str(s) | Value::Text(s) => !s.is_empty() && as_number(s) != Some(0.0),
            Value::Missing => false,
        }
    }
}

impl Expr {
    /// A filter expression.
    pub fn parse(src: &str) -> Result<Expr, ParseError> {
        parse::Parser::new(src, false)?.filter()
    }

    /// A `stats` column list: the aggregates to compute and the columns made of them.
    pub fn parse_columns(src: &str) -> Result<(Vec<AggSpec>, Vec<Column>), ParseError> {
        parse::Parser::new(src, true)?.columns()
    }

    /// A field list (`ip,path`, `1 7`, `$NF, url_path(path)`): each expression and its label.
    pub fn parse_list(src: &str) -> Result<Vec<(String, Expr)>, ParseError> {
        parse::Parser::new(src, false)?.list()
    }

    /// Whether the line passes the filter.
    pub fn eval(&self, rec: &mut Record<'_>) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|t| t.eval(rec)),
            Expr::And(terms) => terms.iter().all(|t| t.eval(rec)),
            Expr::Not(a) => !a.eval(rec),
            Expr::Match(o, re, negate) => re.is_match(&o.value(rec).bytes()) != *negate,
            Expr::Cmp(a, op, b) => compare(&a.value(rec), *op, &b.value(rec)),
            other => other.value(rec).truthy(),
        }
    }

    /// The expression's value for the line.
    pub fn value<'a>(&self, rec: &mut Record<'a>) -> Value<'a> {
        match self {
            Expr::Field(f) => rec.get(f).map_or(Value::Missing, Value::Text),
            Expr::Name(n) => n.get(rec).map_or(Value::Missing, Value::Text),
            Expr::Num(n) => Value::Num(*n),
            Expr::Str(s) => Value::Str(Cow::Owned(s.clone())),
            Expr::Or(_) | Expr::And(_) | Expr::Not(_) | Expr::Match(..) | Expr::Cmp(..) => {
                Value::Num(self.eval(rec) as u8 as f64)
            }
            Expr::Arith(first, rest) => {
                let Some(mut acc) = first.value(rec).number() else {
                    return Value::Missing;
                };
                for (op, e) in rest {
                    let Some(x) = e.value(rec).number() else {
                        return Value::Missing;
                    };
                    acc = match op {
                        ArithOp::Add => acc + x,
                        ArithOp::Sub => acc - x,
                        ArithOp::Mul => acc * x,
                        ArithOp::Div if x == 0.0 => return Value::Missing,
                        ArithOp::Div => acc / x,
                        ArithOp::Rem if x == 0.0 => return Value::Missing,
                        ArithOp::Rem => acc % x,
                    };
                }
                num(acc)
            }
            Expr::Neg(a) => a.value(rec).number().map_or(Value::Missing, |n| num(-n)),
            Expr::DynField(e) => match e.value(rec).number() {
                Some(n) if n >= 0.0 && n < usize::MAX as f64 => {
                    let f = match n as usize {
                        0 => FieldRef::Line,
                        k => FieldRef::Num(k),
                    };
                    rec.get(&f).map_or(Value::Missing, Value::Text)
                }
                _ => Value::Missing,
            },
            Expr::Nf => Value::Num(rec.nf() as f64),
            Expr::Nr => Value::Num(rec.nr as f64),
            Expr::Call(f, args) => call(*f, args, rec),
            Expr::Agg(_) => Value::Missing,
        }
    }
}

impl Expr {
    /// Every named field the expression reads.
    pub fn names(&self, out: &mut Vec<Arc<Named>>) {
        match self {
            Expr::Name(n) => out.push(n.clone()),
            Expr::Or(v) | Expr::And(v) | Expr::Call(_, v) => v.iter().for_each(|e| e.names(out)),
            Expr::Not(a) | Expr::Match(a, ..) | Expr::Neg(a) | Expr::DynField(a) => a.names(out),
            Expr::Cmp(a, _, b) => {
                a.names(out);
                b.names(out);
            }
            Expr::Arith(a, rest) => {
                a.names(out);
                rest.iter().for_each(|(_, e)| e.names(out));
            }
            Expr::Field(_) | Expr::Nf | Expr::Nr | Expr::Str(_) | Expr::Num(_) | Expr::Agg(_) => {}
        }
    }

    /// Whether the expression reads `NR` (which needs the lines counted in order).
    pub fn uses_nr(&self) -> bool {
        match self {
            Expr::Nr => true,
            Expr::Or(v) | Expr::And(v) | Expr::Call(_, v) => v.iter().any(Expr::uses_nr),
            Expr::Not(a) | Expr::Match(a, ..) | Expr::Neg(a) | Expr::DynField(a) => a.uses_nr(),
            Expr::Cmp(a, _, b) => a.uses_nr() || b.uses_nr(),
            Expr::Arith(a, rest) => a.uses_nr() || rest.iter().any(|(_, e)| e.uses_nr()),
            Expr::Field(_)
            | Expr::Name(_)
            | Expr::Nf
            | Expr::Str(_)
            | Expr::Num(_)
            | Expr::Agg(_) => false,
        }
    }
}

/// A finite number, or no value (`inf`, `NaN` from overflow).
fn num(n: f64) -> Value<'static> {
    if n.is_finite() {
        Value::Num(n)
    } else {
        Value::Missing
    }
}

fn compare(va: &Value<'_>, op: CmpOp, vb: &Value<'_>) -> bool {
    use std::cmp::Ordering::*;
    let literal = matches!(va, Value::Str(_)) || matches!(vb, Value::Str(_));
    let as_num = |v: &Value<'_>| match v {
        Value::Missing => Some(0.0),
        v => v.number(),
    };
    let ord = match (va, vb) {
        _ if literal => va.bytes().cmp(&vb.bytes()),
        (Value::Missing, Value::Missing) => Equal,
        _ => match (as_num(va), as_num(vb)) {
            (Some(x), Some(y)) => match x.partial_cmp(&y) {
                Some(o) => o,
                None => return false,
            },
            _ => va.bytes().cmp(&vb.bytes()),
        },
    };
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
    }
}

/// Applies `f` to the text, keeping a borrow of the line when it was one.
fn map_text<'a>(c: Cow<'a, [u8]>, f: impl FnOnce(&[u8]) -> &[u8]) -> Cow<'a, [u8]> {
    match c {
        Cow::Borrowed(b) => Cow::Borrowed(f(b)),
        Cow::Owned(v) => Cow::Owned(f(&v).to_vec()),
    }
}

fn call<'a>(f: Func, args: &[Expr], rec: &mut Record<'a>) -> Value<'a> {
    let text = args[0].value(rec).into_bytes();
    let mut nth = |i: usize| args.get(i).map(|e| e.value(rec).number());
    let number = |o: Option<f64>| o.map_or(Value::Missing, num);
    match f {
        Func::Length => Value::Num(func::length(&text)),
        Func::Lower => Value::Text(Cow::Owned(func::lower(&text))),
        Func::Upper => Value::Text(Cow::Owned(func::upper(&text))),
        Func::Substr => match (nth(1), nth(2)) {
            (Some(Some(m)), None) => Value::Text(map_text(text, |t| func::substr(t, m, None))),
            (Some(Some(m)), Some(Some(n))) => {
                Value::Text(map_text(text, |t| func::substr(t, m, Some(n))))
            }
            _ => Value::Missing,
        },
        Func::UrlPath => Value::Text(map_text(text, func::url_path)),
        Func::UrlQuery => Value::Text(map_text(text, func::url_query)),
        Func::UrlParam => {
            let name = args[1].value(rec).into_bytes();
            match func::url_param(&text, &name) {
                Some(v) => Value::Text(Cow::Owned(v.into_owned())),
                None => Value::Missing,
            }
        }
        Func::IpPrefix => match nth(1) {
            Some(None) => Value::Missing,
            bits => func::ip_prefix(&text, bits.flatten())
                .map_or(Value::Missing, |v| Value::Text(Cow::Owned(v))),
        },
        Func::Duration => number(func::duration(&text)),
        Func::Size => number(func::size(&text)),
        Func::Int => number(as_number(&text).map(f64::trunc)),
        Func::Round => number(as_number(&text).map(f64::round)),
        Func::Abs => number(as_number(&text).map(f64::abs)),
    }
}

/// A number as awk prints it: integers without a fraction.
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Deepest nesting of `(`, `!`, unary `-`, `$` and calls accepted: parsing, evaluating and
/// dropping recurse once per level, and a hostile `((((...` must be a parse error, not a
/// stack overflow.
pub const MAX_DEPTH: usize = 100;

/// An aggregate's kind (what `stats` computes); defined beside the expressions that parse it,
/// so `agg` depends on `expr` and not the reverse.
#[derive(Debug, Clone, PartialEq)]
pub enum AggKind {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    /// Percentile, 0..=100.
    Pct(f64),
}

/// One aggregate of a `stats` column list: `sum(bytes)`, `count_if(status >= 500)`,
/// `p99_if(duration(rt), path ~ "^/api")`.
#[derive(Debug, Clone)]
pub struct AggSpec {
    pub kind: AggKind,
    /// The value aggregated (none for `count`).
    pub arg: Option<Expr>,
    /// Only lines for which this holds are aggregated (the `_if` forms).
    pub cond: Option<Expr>,
    pub label: String,
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
        assert!(e.msg.contains("nested more than 100"), "{e}");
        assert!(Expr::parse(&"!".repeat(100_000)).is_err());
        let ok = format!("{}$1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(eval(&ok, "x", Format::Plain));
        // A long chain is flat: evaluating it must not recurse per term.
        let chain = vec!["$1 == \"a\""; 200_000].join(" || ") + " || $1 == \"x\"";
        assert!(eval(&chain, "x", Format::Plain));
        assert!(!eval(&chain, "y", Format::Plain));
    }

    #[test]
    fn arithmetic_and_functions() {
        let p = Format::Plain;
        assert!(eval("$1 + $2 * 2 == 7", "1 3", p));
        assert!(eval("($1 + $2) * 2 == 8", "1 3", p));
        assert!(eval("$1 - 1 == 0", "1", p));
        assert!(eval("$1-1 == 0", "1", p));
        assert!(eval("-$1 == -4 && 10 % 4 == 2 && 7 / 2 == 3.5", "4", p));
        assert!(eval("$1 > $2", "10 9", p));
        // No value from arithmetic on a missing field or text, nor from a division by zero.
        assert!(!eval("$3 + 1 > 0", "1 2", p));
        assert!(eval("$1 / 0 == \"\" && $3 * 2 == \"\"", "1 x", p));
        assert!(eval(
            "NF == 3 && $NF == \"c\" && $(NF-1) == \"b\" && $(NF-4) == \"\"",
            " a  b c ",
            p
        ));
        assert!(eval("$(NF-3) == $0", "a b c", p));
        assert!(eval(
            "length($1) == 5 && upper($1) == \"HÉLLO\"",
            "héllo",
            p
        ));
        assert!(eval(
            "substr($1, 2, 3) == \"ell\" && lower(\"AbC\") == \"abc\"",
            "hello",
            p
        ));
        // Function text that looks numeric compares as a number.
        assert!(eval("substr($1, 1, 2) > 9", "10x", p));
        assert!(eval("duration($1) > 0.2 && duration($1) < 0.3", "250ms", p));
        assert!(eval("size($1) == 10240", "10K", p));
        assert!(eval(
            "int($1) == -2 && round($1) == -3 && abs($1) == 2.5",
            "-2.5",
            p
        ));
        let line = r#"10.0.7.9 - - [23/Nov/2026:06:00:00 +0000] "GET /api/v1/items?id=42&x=y HTTP/1.1" 503 2048 "-" "curl/8""#;
        let clf = Format::Clf;
        assert!(eval(r#"url_path(path) == "/api/v1/items""#, line, clf));
        assert!(eval(r#"url_query(path) == "id=42&x=y""#, line, clf));
        assert!(eval(r#"url_param(path, "id") == 42"#, line, clf));
        assert!(eval(r#"ip_prefix(ip, 16) == "10.0.0.0/16""#, line, clf));
        assert!(eval("bytes / 1024 == 2 && status - 3 == 500", line, clf));
        assert!(eval("(status >= 500) + 1 == 2", line, clf));
    }

    #[test]
    fn field_lists() {
        let labels = |s: &str| -> Vec<String> {
            Expr::parse_list(s)
                .unwrap()
                .into_iter()
                .map(|(l, _)| l)
                .collect()
        };
        assert_eq!(labels("1 7"), ["$1", "$7"]);
        assert_eq!(labels("1,7, 0"), ["$1", "$7", "$0"]);
        assert_eq!(labels("$1 $7 ip"), ["$1", "$7", "ip"]);
        assert_eq!(
            labels("$NF, url_path(path), bytes / 1024"),
            ["$NF", "url_path(path)", "bytes/1024"]
        );
        assert_eq!(labels("1 + 2, 3"), ["1+2", "$3"]);
        assert!(Expr::parse_list("").is_err());
    }

    #[test]
    fn call_errors() {
        for bad in [
            "nope(1)",
            "substr($1)",
            "length($1, 2)",
            "count",
            "$1 +",
            "1 2",
        ] {
            let e = Expr::parse(bad);
            if bad == "count" {
                assert!(e.is_ok(), "count is a field name in a filter");
            } else {
                assert!(e.is_err(), "{bad}");
            }
        }
        assert!(Expr::parse("nope(1)")
            .unwrap_err()
            .msg
            .contains("unknown function"));
        let long = vec!["-"; 100_000].join("") + "1";
        assert!(Expr::parse(&long).is_err());
        let sum = vec!["1"; 100_000].join(" + ") + " == 100000";
        assert!(eval(&sum, "", Format::Plain));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(Expr::parse("$3 >").unwrap_err().pos, usize::MAX);
        assert_eq!(Expr::parse("a ~ b").unwrap_err().pos, 4);
        assert!(Expr::parse("(a == 1").is_err());
        assert!(Expr::parse("a == 1 )").is_err());
    }
}
