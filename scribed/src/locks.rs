//! One directory, one scribed. Two processes writing one category directory each keep their
//! own idea of where its current file ends, so the next start's recovery cuts what the other
//! acknowledged (an incident lost half of 600,000 lines this way). So scribed locks the data
//! directory and every file store's base directory (spools lock themselves, in
//! `scribe_spool`) before any store is built, and so before any recovery; a second scribed is
//! refused with the directory and the holder's pid.
//!
//! Inside one process the stores of a configuration share these locks (several file stores
//! may write different categories under one base directory), and so do the old and the new
//! configuration during a reload: a lock is taken once per directory and released when its
//! last user is gone. That two stores of one configuration never write the same category
//! directory is checked with the configuration (`config::dirs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use anyhow::Context;
use scribe_fs::{DirLock, LockError};

/// The lock file in the data directory and in file stores' base directories. Not `lock`: these
/// directories hold category directories, and `lock` is a valid category name; no category can
/// contain `+`.
pub const LOCK_FILE: &str = ".scribed+lock";

/// The locks this process holds, by canonical directory.
static HELD: LazyLock<Mutex<HashMap<PathBuf, Weak<DirLock>>>> = LazyLock::new(Default::default);

/// Locks `dir` (created if missing) for this process, or shares the lock it already holds.
/// `what` names the directory in errors: `data directory`, `store[1] (web) directory`.
pub fn lock(dir: &Path, what: &str) -> anyhow::Result<Arc<DirLock>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {what} {}", dir.display()))?;
    let canonical = std::fs::canonicalize(dir)
        .with_context(|| format!("resolving {what} {}", dir.display()))?;
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = held.get(&canonical).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    held.retain(|_, l| l.strong_count() > 0);
    match scribe_fs::lock_dir_with_pid_in(dir, LOCK_FILE) {
        Ok(lock) => {
            let lock = Arc::new(lock);
            held.insert(canonical, Arc::downgrade(&lock));
            Ok(lock)
        }
        Err(e @ LockError::HeldBy { .. }) => Err(anyhow::anyhow!(
            "{what} {e} (lock file {}): two scribeds on one directory cut each other's \
             acknowledged data when they recover it; give each scribed its own directory",
            dir.join(LOCK_FILE).display()
        )),
        Err(e) => Err(e).with_context(|| format!("locking {what} {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_locked_elsewhere_is_refused_with_its_holder() {
        let tmp = tempfile::tempdir().unwrap();
        // Another open file description: as another process would hold it.
        let other = scribe_fs::lock_dir_with_pid_in(tmp.path(), LOCK_FILE).unwrap();
        let e = lock(tmp.path(), "data directory").unwrap_err().to_string();
        let pid = std::process::id().to_string();
        assert!(
            e.contains(&tmp.path().display().to_string()) && e.contains(&pid),
            "{e}"
        );
        drop(other);
        let first = lock(tmp.path(), "data directory").unwrap();
        // The same process asking again (another store, the next configuration) shares it.
        let again = lock(&tmp.path().join("."), "store directory").unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        drop((first, again));
        // Released with its last user.
        drop(scribe_fs::lock_dir_with_pid_in(tmp.path(), LOCK_FILE).unwrap());
    }
}
