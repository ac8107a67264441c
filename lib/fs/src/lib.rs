//! Crash-safe file-system steps, written once for the whole pipeline.
//!
//! "No half writes" is the project's promise: a small file that must always read as either its
//! old or its new contents (scribed's ready file, ship's producer id, the spool cursor, the
//! follower's positions, a category's commit-log snapshot) is replaced through a temporary
//! file: write, fsync, rename over the old one, then fsync the directory so the rename itself
//! survives a power loss. [`AtomicFile`] is that sequence; [`write_atomically`] is it for a
//! buffer in one call. [`sync_dir`], [`remove_if_exists`] and [`lock_dir`] are the other
//! steps every store of files needs.
//!
//! The crate depends on nothing of the workspace and holds no `unsafe`, so every library may
//! use it. Errors name the step and the path ([`FsError`]); callers fold them into their own
//! error types.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed file-system step: which one, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FsError {
    /// The step, as a verb phrase: `"create"`, `"fsync"`, `"rename"`, `"fsync directory"`...
    pub op: &'static str,
    /// The file or directory it concerned.
    pub path: PathBuf,
    /// What the system said.
    #[source]
    pub source: io::Error,
}

impl FsError {
    fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
        move |source| FsError {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How much of the new contents [`AtomicFile::commit`] forces to the device before the rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fsync`: data and metadata.
    All,
    /// `fdatasync`: data and the size (enough for a file only ever read whole).
    Data,
    /// Nothing: a crash may leave the new name with lost contents. For state that is saved
    /// again soon and fsynced on a slower clock (the follower's positions between fsyncs).
    Nothing,
}

/// `dest` with `.tmp` added to its file name (`positions` → `positions.tmp`,
/// `ready.json` → `ready.json.tmp`).
pub fn tmp_path(dest: &Path) -> PathBuf {
    let mut name: OsString = dest.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// A replacement of `dest` being written in a temporary file beside it. Nothing a reader of
/// `dest` sees changes until [`AtomicFile::commit`]; dropped uncommitted, the temporary file is
/// removed.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts replacing `dest` through `tmp` (a stale `tmp` left by a crash is truncated).
    pub fn create(dest: &Path, tmp: &Path) -> Result<AtomicFile, FsError> {
        let file = File::create(tmp).map_err(FsError::at("create", tmp))?;
        Ok(AtomicFile::holding(dest, tmp, file))
    }

    /// As [`AtomicFile::create`], but the handle is opened for appending: for a file that
    /// lives on as a log after the rename (the handle [`AtomicFile::commit`] returns keeps
    /// appending to the new `dest`).
    pub fn create_appending(dest: &Path, tmp: &Path) -> Result<AtomicFile, FsError> {
        remove_if_exists(tmp)?;
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(tmp)
            .map_err(FsError::at("create", tmp))?;
        Ok(AtomicFile::holding(dest, tmp, file))
    }

    fn holding(dest: &Path, tmp: &Path, file: File) -> AtomicFile {
        AtomicFile {
            dest: dest.to_path_buf(),
            tmp: tmp.to_path_buf(),
            file: Some(file),
        }
    }

    /// Appends `data` to the new contents.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), FsError> {
        let file = self.file.as_mut().expect("present until commit");
        file.write_all(data)
            .map_err(FsError::at("write", &self.tmp))
    }

    /// The temporary file, to stream into (`&mut File` is `Write`) or to set its metadata.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("present until commit")
    }

    /// The temporary file's path (for error messages).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Forces the contents to the device now, so that a later [`AtomicFile::commit`] with
    /// [`SyncMode::Nothing`] is only the rename: for a caller that must rename under a lock
    /// and should not hold the lock through an fsync.
    pub fn sync(&mut self, sync: SyncMode) -> Result<(), FsError> {
        let file = self.file.as_ref().expect("present until commit");
        let synced = match sync {
            SyncMode::All => file.sync_all(),
            SyncMode::Data => file.sync_data(),
            SyncMode::Nothing => Ok(()),
        };
        synced.map_err(FsError::at("fsync", &self.tmp))
    }

    /// Forces the contents to the device as `sync` says, then renames the temporary file over
    /// `dest`; returns the open handle, which now names `dest`. The rename is durable only
    /// once the directory is fsynced: call [`sync_dir`] on the parent (skipped here because
    /// some callers may carry on without it: an older, consistent file coming back after a
    /// power loss is acceptable to them).
    pub fn commit(mut self, sync: SyncMode) -> Result<File, FsError> {
        // On an error `self` drops with its file, which removes the temporary file.
        self.sync(sync)?;
        std::fs::rename(&self.tmp, &self.dest).map_err(FsError::at("rename", &self.dest))?;
        Ok(self.file.take().expect("present until commit"))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Not committed: the old `dest` stays; leave no temporary behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces `dest` with `data` crash-safely: `<dest>.tmp`, fsync, rename, fsync the directory.
/// Readers see the previous file (or none) or the whole new one, and the new one survives a
/// power loss once this returns.
pub fn write_atomically(dest: &Path, data: &[u8]) -> Result<(), FsError> {
    let mut file = AtomicFile::create(dest, &tmp_path(dest))?;
    file.write_all(data)?;
    file.commit(SyncMode::All)?;
    sync_parent(dest)
}

/// fsyncs a directory, so that a file created, renamed or removed in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::at("fsync directory", dir))
}

/// fsyncs the directory holding `path` (`.` for a bare file name).
pub fn sync_parent(path: &Path) -> Result<(), FsError> {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => sync_dir(d),
        _ => sync_dir(Path::new(".")),
    }
}

/// Removes a file; one that is already gone counts as removed (`Ok(false)`): cleanup paths
/// race benignly with each other and with background workers.
pub fn remove_if_exists(path: &Path) -> Result<bool, FsError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::at("remove", path)(e)),
    }
}

/// Why [`lock_dir`] did not get its lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another open file description holds the lock: another process (or another user in
    /// this one) owns the directory.
    #[error("{} is in use (locked by another process)", dir.display())]
    Held {
        /// The directory whose lock is held.
        dir: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Takes the exclusive lock on `<dir>/lock` (created if missing, never truncated), held as long
/// as the returned file is open. The kernel drops the lock when the process dies, so a crash
/// never leaves a directory locked.
pub fn lock_dir(dir: &Path) -> Result<File, LockError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(FsError::at("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(FsError::at("lock", &path)(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(!dir.path().join("f.json.tmp").exists());
    }

    #[test]
    fn an_uncommitted_replacement_changes_nothing_and_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomically(&p, b"old").unwrap();
        let mut f = AtomicFile::create(&p, &tmp_path(&p)).unwrap();
        f.write_all(b"new, never committed").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn an_appending_replacement_keeps_appending_to_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let tmp = dir.path().join("log.new");
        std::fs::write(&tmp, b"stale from a crash").unwrap();
        let mut f = AtomicFile::create_appending(&p, &tmp).unwrap();
        f.write_all(b"snapshot\n").unwrap();
        let mut file = f.commit(SyncMode::Data).unwrap();
        file.write_all(b"record\n").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"snapshot\nrecord\n");
        assert!(!tmp.exists());
    }

    #[test]
    fn errors_name_the_step_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir/f");
        let e = write_atomically(&p, b"x").unwrap_err();
        assert_eq!(e.op, "create");
        assert!(e.to_string().contains("missing-dir/f.tmp"), "{e}");
    }

    #[test]
    fn a_directory_lock_is_exclusive_and_released_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        match lock_dir(dir.path()) {
            Err(LockError::Held { dir: d }) => assert_eq!(d, dir.path()),
            other => panic!("second lock: {other:?}"),
        }
        drop(held);
        lock_dir(dir.path()).unwrap();
    }

    #[test]
    fn removing_a_missing_file_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert!(!remove_if_exists(&p).unwrap());
        std::fs::write(&p, b"").unwrap();
        assert!(remove_if_exists(&p).unwrap());
    }
}
