//! Segment files: naming, listing, and reading records out of a byte range of one file.
//!
//! The reader never asks "is more data coming?": the caller passes `end`, the number of bytes
//! that are final (the file length for a segment from before `open`, the bytes this process
//! wrote for the segment being appended to). Anything in `[off, end)` that does not form a
//! valid record is damage, which is what stops a torn tail from stalling replay forever.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

use crate::record::{self, Entry, Header, HEADER_LEN, MAGIC};

const SUFFIX: &str = ".seg";
const ID_DIGITS: usize = 20;
/// Read size when scanning for the next magic after damage.
const SCAN_CHUNK: usize = 64 * 1024;

pub(crate) fn file_name(id: u64) -> String {
    format!("{id:0width$}{SUFFIX}", width = ID_DIGITS)
}

/// The id of a segment file name, or `None` for any other file (the cursor, strays).
pub(crate) fn parse_name(name: &OsStr) -> Option<u64> {
    let digits = name.to_str()?.strip_suffix(SUFFIX)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `(id, length)` of every segment file in `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = parse_name(&entry.file_name()) {
            if entry.file_type()?.is_file() {
                out.push((id, entry.metadata()?.len()));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Reads as much of `buf` as the file has at `off`; returns how many bytes that was. Short
/// only at end of file, which callers treat as damage rather than an error (the file may be
/// shorter than its recorded length if something outside the spool truncated it).
fn read_at_most(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The header at `off`, if it is valid and its record fits before `end`.
pub(crate) fn read_header(
    file: &File,
    off: u64,
    end: u64,
    max_payload: u32,
) -> io::Result<Option<Header>> {
    if end.saturating_sub(off) < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN];
    if read_at_most(file, &mut h, off)? < HEADER_LEN {
        return Ok(None);
    }
    Ok(record::parse_header(&h, max_payload).filter(|h| off + h.record_len() <= end))
}

/// The entries of the record at `off`, whose header `h` was checked by [`read_header`] (so
/// the allocation is bounded by `max_payload` and by the bytes present). `None` when the
/// payload fails its CRC or does not decode.
pub(crate) fn read_entries(file: &File, off: u64, h: &Header) -> io::Result<Option<Vec<Entry>>> {
    // Read into spare capacity, not a zero-filled buffer: replay reads every spooled byte
    // once, and zeroing it first cost as much as the copy out of the page cache.
    let len = u64::from(h.payload_len);
    let mut payload = Vec::with_capacity(h.payload_len as usize);
    let mut reader = file;
    reader.seek(SeekFrom::Start(off + HEADER_LEN as u64))?;
    reader.take(len).read_to_end(&mut payload)?;
    if payload.len() as u64 != len {
        return Ok(None);
    }
    if crc32fast::hash(&payload) != h.payload_crc {
        return Ok(None);
    }
    Ok(record::decode_payload(Bytes::from(payload)))
}

/// After damage at `from - 1`: the offset of the first valid record in `[from, end)`, or `end`
/// if there is none. Reads in fixed chunks, so memory stays at one chunk plus one candidate
/// record however much garbage there is.
pub(crate) fn resync(file: &File, from: u64, end: u64, max_payload: u32) -> io::Result<u64> {
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut pos = from;
    while end.saturating_sub(pos) >= HEADER_LEN as u64 {
        let want = (end - pos).min(SCAN_CHUNK as u64) as usize;
        let got = read_at_most(file, &mut buf[..want], pos)?;
        if got < MAGIC.len() {
            break;
        }
        let chunk = &buf[..got];
        let mut i = 0;
        while let Some(k) = find_magic(&chunk[i..]) {
            let cand = pos + (i + k) as u64;
            if let Some(h) = read_header(file, cand, end, max_payload)? {
                if read_entries(file, cand, &h)?.is_some() {
                    return Ok(cand);
                }
            }
            i += k + 1;
        }
        if got < want {
            break; // the file ends before `end`
        }
        // Overlap by MAGIC.len() - 1 so a magic split across chunks is still seen.
        pos += (got - (MAGIC.len() - 1)) as u64;
    }
    Ok(end)
}

fn find_magic(hay: &[u8]) -> Option<usize> {
    hay.windows(MAGIC.len()).position(|w| w == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_sort_like_ids() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(file_name(u64::MAX), "18446744073709551615.seg");
        assert_eq!(parse_name(OsStr::new(&file_name(u64::MAX))), Some(u64::MAX));
        assert_eq!(parse_name(OsStr::new(&file_name(9))), Some(9));
        for bad in [
            "cursor",
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042",
        ] {
            assert_eq!(parse_name(OsStr::new(bad)), None, "{bad}");
        }
        assert!(file_name(9) < file_name(10));
    }

    fn rec(msg: &[u8]) -> Vec<u8> {
        let e = [(&b"c"[..], msg)];
        let len = record::payload_len(&e).unwrap() as u32;
        let mut out = Vec::new();
        record::encode(&e, len, &mut out);
        out
    }

    #[test]
    fn resync_finds_a_record_behind_garbage_across_chunks() {
        let mut f = tempfile::tempfile().unwrap();
        // Garbage with false magics (no valid header behind them), long enough that the real
        // record straddles the first chunk boundary.
        let mut data = Vec::new();
        while data.len() < SCAN_CHUNK - 2 {
            data.extend_from_slice(&MAGIC);
            data.extend_from_slice(b"junk");
        }
        data.truncate(SCAN_CHUNK - 2);
        let at = data.len() as u64;
        data.extend_from_slice(&rec(b"found"));
        f.write_all(&data).unwrap();
        let end = data.len() as u64;
        assert_eq!(resync(&f, 0, end, 1 << 20).unwrap(), at);
        assert_eq!(resync(&f, at + 1, end, 1 << 20).unwrap(), end);
        let h = read_header(&f, at, end, 1 << 20).unwrap().unwrap();
        let e = read_entries(&f, at, &h).unwrap().unwrap();
        assert_eq!(&e[0].message[..], b"found");
        // A record that does not fit before `end` is not valid, even if the file has it.
        assert_eq!(read_header(&f, at, end - 1, 1 << 20).unwrap(), None);
        assert_eq!(resync(&f, 0, end - 1, 1 << 20).unwrap(), end - 1);
    }

    #[test]
    fn file_shorter_than_end_is_damage_not_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        let r = rec(b"hello");
        f.write_all(&r[..r.len() - 3]).unwrap();
        let end = r.len() as u64;
        let h = read_header(&f, 0, end, 1 << 20).unwrap().unwrap();
        assert_eq!(read_entries(&f, 0, &h).unwrap(), None);
        assert_eq!(resync(&f, 1, end + 100, 1 << 20).unwrap(), end + 100);
    }
}
