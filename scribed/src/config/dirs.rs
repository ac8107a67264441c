//! The directories a configuration writes — each buffer store's spool, each file store's
//! category directories — and the configurations that would have two stores write one of them.
//!
//! Two writers of one category directory each keep their own idea of where the current file
//! ends and what the commit log holds, so the next start's recovery cuts what the other one
//! acknowledged; two writers of one spool corrupt each other's cursor. At run time every such
//! directory is locked (the spool by `scribe_spool`, the rest by [`crate::locks`]), which stops
//! a second *process*; inside one process the stores of one configuration share those locks, so
//! this check is what stops two of *its* stores. Paths are compared as written (made lexically
//! plain: `a/./b/` is `a/b`), not through the file system, so `--check-config` can run anywhere.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use super::locate::KeyError;
use super::{BufferSpec, Settings, StoreSpec};

/// What one store writes.
struct Writer {
    /// Key path of the store, for errors.
    at: String,
    /// Index of its top-level block: its categories.
    block: usize,
    dir: PathBuf,
    spool: bool,
}

/// Refuses a configuration in which two buffer stores share a spool, or two file stores write
/// the same category directory (within one block, or in two blocks a category can reach
/// together: the same exact name, the same prefix, or both `default`).
pub fn check_writers(settings: &Settings) -> Result<(), KeyError> {
    let mut writers = Vec::new();
    for (i, b) in settings.stores.iter().enumerate() {
        collect(&b.spec, &b.at, &b.key, i, settings, &mut writers);
    }
    let mut by_dir: HashMap<(&Path, bool), Vec<&Writer>> = HashMap::new();
    for w in &writers {
        let same = by_dir.entry((&w.dir, w.spool)).or_default();
        if let Some(first) = same
            .iter()
            .find(|o| w.spool || reach_together(settings, o, w))
        {
            return Err(conflict(first, w));
        }
        same.push(w);
    }
    Ok(())
}

fn conflict(first: &Writer, second: &Writer) -> KeyError {
    let dir = second.dir.display();
    if second.spool {
        return KeyError::new(
            &second.at,
            format!(
                "spool directory {dir} is used by another buffer store ({}); set spool_dir",
                first.at
            ),
        );
    }
    KeyError::new(
        &second.at,
        format!(
            "writes the same category directories under {dir} as {}: two writers of one \
             category's files cut each other's acknowledged data at recovery; give one of \
             them another `path`",
            first.at
        ),
    )
}

/// Whether one category can be routed to both writers' blocks (router.rs: all exact matches,
/// else all blocks with the longest matching prefix, else all `default` blocks).
fn reach_together(settings: &Settings, a: &Writer, b: &Writer) -> bool {
    if a.block == b.block {
        return true;
    }
    let (pa, pb) = (
        &settings.stores[a.block].patterns,
        &settings.stores[b.block].patterns,
    );
    pa.iter().any(|p| pb.contains(p))
}

fn collect(
    spec: &StoreSpec,
    at: &str,
    key: &str,
    block: usize,
    settings: &Settings,
    out: &mut Vec<Writer>,
) {
    let mut push = |at: String, dir: PathBuf, spool: bool| {
        out.push(Writer {
            at,
            block,
            dir: plain(&dir),
            spool,
        })
    };
    match spec {
        StoreSpec::File(f) => push(at.to_string(), file_base(f, settings), false),
        StoreSpec::Buffer(b) => {
            let spool_at = match b.spool_dir {
                Some(_) => format!("{at}.spool_dir"),
                None => at.to_string(),
            };
            push(spool_at, spool_dir(b, key, settings), true);
            collect(
                &b.primary,
                &format!("{at}.primary"),
                key,
                block,
                settings,
                out,
            );
        }
        StoreSpec::Multi(m) => {
            for (i, s) in m.stores.iter().enumerate() {
                let child = format!("{at}.stores[{i}]");
                collect(s, &child, &child_key(key, i), block, settings, out);
            }
        }
        StoreSpec::Bucket(b) => {
            if let StoreSpec::File(f) = &*b.bucket {
                let base = file_base(f, settings);
                let subdir = b.bucket_subdir.as_deref().unwrap_or("bucket");
                for n in 0..=b.num_buckets {
                    push(
                        format!("{at}.bucket"),
                        base.join(format!("{subdir}{n:03}")),
                        false,
                    );
                }
            }
        }
        StoreSpec::Network(_) | StoreSpec::Null(_) | StoreSpec::Kafka(_) => {}
    }
}

/// The base directory a file store writes its category directories in.
pub fn file_base(f: &super::FileSpec, settings: &Settings) -> PathBuf {
    f.path.clone().unwrap_or_else(|| settings.data_dir.clone())
}

/// `p` without `.` components, `..` folded into its parent, and no trailing `/`.
fn plain(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The key of a multi store's `i`-th child, from which a nested buffer store's default spool
/// directory is named. Validation, building and the unclaimed-spool check must agree on it.
pub fn child_key(key: &str, i: usize) -> String {
    format!("{key}.{i}")
}

/// Where a buffer store spools.
pub fn spool_dir(b: &BufferSpec, key: &str, settings: &Settings) -> PathBuf {
    b.spool_dir
        .clone()
        .unwrap_or_else(|| default_spool_dir(key, settings))
}

/// Where the store of `key` spools unless its `spool_dir` says otherwise.
pub fn default_spool_dir(key: &str, settings: &Settings) -> PathBuf {
    settings.data_dir.join(".spool").join(key)
}

/// The dead-letter directory beside (inside) a spool directory: the spool itself only reads
/// its segment files and cursor, and its directory lock covers this too.
pub fn dead_letter_dir(spool_dir: &Path) -> PathBuf {
    spool_dir.join("dead-letter")
}

/// Every spool directory a buffer store of `settings` uses (lexically plain), with the store's
/// key path.
pub fn claimed_spools(settings: &Settings) -> Vec<(PathBuf, String)> {
    let mut writers = Vec::new();
    for (i, b) in settings.stores.iter().enumerate() {
        collect(&b.spec, &b.at, &b.key, i, settings, &mut writers);
    }
    writers
        .into_iter()
        .filter(|w| w.spool)
        .map(|w| (w.dir, w.at))
        .collect()
}

/// Spool directories under `<data_dir>/.spool` that no buffer store of `settings` uses but that
/// still hold data: a backlog stranded by a config change made while scribed was stopped.
/// scribed warns about them at start (it never deletes them); a reload that would strand one
/// is refused (see `reload`).
pub fn unclaimed_spools(settings: &Settings) -> Vec<PathBuf> {
    let used: HashSet<PathBuf> = claimed_spools(settings)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let Ok(entries) = std::fs::read_dir(settings.data_dir.join(".spool")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|dir| !used.contains(&plain(dir)))
        .filter(|dir| {
            std::fs::read_dir(dir).is_ok_and(|files| {
                files.filter_map(|f| f.ok()).any(|f| {
                    f.path().extension().is_some_and(|x| x == "seg")
                        && f.metadata().is_ok_and(|m| m.len() > 0)
                })
            })
        })
        .collect()
}

/// Logs a warning for every spool holding a backlog that no buffer store will replay.
pub fn warn_unclaimed_spools(settings: &Settings) {
    for dir in unclaimed_spools(settings) {
        tracing::warn!(
            spool = %dir.display(),
            "a spool with a backlog belongs to no buffer store in this configuration; \
             point a buffer store's spool_dir at it to replay it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::plain;
    use std::path::Path;

    #[test]
    fn paths_are_compared_lexically_plain() {
        assert_eq!(plain(Path::new("/x/./y/")), Path::new("/x/y"));
        assert_eq!(plain(Path::new("/x/z/../y")), Path::new("/x/y"));
        assert_eq!(plain(Path::new("../a/./b")), Path::new("../a/b"));
        assert_eq!(plain(Path::new("/..")), Path::new("/.."));
    }
}
