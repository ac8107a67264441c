//! Reading the object archive back (logq's `--archive s3://bucket/prefix`), with a blocking
//! API over a small runtime of its own, so a reader need not be async.
//!
//! - **Listing by partition.** A category's `dt=` directories are listed first (one LIST
//!   with a delimiter); only the days a time window can touch are then listed in full.
//! - **Pruning before fetching.** [`prune`] drops the objects whose lines cannot fall in the
//!   window, judged by their keys alone: an object's lines arrived from its partition hour
//!   until the next object of the same aggregator began, so before the end of that object's
//!   partition hour.
//! - **Fetching.** A [`Fetcher`] streams objects in the reader's order, the next few started
//!   while one is read, each with a bounded read-ahead: memory stays at most
//!   `(ahead + 1) × READ_AHEAD_CHUNKS` body chunks whatever the object sizes.
//! - **Counting.** [`Stats`]: listings, GETs and bytes, so a test (or a curious user) sees
//!   what pruning saved.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes};
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use scribe_archive::Category;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::layout::{parse_key, partition_prefix, ObjectName};
use crate::s3::S3Location;

/// Body chunks buffered per object being fetched (a chunk is what one socket read gave the
/// HTTP client: at most a few hundred KiB, usually 16–64 KiB).
pub const READ_AHEAD_CHUNKS: usize = 8;

/// How long after its first line an object may still hold lines, for choosing which days to
/// list: scribed rotates at least daily unless told to rotate by size only.
const DAY: i64 = 86_400;

/// Requests made, for `--archive-stats` and the pruning tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub listings: AtomicU64,
    pub gets: AtomicU64,
    pub bytes: AtomicU64,
}

impl Stats {
    /// `(listings, GETs, bytes fetched)`.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.listings.load(Ordering::Relaxed),
            self.gets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// One object of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: ObjectName,
    pub key: String,
    pub size: u64,
}

/// Seconds since the epoch, `[since, until)`, either side open; `slack`: how far a line's
/// own time may be from when it arrived (and lines from each other's order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub slack: i64,
}

/// A bucket being read: the client, the runtime its requests run on, and the counters.
pub struct Bucket {
    rt: Runtime,
    store: Arc<dyn ObjectStore>,
    location: S3Location,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("location", &self.location.url())
            .finish()
    }
}

impl Bucket {
    /// A client for `location` (nothing is requested yet).
    pub fn connect(location: &S3Location) -> Result<Bucket, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-fetch")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                op: "starting the runtime for",
                path: location.url().into(),
                source,
            })?;
        Ok(Bucket {
            rt,
            store: location.build()?,
            location: location.clone(),
            stats: Arc::default(),
        })
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The names of the directories right under `dir` (one LIST with a delimiter).
    fn dirs(&self, dir: &str) -> Result<Vec<String>, Error> {
        self.stats.listings.fetch_add(1, Ordering::Relaxed);
        let p = (!dir.is_empty()).then(|| ObjectPath::from(dir));
        let res = self
            .rt
            .block_on(self.store.list_with_delimiter(p.as_ref()))
            .map_err(|e| Error::store("listing", &self.shown(dir), &e))?;
        Ok(res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect())
    }

    fn shown(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.location.bucket)
    }

    /// The categories under the prefix, sorted.
    pub fn categories(&self) -> Result<Vec<Category>, Error> {
        let mut cats: Vec<Category> = self
            .dirs(&self.location.prefix)?
            .iter()
            .filter_map(|d| Category::new(d.strip_prefix("category=")?.as_bytes()).ok())
            .collect();
        cats.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(cats)
    }

    /// A category's objects that may hold lines in `window`, in reading order: by aggregator
    /// id, then write order. Listed by day, only the days the window can touch.
    pub fn list(&self, category: &Category, window: &Window) -> Result<Vec<Listed>, Error> {
        let prefix = &self.location.prefix;
        let mut days: Vec<NaiveDate> = self
            .dirs(&partition_prefix(prefix, category, None, None))?
            .iter()
            .filter_map(|d| NaiveDate::parse_from_str(d.strip_prefix("dt=")?, "%Y-%m-%d").ok())
            .collect();
        days.sort();
        let mut out = Vec::new();
        for day in days_to_list(&days, window) {
            self.stats.listings.fetch_add(1, Ordering::Relaxed);
            let dir = partition_prefix(prefix, category, Some(day), None);
            let metas: Vec<object_store::ObjectMeta> = self
                .rt
                .block_on(
                    self.store
                        .list(Some(&ObjectPath::from(dir.as_str())))
                        .try_collect(),
                )
                .map_err(|e| Error::store("listing", &self.shown(&dir), &e))?;
            for m in metas {
                let key = m.location.to_string();
                match parse_key(prefix, &key) {
                    Some(name) if &name.category == category => out.push(Listed {
                        name,
                        key,
                        size: m.size,
                    }),
                    _ => tracing::debug!(%key, "not an archive object; skipped"),
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.name.aggregator, a.name.file).cmp(&(&b.name.aggregator, b.name.file))
        });
        prune(&mut out, window);
        Ok(out)
    }

    /// A fetcher for `objects`, read in this order, starting up to `ahead` objects beyond
    /// the one being read.
    pub fn fetcher(self: &Arc<Self>, objects: &[Listed], ahead: usize) -> Fetcher {
        Fetcher {
            bucket: self.clone(),
            objects: objects.iter().map(|o| (o.key.clone(), o.size)).collect(),
            slots: Mutex::new(objects.iter().map(|_| Slot::Waiting).collect()),
            ahead,
        }
    }
}

/// The days whose objects are listed: those from a day before the window's start (an object
/// started then may reach into it) to its end, plus the last day before those (the
/// predecessor of a quiet category's first object in the window). All days without a
/// window.
fn days_to_list(days: &[NaiveDate], w: &Window) -> Vec<NaiveDate> {
    let date = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.date_naive());
    let lo = w.since.and_then(|s| date(s.saturating_sub(w.slack + DAY)));
    let hi = w.until.and_then(|u| date(u.saturating_add(w.slack)));
    let first_in = days.partition_point(|d| lo.is_some_and(|lo| *d < lo));
    let from = first_in.saturating_sub(1);
    days[from..]
        .iter()
        .copied()
        .filter(|d| hi.is_none_or(|hi| *d <= hi))
        .collect()
}

/// Drops the objects that cannot hold a line in `w`, from their keys alone. `objects` is in
/// reading order (by aggregator, then write order). An object starts at its partition hour;
/// it ends before the end of the next object's partition hour (the next file's first line
/// came after this file's last), or is open-ended if it is its aggregator's newest. `slack`
/// widens both ends, as logq's own file skipping does.
pub fn prune(objects: &mut Vec<Listed>, w: &Window) {
    let starts: Vec<i64> = objects
        .iter()
        .map(|o| o.name.partition_start().timestamp())
        .collect();
    let mut keep = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        let next_start = objects
            .get(i + 1)
            .filter(|n| n.name.aggregator == o.name.aggregator)
            .map(|_| starts[i + 1]);
        let starts_too_late = w
            .until
            .is_some_and(|u| starts[i] >= u.saturating_add(w.slack));
        let ends_too_early = match (w.since, next_start) {
            (Some(s), Some(n)) => n.saturating_add(3600 + w.slack) <= s,
            _ => false,
        };
        keep.push(!starts_too_late && !ends_too_early);
    }
    let mut k = keep.into_iter();
    objects.retain(|_| k.next().unwrap_or(true));
}

/// An object's body chunks, or why fetching it failed.
type Chunk = Result<Bytes, String>;

enum Slot {
    Waiting,
    Started(mpsc::Receiver<Chunk>),
    Taken,
}

/// Fetches a list of objects in parallel, in the order they are opened.
pub struct Fetcher {
    bucket: Arc<Bucket>,
    objects: Vec<(String, u64)>,
    slots: Mutex<Vec<Slot>>,
    ahead: usize,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("bucket", &self.bucket)
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl Fetcher {
    /// Object `i`'s bytes as they arrive (fetched again if it was opened before); starts the
    /// next `ahead` objects' fetches too. Reads block: call it off the fetch runtime.
    pub fn open(&self, i: usize) -> ObjectReader {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let end = (i + 1 + self.ahead).min(slots.len());
        for j in i..end {
            if matches!(slots[j], Slot::Waiting) {
                slots[j] = Slot::Started(self.start(j));
            }
        }
        let rx = match std::mem::replace(&mut slots[i], Slot::Taken) {
            Slot::Started(rx) => rx,
            Slot::Waiting | Slot::Taken => self.start(i),
        };
        ObjectReader {
            rx,
            chunk: Bytes::new(),
            ended: false,
        }
    }

    fn start(&self, i: usize) -> mpsc::Receiver<Chunk> {
        let (tx, rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        let (key, size) = self.objects[i].clone();
        let shown = self.bucket.shown(&key);
        let store = self.bucket.store.clone();
        let stats = self.bucket.stats.clone();
        self.bucket.rt.spawn(async move {
            if let Err(why) = fetch(store, &key, size, &tx, &stats).await {
                let _ = tx.send(Err(format!("GET {shown}: {why}"))).await;
            }
        });
        rx
    }
}

/// Streams one object into `tx`; stops early when the reader is gone.
async fn fetch(
    store: Arc<dyn ObjectStore>,
    key: &str,
    size: u64,
    tx: &mpsc::Sender<Chunk>,
    stats: &Stats,
) -> Result<(), String> {
    stats.gets.fetch_add(1, Ordering::Relaxed);
    let res = store
        .get(&ObjectPath::from(key))
        .await
        .map_err(|e| crate::explain(&e))?;
    let mut body = res.into_stream();
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| crate::explain(&e))?;
        got += chunk.len() as u64;
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    if got != size {
        return Err(format!(
            "{got} bytes arrived, the listing said {size} (replaced while read?)"
        ));
    }
    Ok(())
}

/// One object's bytes, as a blocking reader. A failed fetch is an error of kind
/// `ConnectionAborted` carrying the key and the cause.
pub struct ObjectReader {
    rx: mpsc::Receiver<Chunk>,
    chunk: Bytes,
    ended: bool,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(why)) => {
                    self.ended = true;
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, why));
                }
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::object_key;
    use chrono::{TimeZone, Utc};

    fn obj(agg: &str, day: u32, hour: u32, n: u32) -> Listed {
        let cat: Category = "web".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, day, hour, 5, 0).unwrap();
        let key = object_key("p", &cat, t, agg, &format!("web_{n:05}"));
        Listed {
            name: parse_key("p", &key).unwrap(),
            key,
            size: 1,
        }
    }

    fn at(day: u32, hour: u32) -> i64 {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0)
            .unwrap()
            .timestamp()
    }

    fn kept(w: Window) -> Vec<String> {
        let mut all = vec![
            obj("a", 1, 0, 0),
            obj("a", 1, 3, 1),
            obj("a", 1, 6, 2),
            obj("a", 2, 9, 3),
            obj("b", 1, 1, 0),
        ];
        prune(&mut all, &w);
        all.iter()
            .map(|o| format!("{}{}", o.name.aggregator, o.name.file.suffix))
            .collect()
    }

    #[test]
    fn pruning_keeps_what_may_reach_the_window() {
        let no_slack = |since, until| Window {
            since,
            until,
            slack: 0,
        };
        assert_eq!(kept(Window::default()), ["a0", "a1", "a2", "a3", "b0"]);
        // Since 1 March 05:00: a0 ended before a1's hour was over (04:00), a1 may run
        // until 07:00; b0 is b's newest, so open-ended.
        assert_eq!(
            kept(no_slack(Some(at(1, 5)), None)),
            ["a1", "a2", "a3", "b0"]
        );
        // Until 1 March 03:00: objects starting at 03:00 or later go.
        assert_eq!(kept(no_slack(None, Some(at(1, 3)))), ["a0", "b0"]);
        // An hour of slack each way: a2 (06:00) may hold lines stamped before 06:00, a0
        // (its lines arrived before 04:00) none stamped at 05:00 or later.
        let w = Window {
            since: Some(at(1, 5)),
            until: Some(at(1, 6)),
            slack: 3600,
        };
        assert_eq!(kept(w), ["a1", "a2", "b0"]);
        let w = Window {
            since: Some(at(1, 4)),
            until: Some(at(1, 6)),
            slack: 3600,
        };
        assert_eq!(kept(w), ["a0", "a1", "a2", "b0"]);
    }

    #[test]
    fn days_listed_reach_back_a_day_and_one_more() {
        let d = |n| NaiveDate::from_ymd_opt(2026, 3, n).unwrap();
        let days = [d(1), d(2), d(5), d(6), d(7), d(9)];
        let w = |since, until| Window {
            since,
            until,
            slack: 3600,
        };
        assert_eq!(days_to_list(&days, &w(None, None)), days);
        assert_eq!(
            days_to_list(&days, &w(Some(at(7, 12)), None)),
            [d(5), d(6), d(7), d(9)]
        );
        assert_eq!(
            days_to_list(&days, &w(Some(at(5, 12)), Some(at(6, 12)))),
            [d(2), d(5), d(6)]
        );
        assert_eq!(days_to_list(&days, &w(None, Some(at(1, 12)))), [d(1)]);
    }
}
