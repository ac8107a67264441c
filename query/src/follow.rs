//! `--follow`: files and category archives read live, as one endless byte stream of lines.
//!
//! Files are followed by the project's follower (`scribe_follow::Follower`: rename,
//! copytruncate, delete and recreate, symlinks), categories by `scribe_archive`'s
//! `ArchiveTail` (every rotated file in write order, from the `.gz` if compression came
//! first). Both start at the end: only lines written from now on are read. Between polls the
//! reader waits for an inotify event in the watched directories (`scribe_follow::Waker`, a
//! hint only) or [`POLL`], whichever comes first. [`FollowReader`]
//! is an `io::Read` that blocks until lines arrive, so every command (grep's searcher, the
//! line splitter behind where/print/cut) reads it like any stream; what either follower
//! reports as lost (a file removed before it was read, an overlong line) is said on stderr.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use scribe_archive::tail::{ArchiveTail, StartAt, TailEvent, TailOptions};
use scribe_archive::Category;
use scribe_follow::{Event, FollowOptions, Follower, Waker};

/// The longest wait between two polls: the latency from a line's append to its output when
/// change notifications are not delivered (NFS); with them, a poll follows the append.
pub const POLL: Duration = Duration::from_millis(100);

/// What to follow.
#[derive(Debug, Clone, Default)]
pub struct FollowSpec {
    pub files: Vec<PathBuf>,
    /// Categories under `data_dir`.
    pub categories: Vec<Category>,
    pub data_dir: PathBuf,
}

/// The followed lines as one stream; each line ends with `\n`.
pub struct FollowReader {
    files: Option<Follower>,
    archives: Vec<(Category, ArchiveTail)>,
    /// Lines read and not yet handed out: at most one poll's worth (bounded by the
    /// followers' per-poll read limits).
    pending: Vec<u8>,
    at: usize,
    waker: Waker,
    /// The directories whose changes wake the reader.
    dirs: Vec<PathBuf>,
}

impl FollowReader {
    pub fn open(spec: &FollowSpec, max_line: usize) -> anyhow::Result<FollowReader> {
        let files = (!spec.files.is_empty()).then(|| {
            let mut f = Follower::new(FollowOptions {
                max_line_bytes: max_line.saturating_add(1),
                ..FollowOptions::default()
            });
            for p in &spec.files {
                f.watch(p.clone());
            }
            f
        });
        let mut archives = Vec::new();
        for cat in &spec.categories {
            let opts = TailOptions {
                max_line_bytes: max_line.saturating_add(1),
                ..TailOptions::default()
            };
            let tail = ArchiveTail::open(&spec.data_dir, cat, StartAt::End, opts)
                .map_err(|e| anyhow::anyhow!("following category {cat}: {e}"))?;
            archives.push((cat.clone(), tail));
        }
        let mut dirs: Vec<PathBuf> = spec
            .files
            .iter()
            .flat_map(|p| {
                let real = std::fs::canonicalize(p).ok();
                [Some(p.clone()), real]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.parent().map(|d| d.to_path_buf()))
            })
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            })
            .collect();
        dirs.extend(
            spec.categories
                .iter()
                .map(|c| scribe_archive::layout::category_dir(&spec.data_dir, c)),
        );
        let waker = Waker::notifying(POLL).unwrap_or_else(|_| Waker::polling(POLL));
        let mut r = FollowReader {
            files,
            archives,
            pending: Vec::new(),
            at: 0,
            waker,
            dirs,
        };
        // The follower starts at the end of the files present at its first poll: poll now,
        // so that lines written from here on are read (this poll delivers none).
        r.poll()?;
        Ok(r)
    }

    /// One round over every source; returns whether some source has more right away.
    fn poll(&mut self) -> io::Result<bool> {
        let mut more = false;
        let pending = &mut self.pending;
        if let Some(f) = &mut self.files {
            more |= f.poll(&mut |e| on_file_event(e, pending)).pending;
        }
        for (cat, tail) in &mut self.archives {
            let r = tail.poll(&mut |e| on_tail_event(cat, e, pending));
            match r {
                Ok(m) => more |= m,
                // Retried at the next poll; the tail stays consistent.
                Err(e) => eprintln!("logq: following category {cat}: {e}"),
            }
        }
        Ok(more)
    }
}

fn on_file_event(e: Event<'_>, out: &mut Vec<u8>) {
    match e {
        Event::Line { bytes, .. } => {
            out.extend_from_slice(bytes);
            if !bytes.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        Event::Vanished {
            path,
            offset,
            unread,
            ..
        } => warn(&format!(
            "{}: removed before it was read: {unread} bytes after byte {offset} lost",
            path.display()
        )),
        Event::Truncated {
            path, copy: None, ..
        } => warn(&format!(
            "{}: truncated; lines written just before are lost",
            path.display()
        )),
        Event::LineTooLong {
            path, offset, max, ..
        } => warn(&format!(
            "{}: line at byte {offset} longer than {max} bytes skipped",
            path.display()
        )),
        Event::Error { path, error } => warn(&format!("{}: {error}", path.display())),
        _ => {}
    }
}

fn on_tail_event(cat: &Category, e: TailEvent<'_>, out: &mut Vec<u8>) {
    match e {
        TailEvent::Line(l) => {
            out.extend_from_slice(l);
            out.push(b'\n');
        }
        TailEvent::Lost { files, next } => warn(&format!(
            "category {cat}: {files} file(s) removed before they were read, up to {}",
            next.display()
        )),
        TailEvent::Vanished { path, offset } => warn(&format!(
            "{}: removed while read: the rest after byte {offset} is lost",
            path.display()
        )),
        TailEvent::Unreadable {
            path,
            offset,
            error,
        } => warn(&format!(
            "{}: unreadable after byte {offset}: {error}",
            path.display()
        )),
        TailEvent::LineTooLong { path, offset, max } => warn(&format!(
            "{}: line at byte {offset} longer than {max} bytes skipped",
            path.display()
        )),
        _ => {}
    }
}

/// Losses are told, not fatal: a live view goes on.
fn warn(what: &str) {
    eprintln!("logq: warning: {what}");
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.pending.clear();
            self.at = 0;
            for d in &self.dirs {
                // Watched once; one that appears later is picked up here.
                self.waker.watch_dir(d);
            }
            let more = self.poll()?;
            if self.pending.is_empty() && !more {
                self.waker.wait();
            }
        }
    }
}
