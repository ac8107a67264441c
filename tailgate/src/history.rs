//! `/api/history/<cat>`: lines older than a category's ring, read back from its archive files
//! in the data dir (newest first, `.gz` ones too), a page at a time, so the page can show
//! what happened before it was opened.
//!
//! Positions count lines from the archive's end (0 is the newest complete line). The first
//! page of a view starts from the seq of its oldest line: the ring ends where the archive
//! ends (the data dir's tail reads to the end every poll), so that line is
//! `last_seq - before_seq` lines from the end. It is best effort: lines written since the
//! last poll shift that by as many (a repeat or a skip at the seam). Each request reads at
//! most `MAX_SCAN` bytes of files, on the blocking pool, at most [`PARALLEL`] at a time.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use regex::bytes::Regex;
use scribe_archive::layout::{list_archive, ArchiveFile};
use scribe_archive::Category;
use tokio::sync::Semaphore;

/// Most lines one page covers.
pub const MAX_LINES: usize = 1000;
/// Most bytes of lines one page returns.
const MAX_BYTES: usize = 1 << 20;
/// Most bytes of files (decompressed) one request reads; past it the page ends early.
const MAX_SCAN: u64 = 512 << 20;
/// Longest line returned whole; longer ones are cut to this.
const MAX_LINE: usize = 64 << 10;
/// History requests served at once (each reads files on the blocking pool).
pub const PARALLEL: usize = 2;

pub struct History {
    pub data_dir: PathBuf,
    pub slots: Arc<Semaphore>,
}

/// One page: `lines` oldest first, covering `scanned` lines (filtered ones included) from
/// `skip` back; `next_skip` continues further back; `more`: older lines may exist.
#[derive(Debug, serde::Serialize)]
pub struct Page {
    #[serde(skip)]
    pub lines: Vec<Bytes>,
    pub scanned: u64,
    pub next_skip: u64,
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    BadCategory(String),
    #[error("listing the archive of {category}: {source}")]
    List {
        category: String,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the page of `category` that starts `skip` lines from the archive's end and goes
/// back at most `limit` lines, keeping those `keep` accepts.
pub fn read(
    data_dir: &std::path::Path,
    category: &str,
    skip: u64,
    limit: usize,
    keep: &dyn Fn(&[u8]) -> bool,
) -> Result<Page, HistoryError> {
    let cat =
        Category::new(category.as_bytes()).map_err(|e| HistoryError::BadCategory(e.to_string()))?;
    let files = list_archive(data_dir, &cat).map_err(|source| HistoryError::List {
        category: category.to_string(),
        source,
    })?;
    let mut need = limit.clamp(1, MAX_LINES) as u64;
    let mut to_skip = skip;
    let (mut lines, mut bytes, mut scanned, mut read_bytes) = (Vec::new(), 0usize, 0u64, 0u64);
    let mut left = files.len();
    for f in files.iter().rev() {
        left -= 1;
        if need == 0 || bytes >= MAX_BYTES || read_bytes >= MAX_SCAN {
            left += 1;
            break;
        }
        let (count, size) = count_lines(f)?;
        read_bytes += size;
        if to_skip >= count {
            to_skip -= count;
            continue;
        }
        let take = need.min(count - to_skip);
        // Lines [from, to) of the file, counted from its start.
        let (from, to) = (count - to_skip - take, count - to_skip);
        let (mut got, size) = lines_between(f, from, to)?;
        read_bytes += size;
        got.retain(|l| keep(l));
        bytes += got.iter().map(Bytes::len).sum::<usize>();
        got.append(&mut lines);
        lines = got;
        scanned += take;
        need -= take;
        to_skip = 0;
    }
    Ok(Page {
        lines,
        scanned,
        next_skip: skip + scanned,
        more: left > 0 || need == 0,
    })
}

fn read_err(f: &ArchiveFile) -> impl Fn(std::io::Error) -> HistoryError + '_ {
    move |source| HistoryError::Read {
        path: f.path.clone(),
        source,
    }
}

/// Complete lines in `f` (a last line without its `\n` is still being written) and the bytes
/// read.
fn count_lines(f: &ArchiveFile) -> Result<(u64, u64), HistoryError> {
    let mut r = f.open().map_err(read_err(f))?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut n, mut size) = (0u64, 0u64);
    loop {
        let k = r.read(&mut buf).map_err(read_err(f))?;
        if k == 0 {
            return Ok((n, size));
        }
        size += k as u64;
        n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// Lines `from..to` of `f` (0-based, without their `\n`; each cut to `MAX_LINE`).
fn lines_between(f: &ArchiveFile, from: u64, to: u64) -> Result<(Vec<Bytes>, u64), HistoryError> {
    let mut r = f.open().map_err(read_err(f))?;
    let mut buf = vec![0u8; 64 << 10];
    let (mut idx, mut size) = (0u64, 0u64);
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    while idx < to {
        let k = r.read(&mut buf).map_err(read_err(f))?;
        if k == 0 {
            break;
        }
        size += k as u64;
        for part in buf[..k].split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match part.strip_suffix(b"\n") {
                Some(b) => (b, true),
                None => (part, false),
            };
            if idx >= from && idx < to && cur.len() < MAX_LINE {
                let room = MAX_LINE - cur.len();
                cur.extend_from_slice(&body[..body.len().min(room)]);
            }
            if ends {
                if idx >= from && idx < to {
                    out.push(Bytes::from(std::mem::take(&mut cur)));
                }
                cur.clear();
                idx += 1;
            }
        }
    }
    Ok((out, size))
}

/// Whether a line passes optional include and exclude regexes.
pub fn keeper(include: Option<Regex>, exclude: Option<Regex>) -> impl Fn(&[u8]) -> bool {
    move |l| {
        include.as_ref().is_none_or(|r| r.is_match(l))
            && !exclude.as_ref().is_some_and(|r| r.is_match(l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pages_back_through_plain_and_gz_files() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("app");
        std::fs::create_dir(&c).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"l1\nl2\nl3\n").unwrap();
        std::fs::write(c.join("app_00000.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(c.join("app_00001"), "l4\nl5\n").unwrap();
        std::fs::write(c.join("app_00002"), "l6\nl7\npartial").unwrap();
        let h = d.path();
        let all = |_: &[u8]| true;
        let text = |p: &Page| {
            p.lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
        };
        let p = read(h, "app", 1, 3, &all).unwrap();
        assert_eq!(text(&p), ["l4", "l5", "l6"]);
        assert_eq!((p.scanned, p.next_skip, p.more), (3, 4, true));
        let p = read(h, "app", p.next_skip, 10, &all).unwrap();
        assert_eq!(text(&p), ["l1", "l2", "l3"]);
        assert_eq!((p.scanned, p.next_skip, p.more), (3, 7, false));
        let only_odd = keeper(Some(Regex::new("[135]").unwrap()), None);
        let p = read(h, "app", 0, 10, &only_odd).unwrap();
        assert_eq!(text(&p), ["l1", "l3", "l5"]);
        assert!(read(h, "../x", 0, 1, &all).is_err());
        assert!(read(h, "none", 0, 1, &all).unwrap().lines.is_empty());
    }
}
