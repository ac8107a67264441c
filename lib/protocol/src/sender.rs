//! [`PipelinedSender`]: delivers a stream of batches over [`Client`] connections, several in
//! flight, reconnecting and resending until each is acknowledged; and [`Backoff`].

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Client, ClientError, ClientOptions};
use crate::scribe::ResultCode;

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

/// Delivery gave up: no batch was acknowledged for the whole progress timeout, or the
/// server denied the client (`denied`: an unknown token, a category it may not write).
#[derive(Debug)]
pub struct DeliveryError {
    pub addr: String,
    pub waited: Duration,
    pub last: String,
    pub denied: bool,
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.denied {
            f.write_str(&self.last)
        } else {
            let (addr, waited, last) = (&self.addr, self.waited, &self.last);
            write!(
                f,
                "no progress delivering to {addr} for {waited:?}; last problem: {last}"
            )
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Delivers a stream of batches (native bodies, see [`crate::native::BatchBuilder`]) with up
/// to `window` of them in flight on one connection, acknowledged in order, each carrying a
/// caller's tag (say, its line count).
///
/// Pipelining is used only with a server that closes the connection after any refusal (the
/// native protocol always does; over Thrift, scribed when asked, see [`Client::open`]): then
/// nothing sent behind a refused batch is ever written, and resending every unacknowledged
/// batch, in order, on a new connection keeps the stream's order. With any other server the
/// window is 1. After a connection error the fate of in-flight batches is unknown and they
/// are all sent again: on a native connection the server recognises entries it already
/// wrote by their ids (exactly-once); over Thrift they may be written twice.
pub struct PipelinedSender<T> {
    /// Where to deliver, in order of preference: each (re)connect tries them in turn from
    /// the first, so traffic returns to the primary once it is reachable again.
    addrs: Vec<String>,
    /// The address of the current (or last) connection.
    addr: String,
    opts: ClientOptions,
    max_window: usize,
    window: usize,
    progress_timeout: Duration,
    backoff: Backoff,
    conn: Option<Client>,
    in_flight: std::collections::VecDeque<(Bytes, T)>,
    /// How many of `in_flight` (the newest ones) are not yet written to the current connection.
    unsent: usize,
    last_error: Option<ClientError>,
    last_progress: Instant,
    /// Batches sent again after a failure.
    pub retries: u64,
}

impl<T> PipelinedSender<T> {
    pub fn new(
        addr: impl Into<String>,
        opts: ClientOptions,
        window: usize,
        progress_timeout: Duration,
    ) -> Self {
        let mut opts = opts;
        // No single wait may outlast the progress timeout the caller promised.
        opts.request_timeout = opts.request_timeout.min(progress_timeout);
        opts.connect_timeout = opts.connect_timeout.min(progress_timeout);
        let addr = addr.into();
        PipelinedSender {
            addrs: vec![addr.clone()],
            addr,
            opts,
            max_window: window.max(1),
            window: 1,
            progress_timeout,
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
            conn: None,
            in_flight: Default::default(),
            unsent: 0,
            last_error: None,
            last_progress: Instant::now(),
            retries: 0,
        }
    }

    /// Like [`Self::new`], failing over between several aggregators: every connect tries
    /// `addrs` in order (refused connections fail fast; a silent host costs the connect
    /// timeout). `addrs` must not be empty.
    pub fn with_failover(
        addrs: Vec<String>,
        opts: ClientOptions,
        window: usize,
        progress_timeout: Duration,
    ) -> Self {
        assert!(!addrs.is_empty(), "at least one aggregator address");
        let mut s = Self::new(addrs[0].clone(), opts, window, progress_timeout);
        s.addrs = addrs;
        s
    }

    /// Takes every unacknowledged batch back, oldest first, and drops the connection. Their
    /// fate is unknown (some may have been written by the server): a caller that keeps them
    /// elsewhere (a disk spool) delivers them at least once.
    pub fn take_unacked(&mut self) -> Vec<(Bytes, T)> {
        self.conn = None;
        self.unsent = 0;
        self.in_flight.drain(..).collect()
    }

    /// The aggregator of the current or last connection.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether another batch may be sent before an acknowledgement.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.window
    }

    /// Sends a batch, or queues it while the connection is down or the window is full;
    /// [`Self::next_ack`] sends what is queued.
    pub async fn send(&mut self, call: Bytes, tag: T) {
        if self.in_flight.is_empty() {
            // Waiting for input is not a lack of progress: the clock starts with the batch.
            self.last_progress = Instant::now();
        }
        self.in_flight.push_back((call, tag));
        self.unsent += 1;
        self.flush_unsent().await;
    }

    /// Waits for the oldest batch's `OK`, retrying through failures, and returns its tag.
    /// Fails when nothing was acknowledged for the progress timeout.
    pub async fn next_ack(&mut self) -> Result<T, DeliveryError> {
        loop {
            if self.written() == 0 {
                self.flush_unsent().await;
            }
            let written = self.written();
            let problem = match self.conn.as_mut() {
                Some(conn) if written > 0 => match conn.recv_result().await {
                    Ok(ResultCode::Ok) => {
                        let (_, tag) = self.in_flight.pop_front().expect("a batch is in flight");
                        self.last_progress = Instant::now();
                        self.backoff.reset();
                        // Top the window up (only matters when batches wait for room).
                        self.flush_unsent().await;
                        return Ok(tag);
                    }
                    Ok(ResultCode::TryLater) => format!("{} answered TRY_LATER", self.addr),
                    Err(e @ ClientError::Denied { .. }) => return Err(self.denied(e)),
                    Err(e) => e.to_string(),
                },
                _ => match self.last_error.take() {
                    Some(e @ ClientError::Denied { .. }) => return Err(self.denied(e)),
                    Some(e) => e.to_string(),
                    None => format!("cannot reach {}", self.addr),
                },
            };
            // Start over on a new connection with everything unacknowledged.
            self.retries += self.written() as u64;
            self.conn = None;
            self.unsent = self.in_flight.len();
            let waited = self.last_progress.elapsed();
            if waited >= self.progress_timeout {
                return Err(DeliveryError {
                    addr: self.addr.clone(),
                    waited,
                    last: problem,
                    denied: false,
                });
            }
            let delay = self
                .backoff
                .next_delay()
                .min(self.progress_timeout - waited);
            tracing::warn!(retry_in = ?delay, in_flight = self.in_flight.len(), "{problem}");
            tokio::time::sleep(delay).await;
        }
    }

    /// Gives up at once: a denial does not go away by sending again. Unacknowledged batches
    /// stay in flight for the caller to keep ([`Self::take_unacked`]).
    fn denied(&mut self, e: ClientError) -> DeliveryError {
        self.conn = None;
        self.unsent = self.in_flight.len();
        DeliveryError {
            addr: self.addr.clone(),
            waited: self.last_progress.elapsed(),
            last: e.to_string(),
            denied: true,
        }
    }

    /// Batches written to the current connection and not yet acknowledged.
    fn written(&self) -> usize {
        self.in_flight.len() - self.unsent
    }

    /// Connects if needed and writes queued batches while the window has room. Errors leave
    /// the connection dropped (and are reported by the next `next_ack`).
    async fn flush_unsent(&mut self) {
        if self.unsent == 0 {
            return;
        }
        if self.conn.is_none() {
            if matches!(self.last_error, Some(ClientError::Denied { .. })) {
                // Told why already; `next_ack` gives up with it.
                return;
            }
            match self.connect().await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.last_error = Some(e);
                    return;
                }
            }
        }
        while self.unsent > 0 && self.written() < self.window {
            let i = self.in_flight.len() - self.unsent;
            let call = self.in_flight[i].0.clone();
            let conn = self.conn.as_mut().expect("connected above");
            if let Err(e) = conn.send_body(&call).await {
                self.last_error = Some(e);
                self.conn = None;
                self.unsent = self.in_flight.len();
                return;
            }
            self.unsent -= 1;
        }
    }

    async fn connect(&mut self) -> Result<Client, ClientError> {
        let mut last = None;
        for i in 0..self.addrs.len() {
            match Client::open(&self.addrs[i], self.opts.clone()).await {
                Ok(conn) => {
                    if self.addr != self.addrs[i] {
                        tracing::info!(to = %self.addrs[i], "switched aggregator");
                        self.addr = self.addrs[i].clone();
                    }
                    self.window = if conn.pipelines() { self.max_window } else { 1 };
                    return Ok(conn);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::CLOSE_ON_TRY_LATER_OPTION;
    use crate::frame;
    use crate::message::{encode_exception, exception_kind};
    use crate::native::BatchBuilder;
    use crate::scribe::{encode_log_reply, encode_string_reply, encode_void_reply};
    use crate::{decode_call, Request};
    use futures::{SinkExt, StreamExt};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio_util::codec::Framed;

    /// A mock server: `scribed_like` answers the fb303 handshake as scribed does, otherwise it
    /// is a plain Scribe server without fb303. It records Log calls and whether a second call
    /// was already waiting while it answered one (pipelining).
    async fn mock(scribed_like: bool) -> (String, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let logs = Arc::new(AtomicUsize::new(0));
        let pipelined = Arc::new(AtomicBool::new(false));
        let (l, p) = (logs.clone(), pipelined.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (l, p) = (l.clone(), p.clone());
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if stream.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let len = u32::from_be_bytes(len) as usize;
                        if len > 1 << 20 {
                            // The native magic, or garbage: a Thrift server hangs up.
                            return;
                        }
                        let mut frame = vec![0u8; len];
                        stream.read_exact(&mut frame).await.unwrap();
                        let call = decode_call(frame.into()).unwrap();
                        let h = &call.header;
                        let reply = match (&call.request, scribed_like) {
                            (Request::Log(_), _) => {
                                l.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                let mut peek = [0u8; 1];
                                if stream.try_read(&mut peek).is_ok_and(|n| n > 0) {
                                    p.store(true, Ordering::SeqCst);
                                    // Put nothing back: this mock only needs the observation.
                                    return;
                                }
                                encode_log_reply(h, ResultCode::Ok)
                            }
                            (Request::GetName, true) => encode_string_reply(h, b"scribed"),
                            (Request::SetOption(..), true) => encode_void_reply(h),
                            (Request::GetOption(k), true)
                                if &k[..] == CLOSE_ON_TRY_LATER_OPTION =>
                            {
                                encode_string_reply(h, b"1")
                            }
                            (Request::GetOption(_), true) => encode_string_reply(h, b""),
                            _ => encode_exception(h, exception_kind::UNKNOWN_METHOD, "no"),
                        };
                        let mut out = (reply.len() as u32).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        use tokio::io::AsyncWriteExt;
                        stream.write_all(&out).await.unwrap();
                    }
                });
            }
        });
        (addr, logs, pipelined)
    }

    fn call(i: usize) -> Bytes {
        let mut b = BatchBuilder::new();
        b.push(b"c", format!("{i}").as_bytes(), None);
        b.finish()
    }

    #[tokio::test]
    async fn never_pipelines_to_a_server_that_is_not_scribed() {
        let (addr, logs, pipelined) = mock(false).await;
        let mut s =
            PipelinedSender::new(addr, ClientOptions::default(), 8, Duration::from_secs(10));
        let mut acked = Vec::new();
        for i in 0..5 {
            while !s.has_room() {
                acked.push(s.next_ack().await.unwrap());
            }
            s.send(call(i), i).await;
        }
        while s.in_flight() > 0 {
            acked.push(s.next_ack().await.unwrap());
        }
        assert_eq!(logs.load(Ordering::SeqCst), 5);
        assert!(
            !pipelined.load(Ordering::SeqCst),
            "a second call was sent before a reply"
        );
        assert_eq!(
            acked,
            vec![0, 1, 2, 3, 4],
            "acknowledged once each, in order"
        );
    }

    /// A server answering TRY_LATER to the first Log call and OK to the rest.
    async fn try_later_once() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let mut framed = Framed::new(stream, frame::codec(1 << 20));
                while let Some(Ok(f)) = framed.next().await {
                    let Ok(call) = decode_call(f.freeze()) else {
                        break;
                    };
                    let reply = match call.request {
                        Request::Log(_) if first => {
                            first = false;
                            encode_log_reply(&call.header, ResultCode::TryLater)
                        }
                        Request::Log(_) => encode_log_reply(&call.header, ResultCode::Ok),
                        _ => encode_exception(&call.header, exception_kind::UNKNOWN_METHOD, "no"),
                    };
                    if framed.send(reply).await.is_err() {
                        break;
                    }
                }
            }
        });
        addr
    }

    /// Quiet input longer than the progress timeout is not a lack of progress: the first
    /// failure after it is retried, not fatal.
    #[tokio::test]
    async fn a_quiet_input_does_not_use_up_the_progress_timeout() {
        let addr = try_later_once().await;
        let timeout = Duration::from_millis(500);
        let mut s = PipelinedSender::new(addr, ClientOptions::default(), 1, timeout);
        tokio::time::sleep(timeout + Duration::from_millis(200)).await;
        s.send(call(0), 0).await;
        assert_eq!(s.next_ack().await.unwrap(), 0);
        assert_eq!(s.retries, 1);
    }

    #[tokio::test]
    async fn pipelines_to_scribed() {
        let (addr, _, pipelined) = mock(true).await;
        let mut s =
            PipelinedSender::new(addr, ClientOptions::default(), 4, Duration::from_secs(10));
        s.send(call(0), 0).await;
        assert!(s.has_room());
        s.send(call(1), 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(pipelined.load(Ordering::SeqCst));
    }

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
