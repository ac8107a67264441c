//! An async Scribe client: one connection ([`Client`]) and a delivering wrapper
//! ([`RetryingSender`]) that reconnects and retries until a batch is acknowledged `OK`.
//!
//! One batch is in flight per connection. Scribe's protocol has no way to tell which of several
//! pipelined batches a `TRY_LATER` refers to once a later one was accepted, so pipelining would
//! reorder lines on retry; order matters more than the round trip saved on loopback-class links.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::frame;
use crate::scribe::{decode_log_reply, ReplyError, ResultCode};

/// Timeouts and limits of one connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// How long to wait for the reply to one batch.
    pub request_timeout: Duration,
    pub max_frame: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame: frame::DEFAULT_MAX_FRAME,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connect to {addr}: timed out after {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("i/o with {addr}: {source}")]
    Io { addr: String, source: io::Error },
    #[error("{addr} did not answer within {timeout:?}")]
    RequestTimeout { addr: String, timeout: Duration },
    #[error("{addr} closed the connection before answering")]
    Closed { addr: String },
    #[error("bad reply from {addr}: {source}")]
    Reply { addr: String, source: ReplyError },
}

/// One framed connection to a Scribe server.
pub struct Client {
    addr: String,
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    opts: ClientOptions,
}

impl Client {
    pub async fn connect(addr: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: addr.to_string(),
                timeout: opts.connect_timeout,
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // Batches are written whole; Nagle would only add latency to the small ones.
        let _ = stream.set_nodelay(true);
        Ok(Client {
            addr: addr.to_string(),
            framed: Framed::new(stream, frame::codec(opts.max_frame)),
            opts,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one encoded `Log` call (see [`crate::LogBatchBuilder`]) and waits for its result.
    pub async fn log(&mut self, call: Bytes) -> Result<ResultCode, ClientError> {
        let timeout = self.opts.request_timeout;
        let addr = &self.addr;
        let framed = &mut self.framed;
        let exchange = async move {
            framed.send(call).await.map_err(|source| ClientError::Io {
                addr: addr.clone(),
                source,
            })?;
            match framed.next().await {
                None => Err(ClientError::Closed { addr: addr.clone() }),
                Some(Err(source)) => Err(ClientError::Io {
                    addr: addr.clone(),
                    source,
                }),
                Some(Ok(reply)) => {
                    decode_log_reply(reply.freeze()).map_err(|source| ClientError::Reply {
                        addr: addr.clone(),
                        source,
                    })
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::RequestTimeout {
                addr: self.addr.clone(),
                timeout,
            })?
    }
}

/// Exponential backoff with "full jitter": each wait is uniform in `[0, cap]`, where the cap
/// doubles per failure up to `max`. Jitter keeps a fleet of clients from retrying in lockstep
/// after an aggregator restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            cap: initial,
        }
    }

    /// The next wait; at least 1 ms so a retry loop can never spin.
    pub fn next_delay(&mut self) -> Duration {
        let cap_ms = self.cap.as_millis().max(1) as u64;
        self.cap = (self.cap * 2).min(self.max);
        Duration::from_millis(fastrand::u64(1..=cap_ms))
    }

    pub fn reset(&mut self) {
        self.cap = self.initial;
    }
}

/// Delivery gave up: no batch was acknowledged for the whole progress timeout.
#[derive(Debug, thiserror::Error)]
#[error("no progress delivering to {addr} for {waited:?}; last problem: {last}")]
pub struct DeliveryError {
    pub addr: String,
    pub waited: Duration,
    pub last: String,
}

/// Delivers batches to one server: connects lazily, reconnects after failures, and retries
/// `TRY_LATER` and errors with backoff until `OK` or until `progress_timeout` passes without
/// an acknowledgement.
///
/// A batch whose reply was lost (connection dropped after the server wrote it) is sent again,
/// so delivery is at-least-once.
pub struct RetryingSender {
    addr: String,
    opts: ClientOptions,
    progress_timeout: Duration,
    backoff: Backoff,
    conn: Option<Client>,
    /// How many times a batch was re-sent (for reporting).
    pub retries: u64,
}

impl RetryingSender {
    pub fn new(addr: impl Into<String>, opts: ClientOptions, progress_timeout: Duration) -> Self {
        RetryingSender {
            addr: addr.into(),
            opts,
            progress_timeout,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
            conn: None,
            retries: 0,
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sends `call` until the server answers `OK`.
    pub async fn deliver(&mut self, call: Bytes) -> Result<(), DeliveryError> {
        let started = Instant::now();
        loop {
            let problem = match self.attempt(call.clone()).await {
                Ok(ResultCode::Ok) => {
                    self.backoff.reset();
                    return Ok(());
                }
                Ok(ResultCode::TryLater) => format!("{} answered TRY_LATER", self.addr),
                Err(e) => {
                    self.conn = None;
                    e.to_string()
                }
            };
            let waited = started.elapsed();
            if waited >= self.progress_timeout {
                return Err(DeliveryError {
                    addr: self.addr.clone(),
                    waited,
                    last: problem,
                });
            }
            let delay = self
                .backoff
                .next_delay()
                .min(self.progress_timeout - waited);
            tracing::warn!(retry_in = ?delay, "{problem}");
            self.retries += 1;
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&mut self, call: Bytes) -> Result<ResultCode, ClientError> {
        if self.conn.is_none() {
            self.conn = Some(Client::connect(&self.addr, self.opts.clone()).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        conn.log(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(1) && d <= Duration::from_millis(80));
        }
        assert_eq!(b.cap, Duration::from_millis(80));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }
}
