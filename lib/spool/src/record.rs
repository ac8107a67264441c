//! Record framing: the 16-byte header and the entry encoding of the payload.
//!
//! Everything here works on byte slices; reading from files (and deciding what a bad record
//! means) is the segment module's job.

use bytes::Bytes;
use scribe_ids::{EntryId, ProducerId};

use crate::error::SpoolError;

/// Sync marker at the start of every record. `0xF7` can never appear in UTF-8, so scanning
/// forward through log text after damage meets few false candidates; "SPL" is for hexdumps.
/// A future format changes the magic.
pub(crate) const MAGIC: [u8; 4] = [0xF7, b'S', b'P', b'L'];
pub(crate) const HEADER_LEN: usize = 16;
/// The payload's entry count.
const COUNT_LEN: usize = 4;
/// Per entry: `u16` category length and `u32` message length.
const ENTRY_OVERHEAD: usize = 6;
/// Set in the entry count of a record whose entries carry ids: each entry then has one more
/// byte (0: no id, 1: an id follows) and, with an id, [`ID_LEN`] bytes (producer, start, end).
/// Records without ids are byte-for-byte the original format.
const HAS_IDS: u32 = 1 << 31;
const ID_LEN: usize = 16 + 8 + 8;

/// One spooled entry. Category and message are arbitrary bytes (NUL, invalid UTF-8 are
/// fine); the id, when there is one, lets the archive recognise the entry if it is delivered
/// twice (see `scribe_ids::ids`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub category: Bytes,
    pub message: Bytes,
    pub id: Option<EntryId>,
}

impl Entry {
    pub fn new(category: impl Into<Bytes>, message: impl Into<Bytes>) -> Entry {
        Entry {
            category: category.into(),
            message: message.into(),
            id: None,
        }
    }

    pub fn with_id(
        category: impl Into<Bytes>,
        message: impl Into<Bytes>,
        id: Option<EntryId>,
    ) -> Entry {
        Entry {
            id,
            ..Entry::new(category, message)
        }
    }
}

/// Anything that can be appended as an entry: [`Entry`], `(category, message)` tuples of
/// byte-ish types (`&[u8]`, `Vec<u8>`, `Bytes`, ...), and references to either.
pub trait AsEntry {
    fn category(&self) -> &[u8];
    fn message(&self) -> &[u8];
    fn id(&self) -> Option<EntryId> {
        None
    }
}

impl AsEntry for Entry {
    fn category(&self) -> &[u8] {
        &self.category
    }
    fn message(&self) -> &[u8] {
        &self.message
    }
    fn id(&self) -> Option<EntryId> {
        self.id
    }
}

impl<C: AsRef<[u8]>, M: AsRef<[u8]>> AsEntry for (C, M) {
    fn category(&self) -> &[u8] {
        self.0.as_ref()
    }
    fn message(&self) -> &[u8] {
        self.1.as_ref()
    }
}

impl<T: AsEntry + ?Sized> AsEntry for &T {
    fn category(&self) -> &[u8] {
        (**self).category()
    }
    fn message(&self) -> &[u8] {
        (**self).message()
    }
    fn id(&self) -> Option<EntryId> {
        (**self).id()
    }
}

/// A header that passed its own checks: magic, header CRC and the length bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub payload_len: u32,
    pub payload_crc: u32,
}

impl Header {
    /// Header plus payload, in bytes.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// The payload size `entries` encode to. Computed before encoding so that an oversized batch
/// is refused without building it.
pub(crate) fn payload_len<E: AsEntry>(entries: &[E]) -> Result<u64, SpoolError> {
    let mut len = COUNT_LEN as u64;
    if entries.iter().any(|e| e.id().is_some()) {
        len += entries.len() as u64
            + ID_LEN as u64 * entries.iter().filter(|e| e.id().is_some()).count() as u64;
    }
    for e in entries {
        let cat = e.category().len();
        if cat > usize::from(u16::MAX) {
            return Err(SpoolError::CategoryTooLong { len: cat });
        }
        len += (ENTRY_OVERHEAD + cat) as u64 + e.message().len() as u64;
    }
    Ok(len)
}

/// Appends the whole record (header and payload) for `entries` to `out`. `payload_len` must
/// come from [`payload_len`] and have been checked to fit in a `u32`, as must the entry count
/// (it does whenever the payload does: every entry takes at least 6 bytes).
pub(crate) fn encode<E: AsEntry>(entries: &[E], payload_len: u32, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(HEADER_LEN + payload_len as usize);
    out.extend_from_slice(&[0; HEADER_LEN]);
    let ids = entries.iter().any(|e| e.id().is_some());
    let count = entries.len() as u32 | if ids { HAS_IDS } else { 0 };
    out.extend_from_slice(&count.to_le_bytes());
    for e in entries {
        let (c, m) = (e.category(), e.message());
        out.extend_from_slice(&(c.len() as u16).to_le_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
        if ids {
            match e.id() {
                None => out.push(0),
                Some(id) => {
                    out.push(1);
                    out.extend_from_slice(&id.producer.0);
                    out.extend_from_slice(&id.start.to_le_bytes());
                    out.extend_from_slice(&id.end.to_le_bytes());
                }
            }
        }
    }
    debug_assert_eq!(out.len() - start - HEADER_LEN, payload_len as usize);
    let payload_crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    let header = encode_header(payload_len, payload_crc);
    out[start..start + HEADER_LEN].copy_from_slice(&header);
}

pub(crate) fn encode_header(payload_len: u32, payload_crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&payload_len.to_le_bytes());
    h[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..12]);
    h[12..16].copy_from_slice(&header_crc.to_le_bytes());
    h
}

/// Checks a header: magic, header CRC, then `payload_len <= max_payload`. `None` means damage.
pub(crate) fn parse_header(h: &[u8; HEADER_LEN], max_payload: u32) -> Option<Header> {
    if h[0..4] != MAGIC || crc32fast::hash(&h[0..12]) != le32(&h[12..16]) {
        return None;
    }
    let payload_len = le32(&h[4..8]);
    if payload_len > max_payload || (payload_len as usize) < COUNT_LEN {
        return None;
    }
    Some(Header {
        payload_len,
        payload_crc: le32(&h[8..12]),
    })
}

/// Splits a CRC-checked payload into entries that share its buffer. `None` when the structure
/// does not add up (a length running past the end, bytes left over): that is damage too, even
/// though the CRC matched, and must not panic.
pub(crate) fn decode_payload(payload: Bytes) -> Option<Vec<Entry>> {
    let p = &payload[..];
    let raw = le32(p.get(0..COUNT_LEN)?);
    let ids = raw & HAS_IDS != 0;
    let count = (raw & !HAS_IDS) as usize;
    // Every entry takes at least ENTRY_OVERHEAD bytes, which bounds the allocation by the
    // payload actually present.
    if count > (p.len() - COUNT_LEN) / ENTRY_OVERHEAD {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    let mut at = COUNT_LEN;
    for _ in 0..count {
        let cat_len = usize::from(u16::from_le_bytes(p.get(at..at + 2)?.try_into().ok()?));
        let cat = at + 2..(at + 2).checked_add(cat_len)?;
        at = cat.end;
        let msg_len = le32(p.get(at..at + 4)?) as usize;
        let msg = at + 4..(at + 4).checked_add(msg_len)?;
        if msg.end > p.len() {
            return None;
        }
        at = msg.end;
        let id = if ids {
            let flag = *p.get(at)?;
            at += 1;
            match flag {
                0 => None,
                1 => {
                    let b = p.get(at..at + ID_LEN)?;
                    at += ID_LEN;
                    let start = u64::from_le_bytes(b[16..24].try_into().ok()?);
                    let end = u64::from_le_bytes(b[24..32].try_into().ok()?);
                    Some(EntryId {
                        producer: ProducerId(b[..16].try_into().ok()?),
                        start,
                        end,
                    })
                }
                _ => return None,
            }
        } else {
            None
        };
        entries.push(Entry {
            category: payload.slice(cat),
            message: payload.slice(msg),
            id,
        });
    }
    (at == p.len()).then_some(entries)
}

/// Reads a little-endian `u32` from a 4-byte slice (callers slice exactly 4 bytes).
fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let len = payload_len(entries).unwrap() as u32;
        let mut out = Vec::new();
        encode(entries, len, &mut out);
        out
    }

    fn header_of(rec: &[u8]) -> [u8; HEADER_LEN] {
        rec[..HEADER_LEN].try_into().unwrap()
    }

    #[test]
    fn encodes_and_decodes_binary_entries() {
        let entries: [(&[u8], &[u8]); 3] = [(b"a\0b", b"\xff\xfe\n"), (b"", b""), (b"cat", b"m")];
        let rec = record(&entries);
        assert_eq!(rec.len(), HEADER_LEN + 4 + 3 * 6 + 3 + 3 + 3 + 1);
        let h = parse_header(&header_of(&rec), 1 << 20).unwrap();
        assert_eq!(h.record_len(), rec.len() as u64);
        let payload = &rec[HEADER_LEN..];
        assert_eq!(crc32fast::hash(payload), h.payload_crc);
        let got = decode_payload(Bytes::copy_from_slice(payload)).unwrap();
        let got: Vec<(&[u8], &[u8])> = got.iter().map(|e| (e.category(), e.message())).collect();
        assert_eq!(got, entries);
    }

    #[test]
    fn header_checks_magic_crc_and_bound() {
        let rec = record(&[(b"c", b"hello")]);
        let h = header_of(&rec);
        assert!(parse_header(&h, 1 << 20).is_some());
        // Payload is 4 + 6 + 1 + 5 = 16 bytes: a bound just below refuses it.
        assert!(parse_header(&h, 15).is_none());
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(parse_header(&bad, 1 << 20).is_none(), "flip at {i}");
        }
        // A length below the count field is refused even with a valid CRC.
        assert!(parse_header(&encode_header(3, 0), 1 << 20).is_none());
    }

    #[test]
    fn decode_refuses_inconsistent_structure() {
        let rec = record(&[(b"c", b"hello"), (b"d", b"x")]);
        let payload = &rec[HEADER_LEN..];
        // Count too large for the bytes present.
        let mut p = payload.to_vec();
        p[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_payload(Bytes::from(p)).is_none());
        // Count one too small leaves bytes over; one too large runs out.
        for count in [1u32, 3] {
            let mut p = payload.to_vec();
            p[0..4].copy_from_slice(&count.to_le_bytes());
            assert!(decode_payload(Bytes::from(p)).is_none());
        }
        // A message length past the end.
        let mut p = payload.to_vec();
        p[7..11].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_payload(Bytes::from(p)).is_none());
        // Every truncation is refused, without panicking.
        for n in 0..payload.len() {
            assert!(decode_payload(Bytes::copy_from_slice(&payload[..n])).is_none());
        }
    }

    #[test]
    fn entries_with_ids_round_trip_beside_entries_without() {
        let id = EntryId {
            producer: ProducerId([7; 16]),
            start: 10,
            end: 25,
        };
        let entries = vec![
            Entry::with_id(&b"c"[..], &b"with\n"[..], Some(id)),
            Entry::new(&b"d"[..], &b"without"[..]),
        ];
        let len = payload_len(&entries).unwrap() as u32;
        let mut out = Vec::new();
        encode(&entries, len, &mut out);
        let payload = Bytes::copy_from_slice(&out[HEADER_LEN..]);
        assert_eq!(decode_payload(payload.clone()).unwrap(), entries);
        for n in 0..payload.len() {
            assert!(decode_payload(payload.slice(..n)).is_none());
        }
    }

    #[test]
    fn category_longer_than_u16_is_refused() {
        let cat = vec![b'c'; 65_536];
        let err = payload_len(&[(&cat[..], &b"m"[..])]).unwrap_err();
        assert!(matches!(err, SpoolError::CategoryTooLong { len: 65_536 }));
        let cat = vec![b'c'; 65_535];
        assert!(payload_len(&[(&cat[..], &b"m"[..])]).is_ok());
    }
}
