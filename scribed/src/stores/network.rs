//! The network store: forwards batches to an upstream Scribe server (scribed or Scribe itself).
//!
//! Upstreams are tried in order; the one that last worked is tried first, so a failover sticks
//! until that upstream fails too. A small pool of connections lets batches from different
//! clients travel in parallel; each batch is one `Log` call and is acknowledged only when the
//! upstream answers `OK`. `TRY_LATER` is reported back (the caller's client retries, or a
//! buffer store spools).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use scribe_protocol::client::{Client, ClientOptions};
use scribe_protocol::{HeaderStyle, LogBatchBuilder, ResultCode};
use tokio::sync::Semaphore;

use super::{Batch, BuildContext, Store, StoreError, StoreStatus};
use crate::config::{defaults, NetworkSpec};

pub struct NetworkStore {
    name: String,
    upstreams: Vec<String>,
    opts: ClientOptions,
    /// Index of the upstream that last answered.
    preferred: AtomicUsize,
    idle: Mutex<Vec<(usize, Client)>>,
    slots: Semaphore,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl NetworkStore {
    pub fn from_spec(spec: &NetworkSpec, ctx: &BuildContext<'_>) -> NetworkStore {
        NetworkStore {
            name: ctx.name.clone(),
            upstreams: spec.remote.clone(),
            opts: ClientOptions {
                connect_timeout: spec
                    .connect_timeout
                    .map_or(defaults::CONNECT_TIMEOUT, |d| d.0),
                request_timeout: spec.timeout.map_or(defaults::REQUEST_TIMEOUT, |d| d.0),
                max_frame: usize::try_from(ctx.settings.max_frame).unwrap_or(usize::MAX),
            },
            preferred: AtomicUsize::new(0),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(spec.connections.unwrap_or(defaults::NETWORK_CONNECTIONS)),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    /// Encodes batches as one `Log` call; `None` when they exceed a frame (the caller splits).
    fn encode(batches: &[Batch]) -> bytes::Bytes {
        let size: usize = batches.iter().map(|b| b.bytes as usize).sum();
        let mut builder = LogBatchBuilder::new(HeaderStyle::Unversioned, size + 64);
        for b in batches {
            let cat = b.category.as_str().as_bytes();
            for m in &b.messages {
                builder.push(cat, m);
            }
        }
        builder.finish()
    }

    async fn send(&self, call: bytes::Bytes) -> Result<(), StoreError> {
        let _slot = self.slots.acquire().await.map_err(|_| StoreError::Closed {
            store: self.name.clone(),
        })?;
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..self.upstreams.len() {
            let i = (start + attempt) % self.upstreams.len();
            let mut client = match self.take_idle(i) {
                Some(c) => c,
                None => match Client::connect(&self.upstreams[i], self.opts.clone()).await {
                    Ok(c) => c,
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                },
            };
            match client.log(call.clone()).await {
                Ok(ResultCode::Ok) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    self.connected.store(true, Ordering::Relaxed);
                    self.idle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, client));
                    return Ok(());
                }
                Ok(ResultCode::TryLater) => {
                    self.idle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, client));
                    return Err(StoreError::TryLater {
                        store: self.name.clone(),
                        upstream: self.upstreams[i].clone(),
                    });
                }
                // The connection is dropped; the next upstream is tried. The batch may have
                // been written before the connection broke: at-least-once.
                Err(e) => last = e.to_string(),
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(last.clone());
        Err(StoreError::Unavailable {
            store: self.name.clone(),
            reason: last,
        })
    }

    fn take_idle(&self, upstream: usize) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let pos = idle.iter().position(|(i, _)| *i == upstream)?;
        Some(idle.swap_remove(pos).1)
    }
}

#[async_trait::async_trait]
impl Store for NetworkStore {
    async fn write(&self, batches: &[Batch]) -> Result<(), StoreError> {
        // Keep each call within the frame limit the upstream (by default) accepts.
        let limit = (self.opts.max_frame / 2).max(1);
        let mut start = 0;
        let mut size = 0usize;
        for (i, b) in batches.iter().enumerate() {
            if i > start && size + b.bytes as usize > limit {
                self.send(Self::encode(&batches[start..i])).await?;
                start = i;
                size = 0;
            }
            size += b.bytes as usize + b.messages.len() * 32;
        }
        if start < batches.len() {
            self.send(Self::encode(&batches[start..])).await?;
        }
        Ok(())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        let connected = self.connected.load(Ordering::Relaxed);
        out.push(StoreStatus {
            state: if connected {
                "connected"
            } else {
                "disconnected"
            }
            .into(),
            upstream_connected: Some(connected),
            problem: if connected {
                None
            } else {
                self.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            },
            ..StoreStatus::new(&self.name, "network")
        });
    }

    async fn close(&self) {
        self.slots.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
