//! Thrift binary protocol primitives: a bounds-checked reader over one frame and a writer.
//!
//! Why hand-written: the `thrift` crate decodes `string` as UTF-8 (Scribe messages are bytes)
//! and defaults to strict headers (Scribe's own network store sends unversioned ones). The
//! subset Scribe and fb303 need is small, and owning it lets every length read off the wire be
//! checked against the bytes actually present before anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};

/// Thrift type ids as they appear on the wire.
pub mod ttype {
    pub const STOP: u8 = 0;
    pub const VOID: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
}

/// How deeply nested unknown structures may be before decoding gives up. Real Scribe and fb303
/// payloads nest three levels at most; the bound keeps hostile input from exhausting the stack.
pub const MAX_SKIP_DEPTH: usize = 32;

/// Why a frame could not be decoded. Every variant names where in the frame it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame truncated at byte {at}: needed {needed} more bytes, {available} available")]
    Truncated {
        at: usize,
        needed: usize,
        available: usize,
    },
    #[error("negative length {len} at byte {at}")]
    NegativeLength { len: i32, at: usize },
    #[error("container at byte {at} claims {count} elements but only {available} bytes remain")]
    ContainerTooLarge {
        at: usize,
        count: usize,
        available: usize,
    },
    #[error("unknown thrift type id {id} at byte {at}")]
    UnknownType { id: u8, at: usize },
    #[error("field {field} has type {found}, expected {expected}")]
    WrongFieldType { field: i16, found: u8, expected: u8 },
    #[error("structures nested deeper than {MAX_SKIP_DEPTH} levels")]
    TooDeep,
    #[error("bad message: {0}")]
    BadMessage(&'static str),
    #[error("unsupported protocol version {0:#010x}")]
    BadVersion(u32),
}

/// A cursor over one complete frame. Strings are returned as zero-copy slices of the frame.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: n,
                available: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn read_i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a `string`/`binary`: arbitrary bytes, never checked for UTF-8.
    pub fn read_binary(&mut self) -> Result<Bytes, DecodeError> {
        let at = self.pos;
        let len = self.read_i32()?;
        if len < 0 {
            return Err(DecodeError::NegativeLength { len, at });
        }
        self.read_raw(len as usize)
    }

    /// Reads `len` raw bytes as a zero-copy slice of the frame.
    pub fn read_raw(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated {
                at: self.pos,
                needed: len,
                available: self.remaining(),
            });
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// Reads a field header; `None` on the STOP byte that ends a struct.
    pub fn read_field_begin(&mut self) -> Result<Option<(u8, i16)>, DecodeError> {
        let ty = self.read_u8()?;
        if ty == ttype::STOP {
            return Ok(None);
        }
        let id = self.read_i16()?;
        Ok(Some((ty, id)))
    }

    /// Reads a list/set header and checks the count against the bytes left, so a hostile count
    /// can neither cause a large allocation nor a long loop.
    pub fn read_list_begin(&mut self) -> Result<(u8, usize), DecodeError> {
        let at = self.pos;
        let elem = self.read_u8()?;
        let count = self.read_i32()?;
        if count < 0 {
            return Err(DecodeError::NegativeLength { len: count, at });
        }
        let count = count as usize;
        let min = min_encoded_size(elem).ok_or(DecodeError::UnknownType { id: elem, at })?;
        self.check_count(at, count, min)?;
        Ok((elem, count))
    }

    fn read_map_begin(&mut self) -> Result<(u8, u8, usize), DecodeError> {
        let at = self.pos;
        let k = self.read_u8()?;
        let v = self.read_u8()?;
        let count = self.read_i32()?;
        if count < 0 {
            return Err(DecodeError::NegativeLength { len: count, at });
        }
        let count = count as usize;
        let kmin = min_encoded_size(k).ok_or(DecodeError::UnknownType { id: k, at })?;
        let vmin = min_encoded_size(v).ok_or(DecodeError::UnknownType { id: v, at })?;
        self.check_count(at, count, kmin + vmin)?;
        Ok((k, v, count))
    }

    fn check_count(&self, at: usize, count: usize, min_each: usize) -> Result<(), DecodeError> {
        // An element of zero encoded size (void) would let a tiny frame claim billions of
        // elements; count each as at least one byte for this bound.
        if count.saturating_mul(min_each.max(1)) > self.remaining() {
            return Err(DecodeError::ContainerTooLarge {
                at,
                count,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    /// Skips one value of type `ty`, recursing into containers up to [`MAX_SKIP_DEPTH`].
    pub fn skip(&mut self, ty: u8) -> Result<(), DecodeError> {
        self.skip_depth(ty, 0)
    }

    fn skip_depth(&mut self, ty: u8, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_SKIP_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        let at = self.pos;
        match ty {
            ttype::BOOL | ttype::BYTE => {
                self.take(1)?;
            }
            ttype::I16 => {
                self.take(2)?;
            }
            ttype::I32 => {
                self.take(4)?;
            }
            ttype::DOUBLE | ttype::I64 => {
                self.take(8)?;
            }
            ttype::STRING => {
                self.read_binary()?;
            }
            ttype::STRUCT => {
                while let Some((fty, _)) = self.read_field_begin()? {
                    self.skip_depth(fty, depth + 1)?;
                }
            }
            ttype::MAP => {
                let (k, v, n) = self.read_map_begin()?;
                for _ in 0..n {
                    self.skip_depth(k, depth + 1)?;
                    self.skip_depth(v, depth + 1)?;
                }
            }
            ttype::SET | ttype::LIST => {
                let (e, n) = self.read_list_begin()?;
                for _ in 0..n {
                    self.skip_depth(e, depth + 1)?;
                }
            }
            id => return Err(DecodeError::UnknownType { id, at }),
        }
        Ok(())
    }
}

/// The smallest number of bytes a value of this type can occupy on the wire.
fn min_encoded_size(ty: u8) -> Option<usize> {
    Some(match ty {
        ttype::BOOL | ttype::BYTE | ttype::STRUCT => 1,
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING => 4,
        ttype::DOUBLE | ttype::I64 => 8,
        ttype::MAP => 6,
        ttype::SET | ttype::LIST => 5,
        _ => return None,
    })
}

/// Appends Thrift binary values to a buffer.
pub struct Writer<'a> {
    pub buf: &'a mut BytesMut,
}

impl Writer<'_> {
    pub fn field_begin(&mut self, ty: u8, id: i16) {
        self.buf.put_u8(ty);
        self.buf.put_i16(id);
    }

    pub fn field_stop(&mut self) {
        self.buf.put_u8(ttype::STOP);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    /// Writes a `string`/`binary`. Panics only if `v` is over 2 GiB, which no caller can produce:
    /// frames are capped far below that.
    pub fn binary(&mut self, v: &[u8]) {
        let len = i32::try_from(v.len()).expect("thrift string longer than i32::MAX");
        self.buf.put_i32(len);
        self.buf.put_slice(v);
    }

    pub fn list_begin(&mut self, elem: u8, count: i32) {
        self.buf.put_u8(elem);
        self.buf.put_i32(count);
    }

    pub fn map_begin(&mut self, k: u8, v: u8, count: i32) {
        self.buf.put_u8(k);
        self.buf.put_u8(v);
        self.buf.put_i32(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_not_utf8_checked() {
        let mut b = BytesMut::new();
        Writer { buf: &mut b }.binary(b"\xff\x00\xfe");
        let mut r = Reader::new(b.freeze());
        assert_eq!(&r.read_binary().unwrap()[..], b"\xff\x00\xfe");
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn string_length_past_end_is_truncated_error() {
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 10, b'a']));
        assert!(matches!(
            r.read_binary(),
            Err(DecodeError::Truncated { needed: 10, .. })
        ));
    }

    #[test]
    fn negative_string_length_is_rejected() {
        let mut r = Reader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]));
        assert!(matches!(
            r.read_binary(),
            Err(DecodeError::NegativeLength { len: -1, .. })
        ));
    }

    #[test]
    fn huge_list_count_is_rejected_before_allocation() {
        // list<struct> claiming 2^31-1 elements in a 5-byte frame.
        let mut r = Reader::new(Bytes::from_static(&[ttype::STRUCT, 0x7f, 0xff, 0xff, 0xff]));
        assert!(matches!(
            r.read_list_begin(),
            Err(DecodeError::ContainerTooLarge { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // A struct whose field 1 is a struct whose field 1 is a struct ... 100 levels.
        let mut v = Vec::new();
        for _ in 0..100 {
            v.extend_from_slice(&[ttype::STRUCT, 0, 1]);
        }
        let mut r = Reader::new(Bytes::from(v));
        assert_eq!(r.skip(ttype::STRUCT), Err(DecodeError::TooDeep));
    }

    #[test]
    fn skip_walks_containers() {
        let mut b = BytesMut::new();
        let mut w = Writer { buf: &mut b };
        w.map_begin(ttype::STRING, ttype::I64, 2);
        w.binary(b"a");
        w.i64(1);
        w.binary(b"b");
        w.i64(2);
        w.list_begin(ttype::I32, 3);
        w.i32(1);
        w.i32(2);
        w.i32(3);
        let mut r = Reader::new(b.freeze());
        r.skip(ttype::MAP).unwrap();
        r.skip(ttype::LIST).unwrap();
        assert_eq!(r.remaining(), 0);
    }
}
