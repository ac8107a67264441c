//! `--since` / `--until`: skipping whole files whose time range cannot match, and dropping
//! the lines outside the range from the rest.
//!
//! Files are judged by the time of their first line (and, for plain files, their last): an
//! archive is written in time order, so a category file's lines lie between its first line's
//! time and the next file's. Lines within a file are not perfectly ordered (Apache logs the
//! request's start time at its end), so the file-level checks allow `SLACK` (an hour); the line-level
//! filter is exact. A line without a time of its own (a stack trace's continuation) goes with
//! the line before it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::ControlFlow;

use anyhow::Result;

use crate::cli::FormatArg;
use crate::formats::Detector;
use crate::input::{Input, InputKind};
use crate::{lines, timefmt};

/// How far out of order lines may be for file skipping to stay safe.
const SLACK: i64 = 3600;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl TimeRange {
    pub fn from_args(since: Option<&str>, until: Option<&str>) -> Result<TimeRange> {
        let now = timefmt::now();
        Ok(TimeRange {
            since: since
                .map(|s| timefmt::parse_user_time(s, now))
                .transpose()?,
            until: until
                .map(|s| timefmt::parse_user_time(s, now))
                .transpose()?,
        })
    }

    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    pub fn contains(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// The time of the first line of `data` that has one.
fn first_time(data: &[u8], forced: Option<FormatArg>) -> Option<i64> {
    let now = timefmt::now();
    let mut pick = Detector::new(forced);
    let mut found = None;
    lines::for_each_line_in(data, |line| {
        if line.trim_ascii().is_empty() {
            return ControlFlow::Continue(());
        }
        match pick.record(line, now).time() {
            Some(t) => {
                found = Some(t);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    });
    found
}

fn head(input: &Input) -> Option<Vec<u8>> {
    let r = input.open_quiet().ok()?;
    let mut buf = Vec::new();
    r.take(64 * 1024).read_to_end(&mut buf).ok()?;
    // Drop a partial last line.
    if buf.len() == 64 * 1024 {
        let nl = memchr::memrchr(b'\n', &buf)?;
        buf.truncate(nl + 1);
    }
    Some(buf)
}

fn last_line_time(input: &Input, forced: Option<FormatArg>) -> Option<i64> {
    if !input.is_regular() || input.is_gzip().ok()? {
        return None;
    }
    let mut f = File::open(input.path()?).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let from = memchr::memrchr(b'\n', body).map(|i| i + 1).unwrap_or(0);
    if from == 0 && start > 0 {
        return None;
    }
    first_time(&body[from..], forced)
}

/// Which inputs may hold lines in `range` (`false`: skip it unread).
pub fn prune(inputs: &[Input], range: &TimeRange, forced: Option<FormatArg>) -> Result<Vec<bool>> {
    let firsts: Vec<Option<i64>> = inputs
        .iter()
        .map(|i| match i.kind {
            // A pipe (stdin, a FIFO, `<(...)`) can be read only once: never peek at it.
            InputKind::Stdin | InputKind::Follow(_) | InputKind::Merge(_) => None,
            _ if !i.is_regular() => None,
            _ => head(i).and_then(|h| first_time(&h, forced)),
        })
        .collect();
    let mut keep = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let first = firsts[i];
        if let (Some(u), Some(f)) = (range.until, first) {
            if f >= u.saturating_add(SLACK) {
                tracing::debug!(input = %input.name, "skipped: starts after --until");
                keep.push(false);
                continue;
            }
        }
        if let Some(s) = range.since {
            // An archive file ends where the next file of the same category begins.
            let next_first = match (&input.kind, inputs.get(i + 1).map(|n| &n.kind)) {
                (InputKind::Archive(a), Some(InputKind::Archive(b)))
                    if a.path.parent() == b.path.parent() =>
                {
                    firsts[i + 1]
                }
                _ => None,
            };
            let last = next_first.or_else(|| last_line_time(input, forced));
            if last.is_some_and(|l| l.saturating_add(SLACK) < s) {
                tracing::debug!(input = %input.name, "skipped: ends before --since");
                keep.push(false);
                continue;
            }
        }
        keep.push(true);
    }
    Ok(keep)
}

/// A reader that passes on only the lines whose time is in range.
pub struct FilterReader<R> {
    inner: R,
    range: TimeRange,
    pick: Detector,
    now: i64,
    /// Whether the previous line was kept (lines without a time follow it).
    keep_untimed: bool,
    raw: Vec<u8>,
    raw_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R: Read> FilterReader<R> {
    pub fn new(inner: R, range: TimeRange, forced: Option<FormatArg>) -> FilterReader<R> {
        FilterReader {
            inner,
            range,
            pick: Detector::new(forced),
            now: timefmt::now(),
            keep_untimed: false,
            raw: vec![0; 1024 * 1024],
            raw_len: 0,
            out: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }

    fn filter_line(&mut self, line: &[u8], with_nl: bool) {
        if !line.trim_ascii().is_empty() {
            if let Some(t) = self.pick.record(line, self.now).time() {
                self.keep_untimed = self.range.contains(t);
            }
        }
        if self.keep_untimed {
            self.out.extend_from_slice(line);
            if with_nl {
                self.out.push(b'\n');
            }
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() && !self.eof {
            if self.raw_len > lines::max_line() {
                return Err(lines::too_long());
            }
            if self.raw_len == self.raw.len() {
                let n = (self.raw.len() * 2).min(lines::max_line() + 1);
                self.raw.resize(n, 0);
            }
            let n = self.inner.read(&mut self.raw[self.raw_len..])?;
            if n == 0 {
                self.eof = true;
                if self.raw_len > 0 {
                    let rest = std::mem::take(&mut self.raw);
                    self.filter_line(&rest[..self.raw_len], false);
                    self.raw = rest;
                    self.raw_len = 0;
                }
                break;
            }
            self.raw_len += n;
            let Some(last) = memchr::memrchr(b'\n', &self.raw[..self.raw_len]) else {
                continue;
            };
            let raw = std::mem::take(&mut self.raw);
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &raw[..=last]) {
                self.filter_line(&raw[start..nl], true);
                start = nl + 1;
            }
            self.raw = raw;
            self.raw.copy_within(last + 1..self.raw_len, 0);
            self.raw_len -= last + 1;
        }
        Ok(())
    }
}

impl<R: Read> Read for FilterReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos == self.out.len() {
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}
