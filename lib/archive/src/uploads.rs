//! The upload ledger, `<data>/<cat>/.uploads`: what an object-store uploader has done with a
//! category's closed files, so that local retention never deletes a file before its copy
//! exists, and a restarted uploader names every object exactly as before.
//!
//! One text record per line, each with its CRC-32 (so a torn or glued line from a crash is
//! recognised and skipped):
//!
//! ```text
//! <crc32 of the rest, 8 hex digits> first <file name> <unix milliseconds>   the file was started
//! <crc32> plan <file name> <object key>                                     about to upload it there
//! <crc32> done <file name>                                                  the object exists
//! ```
//!
//! The writer appends `first` when it starts a file (with [`crate::WriterOptions::hold_for_upload`]);
//! the uploader appends `plan` (fsynced) before its first attempt, so a retry after a crash
//! uses the same key, and `done` (fsynced) once the object exists. Both append with
//! `O_APPEND`, one `write(2)` per record, so their records never interleave.
//!
//! The ledger's existence marks the category as one an uploader copies: writers of stores
//! without uploads never create it, so an uploader scanning a directory that several stores
//! share takes only its own store's categories.
//!
//! Losing a record is always safe, never a loss of data: without `done` the file is kept and
//! uploaded again (its key already exists, which counts as done); without `plan` or `first`
//! the key is derived again from what is left (see the uploader). Compaction drops the records
//! of files that are gone.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use scribe_fs::write_atomically;

use crate::error::{io_err, WriteError};

/// File name of the ledger inside a category directory.
pub const LEDGER_NAME: &str = ".uploads";

/// Longest record line accepted (an object key is at most 1024 bytes in S3).
const MAX_LINE: u64 = 2048;

/// One ledger record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The file (plain name, `<cat>_NNNNN` or dated) was started at this time.
    First { name: String, unix_ms: i64 },
    /// The file is uploaded to this key (recorded before the first attempt).
    Plan { name: String, key: String },
    /// The object exists: the file may be deleted locally.
    Done { name: String },
}

/// A category's ledger, read back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    pub first: HashMap<String, i64>,
    pub planned: HashMap<String, String>,
    pub done: HashSet<String>,
    /// Valid records read (compaction is due when far more than the files present).
    pub records: usize,
    /// Lines skipped as damaged (torn by a crash, or glued to one).
    pub damaged: usize,
}

impl Ledger {
    pub fn is_done(&self, name: &str) -> bool {
        self.done.contains(name)
    }

    fn apply(&mut self, rec: Record) {
        self.records += 1;
        match rec {
            Record::First { name, unix_ms } => {
                self.first.insert(name, unix_ms);
            }
            Record::Plan { name, key } => {
                self.planned.insert(name, key);
            }
            Record::Done { name } => {
                self.done.insert(name);
            }
        }
    }
}

/// Path of the ledger of the category directory `dir`.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join(LEDGER_NAME)
}

fn encode(rec: &Record) -> String {
    let body = match rec {
        Record::First { name, unix_ms } => format!("first {name} {unix_ms}"),
        Record::Plan { name, key } => format!("plan {name} {key}"),
        Record::Done { name } => format!("done {name}"),
    };
    format!("{:08x} {body}\n", crc32fast::hash(body.as_bytes()))
}

/// A name or key is one token: no spaces, no control bytes (archive file names never have
/// them; keys are built from them).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b > b' ' && b != 0x7f)
}

fn decode(line: &str) -> Option<Record> {
    let (crc, body) = line.split_once(' ')?;
    if crc.len() != 8 || u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) {
        return None;
    }
    let mut parts = body.split(' ');
    let kind = parts.next()?;
    let name = parts.next().filter(|n| is_token(n))?.to_string();
    let arg = parts.next();
    if parts.next().is_some() {
        return None;
    }
    match (kind, arg) {
        ("first", Some(ms)) => Some(Record::First {
            name,
            unix_ms: ms.parse().ok()?,
        }),
        ("plan", Some(key)) if is_token(key) => Some(Record::Plan {
            name,
            key: key.to_string(),
        }),
        ("done", None) => Some(Record::Done { name }),
        _ => None,
    }
}

/// Reads the ledger of `dir` (a missing ledger is an empty one). Lines are read with a bound;
/// damaged ones are counted and skipped.
pub fn read(dir: &Path) -> Result<Ledger, WriteError> {
    let path = ledger_path(dir);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ledger::default()),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let mut r = BufReader::new(file);
    let mut ledger = Ledger::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .map_err(io_err("read", &path))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            if n as u64 > MAX_LINE {
                // Overlong: skip to the end of this line.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let m = (&mut r)
                        .take(MAX_LINE)
                        .read_until(b'\n', &mut rest)
                        .map_err(io_err("read", &path))?;
                    if m == 0 || rest.last() == Some(&b'\n') {
                        break;
                    }
                }
            }
            // A torn last line (or an overlong one) is damage.
            ledger.damaged += 1;
            continue;
        }
        match std::str::from_utf8(&line[..line.len() - 1])
            .ok()
            .and_then(decode)
        {
            Some(rec) => ledger.apply(rec),
            None => ledger.damaged += 1,
        }
    }
    Ok(ledger)
}

/// Appends `rec` to the ledger of `dir` in one `write(2)` (creating the file; a new file's
/// directory entry is fsynced with `durable`), and fdatasyncs it with `durable`.
pub fn append(dir: &Path, rec: &Record, durable: bool) -> Result<(), WriteError> {
    let path = ledger_path(dir);
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    f.write_all(encode(rec).as_bytes())
        .map_err(io_err("append to", &path))?;
    if durable {
        f.sync_data().map_err(io_err("fsync", &path))?;
        if !existed {
            scribe_fs::sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Rewrites the ledger (atomically) keeping the records of the files `keep` names. A record
/// another process appends meanwhile may be lost, which is safe (see the module docs).
pub fn compact(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<(), WriteError> {
    let ledger = read(dir)?;
    let mut out = String::new();
    let mut firsts: Vec<_> = ledger.first.iter().filter(|(n, _)| keep(n)).collect();
    firsts.sort();
    for (name, ms) in firsts {
        out.push_str(&encode(&Record::First {
            name: name.clone(),
            unix_ms: *ms,
        }));
    }
    let mut plans: Vec<_> = ledger.planned.iter().filter(|(n, _)| keep(n)).collect();
    plans.sort();
    for (name, key) in plans {
        out.push_str(&encode(&Record::Plan {
            name: name.clone(),
            key: key.clone(),
        }));
    }
    let mut done: Vec<_> = ledger.done.iter().filter(|n| keep(n)).collect();
    done.sort();
    for name in done {
        out.push_str(&encode(&Record::Done { name: name.clone() }));
    }
    write_atomically(&ledger_path(dir), out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let first = Record::First {
            name: "web_00000".into(),
            unix_ms: 1_700_000_000_123,
        };
        let plan = Record::Plan {
            name: "web_00000".into(),
            key: "logs/category=web/dt=2023-11-14/hour=22/a-web_00000.gz".into(),
        };
        append(d.path(), &first, true).unwrap();
        append(d.path(), &plan, false).unwrap();
        // A torn record glued to the next one (a crash mid-append): both lines' worth is one
        // damaged line, and the next record after it still counts.
        let path = ledger_path(d.path());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"0000abcd done web_000").unwrap();
        append(
            d.path(),
            &Record::Done {
                name: "web_00000".into(),
            },
            true,
        )
        .unwrap();
        append(
            d.path(),
            &Record::Done {
                name: "web_00001".into(),
            },
            true,
        )
        .unwrap();
        f.write_all(b"torn").unwrap();
        let l = read(d.path()).unwrap();
        assert_eq!(l.first["web_00000"], 1_700_000_000_123);
        assert_eq!(
            l.planned["web_00000"],
            "logs/category=web/dt=2023-11-14/hour=22/a-web_00000.gz"
        );
        assert!(
            !l.is_done("web_00000"),
            "glued to damage: lost, which is safe"
        );
        assert!(l.is_done("web_00001"));
        assert_eq!(l.damaged, 2);
        assert_eq!(l.records, 3);
    }

    #[test]
    fn wrong_crc_and_overlong_lines_are_damage() {
        let d = tempfile::tempdir().unwrap();
        let mut text = encode(&Record::Done {
            name: "a_00001".into(),
        })
        .replace("a_00001", "a_00002");
        text.push_str(&"x".repeat(5000));
        text.push('\n');
        text.push_str(&encode(&Record::Done {
            name: "a_00003".into(),
        }));
        std::fs::write(ledger_path(d.path()), text).unwrap();
        let l = read(d.path()).unwrap();
        assert_eq!(l.done.len(), 1);
        assert!(l.is_done("a_00003"));
        assert_eq!(l.damaged, 2);
    }

    #[test]
    fn compaction_keeps_only_named_files() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let name = format!("c_{i:05}");
            append(
                d.path(),
                &Record::First {
                    name: name.clone(),
                    unix_ms: i,
                },
                false,
            )
            .unwrap();
            append(d.path(), &Record::Done { name }, false).unwrap();
        }
        compact(d.path(), |n| n >= "c_00003").unwrap();
        let l = read(d.path()).unwrap();
        assert_eq!(l.records, 4);
        assert!(l.is_done("c_00003") && l.is_done("c_00004") && !l.is_done("c_00002"));
    }
}
