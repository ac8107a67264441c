//! Binds the listen addresses, accepts connections, and runs the graceful shutdown:
//! stop accepting, let every connection finish the call it is handling, then close the
//! writers (which write what is queued and fsync).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use scribe_tls::{ServerTls, Stream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Peer, TLS_FAILURES};
use crate::config::ListenerSettings;
use crate::{connection, http, reload, Args, Server, Settings};

/// One bound listener: its settings and, for a TLS one, its certificates.
struct Bound {
    socket: TcpListener,
    settings: Arc<ListenerSettings>,
    tls: Option<Arc<ServerTls>>,
}

/// How long shutdown waits for connections to finish their current call.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the server until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    args: Args,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let mut listeners = Vec::new();
    for l in settings.all_listeners() {
        let (at, addr) = (l.at.clone(), l.address);
        let tls = match &l.tls {
            Some(files) => Some(Arc::new(
                ServerTls::load(files.clone()).with_context(|| format!("{at} ({addr})"))?,
            )),
            None => None,
        };
        let socket = bind(addr).with_context(|| format!("binding {at} ({addr})"))?;
        listeners.push(Bound {
            socket,
            settings: Arc::new(l),
            tls,
        });
    }
    warn_open_listeners(&settings, &listeners);
    let status_listener = TcpListener::bind(settings.status_listen)
        .await
        .with_context(|| format!("binding status address {}", settings.status_listen))?;
    let bound: Vec<String> = listeners
        .iter()
        .map(|l| l.socket.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    let status_addr = status_listener.local_addr()?;
    let inputs = crate::inputs::bind(&settings.inputs, &settings.kafka_inputs).await?;
    let max_connections = settings.max_connections;
    crate::config::warn_unclaimed_spools(&settings);
    let ready_file = settings.ready_file.clone();
    let server = Arc::new(
        Server::new(args, settings, shutdown.clone())
            .await
            .context("building stores")?,
    );
    {
        let routing = server.routing.read().await;
        let s = &routing.settings;
        tracing::info!(
            addrs = ?bound,
            status = %status_addr,
            data_dir = %s.data_dir.display(),
            config = ?s.config_path,
            stores = s.stores.len(),
            "scribed listening"
        );
    }
    if let Some(path) = &ready_file {
        let mut text = format!("{}\nstatus {status_addr}\n", bound.join("\n"));
        for (name, addr) in &inputs.addrs {
            text.push_str(&format!("input {name} {addr}\n"));
        }
        scribe_fs::write_atomically(path, text.as_bytes())
            .with_context(|| format!("writing ready file {}", path.display()))?;
    }
    *server.tls.lock().unwrap_or_else(|e| e.into_inner()) = listeners
        .iter()
        .filter_map(|l| Some((l.settings.at.clone(), l.tls.clone()?)))
        .collect();
    reload::on_sighup(server.clone())?;

    let slots = Arc::new(Semaphore::new(max_connections));
    let tracker = TaskTracker::new();
    tracker.spawn(http::serve(status_listener, server.clone()));
    crate::inputs::spawn(inputs, &server, &tracker)?;
    for listener in listeners {
        tracker.spawn(accept_loop(
            listener,
            server.clone(),
            slots.clone(),
            tracker.clone(),
        ));
    }

    shutdown.cancelled().await;
    server.stopping.store(true, Ordering::Release);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing anyway");
    }
    let routing = server.routing.read().await.clone();
    routing.close().await;
    tracing::info!("scribed stopped");
    Ok(())
}

/// Pending connections the kernel queues before scribed accepts them. tokio's default (128)
/// overflows when a fleet of shippers reconnects at once after a restart, and the kernel then
/// drops SYNs: those clients wait a second or more for the retransmit.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` as `TcpListener::bind` does (address reuse on Unix), with [`LISTEN_BACKLOG`].
fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Says so at startup when a listener others can reach lets anyone write: no TLS, no
/// `[[client]]` rules (so no tokens or certificate identities), not on loopback.
fn warn_open_listeners(settings: &Settings, listeners: &[Bound]) {
    for l in listeners {
        let s = &l.settings;
        if !s.address.ip().is_loopback() && s.tls.is_none() && settings.clients.is_empty() {
            tracing::warn!(
                "{} ({}) is reachable beyond this host without TLS and without [[client]] \
                 rules: anyone who can connect may write any category (docs/security.md)",
                s.at,
                s.address
            );
        }
    }
}

async fn accept_loop(
    listener: Bound,
    server: Arc<Server>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            a = listener.socket.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let server = server.clone();
                    let settings = listener.settings.clone();
                    let tls = listener.tls.clone();
                    tracker.spawn(async move {
                        if let Some((stream, peer)) =
                            handshake(&server, stream, addr, settings, tls).await
                        {
                            connection::serve(server, stream, peer).await;
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    server
                        .bad_frame_warn
                        .warn(|| format!("refusing connection from {addr}: at max-connections"));
                }
            },
            Err(e) => {
                // Typically EMFILE: back off instead of spinning, and keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The TLS handshake on a TLS listener (bounded in time; failures logged rate-limited and
/// counted per listener), and who the peer is: its certificate matched to a `[[client]]`.
async fn handshake(
    server: &Server,
    stream: TcpStream,
    addr: std::net::SocketAddr,
    listener: Arc<ListenerSettings>,
    tls: Option<Arc<ServerTls>>,
) -> Option<(Stream, Peer)> {
    let mut peer = Peer {
        addr,
        listener,
        certificate: None,
        client: None,
    };
    let Some(tls) = tls else {
        return Some((Stream::Plain(stream), peer));
    };
    match tls.accept(stream, scribe_tls::HANDSHAKE_TIMEOUT).await {
        Ok((stream, certificate)) => {
            if let Some(id) = &certificate {
                let rules = server.routing.read().await.rules.clone();
                peer.client = rules.by_certificate(id).map(str::to_string);
            }
            peer.certificate = certificate;
            Some((Stream::Server(Box::new(stream)), peer))
        }
        Err(scribe_tls::AcceptError::Closed) => None,
        Err(e) => {
            let at = &peer.listener.at;
            server.auth_counters.add(TLS_FAILURES, at, 1);
            server
                .auth_warn
                .warn(|| format!("{at}: connection from {addr}: {e}"));
            None
        }
    }
}
