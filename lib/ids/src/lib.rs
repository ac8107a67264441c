//! Entry identities for exactly-once delivery: who produced a line and where it sits in that
//! producer's stream.
//!
//! A *producer* is one ordered stream of entries that can be replayed deterministically after
//! a crash: one generation of one followed file (ship derives its id from its own persistent
//! instance id and a nonce kept with the file's checkpoint), or one run of `ship` reading
//! standard input. An entry covers the half-open range `[start, end)` of its producer's
//! sequence space; for a followed file these are byte offsets, so the same line gets the same
//! range however a restarted shipper cuts its batches. A receiver that has committed a range
//! recognises any entry inside it as already written.
//!
//! Its own crate (no dependency on the wire protocol) so that the archive and the spool, which
//! store ids, and `logq`, which reads archives, do not link the protocol.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;

/// A map keyed by producer id, looked up once or more per entry on hot paths. Hashed with
/// foldhash (a fast hash with a per-process random seed) rather than SipHash: the ids come
/// from clients, so the seed still keeps them from choosing colliding keys, and SipHash cost
/// about a third of the archive's per-line overhead for exactly-once.
pub type ProducerMap<V> = HashMap<ProducerId, V, foldhash::fast::RandomState>;

/// 16 opaque bytes naming a producer stream. Random ids (ship's are derived with a keyed
/// hash from random instance ids and nonces) make collisions between producers negligible.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ProducerId(pub [u8; 16]);

impl ProducerId {
    /// A fresh random id.
    pub fn random() -> ProducerId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        b[8..].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        ProducerId(b)
    }

    /// Derives a sub-stream id (say, one followed file generation) from this id and a
    /// 64-bit nonce: deterministic, so a restarted producer names its streams the same way.
    pub fn derive(&self, nonce: u64) -> ProducerId {
        // Two rounds of a 64-bit mixer (splitmix64's finaliser) over each half; not
        // cryptographic, only well spread: ids are not secrets and collisions need two
        // random 64-bit inputs to meet.
        let lo = u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(self.0[8..].try_into().expect("8 bytes"));
        let a = mix(lo ^ mix(nonce ^ 0x9E37_79B9_7F4A_7C15));
        let b = mix(hi ^ mix(nonce.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03) ^ a);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..].copy_from_slice(&b.to_le_bytes());
        ProducerId(out)
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Self::to_hex`]'s output.
    pub fn from_hex(s: &str) -> Option<ProducerId> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ProducerId(out))
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Debug for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProducerId({})", self.to_hex())
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Where one entry sits: `[start, end)` of `producer`'s sequence space (`start < end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub producer: ProducerId,
    pub start: u64,
    pub end: u64,
}

/// Whether `bytes` is a run of whole lines as `id` describes one: it ends in `\n`, and `id`,
/// if any, covers exactly its bytes. What a run must be to be sent or written in one piece.
pub fn is_whole_run(bytes: &[u8], id: Option<EntryId>) -> bool {
    bytes.last() == Some(&b'\n')
        && id.is_none_or(|id| id.end.checked_sub(id.start) == Some(bytes.len() as u64))
}

/// The lines of a run of lines, each up to and including its `\n` (the last may lack one),
/// with its own part of the run's `id`: consecutive ranges from `id.start`, the last ending at
/// `id.end`, so the parts cover the whole range. How a run's lines are taken one by one, by
/// the protocol's builder and the archive's writer alike.
pub fn run_lines(
    bytes: &[u8],
    id: Option<EntryId>,
) -> impl Iterator<Item = (&[u8], Option<EntryId>)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1);
        let line_id = id.map(|id| EntryId {
            producer: id.producer,
            start: id.start + at as u64,
            end: if end == bytes.len() {
                id.end
            } else {
                id.start + end as u64
            },
        });
        let line = &bytes[at..end];
        at = end;
        Some((line, line_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_lines_cover_its_range_in_order() {
        let id = EntryId {
            producer: ProducerId([1; 16]),
            start: 10,
            end: 30,
        };
        let parts: Vec<_> = run_lines(b"a\nbb\ncc", Some(id))
            .map(|(l, i)| (l, i.map(|i| (i.start, i.end))))
            .collect();
        let want: [(&[u8], _); 3] = [
            (b"a\n", Some((10, 12))),
            (b"bb\n", Some((12, 15))),
            (b"cc", Some((15, 30))),
        ];
        assert_eq!(parts, want);
        assert_eq!(run_lines(b"", Some(id)).count(), 0);
        assert_eq!(
            run_lines(b"x\n", None).collect::<Vec<_>>(),
            [(&b"x\n"[..], None)]
        );
    }

    #[test]
    fn hex_round_trips_and_derive_is_deterministic() {
        let p = ProducerId::random();
        assert_eq!(ProducerId::from_hex(&p.to_hex()), Some(p));
        assert_eq!(p.derive(7), p.derive(7));
        assert_ne!(p.derive(7), p.derive(8));
        assert_ne!(p.derive(7), p);
        assert_eq!(ProducerId::from_hex("zz"), None);
        assert_eq!(ProducerId::from_hex(&"é".repeat(16)), None);
    }
}
