//! `--merge`: several inputs read as one stream interleaved by time, the way one reads an
//! incident across hosts. Each category (its rotated files in write order) and each other
//! file is one stream; the next line out is the head line with the earliest time (ties: the
//! stream named first). A line without a time of its own (a stack-trace continuation) keeps
//! the time of the line before it in its stream, so it stays with that line; lines before a
//! stream's first time come first. Each stream is assumed to be in time order, as logs are:
//! the merge never reorders lines within a stream.

use std::io::{self, BufRead, BufReader, Read};

use super::{Input, InputKind};
use crate::cli::FormatArg;
use crate::formats::Detector;
use crate::{lines, timefmt};

/// What a merged input reads.
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// Each stream's inputs, read one after the other.
    pub streams: Vec<Vec<Input>>,
    pub format: Option<FormatArg>,
}

/// Groups inputs into streams: the files of one category (one directory of an archive)
/// together, every other input alone.
pub fn streams(inputs: Vec<Input>) -> Vec<Vec<Input>> {
    let mut out: Vec<Vec<Input>> = Vec::new();
    for input in inputs {
        let dir = |i: &Input| match &i.kind {
            InputKind::Archive(a) => a.path.parent().map(|p| p.to_path_buf()),
            // One aggregator's objects of one category are one stream.
            InputKind::Object(o) => Some(std::path::PathBuf::from(format!("s3:{}", o.stream()))),
            _ => None,
        };
        match out.last_mut() {
            Some(last) if dir(&input).is_some() && dir(&last[0]) == dir(&input) => last.push(input),
            _ => out.push(vec![input]),
        }
    }
    out
}

/// The one input that reads `inputs` merged by time.
pub fn merged_input(inputs: Vec<Input>, format: Option<FormatArg>) -> Input {
    let streams = streams(inputs);
    Input {
        name: "(merged)".to_string(),
        kind: InputKind::Merge(MergeSpec { streams, format }),
    }
}

struct Stream {
    inputs: Vec<Input>,
    next_input: usize,
    reader: Option<BufReader<Box<dyn Read + Send>>>,
    /// The head line (without its terminator) and its time, when `ready`.
    line: Vec<u8>,
    time: i64,
    ready: bool,
    done: bool,
    pick: Detector,
}

impl Stream {
    /// Makes the head line ready (or the stream done).
    fn fill(&mut self, now: i64) -> io::Result<()> {
        while !self.ready && !self.done {
            let Some(r) = self.reader.as_mut() else {
                match self.inputs.get(self.next_input) {
                    Some(input) => {
                        let r = input
                            .open()
                            .map_err(|e| io::Error::other(format!("{e:#}")))?;
                        self.reader = Some(BufReader::with_capacity(super::READ_BUF, r));
                        self.next_input += 1;
                    }
                    None => self.done = true,
                }
                continue;
            };
            self.line.clear();
            let max = lines::max_line();
            let n = r
                .by_ref()
                .take(max as u64 + 2)
                .read_until(lines::terminator(), &mut self.line)?;
            if n == 0 {
                self.reader = None;
                continue;
            }
            if self.line.last() == Some(&lines::terminator()) {
                self.line.pop();
            }
            if self.line.len() > max {
                let name = &self.inputs[self.next_input - 1].name;
                return Err(io::Error::other(format!(
                    "{name}: a line is longer than --max-line {max}"
                )));
            }
            if let Some(t) = self.pick.record(&self.line, now).time() {
                self.time = t;
            }
            self.ready = true;
        }
        Ok(())
    }
}

/// Reads the streams' lines in time order.
pub struct MergeReader {
    streams: Vec<Stream>,
    out: Vec<u8>,
    pos: usize,
    now: i64,
}

impl MergeReader {
    pub fn new(spec: &MergeSpec) -> MergeReader {
        let streams = spec
            .streams
            .iter()
            .map(|inputs| Stream {
                inputs: inputs.clone(),
                next_input: 0,
                reader: None,
                line: Vec::new(),
                time: i64::MIN,
                ready: false,
                done: false,
                pick: Detector::new(spec.format),
            })
            .collect();
        MergeReader {
            streams,
            out: Vec::new(),
            pos: 0,
            now: timefmt::now(),
        }
    }

    /// The next line into `out`; false at the end of every stream.
    fn next_line(&mut self) -> io::Result<bool> {
        let mut best: Option<usize> = None;
        for i in 0..self.streams.len() {
            self.streams[i].fill(self.now)?;
            let s = &self.streams[i];
            if s.ready && best.is_none_or(|b| s.time < self.streams[b].time) {
                best = Some(i);
            }
        }
        let Some(b) = best else {
            return Ok(false);
        };
        let s = &mut self.streams[b];
        self.out.clear();
        self.out.extend_from_slice(&s.line);
        self.out.push(lines::terminator());
        self.pos = 0;
        s.ready = false;
        Ok(true)
    }
}

impl Read for MergeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.out.len() && !self.next_line()? {
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
