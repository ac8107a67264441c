//! Runs a parsed command line: resolves inputs, plans tasks, runs them on the workers and
//! writes the output. Returns the process exit status (grep's convention: 0 something
//! selected, 1 nothing selected; errors are returned as `Err` and exit 2).

use std::io::{self, IsTerminal, Read, Write};
use std::ops::ControlFlow;

use anyhow::{bail, Context, Result};

use crate::cli::{Cli, Command, CutArgs, GrepArgs, InputArgs};
use crate::cut::{Cut, List, Mode};
use crate::grep::{Grep, GrepOptions};
use crate::input::{resolve, Input, InputSpec};
use crate::plan::{plan, Task};
use crate::{lines, par, progress, query, timerange};

pub fn run(cli: Cli) -> Result<i32> {
    let quiet = matches!(&cli.cmd, Command::Grep(a) if a.quiet);
    let code = run_command(cli)?;
    // An input that could not be read was reported and skipped; the status still says so
    // (except `grep -q` that found a match: 0, like GNU grep).
    if crate::input::had_input_errors() && !(quiet && code == 0) {
        return Ok(2);
    }
    Ok(code)
}

fn run_command(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Command::Grep(a) => run_grep(a),
        Command::Cut(a) => run_cut(a),
        Command::Where(a) => query::run_where(a),
        Command::Print(a) => query::run_print(a),
        Command::Count(a) => query::run_stats("count", a),
        Command::Stats(a) => query::run_stats(&a.aggs, a.stats),
    }
}

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
}

impl Source {
    pub fn new(args: &InputArgs, paths: &[String]) -> Result<Source> {
        crate::lines::set_max_line(usize::try_from(args.max_line).unwrap_or(usize::MAX));
        let spec = InputSpec {
            paths: paths.to_vec(),
            categories: args.categories.clone(),
            data_dir: args.data_dir.clone(),
        };
        let inputs = resolve(&spec)?;
        let range = timerange::TimeRange::from_args(args.since.as_deref(), args.until.as_deref())?;
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
}

/// Standard output with a large buffer (one write per 256 KiB).
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(256 * 1024, io::stdout().lock())
}

fn run_grep(a: GrepArgs) -> Result<i32> {
    let mut rest = a.args.clone();
    let patterns = if a.regexp.is_empty() {
        if rest.is_empty() {
            bail!("no pattern given (usage: logq grep [OPTIONS] PATTERN [FILE...])");
        }
        vec![rest.remove(0)]
    } else {
        a.regexp.clone()
    };
    let color = match a.color.as_deref() {
        None | Some("never") => false,
        Some("always") => true,
        Some("auto") => {
            io::stdout().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        }
        Some(w) => bail!("invalid --color argument {w:?} (never, always, auto)"),
    };
    let src = Source::new(&a.input, &rest)?;
    // Named operands count even if missing (GNU: `grep x gone.log a.log` prefixes a.log).
    let several = src.inputs.len() > 1 || rest.len() > 1;
    let opts = GrepOptions {
        patterns,
        ignore_case: a.ignore_case,
        invert: a.invert,
        fixed: a.fixed,
        word: a.word,
        line: a.line,
        count: a.count,
        max_count: a.max_count,
        line_number: a.line_number,
        only_matching: a.only_matching,
        context_given: a.after.or(a.before).or(a.context).is_some(),
        after: a.after.or(a.context).unwrap_or(0),
        before: a.before.or(a.context).unwrap_or(0),
        files_with_matches: a.files_with_matches,
        quiet: a.quiet,
        with_filename: (several || a.with_filename) && !a.no_filename,
        color,
    };
    if a.input.tail.is_some() {
        bail!("--tail is not supported by grep (use logq where or print)");
    }
    let grep = Grep::new(opts)?;
    let tasks = plan(&src.inputs, !grep.opts.needs_whole_file())?;
    let sep = grep.opts.has_context().then(|| grep.opts.group_separator());
    let mut out = stdout();
    let counts = par::run_ordered(
        tasks.len(),
        par::workers(tasks.len()),
        &mut out,
        sep,
        |i, w| {
            let t = &tasks[i];
            let name = &src.inputs[t.input].name;
            let n = match src.mapped(t)? {
                Some(m) => {
                    let n = grep.search_slice(name, &m, w);
                    src.mapped_done(&m);
                    n
                }
                None => grep.search(name, src.open(t)?, w),
            }?;
            if n > 0 && grep.opts.has_context() {
                // Selected lines are a group even when `-o` printed nothing of them.
                w.mark_output()?;
            }
            Ok(n)
        },
    );
    src.progress.finish();
    let counts = counts?;
    Ok(if counts.iter().any(|&c| c > 0) { 0 } else { 1 })
}

fn run_cut(a: CutArgs) -> Result<i32> {
    let lists = [&a.bytes, &a.chars, &a.fields]
        .iter()
        .filter(|l| l.is_some())
        .count();
    if lists != 1 {
        bail!("you must specify exactly one of -b, -c or -f (with -w for whitespace fields)");
    }
    let spec = a
        .bytes
        .as_ref()
        .or(a.chars.as_ref())
        .or(a.fields.as_ref())
        .expect("one list");
    let mut list = List::parse(spec).context("bad list")?;
    if a.complement {
        list = list.complement();
    }
    let mode = if a.fields.is_some() {
        if a.whitespace {
            if a.delimiter.is_some() {
                bail!("-w and -d are exclusive");
            }
            Mode::Blank
        } else {
            let d = match a.delimiter.as_deref() {
                None => b'\t',
                // GNU cut: an empty delimiter is NUL.
                Some("") => 0,
                Some(d) if d.len() == 1 => d.as_bytes()[0],
                Some(_) => bail!("the delimiter must be a single byte"),
            };
            Mode::Fields(d)
        }
    } else {
        if a.delimiter.is_some() || a.whitespace {
            bail!("an input delimiter may be specified only when operating on fields");
        }
        if a.only_delimited {
            bail!("suppressing non-delimited lines makes sense only when operating on fields");
        }
        Mode::Bytes
    };
    let cut = Cut {
        mode,
        list,
        only_delimited: a.only_delimited,
        // GNU cut: an empty output delimiter is NUL, as for -d.
        output_delimiter: a.output_delimiter.map(|d| {
            if d.is_empty() {
                vec![0]
            } else {
                d.into_bytes()
            }
        }),
    };
    let src = Source::new(&a.input, &a.files)?;
    let mut out = stdout();
    if let Some(n) = a.input.tail {
        let lines = query::tail_lines(&src, n)?;
        for l in &lines {
            cut.line(l, &mut out)?;
        }
        out.flush()?;
        return Ok(0);
    }
    let tasks = plan(&src.inputs, true)?;
    par::run_ordered(
        tasks.len(),
        par::workers(tasks.len()),
        &mut out,
        None,
        |i, w| {
            let mut err = Ok(());
            src.for_each_line(&tasks[i], |line| match cut.line(line, w) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    err = Err(e);
                    ControlFlow::Break(())
                }
            })?;
            err?;
            Ok(())
        },
    )?;
    src.progress.finish();
    Ok(0)
}
