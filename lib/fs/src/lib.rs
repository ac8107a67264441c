//! Crash-safe file-system steps, written once for the whole pipeline.
//!
//! "No half writes" is the project's promise: a small file that must always read as either its
//! old or its new contents (scribed's ready file, ship's producer id, the spool cursor, the
//! follower's positions, a category's commit-log snapshot) is replaced through a temporary
//! file: write, fsync, rename over the old one, then fsync the directory so the rename itself
//! survives a power loss. [`AtomicFile`] is that sequence; [`write_atomically`] is it for a
//! buffer in one call. [`sync_dir`], [`remove_if_exists`] and [`lock_dir`] are the other
//! steps every store of files needs; [`lock_dir_with_pid`] is the lock that also says who
//! holds it.
//!
//! The crate depends on nothing of the workspace and holds no `unsafe`, so every library may
//! use it. Errors name the step and the path ([`FsError`]); callers fold them into their own
//! error types.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
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

/// Whether `e` says the disk is full: `ENOSPC` or `EDQUOT` (a quota is a full disk to the
/// writer). Callers treat it as "wait and try again", unlike other write errors.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
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

/// Why [`lock_dir`] (or [`lock_dir_with_pid`]) did not get its lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another open file description holds the lock: another process (or another user in
    /// this one) owns the directory.
    #[error("{} is in use (locked by another process)", dir.display())]
    Held {
        /// The directory whose lock is held.
        dir: PathBuf,
    },
    /// As `Held`, from [`lock_dir_with_pid`]: with the holder's pid as its lock file records
    /// it (`None` while the holder has not written it yet, or for a holder that locked
    /// through [`lock_dir`], which records nothing).
    #[error("{} is in use by {}", dir.display(), holder(*pid))]
    HeldBy {
        /// The directory whose lock is held.
        dir: PathBuf,
        /// The holder's process id.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error(transparent)]
    Fs(#[from] FsError),
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process (its pid is not recorded)".into(),
    }
}

/// Takes the exclusive lock on `<dir>/lock` (created if missing, never truncated), held as long
/// as the returned file is open. The kernel drops the lock when the process dies, so a crash
/// never leaves a directory locked.
pub fn lock_dir(dir: &Path) -> Result<File, LockError> {
    let path = dir.join("lock");
    let file = open_lock_file(&path)?;
    match try_lock_settled(&file) {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(FsError::at("lock", &path)(e).into()),
    }
}

/// `try_lock`, asked again a few times over about 100 ms before "held" is believed. An flock
/// belongs to the open file description, and a child process this one is spawning holds a
/// copy of every descriptor from its fork until its exec closes them: for that instant a lock
/// just released (a spool closed and reopened) still looks held. A real holder keeps it far
/// longer than this.
fn try_lock_settled(file: &File) -> Result<(), TryLockError> {
    for _ in 0..10 {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            done => return done,
        }
    }
    file.try_lock()
}

fn open_lock_file(path: &Path) -> Result<File, FsError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(FsError::at("open lock file", path))
}

/// A directory lock taken by [`lock_dir_with_pid`]; released when dropped (the file closes).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// As [`lock_dir`] (the same `<dir>/lock`, so the two exclude each other), and the holder
/// writes its pid into the lock file, so that a process refused the lock can say who has it
/// ([`LockError::HeldBy`]).
pub fn lock_dir_with_pid(dir: &Path) -> Result<DirLock, LockError> {
    lock_dir_with_pid_in(dir, "lock")
}

/// As [`lock_dir_with_pid`], with the lock file `<dir>/<file_name>`: for a directory whose
/// other entries' names could collide with `lock`.
pub fn lock_dir_with_pid_in(dir: &Path, file_name: &str) -> Result<DirLock, LockError> {
    let path = dir.join(file_name);
    let mut file = open_lock_file(&path)?;
    match try_lock_settled(&file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::HeldBy {
                dir: dir.to_path_buf(),
                pid: recorded_pid(&mut file),
            })
        }
        Err(TryLockError::Error(e)) => return Err(FsError::at("lock", &path)(e).into()),
    }
    // Only the holder rewrites the file, so a refused process never wipes the holder's pid.
    // Not fsynced: the pid is for messages, and a crash releases the lock anyway.
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(FsError::at("write pid to", &path))?;
    Ok(DirLock { _file: file, path })
}

/// The pid a lock file records, if it holds one.
fn recorded_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
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
    fn a_pid_lock_records_the_holder_and_reports_it_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir_with_pid(dir.path()).unwrap();
        let me = std::process::id();
        let recorded = std::fs::read_to_string(held.path()).unwrap();
        assert_eq!(recorded.trim(), me.to_string());
        match lock_dir_with_pid(dir.path()) {
            Err(e @ LockError::HeldBy { .. }) => {
                let shown = e.to_string();
                assert!(
                    shown.contains(&format!("process {me}")) && shown.contains("in use"),
                    "{shown}"
                );
                assert!(matches!(e, LockError::HeldBy { pid: Some(p), .. } if p == me));
            }
            other => panic!("second lock: {other:?}"),
        }
        // The same file as lock_dir's: the two exclude each other.
        assert!(matches!(lock_dir(dir.path()), Err(LockError::Held { .. })));
        drop(held);
        let plain = lock_dir(dir.path()).unwrap();
        match lock_dir_with_pid(dir.path()) {
            Err(LockError::HeldBy { .. }) => {}
            other => panic!("under lock_dir's lock: {other:?}"),
        }
        drop(plain);
        // A stale pid left by a crashed holder is simply overwritten.
        std::fs::write(dir.path().join("lock"), "999999999\n").unwrap();
        let again = lock_dir_with_pid(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            me.to_string()
        );
    }

    #[test]
    fn a_named_pid_lock_uses_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let named = lock_dir_with_pid_in(dir.path(), ".x+lock").unwrap();
        assert_eq!(named.path(), dir.path().join(".x+lock"));
        // A different file: `lock` is still free.
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
