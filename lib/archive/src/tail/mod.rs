//! Following one category's archive in write order: [`ArchiveTail`].
//!
//! `<cat>_current` names only the newest file, so a reader that follows the link alone misses
//! every file written and rotated between two of its looks (with a small `max_size` and a busy
//! category, many per second). An `ArchiveTail` follows the files themselves, in [`FileKey`]
//! order: it reads the file it is on to its end; once a newer file exists it finishes that one
//! (the writer fsyncs a file before it creates the next, so what is there then is all there
//! will be) and goes on with the next file in order, from its `.gz` if compression got there
//! first. Nothing is skipped without an event saying so: a file removed before it was opened
//! is [`TailEvent::Lost`], the unread rest of a file removed while it was being read is
//! [`TailEvent::Vanished`], a corrupt `.gz` is [`TailEvent::Unreadable`], an overlong line is
//! [`TailEvent::LineTooLong`].
//!
//! Cheap when idle: a poll reopens the newest file, reads from where it was, and `readlink`s
//! `<cat>_current`; the directory is listed only when the link names another file (or, with no
//! link, every [`relist_every`](TailOptions::relist_every)). The newest file's descriptor is
//! closed between polls once it is read to its end, so an idle category holds none; a file
//! still being drained keeps its descriptor, and with it its bytes whatever happens to its name.
//!
//! Bounded: one open file per tail, reads of 64 KiB, at most
//! [`max_read_bytes`](TailOptions::max_read_bytes) per poll, at most one partial line of
//! [`max_line_bytes`](TailOptions::max_line_bytes) held. Sync and threadless: the caller
//! polls. tailgate's data-dir source is built on it; logq's future `--follow` can use it the
//! same way (start with [`StartAt::End`], poll, print [`TailEvent::Line`]s).

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::category::Category;
use crate::layout::{self, ArchiveFile, FileKey};

mod lines;
mod reach;

use lines::Lines;
use reach::{measure, Entry, Measure};

/// Bytes read at a time.
pub(crate) const CHUNK: usize = 64 << 10;

/// How an [`ArchiveTail`] reads.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// The longest line delivered, counting its `\n`; a longer one is reported as
    /// [`TailEvent::LineTooLong`] and skipped, never held whole.
    pub max_line_bytes: usize,
    /// At most this many bytes are read in one poll, so one busy category cannot starve the
    /// others; [`ArchiveTail::poll`] says when there is more.
    pub max_read_bytes: u64,
    /// Without a readable `<cat>_current` (a writer that keeps none), the directory is listed
    /// this often to find newer files.
    pub relist_every: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            // As the follower's: a line must fit in one 16 MiB Scribe frame with its envelope.
            max_line_bytes: (16 << 20) - (64 << 10),
            max_read_bytes: 1 << 20,
            relist_every: Duration::from_secs(1),
        }
    }
}

/// Where an [`ArchiveTail`] begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// After the last complete line of the newest file as of [`ArchiveTail::open`]: only lines
    /// written later are read. An empty archive is read from its first file's beginning.
    End,
    /// About the newest `lines` lines and `bytes` bytes (whichever is less), from the start of
    /// the line where they begin; older files are not read. Line counts of `.gz` files are
    /// exact, and their byte count only decides whether to read them at all.
    Recent { lines: u64, bytes: u64 },
}

/// What a poll found, in file order.
#[derive(Debug)]
pub enum TailEvent<'a> {
    /// A line, without its `\n` (the last line of a finished file may have had none).
    Line(&'a [u8]),
    /// Reading moved to this file.
    Opened { path: &'a Path, compressed: bool },
    /// `files` whole files (at least; what could be counted) before `next` were gone before
    /// they could be opened: their lines are lost. `next` is read from its beginning.
    Lost { files: u64, next: &'a Path },
    /// The file being read was removed (or replaced) while closed between polls, and no `.gz`
    /// of it exists: whatever followed `offset` in it is lost.
    Vanished { path: &'a Path, offset: u64 },
    /// The rest of this file after `offset` could not be read (a corrupt `.gz`).
    Unreadable {
        path: &'a Path,
        offset: u64,
        error: io::Error,
    },
    /// A line at `offset` is longer than `max` bytes: skipped.
    LineTooLong {
        path: &'a Path,
        offset: u64,
        max: usize,
    },
    /// The file shrank below what was read (a writer cutting back a failed write, or a new
    /// file under the same name when `to` is 0): reading goes on at `to`.
    Truncated { path: &'a Path, from: u64, to: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TailError + 'a {
    move |source| TailError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Follows one category's files in write order; see the [module docs](self).
pub struct ArchiveTail {
    data_dir: PathBuf,
    category: Category,
    link: PathBuf,
    opts: TailOptions,
    cur: Option<Current>,
    /// The last file finished: the next file read is the first after it.
    done: Option<FileKey>,
    /// Files after the current one, as last listed.
    ahead: VecDeque<ArchiveFile>,
    /// Keys listed once and gone before they were opened, since the last file was opened.
    missed: Vec<FileKey>,
    last_list: Option<Instant>,
    buf: Vec<u8>,
}

/// The file being read.
struct Current {
    key: FileKey,
    /// Its path; for a plain file, its name is what `<cat>_current` names while it is newest.
    path: PathBuf,
    compressed: bool,
    /// `None` between polls while idle at the end of the newest file.
    reader: Option<Reader>,
    /// (device, inode) of the plain file, to know it again when reopened.
    ident: (u64, u64),
    /// Bytes consumed (of the decompressed stream for `.gz`).
    offset: u64,
    /// A newer file exists: at its end this one is finished.
    closed: bool,
    lines: Lines,
}

enum Reader {
    Plain(File),
    Gz(Box<dyn Read + Send>),
    /// A `.gz` that failed: nothing more to read.
    Broken,
}

/// Whether a read stopped at the end of the file or at the poll's byte budget.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Eof,
    Budget,
}

impl ArchiveTail {
    /// Starts following `category` under `data_dir` at `start`. Lists the directory once (a
    /// missing one is an empty archive).
    pub fn open(
        data_dir: &Path,
        category: &Category,
        start: StartAt,
        opts: TailOptions,
    ) -> Result<ArchiveTail, TailError> {
        let dir = layout::category_dir(data_dir, category);
        let mut t = ArchiveTail {
            data_dir: data_dir.to_path_buf(),
            category: category.clone(),
            link: dir.join(layout::current_link_name(category)),
            opts,
            cur: None,
            done: None,
            ahead: VecDeque::new(),
            missed: Vec::new(),
            last_list: None,
            buf: vec![0; CHUNK],
        };
        let files = t.list()?;
        match start {
            StartAt::End => t.start_at_end(files)?,
            StartAt::Recent { lines, bytes } => {
                t.start_recent(files, lines.max(1), bytes.max(1))?
            }
        }
        Ok(t)
    }

    /// Reads what is new, up to [`TailOptions::max_read_bytes`], passing each event to `on`.
    /// Returns whether more is there to read right away. After an error the tail is still
    /// consistent (events already passed stand) and the next poll retries.
    pub fn poll(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) -> Result<bool, TailError> {
        let mut budget = self.opts.max_read_bytes;
        loop {
            if self.cur.is_none() && !self.advance(on)? {
                return Ok(false);
            }
            if !self.ensure_open(on)? {
                continue; // it vanished and was finished
            }
            if self.read(&mut budget, on)? == Stop::Budget {
                return Ok(true);
            }
            if !self.newer_exists()? {
                self.park();
                return Ok(false);
            }
            // What the writer wrote before it moved on.
            if self.read(&mut budget, on)? == Stop::Budget {
                return Ok(true);
            }
            self.finish(on);
        }
    }

    /// The file being read, if any.
    pub fn current(&self) -> Option<&Path> {
        self.cur.as_ref().map(|c| c.path.as_path())
    }

    fn list(&mut self) -> Result<Vec<ArchiveFile>, TailError> {
        let files = layout::list_archive(&self.data_dir, &self.category)
            .map_err(io_err("list", self.link.parent().unwrap_or(&self.data_dir)))?;
        self.last_list = Some(Instant::now());
        Ok(files)
    }

    fn start_at_end(&mut self, files: Vec<ArchiveFile>) -> Result<(), TailError> {
        let Some(newest) = files.last() else {
            return Ok(());
        };
        if newest.compressed {
            self.done = Some(newest.key());
            return Ok(());
        }
        match open_plain(newest) {
            Ok(mut cur) => {
                // From the last byte, skipping one line: that is the `\n` ending the last
                // complete line, or the rest of a line being written, whose start is not ours.
                let len = file_len(&cur)?;
                cur.enter(Entry::Offset(len.saturating_sub(1)))
                    .map_err(io_err("seek", &newest.path))?;
                cur.lines.skip = u64::from(len > 0);
                self.cur = Some(cur);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.done = Some(newest.key()),
            Err(e) => return Err(io_err("open", &newest.path)(e)),
        }
        Ok(())
    }

    /// From the newest file back, the first whose lines reach `lines`/`bytes`.
    fn start_recent(
        &mut self,
        files: Vec<ArchiveFile>,
        mut lines: u64,
        mut bytes: u64,
    ) -> Result<(), TailError> {
        let mut chosen = None;
        for (i, f) in files.iter().enumerate().rev() {
            match measure(f, lines, bytes) {
                Ok(Measure::Within(entry)) => {
                    chosen = Some((i, entry));
                    break;
                }
                Ok(Measure::Whole { lines: l, bytes: b }) => {
                    chosen = Some((i, Entry::Offset(0)));
                    lines = lines.saturating_sub(l);
                    bytes = bytes.saturating_sub(b);
                    if lines == 0 || bytes == 0 {
                        break;
                    }
                }
                // Going away (retention) or corrupt: older files are not worth reading.
                Err(e) if gone_or_corrupt(&e) => break,
                Err(e) => return Err(io_err("read", &f.path)(e)),
            }
        }
        let Some((i, entry)) = chosen else {
            // Nothing readable: the next file to appear is read from its beginning.
            self.done = files.last().map(ArchiveFile::key);
            return Ok(());
        };
        let mut files = files;
        self.ahead = files.split_off(i + 1).into();
        let f = &files[i];
        match open_file(f) {
            Ok(mut cur) => {
                cur.enter(entry).map_err(io_err("seek", &f.path))?;
                self.cur = Some(cur);
            }
            Err(e) if gone_or_corrupt(&e) => self.done = Some(f.key()),
            Err(e) => return Err(io_err("open", &f.path)(e)),
        }
        Ok(())
    }

    /// Lists again: the files after the current (or last finished) one become `ahead`, and
    /// keys that were ahead and are gone are remembered as missed.
    fn relist(&mut self) -> Result<(), TailError> {
        let files = self.list()?;
        let pos = self.cur.as_ref().map(|c| c.key).or(self.done);
        let newer: VecDeque<ArchiveFile> = match pos {
            None => files.iter().cloned().collect(),
            Some(p) => files.iter().filter(|f| f.key() > p).cloned().collect(),
        };
        let listed: HashSet<FileKey> = newer.iter().map(ArchiveFile::key).collect();
        let gone = self.ahead.iter().map(ArchiveFile::key);
        self.missed.extend(gone.filter(|k| !listed.contains(k)));
        self.ahead = newer;
        if let (Some(p), true) = (pos, self.ahead.is_empty()) {
            // Every file is older than ours (which is gone too).
            if files.last().is_some_and(|f| f.key() < p) {
                // Removed and begun again with lower numbers: follow the new files.
                tracing::warn!(category = %self.category, "archive started over; reading its files from the oldest");
                self.ahead = files.into();
            }
        }
        Ok(())
    }

    /// Opens the next file. Returns false when there is none yet.
    fn advance(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) -> Result<bool, TailError> {
        let mut relisted = false;
        let mut retried = None;
        loop {
            let Some(f) = self.ahead.pop_front() else {
                if relisted {
                    return Ok(false);
                }
                self.relist()?;
                relisted = true;
                continue;
            };
            let e = match open_file(&f) {
                Ok(cur) => {
                    self.enter_file(cur, &f, on);
                    return Ok(true);
                }
                Err(e) => e,
            };
            match e.kind() {
                // Compressed since it was listed (look again, for its `.gz`), or removed.
                // Twice not found (a dangling link under a file's name): lost.
                io::ErrorKind::NotFound if retried != Some(f.key()) => {
                    retried = Some(f.key());
                    self.ahead.push_front(f);
                    self.relist()?;
                    relisted = true;
                }
                io::ErrorKind::NotFound => self.missed.push(f.key()),
                // Not ours to read, and it will not change by itself: said, then passed.
                // (NotFound took the arms above.)
                _ if e.kind() == io::ErrorKind::PermissionDenied || gone_or_corrupt(&e) => {
                    self.report_lost(&f, on);
                    on(TailEvent::Unreadable {
                        path: &f.path,
                        offset: 0,
                        error: e,
                    });
                    self.done = Some(f.key());
                }
                _ => {
                    let err = io_err("open", &f.path)(e);
                    self.ahead.push_front(f);
                    return Err(err);
                }
            }
        }
    }

    /// Makes a just-opened file current, first reporting the files missed before it.
    fn enter_file(&mut self, mut cur: Current, f: &ArchiveFile, on: &mut dyn FnMut(TailEvent<'_>)) {
        self.report_lost(f, on);
        on(TailEvent::Opened {
            path: &f.path,
            compressed: f.compressed,
        });
        cur.closed = f.compressed || !self.ahead.is_empty() || !f.newest;
        self.cur = Some(cur);
    }

    /// Reports the files known to be gone between the last one finished and `next`.
    fn report_lost(&mut self, next: &ArchiveFile, on: &mut dyn FnMut(TailEvent<'_>)) {
        let lost = lost_between(self.done, next.key(), &self.missed);
        self.missed.clear();
        if lost > 0 {
            on(TailEvent::Lost {
                files: lost,
                next: &next.path,
            });
        }
    }

    /// Reopens the current file if it was parked. Returns false if it vanished meanwhile
    /// (it was then finished).
    fn ensure_open(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) -> Result<bool, TailError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        if cur.reader.is_some() {
            return Ok(true);
        }
        match File::open(&cur.path) {
            Ok(mut f) => {
                let meta = f.metadata().map_err(io_err("stat", &cur.path))?;
                if (meta.dev(), meta.ino()) != cur.ident {
                    on(TailEvent::Truncated {
                        path: &cur.path,
                        from: cur.offset,
                        to: 0,
                    });
                    cur.ident = (meta.dev(), meta.ino());
                    cur.offset = 0;
                    cur.lines.reset();
                }
                f.seek(SeekFrom::Start(cur.offset))
                    .map_err(io_err("seek", &cur.path))?;
                cur.reader = Some(Reader::Plain(f));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.reopen_gz(on),
            Err(e) => Err(io_err("open", &cur.path)(e)),
        }
    }

    /// The parked file is gone by its plain name: compressed (continue in its `.gz` at the
    /// same offset) or removed (the rest is lost).
    fn reopen_gz(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) -> Result<bool, TailError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(false);
        };
        let gz = ArchiveFile {
            path: layout::gz_path(&cur.path),
            date: cur.key.date,
            suffix: cur.key.suffix,
            compressed: true,
            newest: false,
        };
        let skipped = gz.open().and_then(|mut r| {
            let n = io::copy(&mut r.by_ref().take(cur.offset), &mut io::sink())?;
            Ok((r, n))
        });
        match skipped {
            Ok((r, n)) if n == cur.offset => {
                cur.path = gz.path;
                cur.compressed = true;
                cur.closed = true;
                cur.reader = Some(Reader::Gz(r));
                Ok(true)
            }
            Ok(_) => Err(io_err("read", &gz.path)(
                io::ErrorKind::UnexpectedEof.into(),
            )),
            Err(e) if gone_or_corrupt(&e) => {
                on(TailEvent::Vanished {
                    path: &cur.path,
                    offset: cur.offset,
                });
                self.finish(on);
                Ok(false)
            }
            Err(e) => Err(io_err("read", &gz.path)(e)),
        }
    }

    /// Reads the current file until its end or the budget.
    fn read(
        &mut self,
        budget: &mut u64,
        on: &mut dyn FnMut(TailEvent<'_>),
    ) -> Result<Stop, TailError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(Stop::Eof);
        };
        loop {
            if *budget == 0 {
                return Ok(Stop::Budget);
            }
            let want = self
                .buf
                .len()
                .min(usize::try_from(*budget).unwrap_or(usize::MAX));
            let got = match &mut cur.reader {
                Some(Reader::Plain(f)) => f.read(&mut self.buf[..want]),
                Some(Reader::Gz(r)) => r.read(&mut self.buf[..want]),
                Some(Reader::Broken) | None => Ok(0),
            };
            let n = match got {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if cur.compressed => {
                    on(TailEvent::Unreadable {
                        path: &cur.path,
                        offset: cur.offset,
                        error,
                    });
                    cur.reader = Some(Reader::Broken);
                    0
                }
                Err(e) => return Err(io_err("read", &cur.path)(e)),
            };
            if n == 0 {
                cur.check_truncated(on)?;
                return Ok(Stop::Eof);
            }
            let max = self.opts.max_line_bytes;
            cur.lines
                .feed(&cur.path, cur.offset, &self.buf[..n], max, on);
            cur.offset += n as u64;
            *budget -= n as u64;
        }
    }

    /// Whether a file newer than the current one exists (then the current one is complete).
    fn newer_exists(&mut self) -> Result<bool, TailError> {
        let Some(cur) = self.cur.as_ref() else {
            return Ok(false);
        };
        if cur.closed {
            return Ok(true);
        }
        let look = match std::fs::read_link(&self.link) {
            Ok(target) => target.file_name() != cur.path.file_name(),
            // No link (yet): list now and then instead.
            Err(_) => self
                .last_list
                .is_none_or(|t| t.elapsed() >= self.opts.relist_every),
        };
        if !look {
            return Ok(false);
        }
        self.relist()?;
        let newer = !self.ahead.is_empty();
        if let Some(cur) = self.cur.as_mut() {
            cur.closed = newer;
        }
        Ok(newer)
    }

    /// Idle at the end of the newest file: closes its descriptor until the next poll.
    fn park(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            if matches!(cur.reader, Some(Reader::Plain(_))) && !cur.closed {
                cur.reader = None;
            }
        }
    }

    fn finish(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) {
        if let Some(mut cur) = self.cur.take() {
            cur.lines.flush(on);
            self.done = Some(cur.key);
        }
    }
}

impl Current {
    /// Positions a freshly opened file.
    fn enter(&mut self, entry: Entry) -> io::Result<()> {
        match entry {
            Entry::Offset(0) => {}
            Entry::Offset(at) => {
                let Some(Reader::Plain(f)) = self.reader.as_mut() else {
                    return Err(io::ErrorKind::InvalidInput.into());
                };
                f.seek(SeekFrom::Start(at))?;
                self.offset = at;
            }
            Entry::SkipLines(n) => self.lines.skip = n,
        }
        Ok(())
    }

    /// At the end of a plain file still being written: a size below what was read means a
    /// cut-back; go on from the new end.
    fn check_truncated(&mut self, on: &mut dyn FnMut(TailEvent<'_>)) -> Result<(), TailError> {
        let Some(Reader::Plain(f)) = self.reader.as_mut() else {
            return Ok(());
        };
        let len = f.metadata().map_err(io_err("stat", &self.path))?.len();
        if len < self.offset {
            on(TailEvent::Truncated {
                path: &self.path,
                from: self.offset,
                to: len,
            });
            f.seek(SeekFrom::Start(len))
                .map_err(io_err("seek", &self.path))?;
            self.offset = len;
            self.lines.reset();
        }
        Ok(())
    }
}

fn file_len(cur: &Current) -> Result<u64, TailError> {
    match &cur.reader {
        Some(Reader::Plain(f)) => Ok(f.metadata().map_err(io_err("stat", &cur.path))?.len()),
        _ => Ok(0),
    }
}

fn open_plain(f: &ArchiveFile) -> io::Result<Current> {
    let file = File::open(&f.path)?;
    let meta = file.metadata()?;
    Ok(Current {
        key: f.key(),
        path: f.path.clone(),
        compressed: false,
        reader: Some(Reader::Plain(file)),
        ident: (meta.dev(), meta.ino()),
        offset: 0,
        closed: !f.newest,
        lines: Lines::default(),
    })
}

fn open_file(f: &ArchiveFile) -> io::Result<Current> {
    if !f.compressed {
        return open_plain(f);
    }
    Ok(Current {
        key: f.key(),
        path: f.path.clone(),
        compressed: true,
        reader: Some(Reader::Gz(f.open()?)),
        ident: (0, 0),
        offset: 0,
        closed: true,
        lines: Lines::default(),
    })
}

/// A file removed under us, or a `.gz` that is not one.
/// (flate2 reports a corrupt stream as `InvalidInput`.)
fn gone_or_corrupt(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound
            | io::ErrorKind::InvalidData
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::UnexpectedEof
    )
}

/// How many files between `done` and `next` are known to have existed: the keys listed and
/// missed, and the suffixes a writer must have used between two keys of the same date (it
/// numbers a date's files one by one). Files of a date that was skipped entirely cannot be
/// counted.
pub(crate) fn lost_between(done: Option<FileKey>, next: FileKey, missed: &[FileKey]) -> u64 {
    let mut keys: Vec<FileKey> = missed
        .iter()
        .copied()
        .filter(|k| done.is_none_or(|d| *k > d) && *k < next)
        .collect();
    keys.sort();
    keys.dedup();
    let mut count = keys.len() as u64;
    if let Some(mut prev) = done {
        for k in keys.into_iter().chain([next]) {
            if k.date == prev.date && k.suffix > prev.suffix {
                count += k.suffix - prev.suffix - 1;
            }
            prev = k;
        }
    }
    count
}

#[cfg(test)]
mod tests;
