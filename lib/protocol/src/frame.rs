//! The framed transport: every Thrift message is preceded by its length as a 4-byte big-endian
//! integer (Scribe's `TNonblockingServer` accepts nothing else).
//!
//! Clients use `tokio_util`'s length-delimited codec: it rejects a frame whose declared length
//! exceeds the maximum *before* reserving memory for it, and handles partial frames. Servers
//! (scribed, tailgate's Scribe listener, through [`crate::server::ServerConnection`]) read
//! frames with [`read_budgeted_frame`] because they must also account each frame against a
//! server-wide memory budget before buffering it; it applies the same limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::LengthDelimitedCodec;

/// A frame's body must arrive within this long of its length: its memory is held meanwhile.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a server stopped reading frames from a connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("frame body not received within {0:?}")]
    Stalled(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame for a server: `None` at a clean end of stream between frames, or when no
/// frame starts within `idle` (if given). Before the body is buffered, permits for its bytes
/// are taken from `memory`, a budget shared by every connection (at least `max_frame`
/// permits), and returned with the frame: the caller holds them until the call is answered,
/// so memory stays bounded across connections, not only per connection. The body must
/// arrive within [`BODY_TIMEOUT`], so a client that stalls mid-frame does not keep them.
pub async fn read_budgeted_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_frame: usize,
    memory: &Arc<Semaphore>,
    idle: Option<Duration>,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    match read_frame_start(stream, idle).await? {
        None => Ok(None),
        Some(len) => read_budgeted_body(stream, len, max_frame, memory)
            .await
            .map(Some),
    }
}

/// Reads the 4 bytes that start a frame: `None` at a clean end of stream, or when nothing
/// arrives within `idle` (if given). Servers that sniff a protocol from these bytes (scribed:
/// Thrift or native) read them with this and hand them to [`read_budgeted_body`].
pub async fn read_frame_start<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: Option<Duration>,
) -> Result<Option<[u8; 4]>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let read = stream.read(&mut len[got..]);
        // Between frames, a TLS peer that closes without `close_notify` (most clients just
        // drop the socket) is a clean end of stream: the framing, not TLS, tells complete
        // calls from truncated ones.
        let clean_end = |r: std::io::Result<usize>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        };
        let n = match (got, idle) {
            (0, Some(idle)) => match tokio::time::timeout(idle, read).await {
                Ok(r) => clean_end(r)?,
                Err(_) => return Ok(None),
            },
            (0, None) => clean_end(read.await)?,
            _ => match tokio::time::timeout(BODY_TIMEOUT, read).await {
                Ok(r) => r?,
                Err(_) => return Err(FrameError::Stalled(BODY_TIMEOUT)),
            },
        };
        match n {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    Ok(Some(len))
}

/// Reads the body of a frame whose 4 length bytes were read already (see
/// [`read_budgeted_frame`] for the memory budget and the body timeout).
pub async fn read_budgeted_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    len: [u8; 4],
    max_frame: usize,
    memory: &Arc<Semaphore>,
) -> Result<(Bytes, OwnedSemaphorePermit), FrameError> {
    let len = u32::from_be_bytes(len) as usize;
    if len > max_frame {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame,
        });
    }
    // `len` is at most `max_frame`, and the budget is at least one frame, so this never asks
    // for more permits than exist.
    let permits = u32::try_from(len.max(1)).unwrap_or(u32::MAX);
    let held = memory
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|_| FrameError::Io(std::io::ErrorKind::Interrupted.into()))?;
    // `read_buf` fills the spare capacity directly: no zero-filling of a buffer about to be
    // overwritten (it showed up as a memset of every byte received).
    let mut buf = BytesMut::with_capacity(len);
    let body = async {
        while buf.len() < len {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(r) => r?,
        Err(_) => return Err(FrameError::Stalled(BODY_TIMEOUT)),
    }
    Ok((buf.freeze(), held))
}

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
