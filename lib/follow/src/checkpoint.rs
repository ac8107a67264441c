//! The positions file: per followed file, its identity and the offset the caller committed.
//!
//! A hand-written text format rather than JSON, because paths are bytes (a non-UTF-8 file
//! name must round-trip exactly) and because a checksum line lets a torn or damaged file be
//! told apart from a valid one:
//!
//! ```text
//! scribe-follow positions 2
//! <device>\t<inode>\t<fingerprint len>\t<fingerprint crc, hex>\t<offset>\t<stream, hex>\t<escaped path>
//! ...
//! crc <CRC-32 of every byte above, hex>
//! ```
//!
//! Version 1 (written before stream nonces existed) has no `<stream>` column; it still loads,
//! with [`Checkpoint::stream`] 0 ("unknown"), and the [`Follower`](crate::Follower) gives such
//! files a fresh nonce. Saving always writes version 2.
//!
//! In the path, `\\`, tab, newline, other control bytes and bytes ≥ 0x7F are written as
//! `\\`, `\t`, `\n` and `\xNN`.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use scribe_fs::{AtomicFile, SyncMode};

use crate::error::FollowError;
use crate::identity::Fingerprint;

const HEADER: &str = "scribe-follow positions 2\n";
const HEADER_V1: &str = "scribe-follow positions 1\n";

/// One file's committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The watched path the file was followed under (not where it was renamed to).
    pub path: PathBuf,
    pub device: u64,
    pub inode: u64,
    pub fingerprint: Fingerprint,
    /// Bytes of the file acknowledged by the caller: a restart resumes here.
    pub offset: u64,
    /// The generation's stream nonce (see [`Follower::stream_of`](crate::Follower::stream_of)):
    /// a restart names the file's byte offsets with the same nonce. 0 means unknown (a
    /// version-1 positions file); the follower then assigns a fresh one.
    pub stream: u64,
}

/// A set of [`Checkpoint`]s: taken from a [`Follower`](crate::Follower) with
/// [`checkpoints`](crate::Follower::checkpoints), saved with [`save`](Checkpoints::save),
/// loaded at the next start and handed to
/// [`Follower::with_checkpoints`](crate::Follower::with_checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoints {
    pub entries: Vec<Checkpoint>,
}

impl Checkpoints {
    /// Reads a positions file. A missing file is an empty set (the first run). A leftover
    /// `<file>.tmp` from a crash during [`save`](Checkpoints::save) is ignored: the rename
    /// had not happened, so `<file>` is the last complete save.
    pub fn load(file: &Path) -> Result<Checkpoints, FollowError> {
        let bytes = match fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checkpoints::default()),
            Err(e) => return Err(FollowError::io("read positions", file, e)),
        };
        decode(&bytes).map_err(|(line, reason)| FollowError::CheckpointFormat {
            path: file.to_path_buf(),
            line,
            reason,
        })
    }

    /// Replaces the positions file atomically and durably: write `<file>.tmp`, fsync it,
    /// rename it over `<file>`, fsync the directory. A crash at any step leaves either the
    /// old or the new positions, never a mix.
    pub fn save(&self, file: &Path) -> Result<(), FollowError> {
        self.write(file, true)
    }

    /// Replaces the positions file atomically but without fsync: the new positions survive
    /// the process being killed (they are in the page cache), not a power loss, after which
    /// the last [`save`](Checkpoints::save) (or an older unsynced one) is found. Cheap enough
    /// to call after every acknowledgement, which keeps what a `kill -9` sends twice down to
    /// the batches in flight; pair it with a periodic `save`.
    pub fn save_unsynced(&self, file: &Path) -> Result<(), FollowError> {
        self.write(file, false)
    }

    fn write(&self, file: &Path, durable: bool) -> Result<(), FollowError> {
        let mut f = AtomicFile::create(file, &scribe_fs::tmp_path(file))?;
        f.write_all(&self.encode())?;
        if !durable {
            f.commit(SyncMode::Nothing)?;
            return Ok(());
        }
        f.commit(SyncMode::All)?;
        Ok(scribe_fs::sync_parent(file)?)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = HEADER.as_bytes().to_vec();
        for c in &self.entries {
            let head = format!(
                "{}\t{}\t{}\t{:08x}\t{}\t{:016x}\t",
                c.device, c.inode, c.fingerprint.len, c.fingerprint.crc, c.offset, c.stream
            );
            out.extend_from_slice(head.as_bytes());
            escape(c.path.as_os_str().as_bytes(), &mut out);
            out.push(b'\n');
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(format!("crc {crc:08x}\n").as_bytes());
        out
    }
}

fn decode(bytes: &[u8]) -> Result<Checkpoints, (usize, &'static str)> {
    let body_end = bytes
        .strip_suffix(b"\n")
        .and_then(|b| memchr::memrchr(b'\n', b))
        .map(|i| i + 1)
        .ok_or((1, "truncated"))?;
    let (body, trailer) = bytes.split_at(body_end);
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let trailer_line = lines.len();
    let crc = std::str::from_utf8(trailer)
        .ok()
        .and_then(|t| t.strip_prefix("crc "))
        .and_then(|t| u32::from_str_radix(t.trim_end(), 16).ok())
        .ok_or((trailer_line, "missing checksum line"))?;
    if crc32fast::hash(body) != crc {
        return Err((trailer_line, "checksum mismatch (damaged or torn file)"));
    }
    let with_stream = if body.starts_with(HEADER.as_bytes()) {
        true
    } else if body.starts_with(HEADER_V1.as_bytes()) {
        false
    } else {
        return Err((1, "not a scribe-follow positions file (version 1 or 2)"));
    };
    let mut entries = Vec::new();
    // `lines` ends with the empty string after the last '\n'; skip it and the header.
    for (i, line) in lines.iter().enumerate().take(lines.len() - 1).skip(1) {
        entries.push(parse_entry(line, with_stream).ok_or((i + 1, "malformed entry"))?);
    }
    Ok(Checkpoints { entries })
}

/// One entry line; `with_stream`: version 2, which has the stream column.
fn parse_entry(line: &[u8], with_stream: bool) -> Option<Checkpoint> {
    let mut fields = line.splitn(if with_stream { 7 } else { 6 }, |&b| b == b'\t');
    let mut num = |radix| {
        let f = std::str::from_utf8(fields.next()?).ok()?;
        u64::from_str_radix(f, radix).ok()
    };
    let device = num(10)?;
    let inode = num(10)?;
    let len = u32::try_from(num(10)?).ok()?;
    let crc = u32::try_from(num(16)?).ok()?;
    let offset = num(10)?;
    let stream = if with_stream { num(16)? } else { 0 };
    let path = unescape(fields.next()?)?;
    Some(Checkpoint {
        path: PathBuf::from(OsStr::from_bytes(&path)),
        device,
        inode,
        fingerprint: Fingerprint { len, crc },
        offset,
        stream,
    })
}

fn escape(path: &[u8], out: &mut Vec<u8>) {
    for &b in path {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
            continue;
        }
        match s.get(i + 1)? {
            b'\\' => out.push(b'\\'),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'x' => {
                let hex = std::str::from_utf8(s.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
        i += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoints {
        Checkpoints {
            entries: vec![
                Checkpoint {
                    path: PathBuf::from("/var/log/a.log"),
                    device: 2049,
                    inode: 1 << 40,
                    fingerprint: Fingerprint {
                        len: 1024,
                        crc: 0xdead_beef,
                    },
                    offset: 12345,
                    stream: 0x0123_4567_89ab_cdef,
                },
                Checkpoint {
                    // Non-UTF-8, tab, newline and backslash all round-trip.
                    path: PathBuf::from(OsStr::from_bytes(b"/x/\xff\t\n\\b")),
                    device: 1,
                    inode: 2,
                    fingerprint: Fingerprint::default(),
                    offset: 0,
                    stream: u64::MAX,
                },
            ],
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("positions");
        assert_eq!(Checkpoints::load(&file).unwrap(), Checkpoints::default());
        sample().save(&file).unwrap();
        assert_eq!(Checkpoints::load(&file).unwrap(), sample());
        assert!(!d.path().join("positions.tmp").exists());
        Checkpoints::default().save(&file).unwrap();
        assert_eq!(Checkpoints::load(&file).unwrap(), Checkpoints::default());
    }

    #[test]
    fn damage_is_an_error_not_a_guess() {
        let good = sample().encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn version_1_loads_with_unknown_streams() {
        let mut v1 = HEADER_V1.as_bytes().to_vec();
        v1.extend_from_slice(b"2049\t7\t4\t0000abcd\t99\t/var/log/a\\x2elog\n");
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(format!("crc {crc:08x}\n").as_bytes());
        let loaded = decode(&v1).unwrap();
        assert_eq!(
            loaded.entries,
            [Checkpoint {
                path: PathBuf::from("/var/log/a.log"),
                device: 2049,
                inode: 7,
                fingerprint: Fingerprint {
                    len: 4,
                    crc: 0xabcd
                },
                offset: 99,
                stream: 0,
            }]
        );
        // Saving writes version 2, which keeps the stream.
        assert!(loaded.encode().starts_with(HEADER.as_bytes()));
        assert_eq!(decode(&loaded.encode()).unwrap(), loaded);
    }

    #[test]
    fn version_2_entry_without_its_stream_column_is_malformed() {
        let mut v2 = HEADER.as_bytes().to_vec();
        v2.extend_from_slice(b"2049\t7\t4\t0000abcd\t99\t/var/log/a\n");
        let crc = crc32fast::hash(&v2);
        v2.extend_from_slice(format!("crc {crc:08x}\n").as_bytes());
        assert_eq!(decode(&v2), Err((2, "malformed entry")));
    }
}
