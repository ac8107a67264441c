//! `count`/`stats --by SPAN --follow`: each time bucket's rows printed once it has closed.
//!
//! A reader thread turns the followed stream into lines; the main thread aggregates each line
//! into its bucket and, on every line and at least every `TICK`, prints the buckets whose
//! end is `GRACE` in the past by the wall clock (lines come a little out of order). A line
//! for a bucket already printed is counted as late and said on stderr. Without groups, a
//! bucket in which no line fell is printed with zero counts, so a quiet minute shows.
//!
//! On a terminal (or with `-O table`) the rows are not streamed: a `Screen` redraws the
//! table in place, the last screenful of closed buckets and the open buckets counted so far.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::agg::Cell;
use crate::cli::{OutputArg, StatsArgs};
use crate::output::Table;
use crate::plan::Task;
use crate::records::{Groups, StatsPlan};
use crate::source::{stdout, Source};
use crate::{lines, output, timefmt};

/// How long after a bucket's end its lines may still come.
const GRACE: i64 = 2;
/// The longest wait between two looks at the clock.
const TICK: Duration = Duration::from_millis(200);

pub fn run_live_stats(plan: &StatsPlan, src: &Source, a: &StatsArgs) -> Result<i32> {
    let span = plan.span.ok_or_else(|| {
        anyhow!(
            "--follow with count or stats needs --by SPAN (a row is printed as each bucket closes)"
        )
    })?;
    // On a terminal (or with -O table) the table is redrawn in place; else rows stream.
    let format = a.output.unwrap_or(if std::io::stdout().is_terminal() {
        OutputArg::Table
    } else {
        OutputArg::Tsv
    });
    let mut screen = (format == OutputArg::Table).then(Screen::new);
    let reader = src.open(&Task {
        input: 0,
        range: None,
    })?;
    let (tx, rx) = sync_channel::<Vec<u8>>(1024);
    let mut out = stdout();
    std::thread::scope(|scope| -> Result<i32> {
        scope.spawn(move || {
            let _ = lines::for_each_line(reader, |l| match tx.send(l.to_vec()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            });
        });
        let mut open: BTreeMap<i64, Groups> = BTreeMap::new();
        let mut printed_until: Option<i64> = None;
        let mut header = true;
        let mut late = 0u64;
        loop {
            match rx.recv_timeout(TICK) {
                Ok(line) => {
                    if let Some(s) = screen.as_mut() {
                        s.dirty = true;
                    }
                    for (t, g) in plan.scan(line.as_slice(), src.format)?.split_by_bucket() {
                        if printed_until.is_some_and(|p| t < p) {
                            late += 1;
                            continue;
                        }
                        let into = open.entry(t).or_default();
                        plan.merge(into, g);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
            let now = timefmt::now();
            let is_closed = |t: i64| crate::zone::next_bucket(t, span).saturating_add(GRACE) <= now;
            loop {
                // The next bucket to print: the one after the last printed (a quiet one too,
                // without groups), else the oldest open one.
                let next = match printed_until {
                    Some(p) if plan.group.is_empty() => Some(p),
                    _ => open.keys().next().copied(),
                };
                let Some(t) = next.filter(|&t| is_closed(t)) else {
                    break;
                };
                let g = open.remove(&t).unwrap_or_else(|| {
                    let mut empty = Groups::default();
                    empty.add_empty_bucket(plan, t);
                    empty
                });
                match screen.as_mut() {
                    Some(s) => s.closed(plan, g)?,
                    None => print_bucket(plan, g, format, &mut header, &mut out)?,
                }
                printed_until = Some(crate::zone::next_bucket(t, span));
            }
            if let Some(s) = screen.as_mut() {
                s.draw(plan, &open, &mut out)?;
            }
            if late > 0 {
                eprintln!("logq: warning: {late} lines came after their time bucket was printed and were not counted");
                late = 0;
            }
        }
    })
}

/// The live table on a terminal: the closed buckets' rows (the last screenful) and the open
/// buckets' rows so far, redrawn in place at most every [`TICK`].
struct Screen {
    header: Vec<String>,
    rows: VecDeque<Vec<Cell>>,
    keep: usize,
    dirty: bool,
    last_draw: Option<Instant>,
}

impl Screen {
    fn new() -> Screen {
        // The terminal's height when the shell says it; else a screenful of a small one.
        let keep = std::env::var("LINES")
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
            .map_or(30, |l| l.saturating_sub(4).max(5));
        Screen {
            header: Vec::new(),
            rows: VecDeque::new(),
            keep,
            dirty: false,
            last_draw: None,
        }
    }

    fn closed(&mut self, plan: &StatsPlan, g: Groups) -> Result<()> {
        let mut t = plan.finish(g)?;
        t.sort_and_limit(plan.sort.as_deref(), plan.top, None)?;
        self.header = t.header;
        self.rows.extend(t.rows);
        while self.rows.len() > self.keep {
            self.rows.pop_front();
        }
        self.dirty = true;
        Ok(())
    }

    fn draw(
        &mut self,
        plan: &StatsPlan,
        open: &BTreeMap<i64, Groups>,
        out: &mut impl Write,
    ) -> Result<()> {
        if !self.dirty || self.last_draw.is_some_and(|t| t.elapsed() < TICK) {
            return Ok(());
        }
        let mut t = Table {
            header: self.header.clone(),
            rows: self.rows.iter().cloned().collect(),
            time_series: true,
        };
        let mut counting = 0;
        for g in open.values() {
            let mut part = plan.finish(g.clone())?;
            part.sort_and_limit(plan.sort.as_deref(), plan.top, None)?;
            counting += part.rows.len();
            t.header = part.header;
            t.rows.extend(part.rows);
        }
        if t.header.is_empty() {
            return Ok(());
        }
        let skip = t.rows.len().saturating_sub(self.keep);
        t.rows.drain(..skip);
        // Cursor home and clear the screen, then the whole table: one write per frame.
        let mut buf = b"\x1b[H\x1b[2J".to_vec();
        output::write(&t, Some(OutputArg::Table), None, &mut buf)?;
        if counting > 0 {
            writeln!(buf, "(the last {counting} row(s): buckets still open)")?;
        }
        out.write_all(&buf)?;
        out.flush()?;
        self.dirty = false;
        self.last_draw = Some(Instant::now());
        Ok(())
    }
}

/// One bucket's rows (the header before the first).
fn print_bucket(
    plan: &StatsPlan,
    g: Groups,
    format: OutputArg,
    header: &mut bool,
    out: &mut impl Write,
) -> Result<()> {
    let mut table = plan.finish(g)?;
    // One bucket: --top and --sort apply to its rows.
    table.sort_and_limit(plan.sort.as_deref(), plan.top, None)?;
    let mut buf = Vec::new();
    output::write(&table, Some(format), None, &mut buf)?;
    let body = if *header || format == OutputArg::Json {
        &buf[..]
    } else {
        // TSV and CSV: everything after the header line.
        memchr::memchr(b'\n', &buf).map_or(&buf[..0], |i| &buf[i + 1..])
    };
    *header = false;
    out.write_all(body)?;
    out.flush()?;
    Ok(())
}
