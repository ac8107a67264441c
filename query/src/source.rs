//! What every command reads: the resolved inputs, the `--since`/`--until` range, and how a
//! task's bytes are read (mapped or streamed, decompressed, time-filtered, counted for the
//! progress bar); and the buffered standard output every command writes to.

use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context, Result};

use crate::cli::InputArgs;
use crate::input::{resolve, Input, InputSpec};
use crate::plan::{plan, Task};
use crate::{lines, progress, timerange};

/// Inputs plus everything that decides how a task's bytes are read.
pub struct Source {
    pub inputs: Vec<Input>,
    /// Inputs `--since`/`--until` showed to hold no line in range: read as empty, but still
    /// there (so that `grep -c` prints their `name:0` line like GNU grep).
    skipped: Vec<bool>,
    pub range: timerange::TimeRange,
    pub format: Option<crate::cli::FormatArg>,
    pub progress: progress::Progress,
    pub no_mmap: bool,
    /// The first bytes read from stdin (up to [`STDIN_HEAD`]), kept so that a "did you mean"
    /// hint can still look at stdin's field names after it was consumed.
    pub stdin_head: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

/// How much of stdin [`Source::stdin_head`] keeps.
pub const STDIN_HEAD: usize = 256 * 1024;

/// A reader that copies the first [`STDIN_HEAD`] bytes it reads into a shared buffer.
struct Head<R> {
    inner: R,
    head: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// The buffer is full: no more locking.
    full: bool,
}

impl<R: Read> Read for Head<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.full {
            let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
            let room = STDIN_HEAD.saturating_sub(head.len()).min(n);
            head.extend_from_slice(&buf[..room]);
            self.full = head.len() >= STDIN_HEAD;
        }
        Ok(n)
    }
}

impl Source {
    pub fn new(args: &InputArgs, paths: &[String]) -> Result<Source> {
        if let Some(tz) = &args.tz {
            crate::zone::set(tz)?;
        }
        crate::lines::set_max_line(usize::try_from(args.max_line).unwrap_or(usize::MAX));
        if let Some(spec) = &args.parse {
            crate::custom::set(spec)?;
        }
        let range = timerange::TimeRange::from_args(args.since.as_deref(), args.until.as_deref())?;
        let env_archive = std::env::var("LOGQ_ARCHIVE").ok().filter(|v| !v.is_empty());
        let spec = InputSpec {
            paths: paths.to_vec(),
            categories: args.categories.clone(),
            data_dir: args.data_dir.clone(),
            follow: args.follow,
            archive: args.archive.clone().or(env_archive),
            archive_flag: args.archive.is_some(),
            since: range.since,
            until: range.until,
        };
        crate::input::set_report_archive_stats(args.archive_stats);
        if args.line_buffered || args.follow {
            set_line_buffered(true);
        }
        let mut inputs = resolve(&spec)?;
        if args.merge {
            if args.follow {
                anyhow::bail!(
                    "--merge reads whole inputs; --follow already reads them as one live stream"
                );
            }
            if inputs.len() > 1 {
                inputs = vec![crate::input::merge::merged_input(inputs, args.format)];
            }
        }
        let skipped = if range.is_all() {
            vec![false; inputs.len()]
        } else {
            let keep = timerange::prune(&inputs, &range, args.format)?;
            keep.into_iter().map(|k| !k).collect()
        };
        let progress = progress::Progress::new(&inputs, args.no_progress);
        Ok(Source {
            inputs,
            skipped,
            range,
            format: args.format,
            progress,
            no_mmap: args.no_mmap,
            stdin_head: Default::default(),
        })
    }

    /// A task's bytes in memory, when they can be mapped and need no line filtering (see
    /// [`crate::plan::map`]); the caller then skips [`Source::open`].
    pub fn mapped(&self, task: &Task) -> Result<Option<crate::plan::Mapped>> {
        if !self.range.is_all() || self.no_mmap {
            return Ok(None);
        }
        crate::plan::map(&self.inputs, task)
    }

    /// Counts a mapped task's bytes as done, for the progress bar.
    pub fn mapped_done(&self, m: &crate::plan::Mapped) {
        self.progress.add(m.len() as u64);
    }

    /// Calls `f` on every line of a task: from a mapping when possible, else read.
    pub fn for_each_line(
        &self,
        task: &Task,
        f: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        if let Some(m) = self.mapped(task)? {
            lines::for_each_line_in(&m, f);
            self.mapped_done(&m);
            return Ok(());
        }
        let r = self.open(task)?;
        lines::for_each_line(r, f)
            .with_context(|| format!("reading {}", self.inputs[task.input].name))?;
        Ok(())
    }

    /// A task's bytes: decompressed, restricted to the time range, counted for progress.
    pub fn open(&self, task: &Task) -> Result<Box<dyn Read + Send + '_>> {
        if self.skipped[task.input] {
            return Ok(Box::new(io::empty()));
        }
        let r = crate::plan::open(&self.inputs, task)?;
        let r = self.progress.wrap(r, &self.inputs[task.input]);
        let r: Box<dyn Read + Send + '_> =
            if matches!(self.inputs[task.input].kind, crate::input::InputKind::Stdin) {
                Box::new(Head {
                    inner: r,
                    head: self.stdin_head.clone(),
                    full: false,
                })
            } else {
                r
            };
        if self.range.is_all() {
            Ok(r)
        } else {
            Ok(Box::new(timerange::FilterReader::new(
                r,
                self.range.clone(),
                self.format,
            )))
        }
    }

    /// The last `n` lines of the whole input, in order.
    pub fn tail_lines(&self, n: usize) -> Result<Vec<Vec<u8>>> {
        let mut ring: VecDeque<Vec<u8>> = VecDeque::with_capacity(n.min(1 << 16));
        for t in plan(&self.inputs, false)? {
            let r = self.open(&t)?;
            lines::for_each_line(r, |l| {
                if n > 0 {
                    if ring.len() == n {
                        ring.pop_front();
                    }
                    ring.push_back(l.to_vec());
                }
                ControlFlow::Continue(())
            })
            .with_context(|| format!("reading {}", self.inputs[t.input].name))?;
        }
        Ok(ring.into())
    }
}

/// Whether output is flushed line by line: `--line-buffered`, or stdout is a terminal (so
/// that `tail -F log | logq where ...` shows each line as it comes). A process-wide setting
/// because the workers' output blocks ([`crate::par`]) must follow it too.
static LINE_BUFFERED: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = 2;

pub fn set_line_buffered(yes: bool) {
    LINE_BUFFERED.store(u8::from(yes), Ordering::Relaxed);
}

pub fn line_buffered() -> bool {
    match LINE_BUFFERED.load(Ordering::Relaxed) {
        UNSET => {
            let tty = io::stdout().is_terminal();
            set_line_buffered(tty);
            tty
        }
        v => v == 1,
    }
}

/// Standard output: a large buffer (one write per 256 KiB), or flushed at the end of every
/// write that ends a line when [`line_buffered`].
pub fn stdout() -> Stdout {
    Stdout {
        inner: io::BufWriter::with_capacity(256 * 1024, io::stdout().lock()),
        line_buffered: line_buffered(),
    }
}

pub struct Stdout {
    inner: io::BufWriter<io::StdoutLock<'static>>,
    line_buffered: bool,
}

impl Write for Stdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if self.line_buffered && matches!(data[..n].last(), Some(b'\n' | 0)) {
            self.inner.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
