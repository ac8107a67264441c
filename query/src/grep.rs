//! `logq grep`: regex search with GNU grep's flags and output format.
//!
//! Matching and line bookkeeping (context windows, line numbers, `-m` with trailing context,
//! inverted matching, literal prefilters) are ripgrep's libraries, `grep-regex` and
//! `grep-searcher`: they search a whole buffer at a time and only look for line boundaries
//! around matches. What is ours is the printer, which writes exactly what GNU grep writes for
//! the flags both tools share (prefixes, `:`/`-` separators, `--` between context groups,
//! colours), so scripts and eyes trained on grep see no difference.

use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use grep_matcher::Matcher;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{
    BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkContextKind, SinkMatch,
};

use crate::cli::GrepArgs;
use crate::par;
use crate::plan::plan;
use crate::source::{stdout, Source};

/// GNU grep's default `GREP_COLORS` (`ms=01;31:fn=35:ln=32:se=36`).
const C_MATCH: &[u8] = b"\x1b[01;31m\x1b[K";
const C_FILE: &[u8] = b"\x1b[35m\x1b[K";
const C_LINE: &[u8] = b"\x1b[32m\x1b[K";
const C_SEP: &[u8] = b"\x1b[36m\x1b[K";
const C_END: &[u8] = b"\x1b[m\x1b[K";

#[derive(Debug, Clone, Default)]
pub struct GrepOptions {
    pub patterns: Vec<String>,
    pub ignore_case: bool,
    pub invert: bool,
    pub fixed: bool,
    pub word: bool,
    pub line: bool,
    pub count: bool,
    pub max_count: Option<u64>,
    pub line_number: bool,
    pub only_matching: bool,
    /// Whether `-A`, `-B` or `-C` was given, even as 0: GNU grep then prints `--` between
    /// groups of lines that are not adjacent in the input.
    pub context_given: bool,
    pub after: usize,
    pub before: usize,
    pub files_with_matches: bool,
    /// `-q`: no output at all, stop at the first selected line.
    pub quiet: bool,
    pub with_filename: bool,
    pub color: bool,
}

impl GrepOptions {
    /// Whether output depends on reading a file from its start in one piece (line numbers,
    /// context, per-file counts and limits); otherwise a large file may be searched as several
    /// independent byte ranges in parallel.
    pub fn needs_whole_file(&self) -> bool {
        self.line_number
            || self.context_given
            || self.count
            || self.max_count.is_some()
            || self.files_with_matches
            || self.quiet
    }

    /// Whether groups are separated by `--` (also with `-o`, where GNU grep leaves the context
    /// lines out but still separates groups as if they were printed).
    pub fn has_context(&self) -> bool {
        self.context_given && !(self.count || self.files_with_matches || self.quiet)
    }

    /// What GNU grep prints between context groups (and between files' groups).
    pub fn group_separator(&self) -> &'static [u8] {
        if self.color {
            b"\x1b[36m\x1b[K--\x1b[m\x1b[K\n"
        } else {
            b"--\n"
        }
    }
}

/// The compiled search: one matcher and searcher configuration shared by every worker.
pub struct Grep {
    pub opts: GrepOptions,
    matcher: RegexMatcher,
    /// A builder, not a `Searcher`: searchers hold buffers and are not `Sync`.
    searcher: SearcherBuilder,
}

impl Grep {
    pub fn new(opts: GrepOptions) -> Result<Grep> {
        // GNU grep treats a newline inside a pattern as a separator between patterns.
        let pats: Vec<String> = opts
            .patterns
            .iter()
            .flat_map(|p| p.split('\n').map(str::to_string).collect::<Vec<_>>())
            .collect();
        let mut b = RegexMatcherBuilder::new();
        b.case_insensitive(opts.ignore_case)
            .word(opts.word)
            .whole_line(opts.line)
            .fixed_strings(opts.fixed)
            // Lines never contain '\n': lets the matcher search whole buffers safely.
            .line_terminator(Some(b'\n'));
        let matcher = if pats.len() == 1 {
            b.build(&pats[0])
        } else {
            b.build_many(&pats)
        }
        .with_context(|| format!("invalid pattern {:?}", opts.patterns.join("\n")))?;
        let mut sb = SearcherBuilder::new();
        // Line numbers also tell where context groups break (printed only with `-n`).
        sb.line_number(opts.line_number || opts.context_given)
            .invert_match(opts.invert)
            // Logs are text even with stray NULs; GNU grep's "binary file matches" would hide
            // exactly the lines an investigation needs (this is `grep -a`).
            .binary_detection(BinaryDetection::none())
            .max_matches(opts.max_count)
            // A line must fit in the searcher's buffer: bound it like every other reader.
            .heap_limit(Some(crate::lines::max_line().saturating_mul(2)));
        sb.after_context(opts.after).before_context(opts.before);
        Ok(Grep {
            opts,
            matcher,
            searcher: sb,
        })
    }

    /// Searches one input (or byte range of one) and writes GNU-format output. Returns the
    /// number of selected lines.
    pub fn search<R: io::Read, W: Write>(&self, name: &str, reader: R, out: &mut W) -> Result<u64> {
        self.run(name, out, |searcher, sink| {
            searcher.search_reader(&self.matcher, reader, sink)
        })
    }

    /// Like [`Grep::search`], over bytes in memory (a mapped file).
    pub fn search_slice<W: Write>(&self, name: &str, data: &[u8], out: &mut W) -> Result<u64> {
        self.run(name, out, |searcher, sink| {
            searcher.search_slice(&self.matcher, data, sink)
        })
    }

    fn run<W: Write>(
        &self,
        name: &str,
        out: &mut W,
        search: impl FnOnce(&mut Searcher, &mut GnuSink<'_, W>) -> io::Result<()>,
    ) -> Result<u64> {
        let mut searcher = self.searcher.build();
        let mut sink = GnuSink {
            grep: self,
            name: name.as_bytes(),
            out,
            selected: 0,
            last_line: None,
        };
        search(&mut searcher, &mut sink).map_err(|e| {
            // The searcher's own words for its heap limit do not say which knob to turn.
            if e.to_string().contains("allocation limit") {
                anyhow::Error::new(crate::lines::too_long()).context(format!("reading {name}"))
            } else {
                anyhow::Error::new(e).context(format!("{name}: read error"))
            }
        })?;
        let selected = sink.selected;
        if self.opts.quiet {
            return Ok(selected);
        }
        if self.opts.files_with_matches {
            if selected > 0 {
                sink.write_name_line()?;
            }
        } else if self.opts.count {
            if self.opts.with_filename {
                sink.write_name()?;
                sink.write_sep(b':')?;
            }
            writeln!(sink.out, "{selected}")?;
        }
        Ok(selected)
    }
}

struct GnuSink<'a, W: Write> {
    grep: &'a Grep,
    name: &'a [u8],
    out: &'a mut W,
    selected: u64,
    /// The last line output (or, with `-o`, that would have been), to print `--` before a
    /// group that does not follow it.
    last_line: Option<u64>,
}

impl<W: Write> GnuSink<'_, W> {
    fn color(&self) -> bool {
        self.grep.opts.color
    }

    /// The number to print before a line (`-n`), from the searcher's count.
    fn shown(&self, n: Option<u64>) -> Option<u64> {
        n.filter(|_| self.grep.opts.line_number)
    }

    /// Notes that line `n` is output next, printing GNU's `--` first if it does not follow
    /// the previous one. (The searcher's own context breaks are not used: it reports none
    /// for `-A0` and none for context it is not asked to print.)
    fn group(&mut self, n: Option<u64>) -> io::Result<()> {
        let opts = &self.grep.opts;
        if !opts.has_context() {
            return Ok(());
        }
        if let (Some(last), Some(n)) = (self.last_line, n) {
            if n != last + 1 {
                self.out.write_all(opts.group_separator())?;
            }
        }
        self.last_line = n;
        Ok(())
    }

    fn write_name(&mut self) -> io::Result<()> {
        if self.color() {
            self.out.write_all(C_FILE)?;
            self.out.write_all(self.name)?;
            self.out.write_all(C_END)
        } else {
            self.out.write_all(self.name)
        }
    }

    fn write_name_line(&mut self) -> io::Result<()> {
        self.write_name()?;
        self.out.write_all(b"\n")
    }

    fn write_sep(&mut self, sep: u8) -> io::Result<()> {
        if self.color() {
            self.out.write_all(C_SEP)?;
            self.out.write_all(&[sep])?;
            self.out.write_all(C_END)
        } else {
            self.out.write_all(&[sep])
        }
    }

    fn write_prefix(&mut self, line_number: Option<u64>, sep: u8) -> io::Result<()> {
        if self.grep.opts.with_filename {
            self.write_name()?;
            self.write_sep(sep)?;
        }
        if let Some(n) = line_number {
            if self.color() {
                self.out.write_all(C_LINE)?;
                write!(self.out, "{n}")?;
                self.out.write_all(C_END)?;
            } else {
                write!(self.out, "{n}")?;
            }
            self.write_sep(sep)?;
        }
        Ok(())
    }

    /// A selected line: whole, or (`-o`) each non-empty match on its own line.
    fn selected_line(&mut self, line: &[u8], line_number: Option<u64>) -> io::Result<()> {
        let line = strip_terminator(line);
        let opts = &self.grep.opts;
        if opts.only_matching {
            if opts.invert {
                return Ok(());
            }
            let mut spans = Vec::new();
            self.find_spans(line, &mut spans);
            for (s, e) in spans {
                self.write_prefix(line_number, b':')?;
                self.write_colored(&line[s..e])?;
                self.out.write_all(b"\n")?;
            }
            return Ok(());
        }
        self.write_prefix(line_number, b':')?;
        if self.color() && !opts.invert {
            self.write_with_matches(line)?;
        } else {
            self.out.write_all(line)?;
        }
        self.out.write_all(b"\n")
    }

    /// `line` with its matches coloured.
    fn write_with_matches(&mut self, line: &[u8]) -> io::Result<()> {
        let mut spans = Vec::new();
        self.find_spans(line, &mut spans);
        let mut at = 0;
        for (s, e) in spans {
            self.out.write_all(&line[at..s])?;
            self.write_colored(&line[s..e])?;
            at = e;
        }
        self.out.write_all(&line[at..])
    }

    fn write_colored(&mut self, m: &[u8]) -> io::Result<()> {
        if self.color() {
            self.out.write_all(C_MATCH)?;
            self.out.write_all(m)?;
            self.out.write_all(C_END)
        } else {
            self.out.write_all(m)
        }
    }

    /// Non-empty matches in `line`, left to right, not overlapping (GNU grep skips empty ones).
    fn find_spans(&self, line: &[u8], spans: &mut Vec<(usize, usize)>) {
        let _ = self.grep.matcher.find_iter(line, |m| {
            if m.start() < m.end() {
                spans.push((m.start(), m.end()));
            }
            true
        });
    }
}

impl<W: Write> Sink for GnuSink<'_, W> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let stop_at_first = self.grep.opts.files_with_matches || self.grep.opts.quiet;
        let quiet = self.grep.opts.count || stop_at_first;
        let mut n = mat.line_number();
        for line in mat.lines() {
            // Past `-m NUM`, the searcher still reports matching lines of the trailing
            // context; GNU grep prints them as context (`-`), not as selected lines.
            if self.grep.opts.max_count.is_some_and(|m| self.selected >= m) {
                if !quiet {
                    self.group(n)?;
                    if !self.grep.opts.only_matching {
                        self.write_prefix(self.shown(n), b'-')?;
                        self.out.write_all(strip_terminator(line))?;
                        self.out.write_all(b"\n")?;
                    }
                }
                n = n.map(|n| n + 1);
                continue;
            }
            self.selected += 1;
            if !quiet {
                self.group(n)?;
                self.selected_line(line, self.shown(n))?;
            }
            n = n.map(|n| n + 1);
        }
        // `-l` and `-q` need only the first selected line.
        Ok(!stop_at_first)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, io::Error> {
        if self.grep.opts.count || self.grep.opts.files_with_matches || self.grep.opts.quiet {
            return Ok(true);
        }
        if matches!(ctx.kind(), SinkContextKind::Other) {
            return Ok(true);
        }
        self.group(ctx.line_number())?;
        if self.grep.opts.only_matching {
            // GNU grep -o prints no context lines (they still join groups), except that with
            // -v, where the context lines are the matching ones, it prints their matches.
            if self.grep.opts.invert {
                let line = strip_terminator(ctx.bytes());
                let mut spans = Vec::new();
                self.find_spans(line, &mut spans);
                for (s, e) in spans {
                    self.write_prefix(self.shown(ctx.line_number()), b'-')?;
                    self.write_colored(&line[s..e])?;
                    self.out.write_all(b"\n")?;
                }
            }
            return Ok(true);
        }
        self.write_prefix(self.shown(ctx.line_number()), b'-')?;
        let line = strip_terminator(ctx.bytes());
        if self.color() && self.grep.opts.invert {
            // With -v the context lines are the matching ones: GNU colours their matches.
            self.write_with_matches(line)?;
        } else {
            self.out.write_all(line)?;
        }
        self.out.write_all(b"\n")?;
        Ok(true)
    }
}

fn strip_terminator(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// `logq grep`: the arguments into [`GrepOptions`], then a search per task on the workers,
/// printed in input order.
pub fn run_grep(a: GrepArgs) -> Result<i32> {
    let mut rest = a.args.clone();
    let patterns = if a.regexp.is_empty() {
        if rest.is_empty() {
            bail!("no pattern given (usage: logq grep [OPTIONS] PATTERN [FILE...])");
        }
        vec![rest.remove(0)]
    } else {
        a.regexp.clone()
    };
    let color = color_arg(a.color.as_deref())?;
    let src = Source::new(&a.input, &rest)?;
    // Named operands count even if missing (GNU: `grep x gone.log a.log` prefixes a.log).
    let several = src.inputs.len() > 1 || rest.len() > 1;
    let opts = GrepOptions::from_args(&a, patterns, several, color);
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

impl GrepOptions {
    /// The flags as options; `several`: more than one input was named or found.
    fn from_args(a: &GrepArgs, patterns: Vec<String>, several: bool, color: bool) -> GrepOptions {
        GrepOptions {
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
        }
    }
}

/// `--color`: `auto` colours a terminal, unless `TERM=dumb`.
fn color_arg(arg: Option<&str>) -> Result<bool> {
    Ok(match arg {
        None | Some("never") => false,
        Some("always") => true,
        Some("auto") => {
            io::stdout().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        }
        Some(w) => bail!("invalid --color argument {w:?} (never, always, auto)"),
    })
}
