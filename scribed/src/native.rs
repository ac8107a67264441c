//! One native-protocol connection (see `scribe_protocol::native` and docs/protocol.md):
//! `HELLO` → `WELCOME` (with this server's frame and message limits), then batches, each
//! answered by an `ACK` with its number, strictly in order. After any answer but `OK` the
//! connection is closed without reading further, so a client that pipelines never has a
//! batch written behind one that was refused.
//!
//! Read-ahead: when a batch's stores take it over at once (a file store queues it to its
//! category's writer, a relay's buffer store to its forwarder), the next batch is read before
//! this one is answered, up to `READ_AHEAD` (8) of them, so the socket read of the next batch
//! overlaps the write of this one, and a relay keeps several of a client's batches in flight
//! upstream. Their order holds (each is handed over behind the one before), and so does
//! "nothing behind a refusal": a refused batch breaks the connection's [`Chain`], and the
//! stores refuse what they hold of it behind that batch.
//!
//! Entries keep their ids on the way to the stores: a file store writes an entry whose range
//! its category already committed as a duplicate-free no-op (exactly-once), a relay forwards
//! the ids upstream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{ready, BoxFuture};
use scribe_protocol::frame::FrameError;
use scribe_protocol::native::{
    self, Ack, AckStatus, BatchFrame, Compression, Denied, Hello, NativeError, Welcome,
};
use scribe_protocol::server::BudgetedFrame;
use scribe_protocol::{Refused, ResultCode, ServerConnection};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Peer, UNKNOWN_TOKENS};
use crate::handler::{self, SLOW_CALL};
use crate::stores::Chain;
use crate::Server;

/// The `HELLO` must follow the magic within this long.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a connection whose magic was read.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    server: Arc<Server>,
    mut conn: ServerConnection<S>,
    mut peer: Peer,
) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, conn.read_frame()).await {
        Ok(Ok(Some((frame, _memory)))) => Hello::decode(frame),
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            bad(&server, &peer, &e);
            return;
        }
    };
    let hello = match hello {
        Ok(h) => h,
        Err(e) => return bad(&server, &peer, &e),
    };
    if let Some(token) = &hello.token {
        let rules = server.routing.read().await.rules.clone();
        match rules.by_token(token) {
            Some(name) => peer.client = Some(name.to_string()),
            None => {
                server
                    .auth_counters
                    .add(UNKNOWN_TOKENS, &peer.listener.at, 1);
                let addr = peer.addr;
                server
                    .auth_warn
                    .warn(|| format!("refused native client {addr}: its token is not known"));
                let denied = Denied {
                    message: Bytes::from_static(b"the token is not accepted by this server"),
                };
                reply(&mut conn, &denied.encode(), &peer).await;
                return;
            }
        }
    }
    let welcome = Welcome {
        version: native::VERSION,
        compression: if hello.gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        max_frame: u32::try_from(server.limits.max_frame).unwrap_or(u32::MAX),
        // What fits one frame with the longest category this server accepts: a client
        // sets aside a longer message at once instead of sending it for ever.
        max_message: Some(
            u32::try_from(native::max_message(
                server.limits.max_frame,
                scribe_archive::category::MAX_CATEGORY_LEN,
            ))
            .unwrap_or(u32::MAX),
        ),
        // Bodies with runs of lines are read like any other (`decode_body_grouped`).
        runs: true,
    };
    if !reply(&mut conn, &welcome.encode(), &peer).await || hello.version != native::VERSION {
        // A client of another version reads our version from the WELCOME and gives up.
        return;
    }
    tracing::debug!(
        peer = %peer.addr,
        client = peer.name(),
        name = %String::from_utf8_lossy(&hello.name),
        "native client"
    );
    let chain = Chain::default();
    // Batches handed over and not yet answered, oldest first.
    let mut ahead: VecDeque<Ahead<'_>> = VecDeque::new();
    loop {
        // Read on behind unanswered batches only if each was taken over, up to READ_AHEAD.
        let waiting = !ahead.is_empty();
        let may_read = ahead.len() < READ_AHEAD && ahead.iter().all(|a| a.taken_over);
        let event = tokio::select! {
            biased;
            // A batch read but not answered is not acknowledged: the client sends it again.
            _ = server.shutdown.cancelled() => break,
            answer = oldest_answer(&mut ahead) => Event::Answer(answer),
            // With nothing unanswered, as ever (the idle limit applies). Behind unanswered
            // batches, only the wait for the next frame to start races the answers (it is
            // cancel-safe); its body is read below.
            input = next_input(&mut conn, waiting), if !waiting || may_read => input,
        };
        let next = match event {
            Event::Answer(answer) => {
                let started = ahead.pop_front().expect("answered").started;
                if !acknowledge(&server, &mut conn, &peer, &chain, answer, started).await {
                    break;
                }
                continue;
            }
            Event::Frame(next) => next,
            Event::Start(Ok(true)) => conn.read_frame().await,
            Event::Start(Ok(false)) => Ok(None),
            Event::Start(Err(e)) => Err(e),
        };
        let (frame, _memory) = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return bad(&server, &peer, &e),
        };
        let started = Instant::now();
        let (answer, taken_over) = start_batch(&server, &peer, frame, &chain).await;
        ahead.push_back(Ahead {
            started,
            answer: Box::pin(answer),
            taken_over,
        });
    }
}

/// A batch read and not yet answered.
struct Ahead<'a> {
    started: Instant,
    answer: BoxFuture<'a, BatchAnswer>,
    /// Its stores took it over: the next batch may be read meanwhile.
    taken_over: bool,
}

/// A batch's number and answer (or why it could not be routed).
type BatchAnswer = Result<(u64, Result<ResultCode, Refused>), (u64, NativeError)>;

enum Event {
    Answer(BatchAnswer),
    Frame(Result<Option<BudgetedFrame>, FrameError>),
    Start(Result<bool, FrameError>),
}

/// How many batches one connection may have handed over and unanswered: more than `ship`'s
/// window, so a relay keeps its upstream as busy as the client keeps it.
const READ_AHEAD: usize = 8;

/// The answer to the oldest batch; pending while there is none.
async fn oldest_answer(ahead: &mut VecDeque<Ahead<'_>>) -> BatchAnswer {
    match ahead.front_mut() {
        Some(a) => (&mut a.answer).await,
        None => std::future::pending().await,
    }
}

/// With nothing unanswered, the next frame; else the wait for one to start.
async fn next_input<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ServerConnection<S>,
    waiting: bool,
) -> Event {
    if waiting {
        Event::Start(conn.wait_start().await)
    } else {
        Event::Frame(conn.read_frame().await)
    }
}

/// Sends a batch's `ACK`; `false` when the connection is to be closed: the ack was not
/// delivered, the batch was not `OK` (nothing behind it is read; the chain is broken so
/// nothing already handed over behind it is written either), or it took so long that the
/// client may have given up on this connection.
async fn acknowledge<S: AsyncRead + AsyncWrite + Unpin>(
    server: &Server,
    conn: &mut ServerConnection<S>,
    peer: &Peer,
    chain: &Chain,
    answer: BatchAnswer,
    started: Instant,
) -> bool {
    let (batch, status, message) = match answer {
        Ok((batch, Ok(ResultCode::Ok))) => (batch, AckStatus::Ok, Bytes::new()),
        Ok((batch, Ok(ResultCode::TryLater))) => {
            (batch, AckStatus::TryLater, Bytes::from_static(b"try later"))
        }
        Ok((batch, Err(Refused(why)))) => (batch, AckStatus::Denied, Bytes::from(why)),
        Err((batch, e)) => {
            bad(server, peer, &e);
            (batch, AckStatus::Error, Bytes::from(e.to_string()))
        }
    };
    if status != AckStatus::Ok {
        chain.break_off();
    }
    let ack = Ack {
        batch,
        status,
        message,
    };
    // As for pipelining Thrift clients (see `SLOW_CALL`): after a slow answer the client may
    // have given up on this connection and sent what is queued here again elsewhere.
    reply(conn, &ack.encode(), peer).await
        && status == AckStatus::Ok
        && started.elapsed() < SLOW_CALL
}

/// Decodes (inflating within the frame-memory budget) and routes one batch: its answer to
/// come, and whether its stores took it over (see [`handler::log_ahead`]). The frame's memory
/// is released once the batch is routed or taken over: from then on its bytes count against
/// the stores' queue caps.
async fn start_batch<'a>(
    server: &'a Server,
    peer: &'a Peer,
    frame: Bytes,
    chain: &Chain,
) -> (BoxFuture<'a, BatchAnswer>, bool) {
    let failed = |batch: u64, e: NativeError| -> (BoxFuture<'a, BatchAnswer>, bool) {
        (Box::pin(ready(Err((batch, e)))), false)
    };
    let bf = match BatchFrame::decode(frame) {
        Ok(bf) => bf,
        Err(e) => return failed(0, e),
    };
    let batch = bf.batch;
    // An inflated body takes its own share of the budget, on top of the compressed frame.
    let _inflated = if bf.compression == Compression::None {
        None
    } else {
        if bf.body_len > server.limits.max_frame {
            let max = server.limits.max_frame;
            return failed(
                batch,
                NativeError::TooLarge {
                    len: bf.body_len,
                    max,
                },
            );
        }
        let permits = u32::try_from(bf.body_len.max(1)).unwrap_or(u32::MAX);
        match server
            .limits
            .memory
            .clone()
            .acquire_many_owned(permits)
            .await
        {
            Ok(p) => Some(p),
            Err(_) => return failed(batch, NativeError::Invalid("shutting down".into())),
        }
    };
    let groups = match bf
        .into_body(server.limits.max_frame)
        .and_then(native::decode_body_grouped)
    {
        Ok(groups) => groups,
        Err(e) => return failed(batch, e),
    };
    let (answer, taken_over) = handler::log_ahead(server, peer, groups, chain).await;
    let answer = async move { Ok((batch, answer.await)) };
    (Box::pin(answer), taken_over)
}

fn bad(server: &Server, peer: &Peer, e: &dyn std::fmt::Display) {
    let addr = peer.addr;
    server
        .bad_frame_warn
        .warn(|| format!("closing native connection from {addr}: {e}"));
}

/// Writes a `WELCOME` or `ACK`; `false` (logged at debug: the client went away or stopped
/// reading) when it was not delivered.
async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut ServerConnection<S>,
    frame: &[u8],
    peer: &Peer,
) -> bool {
    match conn.write_frame(frame).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(peer = %peer.addr, "{e}");
            false
        }
    }
}
