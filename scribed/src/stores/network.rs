//! The network store: forwards batches to an upstream Scribe server (scribed or Scribe itself).
//!
//! Upstreams are tried in order; the one that last worked is tried first, so a failover sticks
//! until that upstream fails too. A small pool of connections lets batches from different
//! clients travel in parallel; batches are split at message boundaries to stay within the
//! frame limit, and acknowledged only when the upstream answered `OK` to every part.
//! `TRY_LATER` is reported back (the caller's client retries, or a buffer store spools).
//!
//! To a native upstream (the default when it speaks it) entries travel with their ids, so the
//! archive at the end of a relay tree recognises an entry sent twice (a retry after a lost
//! answer, a replayed spool); to a Thrift upstream the ids are lost (at-least-once).
//!
//! Each connection cuts batches further to what its upstream takes: the limits a native
//! upstream advertises in its `WELCOME`, within the store's `max_frame` (all a Thrift
//! upstream's limit can be known by). A message longer than the upstream takes could never be
//! delivered, and retrying it would hold up everything behind it (a buffer store replays in
//! order): it goes to the store's dead-letter directory (`<spool_dir>/dead-letter/<category>`,
//! fsynced before the batch is acknowledged), is counted (`dead lettered`) and logged once per
//! category, and the rest of the batch goes on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use bytes::Bytes;
use scribe_archive::{Category, DeadLetter};
use scribe_protocol::client::{Client, ClientOptions};
use scribe_protocol::split::{Oversize, OversizeSink};
use scribe_protocol::ResultCode;
use scribe_tls::{ClientTls, ClientTlsFiles, Token};
use tokio::sync::Semaphore;

use super::dead_letters::DeadLetters;
use super::lane::{Lane, Upstreams};
use super::{Batch, BuildContext, Pipeline, Store, StoreError, StoreStatus};
use crate::config::{defaults, NetworkSpec};

/// The TLS settings and token of a network store's upstreams, read from their files.
fn client_security(spec: &NetworkSpec) -> anyhow::Result<(Option<ClientTls>, Option<Token>)> {
    let files = ClientTlsFiles {
        ca: spec.tls_ca.clone(),
        cert: spec.tls_cert.clone(),
        key: spec.tls_key.clone(),
        server_name: spec.tls_server_name.clone(),
    };
    let tls = ClientTls::load_if_wanted(spec.tls, &files)?;
    let token = spec
        .token_file
        .as_deref()
        .map(Token::from_file)
        .transpose()?;
    Ok((tls, token))
}

pub struct NetworkStore {
    up: Arc<Upstreams>,
    idle: Mutex<Vec<(usize, Client)>>,
    slots: Semaphore,
    /// The ordered lane a buffer store forwards through, started on first use.
    lane: OnceLock<Arc<Lane>>,
}

impl NetworkStore {
    pub fn from_spec(spec: &NetworkSpec, ctx: &BuildContext<'_>) -> anyhow::Result<NetworkStore> {
        let (tls, token) = client_security(spec)
            .with_context(|| format!("{}: upstream TLS or token", ctx.name))?;
        let opts = ClientOptions {
            connect_timeout: spec
                .connect_timeout
                .map_or(defaults::CONNECT_TIMEOUT, |d| d.0),
            request_timeout: spec.timeout.map_or(defaults::REQUEST_TIMEOUT, |d| d.0),
            max_frame: usize::try_from(spec.max_frame.map_or(ctx.settings.max_frame, |m| m.0))
                .unwrap_or(usize::MAX),
            protocol: spec.protocol.unwrap_or_default(),
            gzip: spec.compress.unwrap_or(false),
            oversize: Some(dead_letter_sink(Arc::new(DeadLetters::new(
                ctx.name.clone(),
                DeadLetter::new(ctx.dead_letter_dir()),
                ctx.counters.clone(),
            )))),
            tls,
            token,
        };
        Ok(NetworkStore {
            up: Arc::new(Upstreams {
                name: ctx.name.clone(),
                addrs: spec.remote.clone(),
                opts,
                preferred: AtomicUsize::new(0),
                connected: AtomicBool::new(false),
                last_error: Mutex::new(None),
            }),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(spec.connections.unwrap_or(defaults::NETWORK_CONNECTIONS)),
            lane: OnceLock::new(),
        })
    }

    async fn send(&self, body: Bytes) -> Result<(), StoreError> {
        let up = &self.up;
        let _slot = self.slots.acquire().await.map_err(|_| StoreError::Closed {
            store: up.name.clone(),
        })?;
        let start = up.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..up.addrs.len() {
            let i = (start + attempt) % up.addrs.len();
            let (mut client, mut reused) = match self.take_idle(i) {
                Some(c) => (c, true),
                None => match Client::open(&up.addrs[i], up.opts.clone()).await {
                    Ok(c) => (c, false),
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                },
            };
            loop {
                match client.log_body(&body).await {
                    Ok(ResultCode::Ok) => {
                        up.answered(i);
                        self.give_back(i, client);
                        return Ok(());
                    }
                    Ok(ResultCode::TryLater) => {
                        self.give_back(i, client);
                        return Err(up.try_later(i));
                    }
                    // A pooled connection may have died while idle (the upstream restarted):
                    // that says nothing about the upstream now, so try once more on a fresh one.
                    Err(_) if reused => {
                        reused = false;
                        match Client::open(&up.addrs[i], up.opts.clone()).await {
                            Ok(c) => client = c,
                            Err(e) => {
                                last = e.to_string();
                                break;
                            }
                        }
                    }
                    // The connection is dropped; the next upstream is tried. The batch may have
                    // been written before the connection broke: entries with ids are
                    // recognised when they come again, others may be written twice.
                    Err(e) => {
                        last = e.to_string();
                        break;
                    }
                }
            }
        }
        Err(up.unreachable(last))
    }

    fn give_back(&self, upstream: usize, client: Client) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((upstream, client));
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
        for body in self.up.encode(batches) {
            // A failure after an earlier part succeeded leaves that part upstream; the
            // caller's retry sends it again (recognised by id where there is one).
            self.send(body).await?;
        }
        Ok(())
    }

    fn pipeline(&self) -> Option<Arc<dyn Pipeline>> {
        let lane = self
            .lane
            .get_or_init(|| Lane::start(self.up.clone(), defaults::NETWORK_WINDOW));
        Some(lane.clone())
    }

    fn status(&self, out: &mut Vec<StoreStatus>) {
        let up = &self.up;
        let connected = up.connected.load(Ordering::Relaxed);
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
                up.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            },
            ..StoreStatus::new(&up.name, "network")
        });
    }

    async fn close(&self) {
        self.slots.close();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(lane) = self.lane.get() {
            lane.stop();
        }
    }
}

/// Hands each message too long for an upstream to the store's [`DeadLetters`].
fn dead_letter_sink(dead: Arc<DeadLetters>) -> OversizeSink {
    OversizeSink::new(move |o: Oversize| {
        let dead = dead.clone();
        Box::pin(async move {
            // Categories were validated when the batch came in.
            let category = Category::new(&o.category).map_err(|e| e.to_string())?;
            let hop = format!("the upstream {}", o.server);
            dead.keep(&category, o.message, &hop, o.limit).await
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Args, Settings};
    use crate::counters::Counters;
    use crate::stores::CategoryBatch;
    use clap::Parser;
    use futures::{SinkExt, StreamExt};
    use scribe_protocol::scribe::encode_log_reply;
    use scribe_protocol::{decode_call, frame, Request};
    use std::sync::Arc;

    /// A Scribe server accepting frames up to `max_frame`, answering OK and recording entries.
    /// With `one_call_per_connection`, it closes each connection after one call (as an upstream
    /// restart does to pooled connections).
    async fn upstream(
        max_frame: usize,
        one_call_per_connection: bool,
    ) -> (String, Arc<Mutex<Vec<bytes::Bytes>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let got = Arc::new(Mutex::new(Vec::new()));
        let out = got.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let got = got.clone();
                tokio::spawn(async move {
                    let mut framed =
                        tokio_util::codec::Framed::new(stream, frame::codec(max_frame));
                    while let Some(Ok(f)) = framed.next().await {
                        let call = decode_call(f.freeze()).unwrap();
                        let Request::Log(entries) = call.request else {
                            // A plain Scribe server without fb303.
                            let reply = scribe_protocol::message::encode_exception(
                                &call.header,
                                scribe_protocol::message::exception_kind::UNKNOWN_METHOD,
                                "unknown method",
                            );
                            framed.send(reply).await.unwrap();
                            continue;
                        };
                        got.lock()
                            .unwrap()
                            .extend(entries.into_iter().map(|e| e.message));
                        let reply = encode_log_reply(&call.header, ResultCode::Ok);
                        framed.send(reply).await.unwrap();
                        if one_call_per_connection {
                            break;
                        }
                    }
                });
            }
        });
        (addr, out)
    }

    fn store(settings: &Settings, remote: &str) -> NetworkStore {
        store_with(settings, remote, None, None).0
    }

    /// A store with the upstream's `max_frame` and a dead-letter directory, and its counters.
    fn store_with(
        settings: &Settings,
        remote: &str,
        max_frame: Option<u64>,
        dead_letter: Option<std::path::PathBuf>,
    ) -> (NetworkStore, Arc<Counters>) {
        let spec = NetworkSpec {
            remote: vec![remote.to_string()],
            connect_timeout: None,
            timeout: None,
            connections: Some(1),
            // The mock speaks Thrift only; `auto` would fall back to it after the native try.
            protocol: None,
            compress: None,
            max_frame: max_frame.map(crate::config::values::Size),
            ..Default::default()
        };
        let counters = Arc::new(Counters::default());
        let ctx = BuildContext {
            settings,
            counters: counters.clone(),
            name: "net".into(),
            key: "k".into(),
            dead_letter,
        };
        (NetworkStore::from_spec(&spec, &ctx).unwrap(), counters)
    }

    fn batch(n: usize, size: usize) -> Batch {
        Arc::new(CategoryBatch::new(
            "c".parse().unwrap(),
            (0..n)
                .map(|i| bytes::Bytes::from(format!("{i:0size$}")))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn batches_bigger_than_a_frame_are_split_at_message_boundaries() {
        let (addr, got) = upstream(2048, false).await;
        let settings = Settings::load(&Args::parse_from(["scribed", "--max-frame", "2K"])).unwrap();
        let net = store(&settings, &addr);
        let b = batch(40, 300);
        net.write(&[b.clone(), b.clone()]).await.unwrap();
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 80);
        assert_eq!(got[..40], b.messages[..]);
    }

    /// A Thrift upstream cannot say its limit: the store's `max_frame` says it. A message
    /// longer than that goes to the dead-letter directory, counted; the rest is delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_too_long_for_the_upstream_is_dead_lettered_and_the_rest_delivered() {
        let (addr, got) = upstream(2048, false).await;
        let tmp = tempfile::tempdir().unwrap();
        let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
        let dead = tmp.path().join("dead-letter");
        let (net, counters) = store_with(&settings, &addr, Some(2048), Some(dead.clone()));
        let big = bytes::Bytes::from(vec![b'B'; 5000]);
        let mut messages = batch(10, 100).messages.clone();
        messages.insert(5, big.clone());
        let b = Arc::new(CategoryBatch::new("c".parse().unwrap(), messages.clone()));
        net.write(&[b]).await.unwrap();
        messages.remove(5);
        assert_eq!(*got.lock().unwrap(), messages);
        assert_eq!(
            std::fs::read(dead.join("c")).unwrap(),
            [&big[..], b"\n"].concat()
        );
        assert_eq!(counters.get("c:dead lettered"), 1);
        assert_eq!(counters.get("scribe_overall:dead lettered"), 1);
    }

    #[test]
    fn without_a_buffer_the_dead_letter_dir_is_where_a_spool_of_the_key_would_be() {
        let settings = Settings::load(&Args::parse_from(["scribed", "--data-dir", "/d"])).unwrap();
        let ctx = BuildContext {
            settings: &settings,
            counters: Arc::default(),
            name: "net".into(),
            key: "k".into(),
            dead_letter: None,
        };
        let want = std::path::Path::new("/d/.spool/k/dead-letter");
        assert_eq!(ctx.dead_letter_dir(), want);
        let beside = std::path::PathBuf::from("/spool/dead-letter");
        let ctx = BuildContext {
            dead_letter: Some(beside.clone()),
            ..ctx
        };
        assert_eq!(ctx.dead_letter_dir(), beside);
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_by_the_upstream_is_not_a_failure() {
        let (addr, got) = upstream(1 << 20, true).await;
        let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
        let net = store(&settings, &addr);
        for _ in 0..3 {
            net.write(&[batch(2, 10)]).await.unwrap();
        }
        assert_eq!(got.lock().unwrap().len(), 6);
        let mut st = Vec::new();
        net.status(&mut st);
        assert_eq!(st[0].upstream_connected, Some(true));
    }
}
