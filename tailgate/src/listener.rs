//! The HTTP listener: a cap on open connections and a deadline for the first request.
//!
//! `axum::serve` sets no header-read timeout (hyper has none without a timer) and accepts
//! without limit, so a client that opens connections and never finishes a request
//! (slowloris) could hold them, and their memory, forever. Here each connection holds a
//! permit from `max_connections` (at the cap, accepting waits, and the kernel's backlog
//! holds new connections), and must have been answered within `first_response` of being
//! accepted: until tailgate first writes to it, a read past that deadline fails and hyper
//! closes the connection. After the first response the deadline is lifted, so websockets
//! and keep-alive connections live on (the websocket idle timeout covers the former).
//!
//! With `--tls-cert`, the TLS handshake runs inside the accepted stream, on its first read or
//! write (so under the same first-response deadline): `accept` never waits for a client's
//! handshake, and a client that stalls in it holds up nobody else.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use scribe_cli::RateLimitedWarn;
use scribe_tls::tokio_rustls::{server::TlsStream, Accept};
use scribe_tls::ServerTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

pub struct GuardedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    first_response: Duration,
    tls: Option<Arc<ServerTls>>,
    tls_warn: Arc<RateLimitedWarn>,
}

impl GuardedListener {
    pub fn new(
        listener: TcpListener,
        max_connections: usize,
        first_response: Duration,
        tls: Option<Arc<ServerTls>>,
    ) -> GuardedListener {
        GuardedListener {
            listener,
            slots: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            first_response,
            tls,
            tls_warn: Arc::new(RateLimitedWarn::new(Duration::from_secs(1))),
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedStream, SocketAddr) {
        loop {
            let permit = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .expect("the connection semaphore is never closed");
            match self.listener.accept().await {
                Ok((io, addr)) => {
                    let _ = io.set_nodelay(true);
                    let io = match &self.tls {
                        Some(tls) => Io::Handshake(Box::new(tls.acceptor().accept(io))),
                        None => Io::Plain(io),
                    };
                    let stream = GuardedStream {
                        io,
                        peer: addr,
                        tls_warn: self.tls_warn.clone(),
                        deadline: Some(Box::pin(tokio::time::sleep(self.first_response))),
                        _permit: permit,
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!("accepting an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

pub struct GuardedStream {
    io: Io,
    peer: SocketAddr,
    tls_warn: Arc<RateLimitedWarn>,
    /// Until the first write: when reading must have ended in a response.
    deadline: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

/// The connection: plaintext, a TLS handshake under way, or TLS.
enum Io {
    Plain(TcpStream),
    Handshake(Box<Accept<TcpStream>>),
    Tls(Box<TlsStream<TcpStream>>),
    /// The handshake failed; every read and write fails.
    Failed,
}

impl GuardedStream {
    /// Drives the TLS handshake, if one is under way; `Ready(Ok)` once the stream can be
    /// read and written.
    fn poll_ready_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Io::Handshake(accept) = &mut self.io else {
            return match self.io {
                Io::Failed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
                _ => Poll::Ready(Ok(())),
            };
        };
        match Pin::new(&mut **accept).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(tls)) => {
                self.io = Io::Tls(Box::new(tls));
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.io = Io::Failed;
                let (peer, why) = (self.peer, scribe_tls::explain(&e));
                self.tls_warn
                    .warn(|| format!("TLS handshake with {peer} failed: {why}"));
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Delegates a poll to whichever stream `$io` holds (after the handshake).
macro_rules! on_io {
    ($self:ident, $cx:ident, |$s:ident| $call:expr) => {{
        if let Err(e) = std::task::ready!($self.poll_ready_io($cx)) {
            return Poll::Ready(Err(e));
        }
        match &mut $self.io {
            Io::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            Io::Tls(tls) => {
                let $s = Pin::new(&mut **tls);
                $call
            }
            Io::Handshake(_) | Io::Failed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }};
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(d) = self.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request in time",
                )));
            }
        }
        let this = &mut *self;
        on_io!(this, cx, |s| s.poll_read(cx, buf))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = on_io!(this, cx, |s| s.poll_write(cx, buf));
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.deadline = None;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = on_io!(this, cx, |s| s.poll_write_vectored(cx, bufs));
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.deadline = None;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
            Io::Handshake(_) | Io::Failed => false,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        on_io!(this, cx, |s| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        on_io!(this, cx, |s| s.poll_shutdown(cx))
    }
}
