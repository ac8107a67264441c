//! The native protocol: ship → scribed and scribed → scribed, beside Scribe's Thrift on the
//! same port. docs/protocol.md is the normative description; in short:
//!
//! A client opens the connection with the 4 bytes [`MAGIC`]. Read as a Thrift frame length,
//! they would announce a frame of about 4 GB, which no server accepts, so a server tells the
//! two protocols apart from the first four bytes without any risk of mistaking a real Thrift
//! client for a native one. After the magic, both sides exchange frames: a 4-byte big-endian
//! length (of what follows), a kind byte, and the body.
//!
//! - `HELLO` (client): version, the compressions it can send, a name for logs.
//! - `WELCOME` (server): version, the compression it chose, its frame limit and (since the
//!   first extension) the longest message it accepts, so a client can cut batches to fit
//!   and set aside a message that never will.
//! - `BATCH` (client): a connection-local batch number, the compression used, the body's
//!   uncompressed length, the body (see [`BatchBuilder`]).
//! - `ACK` (server): the batch number and a status; after any status but `OK` the server
//!   closes the connection without reading further batches, so batches pipelined behind a
//!   refused one are never written out of order.
//!
//! A batch body carries a category table, a producer table (producer id and the start of its
//! first entry in the batch) and the entries; an entry may name its producer and the length of
//! the sequence range it covers, so every entry has an [`EntryId`](scribe_ids::EntryId) without repeating 16-byte
//! ids per line.
//!
//! `HELLO` and `WELCOME` grow only by appending fields: a receiver reads the fields it knows
//! and ignores any bytes after them, so peers of different ages interoperate without a new
//! version number (docs/protocol.md, "Extensions").
//!
//! Like the Thrift decoder, nothing here trusts a length or count: each is checked against the
//! bytes present before anything is allocated, and inflating a compressed body stops at the
//! declared length (itself capped by the caller).

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};

use crate::thrift::{DecodeError, Reader};

/// The first bytes a native client sends.
pub const MAGIC: [u8; 4] = [0xF5, b'S', b'C', b'N'];
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;

/// Frame kinds.
pub mod kind {
    pub const HELLO: u8 = 1;
    pub const WELCOME: u8 = 2;
    pub const BATCH: u8 = 3;
    pub const ACK: u8 = 4;
    pub const DENIED: u8 = 5;
}

/// How a batch body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
        }
    }

    fn from_code(c: u8) -> Result<Compression, NativeError> {
        match c {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            other => Err(NativeError::Invalid(format!("unknown compression {other}"))),
        }
    }
}

/// Bit of `HELLO`'s compression offer.
const OFFER_GZIP: u8 = 1;

/// Bytes of a `BATCH` frame's payload before its body: kind, batch number, compression, body
/// length. A body fits a server's frame limit when it is at most that limit less this.
pub const BATCH_FRAME_OVERHEAD: usize = 1 + 8 + 1 + 4;

/// The longest message that fits a batch of its own, with a category of `category_len` bytes
/// and an entry id, in a frame of `max_frame` bytes (what scribed advertises in `WELCOME`,
/// for its longest category name). Counts every varint at its longest.
pub fn max_message(max_frame: usize, category_len: usize) -> usize {
    // Tables (3 counts, one category, one producer row), then the entry's varints: category
    // index, row, span (up to 10 bytes), message length (up to 5 for a frame under 4 GiB).
    let tables = 12 + 2 + category_len + 24;
    let entry = 1 + 1 + 10 + 5;
    max_frame.saturating_sub(BATCH_FRAME_OVERHEAD + tables + entry)
}

#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// Truncated (a length or count past the end), as the Thrift decoder reports it.
    #[error("native frame: {0}")]
    Frame(#[from] DecodeError),
    #[error("native frame invalid: {0}")]
    Invalid(String),
    #[error("unexpected native frame kind {0}")]
    UnexpectedKind(u8),
    #[error("protocol version {0} is not supported (this side speaks {VERSION})")]
    Version(u16),
    #[error("batch body inflates past its declared {declared} bytes or is corrupt: {reason}")]
    Inflate { declared: usize, reason: String },
    #[error("batch body of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
}

/// LEB128, at most 10 bytes, read with the Thrift decoder's bounds-checked [`Reader`].
pub(crate) fn get_varint(r: &mut Reader) -> Result<u64, NativeError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = r.read_u8()?;
        let part = u64::from(b & 0x7F);
        if i == 9 && part > 1 {
            return Err(NativeError::Invalid("varint overflows 64 bits".into()));
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(NativeError::Invalid("varint longer than 10 bytes".into()))
}
pub(crate) fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Prepends the 4-byte length to `kind` + `body`.
fn frame(kind: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_u32(1 + body.len() as u32);
    out.put_u8(kind);
    out.put_slice(body);
    out.freeze()
}

/// A client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub gzip: bool,
    pub name: Bytes,
    /// A bearer token naming the client (the first appended field): the server maps it to
    /// what the client may write, or answers [`Denied`].
    pub token: Option<Bytes>,
}

impl Hello {
    /// The magic and the framed `HELLO`, ready to write.
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u16(self.version);
        body.put_u8(if self.gzip { OFFER_GZIP } else { 0 });
        let name = &self.name[..self.name.len().min(u16::MAX as usize)];
        body.put_u16(name.len() as u16);
        body.put_slice(name);
        // Appended, so a server that predates it reads the fields above and ignores it.
        if let Some(token) = &self.token {
            let token = &token[..token.len().min(u16::MAX as usize)];
            body.put_u16(token.len() as u16);
            body.put_slice(token);
        }
        let f = frame(kind::HELLO, &body);
        let mut out = BytesMut::with_capacity(4 + f.len());
        out.put_slice(&MAGIC);
        out.put_slice(&f);
        out.freeze()
    }

    /// Decodes a frame's payload (kind byte included, length prefix and magic not).
    pub fn decode(frame: Bytes) -> Result<Hello, NativeError> {
        let mut r = expect_kind(frame, kind::HELLO)?;
        let version = r.read_i16()? as u16;
        let offer = r.read_u8()?;
        let n = r.read_i16()? as u16 as usize;
        let name = r.read_raw(n)?;
        let token = if r.remaining() >= 2 {
            let n = r.read_i16()? as u16 as usize;
            Some(r.read_raw(n)?)
        } else {
            None
        };
        Ok(Hello {
            version,
            gzip: offer & OFFER_GZIP != 0,
            name,
            token,
        })
    }
}

/// The server's answer to [`Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    pub version: u16,
    pub compression: Compression,
    /// The largest frame the server reads (length prefix not counted).
    pub max_frame: u32,
    /// The longest message the server accepts in any batch. `None` from a server that
    /// predates the field: then only `max_frame` bounds a message.
    pub max_message: Option<u32>,
    /// Whether the server reads bodies with runs of lines ([`BatchBuilder::with_runs`]); false
    /// from a server that predates them. Sent only with `max_message` (fields are appended
    /// in order).
    pub runs: bool,
}

/// Bit of `WELCOME`'s body-layout byte: the server reads runs of lines.
const LAYOUT_BIT_RUNS: u8 = 1;

impl Welcome {
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u16(self.version);
        body.put_u8(self.compression.code());
        body.put_u32(self.max_frame);
        // Appended, so a client that predates it reads the fields above and ignores it.
        if let Some(m) = self.max_message {
            body.put_u32(m);
            // The second extension: the body layouts read beyond the first.
            if self.runs {
                body.put_u8(LAYOUT_BIT_RUNS);
            }
        }
        frame(kind::WELCOME, &body)
    }

    /// Decodes a `WELCOME` of any age: fields a newer server appended after the ones known
    /// here are ignored.
    pub fn decode(frame: Bytes) -> Result<Welcome, NativeError> {
        let mut r = expect_kind(frame, kind::WELCOME)?;
        let version = r.read_i16()? as u16;
        let compression = Compression::from_code(r.read_u8()?)?;
        let max_frame = r.read_i32()? as u32;
        let max_message = if r.remaining() >= 4 {
            Some(r.read_i32()? as u32)
        } else {
            None
        };
        let runs =
            max_message.is_some() && r.remaining() >= 1 && r.read_u8()? & LAYOUT_BIT_RUNS != 0;
        Ok(Welcome {
            version,
            compression,
            max_frame,
            max_message,
            runs,
        })
    }
}

/// The server's answer to a [`Hello`] it will not serve (an unknown token), in place of the
/// `WELCOME`; the server closes the connection after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Why, for the client's operator.
    pub message: Bytes,
}

impl Denied {
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        let m = &self.message[..self.message.len().min(u16::MAX as usize)];
        body.put_u16(m.len() as u16);
        body.put_slice(m);
        frame(kind::DENIED, &body)
    }

    pub fn decode(frame: Bytes) -> Result<Denied, NativeError> {
        let mut r = expect_kind(frame, kind::DENIED)?;
        let n = r.read_i16()? as u16 as usize;
        Ok(Denied {
            message: r.read_raw(n)?,
        })
    }
}

/// A reader over `frame` past its kind byte, which must be `want`.
fn expect_kind(frame: Bytes, want: u8) -> Result<Reader, NativeError> {
    let mut r = Reader::new(frame);
    match r.read_u8()? {
        k if k == want => Ok(r),
        k => Err(NativeError::UnexpectedKind(k)),
    }
}

/// What a server answers to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Written (or recognised as already written) by every store's durability policy.
    Ok,
    /// Not accepted; send it again later (the server closes the connection).
    TryLater,
    /// The batch cannot be accepted as sent (malformed); the connection is closed.
    Error,
    /// The client may not write a category of the batch (the message names it); nothing of
    /// the batch was written and the connection is closed. Sending it again cannot succeed.
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub batch: u64,
    pub status: AckStatus,
    /// Why, for anything but `Ok` (for logs).
    pub message: Bytes,
}

impl Ack {
    pub fn encode(&self) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u64(self.batch);
        body.put_u8(match self.status {
            AckStatus::Ok => 0,
            AckStatus::TryLater => 1,
            AckStatus::Error => 2,
            AckStatus::Denied => 3,
        });
        let m = &self.message[..self.message.len().min(u16::MAX as usize)];
        body.put_u16(m.len() as u16);
        body.put_slice(m);
        frame(kind::ACK, &body)
    }

    pub fn decode(frame: Bytes) -> Result<Ack, NativeError> {
        let mut r = expect_kind(frame, kind::ACK)?;
        let batch = r.read_i64()? as u64;
        let status = match r.read_u8()? {
            0 => AckStatus::Ok,
            1 => AckStatus::TryLater,
            2 => AckStatus::Error,
            3 => AckStatus::Denied,
            s => return Err(NativeError::Invalid(format!("unknown ack status {s}"))),
        };
        let n = r.read_i16()? as u16 as usize;
        let message = r.read_raw(n)?;
        Ok(Ack {
            batch,
            status,
            message,
        })
    }
}

/// A `BATCH` frame's header: what a server needs before inflating the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFrame {
    pub batch: u64,
    pub compression: Compression,
    /// The body's length once inflated.
    pub body_len: usize,
    /// The body as sent (compressed or not).
    pub payload: Bytes,
}

impl BatchFrame {
    /// Frames `body` (an uncompressed [`BatchBuilder`] body) as batch number `batch`,
    /// compressing it when asked and when that makes it smaller: a body that gzip would
    /// grow (random bytes) goes plain, so a body that fits a frame limit always fits it
    /// framed (every batch says its own compression).
    pub fn encode(batch: u64, body: &Bytes, compression: Compression) -> Bytes {
        let (head, payload) = BatchFrame::encode_parts(batch, body, compression);
        let mut out = BytesMut::with_capacity(head.len() + payload.len());
        out.put_slice(&head);
        out.put_slice(&payload);
        out.freeze()
    }

    /// [`Self::encode`] as two pieces to write back to back (one `writev`): the frame's
    /// length and header, then the payload, which is `body` itself when it goes uncompressed,
    /// so a batch is never copied into a frame.
    pub fn encode_parts(batch: u64, body: &Bytes, compression: Compression) -> (Bytes, Bytes) {
        let compressed = match compression {
            Compression::None => None,
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(body);
                enc.finish().ok().filter(|c| c.len() < body.len())
            }
        };
        let (compression, payload) = match compressed {
            Some(c) => (Compression::Gzip, Bytes::from(c)),
            None => (Compression::None, body.clone()),
        };
        let mut head = BytesMut::with_capacity(4 + BATCH_FRAME_OVERHEAD);
        head.put_u32((BATCH_FRAME_OVERHEAD + payload.len()) as u32);
        head.put_u8(kind::BATCH);
        head.put_u64(batch);
        head.put_u8(compression.code());
        head.put_u32(body.len() as u32);
        (head.freeze(), payload)
    }

    /// Decodes a frame's payload (kind byte included) without inflating it.
    pub fn decode(frame: Bytes) -> Result<BatchFrame, NativeError> {
        let mut r = expect_kind(frame, kind::BATCH)?;
        let batch = r.read_i64()? as u64;
        let compression = Compression::from_code(r.read_u8()?)?;
        let body_len = r.read_i32()? as u32 as usize;
        let frame = r.read_raw(r.remaining())?;
        if compression == Compression::None && body_len != frame.len() {
            return Err(NativeError::Invalid(format!(
                "body of {} bytes declared as {body_len}",
                frame.len()
            )));
        }
        Ok(BatchFrame {
            batch,
            compression,
            body_len,
            payload: frame,
        })
    }

    /// The uncompressed body. A compressed one is inflated to exactly `body_len` bytes, which
    /// the caller has checked against its limit (and accounted) first; anything longer,
    /// shorter or corrupt is an error.
    pub fn into_body(self, max: usize) -> Result<Bytes, NativeError> {
        if self.body_len > max {
            return Err(NativeError::TooLarge {
                len: self.body_len,
                max,
            });
        }
        match self.compression {
            Compression::None => Ok(self.payload),
            Compression::Gzip => {
                let declared = self.body_len;
                let mut out = Vec::with_capacity(declared);
                let mut dec =
                    flate2::read::GzDecoder::new(&self.payload[..]).take(declared as u64 + 1);
                dec.read_to_end(&mut out)
                    .map_err(|e| NativeError::Inflate {
                        declared,
                        reason: e.to_string(),
                    })?;
                if out.len() != declared {
                    return Err(NativeError::Inflate {
                        declared,
                        reason: format!("inflated to {} bytes", out.len()),
                    });
                }
                Ok(out.into())
            }
        }
    }
}

mod body;
pub use body::{decode_body, decode_body_grouped, has_runs, BatchBuilder, Entry};

#[cfg(test)]
mod tests;
