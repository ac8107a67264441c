//! The expression parser (recursive descent, loosest first): `||`, `&&`, `!`, comparisons
//! and `~`, `+ -`, `* / %`, unary `-`, then operands. In a stats column list it also reads
//! aggregate calls (`count`, `sum(x)`, `count_if(cond)`, `p99_if(x, cond)`) and `as NAME`.

use super::func::{self, Func};
use super::lex::{tokenize, Spanned, Tok};
use super::{AggKind, AggSpec};
use super::{ArithOp, CmpOp, Expr, ParseError, MAX_DEPTH};
use crate::formats::FieldRef;

/// One output column of `stats`: arithmetic over aggregates.
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    /// Over [`Expr::Agg`] indices into the aggregate list, numbers and arithmetic only.
    pub expr: Expr,
}

pub struct Parser<'s> {
    src: &'s str,
    toks: Vec<Spanned>,
    i: usize,
    /// Current nesting of `(`, `!`, unary `-`, `$` and calls.
    depth: usize,
    /// The aggregates read so far, in a column list (`None` in a filter).
    aggs: Option<Vec<AggSpec>>,
    /// Inside an aggregate's arguments, where another aggregate cannot be.
    in_agg: bool,
}

impl<'s> Parser<'s> {
    pub fn new(src: &'s str, columns: bool) -> Result<Parser<'s>, ParseError> {
        Ok(Parser {
            src,
            toks: tokenize(src)?,
            i: 0,
            depth: 0,
            aggs: columns.then(Vec::new),
            in_agg: false,
        })
    }

    /// A whole filter expression.
    pub fn filter(mut self) -> Result<Expr, ParseError> {
        let e = self.or()?;
        self.at_end()?;
        Ok(e)
    }

    /// `COL [as NAME], ...`: the aggregates to compute and the columns made of them.
    pub fn columns(mut self) -> Result<(Vec<AggSpec>, Vec<Column>), ParseError> {
        let mut cols = Vec::new();
        while self.peek().is_some() {
            let start = self.pos();
            let expr = self.or()?;
            let end = self.toks[self.i - 1].1;
            check_column(&expr).map_err(|msg| ParseError { pos: start, msg })?;
            let label = match self.peek() {
                Some(Tok::Field(a)) if a == "as" => {
                    self.i += 1;
                    match self.peek() {
                        Some(Tok::Field(name)) if !name.starts_with('$') => {
                            let name = name.clone();
                            self.i += 1;
                            name
                        }
                        _ => return self.err("expected a column name after `as`"),
                    }
                }
                _ => squeeze(&self.src[start..end]),
            };
            cols.push(Column { label, expr });
            match self.peek() {
                Some(Tok::Comma) => self.i += 1,
                None => {}
                Some(_) => return self.err("expected , between columns"),
            }
        }
        if cols.is_empty() {
            return self.err("no aggregates given");
        }
        Ok((self.aggs.take().unwrap_or_default(), cols))
    }

    /// `ip,path`, `1 7`, `$NF, lower(method), bytes / 1024`: expressions separated by commas
    /// or blanks, each with its label (a bare whole number `N` is field `$N`).
    pub fn list(mut self) -> Result<Vec<(String, Expr)>, ParseError> {
        let mut out = Vec::new();
        while self.peek().is_some() {
            let start = self.pos();
            let e = match (self.peek().cloned(), self.peek_next()) {
                (
                    Some(Tok::Num(n)),
                    None
                    | Some(Tok::Comma | Tok::Num(_) | Tok::Field(_) | Tok::Dollar | Tok::Str(_)),
                ) if n.fract() == 0.0 && (0.0..1e15).contains(&n) => {
                    self.i += 1;
                    match n as usize {
                        0 => Expr::Field(FieldRef::Line),
                        k => Expr::Field(FieldRef::Num(k)),
                    }
                }
                _ => self.or()?,
            };
            let label = match &e {
                Expr::Field(f) => f.label(),
                Expr::Name(n) => n.name().to_string(),
                _ => squeeze(&self.src[start..self.toks[self.i - 1].1]),
            };
            out.push((label, e));
            if self.peek() == Some(&Tok::Comma) {
                self.i += 1;
            }
        }
        if out.is_empty() {
            return self.err("no fields given");
        }
        Ok(out)
    }

    fn peek_next(&self) -> Option<&Tok> {
        self.toks.get(self.i + 1).map(|t| &t.2)
    }

    fn at_end(&self) -> Result<(), ParseError> {
        match self.toks.get(self.i) {
            Some((pos, _, t)) => Err(ParseError {
                pos: *pos,
                msg: format!("unexpected {}", describe(t)),
            }),
            None => Ok(()),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.2)
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

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() != Some(&t) {
            return self.err(&format!("expected {what}"));
        }
        self.i += 1;
        Ok(())
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth == MAX_DEPTH {
            return self.err(&format!(
                "nested more than {MAX_DEPTH} levels deep (parentheses, !, - and calls)"
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// A chain `a || b || c` is one flat list, so that a long chain is no deeper to
    /// evaluate or drop than a short one (the same for `&&`, `+ -` and `* / %`).
    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some(&Tok::Op("||")) {
            self.i += 1;
            terms.push(self.and()?);
        }
        Ok(flat(terms, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.not()?];
        while self.peek() == Some(&Tok::Op("&&")) {
            self.i += 1;
            terms.push(self.not()?);
        }
        Ok(flat(terms, Expr::And))
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
        let lhs = self.sum()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return Ok(lhs),
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
                        msg: format!("bad regex: {}", one_line(&e.to_string())),
                    })?;
                self.i += 1;
                return Ok(Expr::Match(Box::new(lhs), re, op == "!~"));
            }
            _ => return Ok(lhs),
        };
        self.i += 1;
        let rhs = self.sum()?;
        Ok(Expr::Cmp(Box::new(lhs), cmp, Box::new(rhs)))
    }

    fn sum(&mut self) -> Result<Expr, ParseError> {
        self.chain(&[("+", ArithOp::Add), ("-", ArithOp::Sub)], Self::product)
    }

    fn product(&mut self) -> Result<Expr, ParseError> {
        let ops = [
            ("*", ArithOp::Mul),
            ("/", ArithOp::Div),
            ("%", ArithOp::Rem),
        ];
        self.chain(&ops, Self::unary)
    }

    fn chain(
        &mut self,
        ops: &[(&str, ArithOp)],
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let first = next(self)?;
        let mut rest = Vec::new();
        while let Some(Tok::Op(o)) = self.peek() {
            let Some(&(_, op)) = ops.iter().find(|(s, _)| s == o) else {
                break;
            };
            self.i += 1;
            rest.push((op, next(self)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Arith(Box::new(first), rest)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let neg = match self.peek() {
            Some(Tok::Op("-")) => true,
            Some(Tok::Op("+")) => false,
            _ => return self.primary(),
        };
        self.enter()?;
        self.i += 1;
        let e = self.unary()?;
        self.depth -= 1;
        Ok(match (neg, e) {
            (true, Expr::Num(n)) => Expr::Num(-n),
            (true, e) => Expr::Neg(Box::new(e)),
            (false, e) => e,
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return self.err("expression ends too early");
        };
        let start = self.pos();
        self.i += 1;
        let e = match t {
            Tok::Num(n) => Expr::Num(n),
            Tok::Str(s) => Expr::Str(s.into_bytes()),
            Tok::LParen => {
                self.enter()?;
                let e = self.or()?;
                self.expect(Tok::RParen, ")")?;
                self.depth -= 1;
                e
            }
            Tok::Dollar => {
                self.enter()?;
                let e = self.primary()?;
                self.depth -= 1;
                Expr::DynField(Box::new(e))
            }
            Tok::Field(name) if self.peek() == Some(&Tok::LParen) => self.call(&name, start)?,
            Tok::Field(name) if name == "count" && self.aggs.is_some() && !self.in_agg => {
                self.push_agg(AggKind::Count, None, None, "count".into())
            }
            Tok::Field(name) if name == "NF" => Expr::Nf,
            Tok::Field(name) if name == "NR" => Expr::Nr,
            Tok::Field(name) => match FieldRef::parse(&name) {
                Some(FieldRef::Name(n)) => Expr::Name(std::sync::Arc::new(super::Named::new(n))),
                Some(f) => Expr::Field(f),
                None => {
                    self.i -= 1;
                    return self.err(&format!("bad field {name:?}"));
                }
            },
            other => {
                self.i -= 1;
                return self.err(&format!(
                    "expected a field, string, number or ( but found {}",
                    describe(&other)
                ));
            }
        };
        Ok(e)
    }

    /// Arguments of a call whose `(` is next.
    fn args(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.enter()?;
        self.i += 1;
        let mut args = Vec::new();
        if self.peek() != Some(&Tok::RParen) {
            loop {
                args.push(self.or()?);
                if self.peek() != Some(&Tok::Comma) {
                    break;
                }
                self.i += 1;
            }
        }
        self.expect(Tok::RParen, ") or , in the argument list")?;
        self.depth -= 1;
        Ok(args)
    }

    fn call(&mut self, name: &str, start: usize) -> Result<Expr, ParseError> {
        let name_pos = self.i - 1;
        if self.aggs.is_some() && !self.in_agg {
            if let Some((kind, cond)) = agg_name(name) {
                self.in_agg = true;
                let args = self.args();
                self.in_agg = false;
                let mut args = args?;
                let label = squeeze(&self.src[start..self.toks[self.i - 1].1]);
                let want = (kind != AggKind::Count) as usize + cond as usize;
                if args.len() != want {
                    self.i = name_pos;
                    let what = match (kind == AggKind::Count, cond) {
                        (true, false) => {
                            "count takes no argument (count_if(COND) counts lines where COND holds)"
                                .to_string()
                        }
                        (true, true) => "count_if takes one argument, a condition".to_string(),
                        (false, false) => {
                            format!("{name} takes one argument: {name}(FIELD or EXPR)")
                        }
                        (false, true) => format!("{name} takes two arguments: {name}(EXPR, COND)"),
                    };
                    return self.err(&what);
                }
                let cond = cond.then(|| args.pop().expect("counted"));
                let arg = args.pop();
                return Ok(self.push_agg(kind, arg, cond, label));
            }
        }
        let Some(f) = Func::by_name(name) else {
            self.i = name_pos;
            let aggs = if self.aggs.is_some() {
                "; aggregates: count, count_if, count_distinct, sum, avg, min, max, pNN, median, each with an _if form"
            } else {
                ""
            };
            return self.err(&format!(
                "unknown function {name:?} (functions: {}{aggs})",
                func::NAMES
            ));
        };
        let args = self.args()?;
        let (lo, hi) = f.arity();
        if args.len() < lo || args.len() > hi {
            self.i = name_pos;
            let n = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo} or {hi}")
            };
            return self.err(&format!("{name} takes {n} argument(s), not {}", args.len()));
        }
        Ok(Expr::Call(f, args))
    }

    fn push_agg(
        &mut self,
        kind: AggKind,
        arg: Option<Expr>,
        cond: Option<Expr>,
        label: String,
    ) -> Expr {
        let aggs = self.aggs.as_mut().expect("in a column list");
        aggs.push(AggSpec {
            kind,
            arg,
            cond,
            label,
        });
        Expr::Agg(aggs.len() - 1)
    }
}

/// An aggregate's kind from its name, and whether it is the `_if` form.
fn agg_name(name: &str) -> Option<(AggKind, bool)> {
    let (base, cond) = match name.strip_suffix("_if") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let kind = match base {
        "count" => AggKind::Count,
        "count_distinct" | "distinct" | "dc" => AggKind::CountDistinct,
        "sum" => AggKind::Sum,
        "avg" | "mean" => AggKind::Avg,
        "min" => AggKind::Min,
        "max" => AggKind::Max,
        "median" => AggKind::Pct(50.0),
        p => {
            let v: f64 = p.strip_prefix('p')?.parse().ok()?;
            if !(0.0..=100.0).contains(&v) {
                return None;
            }
            AggKind::Pct(v)
        }
    };
    Some((kind, cond))
}

/// A column may combine aggregates with numbers and arithmetic, but a field outside an
/// aggregate has no single value per row.
fn check_column(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Agg(_) | Expr::Num(_) => Ok(()),
        Expr::Neg(a) => check_column(a),
        Expr::Arith(a, rest) => {
            check_column(a)?;
            rest.iter().try_for_each(|(_, e)| check_column(e))
        }
        Expr::Field(_) | Expr::Name(_) | Expr::Nf | Expr::Nr => {
            let mut label = String::new();
            if let Expr::Name(n) = e {
                label = n.name().to_string();
            } else if let Expr::Field(f) = e {
                label = f.label();
            } else {
                label.push_str(if matches!(e, Expr::Nr) { "NR" } else { "NF" });
            }
            Err(format!(
                "field {label} outside an aggregate (use it inside one: count_distinct({label}), sum({label}), p99({label}), or group by it with -g)"
            ))
        }
        _ => Err(
            "a column is aggregates combined with numbers and + - * / % (a condition goes inside count_if(...) or AGG_if(x, ...))"
                .into(),
        ),
    }
}

fn flat(mut terms: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.pop().expect("one term")
    } else {
        make(terms)
    }
}

/// Source text without blanks outside quotes, as a column label (`p99(bytes)`).
fn squeeze(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quote = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => continue,
            _ => {}
        }
        out.push(c);
    }
    out
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Field(s) => format!("{s:?}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Regex(s, _) => format!("/{s}/"),
        Tok::Num(n) => format!("number {n}"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Dollar => "`$`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
    }
}

/// The regex crate's multi-line error, on one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(": ")
}
