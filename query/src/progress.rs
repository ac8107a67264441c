//! The progress bar: bytes on disk read so far, on stderr, only when stderr is a terminal
//! (never in pipes, logs or tests).

use std::io::{self, IsTerminal, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::input::Input;

/// Below this much input a scan is too short for a bar to help.
const MIN_BYTES: u64 = 64 * 1024 * 1024;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(inputs: &[Input], disabled: bool) -> Progress {
        if disabled || !io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let total: u64 = inputs.iter().map(Input::disk_len).sum();
        if total < MIN_BYTES {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        Progress { bar: Some(bar) }
    }

    /// Counts a task's reads. Compressed inputs advance by their size on disk when done
    /// (their decompressed size is unknown up front).
    pub fn wrap<'a>(
        &self,
        r: Box<dyn Read + Send + 'a>,
        input: &Input,
    ) -> Box<dyn Read + Send + 'a> {
        let Some(bar) = &self.bar else { return r };
        let at_end = if input.is_gzip().unwrap_or(false) {
            Some(input.disk_len())
        } else {
            None
        };
        Box::new(Counted {
            inner: r,
            bar: bar.clone(),
            at_end,
        })
    }

    /// Counts bytes processed without a reader (mapped files).
    pub fn add(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

struct Counted<R> {
    inner: R,
    bar: ProgressBar,
    at_end: Option<u64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.at_end {
            None => self.bar.inc(n as u64),
            Some(size) if n == 0 => {
                self.bar.inc(size);
                self.at_end = Some(0);
            }
            Some(_) => {}
        }
        Ok(n)
    }
}
