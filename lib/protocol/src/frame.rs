//! The framed transport: every Thrift message is preceded by its length as a 4-byte big-endian
//! integer (Scribe's `TNonblockingServer` accepts nothing else).
//!
//! Clients use `tokio_util`'s length-delimited codec: it rejects a frame whose declared length
//! exceeds the maximum *before* reserving memory for it, and handles partial frames. scribed's
//! server reads frames itself (`scribed/src/connection.rs`) because it must also account each
//! frame against a server-wide memory budget before buffering it; it applies the same limit.

use tokio_util::codec::LengthDelimitedCodec;

/// Default largest frame payload accepted or sent: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Room a one-entry `Log` call needs around its category and message (headers, field and list
/// markers). Used to turn a frame limit into a message-size limit.
pub const LOG_ENVELOPE_OVERHEAD: usize = 64;

/// A codec for Thrift's framed transport with the given maximum payload size.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .big_endian()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut c = codec(1024);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, b'a'][..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"bc");
        assert_eq!(&c.decode(&mut buf).unwrap().unwrap()[..], b"abc");
    }

    #[test]
    fn oversized_length_is_an_error_without_allocating() {
        let mut c = codec(1024);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(c.decode(&mut buf).is_err());
        assert!(buf.capacity() < 1 << 20);
    }
}
