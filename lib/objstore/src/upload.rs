//! The uploader: copies a file store's closed files to a bucket, each exactly once.
//!
//! Every `scan_every` (and sooner after a success) one task walks the store's categories in
//! order. For each closed file (every file but a category's newest; with a compressing store,
//! once its `.gz` has replaced it) that the category's upload ledger
//! ([`scribe_archive::uploads`]) does not record as done:
//!
//! 1. the object key is taken from the ledger's `plan` record, or derived (`dt`/`hour` from the
//!    ledger's `first` record, else the file's modification time) and recorded as `plan`,
//!    fsynced, before the first attempt, so every retry, also after a crash, uses one key;
//! 2. the file is streamed to that key: a file of at most one part in a single conditional
//!    PUT (`If-None-Match: *`), a larger one after a HEAD in a multipart upload of
//!    `part_size` parts with at most `parts_in_flight` in flight. A plain file is gzipped on
//!    the way (deterministically: the same file always gives the same bytes);
//! 3. an existing object of the same size counts as uploaded (a retry after a crash that
//!    came after the upload); one of another size is a conflict, reported and retried, and
//!    the file is kept;
//! 4. `done` is appended to the ledger, fsynced. Only now may retention delete the file.
//!
//! A failure ends the pass (later files wait, so uploads stay in write order) and the next
//! pass comes after a backoff with jitter, doubling from 1 s to `retry_max`. Memory is
//! bounded by about `(parts_in_flight + 2) × part_size` whatever the file sizes or backlog.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, WriteMultipart};
use scribe_archive::layout::{self, ArchiveFile};
use scribe_archive::uploads::{self, Ledger, Record};
use scribe_archive::Category;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::layout::{check_aggregator_id, object_key};
use crate::s3::S3Location;

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// How a file store's uploads go.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub location: S3Location,
    /// This aggregator's part of every object name; unique per aggregator writing the bucket.
    pub aggregator: String,
    /// Multipart part size (at least 5 MiB); files up to this size go in one PUT.
    pub part_size: usize,
    pub parts_in_flight: usize,
    /// Pause between passes when idle.
    pub scan_every: Duration,
    /// Longest pause between retries after failures.
    pub retry_max: Duration,
    /// The store gzips closed files: upload the `.gz`, never the plain file.
    pub compressed: bool,
}

impl UploadOptions {
    pub fn new(location: S3Location, aggregator: String) -> UploadOptions {
        UploadOptions {
            location,
            aggregator,
            part_size: 8 << 20,
            parts_in_flight: 2,
            scan_every: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            compressed: false,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        check_aggregator_id(&self.aggregator).map_err(Error::Config)?;
        if self.part_size < MIN_PART_SIZE {
            return Err(Error::Config(format!(
                "part size {} is below S3's minimum of 5 MiB",
                self.part_size
            )));
        }
        if self.parts_in_flight == 0 {
            return Err(Error::Config("parts in flight must be at least 1".into()));
        }
        Ok(())
    }
}

/// What the uploader has done and what waits, for `/metrics` and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStatus {
    /// Closed files not uploaded yet (including those waiting for their gzip).
    pub backlog_files: u64,
    pub backlog_bytes: u64,
    /// When the oldest of them was started (unix ms).
    pub oldest_backlog_ms: Option<i64>,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    /// Files whose object already existed (a retry after a crash).
    pub already_present: u64,
    pub failures: u64,
    /// The last failure, while failing (cleared by the next success).
    pub last_error: Option<String>,
}

impl UploadStatus {
    /// Age of the oldest file waiting, in seconds (0 when none waits).
    pub fn oldest_backlog_age(&self, now: SystemTime) -> u64 {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.oldest_backlog_ms
            .map_or(0, |t| (now_ms.saturating_sub(t) / 1000).max(0) as u64)
    }
}

/// A running uploader (one task). Stop it with [`Uploader::stop`].
pub struct Uploader {
    status: Arc<Mutex<UploadStatus>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Ctx {
    base: PathBuf,
    opts: UploadOptions,
    store: Arc<dyn ObjectStore>,
    status: Arc<Mutex<UploadStatus>>,
}

impl Uploader {
    /// Starts uploading the closed files under `base` (a file store's directory, one
    /// sub-directory per category). Needs a tokio runtime.
    pub fn start(base: PathBuf, opts: UploadOptions) -> Result<Uploader, Error> {
        let store = opts.location.build()?;
        Uploader::with_store(base, opts, store)
    }

    /// [`Uploader::start`] with a client built by the caller (credentials given explicitly,
    /// as tests do); `opts.location` then only names the bucket in messages and keys.
    pub fn with_store(
        base: PathBuf,
        opts: UploadOptions,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Uploader, Error> {
        opts.validate()?;
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::Config(format!("the uploader needs a tokio runtime: {e}")))?;
        let status = Arc::new(Mutex::new(UploadStatus::default()));
        let (stop, rx) = watch::channel(false);
        let ctx = Ctx {
            base,
            opts,
            store,
            status: status.clone(),
        };
        let task = rt.spawn(run(ctx, rx));
        Ok(Uploader {
            status,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn status(&self) -> UploadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets the upload in progress finish (at most `grace`, then abandons it: the next start
    /// uploads that file again) and stops.
    pub async fn stop(&self, grace: Duration) {
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut t) = task {
            if tokio::time::timeout(grace, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
    }
}

async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let wait = match pass(&ctx, &stop).await {
            Ok(()) => {
                failures = 0;
                ctx.opts.scan_every
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let text = e.to_string();
                tracing::warn!(store = %ctx.opts.location.url(), "upload failed (attempt {failures}; retrying with backoff): {text}");
                let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
                st.failures += 1;
                st.last_error = Some(text);
                backoff(failures, ctx.opts.retry_max)
            }
        };
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Full-jitter-ish backoff: a random wait in [d/2, d] with d doubling from 1 s to `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let exp = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let d = exp.min(max).max(Duration::from_millis(10));
    let half = d / 2;
    half + half.mul_f64(fastrand::f64())
}

/// A category's closed files not uploaded yet, as one pass found them.
struct CategoryWork {
    cat: Category,
    dir: PathBuf,
    ledger: Ledger,
    files: Vec<Waiting>,
}

struct Waiting {
    file: ArchiveFile,
    name: String,
    meta: std::fs::Metadata,
    /// Its `.gz` has replaced it, or the store does not compress.
    ready: bool,
}

/// One walk over every category: counts the backlog (published at once, so `/metrics` is
/// right during a long pass), then uploads what is ready in write order, taking each file
/// off the published backlog as it lands. The first failure stops the uploads.
async fn pass(ctx: &Ctx, stop: &watch::Receiver<bool>) -> Result<(), Error> {
    let cats = layout::list_categories(&ctx.base).map_err(|source| Error::Io {
        op: "list",
        path: ctx.base.clone(),
        source,
    })?;
    let mut work = Vec::new();
    let (mut files, mut bytes, mut oldest) = (0u64, 0u64, None::<i64>);
    for cat in cats {
        let Some(w) = scan_category(ctx, cat)? else {
            continue;
        };
        for f in &w.files {
            files += 1;
            bytes += f.meta.len();
            let started = w
                .ledger
                .first
                .get(&f.name)
                .copied()
                .unwrap_or_else(|| mtime_ms(&f.meta));
            oldest = Some(oldest.map_or(started, |o| o.min(started)));
        }
        work.push(w);
    }
    {
        let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
        st.backlog_files = files;
        st.backlog_bytes = bytes;
        st.oldest_backlog_ms = oldest;
    }
    for w in &work {
        for f in w.files.iter().filter(|f| f.ready) {
            if *stop.borrow() {
                return Ok(());
            }
            upload_file(ctx, &w.dir, &w.cat, &f.name, &f.file, &f.meta, &w.ledger).await?;
            let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
            st.backlog_files = st.backlog_files.saturating_sub(1);
            st.backlog_bytes = st.backlog_bytes.saturating_sub(f.meta.len());
            if st.backlog_files == 0 {
                // (Otherwise the oldest age stays an over-estimate until the next pass.)
                st.oldest_backlog_ms = None;
            }
            st.last_error = None;
        }
    }
    ctx.status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last_error = None;
    Ok(())
}

/// The closed files of `cat` that wait for upload, in write order; `None` when the category
/// is not this store's (no upload ledger: another store under the same directory).
fn scan_category(ctx: &Ctx, cat: Category) -> Result<Option<CategoryWork>, Error> {
    let dir = layout::category_dir(&ctx.base, &cat);
    if !uploads::ledger_path(&dir).exists() {
        return Ok(None);
    }
    let listed = layout::list_archive(&ctx.base, &cat).map_err(|source| Error::Io {
        op: "list",
        path: dir.clone(),
        source,
    })?;
    let ledger = uploads::read(&dir)?;
    let mut files = Vec::new();
    for file in listed.into_iter().filter(|f| !f.newest) {
        let name = file.key().file_name(&cat);
        if ledger.is_done(&name) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&file.path) else {
            continue; // deleted or compressed meanwhile: the next pass sees its new form
        };
        let ready = file.compressed || !ctx.opts.compressed;
        files.push(Waiting {
            file,
            name,
            meta,
            ready,
        });
    }
    Ok(Some(CategoryWork {
        cat,
        dir,
        ledger,
        files,
    }))
}

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Plans, uploads and records one file (steps 1–4 of the module docs).
async fn upload_file(
    ctx: &Ctx,
    dir: &Path,
    cat: &Category,
    name: &str,
    f: &ArchiveFile,
    meta: &std::fs::Metadata,
    ledger: &Ledger,
) -> Result<(), Error> {
    let key = match ledger.planned.get(name) {
        Some(k) => k.clone(),
        None => {
            let ms = ledger
                .first
                .get(name)
                .copied()
                .unwrap_or_else(|| mtime_ms(meta));
            let start = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
            let prefix = &ctx.opts.location.prefix;
            let key = object_key(prefix, cat, start, &ctx.opts.aggregator, name);
            let rec = Record::Plan {
                name: name.to_string(),
                key: key.clone(),
            };
            blocking(move |d| uploads::append(&d, &rec, true), dir.to_path_buf()).await??;
            key
        }
    };
    let outcome = put_file(ctx, &key, f).await?;
    let rec = Record::Done {
        name: name.to_string(),
    };
    blocking(move |d| uploads::append(&d, &rec, true), dir.to_path_buf()).await??;
    let mut st = ctx.status.lock().unwrap_or_else(PoisonError::into_inner);
    match outcome {
        Put::Uploaded(bytes) => {
            st.uploaded_files += 1;
            st.uploaded_bytes += bytes;
            tracing::debug!(%key, bytes, "uploaded");
        }
        Put::AlreadyPresent => {
            st.already_present += 1;
            tracing::info!(%key, "already uploaded (a retry after a restart)");
        }
    }
    Ok(())
}

enum Put {
    Uploaded(u64),
    AlreadyPresent,
}

type Source = Box<dyn Read + Send>;

/// The bytes an object of `f` holds: a `.gz` as it is, a plain file gzipped (no name, no
/// time in the header, so the same file always gives the same bytes).
fn open_source(f: &ArchiveFile) -> Result<Source, Error> {
    let file = std::fs::File::open(&f.path).map_err(|source| Error::Io {
        op: "open",
        path: f.path.clone(),
        source,
    })?;
    Ok(if f.compressed {
        Box::new(file)
    } else {
        Box::new(flate2::read::GzEncoder::new(
            std::io::BufReader::with_capacity(256 << 10, file),
            flate2::Compression::new(6),
        ))
    })
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static, A: Send + 'static>(
    f: impl FnOnce(A) -> T + Send + 'static,
    arg: A,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || f(arg))
        .await
        .map_err(|e| Error::Config(format!("upload worker failed: {e}")))
}

/// Reads up to `n` bytes; `eof` when the source ended within them.
async fn read_part(
    mut src: Source,
    n: usize,
    path: PathBuf,
) -> Result<(Source, Vec<u8>, bool), Error> {
    blocking(
        move |()| {
            let mut buf = Vec::with_capacity(n);
            let got = (&mut src)
                .take(n as u64)
                .read_to_end(&mut buf)
                .map_err(|source| Error::Io {
                    op: "read",
                    path: path.clone(),
                    source,
                })?;
            let eof = if got < n {
                true
            } else {
                // Exactly n: peek one byte to tell a full last part from more to come.
                let mut one = [0u8; 1];
                match src.read(&mut one).map_err(|source| Error::Io {
                    op: "read",
                    path,
                    source,
                })? {
                    0 => true,
                    _ => {
                        buf.push(one[0]);
                        false
                    }
                }
            };
            Ok((src, buf, eof))
        },
        (),
    )
    .await?
}

/// Total length of what `src` still gives (to compare with an existing object).
async fn remaining_len(src: Source, path: PathBuf) -> Result<u64, Error> {
    blocking(
        move |()| {
            let mut src = src;
            std::io::copy(&mut src, &mut std::io::sink()).map_err(|source| Error::Io {
                op: "read",
                path,
                source,
            })
        },
        (),
    )
    .await?
}

async fn put_file(ctx: &Ctx, key: &str, f: &ArchiveFile) -> Result<Put, Error> {
    let path =
        ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key {key:?}: {e}")))?;
    let store = &ctx.store;
    let part = ctx.opts.part_size;
    let src = open_source(f)?;
    let (src, first, eof) = read_part(src, part, f.path.clone()).await?;
    if eof {
        let len = first.len() as u64;
        let opts = PutOptions::from(PutMode::Create);
        return match store.put_opts(&path, Bytes::from(first).into(), opts).await {
            Ok(_) => Ok(Put::Uploaded(len)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                verify_existing(ctx, key, &path, len).await
            }
            Err(e) => Err(Error::store("put", key, &e)),
        };
    }
    // Several parts: multipart uploads cannot be conditional everywhere, so look first. One
    // uploader per aggregator id writes these keys, so nothing else creates it meanwhile.
    match store.head(&path).await {
        Ok(_) => {
            let len = first.len() as u64 + remaining_len(src, f.path.clone()).await?;
            return verify_existing(ctx, key, &path, len).await;
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::store("head", key, &e)),
    }
    let upload = store
        .put_multipart(&path)
        .await
        .map_err(|e| Error::store("start multipart upload of", key, &e))?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, part);
    let mut total = first.len() as u64;
    w.put(Bytes::from(first));
    let mut src = src;
    let result: Result<(), Error> = async {
        loop {
            w.wait_for_capacity(ctx.opts.parts_in_flight)
                .await
                .map_err(|e| Error::store("upload part of", key, &e))?;
            let (s, chunk, eof) = read_part(src, part, f.path.clone()).await?;
            src = s;
            total += chunk.len() as u64;
            w.put(Bytes::from(chunk));
            if eof {
                return Ok(());
            }
        }
    }
    .await;
    match result {
        Ok(()) => {
            w.finish()
                .await
                .map_err(|e| Error::store("complete multipart upload of", key, &e))?;
            Ok(Put::Uploaded(total))
        }
        Err(e) => {
            if let Err(abort) = w.abort().await {
                tracing::debug!(%key, "aborting the multipart upload: {abort}");
            }
            Err(e)
        }
    }
}

/// An object exists at `key`: the same file uploaded before if the sizes agree.
async fn verify_existing(
    ctx: &Ctx,
    key: &str,
    path: &ObjectPath,
    local: u64,
) -> Result<Put, Error> {
    let meta = ctx
        .store
        .head(path)
        .await
        .map_err(|e| Error::store("head", key, &e))?;
    if meta.size == local {
        Ok(Put::AlreadyPresent)
    } else {
        Err(Error::Conflict {
            key: key.to_string(),
            existing: meta.size,
            local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let max = Duration::from_secs(30);
        for (n, hi) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (40, 30.0)] {
            for _ in 0..20 {
                let d = backoff(n, max).as_secs_f64();
                assert!(d >= hi / 2.0 && d <= hi, "{n}: {d}");
            }
        }
    }

    #[test]
    fn options_are_checked() {
        let loc = S3Location::from_url("s3://logs/p").unwrap();
        assert!(UploadOptions::new(loc.clone(), "agg-1".into())
            .validate()
            .is_ok());
        let mut o = UploadOptions::new(loc, "a/b".into());
        assert!(o.validate().is_err());
        o.aggregator = "a".into();
        o.part_size = 1 << 20;
        assert!(o.validate().unwrap_err().to_string().contains("5 MiB"));
    }
}
