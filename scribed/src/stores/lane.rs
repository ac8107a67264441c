//! A network store's ordered lane: one connection upstream with several batches in flight,
//! for a buffer store (live batches and spool replay alike), as `ship` pipelines.
//!
//! Why one connection: batches on one connection are written upstream in the order sent,
//! and a native upstream (or a scribed asked to over Thrift) closes the connection after any
//! refusal without reading further, so nothing behind a refused batch is ever written.
//! Several pooled connections would race each other and could reorder a category.
//!
//! After a failure (`TRY_LATER`, a broken connection, no answer within the request
//! timeout) the lane is **halted**: the failed write, every write in flight behind it and
//! every write started before the caller's [`Pipeline::resume`] fail, none is sent again
//! here. The caller (the buffer store) spools them in order and replays them later; an entry
//! that did reach the upstream before the connection broke is recognised there by its id.
//! One exception keeps an idle connection cheap: a connection that broke while idle (the
//! upstream restarted, an idle timeout) is replaced once, and what was sent on it is sent
//! again in order on the new one.
//!
//! Memory: the caller keeps at most [`Pipeline::window`] writes started and unanswered, so
//! the lane holds at most that many bodies (each within the frame limit).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use scribe_protocol::client::Client;
use scribe_protocol::ResultCode;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Batch, Pending, Pipeline, StoreError};
use scribe_archive::Piece;
use scribe_protocol::client::ClientOptions;
use scribe_protocol::frame::LOG_ENVELOPE_OVERHEAD;
use scribe_protocol::native::BatchBuilder;
use scribe_protocol::scribe::ENTRY_OVERHEAD;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What the pooled connections and the ordered lane share: where to send, how, and what
/// `/status` shows.
pub(super) struct Upstreams {
    pub(super) name: String,
    pub(super) addrs: Vec<String>,
    pub(super) opts: ClientOptions,
    /// Index of the upstream that last answered.
    pub(super) preferred: AtomicUsize,
    pub(super) connected: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
}

impl Upstreams {
    /// Cuts the batches into native bodies at message boundaries by encoded size, so no call
    /// exceeds the frame limit whatever the batches look like. The limit leaves room for the
    /// envelope; each connection cuts further to what its upstream advertised.
    pub(super) fn encode(&self, batches: &[Batch]) -> Vec<Bytes> {
        let limit = self
            .opts
            .max_frame
            .saturating_sub(LOG_ENVELOPE_OVERHEAD)
            .max(1024);
        let total: usize = batches.iter().map(|b| b.bytes as usize).sum();
        // Runs of lines that came in as runs go out as runs (no per-line work here, nor in a
        // file store upstream); a body of plain messages stays in the first layout.
        let runs = batches.iter().any(|b| !b.runs.is_empty());
        let new_builder = || {
            let capacity = total.min(limit);
            if runs {
                BatchBuilder::with_runs(capacity)
            } else {
                BatchBuilder::with_capacity(capacity)
            }
        };
        let mut bodies = Vec::new();
        let mut builder = new_builder();
        // What the part would take as a Thrift call (which repeats the category per entry):
        // the larger of the two encodings, so the split holds for either protocol.
        let mut thrift_len = 0;
        // Counts `size` into the part, finishing the part first if it would not fit.
        let mut room_for = |builder: &mut BatchBuilder, thrift_len: &mut usize, size: usize| {
            if !builder.is_empty() && *thrift_len + size > limit {
                bodies.push(std::mem::replace(builder, new_builder()).finish());
                *thrift_len = 0;
            }
            *thrift_len += size;
        };
        for b in batches {
            let cat = b.category.as_str().as_bytes();
            let per_line = cat.len() + ENTRY_OVERHEAD;
            for piece in b.pieces() {
                match piece {
                    Piece::Lines { bytes, count, id }
                        if bytes.len() + count * per_line <= limit =>
                    {
                        room_for(
                            &mut builder,
                            &mut thrift_len,
                            bytes.len() + count * per_line,
                        );
                        builder.push_run(cat, bytes, count, id);
                    }
                    // A run larger than a whole part goes message by message.
                    Piece::Lines { bytes, id, .. } => {
                        for (m, m_id) in scribe_ids::run_lines(bytes, id) {
                            room_for(&mut builder, &mut thrift_len, m.len() + per_line);
                            builder.push(cat, m, m_id);
                        }
                    }
                    Piece::Message(m, id) => {
                        room_for(&mut builder, &mut thrift_len, m.len() + per_line);
                        builder.push(cat, m, id);
                    }
                }
            }
        }
        if !builder.is_empty() {
            bodies.push(builder.finish());
        }
        bodies
    }

    /// Opens a connection, trying the upstreams in order from the one that last answered.
    pub(super) async fn connect(&self) -> Result<(usize, Client), String> {
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..self.addrs.len() {
            let i = (start + attempt) % self.addrs.len();
            match Client::open(&self.addrs[i], self.opts.clone()).await {
                Ok(c) => return Ok((i, c)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// Upstream `i` answered `OK`.
    pub(super) fn answered(&self, i: usize) {
        self.preferred.store(i, Ordering::Relaxed);
        self.connected.store(true, Ordering::Relaxed);
    }

    /// No upstream could be reached: what `/status` shows, and the error to answer with.
    pub(super) fn unreachable(&self, reason: String) -> StoreError {
        self.connected.store(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        StoreError::Unavailable {
            store: self.name.clone(),
            reason,
        }
    }

    pub(super) fn try_later(&self, i: usize) -> StoreError {
        StoreError::TryLater {
            store: self.name.clone(),
            upstream: self.addrs[i].clone(),
        }
    }
}

enum Msg {
    Send {
        bodies: Vec<Bytes>,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Resume,
}

/// The handle: starts writes, and the task that sends them.
pub(super) struct Lane {
    up: Arc<Upstreams>,
    window: usize,
    tx: mpsc::UnboundedSender<Msg>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Lane {
    /// Starts the lane's task (on the current runtime).
    pub(super) fn start(up: Arc<Upstreams>, window: usize) -> Arc<Lane> {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            up: up.clone(),
            window: window.max(1),
            rx,
            conn: None,
            in_flight: VecDeque::new(),
            halted: None,
        };
        Arc::new(Lane {
            up,
            window: window.max(1),
            tx,
            task: Mutex::new(Some(tokio::spawn(task.run()))),
        })
    }

    /// Stops the task; writes still in flight fail as closed.
    pub(super) fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

impl Pipeline for Lane {
    fn window(&self) -> usize {
        self.window
    }

    fn start(&self, batches: &[Batch]) -> Pending {
        let bodies = self.up.encode(batches);
        let (done, rx) = oneshot::channel();
        let closed = StoreError::Closed {
            store: self.up.name.clone(),
        };
        if self.tx.send(Msg::Send { bodies, done }).is_err() {
            return Box::pin(std::future::ready(Err(closed)));
        }
        Box::pin(async move { rx.await.unwrap_or(Err(closed)) })
    }

    fn resume(&self) {
        let _ = self.tx.send(Msg::Resume);
    }
}

/// A body sent and not yet answered; the last body of a write carries its answer.
struct InFlight {
    body: Bytes,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

struct Connection {
    upstream: usize,
    client: Client,
    /// Whether this connection has answered anything since it was last idle: a connection
    /// that fails after a quiet spell is replaced once (see the module docs).
    proven: bool,
}

struct Task {
    up: Arc<Upstreams>,
    window: usize,
    rx: mpsc::UnboundedReceiver<Msg>,
    conn: Option<Connection>,
    in_flight: VecDeque<InFlight>,
    /// Why the lane is halted: every write fails until `Resume`.
    halted: Option<StoreError>,
}

impl Task {
    async fn run(mut self) {
        let mut open = true;
        loop {
            // Send what is queued while the window has room, then wait for the oldest answer
            // (answers come in order; new writes are picked up after each one).
            while open && self.has_room() {
                match self.rx.try_recv() {
                    Ok(m) => self.handle(m).await,
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if self.in_flight.is_empty() {
                if !open {
                    return;
                }
                match self.rx.recv().await {
                    Some(m) => self.handle(m).await,
                    None => open = false,
                }
                continue;
            }
            self.await_oldest().await;
        }
    }

    fn has_room(&self) -> bool {
        let window = match &self.conn {
            Some(c) if !c.client.pipelines() => 1,
            _ => self.window,
        };
        self.in_flight.len() < window
    }

    async fn handle(&mut self, msg: Msg) {
        let (bodies, done) = match msg {
            Msg::Resume => {
                self.halted = None;
                return;
            }
            Msg::Send { bodies, done } => (bodies, done),
        };
        if let Some(e) = &self.halted {
            let _ = done.send(Err(e.clone()));
            return;
        }
        if self.conn.is_none() {
            match self.up.connect().await {
                Ok((upstream, client)) => {
                    self.conn = Some(Connection {
                        upstream,
                        client,
                        proven: true,
                    })
                }
                Err(reason) => {
                    let e = self.up.unreachable(reason);
                    let _ = done.send(Err(e.clone()));
                    return self.halt(e);
                }
            }
        }
        if self.in_flight.is_empty() {
            // A connection idle since its last answer may have been closed meanwhile.
            if let Some(c) = self.conn.as_mut() {
                c.proven = false;
            }
        }
        let n = bodies.len();
        let mut done = Some(done);
        for (i, body) in bodies.into_iter().enumerate() {
            let entry = InFlight {
                body,
                done: if i + 1 == n { done.take() } else { None },
            };
            let sent = match self.conn.as_mut() {
                Some(c) => c
                    .client
                    .send_body(&entry.body)
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("not connected".into()),
            };
            self.in_flight.push_back(entry);
            if let Err(reason) = sent {
                return self.broken(reason).await;
            }
        }
        if let Some(done) = done {
            // No bodies (nothing to send): done at once.
            let _ = done.send(Ok(()));
        }
    }

    /// Waits for the answer to the oldest body in flight.
    async fn await_oldest(&mut self) {
        let Some(c) = self.conn.as_mut() else {
            return self.broken("not connected".into()).await;
        };
        let timeout = self.up.opts.request_timeout;
        let answer = tokio::time::timeout(timeout, c.client.recv_result()).await;
        match answer {
            Ok(Ok(ResultCode::Ok)) => {
                c.proven = true;
                self.up.answered(c.upstream);
                if let Some(done) = self.in_flight.pop_front().and_then(|f| f.done) {
                    let _ = done.send(Ok(()));
                }
            }
            Ok(Ok(ResultCode::TryLater)) => {
                let e = self.up.try_later(c.upstream);
                self.halt(e);
            }
            Ok(Err(e)) => self.broken(e.to_string()).await,
            Err(_) => self.broken(format!("no answer within {timeout:?}")).await,
        }
    }

    /// The connection failed: replaced once if it had been idle, else the lane halts.
    async fn broken(&mut self, reason: String) {
        let retry = self.conn.take().is_some_and(|c| !c.proven);
        if retry {
            if let Ok((upstream, mut client)) = self.up.connect().await {
                // Several bodies go out at once only where the upstream pipelines.
                let mut ok = client.pipelines() || self.in_flight.len() <= 1;
                for f in &self.in_flight {
                    if !ok {
                        break;
                    }
                    ok = client.send_body(&f.body).await.is_ok();
                }
                if ok {
                    self.conn = Some(Connection {
                        upstream,
                        client,
                        proven: true,
                    });
                    return;
                }
            }
        }
        let e = self.up.unreachable(reason);
        self.halt(e);
    }

    /// Fails everything in flight and every write until `Resume`.
    fn halt(&mut self, e: StoreError) {
        self.conn = None;
        for f in self.in_flight.drain(..) {
            if let Some(done) = f.done {
                let _ = done.send(Err(e.clone()));
            }
        }
        self.halted = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::CategoryBatch;
    use futures::{SinkExt, StreamExt};
    use scribe_protocol::client::{ClientOptions, Protocol, CLOSE_ON_TRY_LATER_OPTION};
    use scribe_protocol::scribe::{encode_log_reply, encode_string_reply, encode_void_reply};
    use scribe_protocol::{decode_call, frame, Request};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// What the mock upstream saw: messages it answered `OK`, and the most `Log` calls it had
    /// read and not yet answered.
    #[derive(Default)]
    struct Seen {
        written: Mutex<Vec<Bytes>>,
        unanswered: AtomicUsize,
        max_unanswered: AtomicUsize,
    }

    /// A scribed-like Thrift upstream (it closes after `TRY_LATER`, so clients pipeline):
    /// reads calls as they come and answers each `Log` 5 ms later, in order. The `try_later`th
    /// `Log` call (from 1, over all connections) is answered `TRY_LATER`, then the connection
    /// is closed without answering (or writing) the calls behind it.
    async fn upstream(try_later: usize) -> (String, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Seen::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let out = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (seen, calls) = (seen.clone(), calls.clone());
                tokio::spawn(async move {
                    let framed = tokio_util::codec::Framed::new(stream, frame::codec(1 << 20));
                    let (mut sink, mut stream) = framed.split();
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let reader_seen = seen.clone();
                    tokio::spawn(async move {
                        while let Some(Ok(f)) = stream.next().await {
                            let call = decode_call(f.freeze()).unwrap();
                            if matches!(call.request, Request::Log(_)) {
                                let n = reader_seen.unanswered.fetch_add(1, Ordering::SeqCst);
                                reader_seen
                                    .max_unanswered
                                    .fetch_max(n + 1, Ordering::SeqCst);
                            }
                            if tx.send(call).is_err() {
                                return;
                            }
                        }
                    });
                    while let Some(call) = rx.recv().await {
                        let h = &call.header;
                        let (reply, close) = match call.request {
                            Request::GetName => (encode_string_reply(h, b"scribed"), false),
                            Request::SetOption(..) => (encode_void_reply(h), false),
                            Request::GetOption(k) if &k[..] == CLOSE_ON_TRY_LATER_OPTION => {
                                (encode_string_reply(h, b"1"), false)
                            }
                            Request::GetOption(_) => (encode_string_reply(h, b""), false),
                            Request::Log(entries) => {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                seen.unanswered.fetch_sub(1, Ordering::SeqCst);
                                if calls.fetch_add(1, Ordering::SeqCst) + 1 == try_later {
                                    let r = ResultCode::TryLater;
                                    (encode_log_reply(h, r), true)
                                } else {
                                    let mut w = seen.written.lock().unwrap();
                                    w.extend(entries.into_iter().map(|e| e.message));
                                    (encode_log_reply(h, ResultCode::Ok), false)
                                }
                            }
                            _ => return,
                        };
                        if sink.send(reply).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, out)
    }

    fn lane(addr: &str) -> Arc<Lane> {
        let up = Upstreams {
            name: "net".into(),
            addrs: vec![addr.to_string()],
            opts: ClientOptions {
                protocol: Protocol::Thrift,
                request_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            },
            preferred: Default::default(),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        };
        Lane::start(Arc::new(up), 4)
    }

    fn batch(i: usize) -> Vec<Batch> {
        let m = Bytes::from(format!("m{i}"));
        vec![Arc::new(CategoryBatch::new("c".parse().unwrap(), vec![m]))]
    }

    async fn all(answers: Vec<Pending>) -> Vec<bool> {
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn several_batches_are_in_flight_and_written_in_order() {
        let (addr, seen) = upstream(0).await;
        let lane = lane(&addr);
        let answers = (0..12).map(|i| lane.start(&batch(i))).collect();
        assert_eq!(all(answers).await, vec![true; 12]);
        let want: Vec<Bytes> = (0..12).map(|i| Bytes::from(format!("m{i}"))).collect();
        assert_eq!(*seen.written.lock().unwrap(), want);
        let max = seen.max_unanswered.load(Ordering::SeqCst);
        assert!((2..=4).contains(&max), "{max} calls in flight (window 4)");
        lane.stop();
    }

    /// After a `TRY_LATER`, the refused batch and every one behind it fail, and so does every
    /// batch started before `resume`: nothing is sent behind a refusal. After `resume`,
    /// batches flow again on a new connection.
    #[tokio::test]
    async fn after_a_refusal_everything_fails_until_resumed() {
        let (addr, seen) = upstream(3).await;
        let lane = lane(&addr);
        let answers = (0..6).map(|i| lane.start(&batch(i))).collect();
        assert_eq!(all(answers).await, [true, true, false, false, false, false]);
        assert!(lane.start(&batch(6)).await.is_err(), "halted until resumed");
        lane.resume();
        assert!(lane.start(&batch(7)).await.is_ok());
        let want: Vec<Bytes> = [0, 1, 7]
            .iter()
            .map(|i| Bytes::from(format!("m{i}")))
            .collect();
        assert_eq!(*seen.written.lock().unwrap(), want);
        lane.stop();
    }

    #[test]
    fn runs_are_forwarded_as_runs_and_cut_like_messages() {
        use scribe_protocol::native::{decode_body, has_runs};
        use scribe_protocol::server::LineRun;
        use scribe_protocol::{EntryId, ProducerId};
        let up = |max_frame| Upstreams {
            name: "net".into(),
            addrs: vec![],
            opts: ClientOptions {
                max_frame,
                ..ClientOptions::default()
            },
            preferred: Default::default(),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        };
        // A message, a run of 3 lines, a message, a run of 40 lines (over a small part).
        let mut messages = vec![Bytes::from_static(b"alone")];
        let mut runs = Vec::new();
        for n in [3usize, 40] {
            let lines: Vec<u8> = (0..n)
                .flat_map(|i| format!("line {i:04}\n").into_bytes())
                .collect();
            let lines = Bytes::from(lines);
            let start = messages.len();
            messages.extend((0..n).map(|i| lines.slice(i * 10..i * 10 + 10)));
            runs.push(LineRun {
                messages: start..messages.len(),
                bytes: lines,
            });
            messages.push(Bytes::from_static(b"between"));
        }
        let mut at = 0;
        let ids: Vec<_> = messages
            .iter()
            .map(|m| {
                let id = EntryId {
                    producer: ProducerId([9; 16]),
                    start: at,
                    end: at + m.len() as u64,
                };
                at = id.end;
                Some(id)
            })
            .collect();
        let b = CategoryBatch::with_ids("c".parse().unwrap(), messages.clone(), ids.clone())
            .with_runs(runs);
        let batches = vec![Arc::new(b)];
        for max_frame in [1 << 20, 400] {
            let bodies = up(max_frame).encode(&batches);
            assert!(bodies.iter().all(|b| has_runs(b)), "bodies with runs");
            let got: Vec<_> = bodies
                .iter()
                .flat_map(|body| decode_body(body.clone()).unwrap())
                .map(|e| (e.message, e.id))
                .collect();
            let want: Vec<_> = messages.iter().cloned().zip(ids.iter().copied()).collect();
            assert_eq!(got, want, "max_frame {max_frame}");
            if max_frame == 400 {
                assert!(
                    bodies.len() >= 2,
                    "the 40-line run is cut: {}",
                    bodies.len()
                );
            } else {
                assert_eq!(bodies.len(), 1);
            }
        }
        // Without runs, the first layout (what any upstream reads).
        let plain = vec![Arc::new(CategoryBatch::new("c".parse().unwrap(), messages))];
        assert!(!up(1 << 20).encode(&plain).iter().any(|b| has_runs(b)));
    }
}
