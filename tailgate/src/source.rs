//! File sources: scribed's data dir (one feed per `<cat>/`) and single files
//! (`--file PATH=NAME`), all read on one blocking thread.
//!
//! A data-dir category is read by a [`scribe_archive::ArchiveTail`], which follows the
//! category's files in write order: when `<cat>_current` moves on, every file between the old
//! target and the new one is read, in order (from its `.gz` if compression got there first),
//! however many rotations happened between two polls. What can no longer be read (a file
//! removed by retention before it was reached, an overlong line, a corrupt `.gz`) is published
//! as a gap ([`Hub::publish_gap`]): the lines' seqs are used up and subscribers get a `gap`
//! notice, never a silent hole. New category directories are found by rescanning the data dir
//! every [`SCAN_EVERY`]; a new category is read from its oldest lines the ring can hold (its
//! files may have rotated several times before the rescan found it).
//!
//! `--file` sources go through one `scribe_follow::Follower` (rename + create, copytruncate,
//! symlink retargeting); its unreadable parts are gaps too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use scribe_archive::{ArchiveTail, Category, StartAt, TailEvent, TailOptions};
use scribe_cli::RateLimitedWarn;
use scribe_follow::{Event, FollowOptions, Follower};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How often the data dir is listed for new categories.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct FileSources {
    pub data_dir: Option<PathBuf>,
    /// (path, category name)
    pub files: Vec<(PathBuf, String)>,
    pub poll_interval: Duration,
}

/// Parses `PATH=NAME`; the name must be a valid category name.
pub fn parse_file_arg(s: &str) -> Result<(PathBuf, String), String> {
    let (path, name) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected PATH=NAME"))?;
    let cat = Category::new(name.as_bytes()).map_err(|e| format!("{s:?}: {e}"))?;
    if path.is_empty() {
        return Err(format!("{s:?}: empty path"));
    }
    Ok((PathBuf::from(path), cat.as_str().to_string()))
}

/// Runs the follower on a blocking thread until `shutdown`.
pub fn spawn(
    hub: Arc<Hub>,
    src: FileSources,
    shutdown: CancellationToken,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("tailgate-follow".into())
        .spawn(move || run(&hub, &src, &shutdown))
        .expect("spawning the follower thread")
}

fn run(hub: &Hub, src: &FileSources, shutdown: &CancellationToken) {
    let mut files = FileFeeds {
        follower: Follower::new(FollowOptions::default()),
        names: HashMap::new(),
    };
    let mut dirs = DirFeeds {
        dir: src.data_dir.clone(),
        tails: BTreeMap::new(),
        refused: HashSet::new(),
        warn: RateLimitedWarn::new(Duration::from_secs(1)),
    };
    // What exists at start seeds the rings with its newest lines (as `tail -n` does, so a
    // page opened after a restart is not empty), and is read on from there as of a first look
    // made before any of it is announced (`hub.feed`): a line written after a category is
    // listed is read, never skipped as old. Announced first, a line written between the
    // announcement and a late first look (a loaded machine) was taken for old and skipped.
    // Data-dir tails fix their start when they open (the newest `--ring-lines` lines). The
    // follower has no "newest N lines" start: a file up to `SEED_MAX_FILE` is read from its
    // beginning (the ring keeps the newest lines), announced first, as nothing is skipped;
    // a bigger one is read from its end, fixed on the first poll, which reads no lines.
    for (path, name) in &src.files {
        if seed_from_start(path) {
            files.add_with(hub, path.clone(), name, true);
        } else {
            files.follower.watch(path.clone());
        }
    }
    let cfg = hub.config();
    let recent = StartAt::Recent {
        lines: cfg.ring_lines as u64,
        bytes: cfg.ring_bytes as u64,
    };
    let initial: Vec<(Category, ArchiveTail)> = dirs
        .scan()
        .into_iter()
        .filter_map(|cat| Some((cat.clone(), dirs.open(&cat, recent)?)))
        .collect();
    files.poll(hub);
    // A path refused here (`--max-categories`) stays watched, its lines unpublished; the
    // follower has no unwatch for a path with a file, and categories are never removed.
    for (path, name) in src.files.clone() {
        files.add(hub, path, &name);
    }
    for (cat, tail) in initial {
        dirs.add(hub, &cat, tail);
    }
    let mut last_scan = Instant::now();
    while !shutdown.is_cancelled() {
        if last_scan.elapsed() >= SCAN_EVERY {
            dirs.rescan(hub);
            last_scan = Instant::now();
        }
        let pending = files.poll(hub) | dirs.poll(hub);
        if !pending {
            std::thread::sleep(src.poll_interval);
        }
    }
}

/// The data dir's categories, each read by its own archive tail.
struct DirFeeds {
    dir: Option<PathBuf>,
    tails: BTreeMap<String, ArchiveTail>,
    /// Over `--max-categories`: not opened again at every rescan.
    refused: HashSet<String>,
    warn: RateLimitedWarn,
}

impl DirFeeds {
    /// The category directories there are now.
    fn scan(&self) -> Vec<Category> {
        self.dir.as_deref().map(scan).unwrap_or_default()
    }

    /// Opens and adds the categories that are new since the last scan.
    fn rescan(&mut self, hub: &Hub) {
        for cat in self.scan() {
            let name = cat.as_str();
            if self.tails.contains_key(name) || self.refused.contains(name) {
                continue;
            }
            // New, so announced before it is read (its lines are read from the oldest on,
            // none is taken for old), and not read at all if refused.
            if let Err(e) = hub.feed(name) {
                tracing::warn!("not following {name}: {e}");
                self.refused.insert(name.to_string());
                continue;
            }
            // Its first files may have rotated already; the ring keeps only the last
            // `--ring-lines` (and `--ring-bytes`), so reading further back would be wasted.
            let cfg = hub.config();
            let start = StartAt::Recent {
                lines: cfg.ring_lines as u64,
                bytes: cfg.ring_bytes as u64,
            };
            if let Some(tail) = self.open(&cat, start) {
                self.insert(&cat, tail);
            }
        }
    }

    /// A tail of `cat`, or `None` (logged) to try again at the next scan.
    fn open(&self, cat: &Category, start: StartAt) -> Option<ArchiveTail> {
        let dir = self.dir.as_deref()?;
        match ArchiveTail::open(dir, cat, start, TailOptions::default()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.warn.warn(|| format!("not following {cat} yet: {e}"));
                None
            }
        }
    }

    /// Announces `cat` to the hub (unless refused) and starts reading it.
    fn add(&mut self, hub: &Hub, cat: &Category, tail: ArchiveTail) {
        let name = cat.as_str();
        if let Err(e) = hub.feed(name) {
            tracing::warn!("not following {name}: {e}");
            self.refused.insert(name.to_string());
            return;
        }
        self.insert(cat, tail);
    }

    /// Starts reading an announced category.
    fn insert(&mut self, cat: &Category, tail: ArchiveTail) {
        tracing::info!("following category {cat} in the data dir");
        self.tails.insert(cat.as_str().to_string(), tail);
    }

    /// One poll of every tail; lines are published per category, gaps in their place.
    /// Returns whether a tail has more to read right away.
    fn poll(&mut self, hub: &Hub) -> bool {
        let mut pending = false;
        for (name, tail) in &mut self.tails {
            let mut lines = Vec::new();
            let warn = &self.warn;
            let polled = tail.poll(&mut |event| on_tail_event(hub, name, &mut lines, warn, event));
            publish(hub, name, &mut lines);
            match polled {
                Ok(more) => pending |= more,
                Err(e) => self.warn.warn(|| format!("{name}: {e}")),
            }
        }
        pending
    }
}

fn on_tail_event(
    hub: &Hub,
    name: &str,
    lines: &mut Vec<Bytes>,
    warn: &RateLimitedWarn,
    event: TailEvent<'_>,
) {
    let lost = match event {
        TailEvent::Line(l) => {
            lines.push(Bytes::copy_from_slice(l));
            return;
        }
        TailEvent::Opened { path, .. } => {
            tracing::debug!("{name}: reading {}", path.display());
            return;
        }
        TailEvent::Truncated { path, from, to } => {
            // scribed cutting back a failed write: those bytes were never acknowledged.
            tracing::info!("{}: cut back from {from} to {to} bytes", path.display());
            return;
        }
        TailEvent::Lost { files, next } => {
            warn.warn(|| {
                format!(
                    "{name}: {files} file(s) before {} were removed before tailgate read them; their lines are lost",
                    next.display()
                )
            });
            files
        }
        TailEvent::Vanished { path, offset } => {
            warn.warn(|| {
                format!(
                    "{}: removed while being read; lost after byte {offset}",
                    path.display()
                )
            });
            1
        }
        TailEvent::Unreadable {
            path,
            offset,
            error,
        } => {
            warn.warn(|| {
                format!(
                    "{}: unreadable after byte {offset}: {error}",
                    path.display()
                )
            });
            1
        }
        TailEvent::LineTooLong { path, offset, max } => {
            warn.warn(|| {
                format!(
                    "{}: line at offset {offset} is over {max} bytes; skipped",
                    path.display()
                )
            });
            1
        }
    };
    gap(hub, name, lines, lost);
}

/// Publishes the lines gathered so far, then a gap of `count` seqs after them.
fn gap(hub: &Hub, name: &str, lines: &mut Vec<Bytes>, count: u64) {
    publish(hub, name, lines);
    if let Err(e) = hub.publish_gap(name, count) {
        tracing::warn!("gap in {name} not kept: {e}");
    }
}

fn publish(hub: &Hub, name: &str, lines: &mut Vec<Bytes>) {
    if lines.is_empty() {
        return;
    }
    if let Err(e) = hub.publish(name, std::mem::take(lines)) {
        tracing::warn!("lines of {name} not kept: {e}");
    }
}

/// `--file` sources, through one follower.
struct FileFeeds {
    follower: Follower,
    /// Followed path → category name.
    names: HashMap<PathBuf, String>,
}

impl FileFeeds {
    /// One follower poll; its lines are published per category. Returns whether a file has
    /// more to read right away.
    fn poll(&mut self, hub: &Hub) -> bool {
        let names = &self.names;
        let mut batches: HashMap<&str, Vec<Bytes>> = HashMap::new();
        let outcome = self.follower.poll(&mut |event| {
            let lost = match event {
                Event::Line { path, bytes, .. } => {
                    if let Some(name) = names.get(path) {
                        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                        let batch = batches.entry(name.as_str()).or_default();
                        batch.push(Bytes::copy_from_slice(line));
                    }
                    None
                }
                Event::Lines { path, bytes, .. } => {
                    if let Some(name) = names.get(path) {
                        let batch = batches.entry(name.as_str()).or_default();
                        for line in bytes.split_inclusive(|&b| b == b'\n') {
                            let line = line.strip_suffix(b"\n").unwrap_or(line);
                            batch.push(Bytes::copy_from_slice(line));
                        }
                    }
                    None
                }
                Event::Rotated { path, to, .. } => {
                    tracing::debug!("{} rotated to {}", path.display(), to.display());
                    None
                }
                Event::Truncated { path, .. } => {
                    tracing::info!(
                        "{} was truncated; reading it from the start",
                        path.display()
                    );
                    None
                }
                Event::Vanished { path, .. } => {
                    tracing::info!("{} vanished before it was read to its end", path.display());
                    Some(path)
                }
                Event::LineTooLong {
                    path, offset, max, ..
                } => {
                    tracing::warn!(
                        "{}: line at offset {offset} is over {max} bytes; skipped",
                        path.display()
                    );
                    Some(path)
                }
                Event::Error { path, error } => {
                    tracing::warn!("{}: {error}", path.display());
                    None
                }
                Event::Opened { .. } | Event::Closed { .. } => None,
            };
            // What could not be read is a gap, after the lines read before it.
            if let Some(name) = lost.and_then(|p| names.get(p)) {
                let mut lines = batches.remove(name.as_str()).unwrap_or_default();
                gap(hub, name, &mut lines, 1);
            }
        });
        for (name, mut lines) in batches {
            publish(hub, name, &mut lines);
        }
        outcome.pending
    }

    fn add(&mut self, hub: &Hub, path: PathBuf, name: &str) {
        self.add_with(hub, path, name, false);
    }

    /// Announces `name` and follows `path` as it, from the file's beginning if
    /// `from_beginning` (and the path is new to the follower).
    fn add_with(&mut self, hub: &Hub, path: PathBuf, name: &str, from_beginning: bool) {
        if self.names.contains_key(&path) {
            return;
        }
        if let Err(e) = hub.feed(name) {
            tracing::warn!("not following {}: {e}", path.display());
            return;
        }
        tracing::info!("following {} as {name}", path.display());
        self.follower.watch_with(path.clone(), from_beginning);
        self.names.insert(path, name.to_string());
    }
}

/// Largest `--file` read from its beginning at start to seed its ring.
pub const SEED_MAX_FILE: u64 = 64 << 20;

/// Whether `path` is small enough to seed its ring by reading it whole.
fn seed_from_start(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() <= SEED_MAX_FILE)
}

/// Each directory of `dir` whose name is a valid category is a feed (its files need not
/// exist yet: the tail picks them up when they do).
fn scan(dir: &Path) -> Vec<Category> {
    scribe_archive::layout::list_categories(dir).unwrap_or_else(|e| {
        // Tried again at the next scan.
        tracing::debug!("listing {}: {e}", dir.display());
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_args() {
        let (p, n) = parse_file_arg("/var/log/syslog=sys.log").unwrap();
        assert_eq!(p, PathBuf::from("/var/log/syslog"));
        assert_eq!(n, "sys.log");
        assert!(parse_file_arg("/x").is_err());
        assert!(parse_file_arg("/x=../etc").is_err());
        assert!(parse_file_arg("=a").is_err());
    }
}
