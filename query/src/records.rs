//! The record-level commands: `where` (filter lines), `print` (select fields), `count` and
//! `stats` (aggregate, optionally per time bucket and group). Each task parses its own lines
//! (format detected line by line unless `--format`, see [`Detector`]), and aggregate states are merged
//! in task order at the end.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::ops::ControlFlow;

use anyhow::{bail, Context, Result};

use crate::agg::{column_cell, parse_aggs, AggSpec, Cell, State};
use crate::cli::{PrintArgs, StatsArgs, WhereArgs};
use crate::expr::{Column, Expr};
use crate::formats::{Detector, Record};
use crate::output::{self, Table};
use crate::plan::plan;
use crate::source::{stdout, Source};
use crate::{lines, par, timefmt};

/// Comma- or blank-separated field list: `ip,path`, `1,7`, `$1 $7`, `$NF, lower(method)`.
pub fn parse_fields(s: &str) -> Result<Vec<(String, Expr)>> {
    Expr::parse_list(s).with_context(|| format!("in field list {s:?}"))
}

/// What a printing command does with each line.
struct Printer {
    filter: Option<Expr>,
    fields: Option<Vec<Expr>>,
    delimiter: Vec<u8>,
    prefix: Vec<u8>,
}

impl Printer {
    fn line<W: Write>(&self, mut rec: Record<'_>, w: &mut W) -> std::io::Result<bool> {
        let line = rec.line;
        if let Some(f) = &self.filter {
            if !f.eval(&mut rec) {
                return Ok(false);
            }
        }
        w.write_all(&self.prefix)?;
        match &self.fields {
            None => w.write_all(line)?,
            Some(fields) => {
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        w.write_all(&self.delimiter)?;
                    }
                    w.write_all(&f.value(&mut rec).bytes())?;
                }
            }
        }
        w.write_all(b"\n")?;
        Ok(true)
    }

    /// Named fields of the filter and the printed fields.
    fn names(&self) -> Vec<std::sync::Arc<crate::expr::Named>> {
        let mut names = Vec::new();
        self.filter.iter().for_each(|f| f.names(&mut names));
        self.fields
            .iter()
            .flatten()
            .for_each(|f| f.names(&mut names));
        names
    }

    fn run(&self, src: &Source, tail: Option<usize>) -> Result<i32> {
        let code = self.run_lines(src, tail)?;
        crate::fields::check_found(&self.names(), src)?;
        Ok(code)
    }

    /// Whether `NR` is used: then the inputs are read one task after another, in order.
    fn uses_nr(&self) -> bool {
        self.filter
            .iter()
            .chain(self.fields.iter().flatten())
            .any(Expr::uses_nr)
    }

    fn run_lines(&self, src: &Source, tail: Option<usize>) -> Result<i32> {
        let now = timefmt::now();
        let mut out = stdout();
        if let Some(n) = tail {
            let mut pick = Detector::new(src.format);
            let mut any = false;
            for (i, l) in src.tail_lines(n)?.iter().enumerate() {
                let mut rec = pick.record(l, now);
                rec.nr = i as u64 + 1;
                any |= self.line(rec, &mut out)?;
            }
            out.flush()?;
            return Ok(if any { 0 } else { 1 });
        }
        let in_order = self.uses_nr();
        let tasks = plan(&src.inputs, !in_order)?;
        // With one worker, tasks run one after another in order: the count is NR.
        let nr = std::sync::atomic::AtomicU64::new(0);
        let workers = if in_order {
            1
        } else {
            par::workers(tasks.len())
        };
        let hits = par::run_ordered(tasks.len(), workers, &mut out, None, |i, w| {
            let mut pick = Detector::new(src.format);
            let mut n = 0u64;
            let mut err = Ok(());
            src.for_each_line(&tasks[i], |l| {
                let mut rec = pick.record(l, now);
                if in_order {
                    rec.nr = nr.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                }
                match self.line(rec, w) {
                    Ok(hit) => {
                        n += hit as u64;
                        ControlFlow::Continue(())
                    }
                    Err(e) => {
                        err = Err(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
            err?;
            Ok(n)
        })?;
        src.progress.finish();
        Ok(if hits.iter().any(|&n| n > 0) { 0 } else { 1 })
    }
}

fn field_exprs(s: &str) -> Result<Vec<Expr>> {
    Ok(parse_fields(s)?.into_iter().map(|(_, e)| e).collect())
}

fn timestamp_prefix(on: bool) -> Vec<u8> {
    if on {
        chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S ")
            .to_string()
            .into_bytes()
    } else {
        Vec::new()
    }
}

pub fn run_where(a: WhereArgs) -> Result<i32> {
    let filter = Expr::parse(&a.expr).with_context(|| format!("in {:?}", a.expr))?;
    let fields = a.print.as_deref().map(field_exprs).transpose()?;
    let src = Source::new(&a.input, &a.files)?;
    Printer {
        filter: Some(filter),
        fields,
        delimiter: b" ".to_vec(),
        prefix: timestamp_prefix(a.timestamp),
    }
    .run(&src, a.input.tail)
}

pub fn run_print(a: PrintArgs) -> Result<i32> {
    let filter = a
        .filter
        .as_deref()
        .map(|e| Expr::parse(e).with_context(|| format!("in {e:?}")))
        .transpose()?;
    let src = Source::new(&a.input, &a.files)?;
    Printer {
        filter,
        fields: Some(field_exprs(&a.fields)?),
        delimiter: a.output_delimiter.into_bytes(),
        prefix: timestamp_prefix(a.timestamp),
    }
    .run(&src, a.input.tail)
}

/// `--by` spans: `second`, `minute`, `hour`, `day`, `week`, or a duration (`5m`, `15s`).
pub fn parse_span(s: &str) -> Result<i64> {
    let secs = match s {
        "second" | "sec" | "s" => 1,
        "minute" | "min" | "m" => 60,
        "hour" | "h" => 3600,
        "day" | "d" => 86400,
        "week" | "w" => 7 * 86400,
        _ => humantime::parse_duration(s)
            .with_context(|| format!("bad --by span {s:?} (minute, 5m, hour, day, ...)"))?
            .as_secs() as i64,
    };
    if secs <= 0 {
        bail!("--by span must be at least one second");
    }
    Ok(secs)
}

/// Aggregation state of one task: groups keyed by an encoding of (bucket, group values).
#[derive(Default, Clone)]
pub struct Groups {
    index: HashMap<Vec<u8>, usize, foldhash::fast::RandomState>,
    rows: Vec<(Vec<u8>, Vec<State>)>,
    /// Lines skipped because they had no time while bucketing by time.
    untimed: u64,
}

impl Groups {
    /// The rows split by their time bucket (keys start with it when bucketing by time).
    pub fn split_by_bucket(self) -> Vec<(i64, Groups)> {
        let mut out: Vec<(i64, Groups)> = Vec::new();
        for (key, states) in self.rows {
            let Some(t) = key.get(..8).and_then(|b| b.try_into().ok()) else {
                continue;
            };
            let t = i64::from_be_bytes(t);
            let i = match out.iter().position(|(b, _)| *b == t) {
                Some(i) => i,
                None => {
                    out.push((t, Groups::default()));
                    out.len() - 1
                }
            };
            let g = &mut out[i].1;
            g.index.insert(key.clone(), g.rows.len());
            g.rows.push((key, states));
        }
        out
    }

    /// A bucket with no line, as the row that `finish` prints with zero counts.
    pub fn add_empty_bucket(&mut self, plan: &StatsPlan, t: i64) {
        let key = t.to_be_bytes().to_vec();
        self.index.insert(key.clone(), self.rows.len());
        self.rows.push((key, plan.new_states()));
    }
}

/// What a stats run computes.
pub struct StatsPlan {
    pub aggs: Vec<AggSpec>,
    /// The output columns, over `aggs`.
    pub columns: Vec<Column>,
    pub span: Option<i64>,
    /// Group keys: labels and expressions (`-g ip,url_path(path)`).
    pub group: Vec<(String, Expr)>,
    pub filter: Option<Expr>,
    pub approx: bool,
    /// Zero rows for buckets without lines (always without groups; with groups, `--fill`).
    pub fill: bool,
    /// `--sort`, `--top`, and whether they apply per time bucket (`--per`).
    pub sort: Option<String>,
    pub top: Option<usize>,
    pub per_bucket: bool,
}

impl StatsPlan {
    /// Named fields of the filter, groups and aggregates.
    pub fn names(&self) -> Vec<std::sync::Arc<crate::expr::Named>> {
        let mut names = Vec::new();
        self.filter.iter().for_each(|f| f.names(&mut names));
        for (_, e) in &self.group {
            e.names(&mut names);
        }
        for a in &self.aggs {
            a.arg
                .iter()
                .chain(&a.cond)
                .for_each(|e| e.names(&mut names));
        }
        names
    }

    pub fn new_states(&self) -> Vec<State> {
        self.aggs
            .iter()
            .map(|a| State::new(a, self.approx))
            .collect()
    }

    /// Aggregates every line of `r` into a fresh `Groups`.
    pub fn scan<R: Read>(
        &self,
        r: R,
        forced: Option<crate::cli::FormatArg>,
    ) -> std::io::Result<Groups> {
        self.scan_lines(forced, |f| lines::for_each_line(r, f).map(|_| ()))
    }

    /// Aggregates every line of `data` (a mapped file) into a fresh `Groups`.
    pub fn scan_slice(&self, data: &[u8], forced: Option<crate::cli::FormatArg>) -> Groups {
        self.scan_lines(forced, |f| {
            lines::for_each_line_in(data, f);
            Ok(())
        })
        .expect("in-memory scans do not fail")
    }

    fn scan_lines(
        &self,
        forced: Option<crate::cli::FormatArg>,
        drive: impl FnOnce(&mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> std::io::Result<()>,
    ) -> std::io::Result<Groups> {
        let now = timefmt::now();
        let mut g = Groups::default();
        let mut pick = Detector::new(forced);
        let mut key = Vec::with_capacity(64);
        let mut bucketer = self.span.map(crate::zone::Bucketer::new);
        // Consecutive lines usually share their group (the same minute): remember the last.
        let mut last: Option<usize> = None;
        drive(&mut |line: &[u8]| {
            let bucketer = &mut bucketer;
            let mut rec = pick.record(line, now);
            if let Some(f) = &self.filter {
                if !f.eval(&mut rec) {
                    return ControlFlow::Continue(());
                }
            }
            key.clear();
            if let Some(b) = bucketer {
                let Some(t) = rec.time() else {
                    g.untimed += 1;
                    return ControlFlow::Continue(());
                };
                key.extend_from_slice(&b.of(t).to_be_bytes());
            }
            for (_, e) in &self.group {
                match e.value(&mut rec) {
                    crate::expr::Value::Missing => key.extend_from_slice(&u32::MAX.to_be_bytes()),
                    v => {
                        let v = v.bytes();
                        let len = u32::try_from(v.len()).unwrap_or(u32::MAX - 1);
                        key.extend_from_slice(&len.to_be_bytes());
                        key.extend_from_slice(&v[..len as usize]);
                    }
                }
            }
            let idx = match last {
                Some(i) if g.rows[i].0 == key => i,
                _ => match g.index.get(key.as_slice()) {
                    Some(&i) => i,
                    None => {
                        let i = g.rows.len();
                        g.rows.push((key.clone(), self.new_states()));
                        g.index.insert(key.clone(), i);
                        i
                    }
                },
            };
            last = Some(idx);
            for (st, spec) in g.rows[idx].1.iter_mut().zip(&self.aggs) {
                st.update(spec, &mut rec);
            }
            ControlFlow::Continue(())
        })?;
        Ok(g)
    }

    pub fn merge(&self, into: &mut Groups, other: Groups) {
        into.untimed += other.untimed;
        for (key, states) in other.rows {
            match into.index.get(&key) {
                Some(&i) => {
                    for (a, b) in into.rows[i].1.iter_mut().zip(states) {
                        a.merge(b);
                    }
                }
                None => {
                    into.index.insert(key.clone(), into.rows.len());
                    into.rows.push((key, states));
                }
            }
        }
    }

    /// Finished rows: key cells then aggregate cells; with time buckets, every bucket from
    /// the first to the last appears for every group (missing ones with zero counts).
    pub fn finish(&self, mut g: Groups) -> Result<Table> {
        if g.untimed > 0 {
            output::warn(&format!(
                "{} lines without a recognisable time were not counted",
                g.untimed
            ));
        }
        if let Some(span) = self.span.filter(|_| self.fill) {
            fill_gaps(self, &mut g, span)?;
        } else if self.group.is_empty() && g.rows.is_empty() {
            // Nothing selected still has a count, 0 (like `awk 'END { print NR }'`).
            g.rows.push((Vec::new(), self.new_states()));
        }
        let mut header = Vec::new();
        if self.span.is_some() {
            header.push("time".to_string());
        }
        header.extend(self.group.iter().map(|(label, _)| label.clone()));
        header.extend(self.columns.iter().map(|c| c.label.clone()));
        let mut rows = Vec::with_capacity(g.rows.len());
        let mut time_keys = Vec::with_capacity(g.rows.len());
        for (key, states) in g.rows {
            let (t, groups) = decode_key(&key, self.span.is_some(), self.group.len());
            let mut row = Vec::with_capacity(header.len());
            if let Some(t) = t {
                row.push(Cell::Text(timefmt::format_time(t).into_bytes()));
            }
            row.extend(
                groups
                    .into_iter()
                    .map(|v| v.map_or(Cell::Empty, Cell::Text)),
            );
            let cells: Vec<Cell> = states
                .into_iter()
                .zip(&self.aggs)
                .map(|(s, a)| s.finish(a))
                .collect();
            row.extend(self.columns.iter().map(|c| column_cell(c, &cells)));
            rows.push(row);
            time_keys.push(t);
        }
        // Default order: by time, then group; without time, busiest group first.
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let nkeys = self.group.len() + self.span.is_some() as usize;
        if self.span.is_some() {
            order.sort_by(|&a, &b| {
                time_keys[a]
                    .cmp(&time_keys[b])
                    .then_with(|| output::cmp_cells(&rows[a][1..nkeys], &rows[b][1..nkeys]))
            });
        } else {
            order.sort_by(|&a, &b| {
                output::cmp_cell(&rows[b][nkeys], &rows[a][nkeys])
                    .then_with(|| output::cmp_cells(&rows[a][..nkeys], &rows[b][..nkeys]))
            });
        }
        let mut slots: Vec<Option<Vec<Cell>>> = rows.into_iter().map(Some).collect();
        let rows = order
            .into_iter()
            .map(|i| slots[i].take().expect("once"))
            .collect();
        Ok(Table {
            header,
            rows,
            time_series: self.span.is_some(),
        })
    }
}

/// Encoded keys of every group and bucket, so that gaps can be filled.
fn decode_key(key: &[u8], timed: bool, ngroups: usize) -> (Option<i64>, Vec<Option<Vec<u8>>>) {
    let mut at = 0;
    let t = timed.then(|| {
        at = 8;
        i64::from_be_bytes(key[..8].try_into().expect("8 bytes"))
    });
    let mut vals = Vec::with_capacity(ngroups);
    for _ in 0..ngroups {
        let len = u32::from_be_bytes(key[at..at + 4].try_into().expect("4 bytes"));
        at += 4;
        if len == u32::MAX {
            vals.push(None);
        } else {
            vals.push(Some(key[at..at + len as usize].to_vec()));
            at += len as usize;
        }
    }
    (t, vals)
}

/// Most rows gap filling may create; beyond it the span is too fine for the time range.
const MAX_FILLED_ROWS: u64 = 5_000_000;

/// Adds the empty buckets between the first and the last, for every group, so that a time
/// series shows its gaps as zeros. When that would take more than [`MAX_FILLED_ROWS`] rows
/// (one line dated years away from the rest, or a span far too fine for the range), the gaps
/// are left out with a warning instead: the buckets that have lines are still right, and one
/// outlier line must not turn a query into an error or an allocation of gigabytes.
fn fill_gaps(plan: &StatsPlan, g: &mut Groups, span: i64) -> Result<()> {
    if g.rows.is_empty() {
        return Ok(());
    }
    let time_of = |k: &[u8]| i64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    let lo = g.rows.iter().map(|r| time_of(&r.0)).min().expect("rows");
    let hi = g.rows.iter().map(|r| time_of(&r.0)).max().expect("rows");
    let mut groups: Vec<Vec<u8>> = g.rows.iter().map(|r| r.0[8..].to_vec()).collect();
    groups.sort();
    groups.dedup();
    let buckets = hi
        .checked_sub(lo)
        .map(|d| (d / span) as u64 + 1)
        .unwrap_or(u64::MAX);
    if buckets.saturating_mul(groups.len() as u64) > MAX_FILLED_ROWS {
        output::warn(&format!(
            "empty time buckets not shown: {} to {} is {buckets} buckets × {} groups; \
             use a coarser --by (or --since/--until) to see them",
            timefmt::format_time(lo),
            timefmt::format_time(hi),
            groups.len()
        ));
        return Ok(());
    }
    let mut key = Vec::new();
    let mut t = lo;
    while t <= hi {
        for gk in &groups {
            key.clear();
            key.extend_from_slice(&t.to_be_bytes());
            key.extend_from_slice(gk);
            if !g.index.contains_key(&key) {
                g.index.insert(key.clone(), g.rows.len());
                g.rows.push((key.clone(), plan.new_states()));
            }
        }
        match t.checked_add(span) {
            Some(_) => t = crate::zone::next_bucket(t, span),
            None => break,
        }
    }
    Ok(())
}

/// What `count`/`stats` compute, from their arguments.
pub fn stats_plan(aggs: &str, a: &StatsArgs) -> Result<StatsPlan> {
    let (aggs, columns) = parse_aggs(aggs)?;
    let group = a
        .group
        .as_deref()
        .map(parse_fields)
        .transpose()?
        .unwrap_or_default();
    let filter = a
        .filter
        .as_deref()
        .map(|e| Expr::parse(e).with_context(|| format!("in {e:?}")))
        .transpose()?;
    let uses_nr = aggs
        .iter()
        .flat_map(|a| a.arg.iter().chain(&a.cond))
        .chain(filter.iter())
        .chain(group.iter().map(|(_, e)| e))
        .any(Expr::uses_nr);
    if uses_nr {
        bail!("NR (the line number) is known in where and print only: count and stats read pieces of the input in parallel");
    }
    let by = a.by.as_deref().map(parse_span).transpose()?;
    let per = a.per.as_deref().map(parse_span).transpose()?;
    if let (Some(b), Some(p)) = (by, per) {
        if b != p {
            bail!(
                "--per {} and --by {} differ: --per SPAN already buckets by SPAN",
                a.per.as_deref().unwrap_or(""),
                a.by.as_deref().unwrap_or("")
            );
        }
    }
    if per.is_some() && a.top.is_none() && a.sort.is_none() {
        bail!("--per SPAN applies --top N (and --sort) within each bucket: give --top N");
    }
    Ok(StatsPlan {
        aggs,
        columns,
        sort: a.sort.clone(),
        top: a.top,
        per_bucket: per.is_some(),
        span: by.or(per),
        group,
        filter,
        approx: a.approx,
        fill: a.fill || a.group.is_none(),
    })
}

pub fn run_stats(aggs: &str, a: StatsArgs) -> Result<i32> {
    let plan_ = stats_plan(aggs, &a)?;
    let src = Source::new(&a.input, &a.files)?;
    let groups = if let Some(n) = a.input.tail {
        let mut data = Vec::new();
        for l in src.tail_lines(n)? {
            data.extend_from_slice(&l);
            data.push(b'\n');
        }
        plan_.scan(data.as_slice(), src.format)?
    } else {
        let tasks = plan(&src.inputs, true)?;
        let mut sink = std::io::sink();
        let parts = par::run_ordered(
            tasks.len(),
            par::workers(tasks.len()),
            &mut sink,
            None,
            |i, _| {
                if let Some(m) = src.mapped(&tasks[i])? {
                    let g = plan_.scan_slice(&m, src.format);
                    src.mapped_done(&m);
                    return Ok(g);
                }
                let r = src.open(&tasks[i])?;
                plan_
                    .scan(r, src.format)
                    .with_context(|| format!("reading {}", src.inputs[tasks[i].input].name))
            },
        )?;
        src.progress.finish();
        let mut all = Groups::default();
        for p in parts {
            plan_.merge(&mut all, p);
        }
        all
    };
    crate::fields::check_found(&plan_.names(), &src)?;
    let mut table = plan_.finish(groups)?;
    let first_agg = plan_.per_bucket.then(|| 1 + plan_.group.len());
    table.sort_and_limit(plan_.sort.as_deref(), plan_.top, first_agg)?;
    if let Some(path) = &a.plot {
        crate::plot::render(&table, path, a.title.as_deref())?;
    }
    let mut out = stdout();
    output::write(&table, a.output, a.chart, &mut out)?;
    out.flush()?;
    Ok(0)
}
