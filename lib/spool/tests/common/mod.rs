//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use scribe_spool::{Entry, Spool, SpoolOptions};

pub type Batch = Vec<(Vec<u8>, Vec<u8>)>;

/// Seeded randomness (`fastrand`), so a failing seed can be replayed, with the few shapes the
/// tests draw.
pub struct Rng(fastrand::Rng);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }
    pub fn next(&mut self) -> u64 {
        self.0.u64(..)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.0.u8(..)).collect()
    }
}

pub fn opts(segment_bytes: u64, max_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        segment_bytes,
        max_bytes,
        ..SpoolOptions::default()
    }
}

/// Batch `i`: binary categories and messages (NUL, 0xFF, the record magic's first byte), with
/// `i` in the first message so batches are told apart.
pub fn batch(i: u64) -> Batch {
    let n = 1 + (i % 4) as usize;
    (0..n)
        .map(|k| {
            let cat = format!("cat\0{}", i % 3).into_bytes();
            let mut msg = format!("batch {i} entry {k} ").into_bytes();
            msg.extend_from_slice(&[0, 0xFF, 0xF7, b'\n']);
            msg.extend(std::iter::repeat_n(b'x', (i as usize * 7) % 50));
            (cat, msg)
        })
        .collect()
}

pub fn entries(b: &Batch) -> Vec<Entry> {
    b.iter()
        .map(|(c, m)| Entry::new(c.clone(), m.clone()))
        .collect()
}

/// Reads every remaining record, one per call (`max_bytes` 0 returns exactly one record).
pub fn read_records(spool: &mut Spool) -> Vec<Vec<Entry>> {
    let mut out = Vec::new();
    while let Some(b) = spool.next_batch(0).unwrap() {
        assert_eq!(b.records, 1);
        out.push(b.entries);
    }
    out
}

/// Where each record lives, as `(segment file, offset, length)`, found by reading the spool
/// (without committing) from its committed position.
pub fn record_layout(dir: &Path, o: SpoolOptions) -> Vec<(PathBuf, u64, u64)> {
    let mut spool = Spool::open(dir, o).unwrap();
    let mut out = Vec::new();
    loop {
        let start = spool.read_position();
        let Some(b) = spool.next_batch(0).unwrap() else {
            break;
        };
        let path = dir.join(format!("{:020}.seg", start.segment()));
        out.push((path, start.offset(), b.bytes));
    }
    out
}

pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

pub fn disk_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// XORs `mask` into the byte at `off` of `path`.
pub fn flip(path: &Path, off: u64, mask: u8) {
    let mut data = fs::read(path).unwrap();
    data[off as usize] ^= mask;
    fs::write(path, data).unwrap();
}

pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// A tmpfs of a given size mounted for a test (root only), unmounted when dropped (lazily, so
/// an open file cannot keep it).
pub struct Tmpfs {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes`; `None`, after printing why, when that is not permitted here.
    pub fn mount(test: &str, bytes: u64) -> Option<Tmpfs> {
        Tmpfs::mount_with(test, &format!("size={bytes}"))
    }

    /// Mounts a tmpfs with mount `options` (`size=1m,nr_inodes=16`).
    pub fn mount_with(test: &str, options: &str) -> Option<Tmpfs> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir, _tmp: tmp }),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                println!("{test} SKIPPED: cannot mount a tmpfs ({}): {why}", o.status);
                None
            }
            Err(e) => {
                println!("{test} SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// Writes zeros to `path` until the disk is full or `max` bytes are written; returns how many.
pub fn fill_up(path: &Path, max: u64) -> u64 {
    use std::io::Write;
    let mut f = fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut written = 0;
    while written < max {
        match f.write(&chunk[..chunk.len().min((max - written) as usize)]) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    written
}
