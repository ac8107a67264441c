//! Syslog listeners: TCP (RFC 6587 framing, chosen per connection by `scribe_syslog`'s
//! [`Deframer`]) and UDP (one message per datagram).
//!
//! A TCP connection reads, frames, classifies and hands what it read to
//! [`handler::route`] as one batch, then reads again: while the stores answer `TRY_LATER` it
//! retries that batch and reads nothing, so the kernel's buffers fill and the sender's own
//! queue holds the rest. [`serve_stream`] is generic over the stream, so TLS (RFC 5425) is a
//! wrapper around the accepted socket.
//!
//! At a graceful shutdown a connection half-closes: the sender sees the end of the stream
//! (rsyslog checks for it before each send), stops sending, closes its side and queues the
//! rest for its next connection. Plain TCP syslog has no acknowledgement, so the sender
//! counts a message delivered once its kernel took it: whatever reached our socket must be
//! read and written, or closing with unread bytes resets the connection and loses them. So
//! the connection keeps reading until the sender's end of stream, stopping early only when
//! the sender has been silent for [`DRAIN_IDLE`] (it sends nothing more, so nothing is cut)
//! or after [`DRAIN_MAX`]. UDP cannot push back: a batch the stores refuse is dropped and
//! counted, and the socket's receive buffer (`recv_buffer`) absorbs bursts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use scribe_protocol::ResultCode;
use scribe_syslog::{datagram, Deframer, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::InputStats;
use crate::config::inputs::SyslogInput;
use crate::{handler, Server};

/// Bytes asked of one read: one batch is at most this plus one message.
const READ_CHUNK: usize = 256 << 10;
/// Datagrams taken into one batch.
const UDP_BATCH: usize = 1024;
/// After a shutdown begins, a connection whose sender has sent nothing for this long (and
/// has not closed its side) is closed: a sender that is not sending loses nothing by it.
pub const DRAIN_IDLE: Duration = Duration::from_secs(2);
/// After a shutdown begins, the longest a connection goes on reading, and the longest a
/// batch the stores refuse is retried. Below the listener's own 30 s wait for connections,
/// so whatever is still unwritten then is counted and logged here, not cut silently.
pub const DRAIN_MAX: Duration = Duration::from_secs(25);

/// Binds a UDP listener with its receive buffer.
pub fn bind_udp(input: &SyslogInput) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(
        Domain::for_address(input.listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if let Some(n) = input.recv_buffer {
        s.set_recv_buffer_size(n)?;
        // Linux doubles what it grants, and caps it at net.core.rmem_max.
        let got = s.recv_buffer_size()?;
        if got < n {
            tracing::warn!(
                input = %input.name,
                "recv_buffer {n}: the kernel granted {got} bytes (raise net.core.rmem_max)"
            );
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&input.listen.into())?;
    UdpSocket::from_std(s.into())
}

pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<scribe_tls::ServerTls>>,
    input: Arc<SyslogInput>,
    stats: Arc<InputStats>,
    server: Arc<Server>,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(input.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    let (input, stats, server) = (input.clone(), stats.clone(), server.clone());
                    let tls = tls.clone();
                    tracker.spawn(async move {
                        if let Some(stream) = handshake(stream, peer, tls, &input, &server).await {
                            serve_stream(stream, peer, &input, &stats, &server).await;
                        }
                        drop(permit);
                    });
                }
                Err(_) => server.bad_frame_warn.warn(|| {
                    format!(
                        "{}: refusing connection from {peer}: at max_connections",
                        input.name
                    )
                }),
            },
            Err(e) => {
                tracing::warn!("{}: accept failed: {e}", input.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The TLS handshake on a TLS input (RFC 5425), bounded in time; failures are logged
/// rate-limited and counted per input. A plaintext input passes the socket through.
async fn handshake(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<scribe_tls::ServerTls>>,
    input: &SyslogInput,
    server: &Server,
) -> Option<scribe_tls::Stream> {
    let Some(tls) = tls else {
        return Some(scribe_tls::Stream::Plain(stream));
    };
    match tls.accept(stream, scribe_tls::HANDSHAKE_TIMEOUT).await {
        Ok((s, _identity)) => Some(scribe_tls::Stream::Server(Box::new(s))),
        Err(scribe_tls::AcceptError::Closed) => None,
        Err(e) => {
            server
                .auth_counters
                .add(crate::auth::TLS_FAILURES, &input.name, 1);
            server
                .auth_warn
                .warn(|| format!("{}: connection from {peer}: {e}", input.name));
            None
        }
    }
}

/// Serves one syslog stream until its sender closes it, it idles past `idle_timeout`, its
/// framing breaks, or shutdown (after the drain).
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    input: &SyslogInput,
    stats: &InputStats,
    server: &Server,
) {
    stats
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let idle = server.routing.read().await.settings.idle_timeout;
    let mut d = Deframer::new(input.max_message);
    let mut drain_until: Option<Instant> = None;
    loop {
        d.buffer().reserve(READ_CHUNK);
        let read = match drain_until {
            Some(deadline) => {
                let quiet = (Instant::now() + DRAIN_IDLE).min(deadline);
                match tokio::time::timeout_at(quiet, stream.read_buf(d.buffer())).await {
                    Ok(r) => r,
                    Err(_) => {
                        if Instant::now() >= deadline {
                            tracing::warn!(
                                "{}: {peer} still sending {DRAIN_MAX:?} after shutdown began; closing",
                                input.name
                            );
                        }
                        break;
                    }
                }
            }
            None => tokio::select! {
                _ = server.shutdown.cancelled() => {
                    // Our FIN tells the sender to stop and reconnect later; what it sent before
                    // seeing it is still read, up to its own end of stream.
                    let _ = stream.shutdown().await;
                    drain_until = Some(Instant::now() + DRAIN_MAX);
                    continue;
                }
                r = tokio::time::timeout(idle, stream.read_buf(d.buffer())) => match r {
                    Ok(r) => r,
                    Err(_) => {
                        // Half-close and drain as at shutdown: a message sent just as the
                        // timeout fired is read, not reset away.
                        tracing::debug!("{}: closing idle connection from {peer}", input.name);
                        let _ = stream.shutdown().await;
                        drain_until = Some(Instant::now() + DRAIN_MAX);
                        continue;
                    }
                },
            },
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("{}: read from {peer}: {e}", input.name);
                break;
            }
        }
        let mut frames = Vec::new();
        let fatal = loop {
            match d.next_frame() {
                Ok(Some(Frame::Message(m))) => frames.push(m),
                Ok(Some(Frame::Oversize(n))) => {
                    InputStats::add(&stats.oversize, 1);
                    server.bad_frame_warn.warn(|| {
                        format!(
                            "{}: skipped a message of {n} bytes from {peer} (max_message {})",
                            input.name, input.max_message
                        )
                    });
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        deliver(server, input, stats, frames, true).await;
        if let Some(e) = fatal {
            InputStats::add(&stats.bad_input, 1);
            server
                .bad_frame_warn
                .warn(|| format!("{}: closing connection from {peer}: {e}", input.name));
            break;
        }
    }
    if let Some(last) = d.finish() {
        deliver(server, input, stats, vec![last], true).await;
    } else if d.pending() > 0 {
        tracing::debug!(
            "{}: {peer} closed inside a frame ({} bytes cut)",
            input.name,
            d.pending()
        );
    }
    stats
        .connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

/// Receives datagrams until shutdown.
pub async fn udp_loop(
    socket: UdpSocket,
    input: Arc<SyslogInput>,
    stats: Arc<InputStats>,
    server: Arc<Server>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let first = tokio::select! {
            _ = server.shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let mut frames = Vec::new();
        let mut take = |r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]| match r {
            Ok((n, _)) => {
                let m = datagram(&buf[..n]);
                if m.len() > input.max_message {
                    InputStats::add(&stats.oversize, 1);
                } else if !m.is_empty() {
                    frames.push(Bytes::copy_from_slice(m));
                }
            }
            Err(e) => server
                .bad_frame_warn
                .warn(|| format!("{}: receive failed: {e}", input.name)),
        };
        take(first, &buf);
        for _ in 1..UDP_BATCH {
            match socket.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => take(r, &buf),
            }
        }
        deliver(&server, &input, &stats, frames, false).await;
    }
}

/// Classifies and routes one batch. With `retry`, a refused batch is tried again (reading
/// nothing meanwhile) until the stores take it, or until [`DRAIN_MAX`] after shutdown
/// began (then it is counted as dropped and logged: the process is about to exit); without,
/// it is dropped and counted. Whether the batch was written.
async fn deliver(
    server: &Server,
    input: &SyslogInput,
    stats: &InputStats,
    frames: Vec<Bytes>,
    retry: bool,
) -> bool {
    if frames.is_empty() {
        return true;
    }
    let n = frames.len() as u64;
    let (mut bytes, mut unparsed) = (0u64, 0u64);
    let entries: Vec<scribe_protocol::server::Incoming> = frames
        .into_iter()
        .map(|raw| {
            bytes += raw.len() as u64;
            let c = input.classifier.classify(raw);
            unparsed += u64::from(!c.parsed);
            (Bytes::from(c.category), c.line, None)
        })
        .collect();
    InputStats::add(&stats.messages, n);
    InputStats::add(&stats.bytes, bytes);
    InputStats::add(&stats.parse_failures, unparsed);
    let mut backoff = Duration::from_millis(20);
    let mut give_up: Option<Instant> = None;
    let peer = crate::auth::Peer::input("syslog");
    loop {
        if handler::route(server, &peer, entries.iter().cloned()).await == Ok(ResultCode::Ok) {
            return true;
        }
        InputStats::add(&stats.refused, 1);
        if server.shutdown.is_cancelled() {
            let at = *give_up.get_or_insert_with(|| Instant::now() + DRAIN_MAX);
            if Instant::now() >= at {
                tracing::error!(
                    "{}: stores still refuse {DRAIN_MAX:?} into shutdown; {n} messages not written",
                    input.name
                );
                InputStats::add(&stats.dropped, n);
                return false;
            }
        }
        if !retry {
            InputStats::add(&stats.dropped, n);
            server.store_error_warn.warn(|| {
                format!(
                    "{}: stores refused {n} datagrams (TRY_LATER): dropped",
                    input.name
                )
            });
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
