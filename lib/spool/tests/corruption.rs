//! Torn tails and damaged bytes: skipped, counted, and never in the way of later records.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::*;
use scribe_spool::{Entry, Spool, SpoolOptions};

/// A spool in a fresh directory holding `batch(0..n)`.
fn fixture(n: u64, segment_bytes: u64) -> (tempfile::TempDir, SpoolOptions) {
    let d = tempfile::tempdir().unwrap();
    let o = opts(segment_bytes, 1 << 30);
    let mut s = Spool::open(d.path(), o.clone()).unwrap();
    for i in 0..n {
        s.append(&batch(i)).unwrap();
    }
    s.sync().unwrap();
    (d, o)
}

fn want(range: impl Iterator<Item = u64>) -> Vec<Vec<Entry>> {
    range.map(|i| entries(&batch(i))).collect()
}

/// Reads everything after a reopen, checks that exactly record `skip` is missing and counted.
fn assert_only_record_lost(dir: &Path, o: &SpoolOptions, n: u64, skip: u64, skip_len: u64) {
    let mut s = Spool::open(dir, o.clone()).unwrap();
    let got = read_records(&mut s);
    assert_eq!(got, want((0..n).filter(|&i| i != skip)));
    let st = s.stats();
    assert_eq!(st.corrupt_records, 1);
    assert_eq!(st.corrupt_bytes, skip_len);
    // Appends after the reopen go to a new segment and are delivered too.
    s.append(&batch(1000)).unwrap();
    assert_eq!(read_records(&mut s), want(1000..1001));
}

/// The bytes of the record `b` as the spool writes it.
fn record_bytes(b: &Batch) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), SpoolOptions::default()).unwrap();
    s.append(b).unwrap();
    fs::read(&segment_files(d.path())[0]).unwrap()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn torn_tail_of_every_length_is_skipped_and_appends_continue() {
    let torn = record_bytes(&batch(7));
    for k in 0..torn.len() {
        let (d, o) = fixture(5, 1 << 20);
        let last = segment_files(d.path()).pop().unwrap();
        // What a kill -9 in the middle of `write(2)` leaves behind.
        append_raw(&last, &torn[..k]);
        let torn_len = fs::metadata(&last).unwrap().len();
        {
            let mut s = Spool::open(d.path(), o.clone()).unwrap();
            s.append(&batch(100)).unwrap();
            s.append(&batch(101)).unwrap();
            // The new records went to a new segment, not after the garbage.
            assert_eq!(fs::metadata(&last).unwrap().len(), torn_len);
            assert_eq!(segment_files(d.path()).len(), 2);
            let got = read_records(&mut s);
            let mut w = want(0..5);
            w.extend(want(100..102));
            assert_eq!(got, w, "torn tail of {k} bytes");
            let st = s.stats();
            assert_eq!(st.corrupt_records, u64::from(k > 0), "k={k}");
            assert_eq!(st.corrupt_bytes, k as u64);
        }
        // Again after another restart: the new records were not written after the garbage.
        let mut s = Spool::open(d.path(), o).unwrap();
        assert_eq!(read_records(&mut s).len(), 7, "k={k}");
    }
}

#[test]
fn truncated_last_segment_mid_record() {
    let (d, o) = fixture(10, 1 << 20);
    let layout = record_layout(d.path(), o.clone());
    let (path, off, len) = layout[9].clone();
    truncate(&path, off + len / 2);
    assert_only_record_lost(d.path(), &o, 10, 9, len / 2);
}

#[test]
fn flipped_payload_byte_loses_only_that_record() {
    let (d, o) = fixture(10, 1 << 20);
    let (path, off, len) = record_layout(d.path(), o.clone())[4].clone();
    flip(&path, off + len - 3, 0x01);
    assert_only_record_lost(d.path(), &o, 10, 4, len);
}

#[test]
fn flipped_header_byte_at_every_position_loses_only_that_record() {
    for i in 0..16 {
        let (d, o) = fixture(6, 1 << 20);
        let (path, off, len) = record_layout(d.path(), o.clone())[2].clone();
        flip(&path, off + i, 0x80);
        assert_only_record_lost(d.path(), &o, 6, 2, len);
    }
}

fn forged_header(len: u32, payload_crc: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&[0xF7, b'S', b'P', b'L']);
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&h[0..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn overwrite(path: &Path, off: u64, bytes: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
    fs::write(path, data).unwrap();
}

#[test]
fn damaged_length_field_loses_only_that_record() {
    // Flipped bits in the length: caught by the header CRC before the length is used.
    for bit in [0x01u8, 0x80] {
        for byte in 4..8 {
            let (d, o) = fixture(6, 1 << 20);
            let (path, off, len) = record_layout(d.path(), o.clone())[3].clone();
            flip(&path, off + byte, bit);
            assert_only_record_lost(d.path(), &o, 6, 3, len);
        }
    }
    // A length that passes the header CRC but is wrong: too big for the limit, past the end
    // of the segment, shorter or longer than the real payload. None may swallow the records
    // after it, and the over-limit one must not be allocated.
    for forged in [u32::MAX, (64 << 20) - 1, 10_000, 8, 30] {
        let (d, o) = fixture(6, 1 << 20);
        let layout = record_layout(d.path(), o.clone());
        let (path, off, len) = layout[3].clone();
        let crc_of_real = fs::read(&path).unwrap()[off as usize + 8..off as usize + 12].to_vec();
        let crc = u32::from_le_bytes(crc_of_real.try_into().unwrap());
        overwrite(&path, off, &forged_header(forged, crc));
        assert_only_record_lost(d.path(), &o, 6, 3, len);
    }
}

#[test]
fn damage_in_an_older_segment_keeps_later_segments() {
    let (d, o) = fixture(40, 400);
    let layout = record_layout(d.path(), o.clone());
    let files = segment_files(d.path());
    assert!(files.len() >= 4);
    // Torn tail in the second segment (not the newest): the records after it, in later
    // segments, are still delivered.
    let in_second: Vec<usize> = (0..layout.len())
        .filter(|&i| layout[i].0 == files[1])
        .collect();
    let last = *in_second.last().unwrap();
    let (path, off, len) = layout[last].clone();
    truncate(&path, off + 5);
    assert_only_record_lost(d.path(), &o, 40, last as u64, 5);
    let _ = len;
}

#[test]
fn garbage_segment_and_empty_segment_are_skipped() {
    let (d, o) = fixture(30, 500);
    let files = segment_files(d.path());
    let mut rng = Rng::new(7);
    // A segment of random garbage sprinkled with magics, and one left empty by a crash.
    let mut garbage = rng.bytes(3000);
    for k in (0..2900).step_by(97) {
        garbage[k..k + 4].copy_from_slice(&[0xF7, b'S', b'P', b'L']);
    }
    let victim = &files[2];
    let layout = record_layout(d.path(), o.clone());
    let lost: Vec<u64> = (0..layout.len() as u64)
        .filter(|&i| &layout[i as usize].0 == victim)
        .collect();
    fs::write(victim, &garbage).unwrap();
    fs::write(&files[3], b"").unwrap();
    let lost_empty: Vec<u64> = (0..layout.len() as u64)
        .filter(|&i| layout[i as usize].0 == files[3])
        .collect();
    let mut s = Spool::open(d.path(), o).unwrap();
    let got = read_records(&mut s);
    assert_eq!(
        got,
        want((0..30).filter(|i| !lost.contains(i) && !lost_empty.contains(i)))
    );
    assert_eq!(s.stats().corrupt_bytes, 3000);
    assert_eq!(s.stats().corrupt_records, 1);
}

#[test]
fn damage_in_the_live_head_does_not_stall_the_reader() {
    let d = tempfile::tempdir().unwrap();
    let mut s = Spool::open(d.path(), opts(1 << 20, 1 << 30)).unwrap();
    for i in 0..5 {
        s.append(&batch(i)).unwrap();
    }
    s.sync().unwrap();
    // Damage the head under the running spool (a disk error, a stray writer). The spool holds
    // its directory lock, so find record 1 from the bytes: each record is a 16-byte header
    // (magic, payload length LE, payload CRC, header CRC) followed by its payload.
    let path = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let data = std::fs::read(&path).unwrap();
    let off = 16 + u64::from(u32::from_le_bytes(data[4..8].try_into().unwrap()));
    flip(&path, off + 20, 0xFF);
    let got = read_records(&mut s);
    assert_eq!(got, want([0, 2, 3, 4].into_iter()));
    s.append(&batch(5)).unwrap();
    assert_eq!(read_records(&mut s), want(5..6));
    assert_eq!(s.stats().corrupt_records, 1);
}

#[test]
fn damage_is_counted_once_across_rewinds() {
    let (d, o) = fixture(8, 1 << 20);
    let (path, off, len) = record_layout(d.path(), o.clone())[2].clone();
    flip(&path, off + len - 1, 0x10);
    let mut s = Spool::open(d.path(), o).unwrap();
    for _ in 0..3 {
        assert_eq!(read_records(&mut s).len(), 7);
        s.rewind();
    }
    assert_eq!(s.stats().corrupt_records, 1);
    assert_eq!(s.stats().records_replayed, 21);
    // Committing the read position moves the durable position past the damage too.
    while s.next_batch(1 << 20).unwrap().is_some() {}
    s.commit(s.read_position()).unwrap();
    assert!(s.is_empty());
}

/// What the random test did to the files, to know which records must survive.
struct Damage {
    /// `(segment file, from, to)` byte ranges that were changed.
    ranges: Vec<(std::path::PathBuf, u64, u64)>,
}

impl Damage {
    fn touches(&self, path: &Path, off: u64, len: u64) -> bool {
        self.ranges
            .iter()
            .any(|(p, from, to)| p == path && *from < off + len && off < *to)
    }
}

fn corrupt_randomly(rng: &mut Rng, dir: &Path) -> Damage {
    let mut damage = Damage { ranges: Vec::new() };
    let files = segment_files(dir);
    for _ in 0..1 + rng.below(6) {
        let path = &files[rng.below(files.len() as u64) as usize];
        let mut data = fs::read(path).unwrap();
        let len = data.len() as u64;
        match rng.below(6) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at as usize] ^= 1 + rng.below(255) as u8;
                damage.ranges.push((path.clone(), at, at + 1));
            }
            1 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(200)).min(len - at);
                let fill = rng.bytes(n as usize);
                data[at as usize..(at + n) as usize].copy_from_slice(&fill);
                damage.ranges.push((path.clone(), at, at + n));
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let n = (1 + rng.below(500)).min(len - at);
                data[at as usize..(at + n) as usize].fill(0);
                damage.ranges.push((path.clone(), at, at + n));
            }
            3 => {
                let at = rng.below(len + 1);
                data.truncate(at as usize);
                damage.ranges.push((path.clone(), at, u64::MAX));
            }
            4 if len >= 16 => {
                // A header whose own CRC is fine but whose length and payload CRC are lies.
                let at = rng.below(len - 15);
                let forged = forged_header(rng.next() as u32 % (2 << 20), rng.next() as u32);
                data[at as usize..at as usize + 16].copy_from_slice(&forged);
                damage.ranges.push((path.clone(), at, at + 16));
            }
            _ => {
                // Garbage appended, as after a crash mid-write.
                let n = rng.below(100) as usize;
                let extra = rng.bytes(n);
                data.extend_from_slice(&extra);
            }
        }
        fs::write(path, data).unwrap();
    }
    damage
}

/// A tagged entry: the batch and entry number lead the message, so what is delivered can be
/// checked against what was written.
fn random_batch(rng: &mut Rng, i: u64) -> Batch {
    (0..1 + rng.below(4))
        .map(|k| {
            let n = rng.below(12) as usize;
            let cat = rng.bytes(n);
            let mut msg = format!("{i:06}.{k}:").into_bytes();
            let n = rng.below(120) as usize;
            let noise = rng.bytes(n);
            msg.extend_from_slice(&noise);
            if rng.chance(20) {
                msg.extend_from_slice(&[0xF7, b'S', b'P', b'L']);
            }
            (cat, msg)
        })
        .collect()
}

#[test]
fn random_corruption_never_panics_and_keeps_undamaged_records() {
    let mut damaged_records = 0;
    for seed in 0..150u64 {
        let mut rng = Rng::new(seed);
        let d = tempfile::tempdir().unwrap();
        let o = SpoolOptions {
            max_record_bytes: 1 << 20,
            ..opts(200 + rng.below(3000), 1 << 30)
        };
        let mut written = Vec::new();
        {
            let mut s = Spool::open(d.path(), o.clone()).unwrap();
            for i in 0..20 + rng.below(60) {
                let b = random_batch(&mut rng, i);
                s.append(&b).unwrap();
                written.push(entries(&b));
                if rng.chance(5) {
                    drop(s);
                    s = Spool::open(d.path(), o.clone()).unwrap();
                }
            }
        }
        let layout = record_layout(d.path(), o.clone());
        assert_eq!(layout.len(), written.len());
        let damage = corrupt_randomly(&mut rng, d.path());

        // Drain with random batch sizes, failed sends (rewind), commits and restarts.
        let mut delivered: Vec<Entry> = Vec::new();
        let mut s = Spool::open(d.path(), o.clone()).unwrap();
        let mut extra = Vec::new();
        for round in 0..200 {
            if round == 5 {
                // Appends after the damage are delivered.
                for i in 1000..1003 {
                    let b = random_batch(&mut rng, i);
                    s.append(&b).unwrap();
                    extra.extend(entries(&b));
                }
            }
            match s.next_batch(rng.below(2000) as usize).unwrap() {
                Some(b) if rng.chance(20) => {
                    let _ = b;
                    s.rewind();
                }
                Some(b) => {
                    delivered.extend(b.entries);
                    s.commit(b.position).unwrap();
                }
                None if round > 5 => break,
                None => {}
            }
            if rng.chance(10) {
                drop(s);
                s = Spool::open(d.path(), o.clone()).unwrap();
            }
        }
        assert!(s.next_batch(usize::MAX).unwrap().is_none(), "seed {seed}");

        // Delivered entries are written ones, in order, each at most once.
        let all: Vec<Entry> = written
            .iter()
            .flatten()
            .cloned()
            .chain(extra.clone())
            .collect();
        let mut at = 0;
        for e in &delivered {
            let found = all[at..].iter().position(|w| w == e);
            let found =
                found.unwrap_or_else(|| panic!("seed {seed}: unexpected or repeated {e:?}"));
            at += found + 1;
        }
        // Every record the damage did not touch is delivered, and so is everything after it.
        for (rec, (path, off, len)) in written.iter().zip(&layout) {
            if damage.touches(path, *off, *len) {
                damaged_records += 1;
            } else {
                for e in rec {
                    assert!(delivered.contains(e), "seed {seed}: lost undamaged {e:?}");
                }
            }
        }
        for e in &extra {
            assert!(
                delivered.contains(e),
                "seed {seed}: lost {e:?} appended after damage"
            );
        }
    }
    // The corruption did hit records (the test is not vacuous).
    assert!(damaged_records > 150, "{damaged_records} damaged records");
}
