//! File sources: scribed's data dir (one feed per `<cat>/`, read through `<cat>_current`)
//! and single files (`--file PATH=NAME`), all read by one `scribe_follow::Follower` on a
//! blocking thread.
//!
//! The follower handles the rotations: `<cat>_current` is a symlink that scribed retargets
//! at each new file, which the follower treats like rename + create (the old file is drained
//! to its end first). New category directories are found by rescanning the data dir every
//! [`SCAN_EVERY`]; a category's first lines are read from the beginning of its file, since
//! the category is new to us.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use scribe_archive::Category;
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
    let mut follower = Follower::new(FollowOptions::default());
    let mut names: HashMap<PathBuf, String> = HashMap::new();
    let mut batches: HashMap<String, Vec<Bytes>> = HashMap::new();
    // What exists at start is tailed from its end as of the first poll, so the first poll
    // runs before any of it is announced (`hub.feed`): a line written after a category is
    // listed is read, never skipped as old. Announced first, a line written between the
    // announcement and a late first poll (a loaded machine) was taken for old and skipped.
    // The first poll reads no lines: every file it finds starts at its end.
    let mut initial = src.files.clone();
    if let Some(dir) = &src.data_dir {
        initial.extend(scan(dir));
    }
    for (path, _) in &initial {
        follower.watch(path.clone());
    }
    poll(hub, &mut follower, &names, &mut batches);
    // A path refused here (`--max-categories`) stays watched, its lines unpublished; the
    // follower has no unwatch for a path with a file, and categories are never removed.
    for (path, name) in initial {
        add(hub, &mut follower, &mut names, path, &name);
    }
    let mut last_scan = Instant::now();
    while !shutdown.is_cancelled() {
        if let Some(dir) = &src.data_dir {
            if last_scan.elapsed() >= SCAN_EVERY {
                for (path, name) in scan(dir) {
                    add(hub, &mut follower, &mut names, path, &name);
                }
                last_scan = Instant::now();
            }
        }
        if !poll(hub, &mut follower, &names, &mut batches) {
            std::thread::sleep(src.poll_interval);
        }
    }
}

/// One follower poll; its lines are published per category. Returns whether a file has more
/// to read right away.
fn poll(
    hub: &Hub,
    follower: &mut Follower,
    names: &HashMap<PathBuf, String>,
    batches: &mut HashMap<String, Vec<Bytes>>,
) -> bool {
    let outcome = follower.poll(&mut |event| match event {
        Event::Line { path, bytes, .. } => {
            if let Some(name) = names.get(path) {
                let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                batches
                    .entry(name.clone())
                    .or_default()
                    .push(Bytes::copy_from_slice(line));
            }
        }
        Event::Rotated { path, to, .. } => {
            tracing::debug!("{} rotated to {}", path.display(), to.display())
        }
        Event::Truncated { path, .. } => {
            tracing::info!(
                "{} was truncated; reading it from the start",
                path.display()
            )
        }
        Event::Vanished { path, .. } => {
            tracing::info!("{} vanished before it was read to its end", path.display())
        }
        Event::LineTooLong {
            path, offset, max, ..
        } => {
            tracing::warn!(
                "{}: line at offset {offset} is over {max} bytes; skipped",
                path.display()
            )
        }
        Event::Error { path, error } => {
            tracing::warn!("{}: {error}", path.display())
        }
        Event::Opened { .. } | Event::Closed { .. } => {}
    });
    for (name, lines) in batches.drain() {
        if let Err(e) = hub.publish(&name, lines) {
            tracing::warn!("lines of {name} not kept: {e}");
        }
    }
    outcome.pending
}

fn add(
    hub: &Hub,
    follower: &mut Follower,
    names: &mut HashMap<PathBuf, String>,
    path: PathBuf,
    name: &str,
) {
    if names.contains_key(&path) {
        return;
    }
    if let Err(e) = hub.feed(name) {
        tracing::warn!("not following {}: {e}", path.display());
        return;
    }
    tracing::info!("following {} as {name}", path.display());
    follower.watch(path.clone());
    names.insert(path, name.to_string());
}

/// Each directory of `dir` whose name is a valid category is a feed, read through its
/// `<cat>_current` link (which need not exist yet: the follower picks it up when it does).
/// Returns (link, category name) pairs.
fn scan(dir: &Path) -> Vec<(PathBuf, String)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!("listing {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let file_name = entry.file_name();
        let Ok(cat) = Category::new(file_name.as_encoded_bytes()) else {
            continue;
        };
        let link = entry
            .path()
            .join(scribe_archive::layout::current_link_name(&cat));
        found.push((link, cat.as_str().to_string()));
    }
    found
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
