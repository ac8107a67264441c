//! Answers one decoded call: routes `Log` batches to the file store and serves fb303.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use scribe_archive::{Category, CategoryError};
use scribe_protocol::client::NATIVE_OPTION;
use scribe_protocol::message::{encode_exception, exception_kind};
use scribe_protocol::scribe::{
    encode_i32_reply, encode_i64_reply, encode_log_reply, encode_map_reply, encode_string_reply,
    encode_void_reply, FbStatus,
};
use scribe_protocol::thrift::ttype;
use scribe_protocol::{Call, EntryId, Request, ResultCode};

use crate::counters::{
    DENIED_QUEUE, DENIED_RATE, RECEIVED_BAD, RECEIVED_BLANK, RECEIVED_GOOD, STORE_ERRORS,
};
use crate::router::RouteError;
use crate::stores::{Batch, CategoryBatch};
use crate::Server;

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

/// The reply to send, if any (oneway calls get none).
pub async fn handle(server: &Server, call: Call, conn: &mut ConnectionState) -> Option<Bytes> {
    let h = &call.header;
    let reply = match call.request {
        Request::Log(entries) => {
            let code = log(
                server,
                entries.into_iter().map(|e| (e.category, e.message, None)),
            )
            .await;
            conn.refused = code == ResultCode::TryLater;
            encode_log_reply(h, code)
        }
        Request::GetName => encode_string_reply(h, b"scribed"),
        Request::GetVersion => encode_string_reply(h, env!("CARGO_PKG_VERSION").as_bytes()),
        Request::GetStatus => encode_i32_reply(h, server.status().await as i32),
        Request::GetStatusDetails => {
            encode_string_reply(h, server.status_details().await.as_bytes())
        }
        Request::AliveSince => encode_i64_reply(h, server.alive_since),
        Request::GetCounters => {
            let snapshot = server.counters.snapshot();
            encode_map_reply(
                h,
                ttype::I64,
                snapshot.iter().map(|(k, v)| (k.as_bytes(), *v)),
                |w, v| w.i64(v),
            )
        }
        Request::GetCounter(key) => {
            let value = std::str::from_utf8(&key).map_or(0, |k| server.counters.get(k));
            encode_i64_reply(h, value)
        }
        // No runtime options yet: accepted and ignored, as fb303's base implementation does
        // for unknown keys.
        Request::SetOption(key, value) => {
            if &key[..] == CLOSE_ON_TRY_LATER {
                conn.close_on_try_later = &value[..] == b"1";
            }
            encode_void_reply(h)
        }
        Request::GetOption(key) if &key[..] == CLOSE_ON_TRY_LATER => {
            encode_string_reply(h, if conn.close_on_try_later { b"1" } else { b"0" })
        }
        // Tells a client whose native handshake failed that this server does speak it (so
        // the failure was transient), see `scribe_protocol::client::Client::open`.
        Request::GetOption(key) if &key[..] == NATIVE_OPTION => encode_string_reply(h, b"1"),
        Request::GetOption(_) | Request::GetCpuProfile => encode_string_reply(h, b""),
        Request::GetOptions => encode_map_reply(
            h,
            ttype::STRING,
            std::iter::empty::<(&[u8], &[u8])>(),
            |w, v| w.binary(v),
        ),
        Request::Shutdown => {
            tracing::info!("fb303 shutdown requested");
            server.shutdown.cancel();
            return None;
        }
        Request::Reinitialize => {
            tracing::info!("fb303 reinitialize: reloading configuration");
            let _ = crate::reload::reload(server).await;
            return None;
        }
        Request::Unknown => encode_exception(
            h,
            exception_kind::UNKNOWN_METHOD,
            &format!("Invalid method name: '{}'", h.name),
        ),
    };
    Some(reply)
}

/// One entry of a batch, from either protocol: category, message, id (native only).
pub type Incoming = (Bytes, Bytes, Option<EntryId>);

/// Validates, groups and routes one batch; the answer for the client.
pub async fn log(server: &Server, entries: impl Iterator<Item = Incoming>) -> ResultCode {
    if server.shutdown.is_cancelled() {
        return ResultCode::TryLater;
    }
    let groups = group_by_category(server, entries);
    if groups.is_empty() {
        return ResultCode::Ok;
    }
    let routing = server.routing.read().await;
    // Categories no store matches are dropped and counted (as Scribe), without a per-category
    // counter: arbitrary names must not grow the counter map.
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
    if groups.is_empty() {
        return ResultCode::Ok;
    }
    match routing.write(&groups).await {
        Ok(()) => {
            for g in &groups {
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
            for g in &groups {
                server
                    .counters
                    .add(Some(g.category.as_str()), counter, g.messages.len() as i64);
            }
            ResultCode::TryLater
        }
    }
}

/// Splits a batch by category, keeping each category's messages in arrival order. Entries with
/// invalid category names are dropped, counted and logged (rate-limited); the rest are kept.
fn group_by_category(server: &Server, entries: impl Iterator<Item = Incoming>) -> Vec<Batch> {
    let mut groups: Vec<(Category, Vec<Bytes>, Vec<Option<EntryId>>)> = Vec::new();
    // Raw name -> index into `groups`, or None when the name was invalid.
    let mut index: HashMap<Bytes, Option<usize>> = HashMap::new();
    let (mut bad, mut blank) = (0i64, 0i64);
    // Consecutive messages nearly always share a category: compare with the previous one
    // before hashing.
    let mut last: Option<(Bytes, Option<usize>)> = None;
    for (category, message, id) in entries {
        let cached = last
            .as_ref()
            .filter(|(name, _)| *name == category)
            .map(|(_, slot)| *slot);
        let slot = match cached.or_else(|| index.get(&category).copied()) {
            Some(slot) => slot,
            None => {
                let slot = match Category::new(&category) {
                    Ok(valid) => {
                        groups.push((valid, Vec::new(), Vec::new()));
                        Some(groups.len() - 1)
                    }
                    Err(err) => {
                        if err != CategoryError::Empty {
                            let shown =
                                String::from_utf8_lossy(&category[..category.len().min(64)])
                                    .into_owned();
                            server.bad_category_warn.warn(|| {
                                format!("dropping messages for invalid category {shown:?}: {err}")
                            });
                        }
                        None
                    }
                };
                index.insert(category.clone(), slot);
                slot
            }
        };
        if cached.is_none() {
            last = Some((category.clone(), slot));
        }
        match slot {
            Some(i) => {
                groups[i].1.push(message);
                groups[i].2.push(id);
            }
            None if category.is_empty() => blank += 1,
            None => bad += 1,
        }
    }
    server.counters.add(None, RECEIVED_BAD, bad);
    server.counters.add(None, RECEIVED_BLANK, blank);
    groups
        .into_iter()
        .map(|(c, m, ids)| Arc::new(CategoryBatch::with_ids(c, m, ids)))
        .collect()
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
