//! One websocket client: reads its requests, and every [`TICK`] (or sooner when its queue
//! has a batch's worth) sends what its queue holds as `lines` / `dropped` / `gap` messages.
//!
//! Sending may block on a slow client's TCP window; meanwhile the hub keeps filling (and,
//! past the byte bound, dropping from) this client's queue without waiting for it. A send
//! waits at most [`ConnOptions::send_timeout`]: a client that stopped reading is closed
//! then, so it does not hold its `--max-clients` slot and its queue for as long as it keeps
//! the TCP connection open (the idle timeout, checked between sends, cannot end a task that
//! is stuck in one). Filters
//! run for this client only, and on tokio's blocking pool rather than an async worker, so a
//! costly regex slows only its own client (an async worker stuck in a regex would stall
//! every connection scheduled on it).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use scribe_archive::category::{CategoryGlob, MAX_CATEGORY_LEN};
use scribe_cli::RateLimitedWarn;
use tokio_util::sync::CancellationToken;

use crate::chunk::Chunk;
use crate::filter::{self, Filters, Verdict};
use crate::hub::{ClientQueue, Hub, Item, Start};
use crate::protocol::{ClientMsg, LineOut, ServerMsg, SinceOffsets, SinceSeq};
use crate::ring::Origin;

/// Batches are sent at most this often (unless one fills up first).
pub const TICK: Duration = Duration::from_millis(100);
/// Most lines in one `lines` message.
const BATCH_LINES: usize = 1000;
/// Most line bytes in one `lines` message.
const BATCH_BYTES: usize = 256 << 10;
/// Most subscriptions per connection.
const MAX_SUBSCRIPTIONS: usize = 64;
/// Longest request accepted (a websocket message).
pub const MAX_REQUEST: usize = 64 << 10;
/// Longest wait to hand a client its close frame at shutdown.
const SHUTDOWN_CLOSE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ConnOptions {
    pub idle_timeout: Duration,
    pub ping_every: Duration,
    /// Longest wait for the client to take one message; past it the connection is closed
    /// (and counted in `/metrics`).
    pub send_timeout: Duration,
    /// Warns about clients closed for not reading, at most once a second.
    pub slow_warn: Arc<RateLimitedWarn>,
    /// One permit per filtered subscription, process-wide: filters are the one per-request
    /// memory cost that the client buffer does not bound.
    pub filter_slots: Arc<tokio::sync::Semaphore>,
}

/// Raw mode: one subscription from the URL, plain text frames of lines.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub category: String,
    pub filter: Option<String>,
    pub backlog: usize,
}

#[derive(Clone)]
struct Sub {
    id: String,
    /// The compiled filters, with their slots among `--max-filters` (freed with the last
    /// clone).
    filter: Option<Arc<Filters>>,
}

struct Session {
    hub: Arc<Hub>,
    filter_slots: Arc<tokio::sync::Semaphore>,
    queue: Arc<ClientQueue>,
    subs: HashMap<u64, Sub>,
    raw: bool,
}

/// What a subscribe asks for besides its id and pattern.
struct SubRequest {
    filter: Option<String>,
    exclude: Option<String>,
    context: Option<usize>,
    backlog: Option<usize>,
    since_seq: Option<SinceSeq>,
    since_offsets: Option<SinceOffsets>,
}

/// The current `lines` message being assembled.
struct Batch {
    key: u64,
    category: Arc<str>,
    seq: u64,
    last_seq: u64,
    /// Lines in the message.
    count: usize,
    /// Without a filter, in JSON: ranges of shared chunks, whose lines' JSON each chunk
    /// builds once for every client ([`Chunk::json`]).
    parts: Vec<(Arc<Chunk>, usize, usize)>,
    /// Otherwise the lines themselves.
    lines: Vec<Bytes>,
    /// Each line's seq (sent when they are not consecutive: a filter, a resume by offsets).
    seqs: Vec<u64>,
    /// Indices in `lines` of context lines (sent around matches, not matching).
    context: Vec<usize>,
    bytes: usize,
    /// Kafka: per partition, the offset after the last line this message accounts for.
    offsets: BTreeMap<i32, i64>,
    /// Lines read back from Kafka (seq 0), which get messages of their own.
    read_back: bool,
}

/// Why a connection's loop ended.
enum End {
    /// The client closed, the server is shutting down, or a send failed.
    Done,
    /// A send waited longer than `send_timeout`: the client is not reading.
    SendTimeout,
}

/// Sends one message, waiting at most `limit` for the client to take it; `Err` when the
/// connection is gone or the client did not take it in time.
async fn send_within(ws: &mut WebSocket, msg: Message, limit: Duration) -> Result<(), End> {
    match tokio::time::timeout(limit, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Done),
        Err(_) => Err(End::SendTimeout),
    }
}

/// Sends `msgs` and then flushes once, so a turn of the loop costs one socket write rather
/// than one per message (the websocket buffers frames until the flush, or until its write
/// buffer fills); each message and the flush wait at most `limit`.
async fn send_all_within(
    ws: &mut WebSocket,
    msgs: Vec<String>,
    limit: Duration,
) -> Result<(), End> {
    if msgs.is_empty() {
        return Ok(());
    }
    let within = |r: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Done),
        Err(_) => Err(End::SendTimeout),
    };
    for m in msgs {
        within(tokio::time::timeout(limit, ws.feed(Message::Text(m.into()))).await)?;
    }
    within(tokio::time::timeout(limit, ws.flush()).await)
}

pub async fn serve(
    mut ws: WebSocket,
    hub: Arc<Hub>,
    opts: ConnOptions,
    raw: Option<RawRequest>,
    shutdown: CancellationToken,
) {
    hub.metrics.clients.fetch_add(1, Ordering::Relaxed);
    let mut s = Session {
        queue: hub.new_queue(),
        hub: hub.clone(),
        filter_slots: opts.filter_slots.clone(),
        subs: HashMap::new(),
        raw: raw.is_some(),
    };
    let end = match s.greet(&mut ws, raw, &opts).await {
        Ok(()) => s.run(&mut ws, &opts, &shutdown).await,
        Err(end) => end,
    };
    if let End::SendTimeout = end {
        hub.metrics.send_timeouts.fetch_add(1, Ordering::Relaxed);
        opts.slow_warn.warn(|| {
            format!(
                "closed a websocket client that took no message for {:?} (it stopped reading)",
                opts.send_timeout
            )
        });
    }
    // Dropping the socket closes it; a close frame would only wait behind the unread data.
    drop(ws);
    for key in s.subs.keys() {
        hub.unsubscribe(*key);
    }
    hub.metrics.clients.fetch_sub(1, Ordering::Relaxed);
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn error(reason: impl Into<String>, id: Option<&str>) -> String {
    ServerMsg::Error {
        reason: reason.into(),
        id,
    }
    .to_json()
}

impl Session {
    /// Raw mode: subscribes from the URL (a failure is told and ends the connection);
    /// otherwise sends `hello`.
    async fn greet(
        &mut self,
        ws: &mut WebSocket,
        raw: Option<RawRequest>,
        opts: &ConnOptions,
    ) -> Result<(), End> {
        let Some(r) = raw else {
            let hello = ServerMsg::Hello {
                server: "tailgate",
                version: env!("CARGO_PKG_VERSION"),
                instance: &self.hub.instance,
                categories: self.hub.category_names(),
            };
            let hello = Message::Text(hello.to_json().into());
            return send_within(ws, hello, opts.send_timeout).await;
        };
        let req = SubRequest {
            filter: r.filter,
            exclude: None,
            context: None,
            backlog: Some(r.backlog),
            since_seq: None,
            since_offsets: None,
        };
        match self.subscribe(None, r.category, req) {
            Ok(_) => Ok(()),
            Err(reason) => {
                let m = Message::Text(format!("[tailgate] {reason}\n").into());
                send_within(ws, m, opts.send_timeout).await?;
                Err(End::Done)
            }
        }
    }

    /// Serves requests and sends what the queue holds until the client goes, the server
    /// shuts down, the client is idle past the idle timeout, or a send times out.
    async fn run(
        &mut self,
        ws: &mut WebSocket,
        opts: &ConnOptions,
        shutdown: &CancellationToken,
    ) -> End {
        let hub = self.hub.clone();
        let mut cats = hub.watch_categories();
        cats.borrow_and_update();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seen = Instant::now();
        let mut last_ping = Instant::now();
        loop {
            let mut out: Vec<String> = tokio::select! {
                _ = shutdown.cancelled() => {
                    // A client that does not read cannot hold the shutdown up.
                    let limit = opts.send_timeout.min(SHUTDOWN_CLOSE);
                    let _ = send_within(ws, close(1001, "tailgate is shutting down"), limit).await;
                    return End::Done;
                }
                msg = ws.recv() => {
                    last_seen = Instant::now();
                    match msg {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Done,
                        Some(Ok(Message::Text(t))) if !self.raw => self.request(t.as_str()),
                        Some(Ok(Message::Binary(_))) if !self.raw => vec![error("send JSON text frames", None)],
                        Some(Ok(_)) => Vec::new(),
                    }
                }
                _ = self.queue.notify.notified() => self.flush().await,
                _ = tick.tick() => match self.on_tick(ws, opts, last_seen, &mut last_ping).await {
                    Ok(out) => out,
                    Err(end) => return end,
                },
                Ok(()) = cats.changed(), if !self.raw => {
                    vec![ServerMsg::Categories { categories: hub.category_names() }.to_json()]
                }
            };
            // A new category is announced before its first lines: the lines just taken from
            // the queue were pushed after their feed was created, which bumped `cats` first,
            // so a change not yet reported is seen here. Without this, which of the two ready
            // branches ran first was up to `select!`, and a client that waits for the
            // `categories` update (the page's category list) met lines of an unknown category.
            if !self.raw && !out.is_empty() && cats.has_changed().unwrap_or(false) {
                cats.borrow_and_update();
                let update = ServerMsg::Categories {
                    categories: hub.category_names(),
                };
                out.insert(0, update.to_json());
            }
            if let Err(end) = send_all_within(ws, out, opts.send_timeout).await {
                return end;
            }
        }
    }

    /// Every [`TICK`]: close an idle client, ping when due, and take what the queue holds.
    async fn on_tick(
        &mut self,
        ws: &mut WebSocket,
        opts: &ConnOptions,
        last_seen: Instant,
        last_ping: &mut Instant,
    ) -> Result<Vec<String>, End> {
        if last_seen.elapsed() > opts.idle_timeout {
            send_within(ws, close(1000, "idle timeout"), opts.send_timeout).await?;
            return Err(End::Done);
        }
        if last_ping.elapsed() >= opts.ping_every {
            *last_ping = Instant::now();
            send_within(ws, Message::Ping(Bytes::new()), opts.send_timeout).await?;
        }
        Ok(self.flush().await)
    }

    fn request(&mut self, text: &str) -> Vec<String> {
        if text.len() > MAX_REQUEST {
            return vec![error(format!("request over {MAX_REQUEST} bytes"), None)];
        }
        let msg: ClientMsg = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(e) => return vec![error(format!("bad request: {e}"), None)],
        };
        match msg {
            ClientMsg::Subscribe {
                id,
                category,
                filter,
                exclude,
                context,
                backlog,
                since_seq,
                since_offsets,
            } => {
                let id_for_err = id.clone().unwrap_or_else(|| category.clone());
                let req = SubRequest {
                    filter,
                    exclude,
                    context,
                    backlog,
                    since_seq,
                    since_offsets,
                };
                match self.subscribe(id, category, req) {
                    Ok(m) => vec![m],
                    Err(reason) => vec![error(reason, Some(&id_for_err))],
                }
            }
            ClientMsg::Unsubscribe { id } => {
                match self.subs.iter().find(|(_, s)| s.id == id).map(|(k, _)| *k) {
                    Some(key) => {
                        self.subs.remove(&key);
                        self.hub.unsubscribe(key);
                        vec![ServerMsg::Unsubscribed { id: &id }.to_json()]
                    }
                    None => vec![error("no subscription with this id", Some(&id))],
                }
            }
            ClientMsg::Ping { data } => vec![ServerMsg::Pong { data }.to_json()],
            ClientMsg::Categories {} => vec![ServerMsg::Categories {
                categories: self.hub.category_names(),
            }
            .to_json()],
        }
    }

    fn subscribe(
        &mut self,
        id: Option<String>,
        category: String,
        req: SubRequest,
    ) -> Result<String, String> {
        let SubRequest {
            filter,
            exclude,
            context,
            backlog,
            since_seq,
            since_offsets,
        } = req;
        let pattern = CategoryGlob::new(&category).map_err(|e| {
            let shown: String = category.chars().take(64).collect();
            format!("{shown:?} is not a category name or glob: {e}")
        })?;
        // The id defaults to the pattern, so it gets the same bound.
        let id = id.unwrap_or_else(|| category.clone());
        if id.is_empty() || id.len() > MAX_CATEGORY_LEN {
            return Err(format!("id must be 1 to {MAX_CATEGORY_LEN} bytes"));
        }
        let include = filter::compile("filter", filter)?;
        let exclude = filter::compile("exclude", exclude)?;
        let context = context.unwrap_or(0);
        if context > filter::MAX_CONTEXT {
            return Err(format!("context over {} lines", filter::MAX_CONTEXT));
        }
        let regexes = u32::from(include.is_some()) + u32::from(exclude.is_some());
        let filter = if regexes == 0 {
            None
        } else {
            // A replaced subscription's slots are still held here; they are freed below.
            let replaced = self.subs.values().any(|s| s.id == id && s.filter.is_some());
            let slots = match self.filter_slots.clone().try_acquire_many_owned(regexes) {
                Ok(p) => p,
                Err(_) if replaced => {
                    let old = self.subs.iter().find(|(_, s)| s.id == id).map(|(k, _)| *k);
                    if let Some(old) = old {
                        self.subs.remove(&old);
                        self.hub.unsubscribe(old);
                    }
                    self.filter_slots
                        .clone()
                        .try_acquire_many_owned(regexes)
                        .map_err(|_| "too many filtered subscriptions on this server")?
                }
                Err(_) => return Err("too many filtered subscriptions on this server".into()),
            };
            Some(Arc::new(Filters::new(include, exclude, context, slots)))
        };
        let backlog = backlog.unwrap_or(0).min(self.hub.config().ring_lines);
        let start = match since_seq {
            None => Start::Backlog(backlog),
            Some(SinceSeq::One(n)) => {
                if pattern.is_glob() {
                    return Err("since_seq for a glob must be a map of category to seq".into());
                }
                Start::Since(HashMap::from([(category.clone(), n)]), backlog)
            }
            Some(SinceSeq::Map(m)) => {
                if m.len() > self.hub.config().max_categories {
                    return Err("since_seq names more categories than exist".into());
                }
                Start::Since(m, backlog)
            }
        };
        let start = match (since_offsets, start) {
            (None, start) => start,
            (Some(offsets), start) => {
                if offsets.len() > self.hub.config().max_categories {
                    return Err("since_offsets names more categories than exist".into());
                }
                let seqs = match start {
                    Start::Since(m, _) => m,
                    _ => HashMap::new(),
                };
                Start::Offsets {
                    offsets,
                    seqs,
                    backlog,
                }
            }
        };
        // Replacing a subscription with the same id.
        if let Some(old) = self.subs.iter().find(|(_, s)| s.id == id).map(|(k, _)| *k) {
            self.subs.remove(&old);
            self.hub.unsubscribe(old);
        }
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(format!(
                "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
            ));
        }
        let (key, matched) = self.hub.subscribe(&self.queue, pattern, &start);
        let reply = ServerMsg::Subscribed {
            id: &id,
            category: &category,
            matched: matched.iter().map(|m| &*m.name).collect(),
            last_seq: matched.iter().map(|m| (&*m.name, m.last_seq)).collect(),
            from_seq: matched.iter().map(|m| (&*m.name, m.from_seq)).collect(),
            offsets: matched
                .iter()
                .filter_map(|m| Some((&*m.name, m.cursor.as_ref()?)))
                .collect(),
        }
        .to_json();
        self.subs.insert(key, Sub { id, filter });
        Ok(reply)
    }

    /// Turns what the queue holds into messages. With a filter in play the work runs on the
    /// blocking pool: a regex can take seconds over a big backlog, and an async worker busy
    /// that long would stall every other connection it schedules.
    async fn flush(&mut self) -> Vec<String> {
        // One message's worth at a time: encoding the whole queue at once would hold its
        // JSON (a multiple of `--client-buffer`) on top of the queue. The rest is taken on
        // the next turn of the loop, which the notify makes immediate.
        let items = self.queue.drain_upto(BATCH_BYTES);
        if !self.queue.is_empty() {
            self.queue.notify.notify_one();
        }
        if items.is_empty() {
            return Vec::new();
        }
        let (out, sent) = if self.subs.values().any(|s| s.filter.is_some()) {
            let (subs, raw) = (self.subs.clone(), self.raw);
            match tokio::task::spawn_blocking(move || render(&subs, raw, items)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("filtering a batch failed: {e}");
                    (Vec::new(), 0)
                }
            }
        } else {
            render(&self.subs, self.raw, items)
        };
        self.hub
            .metrics
            .lines_sent
            .fetch_add(sent, Ordering::Relaxed);
        out
    }
}

/// The messages for `items`, and how many lines they carry.
fn render(subs: &HashMap<u64, Sub>, raw: bool, items: Vec<Item>) -> (Vec<String>, u64) {
    let r = Render { subs, raw };
    let mut o = Rendered::default();
    for item in items {
        match item {
            Item::Lines {
                key,
                category,
                chunk,
                from,
                to,
            } => {
                let Some(sub) = r.subs.get(&key) else {
                    continue;
                };
                // Kafka lines go one by one: each moves the message's offsets.
                if sub.filter.is_none() && !r.raw && !chunk.has_origins() {
                    r.add_chunk(&mut o, key, &category, &chunk, from..to);
                    continue;
                }
                for i in from..to {
                    let (seq, line) = (chunk.seq(i), chunk.lines[i].clone());
                    let origin = chunk.origin(i);
                    r.add_line(&mut o, key, &category, seq, line, origin);
                }
            }
            Item::Dropped {
                key,
                category,
                count,
                from_seq,
            } => {
                r.notice_after(
                    &mut o,
                    key,
                    &category,
                    || format!("[tailgate] dropped {count} lines of {category} from seq {from_seq} (this client fell behind)\n"),
                    |id| {
                        ServerMsg::Dropped {
                            id,
                            category: &category,
                            count,
                            from_seq,
                        }
                        .to_json()
                    },
                );
            }
            Item::OffsetGap {
                key,
                category,
                partition,
                from,
                to,
                reason,
            } => {
                r.notice_after(
                    &mut o,
                    key,
                    &category,
                    || format!("[tailgate] gap: offsets {from}..{to} of partition {partition} of {category} are not sent: {reason}\n"),
                    |id| {
                        ServerMsg::OffsetGap {
                            id,
                            category: &category,
                            partition,
                            from_offset: from,
                            to_offset: to,
                            reason: reason.to_string(),
                        }
                        .to_json()
                    },
                );
            }
            Item::Gap {
                key,
                category,
                from_seq,
                to_seq,
            } => {
                r.notice_after(
                    &mut o,
                    key,
                    &category,
                    || format!("[tailgate] gap: lines {from_seq}..{to_seq} of {category} are no longer held\n"),
                    |id| {
                        ServerMsg::Gap {
                            id,
                            category: &category,
                            from_seq,
                            to_seq,
                        }
                        .to_json()
                    },
                );
            }
        }
    }
    r.flush(&mut o);
    (o.msgs, o.sent)
}

/// What [`render`] has made so far: finished messages, the message being built, and how
/// many lines the finished ones carry.
#[derive(Default)]
struct Rendered {
    msgs: Vec<String>,
    batch: Option<Batch>,
    sent: u64,
}

struct Render<'a> {
    subs: &'a HashMap<u64, Sub>,
    raw: bool,
}

impl Batch {
    fn new(key: u64, category: &Arc<str>, read_back: bool) -> Batch {
        Batch {
            key,
            category: category.clone(),
            seq: 0,
            last_seq: 0,
            count: 0,
            parts: Vec::new(),
            lines: Vec::new(),
            seqs: Vec::new(),
            context: Vec::new(),
            bytes: 0,
            offsets: BTreeMap::new(),
            read_back,
        }
    }

    /// Whether lines of `key`/`category` (read back from Kafka or not) may join this
    /// message.
    fn takes(&self, key: u64, category: &Arc<str>, read_back: bool) -> bool {
        self.key == key
            && self.category == *category
            && self.read_back == read_back
            && self.count < BATCH_LINES
            && self.bytes < BATCH_BYTES
    }

    /// Adds a line; `context`: it is context around a match, not a match.
    fn push(&mut self, seq: u64, line: Bytes, context: bool) {
        if self.count == 0 {
            self.seq = seq;
        }
        if context {
            self.context.push(self.lines.len());
        }
        self.bytes += line.len();
        self.count += 1;
        self.lines.push(line);
        // Every line's seq: sent with a filter, or when they are not consecutive (a resume
        // by offsets skips lines of other partitions the client has).
        self.seqs.push(seq);
    }
}

impl Render<'_> {
    /// The batch for lines of `key`/`category`: the current one if they may join it, else a
    /// new one (the current one is emitted first).
    fn batch_for<'b>(
        &self,
        o: &'b mut Rendered,
        key: u64,
        category: &Arc<str>,
        read_back: bool,
    ) -> &'b mut Batch {
        if !o
            .batch
            .as_ref()
            .is_some_and(|b| b.takes(key, category, read_back))
        {
            self.flush(o);
        }
        o.batch
            .get_or_insert_with(|| Batch::new(key, category, read_back))
    }

    /// Finishes the message being built, if any.
    fn flush(&self, o: &mut Rendered) {
        if let Some(b) = o.batch.take() {
            o.sent += self.emit(b, &mut o.msgs);
        }
    }

    /// Lines `r` of a chunk for an unfiltered JSON subscription: ranges of the chunk, cut
    /// into messages of at most `BATCH_LINES` lines and about `BATCH_BYTES`.
    fn add_chunk(
        &self,
        o: &mut Rendered,
        key: u64,
        category: &Arc<str>,
        chunk: &Arc<Chunk>,
        r: std::ops::Range<usize>,
    ) {
        let mut i = r.start;
        while i < r.end {
            let b = self.batch_for(o, key, category, false);
            let n = chunk
                .fit_text(i, BATCH_LINES - b.count, BATCH_BYTES - b.bytes)
                .min(r.end - i);
            // A line longer than what is left goes into the next message; a line longer
            // than a whole message goes alone.
            let n = match n {
                0 if b.count > 0 => {
                    self.flush(o);
                    continue;
                }
                0 => 1,
                n => n,
            };
            if b.count == 0 {
                b.seq = chunk.seq(i);
            }
            b.parts.push((chunk.clone(), i, i + n));
            b.count += n;
            b.bytes += chunk.cost(i..i + n) - n * crate::ring::LINE_OVERHEAD;
            b.last_seq = chunk.seq(i + n - 1);
            i += n;
        }
    }

    /// One line for a filtered or raw subscription, or a Kafka line (with its origin).
    fn add_line(
        &self,
        o: &mut Rendered,
        key: u64,
        category: &Arc<str>,
        seq: u64,
        line: Bytes,
        origin: Option<Origin>,
    ) {
        let Some(sub) = self.subs.get(&key) else {
            return;
        };
        // Real seqs start at 1: 0 is a line read back from Kafka.
        let b = self.batch_for(o, key, category, seq == 0);
        b.last_seq = seq;
        if let Some(o) = origin {
            b.offsets.insert(o.partition, o.offset + 1);
        }
        match sub
            .filter
            .as_ref()
            .map(|f| f.judge(&b.category, seq, &line))
        {
            None => b.push(seq, line, false),
            Some(Verdict::Skip) => {}
            Some(Verdict::Context) => b.push(seq, line, true),
            Some(Verdict::Match(before)) => {
                for (s, l) in before {
                    b.push(s, l, true);
                }
                b.push(seq, line, false);
            }
        }
    }

    fn reset_context(&self, key: u64, category: &str) {
        if let Some(f) = self.subs.get(&key).and_then(|s| s.filter.as_ref()) {
            f.reset(category);
        }
    }

    /// A notice (dropped lines, a gap) ends the message being built and a filter's context
    /// run, then goes out as [`Render::notice`] makes it.
    fn notice_after(
        &self,
        o: &mut Rendered,
        key: u64,
        category: &str,
        raw: impl FnOnce() -> String,
        json: impl FnOnce(&str) -> String,
    ) {
        self.flush(o);
        self.reset_context(key, category);
        o.msgs.extend(self.notice(key, raw, json));
    }

    /// A notice (dropped lines, a gap) for subscription `key`, in raw text or as the JSON
    /// message for the subscription's id; nothing once the subscription is gone.
    fn notice(
        &self,
        key: u64,
        raw: impl FnOnce() -> String,
        json: impl FnOnce(&str) -> String,
    ) -> Option<String> {
        let sub = self.subs.get(&key)?;
        Some(if self.raw { raw() } else { json(&sub.id) })
    }

    fn emit(&self, b: Batch, out: &mut Vec<String>) -> u64 {
        let Some(sub) = self.subs.get(&b.key) else {
            return 0;
        };
        if b.count == 0 {
            // The filter skipped every line: say how far that went, or the client's
            // resume point would lag and a later resume report a false gap.
            if !self.raw {
                out.push(
                    ServerMsg::Progress {
                        id: &sub.id,
                        category: &b.category,
                        last_seq: b.last_seq,
                        offsets: (!b.offsets.is_empty()).then_some(&b.offsets),
                    }
                    .to_json(),
                );
            }
            return 0;
        }
        if !b.parts.is_empty() {
            out.push(lines_json(&sub.id, &b));
        } else if self.raw {
            let mut text = String::with_capacity(b.bytes + b.lines.len());
            for l in &b.lines {
                text.push_str(&String::from_utf8_lossy(l));
                text.push('\n');
            }
            out.push(text);
        } else {
            out.push(
                ServerMsg::Lines {
                    id: &sub.id,
                    category: &b.category,
                    seq: b.seq,
                    last_seq: b.last_seq,
                    lines: b.lines.iter().map(LineOut::new).collect(),
                    seqs: (sub.filter.is_some() || !b.seqs.windows(2).all(|w| w[1] == w[0] + 1))
                        .then_some(b.seqs),
                    offsets: (!b.offsets.is_empty()).then_some(&b.offsets),
                    context: (!b.context.is_empty()).then_some(b.context),
                }
                .to_json(),
            );
        }
        b.count as u64
    }
}

/// A `lines` message of chunk ranges, the bytes `ServerMsg::Lines` would give (without
/// `seqs` and `context`, which only filtered subscriptions have), but with each line's JSON
/// copied from its chunk instead of serialized again for every client.
fn lines_json(id: &str, b: &Batch) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut text = String::with_capacity(128 + id.len() + b.bytes + 4 * b.count);
    text.push_str(r#"{"type":"lines","id":"#);
    text.push_str(&quoted(id));
    text.push_str(r#","category":"#);
    text.push_str(&quoted(&b.category));
    text.push_str(&format!(
        r#","seq":{},"last_seq":{},"lines":["#,
        b.seq, b.last_seq
    ));
    for (n, (chunk, from, to)) in b.parts.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str(chunk.json(*from..*to));
    }
    text.push_str("]}");
    text
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
