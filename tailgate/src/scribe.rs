//! `--scribe-listen`: accepts Scribe `Log()` calls, so scribed (a `network` store) or any
//! Scribe client can push lines straight into tailgate, with no file hop.
//!
//! Connections are served by `scribe_protocol::server` (frames capped at `max_frame` and read
//! within a listener-wide memory budget, replies under a timeout, fb303's default answers);
//! what is tailgate's is below: every batch is answered `OK` and its lines published to the
//! hub, each valid category's in order. A batch naming an invalid category is still answered
//! `OK` for its valid part (the invalid entries are counted and logged, not retried forever),
//! matching what a live tail is for: best effort, never backpressure on the pipeline.
//!
//! Whatever a client can provoke is logged rate-limited, at most once a second per kind, so a
//! client looping on bad input cannot flood tailgate's log.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use scribe_archive::category::CategoryGlob;
use scribe_archive::Category;
use scribe_cli::RateLimitedWarn;
use scribe_protocol::server::{group_by_category, thrift_entries};
use scribe_protocol::{
    LogEntry, Refused, ResultCode, ScribeService, ServeError, ServerConnection, ServerLimits,
};
use scribe_tls::{ServerTls, Stream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// A connection that sends nothing for this long is closed (its partial frame freed).
const IDLE: Duration = Duration::from_secs(300);
/// At most one warning this often per kind of trouble a client can cause.
const WARN_EVERY: Duration = Duration::from_secs(1);

pub struct ScribeListener {
    pub hub: Arc<Hub>,
    pub max_frame: usize,
    /// Frame bytes held at once over all connections (raised to `max_frame` if below).
    pub memory: usize,
    pub max_connections: usize,
    pub shutdown: CancellationToken,
    /// Speak TLS (and, with a client CA, require client certificates).
    pub tls: Option<Arc<ServerTls>>,
    /// `--scribe-allow`: which certificate may write which categories; empty: any client,
    /// any category.
    pub allow: Vec<Allow>,
}

/// One `--scribe-allow CERTNAME=GLOB[,GLOB...]`.
#[derive(Debug, Clone)]
pub struct Allow {
    pub name: String,
    pub globs: Vec<CategoryGlob>,
}

/// Parses `--scribe-allow`.
pub fn parse_allow(s: &str) -> Result<Allow, String> {
    let (name, globs) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not CERTNAME=GLOB[,GLOB...]"))?;
    if name.is_empty() {
        return Err(format!("{s:?}: the certificate name is empty"));
    }
    let globs = globs
        .split(',')
        .map(|g| CategoryGlob::new(g).map_err(|e| format!("{g:?}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Allow {
        name: name.to_string(),
        globs,
    })
}

/// What every connection shares.
struct Shared {
    hub: Arc<Hub>,
    limits: ServerLimits,
    alive_since: i64,
    shutdown: CancellationToken,
    /// Unreadable frames, malformed calls, connections over the limit.
    bad_input: RateLimitedWarn,
    /// Lines refused: an invalid category, or more categories than the hub keeps.
    refused: RateLimitedWarn,
    tls: Option<Arc<ServerTls>>,
    allow: Vec<Allow>,
}

impl ScribeListener {
    pub async fn run(self, listener: TcpListener) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let shared = Arc::new(Shared {
            limits: ServerLimits::new(self.max_frame, self.memory, Some(IDLE)),
            alive_since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            hub: self.hub,
            shutdown: self.shutdown,
            bad_input: RateLimitedWarn::new(WARN_EVERY),
            refused: RateLimitedWarn::new(WARN_EVERY),
            tls: self.tls,
            allow: self.allow,
        });
        loop {
            let accepted = tokio::select! {
                _ = shared.shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning (and logging) in a loop.
                    tracing::warn!("scribe listener: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                shared
                    .bad_input
                    .warn(|| format!("scribe listener: refusing {peer}: connection limit reached"));
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                shared.serve(stream).await;
                drop(permit);
            });
        }
    }
}

impl Shared {
    async fn serve(&self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let (stream, identity) = match &self.tls {
            None => (Stream::Plain(stream), None),
            Some(tls) => match tls.accept(stream, scribe_tls::HANDSHAKE_TIMEOUT).await {
                Ok((s, id)) => (Stream::Server(Box::new(s)), id),
                Err(scribe_tls::AcceptError::Closed) => return,
                Err(e) => {
                    self.bad_input
                        .warn(|| format!("scribe connection {peer:?}: {e}"));
                    return;
                }
            },
        };
        let permits = self.permits(identity.as_ref());
        let mut conn = ServerConnection::new(stream, self.limits.clone());
        // `ship` (and a scribed relay) first try the native protocol; tailgate speaks Thrift
        // only. Closing at once is the answer they expect: they reconnect over Thrift. Not
        // a client error, so not a warning per connection.
        if let Ok(Some(start)) = conn.peek_start().await {
            if start == scribe_protocol::native::MAGIC {
                tracing::debug!("scribe connection {peer:?}: native protocol probe; closing so it falls back to Thrift");
                return;
            }
        }
        let mut service = Tailgate {
            shared: self,
            permits,
        };
        match conn.serve(&mut service, &self.shutdown).await {
            Ok(()) => {}
            Err(e @ ServeError::Reply(_)) => {
                tracing::debug!("scribe connection {peer:?}: {e}");
            }
            Err(e) => self
                .bad_input
                .warn(|| format!("scribe connection {peer:?}: {e}")),
        }
    }

    /// What a client may write: `None` for anything (no `--scribe-allow`); otherwise the
    /// globs of the first entry naming its certificate (none without one).
    fn permits(&self, id: Option<&scribe_tls::PeerIdentity>) -> Option<Vec<CategoryGlob>> {
        if self.allow.is_empty() {
            return None;
        }
        let found = id.and_then(|id| self.allow.iter().find(|a| id.is_named(&a.name)));
        Some(found.map(|a| a.globs.clone()).unwrap_or_default())
    }

    /// Publishes each valid category's lines (without their trailing newline), in order.
    fn publish(&self, entries: Vec<LogEntry>) {
        for mut g in group_by_category(thrift_entries(entries)) {
            let n = g.messages.len();
            let category = match Category::new(&g.category) {
                Ok(c) => c,
                Err(e) => {
                    self.hub
                        .metrics
                        .lines_refused
                        .fetch_add(n as u64, Ordering::Relaxed);
                    self.refused.warn(|| format!("refusing {n} lines: {e}"));
                    continue;
                }
            };
            for m in &mut g.messages {
                if m.last() == Some(&b'\n') {
                    m.truncate(m.len() - 1);
                }
            }
            // The hub counts what it refuses.
            if let Err(e) = self.hub.publish(category.as_str(), g.messages) {
                self.refused
                    .warn(|| format!("lines of {category} not kept: {e}"));
            }
        }
    }
}

/// tailgate's answers on one connection: every batch `OK`; fb303 as its defaults, except the
/// message for what tailgate does not offer (counters, options).
struct Tailgate<'a> {
    shared: &'a Shared,
    /// What this client may write (`None`: anything).
    permits: Option<Vec<CategoryGlob>>,
}

impl ScribeService for Tailgate<'_> {
    fn name(&self) -> &[u8] {
        b"tailgate"
    }

    fn version(&self) -> &[u8] {
        env!("CARGO_PKG_VERSION").as_bytes()
    }

    fn alive_since(&self) -> i64 {
        self.shared.alive_since
    }

    async fn log(&mut self, entries: Vec<LogEntry>) -> Result<ResultCode, Refused> {
        if let Some(globs) = &self.permits {
            if let Some(e) = entries.iter().find(|e| {
                let c = String::from_utf8_lossy(&e.category);
                !globs.iter().any(|g| g.matches(&c))
            }) {
                let why = format!(
                    "this client may not push category {}",
                    String::from_utf8_lossy(&e.category)
                );
                self.shared
                    .refused
                    .warn(|| format!("refused a push: {why}"));
                return Err(Refused(why));
            }
        }
        self.shared.publish(entries);
        Ok(ResultCode::Ok)
    }

    fn unknown_method(&self, _method: &str) -> String {
        "not supported by tailgate".into()
    }
}

#[cfg(test)]
mod tests;
