//! The printer: what GNU grep writes for each selected and context line (prefixes, `:`/`-`
//! separators, `--` between groups, colours, `-o` spans, `-b`, `-T`, `-Z`, `-z`).

use std::io::{self, Write};

use grep_searcher::{Searcher, Sink, SinkContext, SinkContextKind, SinkMatch};

use super::longest::Caches;
use super::Grep;

/// GNU grep's default `GREP_COLORS` (`ms=01;31:fn=35:ln=32:bn=32:se=36`).
const C_MATCH: &[u8] = b"\x1b[01;31m\x1b[K";
const C_FILE: &[u8] = b"\x1b[35m\x1b[K";
const C_LINE: &[u8] = b"\x1b[32m\x1b[K";
const C_SEP: &[u8] = b"\x1b[36m\x1b[K";
const C_END: &[u8] = b"\x1b[m\x1b[K";

pub(super) struct GnuSink<'a, W: Write> {
    pub grep: &'a Grep,
    pub name: &'a [u8],
    /// `-T`: the width numbers are right-aligned to.
    pub number_width: usize,
    pub out: &'a mut W,
    pub selected: u64,
    /// The last line output (or, with `-o`, that would have been), to print `--` before a
    /// group that does not follow it.
    pub last_line: Option<u64>,
    pub caches: Option<Caches>,
}

impl<W: Write> GnuSink<'_, W> {
    fn color(&self) -> bool {
        self.grep.opts.color
    }

    fn eol(&self) -> u8 {
        self.grep.opts.eol()
    }

    /// The number to print before a line (`-n`), from the searcher's count.
    fn shown(&self, n: Option<u64>) -> Option<u64> {
        n.filter(|_| self.grep.opts.line_number)
    }

    /// Notes that line `n` is output next, printing GNU's `--` first if it does not follow
    /// the previous one.
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

    pub fn write_name(&mut self) -> io::Result<()> {
        if self.color() {
            self.out.write_all(C_FILE)?;
            self.out.write_all(self.name)?;
            self.out.write_all(C_END)
        } else {
            self.out.write_all(self.name)
        }
    }

    /// `-l`/`-L`: the name and a newline (a NUL with `-Z`).
    pub fn write_name_line(&mut self) -> io::Result<()> {
        self.write_name()?;
        let end = if self.grep.opts.null_after_name {
            0
        } else {
            b'\n'
        };
        self.out.write_all(&[end])
    }

    /// The separator after the file name: `:`/`-`, or NUL with `-Z`.
    pub fn write_name_sep(&mut self, sep: u8) -> io::Result<()> {
        if self.grep.opts.null_after_name {
            self.out.write_all(&[0])
        } else {
            self.write_sep(sep)
        }
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

    fn write_number(&mut self, n: u64, sep: u8) -> io::Result<()> {
        let width = self.number_width;
        if self.color() {
            self.out.write_all(C_LINE)?;
            write!(self.out, "{n:>width$}")?;
            self.out.write_all(C_END)?;
        } else {
            write!(self.out, "{n:>width$}")?;
        }
        self.write_sep(sep)
    }

    /// The prefixes before a line or match; with `-T`, a tab after them unless nothing
    /// follows (`rest_empty`), as GNU grep does.
    fn write_prefix(&mut self, line: Option<u64>, offset: u64, sep: u8) -> io::Result<()> {
        self.write_prefix_for(line, offset, sep, false)
    }

    fn write_prefix_for(
        &mut self,
        line: Option<u64>,
        offset: u64,
        sep: u8,
        rest_empty: bool,
    ) -> io::Result<()> {
        let opts = &self.grep.opts;
        let (name, tab, bytes) = (opts.with_filename, opts.initial_tab, opts.byte_offset);
        if name {
            self.write_name()?;
            self.write_name_sep(sep)?;
        }
        if let Some(n) = line {
            self.write_number(n, sep)?;
        }
        if bytes {
            self.write_number(offset, sep)?;
        }
        if tab && !rest_empty && (name || line.is_some() || bytes) {
            self.out.write_all(b"\t")?;
        }
        Ok(())
    }

    fn end_line(&mut self) -> io::Result<()> {
        self.out.write_all(&[self.eol()])
    }

    /// A selected line: whole, or (`-o`) each non-empty match on its own line.
    fn selected_line(&mut self, line: &[u8], n: Option<u64>, offset: u64) -> io::Result<()> {
        let line = strip_terminator(line, self.eol());
        let opts = &self.grep.opts;
        if opts.only_matching {
            if opts.invert {
                return Ok(());
            }
            return self.write_spans(line, n, offset, b':');
        }
        self.write_prefix_for(n, offset, b':', line.is_empty())?;
        if self.color() && !opts.invert {
            self.write_with_matches(line)?;
        } else {
            self.out.write_all(line)?;
        }
        self.end_line()
    }

    /// `-o`: each match of `line` on its own line.
    fn write_spans(&mut self, line: &[u8], n: Option<u64>, offset: u64, sep: u8) -> io::Result<()> {
        for (s, e) in self.find_spans(line) {
            self.write_prefix(n, offset + s as u64, sep)?;
            self.write_colored(&line[s..e])?;
            self.end_line()?;
        }
        Ok(())
    }

    /// `line` with its matches coloured.
    fn write_with_matches(&mut self, line: &[u8]) -> io::Result<()> {
        let mut at = 0;
        for (s, e) in self.find_spans(line) {
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

    /// Non-empty leftmost-longest matches in `line`, left to right, not overlapping.
    fn find_spans(&mut self, line: &[u8]) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        if let Some(longest) = &self.grep.longest {
            let caches = self.caches.get_or_insert_with(|| longest.caches());
            let word = self.grep.word.is_some();
            longest.spans(&self.grep.matcher, caches, line, word, &mut spans);
        }
        spans
    }
}

impl<W: Write> Sink for GnuSink<'_, W> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let opts = &self.grep.opts;
        let stop_at_first = opts.files_with_matches || opts.files_without_match || opts.quiet;
        let quiet = opts.count || stop_at_first;
        let mut n = mat.line_number();
        let mut offset = mat.absolute_byte_offset();
        for line in mat.lines() {
            // Past `-m NUM`, the searcher still reports matching lines of the trailing
            // context; GNU grep prints them as context (`-`), not as selected lines.
            if self.grep.opts.max_count.is_some_and(|m| self.selected >= m) {
                if !quiet {
                    self.group(n)?;
                    if !self.grep.opts.only_matching {
                        let l = strip_terminator(line, self.eol());
                        self.write_prefix_for(self.shown(n), offset, b'-', l.is_empty())?;
                        self.out.write_all(l)?;
                        self.end_line()?;
                    }
                }
            } else {
                self.selected += 1;
                if !quiet {
                    self.group(n)?;
                    self.selected_line(line, self.shown(n), offset)?;
                }
            }
            n = n.map(|n| n + 1);
            offset += line.len() as u64;
        }
        // `-l`, `-L` and `-q` need only the first selected line.
        Ok(!stop_at_first)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, io::Error> {
        let opts = &self.grep.opts;
        if opts.count || opts.files_with_matches || opts.files_without_match || opts.quiet {
            return Ok(true);
        }
        if matches!(ctx.kind(), SinkContextKind::Other) {
            return Ok(true);
        }
        self.group(ctx.line_number())?;
        let line = strip_terminator(ctx.bytes(), self.eol());
        let (n, offset) = (self.shown(ctx.line_number()), ctx.absolute_byte_offset());
        if self.grep.opts.only_matching {
            // GNU grep -o prints no context lines (they still join groups), except that with
            // -v, where the context lines are the matching ones, it prints their matches.
            if self.grep.opts.invert {
                self.write_spans(line, n, offset, b'-')?;
            }
            return Ok(true);
        }
        self.write_prefix_for(n, offset, b'-', line.is_empty())?;
        if self.color() && self.grep.opts.invert {
            // With -v the context lines are the matching ones: GNU colours their matches.
            self.write_with_matches(line)?;
        } else {
            self.out.write_all(line)?;
        }
        self.end_line()?;
        Ok(true)
    }
}

fn strip_terminator(line: &[u8], eol: u8) -> &[u8] {
    line.strip_suffix(&[eol]).unwrap_or(line)
}
