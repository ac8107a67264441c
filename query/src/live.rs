//! `count`/`stats --by SPAN --follow`: each time bucket's rows printed once it has closed.
//!
//! A reader thread turns the followed stream into lines; the main thread aggregates each line
//! into its bucket and, on every line and at least every `TICK`, prints the buckets whose
//! end is `GRACE` in the past by the wall clock (lines come a little out of order). A line
//! for a bucket already printed is counted as late and said on stderr. Without groups, a
//! bucket in which no line fell is printed with zero counts, so a quiet minute shows.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::cli::{OutputArg, StatsArgs};
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
    let format = a.output.unwrap_or(OutputArg::Tsv);
    if format == OutputArg::Table {
        return Err(anyhow!(
            "--follow prints rows as they close: use -O tsv, csv or json"
        ));
    }
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
                print_bucket(plan, g, format, &mut header, &mut out)?;
                printed_until = Some(crate::zone::next_bucket(t, span));
            }
            if late > 0 {
                eprintln!("logq: warning: {late} lines came after their time bucket was printed and were not counted");
                late = 0;
            }
        }
    })
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
