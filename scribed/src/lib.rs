//! `scribed`, the aggregator: a Scribe-compatible Thrift server that routes categories to
//! stores (files, upstream aggregators, disk-buffered relays, fan-out, shards).
//!
//! - [`config`] — settings: TOML file, flags, validation.
//! - [`listener`] — binds, accepts, runs the graceful shutdown.
//! - [`connection`] — one client connection: tells the protocols apart; Thrift calls in,
//!   replies out, in order.
//! - [`native`] — one native-protocol connection: batches in, `ACK`s out, in order.
//! - [`handler`] — what each call does (`Log` and fb303).
//! - [`router`] — which stores a category goes to; one batch's write through them.
//! - [`admission`] — queue caps and the rate limit, decided per batch.
//! - [`auth`] — who a client is (certificate, token) and what it may write or call.
//! - [`stores`] — file, network, buffer, multi, bucket, null, kafka (cargo feature `kafka`).
//! - [`http`] — `/metrics`, `/health`, `/status`.
//! - [`inputs`] — syslog (TCP, UDP) and OTLP/HTTP listeners, and Kafka topics (`[[kafka_input]]`, the archiver), routed as `Log` calls are.
//! - [`reload`] — SIGHUP / fb303 `reinitialize`: swap in a new configuration.
//! - [`locks`] — one directory, one scribed: the data and store directory locks.
//! - [`counters`] — fb303 counters with Scribe's names.
//!
//! Acknowledgement: `Log` answers `OK` only when every store the batch's categories route to
//! accepted it by that store's durability policy (docs/durability.md); otherwise `TRY_LATER`.

pub mod admission;
pub mod auth;
pub mod config;
pub mod connection;
pub mod counters;
pub mod handler;
pub mod http;
pub mod inputs;
pub mod listener;
pub mod locks;
pub mod native;
pub mod reload;
pub mod router;
pub mod stores;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scribe_protocol::ServerLimits;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

pub use config::{Args, Settings};
use counters::Counters;
use router::Routing;
use scribe_cli::RateLimitedWarn;

/// State shared by every connection.
pub struct Server {
    /// The configuration in force. A `Log` call holds the read lock while its batch is
    /// written, so a reload (write lock) waits for in-flight batches and none is half-routed.
    pub routing: RwLock<Arc<Routing>>,
    pub counters: Arc<Counters>,
    /// The flags scribed started with; a reload re-reads the config file under them.
    pub args: Args,
    /// Unix time the server started (fb303 `aliveSince`).
    pub alive_since: i64,
    /// `--max-frame`; the frame-memory budget every connection shares ([`frame_memory_budget`]),
    /// each holding permits for its frame until the call is answered; `--idle-timeout`.
    pub limits: ServerLimits,
    /// Cancelled to begin a graceful shutdown (signal or fb303 `shutdown`).
    pub shutdown: CancellationToken,
    pub(crate) stopping: AtomicBool,
    /// Set when a reload left no working stores (see [`reload`]).
    pub(crate) broken: std::sync::Mutex<Option<String>>,
    /// Refusals (categories, admin calls, tokens) and failed TLS handshakes, counted.
    pub auth_counters: auth::AuthCounters,
    /// TLS listeners, whose certificates a SIGHUP re-reads.
    pub(crate) tls: std::sync::Mutex<Vec<(String, Arc<scribe_tls::ServerTls>)>>,
    pub(crate) auth_warn: RateLimitedWarn,
    pub(crate) bad_category_warn: RateLimitedWarn,
    pub(crate) bad_frame_warn: RateLimitedWarn,
    pub(crate) store_error_warn: RateLimitedWarn,
    /// Per-listener counters of the syslog and OTLP inputs, for `/metrics`.
    pub inputs: inputs::Registry,
}

impl Server {
    pub async fn new(
        args: Args,
        settings: Settings,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Server> {
        let counters = Arc::new(Counters::default());
        let max_frame = usize::try_from(settings.max_frame).unwrap_or(usize::MAX);
        let idle_timeout = settings.idle_timeout;
        let routing = Routing::build(settings, counters.clone()).await?;
        Ok(Server {
            routing: RwLock::new(Arc::new(routing)),
            counters,
            args,
            alive_since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            limits: ServerLimits::new(
                max_frame,
                frame_memory_budget(max_frame),
                Some(idle_timeout),
            ),
            shutdown,
            stopping: AtomicBool::new(false),
            broken: std::sync::Mutex::new(None),
            auth_counters: Default::default(),
            tls: Default::default(),
            auth_warn: RateLimitedWarn::new(Duration::from_secs(1)),
            bad_category_warn: RateLimitedWarn::new(Duration::from_secs(1)),
            bad_frame_warn: RateLimitedWarn::new(Duration::from_secs(1)),
            store_error_warn: RateLimitedWarn::new(Duration::from_secs(1)),
            inputs: inputs::Registry::default(),
        })
    }
}

/// Bytes of frames all connections together may hold: 256 MiB, or four frames if that is more.
pub fn frame_memory_budget(max_frame: usize) -> usize {
    (256usize << 20)
        .max(max_frame.saturating_mul(4))
        .min(tokio::sync::Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize)
}

pub use listener::run;
