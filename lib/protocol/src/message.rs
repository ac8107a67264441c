//! Thrift message envelopes: the header in front of every call and reply (in both the strict,
//! versioned style and the old unversioned one), replies, and `TApplicationException`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::thrift::{ttype, DecodeError, Reader, Writer};

/// Message types from Thrift's `TMessageType`.
pub mod message_type {
    pub const CALL: u8 = 1;
    pub const REPLY: u8 = 2;
    pub const EXCEPTION: u8 = 3;
    pub const ONEWAY: u8 = 4;
}

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// Which header style a peer used. Servers reply in the style of the request: Scribe's own
/// server always replied unversioned, while strict clients (Ruby, `scribe_ctrl`) accept both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStyle {
    /// `0x8001000T`, then the name, then the sequence id.
    Strict,
    /// The name (i32 length + bytes), a type byte, then the sequence id.
    Unversioned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The method name. Non-UTF-8 names are kept lossily: they can only be unknown methods.
    pub name: String,
    pub message_type: u8,
    pub seqid: i32,
    pub style: HeaderStyle,
}

impl MessageHeader {
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        let first = r.read_i32()?;
        if first < 0 {
            let v = first as u32;
            if v & VERSION_MASK != VERSION_1 {
                return Err(DecodeError::BadVersion(v));
            }
            let name = r.read_binary()?;
            let seqid = r.read_i32()?;
            Ok(MessageHeader {
                name: String::from_utf8_lossy(&name).into_owned(),
                message_type: (v & 0xff) as u8,
                seqid,
                style: HeaderStyle::Strict,
            })
        } else {
            let name = r.read_raw(first as usize)?;
            let message_type = r.read_u8()?;
            let seqid = r.read_i32()?;
            Ok(MessageHeader {
                name: String::from_utf8_lossy(&name).into_owned(),
                message_type,
                seqid,
                style: HeaderStyle::Unversioned,
            })
        }
    }

    pub fn write(&self, buf: &mut BytesMut) {
        match self.style {
            HeaderStyle::Strict => {
                buf.put_u32(VERSION_1 | u32::from(self.message_type));
                Writer { buf }.binary(self.name.as_bytes());
                buf.put_i32(self.seqid);
            }
            HeaderStyle::Unversioned => {
                Writer { buf }.binary(self.name.as_bytes());
                buf.put_u8(self.message_type);
                buf.put_i32(self.seqid);
            }
        }
    }

    /// The header of the reply to this call: same name, sequence id and style.
    pub fn reply(&self, message_type: u8) -> MessageHeader {
        MessageHeader {
            name: self.name.clone(),
            message_type,
            seqid: self.seqid,
            style: self.style,
        }
    }
}

/// `TApplicationException` kinds used here.
pub mod exception_kind {
    pub const UNKNOWN: i32 = 0;
    pub const UNKNOWN_METHOD: i32 = 1;
    pub const PROTOCOL_ERROR: i32 = 7;
}

/// Encodes a REPLY to `call` whose result struct is written by `result` (without its STOP).
pub fn encode_reply(call: &MessageHeader, result: impl FnOnce(&mut Writer)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    call.reply(message_type::REPLY).write(&mut buf);
    let mut w = Writer { buf: &mut buf };
    result(&mut w);
    w.field_stop();
    buf.freeze()
}

/// Encodes a `TApplicationException` reply, as a generated processor does for unknown methods.
pub fn encode_exception(call: &MessageHeader, kind: i32, message: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + message.len());
    call.reply(message_type::EXCEPTION).write(&mut buf);
    let mut w = Writer { buf: &mut buf };
    w.field_begin(ttype::STRING, 1);
    w.binary(message.as_bytes());
    w.field_begin(ttype::I32, 2);
    w.i32(kind);
    w.field_stop();
    buf.freeze()
}

/// A decoded `TApplicationException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("remote application exception (type {kind}): {message}")]
pub struct ApplicationException {
    pub kind: i32,
    pub message: String,
}

impl ApplicationException {
    pub fn read(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut out = ApplicationException {
            kind: exception_kind::UNKNOWN,
            message: String::new(),
        };
        while let Some((ty, id)) = r.read_field_begin()? {
            match (id, ty) {
                (1, ttype::STRING) => {
                    out.message = String::from_utf8_lossy(&r.read_binary()?).into_owned()
                }
                (2, ttype::I32) => out.kind = r.read_i32()?,
                _ => r.skip(ty)?,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: &MessageHeader) -> MessageHeader {
        let mut b = BytesMut::new();
        h.write(&mut b);
        let mut r = Reader::new(b.freeze());
        let out = MessageHeader::read(&mut r).unwrap();
        assert_eq!(r.remaining(), 0);
        out
    }

    #[test]
    fn both_header_styles_round_trip() {
        for style in [HeaderStyle::Strict, HeaderStyle::Unversioned] {
            let h = MessageHeader {
                name: "Log".into(),
                message_type: message_type::CALL,
                seqid: 42,
                style,
            };
            assert_eq!(roundtrip(&h), h);
        }
    }

    #[test]
    fn wrong_version_is_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0x80, 0x02, 0x00, 0x01, 0, 0, 0, 0]));
        assert_eq!(
            MessageHeader::read(&mut r),
            Err(DecodeError::BadVersion(0x8002_0001))
        );
    }

    #[test]
    fn unversioned_name_longer_than_frame_is_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 0x10, b'L']));
        assert!(matches!(
            MessageHeader::read(&mut r),
            Err(DecodeError::Truncated { needed: 16, .. })
        ));
    }

    #[test]
    fn exception_round_trips() {
        let h = MessageHeader {
            name: "nope".into(),
            message_type: message_type::CALL,
            seqid: 7,
            style: HeaderStyle::Strict,
        };
        let bytes = encode_exception(&h, exception_kind::UNKNOWN_METHOD, "Invalid method name");
        let mut r = Reader::new(bytes);
        let rh = MessageHeader::read(&mut r).unwrap();
        assert_eq!(rh.message_type, message_type::EXCEPTION);
        assert_eq!(rh.seqid, 7);
        let e = ApplicationException::read(&mut r).unwrap();
        assert_eq!(e.kind, exception_kind::UNKNOWN_METHOD);
        assert_eq!(e.message, "Invalid method name");
    }
}
