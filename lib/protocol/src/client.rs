//! An async Scribe client: one connection ([`Client`]) speaking either the native protocol
//! ([`crate::native`]) or Scribe's Thrift, and a delivering wrapper
//! ([`PipelinedSender`](crate::sender::PipelinedSender)) that reconnects and retries until
//! each batch is acknowledged.
//!
//! Batches are always built as native bodies ([`crate::native::BatchBuilder`]): on a native
//! connection they go as they are (entry ids included, so the server can recognise a resent
//! entry); on a Thrift connection they are re-encoded as a `Log` call and the ids are lost
//! (at-least-once, as Scribe itself).
//!
//! A batch is cut to the connection's [`Limits`] on its way out ([`crate::split`]): what a
//! native server advertised in its `WELCOME`, else the configured `max_frame`. The parts of
//! one batch are still one batch to the caller (one [`Client::recv_result`]); a message
//! that fits no frame goes to the [`OversizeSink`] instead of the server.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use scribe_tls::{ClientTls, Stream, Token};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::frame;
use crate::native::{
    self, Ack, AckStatus, BatchFrame, Compression, Denied, Hello, NativeError, Welcome,
};
use crate::scribe::{
    decode_log_reply, decode_string_reply, encode_string_call, ReplyError, ResultCode,
};
use crate::split::{split_native, split_thrift, Limits, Oversize, OversizeSink};
use crate::HeaderStyle;

/// How long a handshake may take before the server is taken for one that does not do it.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The fb303 option scribed honours to close a connection after `TRY_LATER`.
pub const CLOSE_ON_TRY_LATER_OPTION: &[u8] = b"scribed.close_on_try_later";
/// The fb303 option a scribed that speaks the native protocol answers `1` to.
pub const NATIVE_OPTION: &[u8] = b"scribed.native";

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Native if the server speaks it, else Thrift.
    #[default]
    Auto,
    /// Native only: a server that does not speak it is an error.
    Native,
    /// Thrift only (entry ids are dropped).
    Thrift,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "auto" => Ok(Protocol::Auto),
            "native" => Ok(Protocol::Native),
            "thrift" => Ok(Protocol::Thrift),
            other => Err(format!(
                "unknown protocol {other:?} (auto, native or thrift)"
            )),
        }
    }
}

/// Timeouts and limits of one connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// How long to wait for the reply to one batch.
    pub request_timeout: Duration,
    /// Largest frame sent: the server's limit over Thrift (which cannot say); a native
    /// server's `WELCOME` may lower it further.
    pub max_frame: usize,
    pub protocol: Protocol,
    /// Offer gzip for batch bodies on native connections.
    pub gzip: bool,
    /// Takes each message too large for the server out of its batch. Without one, such a
    /// batch fails with [`ClientError::Oversize`] every time it is sent.
    pub oversize: Option<OversizeSink>,
    /// Connect with TLS (the server's certificate checked against these settings).
    pub tls: Option<ClientTls>,
    /// A bearer token sent in the native `HELLO` (Thrift has no place for one).
    pub token: Option<Token>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame: frame::DEFAULT_MAX_FRAME,
            protocol: Protocol::Auto,
            gzip: false,
            oversize: None,
            tls: None,
            token: None,
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
    #[error("bad native reply from {addr}: {source}")]
    Native { addr: String, source: NativeError },
    #[error("{addr} refused a batch: {message}")]
    Refused { addr: String, message: String },
    #[error("handshake with {addr}: {reason}")]
    Handshake { addr: String, reason: String },
    /// TLS with the server failed; `reason` names the cause (see `scribe_tls::explain`).
    #[error("{addr}: {reason}")]
    Tls { addr: String, reason: String },
    /// The server will not take this client's data as it is (an unknown token, a category
    /// it may not write): sending it again cannot succeed.
    #[error("{addr} denied: {message}")]
    Denied { addr: String, message: String },
    #[error(
        "a message of {len} bytes in category {category} can never be sent to {addr}: \
         it takes messages of at most {limit} bytes"
    )]
    Oversize {
        addr: String,
        category: String,
        len: usize,
        limit: usize,
    },
    #[error("setting aside a message too large for {addr}: {reason}")]
    SetAside { addr: String, reason: String },
}

/// What a connection speaks, once negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Thrift; `pipelines`: the server closes the connection after any `TRY_LATER`
    /// (scribed's option), so several batches may be in flight.
    Thrift { pipelines: bool },
    /// The native protocol (always pipelines).
    Native { compression: Compression },
}

/// One framed connection to a Scribe server.
pub struct Client {
    addr: String,
    framed: Framed<Stream, LengthDelimitedCodec>,
    opts: ClientOptions,
    wire: Wire,
    /// What a frame may carry on this connection.
    limits: Limits,
    /// Batches sent and not yet answered, oldest first.
    pending: VecDeque<Pending>,
    /// Native: number of the next batch sent, and of the next ack expected.
    next_batch: u64,
    next_ack: u64,
}

/// A batch given to [`Client::send_body`], as one or more frames.
struct Pending {
    /// Frames not written yet: where the connection does not pipeline, each waits for the
    /// `OK` to the one before.
    unsent: VecDeque<OutFrame>,
    /// Frames not yet answered (written or not).
    unanswered: usize,
}

/// A frame of a batch as two pieces written back to back: its length (and, native, its
/// header), then the batch bytes, never copied into one buffer.
struct OutFrame {
    head: Bytes,
    payload: Bytes,
}

impl Client {
    /// Connects without any handshake: the connection speaks plain Thrift, one call at a
    /// time. [`Client::open`] negotiates.
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
        let stream = match &opts.tls {
            Some(tls) => {
                let host = host_of(addr);
                let tls = tls
                    .connect(host, stream, opts.connect_timeout)
                    .await
                    .map_err(|reason| ClientError::Tls {
                        addr: addr.to_string(),
                        reason,
                    })?;
                Stream::Client(Box::new(tls))
            }
            None => Stream::Plain(stream),
        };
        Ok(Client {
            addr: addr.to_string(),
            framed: Framed::new(stream, frame::codec(opts.max_frame)),
            limits: Limits::frame(opts.max_frame),
            opts,
            wire: Wire::Thrift { pipelines: false },
            pending: VecDeque::new(),
            next_batch: 0,
            next_ack: 0,
        })
    }

    /// Connects and negotiates the protocol `opts.protocol` asks for:
    ///
    /// - native: `HELLO`/`WELCOME`; a server that does not answer is an error;
    /// - Thrift: asks a scribed to close after `TRY_LATER` (then batches pipeline);
    /// - auto: native, else (on a new connection) Thrift. A server that fails the native
    ///   handshake but then says over Thrift that it speaks native was only briefly unwell
    ///   (a restart): that is an error to retry, not a reason to drop to Thrift, which would
    ///   lose the entry ids and with them exactly-once delivery.
    pub async fn open(addr: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let protocol = opts.protocol;
        let mut conn = Client::connect(addr, opts.clone()).await?;
        if protocol != Protocol::Thrift {
            let hs = tokio::time::timeout(
                HANDSHAKE_TIMEOUT.min(opts.request_timeout),
                conn.negotiate_native(),
            )
            .await;
            match hs {
                Ok(Ok(true)) => return Ok(conn),
                // Neither is a server that only speaks Thrift.
                Ok(Err(e @ (ClientError::Denied { .. } | ClientError::Tls { .. }))) => {
                    return Err(e)
                }
                Ok(Err(e)) if protocol == Protocol::Native => return Err(e),
                _ if protocol == Protocol::Native => {
                    return Err(ClientError::Handshake {
                        addr: addr.to_string(),
                        reason: "the server does not speak the native protocol".into(),
                    })
                }
                _ => conn = Client::connect(addr, opts.clone()).await?,
            }
        }
        let hs = tokio::time::timeout(
            HANDSHAKE_TIMEOUT.min(opts.request_timeout),
            conn.negotiate_thrift(),
        )
        .await;
        match hs {
            Ok(Ok((pipelines, native))) => {
                if native && protocol == Protocol::Auto {
                    return Err(ClientError::Handshake {
                        addr: addr.to_string(),
                        reason: "native handshake failed on a server that speaks it; retrying"
                            .into(),
                    });
                }
                conn.wire = Wire::Thrift { pipelines };
                Ok(conn)
            }
            // A server that does not speak fb303: one batch at a time, on a clean connection.
            Ok(Err(_)) | Err(_) => Client::connect(addr, opts).await,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The protocol this connection speaks.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// What a frame may carry on this connection: the `WELCOME`'s limits within
    /// `max_frame` (native), else `max_frame`.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether several batches may be in flight.
    pub fn pipelines(&self) -> bool {
        !matches!(self.wire, Wire::Thrift { pipelines: false })
    }

    /// Writes one frame payload (the codec adds the length).
    pub async fn send(&mut self, call: Bytes) -> Result<(), ClientError> {
        let timeout = self.opts.request_timeout;
        match tokio::time::timeout(timeout, self.framed.send(call)).await {
            Ok(r) => r.map_err(|source| self.io_error(source)),
            Err(_) => Err(ClientError::RequestTimeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// Waits for the next reply frame.
    pub async fn recv(&mut self) -> Result<Bytes, ClientError> {
        let timeout = self.opts.request_timeout;
        match tokio::time::timeout(timeout, self.framed.next()).await {
            Err(_) => Err(ClientError::RequestTimeout {
                addr: self.addr.clone(),
                timeout,
            }),
            Ok(None) => Err(ClientError::Closed {
                addr: self.addr.clone(),
            }),
            Ok(Some(Err(source))) => Err(self.io_error(source)),
            Ok(Some(Ok(reply))) => Ok(reply.freeze()),
        }
    }

    /// An I/O error, or what it means: a TLS failure named by its cause, or a TLS server
    /// answering this plaintext connection (its first reply bytes are a TLS record).
    fn io_error(&self, source: io::Error) -> ClientError {
        let addr = self.addr.clone();
        if self.framed.get_ref().is_tls() {
            return ClientError::Tls {
                addr,
                reason: scribe_tls::explain(&source),
            };
        }
        if scribe_tls::looks_like_tls_reply(self.framed.read_buffer()) {
            return ClientError::Tls {
                addr,
                reason: "the server speaks TLS on this port: connect with TLS (ship: --tls)".into(),
            };
        }
        ClientError::Io { addr, source }
    }

    /// Waits for the next reply and decodes it as `Log`'s.
    pub async fn recv_log_reply(&mut self) -> Result<ResultCode, ClientError> {
        let reply = self.recv().await?;
        decode_log_reply(reply).map_err(|source| ClientError::Reply {
            addr: self.addr.clone(),
            source,
        })
    }

    /// Sends the native `HELLO` and reads `WELCOME`. `Ok(false)`: the server answered
    /// something else or closed the connection (a Thrift-only server drops it: the magic
    /// reads as an impossible frame length); the connection is then unusable.
    pub async fn negotiate_native(&mut self) -> Result<bool, ClientError> {
        let hello = Hello {
            version: native::VERSION,
            gzip: self.opts.gzip,
            name: Bytes::from_static(b"scribe-protocol"),
            token: self
                .opts
                .token
                .as_ref()
                .map(|t| Bytes::copy_from_slice(t.as_bytes())),
        }
        .encode();
        // The magic precedes the first frame unframed, so it bypasses the codec.
        let written = async {
            let stream = self.framed.get_mut();
            stream.write_all(&hello).await?;
            stream.flush().await
        }
        .await;
        if let Err(source) = written {
            return Err(self.io_error(source));
        }
        let reply = match self.recv().await {
            Ok(r) => r,
            Err(ClientError::Closed { .. } | ClientError::Io { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Ok(denied) = Denied::decode(reply.clone()) {
            return Err(ClientError::Denied {
                addr: self.addr.clone(),
                message: String::from_utf8_lossy(&denied.message).into_owned(),
            });
        }
        match Welcome::decode(reply) {
            Ok(w) if w.version == native::VERSION => {
                self.limits = Limits::from_welcome(&w, self.opts.max_frame);
                self.wire = Wire::Native {
                    compression: if self.opts.gzip {
                        w.compression
                    } else {
                        Compression::None
                    },
                };
                Ok(true)
            }
            Ok(w) => Err(ClientError::Handshake {
                addr: self.addr.clone(),
                reason: format!("server speaks native version {}", w.version),
            }),
            Err(_) => Ok(false),
        }
    }

    /// Asks the server to close this connection after any `TRY_LATER`, which makes pipelining
    /// safe, and whether it speaks the native protocol. Only scribed does either: other
    /// Scribe servers answer `(false, false)` or fail the call (the connection should then
    /// be dropped).
    pub async fn negotiate_thrift(&mut self) -> Result<(bool, bool), ClientError> {
        let style = HeaderStyle::Unversioned;
        let name = self
            .string_call(encode_string_call(style, "getName", &[]), "getName")
            .await?;
        if name.as_deref() != Some(&b"scribed"[..]) {
            return Ok((false, false));
        }
        let key = CLOSE_ON_TRY_LATER_OPTION;
        self.string_call(
            encode_string_call(style, "setOption", &[key, b"1"]),
            "setOption",
        )
        .await?;
        let value = self
            .string_call(encode_string_call(style, "getOption", &[key]), "getOption")
            .await?;
        let native = self
            .string_call(
                encode_string_call(style, "getOption", &[NATIVE_OPTION]),
                "getOption",
            )
            .await?;
        Ok((
            value.as_deref() == Some(&b"1"[..]),
            native.as_deref() == Some(&b"1"[..]),
        ))
    }

    async fn string_call(
        &mut self,
        call: Bytes,
        method: &str,
    ) -> Result<Option<Bytes>, ClientError> {
        self.send(call).await?;
        let reply = self.recv().await?;
        decode_string_reply(reply, method).map_err(|source| ClientError::Reply {
            addr: self.addr.clone(),
            source,
        })
    }

    /// Sends one native batch body (see [`native::BatchBuilder`]) without waiting, in this
    /// connection's protocol, cut into as many frames as its [`Limits`] need; messages too
    /// large for any frame go to the [`OversizeSink`] first (or fail the batch, without one).
    pub async fn send_body(&mut self, body: &Bytes) -> Result<(), ClientError> {
        let split = match self.wire {
            Wire::Native { .. } => split_native(body, self.limits, &self.addr),
            Wire::Thrift { .. } => split_thrift(body, self.limits, &self.addr),
        }
        .map_err(|source| ClientError::Native {
            addr: self.addr.clone(),
            source,
        })?;
        for o in split.oversize {
            self.set_aside(o).await?;
        }
        let mut frames: VecDeque<OutFrame> = match self.wire {
            Wire::Native { compression } => split
                .parts
                .iter()
                .map(|part| {
                    let (head, payload) =
                        BatchFrame::encode_parts(self.next_batch, part, compression);
                    self.next_batch += 1;
                    OutFrame { head, payload }
                })
                .collect(),
            Wire::Thrift { .. } => split
                .parts
                .into_iter()
                .map(|payload| OutFrame {
                    head: Bytes::copy_from_slice(&(payload.len() as u32).to_be_bytes()),
                    payload,
                })
                .collect(),
        };
        let now = if self.pipelines() { frames.len() } else { 1 };
        let first: Vec<OutFrame> = frames.drain(..now.min(frames.len())).collect();
        self.pending.push_back(Pending {
            unanswered: first.len() + frames.len(),
            unsent: frames,
        });
        for f in first {
            self.write_frame(f).await?;
        }
        Ok(())
    }

    /// Writes a batch's frame with `writev` straight to the stream (the codec would copy the
    /// whole batch into its buffer first), under the request timeout.
    async fn write_frame(&mut self, f: OutFrame) -> Result<(), ClientError> {
        let timeout = self.opts.request_timeout;
        let framed = &mut self.framed;
        let write = async {
            // Whatever the codec still holds goes first (nothing: `send` flushes).
            SinkExt::<Bytes>::flush(framed).await?;
            write_all_vectored(framed.get_mut(), &f.head, &f.payload).await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(r) => r.map_err(|source| self.io_error(source)),
            Err(_) => Err(ClientError::RequestTimeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    async fn set_aside(&self, o: Oversize) -> Result<(), ClientError> {
        let Some(sink) = &self.opts.oversize else {
            return Err(ClientError::Oversize {
                addr: self.addr.clone(),
                category: String::from_utf8_lossy(&o.category).into_owned(),
                len: o.message.len(),
                limit: o.limit,
            });
        };
        sink.take(o).await.map_err(|reason| ClientError::SetAside {
            addr: self.addr.clone(),
            reason,
        })
    }

    /// Waits for the result of the oldest batch sent with [`Self::send_body`]: `OK` once
    /// every frame it was cut into was answered `OK`, else the first other answer (the rest
    /// of the batch is then not written: the server closes the connection, or, not
    /// pipelining, was never sent it). A native `ERROR` (the server could not accept the
    /// batch as sent) is [`ClientError::Refused`].
    pub async fn recv_result(&mut self) -> Result<ResultCode, ClientError> {
        let Some(mut batch) = self.pending.pop_front() else {
            // A frame the caller wrote with `send`: one answer.
            return self.recv_frame_result().await;
        };
        while batch.unanswered > 0 {
            let code = self.recv_frame_result().await?;
            if code != ResultCode::Ok {
                return Ok(code);
            }
            batch.unanswered -= 1;
            if let Some(next) = batch.unsent.pop_front() {
                self.write_frame(next).await?;
            }
        }
        Ok(ResultCode::Ok)
    }

    /// The answer to the oldest frame written.
    async fn recv_frame_result(&mut self) -> Result<ResultCode, ClientError> {
        if let Wire::Thrift { .. } = self.wire {
            return self.recv_log_reply().await;
        }
        let frame = self.recv().await?;
        let native = |source| ClientError::Native {
            addr: self.addr.clone(),
            source,
        };
        let ack = Ack::decode(frame).map_err(native)?;
        if ack.batch != self.next_ack {
            return Err(native(NativeError::Invalid(format!(
                "ack for batch {} while {} was expected",
                ack.batch, self.next_ack
            ))));
        }
        self.next_ack += 1;
        match ack.status {
            AckStatus::Ok => Ok(ResultCode::Ok),
            AckStatus::TryLater => Ok(ResultCode::TryLater),
            AckStatus::Error => Err(ClientError::Refused {
                addr: self.addr.clone(),
                message: String::from_utf8_lossy(&ack.message).into_owned(),
            }),
            AckStatus::Denied => Err(ClientError::Denied {
                addr: self.addr.clone(),
                message: String::from_utf8_lossy(&ack.message).into_owned(),
            }),
        }
    }

    /// Sends one batch body and waits for its result, within one request timeout.
    pub async fn log_body(&mut self, body: &Bytes) -> Result<ResultCode, ClientError> {
        let (timeout, addr) = (self.opts.request_timeout, self.addr.clone());
        within(timeout, addr, async {
            self.send_body(body).await?;
            self.recv_result().await
        })
        .await
    }

    /// Sends one encoded Thrift `Log` call (see [`crate::LogBatchBuilder`]) and waits for
    /// its result, within one request timeout. Only for Thrift connections.
    pub async fn log(&mut self, call: Bytes) -> Result<ResultCode, ClientError> {
        let (timeout, addr) = (self.opts.request_timeout, self.addr.clone());
        within(timeout, addr, async {
            self.send(call).await?;
            self.recv_log_reply().await
        })
        .await
    }
}

/// The host part of `host:port` (`[v6]:port` keeps its brackets off), for the TLS name check.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// One deadline for a whole exchange, as for a single call.
async fn within<T>(
    timeout: Duration,
    addr: String,
    exchange: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::RequestTimeout { addr, timeout }),
    }
}

/// Writes `head` then `payload` with as few `writev(2)` calls as the socket takes, then
/// flushes (TLS: the records are out).
async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    mut head: &[u8],
    mut payload: &[u8],
) -> io::Result<()> {
    while !head.is_empty() || !payload.is_empty() {
        let n = if head.is_empty() {
            w.write(payload).await?
        } else {
            w.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(payload)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        payload = &payload[n - from_head..];
    }
    w.flush().await
}

#[cfg(test)]
mod tests;
