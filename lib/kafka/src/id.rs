//! The record header holding a message's entry id.

use scribe_ids::{EntryId, ProducerId};

/// The record header holding a message's entry id: 16 bytes of producer id, then the range's
/// start and end as big-endian u64s. The archiver hands it to the file store's commit log, so
/// a record produced twice (a retry after a lost delivery report) is written once.
pub const ID_HEADER: &str = "scribe.id";
const ID_LEN: usize = 32;

pub fn encode_id(id: &EntryId) -> [u8; ID_LEN] {
    let mut out = [0u8; ID_LEN];
    out[..16].copy_from_slice(&id.producer.0);
    out[16..24].copy_from_slice(&id.start.to_be_bytes());
    out[24..].copy_from_slice(&id.end.to_be_bytes());
    out
}

/// `None` unless `b` is a well-formed id (32 bytes, `start < end`).
pub fn decode_id(b: &[u8]) -> Option<EntryId> {
    let b: &[u8; ID_LEN] = b.try_into().ok()?;
    let mut producer = [0u8; 16];
    producer.copy_from_slice(&b[..16]);
    let start = u64::from_be_bytes(b[16..24].try_into().ok()?);
    let end = u64::from_be_bytes(b[24..].try_into().ok()?);
    (start < end).then_some(EntryId {
        producer: ProducerId(producer),
        start,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_malformed_headers_are_refused() {
        let id = EntryId {
            producer: ProducerId::random(),
            start: 5,
            end: 1 << 40,
        };
        assert_eq!(decode_id(&encode_id(&id)), Some(id));
        assert_eq!(decode_id(&encode_id(&id)[..31]), None);
        let empty = EntryId { end: 5, ..id };
        assert_eq!(decode_id(&encode_id(&empty)), None);
    }
}
