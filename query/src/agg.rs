//! Aggregation: `count`, `count_distinct(f)`, `sum`, `avg`, `min`, `max`, `pNN(f)`, grouped by
//! time buckets and/or fields. Every state merges exactly with another of its kind, so each
//! worker aggregates its own files and the results are combined at the end with the same
//! answer as a single pass (exact sets and value lists in exact mode; HyperLogLog registers and
//! sketch bucket counts, which also merge without loss of their own accuracy, in `--approx`).

use std::collections::{HashMap, HashSet};

/// A set of distinct byte strings, hashed with foldhash (randomly seeded per process).
pub type ByteSet = HashSet<Vec<u8>, foldhash::fast::RandomState>;
use std::hash::{Hash, Hasher};

use anyhow::Result;

use crate::expr::{as_number, ArithOp, Column, Expr, Value};
pub use crate::expr::{AggKind, AggSpec};
use crate::formats::Record;

/// Parses `count, count_distinct(ip), p99(bytes), count_if(status >= 500) * 100 / count as
/// err_pct`: the aggregates to compute and the output columns made of them.
pub fn parse_aggs(s: &str) -> Result<(Vec<AggSpec>, Vec<Column>)> {
    Expr::parse_columns(s).map_err(|e| anyhow::anyhow!("in {s:?}: {e}"))
}

/// The cell of a column from its row's aggregate cells: an aggregate's own cell, or the
/// arithmetic over them (no value when a part has none or a division is by zero).
pub fn column_cell(col: &Column, cells: &[Cell]) -> Cell {
    fn value(e: &Expr, cells: &[Cell]) -> Option<f64> {
        match e {
            Expr::Agg(i) => match &cells[*i] {
                Cell::Empty => None,
                c => c.sort_num(),
            },
            Expr::Num(n) => Some(*n),
            Expr::Neg(a) => value(a, cells).map(|v| -v),
            Expr::Arith(first, rest) => {
                let mut acc = value(first, cells)?;
                for (op, e) in rest {
                    let x = value(e, cells)?;
                    acc = match op {
                        ArithOp::Add => acc + x,
                        ArithOp::Sub => acc - x,
                        ArithOp::Mul => acc * x,
                        ArithOp::Div | ArithOp::Rem if x == 0.0 => return None,
                        ArithOp::Div => acc / x,
                        ArithOp::Rem => acc % x,
                    };
                }
                Some(acc)
            }
            // The parser admits nothing else in a column.
            _ => None,
        }
    }
    match &col.expr {
        Expr::Agg(i) => cells[*i].clone(),
        e => value(e, cells)
            .filter(|v| v.is_finite())
            .map_or(Cell::Empty, Cell::Num),
    }
}

/// HyperLogLog with 2^12 registers (about 1.6% standard error, 4 KiB per group that has
/// values; the registers are allocated at the first value, so the empty buckets a time series
/// fills in cost nothing).
///
/// Written here rather than taken from a crate because it is forty lines and must hash byte
/// strings identically in every worker so that registers merge (max per register).
#[derive(Debug, Clone)]
pub struct Hll {
    regs: Option<Box<[u8; 1 << Hll::P]>>,
}

impl Hll {
    const P: usize = 12;

    pub fn new() -> Hll {
        Hll { regs: None }
    }

    /// Whether the registers are allocated (some value was inserted or merged in).
    pub fn is_allocated(&self) -> bool {
        self.regs.is_some()
    }

    pub fn insert(&mut self, v: &[u8]) {
        // SipHash with fixed keys: the same in every worker and run, well mixed.
        #[allow(deprecated)]
        let mut h = std::hash::SipHasher::new();
        v.hash(&mut h);
        let x = h.finish();
        let idx = (x >> (64 - Hll::P)) as usize;
        let rank = ((x << Hll::P) | (1 << (Hll::P - 1))).leading_zeros() as u8 + 1;
        let regs = self.regs.get_or_insert_with(|| Box::new([0; 1 << Hll::P]));
        if rank > regs[idx] {
            regs[idx] = rank;
        }
    }

    pub fn merge(&mut self, o: &Hll) {
        let Some(theirs) = &o.regs else { return };
        match &mut self.regs {
            None => self.regs = Some(theirs.clone()),
            Some(ours) => {
                for (a, b) in ours.iter_mut().zip(theirs.iter()) {
                    *a = (*a).max(*b);
                }
            }
        }
    }

    pub fn estimate(&self) -> f64 {
        let Some(regs) = &self.regs else { return 0.0 };
        let m = (1 << Hll::P) as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = regs.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = regs.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

impl Default for Hll {
    fn default() -> Self {
        Hll::new()
    }
}

/// Log-bucketed quantile sketch (the DDSketch idea): relative error `ALPHA` for any quantile,
/// memory proportional to the log of the value range, merge = add bucket counts.
///
/// Written here rather than taken from the `sketches-ddsketch` crate, for three reasons. The
/// buckets are integer counts in a sparse map, so a merge is exact addition: the quantiles do
/// not depend on how the input was split into tasks or in which order the workers finished,
/// and `--approx` prints the same answer for any number of workers. The rank is picked with
/// `nearest_rank`, the rule exact mode uses, so `--approx` differs from exact mode only by a
/// bucket's width (the crate ranks by `q * (n - 1)`, and its default store keeps at most 2048
/// buckets, collapsing the lowest ones and losing their error bound). And it is seventy lines,
/// not another dependency.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    pos: HashMap<i32, u64>,
    neg: HashMap<i32, u64>,
    zero: u64,
}

impl Sketch {
    const ALPHA: f64 = 0.01;

    fn gamma() -> f64 {
        (1.0 + Self::ALPHA) / (1.0 - Self::ALPHA)
    }

    fn index(v: f64) -> i32 {
        (v.ln() / Self::gamma().ln()).ceil() as i32
    }

    pub fn insert(&mut self, v: f64) {
        if v > 0.0 {
            *self.pos.entry(Self::index(v)).or_default() += 1;
        } else if v < 0.0 {
            *self.neg.entry(Self::index(-v)).or_default() += 1;
        } else {
            self.zero += 1;
        }
    }

    pub fn merge(&mut self, o: &Sketch) {
        for (k, v) in &o.pos {
            *self.pos.entry(*k).or_default() += v;
        }
        for (k, v) in &o.neg {
            *self.neg.entry(*k).or_default() += v;
        }
        self.zero += o.zero;
    }

    pub fn quantile(&self, p: f64) -> Option<f64> {
        let n: u64 = self.pos.values().sum::<u64>() + self.neg.values().sum::<u64>() + self.zero;
        if n == 0 {
            return None;
        }
        let rank = nearest_rank(p, n as usize) as u64;
        let g = Self::gamma();
        let value = |i: i32| 2.0 * g.powi(i) / (g + 1.0);
        let mut neg: Vec<_> = self.neg.iter().collect();
        neg.sort_by(|a, b| b.0.cmp(a.0));
        let mut seen = 0;
        for (i, c) in neg {
            seen += c;
            if seen >= rank {
                return Some(-value(*i));
            }
        }
        seen += self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        let mut pos: Vec<_> = self.pos.iter().collect();
        pos.sort_by_key(|e| e.0);
        for (i, c) in pos {
            seen += c;
            if seen >= rank {
                return Some(value(*i));
            }
        }
        None
    }
}

/// 1-based nearest rank of percentile `p` among `n` sorted values.
fn nearest_rank(p: f64, n: usize) -> usize {
    ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n)
}

/// One aggregate's running state for one group.
#[derive(Debug, Clone)]
pub enum State {
    Count(u64),
    Distinct(ByteSet),
    DistinctApprox(Hll),
    Sum(f64),
    Avg(f64, u64),
    Min(Option<f64>),
    Max(Option<f64>),
    Values(Vec<f64>),
    Sketch(Sketch),
}

/// A finished value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(Vec<u8>),
    Int(u64),
    Num(f64),
    Empty,
}

impl Cell {
    pub fn sort_num(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Num(n) => Some(*n),
            Cell::Text(t) => as_number(t),
            Cell::Empty => None,
        }
    }
}

impl State {
    pub fn new(spec: &AggSpec, approx: bool) -> State {
        match spec.kind {
            AggKind::Count => State::Count(0),
            AggKind::CountDistinct if approx => State::DistinctApprox(Hll::new()),
            AggKind::CountDistinct => State::Distinct(ByteSet::default()),
            AggKind::Sum => State::Sum(0.0),
            AggKind::Avg => State::Avg(0.0, 0),
            AggKind::Min => State::Min(None),
            AggKind::Max => State::Max(None),
            AggKind::Pct(_) if approx => State::Sketch(Sketch::default()),
            AggKind::Pct(_) => State::Values(Vec::new()),
        }
    }

    pub fn update(&mut self, spec: &AggSpec, rec: &mut Record<'_>) {
        if spec.cond.as_ref().is_some_and(|c| !c.eval(rec)) {
            return;
        }
        if let State::Count(c) = self {
            *c += 1;
            return;
        }
        let v = match &spec.arg {
            Some(e) => e.value(rec),
            None => return,
        };
        if matches!(v, Value::Missing) {
            return;
        }
        match self {
            State::Count(_) => {}
            State::Distinct(set) => {
                let v = v.bytes();
                if !set.contains(v.as_ref()) {
                    set.insert(v.into_owned());
                }
            }
            State::DistinctApprox(h) => h.insert(&v.bytes()),
            other => {
                // Non-numeric values (`-` for an empty body) are skipped, as in awk's sum
                // they would count as 0 and skew averages and minimums.
                let Some(x) = v.number() else { return };
                match other {
                    State::Sum(s) => *s += x,
                    State::Avg(s, n) => {
                        *s += x;
                        *n += 1;
                    }
                    State::Min(m) => *m = Some(m.map_or(x, |m| m.min(x))),
                    State::Max(m) => *m = Some(m.map_or(x, |m| m.max(x))),
                    State::Values(v) => v.push(x),
                    State::Sketch(s) => s.insert(x),
                    _ => {}
                }
            }
        }
    }

    pub fn merge(&mut self, o: State) {
        match (self, o) {
            (State::Count(a), State::Count(b)) => *a += b,
            (State::Distinct(a), State::Distinct(b)) => {
                if a.len() < b.len() {
                    let small = std::mem::replace(a, b);
                    a.extend(small);
                } else {
                    a.extend(b);
                }
            }
            (State::DistinctApprox(a), State::DistinctApprox(b)) => a.merge(&b),
            (State::Sum(a), State::Sum(b)) => *a += b,
            (State::Avg(s, n), State::Avg(s2, n2)) => {
                *s += s2;
                *n += n2;
            }
            (State::Min(a), State::Min(b)) => {
                *a = match (*a, b) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                }
            }
            (State::Max(a), State::Max(b)) => {
                *a = match (*a, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                }
            }
            (State::Values(a), State::Values(b)) => a.extend(b),
            (State::Sketch(a), State::Sketch(b)) => a.merge(&b),
            _ => unreachable!("states of one aggregate have one kind"),
        }
    }

    pub fn finish(self, spec: &AggSpec) -> Cell {
        match self {
            State::Count(c) => Cell::Int(c),
            State::Distinct(s) => Cell::Int(s.len() as u64),
            State::DistinctApprox(h) => Cell::Int(h.estimate().round() as u64),
            State::Sum(s) => Cell::Num(s),
            State::Avg(_, 0) => Cell::Empty,
            State::Avg(s, n) => Cell::Num(s / n as f64),
            State::Min(m) | State::Max(m) => m.map_or(Cell::Empty, Cell::Num),
            State::Values(mut v) => {
                let AggKind::Pct(p) = spec.kind else {
                    unreachable!()
                };
                if v.is_empty() {
                    return Cell::Empty;
                }
                let k = nearest_rank(p, v.len()) - 1;
                let (_, x, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
                Cell::Num(*x)
            }
            State::Sketch(s) => {
                let AggKind::Pct(p) = spec.kind else {
                    unreachable!()
                };
                s.quantile(p).map_or(Cell::Empty, Cell::Num)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aggregate_lists() {
        let (a, cols) = parse_aggs("count, count_distinct(ip), p99( bytes )").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].kind, AggKind::CountDistinct);
        assert_eq!(a[2].kind, AggKind::Pct(99.0));
        assert_eq!(cols[2].label, "p99(bytes)");
        assert!(parse_aggs("sum").is_err());
        assert!(parse_aggs("sum()").is_err());
        assert!(parse_aggs("count(x)").is_err());
        assert!(parse_aggs("frobnicate(x)").is_err());
        assert!(parse_aggs("status").is_err());
        assert!(parse_aggs("count_if(x, y)").is_err());
        let (a, cols) =
            parse_aggs("count_if(status >= 500) * 100 / count as err_pct, sum_if(bytes, ok)")
                .unwrap();
        assert_eq!(a.len(), 3);
        assert!(a[0].cond.is_some() && a[0].arg.is_none());
        assert!(a[2].cond.is_some() && a[2].arg.is_some());
        assert_eq!(cols[0].label, "err_pct");
        assert_eq!(cols[1].label, "sum_if(bytes,ok)");
        let cells = [Cell::Int(3), Cell::Int(12), Cell::Num(1.0)];
        assert_eq!(column_cell(&cols[0], &cells), Cell::Num(25.0));
        assert_eq!(column_cell(&cols[1], &cells), Cell::Num(1.0));
        let zero = [Cell::Int(0), Cell::Int(0), Cell::Empty];
        assert_eq!(column_cell(&cols[0], &zero), Cell::Empty);
    }

    #[test]
    fn hll_is_close_and_merges() {
        let mut a = Hll::new();
        let mut b = Hll::new();
        for i in 0..50_000u32 {
            a.insert(format!("10.0.{}.{}", i / 256, i % 256).as_bytes());
        }
        for i in 25_000..100_000u32 {
            b.insert(format!("10.0.{}.{}", i / 256, i % 256).as_bytes());
        }
        a.merge(&b);
        let e = a.estimate();
        assert!((e - 100_000.0).abs() / 100_000.0 < 0.05, "estimate {e}");
    }

    #[test]
    fn empty_hll_states_allocate_nothing() {
        // Gap filling creates one state per empty bucket: those must not take 4 KiB each.
        let spec = &parse_aggs("count_distinct(ip)").unwrap().0[0];
        let State::DistinctApprox(mut empty) = State::new(spec, true) else {
            panic!("approximate distinct count is a HyperLogLog");
        };
        assert!(!empty.is_allocated());
        empty.merge(&Hll::new());
        assert!(!empty.is_allocated());
        assert_eq!(empty.estimate(), 0.0);
        let mut full = Hll::new();
        full.insert(b"10.0.0.1");
        full.insert(b"10.0.0.2");
        empty.merge(&full);
        assert!(empty.is_allocated());
        assert_eq!(empty.estimate().round(), 2.0);
        full.merge(&Hll::new());
        assert_eq!(full.estimate().round(), 2.0);
    }

    #[test]
    fn sketch_quantiles_within_relative_error() {
        let mut s = Sketch::default();
        for i in 1..=10_000 {
            s.insert(i as f64);
        }
        for (p, want) in [(50.0, 5000.0), (90.0, 9000.0), (99.0, 9900.0)] {
            let got = s.quantile(p).unwrap();
            assert!((got - want).abs() / want <= 0.02, "p{p}: {got}");
        }
    }
}
