//! Stores: where routed messages go. Every kind implements [`Store`], so they compose — a
//! buffer's primary is a store, a multi holds stores, a bucket holds copies of one.
//!
//! - [`file`](mod@file): category files (rotation by size and time, compression, retention, fsync).
//! - [`network`]: forwards to upstream Scribe servers, with failover.
//! - [`buffer`]: a primary plus a disk spool for while the primary is down.
//! - `kafka` (cargo feature `kafka`, on by default): records of a topic per category.
//! - [`multi`]: fan-out to several stores; [`bucket`]: shard by key; [`null`]: discard.
//!
//! Contract: `write` returns `Ok` only when the store has accepted the batches durably by its
//! own policy (see docs/durability.md); on `Err` the caller answers `TRY_LATER`, and the
//! client sends the batch again.

pub mod bucket;
pub mod buffer;
pub mod dead_letters;
pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod kafka_client;
mod lane;
pub mod multi;
pub mod network;
pub mod null;
#[cfg(test)]
pub mod testing;
pub mod upload;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use scribe_archive::{Category, Piece};
use scribe_protocol::server::LineRun;
use scribe_protocol::EntryId;

use crate::config::{Settings, StoreSpec};
use crate::counters::Counters;

/// Messages of one category from one client batch, in arrival order.
#[derive(Debug)]
pub struct CategoryBatch {
    pub category: Category,
    pub messages: Vec<Bytes>,
    /// The messages' entry ids (native clients; `None` when no message has one), which
    /// stores keep with the messages so the archive can recognise a resent entry.
    pub ids: Option<Vec<Option<EntryId>>>,
    /// Sum of message lengths: what queue caps count.
    pub bytes: u64,
    /// Messages that arrived as runs of lines (native bodies with runs), which a file store
    /// writes in one piece each ([`scribe_archive::Piece::Lines`]); the other stores read
    /// `messages` alone.
    pub runs: Vec<LineRun>,
}

impl CategoryBatch {
    pub fn new(category: Category, messages: Vec<Bytes>) -> CategoryBatch {
        let bytes = messages.iter().map(|m| m.len() as u64).sum();
        CategoryBatch {
            category,
            messages,
            ids: None,
            bytes,
            runs: Vec::new(),
        }
    }

    /// The batch with `runs` noted: each run's `messages` range is of this batch's messages
    /// (as [`scribe_protocol::server::CategoryGroup::runs`] are of its group's).
    pub fn with_runs(self, runs: Vec<LineRun>) -> CategoryBatch {
        debug_assert!(runs.iter().all(|r| r.messages.end <= self.messages.len()));
        CategoryBatch { runs, ..self }
    }

    /// A run's id: from its first line's start to its last line's end (its lines' ids are
    /// consecutive), if they have ids.
    fn run_id(&self, run: &LineRun) -> Option<EntryId> {
        let first = self.id(run.messages.start)?;
        let last = self.id(run.messages.end.checked_sub(1)?)?;
        Some(EntryId {
            end: last.end,
            ..first
        })
    }

    /// The batch as [`scribe_archive::Piece`]s, in order: each run in one piece, the other
    /// messages one by one.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> + '_ {
        let mut runs = self.runs.iter().peekable();
        let mut i = 0;
        std::iter::from_fn(move || {
            let next = i;
            match runs.peek() {
                Some(r) if r.messages.start == next => {
                    let r = runs.next()?;
                    i = r.messages.end;
                    Some(Piece::Lines {
                        bytes: &r.bytes,
                        count: r.messages.len(),
                        id: self.run_id(r),
                    })
                }
                _ if next < self.messages.len() => {
                    i += 1;
                    Some(Piece::Message(&self.messages[next], self.id(next)))
                }
                _ => None,
            }
        })
    }

    /// `ids` runs parallel to `messages`; when none is `Some`, the batch keeps no ids (as
    /// [`Self::new`]), so Thrift batches carry no per-message overhead.
    pub fn with_ids(
        category: Category,
        messages: Vec<Bytes>,
        ids: Vec<Option<EntryId>>,
    ) -> CategoryBatch {
        debug_assert_eq!(messages.len(), ids.len());
        CategoryBatch {
            ids: ids.iter().any(Option::is_some).then_some(ids),
            ..CategoryBatch::new(category, messages)
        }
    }

    /// The id of message `i`, if it has one.
    pub fn id(&self, i: usize) -> Option<EntryId> {
        self.ids
            .as_ref()
            .and_then(|ids| ids.get(i).copied().flatten())
    }
}

/// Shared, so one batch can go to several stores without copying.
pub type Batch = Arc<CategoryBatch>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: upstream {upstream} answered TRY_LATER")]
    TryLater { store: String, upstream: String },
    #[error("{store}: no upstream reachable; last error: {reason}")]
    Unavailable { store: String, reason: String },
    #[error("{store}: spool full ({spooled} bytes spooled, limit {limit})")]
    SpoolFull {
        store: String,
        spooled: u64,
        limit: u64,
    },
    #[error("{store}: {reason}")]
    Failed { store: String, reason: String },
    #[error("{store}: closed")]
    Closed { store: String },
}

/// A store's state, for `/status`, `/metrics` and fb303 `getStatus`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoreStatus {
    pub name: String,
    pub kind: &'static str,
    /// `ok`, or a kind-specific state such as `streaming`, `spooling`, `draining`.
    pub state: String,
    /// Bytes waiting to be written.
    pub queue_bytes: u64,
    /// Bytes in the disk spool (buffer stores).
    pub spool_bytes: u64,
    /// Whether an upstream connection is up (network stores).
    pub upstream_connected: Option<bool>,
    /// Set when the store is degraded (fb303 `getStatus` then says WARNING).
    pub problem: Option<String>,
    /// Uploads to an object store (file stores with `[store.s3]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<upload::UploadState>,
}

impl StoreStatus {
    /// A healthy store with nothing queued; callers fill in what they track.
    pub fn new(name: &str, kind: &'static str) -> StoreStatus {
        StoreStatus {
            name: name.to_string(),
            kind,
            state: "ok".into(),
            queue_bytes: 0,
            spool_bytes: 0,
            upstream_connected: None,
            problem: None,
            upload: None,
        }
    }
}

/// A write handed over and not yet answered; resolves as [`Store::write`] would.
pub type Pending = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// The batches one connection hands over without waiting for each answer (a connection that
/// reads ahead). Once one of them is refused, every later one is refused too, so nothing is
/// written behind a refused batch: the client resends them all, in order.
#[derive(Debug, Clone, Default)]
pub struct Chain(Arc<AtomicBool>);

impl Chain {
    pub fn is_broken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn break_off(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a job handed over on `chain` (`None`: written directly, not read ahead) must
    /// be refused unwritten, because an earlier batch of its connection was refused.
    pub fn cuts_off(chain: Option<&Chain>) -> bool {
        chain.is_some_and(Chain::is_broken)
    }

    /// The refusal of a job [`Chain::cuts_off`], from `store`.
    pub fn cut_off_error(store: &str) -> StoreError {
        StoreError::Failed {
            store: store.to_string(),
            reason: "behind a refused batch of the same connection".into(),
        }
    }
}

/// A store's ordered pipeline (a network store's connection with several batches in
/// flight): writes are sent in the order started and answered in that order. After a failure,
/// every write started before the caller's [`Pipeline::resume`] fails too, so nothing is
/// delivered behind a failed write (a buffer store spools them all, in order).
pub trait Pipeline: Send + Sync {
    /// How many writes may be in flight.
    fn window(&self) -> usize;
    /// Starts a write behind the ones already started.
    fn start(&self, batches: &[Batch]) -> Pending;
    /// The caller has seen every failure: writes started from now on are sent again.
    fn resume(&self);
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Accepts the batches (possibly of several categories, in order); `Ok` once durable by
    /// this store's policy.
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError>;

    /// Whether [`Store::submit`] takes batches over at once (then a connection may read its
    /// next batch before this one is answered).
    fn takes_over(&self) -> bool {
        false
    }

    /// Takes the batches over now, behind everything submitted or written before, and
    /// returns their answer to wait for; `None` from stores that cannot (see
    /// [`Store::takes_over`]). A batch of a broken `chain` is refused.
    fn submit(&self, _batches: &[Batch], _chain: &Chain) -> Option<Pending> {
        None
    }

    /// This store's ordered pipeline, if it has one (network stores).
    fn pipeline(&self) -> Option<Arc<dyn Pipeline>> {
        None
    }

    /// Appends this store's status, then its children's.
    fn status(&self, out: &mut Vec<StoreStatus>);

    /// Finishes what was accepted (writes, fsyncs, persists spool positions) and stops.
    async fn close(&self);
}

/// Takes `first` and whatever `next` has already queued behind it, up to about `max_bytes`
/// (as `size` counts them), so that one write, fsync or upstream call covers them all.
/// Returns the jobs and their total size.
pub(crate) fn take_queued<J>(
    first: J,
    max_bytes: u64,
    size: impl Fn(&J) -> u64,
    mut next: impl FnMut() -> Option<J>,
) -> (Vec<J>, u64) {
    let mut bytes = size(&first);
    let mut jobs = vec![first];
    while bytes < max_bytes {
        match next() {
            Some(j) => {
                bytes += size(&j);
                jobs.push(j);
            }
            None => break,
        }
    }
    (jobs, bytes)
}

/// What building a store needs besides its spec.
#[derive(Clone)]
pub struct BuildContext<'a> {
    pub settings: &'a Settings,
    pub counters: Arc<Counters>,
    /// Name used in messages and metrics, e.g. `store[1] (web*).primary`.
    pub name: String,
    /// Stable key of the top-level block (spool directories).
    pub key: String,
    /// Where a network store keeps the messages its upstream can never accept: set by a
    /// buffer store for its primary (beside its spool); else [`BuildContext::dead_letter_dir`]
    /// derives it from `data_dir` and the key.
    pub dead_letter: Option<PathBuf>,
}

impl BuildContext<'_> {
    /// The context of a nested store; `child_index` is set for a multi store's children, whose
    /// spools need keys of their own.
    fn child(&self, suffix: &str, child_index: Option<usize>) -> BuildContext<'_> {
        BuildContext {
            settings: self.settings,
            counters: self.counters.clone(),
            name: format!("{}{suffix}", self.name),
            key: match child_index {
                Some(i) => crate::config::child_key(&self.key, i),
                None => self.key.clone(),
            },
            dead_letter: None,
        }
    }

    /// The dead-letter directory of a network store built in this context: the one its
    /// buffer store gave it, else where a spool of this key would be, plus `dead-letter`.
    pub fn dead_letter_dir(&self) -> PathBuf {
        self.dead_letter.clone().unwrap_or_else(|| {
            crate::config::dead_letter_dir(&crate::config::default_spool_dir(
                &self.key,
                self.settings,
            ))
        })
    }
}

/// Builds the store a spec describes. Fails on what validation cannot see, such as an
/// unusable spool directory.
pub fn build(spec: &StoreSpec, ctx: &BuildContext<'_>) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match spec {
        StoreSpec::File(f) => Arc::new(file::FileStore::from_spec(f, ctx, None)?),
        StoreSpec::Network(n) => Arc::new(network::NetworkStore::from_spec(n, ctx)?),
        StoreSpec::Buffer(b) => Arc::new(buffer::BufferStore::from_spec(b, ctx)?),
        StoreSpec::Multi(m) => Arc::new(multi::MultiStore::from_spec(m, ctx)?),
        StoreSpec::Bucket(b) => Arc::new(bucket::BucketStore::from_spec(b, ctx)?),
        StoreSpec::Null(_) => Arc::new(null::NullStore::new(ctx)),
        #[cfg(feature = "kafka")]
        StoreSpec::Kafka(k) => Arc::new(kafka::KafkaStore::from_spec(k, ctx)?),
        #[cfg(not(feature = "kafka"))]
        StoreSpec::Kafka(_) => anyhow::bail!(
            "{}: this scribed was built without the `kafka` feature (cargo build --features kafka)",
            ctx.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scribe_protocol::ProducerId;

    #[test]
    fn pieces_are_the_runs_whole_and_the_other_messages_one_by_one() {
        let msgs = ["single", "a\n", "bb\n", "between", "c\n", "last"];
        let messages: Vec<Bytes> = msgs
            .iter()
            .map(|m| Bytes::from_static(m.as_bytes()))
            .collect();
        let id = |start, end| {
            Some(EntryId {
                producer: ProducerId([1; 16]),
                start,
                end,
            })
        };
        let ids = vec![None, id(0, 2), id(2, 5), None, id(5, 7), None];
        let runs = vec![
            LineRun {
                messages: 1..3,
                bytes: Bytes::from_static(b"a\nbb\n"),
            },
            LineRun {
                messages: 4..5,
                bytes: Bytes::from_static(b"c\n"),
            },
        ];
        let b = CategoryBatch::with_ids("c".parse().unwrap(), messages, ids).with_runs(runs);
        let pieces: Vec<Piece<'_>> = b.pieces().collect();
        assert_eq!(
            pieces,
            [
                Piece::Message(b"single", None),
                Piece::Lines {
                    bytes: b"a\nbb\n",
                    count: 2,
                    id: id(0, 5)
                },
                Piece::Message(b"between", None),
                Piece::Lines {
                    bytes: b"c\n",
                    count: 1,
                    id: id(5, 7)
                },
                Piece::Message(b"last", None),
            ]
        );
        // Without runs: every message on its own.
        let plain = CategoryBatch::new("c".parse().unwrap(), vec![Bytes::from_static(b"x")]);
        assert_eq!(
            plain.pieces().collect::<Vec<_>>(),
            [Piece::Message(b"x", None)]
        );
    }
}
