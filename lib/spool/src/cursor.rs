//! The cursor file that makes the committed read position durable.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::SpoolError;
use crate::position::Position;

const CURSOR: &str = "cursor";
/// What `scribe_fs::write_atomically` names its temporary file (`cursor` + `.tmp`).
const CURSOR_TMP: &str = "cursor.tmp";
const MAGIC: [u8; 8] = *b"SPLCUR\0\x01";
const LEN: usize = 28;

fn encode(pos: Position) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..16].copy_from_slice(&pos.segment.to_le_bytes());
    b[16..24].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<Position> {
    if b.len() != LEN || b[0..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().ok()?);
    if crc32fast::hash(&b[0..24]) != crc {
        return None;
    }
    Some(Position {
        segment: u64::from_le_bytes(b[8..16].try_into().ok()?),
        offset: u64::from_le_bytes(b[16..24].try_into().ok()?),
    })
}

/// The committed position, or `None` when there is no cursor yet. A damaged cursor is also
/// `None` (with a warning): replaying everything again duplicates records, guessing a position
/// could lose them.
pub(crate) fn load(dir: &Path) -> Result<Option<Position>, SpoolError> {
    let path = dir.join(CURSOR);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SpoolError::io("read cursor", &path, e)),
    };
    let pos = decode(&bytes);
    if pos.is_none() {
        tracing::warn!(
            path = %path.display(),
            len = bytes.len(),
            "spool cursor is damaged; replaying the spool from its oldest record"
        );
    }
    Ok(pos)
}

/// Replaces the cursor atomically and durably: write `cursor.tmp`, fsync it, rename it over
/// `cursor`, fsync the directory. A crash at any step leaves either the old or the new cursor.
pub(crate) fn store(dir: &Path, pos: Position) -> Result<(), SpoolError> {
    Ok(scribe_fs::write_atomically(
        &dir.join(CURSOR),
        &encode(pos),
    )?)
}

/// Removes a `cursor.tmp` left by a crash mid-`store` (the real cursor is intact).
pub(crate) fn remove_temp(dir: &Path) -> Result<(), SpoolError> {
    scribe_fs::remove_if_exists(&dir.join(CURSOR_TMP))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_round_trips() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
        let pos = Position {
            segment: 7,
            offset: 1 << 40,
        };
        store(d.path(), pos).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(pos));
        assert!(!d.path().join(CURSOR_TMP).exists());
    }

    #[test]
    fn damaged_cursor_loads_as_none() {
        let d = tempfile::tempdir().unwrap();
        store(d.path(), Position::default()).unwrap();
        let good = fs::read(d.path().join(CURSOR)).unwrap();
        for i in 0..LEN {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(d.path().join(CURSOR), &bad).unwrap();
            assert_eq!(load(d.path()).unwrap(), None, "flip at {i}");
        }
        for n in 0..LEN {
            fs::write(d.path().join(CURSOR), &good[..n]).unwrap();
            assert_eq!(load(d.path()).unwrap(), None, "truncated to {n}");
        }
    }
}
