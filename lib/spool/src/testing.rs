//! Damaged spools for the tests of the spool's users (feature `testing`).
//!
//! scribed's buffer store and ship's outbox both replay a spool through
//! [`Forwarder`](crate::Forwarder); each runs the same damage scenarios against itself, so that
//! "every undamaged batch arrives, in order, and a drained spool is empty" is checked where it
//! matters (the bookkeeping around the spool), not only in the spool itself. The damage is the
//! kind `tests/corruption.rs` inflicts: a torn tail, a record cut short, a flipped byte.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Spool, SpoolOptions};

/// What is done to the spool after its records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// A crash mid-append: the first half of a record follows the last whole one.
    TornTail,
    /// The last record is cut short: it is lost, and its first half stays as a damaged tail.
    TruncatedLast,
    /// One payload byte of a record in the middle is flipped: that record is lost.
    FlippedMiddle,
    /// A flipped middle record and a torn tail.
    MiddleAndTail,
    /// Several segments; the last record of the oldest is cut short.
    OlderSegmentTail,
    /// One record, cut short: the spool holds nothing but damage.
    OnlyDamage,
}

impl Damage {
    pub const ALL: [Damage; 6] = [
        Damage::TornTail,
        Damage::TruncatedLast,
        Damage::FlippedMiddle,
        Damage::MiddleAndTail,
        Damage::OlderSegmentTail,
        Damage::OnlyDamage,
    ];
}

/// A spool written and damaged by [`write_damaged`].
#[derive(Debug, Clone)]
pub struct DamagedSpool {
    /// The `(category, message)` pairs of every record the damage spared, in order: what a
    /// replay must deliver, exactly.
    pub expected: Vec<(String, Vec<u8>)>,
    /// Records written.
    pub records: usize,
    /// Records the damage destroyed.
    pub lost: usize,
}

/// Records written per scenario (one for [`Damage::OnlyDamage`]).
const RECORDS: usize = 12;
/// Small segments for [`Damage::OlderSegmentTail`], so the records span several.
const SMALL_SEGMENT: u64 = 400;

/// Record `i`: one to three lines, in category `a` or `b` (valid scribed categories), each
/// naming the scenario, record and line so a test can tell exactly what arrived.
fn record(damage: Damage, i: usize) -> Vec<(String, Vec<u8>)> {
    let category = if i.is_multiple_of(3) { "a" } else { "b" };
    (0..1 + i % 3)
        .map(|k| {
            let msg = format!("{damage:?} record {i} line {k}\n");
            (category.to_string(), msg.into_bytes())
        })
        .collect()
}

/// Writes records to a new spool in `dir` (fsynced, nothing committed), closes it and
/// damages it as `damage` says. `dir` must not hold a spool yet.
pub fn write_damaged(dir: &Path, damage: Damage) -> io::Result<DamagedSpool> {
    let n = if damage == Damage::OnlyDamage {
        1
    } else {
        RECORDS
    };
    let opts = SpoolOptions {
        segment_bytes: match damage {
            Damage::OlderSegmentTail => SMALL_SEGMENT,
            _ => SpoolOptions::default().segment_bytes,
        },
        ..SpoolOptions::default()
    };
    let records: Vec<_> = (0..n).map(|i| record(damage, i)).collect();
    let layout = {
        let mut spool = Spool::open(dir, opts).map_err(io::Error::other)?;
        for r in &records {
            spool.append(r).map_err(io::Error::other)?;
        }
        spool.sync().map_err(io::Error::other)?;
        layout(dir, &mut spool)?
    };
    let lost = inflict(damage, &layout)?;
    let expected = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .flat_map(|(_, r)| r.iter().cloned())
        .collect();
    Ok(DamagedSpool {
        expected,
        records: n,
        lost: lost.len(),
    })
}

/// Where a record lives: its segment file, offset and length.
struct Place {
    path: PathBuf,
    offset: u64,
    len: u64,
}

/// Every record's place, found by reading the spool one record at a time (no commit).
fn layout(dir: &Path, spool: &mut Spool) -> io::Result<Vec<Place>> {
    let mut out = Vec::new();
    loop {
        let start = spool.read_position();
        let Some(batch) = spool.next_batch(0).map_err(io::Error::other)? else {
            return Ok(out);
        };
        out.push(Place {
            path: dir.join(crate::segment::file_name(start.segment())),
            offset: start.offset(),
            len: batch.bytes,
        });
    }
}

/// Damages the records at `layout`; returns the indexes of the records destroyed.
fn inflict(damage: Damage, layout: &[Place]) -> io::Result<Vec<usize>> {
    let last = layout.len() - 1;
    let middle = layout.len() / 2;
    match damage {
        Damage::TornTail => {
            torn_tail(&layout[last])?;
            Ok(vec![])
        }
        Damage::TruncatedLast | Damage::OnlyDamage => {
            cut(&layout[last], layout[last].len / 2)?;
            Ok(vec![last])
        }
        Damage::FlippedMiddle => {
            flip(&layout[middle])?;
            Ok(vec![middle])
        }
        Damage::MiddleAndTail => {
            flip(&layout[middle])?;
            torn_tail(&layout[last])?;
            Ok(vec![middle])
        }
        Damage::OlderSegmentTail => {
            let first = &layout[0].path;
            let end_of_first = layout.iter().rposition(|p| &p.path == first).unwrap_or(0);
            if end_of_first == last {
                return Err(io::Error::other("the records did not span two segments"));
            }
            cut(&layout[end_of_first], 5)?;
            Ok(vec![end_of_first])
        }
    }
}

/// Appends the first half of the record at `place` to the end of its segment: what a
/// `kill -9` in the middle of the next append's `write(2)` leaves.
fn torn_tail(place: &Place) -> io::Result<()> {
    let mut data = fs::read(&place.path)?;
    let from = place.offset as usize;
    let half = &data[from..from + place.len as usize / 2].to_vec();
    data.extend_from_slice(half);
    fs::write(&place.path, data)
}

/// Cuts the segment `keep` bytes into the record at `place`.
fn cut(place: &Place, keep: u64) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(&place.path)?
        .set_len(place.offset + keep)
}

/// Flips a byte near the end of the record's payload: its CRC no longer matches.
fn flip(place: &Place) -> io::Result<()> {
    let mut data = fs::read(&place.path)?;
    let at = (place.offset + place.len - 3) as usize;
    data[at] ^= 0x01;
    fs::write(&place.path, data)
}
