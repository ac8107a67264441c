//! What scribed does with each call: routes `Log` batches (both protocols) to the stores, and
//! answers fb303 where scribed differs from `scribe_protocol::server`'s defaults (status from
//! the stores, counters, `close_on_try_later`, `reinitialize`, `shutdown`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{ready, BoxFuture};
use scribe_archive::{Category, CategoryError};
use scribe_protocol::client::NATIVE_OPTION;
use scribe_protocol::scribe::FbStatus;
use scribe_protocol::server::{group_by_category, thrift_entries, CategoryGroup, Incoming};
use scribe_protocol::{LogEntry, Refused, ResultCode, ScribeService};

use crate::auth::{Peer, DENIED_ADMIN, DENIED_BATCHES, DENIED_WRITES};

use crate::counters::{
    DENIED_QUEUE, DENIED_RATE, RECEIVED_BAD, RECEIVED_BLANK, RECEIVED_GOOD, STORE_ERRORS,
};
use crate::router::{RouteError, Routing};
use crate::stores::{Batch, CategoryBatch, Chain};
use crate::Server;

/// On a pipelining connection (either protocol), a call that took this long is followed by
/// closing the connection: the client may have given up waiting and sent the batches behind
/// it again on another connection, so the copies still queued here must not be written after
/// those.
pub(crate) const SLOW_CALL: Duration = Duration::from_secs(5);

/// Per-connection state that calls can change.
#[derive(Debug, Default)]
pub struct ConnectionState {
    /// Set by `setOption("scribed.close_on_try_later", "1")`: after answering `TRY_LATER`, the
    /// connection is closed without reading further calls. A client that pipelines batches
    /// needs this so that nothing sent behind a refused batch is written ahead of it.
    pub close_on_try_later: bool,
    /// The last `Log` call was answered `TRY_LATER`.
    pub refused: bool,
}

/// The option that turns on [`ConnectionState::close_on_try_later`].
pub const CLOSE_ON_TRY_LATER: &[u8] = b"scribed.close_on_try_later";

/// scribed's answers to the Thrift calls of one connection.
pub struct Scribed<'a> {
    server: &'a Server,
    peer: &'a Peer,
    state: ConnectionState,
}

impl<'a> Scribed<'a> {
    pub fn new(server: &'a Server, peer: &'a Peer) -> Scribed<'a> {
        Scribed {
            server,
            peer,
            state: ConnectionState::default(),
        }
    }

    /// Whether the peer may make the admin call `call`; a refusal is logged and counted.
    async fn admin(&self, call: &str) -> bool {
        let rules = self.server.routing.read().await.rules.clone();
        if rules.is_admin(self.peer) {
            return true;
        }
        let (peer, name) = (self.peer.addr, self.peer.name());
        self.server
            .auth_warn
            .warn(|| format!("refused fb303 {call} from {peer} ({name}): not an admin client"));
        self.server.auth_counters.add(DENIED_ADMIN, name, 1);
        false
    }
}

impl ScribeService for Scribed<'_> {
    fn name(&self) -> &[u8] {
        b"scribed"
    }

    fn version(&self) -> &[u8] {
        env!("CARGO_PKG_VERSION").as_bytes()
    }

    fn alive_since(&self) -> i64 {
        self.server.alive_since
    }

    async fn log(&mut self, entries: Vec<LogEntry>) -> Result<ResultCode, Refused> {
        let code = log(self.server, self.peer, thrift_entries(entries)).await?;
        self.state.refused = code == ResultCode::TryLater;
        Ok(code)
    }

    async fn status(&self) -> FbStatus {
        self.server.status().await
    }

    async fn status_details(&self) -> String {
        self.server.status_details().await
    }

    fn counters(&self) -> Option<Vec<(String, i64)>> {
        Some(self.server.counters.snapshot().into_iter().collect())
    }

    fn counter(&self, key: &[u8]) -> Option<i64> {
        Some(std::str::from_utf8(key).map_or(0, |k| self.server.counters.get(k)))
    }

    // No runtime options but this one, which only concerns the caller's own connection (ship
    // sets it): others are admin calls, accepted and ignored, as fb303's base implementation
    // does for unknown keys.
    async fn set_option(&mut self, key: &[u8], value: &[u8]) -> Result<(), Refused> {
        if key == CLOSE_ON_TRY_LATER {
            self.state.close_on_try_later = value == b"1";
            return Ok(());
        }
        if self.admin("setOption").await {
            return Ok(());
        }
        Err(Refused(format!(
            "setOption is an admin call; client {} is not an admin",
            self.peer.name()
        )))
    }

    fn option(&self, key: &[u8]) -> Bytes {
        let value: &'static [u8] = match key {
            CLOSE_ON_TRY_LATER if self.state.close_on_try_later => b"1",
            CLOSE_ON_TRY_LATER => b"0",
            // Tells a client whose native handshake failed that this server does speak it
            // (so the failure was transient), see `scribe_protocol::client::Client::open`.
            NATIVE_OPTION => b"1",
            _ => b"",
        };
        Bytes::from_static(value)
    }

    fn options(&self) -> Option<Vec<(Bytes, Bytes)>> {
        Some(Vec::new())
    }

    async fn reinitialize(&mut self) {
        if !self.admin("reinitialize").await {
            return;
        }
        tracing::info!(peer = %self.peer.addr, "fb303 reinitialize: reloading configuration");
        let _ = crate::reload::reload(self.server).await;
    }

    async fn shutdown(&mut self) {
        if !self.admin("shutdown").await {
            return;
        }
        tracing::info!(peer = %self.peer.addr, "fb303 shutdown requested");
        self.server.shutdown.cancel();
    }

    fn close_after(&self, took: Duration) -> bool {
        // Calls the client pipelined behind a refused (or very slow) one are never read: it
        // sends them again, in order.
        self.state.close_on_try_later && (self.state.refused || took >= SLOW_CALL)
    }
}

/// Validates, groups and routes one batch; the answer for the client, or a refusal when
/// `peer` may not write one of its categories (nothing of the batch is written then).
pub async fn log(
    server: &Server,
    peer: &Peer,
    entries: impl Iterator<Item = Incoming>,
) -> Result<ResultCode, Refused> {
    if server.shutdown.is_cancelled() {
        return Ok(ResultCode::TryLater);
    }
    route(server, peer, entries).await
}

/// [`log`], also during a graceful shutdown: for inputs with no way to say `TRY_LATER` (syslog
/// over TCP), which finish writing what they had already read before they close.
pub async fn route(
    server: &Server,
    peer: &Peer,
    entries: impl Iterator<Item = Incoming>,
) -> Result<ResultCode, Refused> {
    let groups = validate(server, group_by_category(entries));
    route_groups(server, peer, groups).await
}

async fn route_groups(
    server: &Server,
    peer: &Peer,
    groups: Vec<Batch>,
) -> Result<ResultCode, Refused> {
    if groups.is_empty() {
        return Ok(ResultCode::Ok);
    }
    let routing = server.routing.read().await;
    permit(server, &routing.rules, peer, &groups)?;
    let groups = drop_unrouted(server, &routing, groups);
    if groups.is_empty() {
        return Ok(ResultCode::Ok);
    }
    let result = routing.write(&groups).await;
    Ok(answer(server, &groups, result))
}

/// A batch's answer to come, from [`log_ahead`].
pub type Answer<'a> = BoxFuture<'a, Result<ResultCode, Refused>>;

/// [`log`] for a connection that reads ahead, its batch already grouped by category
/// (`scribe_protocol::native::decode_body_grouped`). When every store the batch goes to takes
/// it over at once ([`crate::stores::Store::takes_over`]: file and buffer stores), the batch is
/// handed over before this returns, behind the connection's earlier batches, and the answer
/// comes later (`true`: the next batch may be read meanwhile). Otherwise the returned answer
/// does the whole of [`log`] when awaited (`false`: await it before reading on). A batch
/// behind a refused one of the same `chain` is refused without being routed.
pub async fn log_ahead<'a>(
    server: &'a Server,
    peer: &'a Peer,
    groups: Vec<CategoryGroup>,
    chain: &Chain,
) -> (Answer<'a>, bool) {
    let refused = || -> (Answer<'a>, bool) { (Box::pin(ready(Ok(ResultCode::TryLater))), false) };
    if server.shutdown.is_cancelled() || chain.is_broken() {
        return refused();
    }
    let groups = validate(server, groups);
    if groups.is_empty() {
        return (Box::pin(ready(Ok(ResultCode::Ok))), true);
    }
    let routing = server.routing.read().await;
    if let Err(refusal) = permit(server, &routing.rules, peer, &groups) {
        chain.break_off();
        return (Box::pin(ready(Err(refusal))), false);
    }
    let groups = drop_unrouted(server, &routing, groups);
    if groups.is_empty() {
        return (Box::pin(ready(Ok(ResultCode::Ok))), true);
    }
    if !routing.takes_over(&groups) {
        drop(routing);
        return (Box::pin(route_groups(server, peer, groups)), false);
    }
    match routing.submit(&groups, chain) {
        Ok(answer_to_come) => {
            // Taken over: a reload from now on closes the stores, which answer what they hold.
            drop(routing);
            let answer = async move {
                let result = answer_to_come.await;
                Ok(answer(server, &groups, result))
            };
            (Box::pin(answer), true)
        }
        Err(e) => {
            chain.break_off();
            let code = answer(server, &groups, Err(e));
            (Box::pin(ready(Ok(code))), false)
        }
    }
}

/// Drops the categories no store matches, counted (as Scribe), without a per-category
/// counter: arbitrary names must not grow the counter map.
fn drop_unrouted(server: &Server, routing: &Routing, groups: Vec<Batch>) -> Vec<Batch> {
    let (groups, unrouted): (Vec<Batch>, Vec<Batch>) = groups
        .into_iter()
        .partition(|g| !routing.route(&g.category).is_empty());
    for g in &unrouted {
        server.bad_category_warn.warn(|| {
            format!(
                "dropping messages for category {}: no store matches it",
                g.category
            )
        });
        server
            .counters
            .add(None, RECEIVED_BAD, g.messages.len() as i64);
    }
    groups
}

/// Counts a routed batch by its outcome: `OK`, or `TRY_LATER` with the reason counted.
fn answer(server: &Server, groups: &[Batch], result: Result<(), RouteError>) -> ResultCode {
    match result {
        Ok(()) => {
            for g in groups {
                server.counters.add(
                    Some(g.category.as_str()),
                    RECEIVED_GOOD,
                    g.messages.len() as i64,
                );
            }
            ResultCode::Ok
        }
        Err(e) => {
            let counter = match &e {
                RouteError::Rate(_) => DENIED_RATE,
                RouteError::Denied(_) => DENIED_QUEUE,
                RouteError::Store(_) => STORE_ERRORS,
            };
            if matches!(e, RouteError::Store(_)) {
                server.store_error_warn.warn(|| format!("TRY_LATER: {e}"));
            } else {
                tracing::debug!("TRY_LATER: {e}");
            }
            for g in groups {
                server
                    .counters
                    .add(Some(g.category.as_str()), counter, g.messages.len() as i64);
            }
            ResultCode::TryLater
        }
    }
}

/// Refuses the batch if `peer` may not write one of its categories: logged (rate-limited),
/// counted per client, and the refusal names the category and what the client may write.
fn permit(
    server: &Server,
    rules: &crate::auth::Rules,
    peer: &Peer,
    groups: &[Batch],
) -> Result<(), Refused> {
    for g in groups {
        if let Err(allowed) = rules.may_write(peer, g.category.as_str()) {
            let messages: usize = groups.iter().map(|g| g.messages.len()).sum();
            let name = peer.name();
            server
                .auth_counters
                .add(DENIED_WRITES, name, messages as u64);
            server.auth_counters.add(DENIED_BATCHES, name, 1);
            let why = format!(
                "client {name} may not write category {} (it may write: {allowed})",
                g.category
            );
            let addr = peer.addr;
            server
                .auth_warn
                .warn(|| format!("refused a batch of {messages} messages from {addr}: {why}"));
            return Err(Refused(why));
        }
    }
    Ok(())
}

/// Turns groups into store batches: groups with invalid category names are dropped, counted
/// and logged (rate-limited); the rest keep their order.
fn validate(server: &Server, groups: Vec<CategoryGroup>) -> Vec<Batch> {
    let (mut bad, mut blank) = (0i64, 0i64);
    let mut batches = Vec::with_capacity(groups.len());
    for g in groups {
        match Category::new(&g.category) {
            Ok(category) => batches.push(Arc::new(
                CategoryBatch::with_ids(category, g.messages, g.ids).with_runs(g.runs),
            )),
            Err(CategoryError::Empty) => blank += g.messages.len() as i64,
            Err(err) => {
                let shown = &g.category[..g.category.len().min(64)];
                server.bad_category_warn.warn(|| {
                    let shown = String::from_utf8_lossy(shown);
                    format!("dropping messages for invalid category {shown:?}: {err}")
                });
                bad += g.messages.len() as i64;
            }
        }
    }
    server.counters.add(None, RECEIVED_BAD, bad);
    server.counters.add(None, RECEIVED_BLANK, blank);
    batches
}

impl Server {
    /// fb303 status: STOPPING while shutting down, WARNING while a store reports a problem
    /// (as Scribe did), ALIVE otherwise.
    pub async fn status(&self) -> FbStatus {
        if self.shutdown.is_cancelled() || self.stopping.load(Ordering::Acquire) {
            FbStatus::Stopping
        } else if self.status_details().await.is_empty() {
            FbStatus::Alive
        } else {
            FbStatus::Warning
        }
    }

    /// The problems stores report, one per line; empty when all is well.
    pub async fn status_details(&self) -> String {
        let routing = self.routing.read().await.clone();
        let broken = self.unserviceable();
        broken
            .into_iter()
            .chain(
                routing
                    .status()
                    .into_iter()
                    .filter_map(|s| s.problem.map(|p| format!("{}: {p}", s.name))),
            )
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Why scribed cannot accept batches at all, if it cannot.
    pub fn unserviceable(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
