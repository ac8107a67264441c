//! The hub: one feed per category (its ring and its subscribers) and one bounded queue per
//! client, and the fan-out between them.
//!
//! A source calls [`Hub::publish`]; under the feed's lock each line gets its sequence number,
//! goes into the ring, and the published lines, as one [`Chunk`], are appended to every
//! subscribed client's [`ClientQueue`] (one item per client, not one per line). Appending
//! never waits: lines past a queue's byte bound are counted as dropped for that client
//! instead, so a client that stops reading costs only its own lines, never the source's time
//! or the other clients'. Lines are `Bytes` and chunks are shared, so the ring and every
//! queue share one copy, and a chunk's JSON is built once for all clients.
//!
//! Subscribing copies the backlog (or the lines after a resume point) into the queue and
//! registers the subscription under that same feed lock, so a subscriber sees every line
//! exactly once, in order, with no gap between backlog and live lines.
//!
//! Lines a source could not read ([`Hub::publish_gap`]) take seqs without lines: live
//! subscribers get a `gap` item in their place, and a backlog or resume across them gets one
//! where the seqs jump, so no subscriber ever meets a hole without a notice.
//!
//! Lines from Kafka ([`Hub::publish_from`]) carry their partition and offset to the client
//! too, and a subscription can start after a per-partition [`Cursor`] ([`Start::Offsets`]),
//! which, unlike a seq, means the same after tailgate restarts.
//!
//! A resume by offsets older than the ring is read back from Kafka for that client
//! ([`ReadBack`], in `hub/readback.rs`) when the source offers it ([`Hub::enable_read_back`]).
//!
//! Lock order: hub → feed → subscription → client queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use scribe_archive::category::CategoryGlob;
use tokio::sync::watch;

use crate::chunk::Chunk;
use crate::ring::{Cursor, Origin, Resume, Ring, LINE_OVERHEAD};

mod queue;
mod readback;
pub use queue::{Budget, ClientQueue, Item};
pub use readback::{GapReason, ReadBack, Step};

/// Bounds the hub enforces.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub ring_lines: usize,
    pub ring_bytes: usize,
    /// More categories than this are refused (their lines counted in `lines_refused`):
    /// category names arrive from the network with `--scribe-listen`.
    pub max_categories: usize,
    /// Bytes of lines a client may have queued and unsent before its lines are dropped.
    pub client_buffer: usize,
    /// A client's queue wakes its sender early once this many bytes wait (else every tick).
    pub batch_bytes: usize,
    /// Bytes of lines queued over all clients together (`--max-queued`): past it, lines are
    /// dropped (and counted) for whichever client they were for, as if its own bound were
    /// reached, so `--max-clients` × `--client-buffer` is not the only limit.
    pub total_buffer: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ring_lines: 10_000,
            ring_bytes: 8 << 20,
            max_categories: 1_000,
            client_buffer: 4 << 20,
            batch_bytes: 256 << 10,
            total_buffer: 256 << 20,
        }
    }
}

/// Process-wide counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub clients: AtomicU64,
    pub subscriptions: AtomicU64,
    pub lines_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub lines_refused: AtomicU64,
    pub lines_sent: AtomicU64,
    pub lines_dropped: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Gaps published by sources (lines they could not read).
    pub source_gaps: AtomicU64,
    /// Clients closed because a send to them timed out (they stopped reading).
    pub send_timeouts: AtomicU64,
    /// Resumes by offsets read back from Kafka (per partition), and the lines they sent.
    pub read_backs: AtomicU64,
    pub lines_read_back: AtomicU64,
}

pub struct Hub {
    cfg: HubConfig,
    inner: Mutex<HubInner>,
    pub metrics: Metrics,
    /// Bumped when a category appears, so connections can send `categories` updates.
    categories: watch::Sender<u64>,
    next_key: AtomicU64,
    /// Bytes queued over all clients.
    pub queued: Arc<Budget>,
    /// A random id for this process: sequence numbers restart with it.
    pub instance: String,
    /// Where read-backs go ([`Hub::enable_read_back`]); none: offsets older than the ring
    /// get an `offset_gap`.
    read_back: std::sync::OnceLock<std::sync::mpsc::Sender<ReadBack>>,
    /// Read-backs asked for and not finished (at most [`readback::MAX_WAITING`]).
    read_backs_waiting: Arc<AtomicUsize>,
}

#[derive(Default)]
struct HubInner {
    feeds: BTreeMap<Arc<str>, Arc<Feed>>,
    subs: Vec<Arc<Subscription>>,
}

pub struct Feed {
    pub name: Arc<str>,
    state: Mutex<FeedState>,
}

struct FeedState {
    ring: Ring,
    subs: Vec<Arc<Subscription>>,
    lines: u64,
    bytes: u64,
    last_update: Option<SystemTime>,
    rate: RateMeter,
}

/// Lines per second over the last completed window of at least a second.
struct RateMeter {
    window_start: Instant,
    window_lines: u64,
    rate: f64,
}

impl RateMeter {
    fn add(&mut self, n: u64, now: Instant) {
        self.roll(now);
        self.window_lines += n;
    }

    fn roll(&mut self, now: Instant) {
        let dt = now.duration_since(self.window_start).as_secs_f64();
        if dt >= 1.0 {
            self.rate = self.window_lines as f64 / dt;
            self.window_start = now;
            self.window_lines = 0;
        }
    }
}

/// A feed's numbers for the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedInfo {
    pub name: String,
    pub lines: u64,
    pub bytes: u64,
    pub last_seq: u64,
    pub lines_per_sec: f64,
    /// Milliseconds since the Unix epoch of the last line, if any.
    pub last_update_ms: Option<u64>,
    pub subscribers: usize,
}

/// One subscription of one client: which categories, and into which queue.
pub struct Subscription {
    /// Unique in the process; items in a queue carry it so lines of a subscription that was
    /// replaced or cancelled are recognized and skipped.
    pub key: u64,
    pub pattern: CategoryGlob,
    pub queue: Arc<ClientQueue>,
    /// A resume by offsets; `None` for every other subscription.
    resume: Option<Mutex<Resumed>>,
    /// Set when the subscription ends, so a read-back for it stops.
    cancelled: AtomicBool,
}

/// Where a subscription resumed by offsets stands in partitions that are not plain live.
#[derive(Default)]
struct Resumed {
    /// Per Kafka category, per partition, the offset the client wants next, where this
    /// tailgate has not read that far yet (it restarted and reads from before where its
    /// clients are): lines below it are not sent live either. A partition leaves it once
    /// passed.
    ahead: HashMap<String, Cursor>,
    /// Per Kafka category, the partitions being read back for this client: their live lines
    /// are not queued until the read-back hands over to the ring.
    held: HashMap<String, std::collections::BTreeSet<i32>>,
}

impl Subscription {
    /// The lines of `chunk` this subscription has not seen, as chunks of consecutive seqs,
    /// when it resumed ahead of the feed or is being read back to; `None`: all of them.
    fn unseen(&self, category: &str, chunk: &Chunk) -> Option<Vec<Arc<Chunk>>> {
        let mut resumed = lock(self.resume.as_ref()?);
        let Resumed { ahead, held } = &mut *resumed;
        let held = held.get(category);
        if held.is_none() && !ahead.contains_key(category) {
            return None;
        }
        let mut none = Cursor::new();
        let want = ahead.get_mut(category).unwrap_or(&mut none);
        let mut kept: Vec<Arc<Chunk>> = Vec::new();
        let mut run: Vec<(Bytes, Option<Origin>)> = Vec::new();
        let mut first = 0;
        for i in 0..chunk.len() {
            let origin = chunk.origin(i);
            let keep = match origin.map(|o| (o, want.get(&o.partition).copied())) {
                Some((o, _)) if held.is_some_and(|h| h.contains(&o.partition)) => false,
                Some((o, Some(w))) if o.offset < w => {
                    if o.offset + 1 >= w {
                        want.remove(&o.partition);
                    }
                    false
                }
                Some((o, Some(_))) => {
                    want.remove(&o.partition);
                    true
                }
                _ => true,
            };
            if !keep {
                if !run.is_empty() {
                    kept.push(chunk_of(first, std::mem::take(&mut run)));
                }
                continue;
            }
            if run.is_empty() {
                first = chunk.seq(i);
            }
            run.push((chunk.lines[i].clone(), origin));
        }
        if !run.is_empty() {
            kept.push(chunk_of(first, run));
        }
        if want.is_empty() {
            ahead.remove(category);
        }
        Some(kept)
    }

    /// Whether partition `partition` of `category` is being read back for this client.
    fn holds(&self, category: &str, partition: i32) -> bool {
        self.resume.as_ref().is_some_and(|r| {
            lock(r)
                .held
                .get(category)
                .is_some_and(|h| h.contains(&partition))
        })
    }

    /// After the resume from the ring: only partitions the feed has not read up to the
    /// client's offsets stay ahead.
    fn behind(&self, category: &str, read: &Cursor) {
        let Some(resume) = &self.resume else { return };
        let ahead = &mut lock(resume).ahead;
        if let Some(want) = ahead.get_mut(category) {
            want.retain(|p, w| read.get(p).is_none_or(|r| r < w));
            if want.is_empty() {
                ahead.remove(category);
            }
        }
    }

    /// Reading `partition` of `category` starts at `offset`: a client ahead of that has
    /// nothing to skip; one behind it misses `want..offset`, which is returned (and it then
    /// takes the partition from `offset` on).
    fn started(&self, category: &str, partition: i32, offset: i64) -> Option<(i64, i64)> {
        let mut resumed = lock(self.resume.as_ref()?);
        let want = resumed.ahead.get_mut(category)?;
        let w = *want.get(&partition)?;
        if w > offset {
            return None;
        }
        want.remove(&partition);
        (w < offset).then_some((w, offset - 1))
    }
}

/// Where a new subscription starts in each matching category.
#[derive(Debug, Clone)]
pub enum Start {
    /// The newest `n` lines of the ring (0: live lines only).
    Backlog(usize),
    /// After these sequence numbers; categories not listed start with the backlog.
    Since(HashMap<String, u64>, usize),
    /// Kafka categories after these cursors (per partition, the next offset wanted), which
    /// hold across restarts; other categories as [`Start::Since`].
    Offsets {
        offsets: HashMap<String, Cursor>,
        seqs: HashMap<String, u64>,
        backlog: usize,
    },
}

type RingLine = (u64, Bytes);

/// How many of `lines` (the newest) fit in `max_lines` lines and `max_bytes` bytes.
fn newest_within(lines: &[&RingLine], max_lines: usize, max_bytes: usize) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for (_, l) in lines.iter().rev().take(max_lines) {
        bytes += l.len() + LINE_OVERHEAD;
        if bytes > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

/// Queues where subscription `key` starts in one feed: its backlog (`backlog` lines) or the
/// lines after `since`, the newest that fit in `budget` lines and `room` bytes, with a `Gap`
/// item for each run of seqs it does not send (skipped for lack of room, evicted, or lost at
/// the source). What it queues is taken from `left`. Returns the first seq it accounts for
/// (a line or a gap; the next live seq when it queues nothing).
fn queue_start(
    queue: &ClientQueue,
    key: u64,
    name: &Arc<str>,
    ring: &Ring,
    since: Option<u64>,
    backlog: usize,
    left: &mut Allowance,
) -> u64 {
    let (resume, lines): (Option<Resume>, Vec<&RingLine>) = match since {
        Some(since) => {
            let (resume, lines) = ring.after(since);
            (Some(resume), lines.collect())
        }
        None => (None, ring.last(backlog.min(left.lines)).collect()),
    };
    let keep = newest_within(&lines, left.lines, left.bytes);
    let skip = lines.len() - keep;
    let gap = |from_seq, to_seq| Item::Gap {
        key,
        category: name.clone(),
        from_seq,
        to_seq,
    };
    // Lines missed before the first one sent: evicted from the ring, or over the budget or
    // the room.
    let from = match resume {
        Some(Resume::Gap { from, .. }) => Some(from),
        _ if skip > 0 => Some(lines[0].0),
        _ => None,
    };
    let sent = &lines[skip..];
    let mut prev = sent.first().map_or(ring.last_seq(), |(s, _)| s - 1);
    let first = from.unwrap_or(prev + 1);
    if let Some(from) = from {
        queue.push_unbounded(gap(from, prev));
    }
    // Runs of consecutive seqs become chunks; a jump between them (seqs the source skipped,
    // or a line too big for the ring) is a gap.
    queue_runs(queue, key, name, ring, sent, |from, to| {
        queue.push_unbounded(gap(from, to))
    });
    if let Some((last, _)) = sent.last() {
        prev = *last;
    }
    if !sent.is_empty() && prev < ring.last_seq() {
        queue.push_unbounded(gap(prev + 1, ring.last_seq()));
    }
    left.spend(sent);
    first
}

/// Queues where subscription `key` starts in a Kafka feed resumed by offsets: the held lines
/// after `since` that fit (the newest, as [`queue_start`]), after an `OffsetGap` for each
/// partition whose wanted offsets are no longer (or never were) held, and a `Gap` for lines
/// skipped for lack of room. A partition `read_back` takes (it reads the offsets back from
/// Kafka, then the ring's lines of that partition) gets neither. Returns the first seq it
/// accounts for.
fn queue_after_cursor(
    queue: &ClientQueue,
    key: u64,
    name: &Arc<str>,
    ring: &Ring,
    since: &Cursor,
    left: &mut Allowance,
    mut read_back: impl FnMut(&crate::ring::OffsetGap) -> Result<(), GapReason>,
) -> u64 {
    let (gaps, mut lines) = ring.after_cursor(since);
    let mut taken = Vec::new();
    for g in gaps {
        let reason = match read_back(&g) {
            Ok(()) => {
                taken.push(g.partition);
                continue;
            }
            Err(reason) => reason,
        };
        queue.push_unbounded(Item::OffsetGap {
            key,
            category: name.clone(),
            partition: g.partition,
            from: g.from,
            to: g.to,
            reason,
        });
    }
    if !taken.is_empty() {
        lines.retain(|(seq, _)| {
            ring.origin(*seq)
                .is_none_or(|o| !taken.contains(&o.partition))
        });
    }
    let keep = newest_within(&lines, left.lines, left.bytes);
    let skip = lines.len() - keep;
    let sent = &lines[skip..];
    let first = lines.first().map_or(ring.last_seq() + 1, |(s, _)| *s);
    if skip > 0 {
        let to = sent.first().map_or(ring.last_seq(), |(s, _)| s - 1);
        queue.push_unbounded(Item::Gap {
            key,
            category: name.clone(),
            from_seq: first,
            to_seq: to,
        });
    }
    // The lines of other partitions than the ones resumed are skipped: runs of consecutive
    // seqs become chunks, and the seqs between them are not gaps (the client has them).
    queue_runs(queue, key, name, ring, sent, |_, _| {});
    left.spend(sent);
    first
}

/// Queues `lines` (ascending seqs) as chunks of consecutive seqs, with their Kafka origins;
/// `jump(from, to)` is told the seqs missing between two runs, before the later run.
fn queue_runs(
    queue: &ClientQueue,
    key: u64,
    name: &Arc<str>,
    ring: &Ring,
    lines: &[&RingLine],
    mut jump: impl FnMut(u64, u64),
) {
    let mut run: Vec<(Bytes, Option<Origin>)> = Vec::new();
    let mut first = 0;
    let flush = |run: &mut Vec<(Bytes, Option<Origin>)>, first: u64| {
        if !run.is_empty() {
            let to = run.len();
            queue.push_unbounded(Item::Lines {
                key,
                category: name.clone(),
                chunk: chunk_of(first, std::mem::take(run)),
                from: 0,
                to,
            });
        }
    };
    for (seq, line) in lines {
        let next = first + run.len() as u64;
        if !run.is_empty() && *seq != next {
            flush(&mut run, first);
            jump(next, seq - 1);
        }
        if run.is_empty() {
            first = *seq;
        }
        run.push((line.clone(), ring.origin(*seq)));
    }
    flush(&mut run, first);
}

/// A chunk of lines with consecutive seqs from `first`, with their Kafka origins when every
/// line has one (a source is one or the other).
fn chunk_of(first: u64, run: Vec<(Bytes, Option<Origin>)>) -> Arc<Chunk> {
    let origins: Option<Vec<Origin>> = run.iter().map(|(_, o)| *o).collect();
    Chunk::with_origins(first, run.into_iter().map(|(l, _)| l).collect(), origins)
}

/// A category a new subscription matches.
#[derive(Debug, Clone)]
pub struct Matched {
    pub name: Arc<str>,
    /// The subscription starts after this seq: its backlog is at or before it, live lines
    /// after it.
    pub last_seq: u64,
    /// The first seq its backlog or resume accounts for (`last_seq + 1` when none).
    pub from_seq: u64,
    /// A Kafka category's cursor at `last_seq` (per partition, the next offset): the
    /// subscription's resume point by offsets.
    pub cursor: Option<Cursor>,
}

/// What one subscribe may still queue, over all its categories.
struct Allowance {
    lines: usize,
    bytes: usize,
}

impl Allowance {
    /// Takes what `sent` (lines queued for one category) used.
    fn spend(&mut self, sent: &[&RingLine]) {
        let bytes: usize = sent.iter().map(|(_, l)| l.len() + LINE_OVERHEAD).sum();
        self.lines -= sent.len();
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain counters and
/// queues; carrying on is better than taking the whole server down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
#[error("category limit of {0} reached")]
pub struct TooManyCategories(pub usize);

impl Hub {
    pub fn new(cfg: HubConfig) -> Hub {
        Hub {
            inner: Mutex::new(HubInner::default()),
            metrics: Metrics::default(),
            categories: watch::channel(0).0,
            next_key: AtomicU64::new(1),
            queued: Arc::new(Budget::new(cfg.total_buffer)),
            instance: format!("{:016x}", fastrand::u64(..)),
            read_back: std::sync::OnceLock::new(),
            read_backs_waiting: Arc::new(AtomicUsize::new(0)),
            cfg,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    pub fn new_queue(&self) -> Arc<ClientQueue> {
        // Wake well before the bound, so a reading client is not limited to one bound's worth
        // of lines per tick.
        let batch_bytes = self.cfg.batch_bytes.min(self.cfg.client_buffer / 4).max(1);
        Arc::new(ClientQueue::new(
            self.cfg.client_buffer,
            self.queued.clone(),
            batch_bytes,
        ))
    }

    /// Changes whenever a category appears.
    pub fn watch_categories(&self) -> watch::Receiver<u64> {
        self.categories.subscribe()
    }

    /// The feed for `name` (a valid category name), created if new.
    pub fn feed(&self, name: &str) -> Result<Arc<Feed>, TooManyCategories> {
        let mut inner = lock(&self.inner);
        if let Some(f) = inner.feeds.get(name) {
            return Ok(f.clone());
        }
        if inner.feeds.len() >= self.cfg.max_categories {
            return Err(TooManyCategories(self.cfg.max_categories));
        }
        let name: Arc<str> = Arc::from(name);
        let subs: Vec<_> = inner
            .subs
            .iter()
            .filter(|s| s.pattern.matches(&name))
            .cloned()
            .collect();
        let feed = Arc::new(Feed {
            name: name.clone(),
            state: Mutex::new(FeedState {
                ring: Ring::new(self.cfg.ring_lines, self.cfg.ring_bytes),
                subs,
                lines: 0,
                bytes: 0,
                last_update: None,
                rate: RateMeter {
                    window_start: Instant::now(),
                    window_lines: 0,
                    rate: 0.0,
                },
            }),
        });
        inner.feeds.insert(name, feed.clone());
        drop(inner);
        self.categories.send_modify(|v| *v += 1);
        Ok(feed)
    }

    /// Appends lines (without their trailing `\n`) to a category and fans them out.
    pub fn publish(&self, category: &str, lines: Vec<Bytes>) -> Result<(), TooManyCategories> {
        self.publish_from(category, lines.into_iter().map(|l| (l, None)).collect())
    }

    /// Kafka: reading `partition` of `category`'s topic starts at `offset` (see
    /// [`Ring::start_partition`]).
    pub fn start_partition(
        &self,
        category: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), TooManyCategories> {
        let feed = self.feed(category)?;
        let mut st = lock(&feed.state);
        st.ring.start_partition(partition, offset);
        for sub in &st.subs {
            if let Some((from, to)) = sub.started(category, partition, offset) {
                let Err(reason) = self.read_back(sub, &feed, partition, from, offset) else {
                    continue;
                };
                sub.queue.push_unbounded(Item::OffsetGap {
                    key: sub.key,
                    category: feed.name.clone(),
                    partition,
                    from,
                    to,
                    reason,
                });
                sub.queue.notify.notify_one();
            }
        }
        Ok(())
    }

    /// [`Hub::publish`] for lines that may carry their Kafka origin.
    pub fn publish_from(
        &self,
        category: &str,
        lines: Vec<(Bytes, Option<Origin>)>,
    ) -> Result<(), TooManyCategories> {
        if lines.is_empty() {
            return Ok(());
        }
        let feed = match self.feed(category) {
            Ok(f) => f,
            Err(e) => {
                self.metrics
                    .lines_refused
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                return Err(e);
            }
        };
        let n = lines.len() as u64;
        let bytes: u64 = lines.iter().map(|(l, _)| l.len() as u64).sum();
        let mut st = lock(&feed.state);
        // Seqs are consecutive: they are only taken under this lock.
        let first = st.ring.last_seq() + 1;
        for (l, o) in &lines {
            st.ring.push_from(l.clone(), *o);
        }
        let chunk = chunk_of(first, lines);
        st.lines += n;
        st.bytes += bytes;
        st.last_update = Some(SystemTime::now());
        st.rate.add(n, Instant::now());
        for sub in &st.subs {
            match sub.unseen(category, &chunk) {
                None => sub.queue.push(sub.key, &feed.name, &chunk, &self.metrics),
                Some(kept) => {
                    for c in &kept {
                        sub.queue.push(sub.key, &feed.name, c, &self.metrics);
                    }
                }
            }
        }
        drop(st);
        self.metrics.lines_in.fetch_add(n, Ordering::Relaxed);
        self.metrics.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Records that `count` lines of `category` (at least 1; a whole file whose lines could
    /// not be counted is 1) were lost by its source: they take the next seqs without lines,
    /// and every subscriber gets a `gap` for them, in order with the lines around it. Returns
    /// the seqs.
    pub fn publish_gap(&self, category: &str, count: u64) -> Result<(u64, u64), TooManyCategories> {
        let feed = self.feed(category)?;
        let mut st = lock(&feed.state);
        let (from, to) = st.ring.skip(count);
        st.last_update = Some(SystemTime::now());
        for sub in &st.subs {
            sub.queue.push_gap(sub.key, &feed.name, from, to);
        }
        drop(st);
        self.metrics.source_gaps.fetch_add(1, Ordering::Relaxed);
        Ok((from, to))
    }

    /// Registers a subscription and queues its starting lines; returns the key its items
    /// carry and the categories it matches now.
    pub fn subscribe(
        &self,
        queue: &Arc<ClientQueue>,
        pattern: CategoryGlob,
        start: &Start,
    ) -> (u64, Vec<Matched>) {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let resume = match start {
            Start::Offsets { offsets, .. } => Some(Mutex::new(Resumed {
                ahead: offsets.clone(),
                held: HashMap::new(),
            })),
            _ => None,
        };
        let sub = Arc::new(Subscription {
            key,
            pattern,
            queue: queue.clone(),
            resume,
            cancelled: AtomicBool::new(false),
        });
        let mut inner = lock(&self.inner);
        inner.subs.push(sub.clone());
        let mut matched = Vec::new();
        // Backlog and resume lines are bounded per request in number (a glob over many
        // categories cannot queue every ring at once) and by the room left in the client's
        // queue, so they cannot take a client past `--client-buffer`.
        let mut left = Allowance {
            lines: self.cfg.ring_lines,
            bytes: queue.room(),
        };
        for (name, feed) in &inner.feeds {
            if !sub.pattern.matches(name) {
                continue;
            }
            let mut st = lock(&feed.state);
            let last = st.ring.last_seq();
            let since = match start {
                Start::Backlog(_) => None,
                Start::Since(map, _) | Start::Offsets { seqs: map, .. } => {
                    map.get(&**name).copied()
                }
            };
            let backlog = match start {
                Start::Backlog(n) | Start::Since(_, n) | Start::Offsets { backlog: n, .. } => *n,
            };
            let cursor = (!st.ring.cursor().is_empty()).then(|| st.ring.cursor().clone());
            let offsets = match start {
                Start::Offsets { offsets, .. } => offsets.get(&**name).filter(|_| cursor.is_some()),
                _ => None,
            };
            let first = match offsets {
                Some(c) => queue_after_cursor(queue, key, name, &st.ring, c, &mut left, |g| {
                    self.read_back(&sub, feed, g.partition, g.from, g.to + 1)
                }),
                None => queue_start(queue, key, name, &st.ring, since, backlog, &mut left),
            };
            sub.behind(name, st.ring.cursor());
            matched.push(Matched {
                name: name.clone(),
                last_seq: last,
                from_seq: first,
                cursor,
            });
            st.subs.push(sub.clone());
        }
        drop(inner);
        self.metrics.subscriptions.fetch_add(1, Ordering::Relaxed);
        queue.notify.notify_one();
        (key, matched)
    }

    /// Cancels a subscription (its queued lines are skipped by the sender).
    pub fn unsubscribe(&self, key: u64) {
        let mut inner = lock(&self.inner);
        let Some(i) = inner.subs.iter().position(|s| s.key == key) else {
            return;
        };
        let sub = inner.subs.swap_remove(i);
        sub.cancelled.store(true, Ordering::Release);
        for (name, feed) in &inner.feeds {
            if sub.pattern.matches(name) {
                lock(&feed.state).subs.retain(|s| s.key != key);
            }
        }
        self.metrics.subscriptions.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn category_names(&self) -> Vec<String> {
        lock(&self.inner)
            .feeds
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    pub fn infos(&self) -> Vec<FeedInfo> {
        let feeds: Vec<Arc<Feed>> = lock(&self.inner).feeds.values().cloned().collect();
        feeds.iter().map(|f| f.info()).collect()
    }

    /// The newest `n` lines of a category, with their sequence numbers.
    pub fn tail(&self, category: &str, n: usize) -> Option<Vec<(u64, Bytes)>> {
        let feed = lock(&self.inner).feeds.get(category).cloned()?;
        let st = lock(&feed.state);
        Some(st.ring.last(n).cloned().collect())
    }
}

impl Feed {
    pub fn info(&self) -> FeedInfo {
        let mut st = lock(&self.state);
        st.rate.roll(Instant::now());
        // A feed that went quiet reports its last full window until the next roll; a window
        // older than two seconds means nothing arrived since.
        let rate = if st.rate.window_start.elapsed().as_secs_f64() > 2.0 {
            0.0
        } else {
            st.rate.rate
        };
        FeedInfo {
            name: self.name.to_string(),
            lines: st.lines,
            bytes: st.bytes,
            last_seq: st.ring.last_seq(),
            lines_per_sec: (rate * 10.0).round() / 10.0,
            last_update_ms: st.last_update.and_then(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64)
            }),
            subscribers: st.subs.len(),
        }
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
