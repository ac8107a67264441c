//! Writing aggregate results: an aligned table (default on a terminal), TSV (default in a
//! pipe), CSV, JSON lines; optionally a bar per row or a sparkline of the last column.

use std::cmp::Ordering;
use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Result};

use crate::agg::Cell;
use crate::cli::{ChartArg, OutputArg};

#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// The first column is a time bucket.
    pub time_series: bool,
}

pub fn cmp_cell(a: &Cell, b: &Cell) -> Ordering {
    match (a.sort_num(), b.sort_num()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => raw(a).cmp(&raw(b)),
    }
}

pub fn cmp_cells(a: &[Cell], b: &[Cell]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| cmp_cell(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A number as people read it: integers without a fraction, others to 3 decimals.
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        let s = format!("{n:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A cell's bytes as they are (group values are log bytes, not necessarily UTF-8): what
/// TSV and CSV write, so that `logq count -g path -O tsv | ...` keeps every byte.
pub fn raw(c: &Cell) -> std::borrow::Cow<'_, [u8]> {
    match c {
        Cell::Text(t) => std::borrow::Cow::Borrowed(t),
        other => std::borrow::Cow::Owned(text(other).into_bytes()),
    }
}

/// A cell for the eye (the aligned table, JSON strings): invalid UTF-8 shown as U+FFFD.
pub fn text(c: &Cell) -> String {
    match c {
        Cell::Text(t) => String::from_utf8_lossy(t).into_owned(),
        Cell::Int(i) => i.to_string(),
        Cell::Num(n) => fmt_num(*n),
        Cell::Empty => String::new(),
    }
}

/// A warning on stderr, one plain line (`logq: warning: ...`), not a log record: it is
/// addressed to the person at the terminal.
pub fn warn(msg: &str) {
    eprintln!("logq: warning: {msg}");
}

/// A cell as the aligned table shows it: control characters escaped (`\t`, `\x1b`), so
/// that a value from a log line can neither break the table's lines nor send the terminal
/// escape sequences.
pub fn table_text(c: &Cell) -> String {
    let s = text(c);
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // Control characters (Unicode Cc) are all below U+0100.
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Columns a string takes on a terminal (East Asian wide characters take two).
fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

impl Table {
    fn column(&self, name: &str) -> Result<usize> {
        if let Some(i) = self.header.iter().position(|h| h == name) {
            return Ok(i);
        }
        match name.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.header.len() => Ok(n - 1),
            _ => bail!(
                "--sort: no column {name:?} (columns: {})",
                self.header.join(", ")
            ),
        }
    }

    /// `--sort COL` ascending, `--sort -COL` descending (stable); then `--top N`. With
    /// `per_bucket` (`--top N --per SPAN`), both apply within each time bucket (the rows of
    /// one bucket are contiguous, as `finish` orders them), the default order being the
    /// first aggregate column (`first_agg`), largest first.
    pub fn sort_and_limit(
        &mut self,
        sort: Option<&str>,
        top: Option<usize>,
        per_bucket: Option<usize>,
    ) -> Result<()> {
        let order = match (sort, per_bucket) {
            (Some(s), _) => {
                let (desc, name) = match s.strip_prefix('-') {
                    Some(n) => (true, n),
                    None => (false, s),
                };
                Some((self.column(name)?, desc))
            }
            (None, Some(first_agg)) => Some((first_agg.min(self.header.len() - 1), true)),
            (None, None) => None,
        };
        let cmp = |a: &Vec<Cell>, b: &Vec<Cell>| match order {
            Some((col, desc)) => {
                let o = cmp_cell(&a[col], &b[col]);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
            None => Ordering::Equal,
        };
        if per_bucket.is_none() {
            if order.is_some() {
                self.rows.sort_by(cmp);
            }
            if let Some(n) = top {
                self.rows.truncate(n);
            }
            return Ok(());
        }
        let mut out = Vec::with_capacity(self.rows.len());
        let mut rows = std::mem::take(&mut self.rows).into_iter().peekable();
        while let Some(first) = rows.next() {
            let mut bucket = vec![first];
            while let Some(r) = rows.next_if(|r| r[0] == bucket[0][0]) {
                bucket.push(r);
            }
            bucket.sort_by(cmp);
            bucket.truncate(top.unwrap_or(usize::MAX));
            out.extend(bucket);
        }
        self.rows = out;
        Ok(())
    }

    /// The last column's values as numbers (what charts show).
    pub fn series(&self) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| r.last().and_then(Cell::sort_num).unwrap_or(0.0))
            .collect()
    }
}

const BAR_WIDTH: usize = 40;
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

fn bar(v: f64, max: f64) -> String {
    if max <= 0.0 || v <= 0.0 {
        return String::new();
    }
    let eighths = ((v / max) * (BAR_WIDTH * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[eighths % 8]);
    }
    s
}

pub fn sparkline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0, f64::max);
    let min = values
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min)
        .min(max);
    values
        .iter()
        .map(|&v| {
            if max <= min {
                SPARKS[0]
            } else {
                SPARKS[(((v - min) / (max - min)) * 7.0).round() as usize]
            }
        })
        .collect()
}

fn csv_field(s: &[u8]) -> Vec<u8> {
    if s.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        let mut v = Vec::with_capacity(s.len() + 2);
        v.push(b'"');
        for &b in s {
            if b == b'"' {
                v.push(b'"');
            }
            v.push(b);
        }
        v.push(b'"');
        v
    } else {
        s.to_vec()
    }
}

fn tsv_field(s: &[u8]) -> Vec<u8> {
    s.iter()
        .map(|&b| if b == b'\t' || b == b'\n' { b' ' } else { b })
        .collect()
}

pub fn write<W: Write>(
    t: &Table,
    format: Option<OutputArg>,
    chart: Option<ChartArg>,
    out: &mut W,
) -> io::Result<()> {
    let format = format.unwrap_or(if io::stdout().is_terminal() {
        OutputArg::Table
    } else {
        OutputArg::Tsv
    });
    let series = t.series();
    let max = series.iter().cloned().fold(0.0, f64::max);
    let bars = chart == Some(ChartArg::Bars);
    match format {
        OutputArg::Tsv | OutputArg::Csv => {
            let csv = format == OutputArg::Csv;
            let sep: &[u8] = if csv { b"," } else { b"\t" };
            let cell = |s: &[u8]| if csv { csv_field(s) } else { tsv_field(s) };
            let mut row = |cells: &mut dyn Iterator<Item = Vec<u8>>| -> io::Result<()> {
                for (i, c) in cells.enumerate() {
                    if i > 0 {
                        out.write_all(sep)?;
                    }
                    out.write_all(&c)?;
                }
                out.write_all(b"\n")
            };
            row(&mut t.header.iter().map(|h| cell(h.as_bytes())))?;
            for (i, r) in t.rows.iter().enumerate() {
                let bar = bars.then(|| bar(series[i], max).into_bytes());
                row(&mut r.iter().map(|c| cell(&raw(c))).chain(bar))?;
            }
        }
        OutputArg::Json => {
            // Written by hand (values encoded by serde_json) to keep the columns' order.
            for r in &t.rows {
                let mut line = String::from("{");
                for (i, (h, c)) in t.header.iter().zip(r).enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&serde_json::Value::String(h.clone()).to_string());
                    line.push(':');
                    let v = match c {
                        Cell::Int(i) => serde_json::Value::from(*i),
                        Cell::Num(n) => serde_json::Number::from_f64(*n)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number),
                        Cell::Text(b) => {
                            serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
                        }
                        Cell::Empty => serde_json::Value::Null,
                    };
                    line.push_str(&v.to_string());
                }
                line.push('}');
                writeln!(out, "{line}")?;
            }
        }
        OutputArg::Table => {
            let texts: Vec<Vec<String>> = t
                .rows
                .iter()
                .map(|r| r.iter().map(table_text).collect())
                .collect();
            let mut widths: Vec<usize> = t.header.iter().map(|h| width(h)).collect();
            for r in &texts {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(width(c));
                }
            }
            let numeric: Vec<bool> = (0..t.header.len())
                .map(|i| t.rows.iter().all(|r| !matches!(r[i], Cell::Text(_))))
                .collect();
            let line = |cells: &[String], out: &mut W, extra: &str| -> io::Result<()> {
                let mut s = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i > 0 {
                        s.push_str("  ");
                    }
                    let pad = widths[i].saturating_sub(width(c));
                    if numeric[i] {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(c);
                    } else {
                        s.push_str(c);
                        s.push_str(&" ".repeat(pad));
                    }
                }
                if !extra.is_empty() {
                    s.push_str("  ");
                    s.push_str(extra);
                }
                writeln!(out, "{}", s.trim_end())
            };
            line(&t.header, out, "")?;
            for (i, r) in texts.iter().enumerate() {
                let b = if bars {
                    bar(series[i], max)
                } else {
                    String::new()
                };
                line(r, out, &b)?;
            }
        }
    }
    if chart == Some(ChartArg::Sparkline) {
        writeln!(
            out,
            "{} {}  (min {}, max {})",
            t.header.last().map(String::as_str).unwrap_or(""),
            sparkline(&series),
            fmt_num(series.iter().cloned().fold(f64::INFINITY, f64::min)),
            fmt_num(max)
        )?;
    }
    Ok(())
}
