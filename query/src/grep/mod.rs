//! `logq grep`: regex search with GNU grep's flags, syntax and output format.
//!
//! Patterns are GNU's (BRE by default, `-E`, `-F`; `-P` for Rust regex syntax), translated
//! by [`posix`] and compiled by [`pattern`]. Line selection and line bookkeeping (context
//! windows, line numbers, `-m` with trailing context, inverted matching, literal
//! prefilters) are ripgrep's libraries, `grep-regex` and `grep-searcher`: they search a
//! whole buffer at a time and only look for line boundaries around matches. The spans shown
//! by `-o` and `--color` are POSIX leftmost-longest ([`longest`]). The printer (`sink`)
//! writes exactly what GNU grep writes for the flags both tools share.

pub mod longest;
pub mod pattern;
pub mod posix;
mod sink;

use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use grep_matcher::LineTerminator;
use grep_regex::RegexMatcher;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder};

use crate::cli::GrepArgs;
use crate::par;
use crate::plan::plan;
use crate::source::{stdout, Source};
use pattern::PatternOptions;
use sink::GnuSink;

#[derive(Debug, Clone, Default)]
pub struct GrepOptions {
    pub patterns: Vec<String>,
    pub pattern: PatternOptions,
    pub invert: bool,
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
    /// `-L`: names of inputs without a selected line.
    pub files_without_match: bool,
    /// `-q`: no output at all, stop at the first selected line.
    pub quiet: bool,
    pub with_filename: bool,
    pub color: bool,
    /// `-b`: the byte offset of each line (or `-o` match) before it.
    pub byte_offset: bool,
    /// `-T`: a tab after the prefixes, numbers right-aligned.
    pub initial_tab: bool,
    /// `-Z`: a NUL after file names instead of `:` or a newline.
    pub null_after_name: bool,
    /// `-z`: lines end with NUL, in input and output.
    pub null_data: bool,
}

impl GrepOptions {
    /// Whether output depends on reading a file from its start in one piece (line numbers,
    /// byte offsets, context, per-file counts and limits); otherwise a large file may be
    /// searched as several independent byte ranges in parallel.
    pub fn needs_whole_file(&self) -> bool {
        self.line_number
            || self.byte_offset
            || self.context_given
            || self.count
            || self.max_count.is_some()
            || self.files_with_matches
            || self.files_without_match
            || self.quiet
    }

    /// Whether groups are separated by `--` (also with `-o`, where GNU grep leaves the context
    /// lines out but still separates groups as if they were printed).
    pub fn has_context(&self) -> bool {
        self.context_given
            && !(self.count || self.files_with_matches || self.files_without_match || self.quiet)
    }

    /// What GNU grep prints between context groups (and between files' groups).
    pub fn group_separator(&self) -> &'static [u8] {
        if self.color {
            b"\x1b[36m\x1b[K--\x1b[m\x1b[K\n"
        } else {
            b"--\n"
        }
    }

    /// The line terminator: `\n`, or NUL with `-z`.
    pub fn eol(&self) -> u8 {
        if self.null_data {
            0
        } else {
            b'\n'
        }
    }

    /// Whether match spans are needed (`-o`, colour), not only whether a line matches.
    fn shows_spans(&self) -> bool {
        self.only_matching || self.color
    }
}

/// An input as the printer names it.
pub struct Named<'a> {
    pub name: &'a str,
    /// With `-T`, GNU grep right-aligns numbers to the digits of the file's size (of the
    /// largest offset for a pipe).
    pub number_width: usize,
}

impl<'a> Named<'a> {
    pub fn new(input: &'a crate::input::Input) -> Named<'a> {
        let size = input
            .path()
            .and_then(|p| std::fs::metadata(p).ok())
            .filter(|m| m.is_file())
            .map_or(i64::MAX as u64, |m| m.len());
        Named {
            name: &input.name,
            number_width: size.to_string().len(),
        }
    }
}

/// The compiled search: one matcher and searcher configuration shared by every worker.
pub struct Grep {
    pub opts: GrepOptions,
    /// The line selector, leftmost-first; with `-w`, the pattern without the word rule.
    matcher: RegexMatcher,
    /// `-w`: GNU's word rule over `matcher`.
    word: Option<pattern::WordMatcher>,
    /// Leftmost-longest spans, built only when `-o` or colour shows them.
    longest: Option<longest::Longest>,
    /// A builder, not a `Searcher`: searchers hold buffers and are not `Sync`.
    searcher: SearcherBuilder,
}

impl Grep {
    pub fn new(opts: GrepOptions) -> Result<Grep> {
        let translated = pattern::translate_all(&opts.patterns, &opts.pattern)?;
        let matcher = pattern::selector(&translated, opts.eol())?;
        let word = if opts.pattern.word && !opts.pattern.line {
            Some(pattern::WordMatcher::new(matcher.clone(), &translated)?)
        } else {
            None
        };
        let longest = if opts.shows_spans() {
            Some(pattern::spans(&translated)?)
        } else {
            None
        };
        let mut sb = SearcherBuilder::new();
        // Line numbers also tell where context groups break (printed only with `-n`).
        sb.line_number(opts.line_number || opts.context_given)
            .line_terminator(LineTerminator::byte(opts.eol()))
            .invert_match(opts.invert)
            // Input is bytes: a UTF-16 byte-order mark must not turn a log into UTF-16.
            .bom_sniffing(false)
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
            word,
            longest,
            searcher: sb,
        })
    }

    /// Searches one input (or byte range of one) and writes GNU-format output. Returns the
    /// number of selected lines.
    pub fn search<R: io::Read, W: Write>(
        &self,
        name: &Named<'_>,
        reader: R,
        out: &mut W,
    ) -> Result<u64> {
        self.run(name, out, |searcher, sink| match &self.word {
            Some(w) => searcher.search_reader(w, reader, sink),
            None => searcher.search_reader(&self.matcher, reader, sink),
        })
    }

    /// Like [`Grep::search`], over bytes in memory (a mapped file).
    pub fn search_slice<W: Write>(
        &self,
        name: &Named<'_>,
        data: &[u8],
        out: &mut W,
    ) -> Result<u64> {
        self.run(name, out, |searcher, sink| match &self.word {
            Some(w) => searcher.search_slice(w, data, sink),
            None => searcher.search_slice(&self.matcher, data, sink),
        })
    }

    fn run<W: Write>(
        &self,
        named: &Named<'_>,
        out: &mut W,
        search: impl FnOnce(&mut Searcher, &mut GnuSink<'_, W>) -> io::Result<()>,
    ) -> Result<u64> {
        let name = named.name;
        let mut searcher = self.searcher.build();
        let mut sink = GnuSink {
            grep: self,
            name: name.as_bytes(),
            number_width: if self.opts.initial_tab {
                named.number_width
            } else {
                0
            },
            out,
            selected: 0,
            last_line: None,
            caches: None,
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
        let o = &self.opts;
        if o.quiet {
            return Ok(selected);
        }
        if o.files_with_matches || o.files_without_match {
            if (selected > 0) == o.files_with_matches {
                sink.write_name_line()?;
            }
        } else if o.count {
            if o.with_filename {
                sink.write_name()?;
                sink.write_name_sep(b':')?;
            }
            writeln!(sink.out, "{selected}")?;
        }
        Ok(selected)
    }
}

/// `logq grep`: the arguments into [`GrepOptions`], then a search per task on the workers,
/// printed in input order.
pub fn run_grep(a: GrepArgs) -> Result<i32> {
    let mut rest = a.args.clone();
    let patterns = patterns_of(&a, &mut rest)?;
    let syntax = syntax_of(&a)?;
    let color = color_arg(a.color.as_deref())?;
    crate::input::set_no_messages(a.no_messages);
    if a.recursive && rest.is_empty() && a.input.categories.is_empty() {
        rest.push(".".to_string());
    }
    let mut src = Source::new(&a.input, &rest)?;
    for input in &mut src.inputs {
        if let (Some(l), crate::input::InputKind::Stdin) = (&a.label, &input.kind) {
            input.name = l.clone();
        }
        // `grep -r` with no operand names files as `dir/file`, not `./dir/file`.
        if rest == ["."] && a.recursive {
            if let Some(n) = input.name.strip_prefix("./") {
                input.name = n.to_string();
            }
        }
    }
    // Named operands count even if missing (GNU: `grep x gone.log a.log` prefixes a.log).
    let several = src.inputs.len() > 1 || rest.len() > 1 || a.recursive;
    let mut opts = GrepOptions::from_args(&a, patterns, several, color);
    opts.pattern.syntax = syntax;
    if a.input.tail.is_some() {
        bail!("--tail is not supported by grep (use logq where or print)");
    }
    if gnu_selects_nothing(&mut opts) {
        return Ok(1);
    }
    let grep = Grep::new(opts)?;
    let counts = search_all(&grep, &src)?;
    Ok(if counts.iter().any(|&c| c > 0) { 0 } else { 1 })
}

/// Every task of `src` searched on the workers, output in input order; the selected
/// line count of each task.
fn search_all(grep: &Grep, src: &Source) -> Result<Vec<u64>> {
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
            let name = &Named::new(&src.inputs[t.input]);
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
    counts
}

/// GNU grep's shortcuts, which print nothing at all (not even `-c`'s counts): no pattern
/// (`-f /dev/null`) is "every line matches `''`, inverted"; and when matching plainly cannot
/// select a line (`-m 0`, or `-v ''`), it exits 1 at once (except for `-L`).
fn gnu_selects_nothing(o: &mut GrepOptions) -> bool {
    if o.patterns.is_empty() {
        o.patterns.push(String::new());
        o.invert = !o.invert;
        o.pattern.line = false;
        o.pattern.word = false;
    }
    let all_empty = o.patterns.iter().all(String::is_empty) && o.patterns.len() == 1;
    let never =
        o.max_count == Some(0) || (all_empty && o.invert && !o.pattern.line && !o.pattern.word);
    never && !o.files_without_match
}

/// The patterns: `-e` and `-f` ones, else the first operand (removed from `rest`).
fn patterns_of(a: &GrepArgs, rest: &mut Vec<String>) -> Result<Vec<String>> {
    if a.regexp.is_empty() && a.pattern_files.is_empty() {
        if rest.is_empty() {
            bail!("grep: no pattern given (usage: logq grep [OPTIONS] PATTERN [FILE...])");
        }
        return Ok(vec![rest.remove(0)]);
    }
    let mut patterns = a.regexp.clone();
    for f in &a.pattern_files {
        let bytes = if f == "-" {
            let mut b = Vec::new();
            io::Read::read_to_end(&mut io::stdin(), &mut b).map(|_| b)
        } else {
            std::fs::read(f)
        }
        .with_context(|| format!("grep: {f}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("grep: {f}: patterns must be valid UTF-8"))?;
        if text.is_empty() {
            continue;
        }
        // One pattern per line; the last newline ends a line, it does not start one.
        let text = text.strip_suffix('\n').unwrap_or(&text);
        patterns.extend(text.split('\n').map(str::to_string));
    }
    Ok(patterns)
}

/// `-G`, `-E`, `-F`, `-P`: at most one kind, as in GNU grep ("conflicting matchers").
fn syntax_of(a: &GrepArgs) -> Result<posix::Syntax> {
    use posix::Syntax::*;
    let given: Vec<_> = [
        (a.basic, Basic),
        (a.extended, Extended),
        (a.fixed, Fixed),
        (a.perl, Rust),
    ]
    .into_iter()
    .filter(|g| g.0)
    .map(|g| g.1)
    .collect();
    match given.as_slice() {
        [] => Ok(Basic),
        [one] => Ok(*one),
        _ => bail!("grep: conflicting matchers specified"),
    }
}

impl GrepOptions {
    /// The flags as options; `several`: more than one input was named or found.
    fn from_args(a: &GrepArgs, patterns: Vec<String>, several: bool, color: bool) -> GrepOptions {
        GrepOptions {
            patterns,
            pattern: PatternOptions {
                syntax: posix::Syntax::Basic,
                ignore_case: a.ignore_case,
                word: a.word,
                line: a.line,
            },
            invert: a.invert,
            count: a.count,
            max_count: a.max_count,
            line_number: a.line_number,
            only_matching: a.only_matching,
            context_given: a.after.or(a.before).or(a.context).is_some(),
            after: a.after.or(a.context).unwrap_or(0),
            before: a.before.or(a.context).unwrap_or(0),
            files_with_matches: a.files_with_matches,
            files_without_match: a.files_without_match,
            quiet: a.quiet,
            with_filename: (several || a.with_filename) && !a.no_filename,
            color,
            byte_offset: a.byte_offset,
            initial_tab: a.initial_tab,
            null_after_name: a.null,
            null_data: a.null_data,
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
