//! `scribed`, the aggregator: a Scribe-compatible Thrift server that writes size-rotated
//! category files.
//!
//! - [`config`] — settings and their flags.
//! - [`listener`] — binds, accepts, and runs the graceful shutdown.
//! - [`connection`] — one client connection, frames in, replies out.
//! - [`handler`] — what each call does (`Log` and fb303).
//! - [`store`] — per-category writer tasks behind byte-bounded queues.
//! - [`counters`] — fb303 counters with Scribe's names; rate-limited warnings.
//! - [`shutdown`] — SIGINT/SIGTERM.
//!
//! Acknowledgement: `Log` answers `OK` only after every message of the batch was handed to
//! `write(2)` on its category file (in the page cache, not yet fsynced); otherwise `TRY_LATER`.

pub mod config;
pub mod connection;
pub mod counters;
pub mod handler;
pub mod listener;
pub mod shutdown;
pub mod store;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scribe_archive::WriterOptions;
use tokio_util::sync::CancellationToken;

pub use config::Config;
use counters::{Counters, RateLimitedWarn};
use store::{FileStore, StoreLimits};

/// State shared by every connection.
pub struct Server {
    pub store: FileStore,
    pub counters: Counters,
    /// Unix time the server started (fb303 `aliveSince`).
    pub alive_since: i64,
    pub max_frame: usize,
    /// Cancelled to begin a graceful shutdown (signal or fb303 `shutdown`).
    pub shutdown: CancellationToken,
    pub(crate) stopping: AtomicBool,
    pub(crate) bad_category_warn: RateLimitedWarn,
    pub(crate) bad_frame_warn: RateLimitedWarn,
}

impl Server {
    pub fn new(config: &Config, shutdown: CancellationToken) -> Server {
        Server {
            store: FileStore::new(
                config.data_dir.clone(),
                WriterOptions {
                    max_size: config.max_size,
                },
                StoreLimits {
                    max_category_queue: config.max_category_queue,
                    max_queue: config.max_queue,
                },
            ),
            counters: Counters::default(),
            alive_since: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            max_frame: usize::try_from(config.max_frame).unwrap_or(usize::MAX),
            shutdown,
            stopping: AtomicBool::new(false),
            bad_category_warn: RateLimitedWarn::new(Duration::from_secs(1)),
            bad_frame_warn: RateLimitedWarn::new(Duration::from_secs(1)),
        }
    }
}

pub use listener::run;
