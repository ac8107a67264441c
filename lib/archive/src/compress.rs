//! Background gzip of rotated files.
//!
//! A [`Compressor`] is a handle to one worker thread and a bounded queue of plain files to
//! compress; clones share both, so any number of writers (categories) can share one thread.
//! Queuing never blocks: when the queue is full the request is dropped and counted, and the
//! file is picked up again by the writer's next maintenance pass (at its next rotation or open).
//!
//! Compressing `<name>`:
//!
//! 1. write `<name>.gz.tmp`, give it `<name>`'s mtime (retention by age must not restart the
//!    clock) and fsync it;
//! 2. `rename` it to `<name>.gz` and fsync the directory;
//! 3. remove `<name>`.
//!
//! A crash at any point leaves `<name>` (maybe with a stale `.gz.tmp`), or `<name>` and a
//! complete `<name>.gz`, or only `<name>.gz`: never neither. Recovery (run by `RotatingWriter::open`) resolves the
//! intermediate states when a writer opens. A `.gz` exists only after its bytes were fsynced,
//! so its existence means it is complete; as a cheap cross-check, recovery also compares the
//! gzip trailer's length field (ISIZE, the uncompressed length mod 2^32) with the plain file's
//! length before deleting the plain file, and trusts the plain file when they differ.
//!
//! The compressor checks that `<name>` still exists and renames under its state lock;
//! recovery and retention act on a file only under the same lock, and recovery (and
//! retention, for temporaries) only if the compressor is not working on that file. So they
//! never delete a temporary that is being written, never see a half-committed file as a crash
//! leftover, and a file deleted by retention while it was being compressed is not resurrected
//! as a `.gz`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use scribe_fs::{remove_if_exists, sync_dir, AtomicFile, SyncMode};

use crate::error::{io_err, WriteError};
use crate::layout::{self, FileKey, Slot};

/// Queue length of [`Compressor::global`].
pub const DEFAULT_QUEUE: usize = 4096;

/// What a [`Compressor`] did so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompressorStats {
    /// Files replaced by their `.gz`.
    pub compressed: u64,
    /// Files that vanished before or during compression (e.g. deleted by retention).
    pub skipped: u64,
    /// Compressions that failed (logged; the plain file stays and is retried later).
    pub failed: u64,
    /// Requests refused because the queue was full (retried at the next maintenance pass).
    pub dropped: u64,
}

/// What [`Compressor::submit`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    Queued,
    /// Already queued or being compressed.
    AlreadyPending,
    QueueFull,
}

/// Handle to a background gzip worker. Cheap to clone; the worker thread starts with the first
/// request and ends (after draining its queue) once every handle is dropped.
#[derive(Clone)]
pub struct Compressor {
    handle: Arc<Handle>,
}

/// Dropped with the last `Compressor` clone; tells the worker to finish and exit.
struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when work is queued or shutdown begins.
    work: Condvar,
    /// Signalled when the queue empties and nothing is in progress.
    idle: Condvar,
    capacity: usize,
    level: flate2::Compression,
}

#[derive(Default)]
struct State {
    queue: VecDeque<PathBuf>,
    /// Queued or being compressed.
    pending: HashSet<PathBuf>,
    busy: bool,
    worker_running: bool,
    shutdown: bool,
    stats: CompressorStats,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.handle.inner.lock();
        f.debug_struct("Compressor")
            .field("capacity", &self.handle.inner.capacity)
            .field("queued", &st.queue.len())
            .field("busy", &st.busy)
            .field("stats", &st.stats)
            .finish()
    }
}

impl Default for Compressor {
    /// The process-wide shared compressor.
    fn default() -> Self {
        Compressor::global()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.lock().shutdown = true;
        self.inner.work.notify_all();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Compressor {
    /// A compressor with its own worker thread (started lazily) and a queue of at most
    /// `capacity` files (at least 1), at gzip level 6.
    pub fn new(capacity: usize) -> Compressor {
        Compressor::with_level(capacity, 6)
    }

    /// As [`Compressor::new`] with a gzip level (0–9; clamped).
    pub fn with_level(capacity: usize, level: u32) -> Compressor {
        Compressor {
            handle: Arc::new(Handle {
                inner: Arc::new(Inner {
                    state: Mutex::new(State::default()),
                    work: Condvar::new(),
                    idle: Condvar::new(),
                    capacity: capacity.max(1),
                    level: flate2::Compression::new(level.min(9)),
                }),
            }),
        }
    }

    /// The process-wide compressor (one thread for every writer that uses it), created on
    /// first use; its thread starts with the first request.
    pub fn global() -> Compressor {
        static GLOBAL: OnceLock<Compressor> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Compressor::new(DEFAULT_QUEUE))
            .clone()
    }

    /// Queues a closed plain archive file for compression. Never blocks on I/O.
    pub fn submit(&self, path: PathBuf) -> Submit {
        let inner = &self.handle.inner;
        let mut st = inner.lock();
        if st.pending.contains(&path) {
            return Submit::AlreadyPending;
        }
        if st.queue.len() >= inner.capacity {
            st.stats.dropped += 1;
            return Submit::QueueFull;
        }
        st.pending.insert(path.clone());
        st.queue.push_back(path);
        self.ensure_worker(&mut st);
        inner.work.notify_one();
        Submit::Queued
    }

    /// Blocks until the queue is empty and no compression is in progress.
    pub fn wait_idle(&self) {
        let inner = &self.handle.inner;
        let mut st = inner.lock();
        while !st.queue.is_empty() || st.busy {
            if !st.worker_running && !self.ensure_worker(&mut st) {
                // No thread can be started: waiting would never end.
                return;
            }
            st = inner.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Files queued or being compressed.
    pub fn pending(&self) -> usize {
        self.handle.inner.lock().pending.len()
    }

    pub fn stats(&self) -> CompressorStats {
        self.handle.inner.lock().stats
    }

    /// Holds the state lock; see the module docs for why recovery and retention need it.
    pub(crate) fn lock(&self) -> Locked<'_> {
        Locked(self.handle.inner.lock())
    }

    fn ensure_worker(&self, st: &mut State) -> bool {
        if st.worker_running {
            return true;
        }
        let inner = self.handle.inner.clone();
        match std::thread::Builder::new()
            .name("scribe-gzip".into())
            .spawn(move || run_worker(inner))
        {
            Ok(_) => {
                st.worker_running = true;
                true
            }
            Err(e) => {
                tracing::error!("cannot start the compression thread: {e}");
                false
            }
        }
    }
}

/// The compressor's state, locked.
pub(crate) struct Locked<'a>(MutexGuard<'a, State>);

impl Locked<'_> {
    /// Whether `plain` is queued or being compressed.
    pub fn is_pending(&self, plain: &Path) -> bool {
        self.0.pending.contains(plain)
    }
}

fn run_worker(inner: Arc<Inner>) {
    let mut st = inner.lock();
    loop {
        if let Some(path) = st.queue.pop_front() {
            st.busy = true;
            drop(st);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                compress_file(&inner, &path)
            }));
            let outcome = match result {
                Ok(Ok(o)) => Some(o),
                Ok(Err(e)) => {
                    tracing::warn!("compressing {}: {e}", path.display());
                    None
                }
                Err(_) => {
                    tracing::error!("compressing {} panicked", path.display());
                    None
                }
            };
            st = inner.lock();
            match outcome {
                Some(Outcome::Compressed) => st.stats.compressed += 1,
                Some(Outcome::Skipped) => st.stats.skipped += 1,
                None => st.stats.failed += 1,
            }
            st.pending.remove(&path);
            st.busy = false;
            if st.queue.is_empty() {
                inner.idle.notify_all();
            }
            continue;
        }
        if st.shutdown {
            st.worker_running = false;
            inner.idle.notify_all();
            return;
        }
        st = inner.work.wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Compressed,
    Skipped,
}

fn compress_file(inner: &Inner, src: &Path) -> Result<Outcome, WriteError> {
    let tmp = layout::gz_tmp_path(src);
    let input = match File::open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Skipped),
        Err(e) => return Err(io_err("open", src)(e)),
    };
    let meta = input.metadata().map_err(io_err("stat", src))?;
    let gz = layout::gz_path(src);
    // Dropped on any error below, the replacement removes its temporary file.
    let mut out = AtomicFile::create(&gz, &tmp)?;
    write_gz(inner, src, input, &mut out, &meta)?;
    out.sync(SyncMode::All)?;
    // The rename happens under the lock: retention (and recovery) may not delete `src`
    // between our check and the rename, or the .gz would bring a deleted file back. Only the
    // check and the rename: the fsyncs and the removal need no exclusion (a removal racing
    // retention's finds the file gone, which is fine), and writers queueing work must not
    // wait for an fsync.
    {
        let _st = inner.lock();
        match std::fs::symlink_metadata(src) {
            Ok(m) if m.len() == meta.len() => {
                out.commit(SyncMode::Nothing)?;
            }
            // A closed file never changes; if this one did, someone still writes it.
            Ok(_) => {
                return Err(WriteError::Io {
                    op: "compress (file changed while compressing)",
                    path: src.to_path_buf(),
                    source: io::Error::other("size changed"),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Skipped),
            Err(e) => return Err(io_err("stat", src)(e)),
        }
    }
    // The .gz must be durable under its final name before the original goes.
    if let Some(dir) = src.parent() {
        sync_dir(dir)?;
    }
    remove_if_exists(src)?;
    Ok(Outcome::Compressed)
}

/// Streams `src` gzipped into `out`, with the original's name and mtime in the gzip header
/// and on the file.
fn write_gz(
    inner: &Inner,
    src: &Path,
    input: File,
    out: &mut AtomicFile,
    meta: &std::fs::Metadata,
) -> Result<(), WriteError> {
    let tmp = &out.tmp_path().to_path_buf();
    let mtime = meta.modified().ok();
    let header_mtime = mtime
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(0);
    let name = src
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    let mut enc = flate2::GzBuilder::new()
        .filename(name)
        .mtime(header_mtime)
        .write(
            BufWriter::with_capacity(256 * 1024, out.file()),
            inner.level,
        );
    let copied = io::copy(&mut BufReader::with_capacity(256 * 1024, input), &mut enc)
        .map_err(io_err("compress", src))?;
    if copied != meta.len() {
        return Err(WriteError::Io {
            op: "compress (file changed while compressing)",
            path: src.to_path_buf(),
            source: io::Error::other(format!("read {copied} of {} bytes", meta.len())),
        });
    }
    let mut buffered = enc.finish().map_err(io_err("write", tmp))?;
    buffered.flush().map_err(io_err("write", tmp))?;
    let out = buffered
        .into_inner()
        .map_err(|e| io_err("write", tmp)(e.into_error()))?;
    if let Some(t) = mtime {
        out.set_modified(t).map_err(io_err("set mtime", tmp))?;
    }
    Ok(())
}

/// Whether `gz` looks like a complete gzip of `plain_len` bytes: the magic number, and a
/// trailer whose ISIZE equals `plain_len` mod 2^32.
pub(crate) fn gz_matches_len(gz: &Path, plain_len: u64) -> io::Result<bool> {
    let mut f = File::open(gz)?;
    let len = f.metadata()?.len();
    // 10-byte header, at least 2 bytes of deflate data, 8-byte trailer.
    if len < 20 {
        return Ok(false);
    }
    let mut magic = [0u8; 2];
    f.read_exact(&mut magic)?;
    let mut isize = [0u8; 4];
    f.seek(SeekFrom::End(-4))?;
    f.read_exact(&mut isize)?;
    Ok(magic == [0x1f, 0x8b] && u64::from(u32::from_le_bytes(isize)) == plain_len & 0xffff_ffff)
}

/// Resolves what a crash mid-compression leaves behind, for every key not pending in
/// `compressor`, updating `slots` to match the directory:
///
/// - a `.gz.tmp` is deleted (the compression is redone from the plain file);
/// - plain + `.gz`: the plain file is deleted if the `.gz` matches its length (the crash came
///   between the rename and the removal); otherwise the `.gz` is deleted and the plain file,
///   the source of truth until the commit, stays.
pub(crate) fn recover(
    compressor: &Compressor,
    slots: &mut BTreeMap<FileKey, Slot>,
) -> Result<(), WriteError> {
    for slot in slots.values_mut() {
        if slot.tmp.is_none() && !(slot.plain.is_some() && slot.gz.is_some()) {
            continue;
        }
        let locked = compressor.lock();
        if slot.plain.as_deref().is_some_and(|p| locked.is_pending(p)) {
            continue;
        }
        if let Some(tmp) = slot.tmp.take() {
            tracing::info!("removing unfinished compression {}", tmp.display());
            remove_if_exists(&tmp)?;
        }
        if let (Some(plain), Some(gz)) = (slot.plain.clone(), slot.gz.clone()) {
            let plain_len = match std::fs::metadata(&plain) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    slot.plain = None;
                    continue;
                }
                Err(e) => return Err(io_err("stat", &plain)(e)),
            };
            if gz_matches_len(&gz, plain_len).map_err(io_err("read", &gz))? {
                tracing::info!("finishing compression of {}", plain.display());
                remove_if_exists(&plain)?;
                slot.plain = None;
            } else {
                tracing::warn!(
                    "{} does not match {}; keeping the plain file",
                    gz.display(),
                    plain.display()
                );
                remove_if_exists(&gz)?;
                slot.gz = None;
            }
        }
    }
    slots.retain(|_, s| s.is_file() || s.tmp.is_some());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Category;
    use std::io::Read;

    fn gunzip(p: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(p).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn compresses_replaces_and_keeps_mtime() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("c_00000");
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        std::fs::write(&src, &data).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let c = Compressor::new(8);
        assert_eq!(c.submit(src.clone()), Submit::Queued);
        c.wait_idle();
        assert_eq!(names(d.path()), ["c_00000.gz"]);
        let gz = d.path().join("c_00000.gz");
        assert_eq!(gunzip(&gz), data);
        assert_eq!(std::fs::metadata(&gz).unwrap().modified().unwrap(), old);
        assert!(gz_matches_len(&gz, data.len() as u64).unwrap());
        assert!(!gz_matches_len(&gz, data.len() as u64 + 1).unwrap());
        assert_eq!(c.stats().compressed, 1);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn missing_source_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let c = Compressor::new(4);
        assert_eq!(c.submit(d.path().join("gone_00000")), Submit::Queued);
        c.wait_idle();
        assert_eq!(
            c.stats(),
            CompressorStats {
                skipped: 1,
                ..CompressorStats::default()
            }
        );
        assert!(names(d.path()).is_empty());
    }

    #[test]
    fn queue_is_bounded_deduplicated_and_never_blocks() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("x_00000"), d.path().join("x_00001"));
        std::fs::write(&a, b"a\n").unwrap();
        std::fs::write(&b, b"b\n").unwrap();
        let c = Compressor::new(1);
        // Pretend a worker runs, so that nothing drains the queue while we fill it.
        c.handle.inner.lock().worker_running = true;
        assert_eq!(c.submit(a.clone()), Submit::Queued);
        assert_eq!(c.submit(a.clone()), Submit::AlreadyPending);
        assert_eq!(c.submit(b.clone()), Submit::QueueFull);
        assert_eq!(c.stats().dropped, 1);
        assert_eq!(c.pending(), 1);
        // Now let a real worker drain it.
        c.handle.inner.lock().worker_running = false;
        c.wait_idle();
        assert_eq!(names(d.path()), ["x_00000.gz", "x_00001"]);
        assert_eq!(c.submit(b), Submit::Queued);
        c.wait_idle();
        assert_eq!(names(d.path()), ["x_00000.gz", "x_00001.gz"]);
    }

    #[test]
    fn recovery_resolves_every_crash_state() {
        let d = tempfile::tempdir().unwrap();
        let cat: Category = "r".parse().unwrap();
        let dir = d.path().join("r");
        std::fs::create_dir(&dir).unwrap();
        let w = |n: &str, data: &[u8]| std::fs::write(dir.join(n), data).unwrap();
        // 0: crashed while writing the tmp: plain + partial tmp.
        w("r_00000", b"zero\n");
        w("r_00000.gz.tmp", &gzip(b"ze")[..8]);
        // 1: crashed after the rename, before removing the plain file.
        w("r_00001", b"one\n");
        w("r_00001.gz", &gzip(b"one\n"));
        // 2: done.
        w("r_00002.gz", &gzip(b"two\n"));
        // 3: a .gz that does not match its plain file: the plain file wins.
        w("r_00003", b"three\n");
        w("r_00003.gz", &gzip(b"something else\n"));
        // 4: a truncated .gz (not even a trailer).
        w("r_00004", b"four\n");
        w("r_00004.gz", &gzip(b"four\n")[..12]);
        // 5: a stray tmp with no plain file at all.
        w("r_00005.gz.tmp", b"junk");
        let c = Compressor::new(8);
        let mut slots = layout::scan_dir(&dir, &cat).unwrap();
        recover(&c, &mut slots).unwrap();
        assert_eq!(slots, layout::scan_dir(&dir, &cat).unwrap());
        assert_eq!(
            names(&dir),
            ["r_00000", "r_00001.gz", "r_00002.gz", "r_00003", "r_00004"]
        );
        assert_eq!(gunzip(&dir.join("r_00001.gz")), b"one\n");
        // Never neither: every key still has its data.
        let mut all = Vec::new();
        for f in layout::list_archive(d.path(), &cat).unwrap() {
            f.open().unwrap().read_to_end(&mut all).unwrap();
        }
        assert_eq!(all, b"zero\none\ntwo\nthree\nfour\n");
    }

    #[test]
    fn recovery_leaves_pending_files_alone() {
        let d = tempfile::tempdir().unwrap();
        let cat: Category = "p".parse().unwrap();
        let dir = d.path().join("p");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("p_00000"), b"x\n").unwrap();
        std::fs::write(dir.join("p_00000.gz.tmp"), b"in progress").unwrap();
        let c = Compressor::new(8);
        c.handle.inner.lock().pending.insert(dir.join("p_00000"));
        let mut slots = layout::scan_dir(&dir, &cat).unwrap();
        recover(&c, &mut slots).unwrap();
        assert_eq!(names(&dir), ["p_00000", "p_00000.gz.tmp"]);
    }

    #[test]
    fn dropping_the_last_handle_stops_the_worker_after_draining() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("q_00000");
        std::fs::write(&src, b"bye\n").unwrap();
        let c = Compressor::new(8);
        let inner = c.handle.inner.clone();
        c.submit(src);
        drop(c);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while inner.lock().worker_running || !inner.lock().queue.is_empty() {
            assert!(std::time::Instant::now() < deadline, "worker did not stop");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(names(d.path()), ["q_00000.gz"]);
    }
}
