//! What makes a file "the same file": its (device, inode) plus a checksum of its first bytes.
//!
//! Inode numbers alone are not enough: ext4 and tmpfs hand a deleted file's inode to the next
//! file created, so delete + recreate (or a restart after rotation) can present a different
//! file under a remembered inode. The fingerprint catches that whenever the contents differ.
//! Unlike Vector and Filebeat, which refuse to read a file until it holds a full fingerprint's
//! worth of bytes, a [`Fingerprint`] covers the first `min(size, N)` bytes and grows with the
//! file until it covers N, so small files are followed immediately.
//!
//! A [`FileId`] names one such file (one generation at a watched path) within a follower.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A CRC-32 of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

impl Fingerprint {
    /// Fingerprints the first `min(size, max)` bytes of `file`.
    pub(crate) fn compute(file: &File, size: u64, max: u32) -> io::Result<Fingerprint> {
        let len = size.min(u64::from(max)) as u32;
        Ok(Fingerprint {
            len,
            crc: crc_prefix(file, len)?,
        })
    }

    /// Whether `file` (now `size` bytes long) still starts with the fingerprinted bytes.
    pub(crate) fn matches(&self, file: &File, size: u64) -> io::Result<bool> {
        if size < u64::from(self.len) {
            return Ok(false);
        }
        Ok(crc_prefix(file, self.len)? == self.crc)
    }

    /// Checks the fingerprint and, when the file has grown past it, extends it to `max`
    /// bytes. `None` means the file no longer starts with the fingerprinted bytes.
    pub(crate) fn verify_and_extend(
        &self,
        file: &File,
        size: u64,
        max: u32,
    ) -> io::Result<Option<Fingerprint>> {
        if !self.matches(file, size)? {
            return Ok(None);
        }
        if self.len < max && size > u64::from(self.len) {
            return Fingerprint::compute(file, size, max).map(Some);
        }
        Ok(Some(*self))
    }
}

fn crc_prefix(file: &File, len: u32) -> io::Result<u32> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(crc32fast::hash(&buf))
}

/// (device, inode) of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub(crate) fn of(meta: &fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Looks for the file `key` among the entries of `dirs` and opens it: how a file renamed away
/// from its watched path (logrotate's `access.log` → `access.log.1`) is found again without
/// having kept it open. Directory entries carry the inode (`d_ino`), so the first pass costs
/// no `stat` per entry; on file systems where `d_ino` differs from `st_ino` (some overlayfs
/// setups) a second pass stats every entry. The result is confirmed by `fstat` on the opened
/// descriptor, so a race with another rename cannot hand back the wrong file.
pub(crate) fn find_by_key(dirs: &[&Path], key: FileKey) -> Option<(PathBuf, File, fs::Metadata)> {
    for slow in [false, true] {
        for dir in dirs {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let candidate = if slow {
                    fs::metadata(entry.path()).is_ok_and(|m| FileKey::of(&m) == key)
                } else {
                    entry.ino() == key.ino
                };
                if !candidate {
                    continue;
                }
                let path = entry.path();
                if let Ok(file) = File::open(&path) {
                    if let Ok(meta) = file.metadata() {
                        if meta.is_file() && FileKey::of(&meta) == key {
                            return Some((path, file, meta));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Names one generation of one followed file in [`Event`](crate::Event)s and in
/// [`Follower::commit`](crate::Follower::commit). A new file at a watched path, and a file
/// that was truncated, get a new id, so a late commit for the old contents can never move the
/// new contents' offset.
///
/// A `FileId` lives only as long as the [`Follower`](crate::Follower); what names a
/// generation across restarts is its stream nonce
/// ([`Follower::stream_of`](crate::Follower::stream_of)), kept in the
/// [`Checkpoint`](crate::Checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub(crate) u64);

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_grows_with_the_file_and_detects_rewrites() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let f = File::open(&p).unwrap();
        let fp = Fingerprint::compute(&f, 3, 8).unwrap();
        assert_eq!(fp.len, 3);
        fs::write(&p, b"abcdefghijk").unwrap();
        let f = File::open(&p).unwrap();
        let grown = fp.verify_and_extend(&f, 11, 8).unwrap().unwrap();
        assert_eq!(grown.len, 8);
        fs::write(&p, b"xbcdefghijk").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(grown.verify_and_extend(&f, 11, 8).unwrap(), None);
        // Shorter than the fingerprint: not the same file.
        assert!(!fp.matches(&f, 2).unwrap());
    }

    #[test]
    fn finds_a_renamed_file_by_inode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        fs::write(&p, b"x\n").unwrap();
        let key = FileKey::of(&fs::metadata(&p).unwrap());
        fs::rename(&p, d.path().join("a.log.1")).unwrap();
        fs::write(&p, b"new\n").unwrap();
        let (found, _, _) = find_by_key(&[d.path()], key).unwrap();
        assert_eq!(found, d.path().join("a.log.1"));
        fs::remove_file(&found).unwrap();
        assert!(find_by_key(&[d.path()], key).is_none());
    }
}
