//! Routing: which stores a category goes to, and the write of one batch through them.
//!
//! Matching, per category:
//! 1. every store block naming the category exactly;
//! 2. if none, the blocks whose prefix pattern (`foo*`) is the **longest** one that matches
//!    (several blocks with that same pattern all receive it);
//! 3. if none, the `default` blocks.
//!
//! A category matched by several blocks goes to each of them, and the batch is `OK` only when
//! every one of them accepted it. A category no block matches is dropped and counted
//! (`received bad`), as Scribe does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use scribe_archive::Category;

use futures::future::BoxFuture;

use crate::admission::{Denied, QueueCaps, RateLimit, Reservation};
use crate::config::{CategoryPattern, Settings};
use crate::counters::Counters;
use crate::stores::{self, Batch, BuildContext, Chain, Store, StoreError, StoreStatus};

/// A configuration in force: its stores and how categories reach them. Replaced whole on
/// reload.
pub struct Routing {
    pub settings: Settings,
    /// Who clients are and what they may write ([`crate::auth`]).
    pub rules: Arc<crate::auth::Rules>,
    stores: Vec<(String, Arc<dyn Store>)>,
    exact: HashMap<Category, Vec<usize>>,
    /// Longest prefix first.
    prefixes: Vec<(String, Vec<usize>)>,
    default: Vec<usize>,
    pub caps: QueueCaps,
    pub rate: RateLimit,
    /// Per store block: why its last write was refused, until a write to it succeeds again.
    /// What `/health` and `/ready` report: acknowledged writes are being refused.
    refusing: Vec<Mutex<Option<String>>>,
    /// Held while this configuration is in force (shared with the next one during a reload).
    _data_dir_lock: Arc<scribe_fs::DirLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("rate limit: over {0} messages per second")]
    Rate(u64),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Routing {
    /// Builds the stores of `settings`. The data directory is locked first, before any store
    /// exists and so before any recovery of what is in it (see [`crate::locks`]).
    pub async fn build(settings: Settings, counters: Arc<Counters>) -> anyhow::Result<Routing> {
        let rules = Arc::new(crate::auth::Rules::load(&settings)?);
        let data_dir_lock = crate::locks::lock(&settings.data_dir, "data directory")?;
        let mut stores = Vec::new();
        let mut exact: HashMap<Category, Vec<usize>> = HashMap::new();
        let mut prefixes: HashMap<String, Vec<usize>> = HashMap::new();
        let mut default = Vec::new();
        for (i, block) in settings.stores.iter().enumerate() {
            let ctx = BuildContext {
                settings: &settings,
                counters: counters.clone(),
                name: block.name.clone(),
                key: block.key.clone(),
                dead_letter: None,
            };
            let store = match stores::build(&block.spec, &ctx) {
                Ok(s) => s,
                Err(e) => {
                    // Stores built so far may hold directories or spools: release them.
                    for (_, s) in &stores {
                        let s: &Arc<dyn Store> = s;
                        s.close().await;
                    }
                    return Err(e);
                }
            };
            stores.push((block.name.clone(), store));
            for p in &block.patterns {
                match p {
                    CategoryPattern::Exact(c) => exact.entry(c.clone()).or_default().push(i),
                    CategoryPattern::Prefix(p) => prefixes.entry(p.clone()).or_default().push(i),
                    CategoryPattern::Default => default.push(i),
                }
            }
        }
        let mut prefixes: Vec<(String, Vec<usize>)> = prefixes.into_iter().collect();
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(Routing {
            rules,
            caps: QueueCaps::new(settings.max_queue_bytes, settings.max_total_queue_bytes),
            rate: RateLimit::new(settings.max_msg_per_second),
            refusing: stores.iter().map(|_| Mutex::new(None)).collect(),
            settings,
            stores,
            exact,
            prefixes,
            default,
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Indexes of the store blocks a category goes to (empty: nowhere).
    pub fn route(&self, category: &Category) -> &[usize] {
        if let Some(s) = self.exact.get(category) {
            return s;
        }
        let name = category.as_str();
        if let Some((_, s)) = self
            .prefixes
            .iter()
            .find(|(p, _)| name.starts_with(p.as_str()))
        {
            return s;
        }
        &self.default
    }

    /// Admits the batch as a whole, hands each store its part, and returns when every store
    /// accepted its part (or one failed). Categories that route nowhere are skipped (the
    /// caller drops and counts them beforehand).
    pub async fn write(&self, batches: &[Batch]) -> Result<(), RouteError> {
        let per_store = self.split(batches);
        let _reservation = self.admit(batches, &per_store)?;
        let writes = per_store
            .iter()
            .enumerate()
            .filter(|(_, bs)| !bs.is_empty())
            .map(|(i, bs)| async move { (i, self.stores[i].1.write(bs).await) });
        self.outcome(futures::future::join_all(writes).await)
    }

    /// Whether every store the batches go to takes batches over at once
    /// ([`Store::takes_over`]), so that [`Routing::submit`] can.
    pub fn takes_over(&self, batches: &[Batch]) -> bool {
        let per_store = self.split(batches);
        per_store
            .iter()
            .enumerate()
            .all(|(i, bs)| bs.is_empty() || self.stores[i].1.takes_over())
    }

    /// [`Routing::write`] for a connection that reads ahead (see [`Routing::takes_over`]):
    /// admits the batches and hands each store its part now, behind everything handed over
    /// before; the returned future is their answer.
    pub fn submit(
        self: &Arc<Self>,
        batches: &[Batch],
        chain: &Chain,
    ) -> Result<BoxFuture<'static, Result<(), RouteError>>, RouteError> {
        let per_store = self.split(batches);
        let reservation = self.admit(batches, &per_store)?;
        let answers: Vec<(usize, stores::Pending)> = per_store
            .into_iter()
            .enumerate()
            .filter(|(_, bs)| !bs.is_empty())
            .map(|(i, bs)| {
                let store = self.stores[i].1.clone();
                let answer = store.submit(&bs, chain).unwrap_or_else(|| {
                    // Not a store that takes over (the caller checked): write in turn.
                    Box::pin(async move { store.write(&bs).await })
                });
                (i, answer)
            })
            .collect();
        let routing = self.clone();
        Ok(Box::pin(async move {
            let _reservation = reservation;
            let answers = answers
                .into_iter()
                .map(|(i, answer)| async move { (i, answer.await) });
            routing.outcome(futures::future::join_all(answers).await)
        }))
    }

    /// Each store block's part of the batches.
    fn split(&self, batches: &[Batch]) -> Vec<Vec<Batch>> {
        let mut per_store: Vec<Vec<Batch>> = vec![Vec::new(); self.stores.len()];
        for b in batches {
            for &i in self.route(&b.category) {
                per_store[i].push(b.clone());
            }
        }
        per_store
    }

    /// The rate limit and the queue caps, for the batches as a whole.
    fn admit(
        &self,
        batches: &[Batch],
        per_store: &[Vec<Batch>],
    ) -> Result<Reservation, RouteError> {
        let messages: usize = batches.iter().map(|b| b.messages.len()).sum();
        if !self.rate.admit(messages as u64) {
            return Err(RouteError::Rate(self.settings.max_msg_per_second));
        }
        let parts: Vec<(usize, &str, &Category, u64)> = per_store
            .iter()
            .enumerate()
            .flat_map(|(i, bs)| {
                let name = self.stores[i].0.as_str();
                bs.iter().map(move |b| (i, name, &b.category, b.bytes))
            })
            .collect();
        Ok(self.caps.reserve(&parts)?)
    }

    /// Notes each store's answer; the first error, if any.
    fn outcome(&self, answers: Vec<(usize, Result<(), StoreError>)>) -> Result<(), RouteError> {
        let mut first_error = None;
        for (i, r) in answers {
            self.note(i, &r);
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Remembers whether store block `i` refused its last write.
    fn note(&self, i: usize, result: &Result<(), StoreError>) {
        let mut refusing = self.refusing[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(()) if refusing.is_some() => {
                tracing::info!(store = %self.stores[i].0, "store accepts writes again");
                *refusing = None;
            }
            Ok(()) => {}
            Err(e) => *refusing = Some(e.to_string()),
        }
    }

    /// The store blocks whose last write was refused, and why: (block name, error).
    pub fn refusing(&self) -> Vec<(String, String)> {
        self.stores
            .iter()
            .zip(&self.refusing)
            .filter_map(|((name, _), r)| {
                let r = r.lock().unwrap_or_else(PoisonError::into_inner);
                r.clone().map(|why| (name.clone(), why))
            })
            .collect()
    }

    pub fn status(&self) -> Vec<StoreStatus> {
        let mut out = Vec::new();
        for (_, s) in &self.stores {
            s.status(&mut out);
        }
        out
    }

    /// Lets every store finish what it accepted, then stops them.
    pub async fn close(&self) {
        for (_, s) in &self.stores {
            s.close().await;
        }
    }
}
