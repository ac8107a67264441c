//! Splitting a file's bytes into lines, with at most one partial line held.

use std::path::Path;

use super::TailEvent;

/// Splits a file's bytes into lines, holding at most one partial line.
#[derive(Default)]
pub(super) struct Lines {
    partial: Vec<u8>,
    /// Offset of the partial line's first byte.
    partial_start: u64,
    /// Inside an overlong line: drop bytes until its `\n`.
    skipping: bool,
    /// Lines still to drop before delivering (where reading was entered).
    pub(super) skip: u64,
}

impl Lines {
    pub(super) fn feed(
        &mut self,
        path: &Path,
        base: u64,
        chunk: &[u8],
        max: usize,
        on: &mut dyn FnMut(TailEvent<'_>),
    ) {
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', chunk) {
            let line = &chunk[start..i];
            let line_start = base + start as u64;
            start = i + 1;
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if self.partial.is_empty() {
                self.partial_start = line_start;
            }
            if self.skip > 0 {
                self.skip -= 1;
                self.partial.clear();
            } else if self.partial.len() + line.len() + 1 > max {
                self.partial = Vec::new();
                on(TailEvent::LineTooLong {
                    path,
                    offset: self.partial_start,
                    max,
                });
            } else if self.partial.is_empty() {
                on(TailEvent::Line(line));
            } else {
                self.partial.extend_from_slice(line);
                on(TailEvent::Line(&self.partial));
                self.partial.clear();
            }
        }
        let rest = &chunk[start..];
        if rest.is_empty() || self.skipping {
            return;
        }
        if self.partial.is_empty() {
            self.partial_start = base + start as u64;
        }
        if self.partial.len() + rest.len() + 1 > max {
            // It cannot fit even if its `\n` comes next: give the memory back now.
            self.partial = Vec::new();
            self.skipping = true;
            if self.skip > 0 {
                self.skip -= 1;
            } else {
                on(TailEvent::LineTooLong {
                    path,
                    offset: self.partial_start,
                    max,
                });
            }
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// The file is finished: a partial last line is delivered as it is.
    pub(super) fn flush(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) {
        if !self.partial.is_empty() && !self.skipping && self.skip == 0 {
            on(TailEvent::Line(&self.partial));
        }
        self.reset();
    }

    pub(super) fn reset(&mut self) {
        self.partial = Vec::new();
        self.skipping = false;
        self.skip = 0;
    }
}
