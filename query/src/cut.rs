//! `logq cut`: GNU cut's `-b/-c/-f` selection with the same list syntax and output, plus
//! awk-style whitespace fields (`-w`: runs of blanks separate, leading and trailing blanks
//! ignored, like `awk '{print $2, $8}'`).
//!
//! Semantics follow GNU coreutils: positions are sorted and overlapping ranges merged (output
//! is in input order, each byte once); with `--output-delimiter`, byte mode writes the
//! delimiter between ranges that are not contiguous in the merged list; `-c` is `-b` (GNU cut
//! has no multibyte mode); every output line ends with `\n`; in field mode a line without the
//! delimiter is printed whole unless `-s`.

use std::io::{self, Write};
use std::ops::ControlFlow;

use anyhow::{bail, Context, Result};
use thiserror::Error;

use crate::cli::CutArgs;
use crate::lines::blank_split;
use crate::par;
use crate::plan::plan;
use crate::source::{stdout, Source};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ListError {
    #[error("fields and positions are numbered from 1")]
    Zero,
    #[error("invalid decreasing range")]
    Decreasing,
    #[error("invalid range with no endpoint: -")]
    NoEndpoint,
    #[error("invalid field value {0:?}")]
    Invalid(String),
    #[error("missing list of fields or positions")]
    Empty,
    #[error("position {0} is too large")]
    TooLarge(String),
}

/// Selected 1-based positions as sorted, non-overlapping inclusive ranges (`hi == u64::MAX`
/// for an open end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    ranges: Vec<(u64, u64)>,
}

impl List {
    /// Parses GNU cut's list syntax: `N`, `N-M`, `N-`, `-M`, separated by commas or blanks.
    pub fn parse(s: &str) -> Result<List, ListError> {
        let mut ranges = Vec::new();
        for part in s.split([',', ' ', '\t']) {
            // GNU cut: `1,,3` and a leading or trailing comma are errors, not gaps.
            if part.is_empty() {
                return Err(ListError::Zero);
            }
            let num = |t: &str| -> Result<u64, ListError> {
                if !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ListError::Invalid(part.to_string()));
                }
                // GNU cut refuses what does not fit below its "open end" marker, rather
                // than silently selecting nothing.
                let n = match t.parse::<u64>() {
                    Ok(n) if n < u64::MAX => n,
                    _ => return Err(ListError::TooLarge(t.to_string())),
                };
                if n == 0 {
                    return Err(ListError::Zero);
                }
                Ok(n)
            };
            let (lo, hi) = match part.split_once('-') {
                None => {
                    let n = num(part)?;
                    (n, n)
                }
                Some(("", "")) => return Err(ListError::NoEndpoint),
                Some(("", hi)) => (1, num(hi)?),
                Some((lo, "")) => (num(lo)?, u64::MAX),
                Some((lo, hi)) => {
                    let (lo, hi) = (num(lo)?, num(hi)?);
                    if lo > hi {
                        return Err(ListError::Decreasing);
                    }
                    (lo, hi)
                }
            };
            ranges.push((lo, hi));
        }
        if ranges.is_empty() {
            return Err(ListError::Empty);
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                // Only overlapping ranges merge; adjacent ones stay apart, which matters for
                // where --output-delimiter goes (GNU: `-b1-2,3-4` → `ab:cd`).
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(List { ranges: merged })
    }

    /// The positions not selected.
    pub fn complement(&self) -> List {
        let mut out = Vec::new();
        let mut next = 1u64;
        for &(lo, hi) in &self.ranges {
            if lo > next {
                out.push((next, lo - 1));
            }
            if hi == u64::MAX {
                return List { ranges: out };
            }
            next = hi + 1;
        }
        out.push((next, u64::MAX));
        List { ranges: out }
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Largest selected position (`u64::MAX` when open-ended).
    pub fn max(&self) -> u64 {
        self.ranges.last().map(|r| r.1).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// `-b` / `-c`.
    Bytes,
    /// `-f` with a one-byte delimiter (`-d`, default TAB).
    Fields(u8),
    /// `-w`: awk-style whitespace fields.
    Blank,
}

#[derive(Debug, Clone)]
pub struct Cut {
    pub mode: Mode,
    /// Already complemented if `--complement` was given.
    pub list: List,
    pub only_delimited: bool,
    pub output_delimiter: Option<Vec<u8>>,
    /// The line terminator written: `\n`, or NUL with `-z`.
    pub eol: u8,
}

impl Cut {
    /// Writes the cut of one line (without its `\n`) and a newline; or nothing, for a line
    /// `-s` suppresses.
    pub fn line<W: Write>(&self, line: &[u8], out: &mut W) -> io::Result<()> {
        match self.mode {
            Mode::Bytes => self.bytes(line, out),
            Mode::Fields(d) => self.fields(line, d, out),
            Mode::Blank => self.blank_fields(line, out),
        }
    }

    fn bytes<W: Write>(&self, line: &[u8], out: &mut W) -> io::Result<()> {
        let len = line.len() as u64;
        let mut first = true;
        for &(lo, hi) in self.list.ranges() {
            if lo > len {
                break;
            }
            if !first {
                if let Some(d) = &self.output_delimiter {
                    out.write_all(d)?;
                }
            }
            first = false;
            let hi = hi.min(len);
            out.write_all(&line[(lo - 1) as usize..hi as usize])?;
        }
        out.write_all(&[self.eol])
    }

    fn fields<W: Write>(&self, line: &[u8], delim: u8, out: &mut W) -> io::Result<()> {
        if memchr::memchr(delim, line).is_none() {
            if self.only_delimited {
                return Ok(());
            }
            out.write_all(line)?;
            return out.write_all(&[self.eol]);
        }
        let max = self.list.max();
        let mut ranges = self.list.ranges().iter().peekable();
        let mut first = true;
        let mut start = 0usize;
        let mut n = 1u64;
        let out_delim: &[u8] = match &self.output_delimiter {
            Some(d) => d,
            None => std::slice::from_ref(&delim),
        };
        let mut ends = memchr::memchr_iter(delim, line);
        loop {
            let end = ends.next();
            let field = &line[start..end.unwrap_or(line.len())];
            while ranges.peek().is_some_and(|r| r.1 < n) {
                ranges.next();
            }
            if ranges.peek().is_some_and(|r| r.0 <= n) {
                if !first {
                    out.write_all(out_delim)?;
                }
                first = false;
                out.write_all(field)?;
            }
            match end {
                Some(e) if n < max => {
                    start = e + 1;
                    n += 1;
                }
                _ => break,
            }
        }
        out.write_all(&[self.eol])
    }

    fn blank_fields<W: Write>(&self, line: &[u8], out: &mut W) -> io::Result<()> {
        let out_delim: &[u8] = self.output_delimiter.as_deref().unwrap_or(b" ");
        let mut first = true;
        for (i, field) in blank_split(line).enumerate() {
            let n = i as u64 + 1;
            if n > self.list.max() {
                break;
            }
            if self.list.ranges().iter().any(|r| r.0 <= n && n <= r.1) {
                if !first {
                    out.write_all(out_delim)?;
                }
                first = false;
                out.write_all(field)?;
            }
        }
        out.write_all(&[self.eol])
    }
}

/// `logq cut`: the arguments into a [`Cut`], then each task's lines cut on the workers,
/// printed in input order.
pub fn run_cut(a: CutArgs) -> Result<i32> {
    let cut = Cut::from_args(&a)?;
    if a.zero_terminated {
        crate::lines::set_terminator(0);
    }
    let src = Source::new(&a.input, &a.files)?;
    let mut out = stdout();
    if let Some(n) = a.input.tail {
        let lines = src.tail_lines(n)?;
        for l in &lines {
            cut.line(l, &mut out)?;
        }
        out.flush()?;
        return Ok(0);
    }
    // Pieces are cut at newlines: with NUL-terminated lines, files are read whole.
    let tasks = plan(&src.inputs, !a.zero_terminated)?;
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

impl Cut {
    /// The selection `logq cut`'s flags ask for, refused with GNU cut's messages when they
    /// contradict each other.
    fn from_args(a: &CutArgs) -> Result<Cut> {
        let lists = a.bytes.len() + a.chars.len() + a.fields.len();
        if lists > 1 {
            bail!("only one list may be specified");
        }
        if lists != 1 {
            bail!("you must specify a list of bytes, characters, or fields (-b, -c or -f; -w -f for whitespace fields)");
        }
        let spec = a
            .bytes
            .first()
            .or(a.chars.first())
            .or(a.fields.first())
            .expect("one list");
        let mut list = List::parse(spec).context("bad list")?;
        if a.complement {
            list = list.complement();
        }
        Ok(Cut {
            mode: Mode::from_args(a)?,
            list,
            only_delimited: a.only_delimited,
            eol: if a.zero_terminated { 0 } else { b'\n' },
            // GNU cut: an empty output delimiter is NUL, as for -d.
            output_delimiter: a.output_delimiter.as_ref().map(|d| {
                if d.is_empty() {
                    vec![0]
                } else {
                    d.clone().into_bytes()
                }
            }),
        })
    }
}

impl Mode {
    fn from_args(a: &CutArgs) -> Result<Mode> {
        if a.fields.is_empty() {
            if a.delimiter.is_some() || a.whitespace {
                bail!("an input delimiter may be specified only when operating on fields");
            }
            if a.only_delimited {
                bail!("suppressing non-delimited lines makes sense only when operating on fields");
            }
            return Ok(Mode::Bytes);
        }
        if a.whitespace {
            if a.delimiter.is_some() {
                bail!("-w and -d are exclusive");
            }
            return Ok(Mode::Blank);
        }
        let d = match a.delimiter.as_deref() {
            None => b'\t',
            // GNU cut: an empty delimiter is NUL.
            Some("") => 0,
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(_) => bail!("the delimiter must be a single byte"),
        };
        Ok(Mode::Fields(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_positions_are_refused() {
        assert_eq!(
            List::parse("99999999999999999999"),
            Err(ListError::TooLarge("99999999999999999999".into()))
        );
        assert!(List::parse("1-18446744073709551615").is_err());
        assert!(List::parse("18446744073709551614").is_ok());
    }

    #[test]
    fn list_syntax() {
        assert_eq!(List::parse("3,1-2").unwrap().ranges(), &[(1, 2), (3, 3)]);
        assert_eq!(List::parse("1-3,2-5").unwrap().ranges(), &[(1, 5)]);
        assert_eq!(
            List::parse("-2 4-").unwrap().ranges(),
            &[(1, 2), (4, u64::MAX)]
        );
        assert_eq!(List::parse("0"), Err(ListError::Zero));
        assert_eq!(List::parse("3-1"), Err(ListError::Decreasing));
        assert_eq!(List::parse("-"), Err(ListError::NoEndpoint));
        assert!(List::parse("a").is_err());
        assert_eq!(
            List::parse("2-3").unwrap().complement().ranges(),
            &[(1, 1), (4, u64::MAX)]
        );
        assert_eq!(List::parse("1-").unwrap().complement().ranges(), &[]);
    }
}
