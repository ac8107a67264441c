//! Retention: how many closed files a category keeps.
//!
//! After every rotation and when a writer opens, the oldest closed files (plain or `.gz`) are
//! deleted while any limit is exceeded. Only a prefix of the archive is ever deleted, oldest
//! first, so what remains is always a contiguous, gap-free tail of the category's history; and
//! the current file (the one being written) is never deleted, so a limit may stay exceeded
//! when the current file alone exceeds it.
//!
//! Deletions are not followed by a directory fsync: after a power loss a deleted file may
//! reappear, and the next pass deletes it again.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Local};

use scribe_fs::remove_if_exists;

use crate::category::Category;
use crate::compress::Compressor;
use crate::error::{io_err, WriteError};
use crate::layout::{self, FileKey, Slot};
use crate::uploads;

/// Retention limits; `None` = no limit. All three may be combined: a file goes as soon as any
/// limit wants it gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many files, the current one included (0 behaves as 1).
    pub keep_files: Option<usize>,
    /// Keep at most this many bytes on disk (compressed size for `.gz`), the current file
    /// included.
    pub keep_bytes: Option<u64>,
    /// Delete closed files last modified more than this many days (of 24 h) ago. A `.gz` keeps
    /// its original's mtime, so compression does not restart the count.
    pub keep_days: Option<u32>,
    /// Delete only files the category's upload ledger records as uploaded
    /// ([`crate::uploads`]); the first one that is not stops the pass, so what remains stays
    /// a contiguous tail.
    pub uploaded_only: bool,
}

impl Retention {
    pub fn is_unlimited(&self) -> bool {
        self.keep_files.is_none() && self.keep_bytes.is_none() && self.keep_days.is_none()
    }
}

/// Size and age of one key's files.
struct Usage {
    bytes: u64,
    mtime: Option<SystemTime>,
}

fn usage(slot: &Slot) -> Result<Usage, WriteError> {
    let mut u = Usage {
        bytes: 0,
        mtime: None,
    };
    for p in [&slot.plain, &slot.gz].into_iter().flatten() {
        match std::fs::metadata(p) {
            Ok(m) => {
                u.bytes += m.len();
                let t = m.modified().ok();
                u.mtime = u.mtime.max(t);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", p)(e)),
        }
    }
    Ok(u)
}

/// Deletes the oldest closed files of `slots` (the scanned category directory `dir`) beyond the
/// limits, never `current` or anything after it. Removes deleted keys from `slots` and returns
/// them, oldest first.
pub(crate) fn apply(
    retention: &Retention,
    dir: &Path,
    category: &Category,
    slots: &mut BTreeMap<FileKey, Slot>,
    current: FileKey,
    now: DateTime<Local>,
    compressor: &Compressor,
) -> Result<Vec<FileKey>, WriteError> {
    if retention.is_unlimited() {
        return Ok(Vec::new());
    }
    let keys: Vec<FileKey> = slots
        .iter()
        .filter(|(_, s)| s.is_file())
        .map(|(k, _)| *k)
        .collect();
    let mut files_left = keys.len();
    let need_usage = retention.keep_bytes.is_some() || retention.keep_days.is_some();
    let mut usages = BTreeMap::new();
    let mut bytes_left = 0u64;
    if need_usage {
        for k in &keys {
            let u = usage(&slots[k])?;
            bytes_left += u.bytes;
            usages.insert(*k, u);
        }
    }
    let cutoff: Option<SystemTime> = retention.keep_days.map(|d| {
        let age = chrono::Duration::days(i64::from(d));
        SystemTime::from(now.checked_sub_signed(age).unwrap_or(now))
    });
    let ledger = if retention.uploaded_only {
        Some(uploads::read(dir)?)
    } else {
        None
    };
    let mut deleted = Vec::new();
    for k in keys {
        if k >= current {
            break;
        }
        if let Some(l) = &ledger {
            if !l.is_done(&k.file_name(category)) {
                break;
            }
        }
        let u = usages.get(&k);
        let too_many = retention
            .keep_files
            .is_some_and(|max| files_left > max.max(1));
        let too_big = retention.keep_bytes.is_some_and(|max| bytes_left > max);
        let too_old = match (cutoff, u.and_then(|u| u.mtime)) {
            (Some(cut), Some(mtime)) => mtime < cut,
            _ => false,
        };
        if !(too_many || too_big || too_old) {
            break;
        }
        delete_key(dir, category, k, compressor)?;
        tracing::info!(%category, file = %k.file_name(category), "retention: deleted");
        slots.remove(&k);
        files_left -= 1;
        bytes_left = bytes_left.saturating_sub(u.map_or(0, |u| u.bytes));
        deleted.push(k);
    }
    if let Some(l) = ledger {
        compact_ledger(dir, category, slots, &l);
    }
    Ok(deleted)
}

/// Rewrites the upload ledger without the records of deleted files once they dominate it.
/// Logged, never fatal: a long ledger is only slower to read.
fn compact_ledger(
    dir: &Path,
    category: &Category,
    slots: &BTreeMap<FileKey, Slot>,
    ledger: &uploads::Ledger,
) {
    if ledger.records + ledger.damaged <= 4 * slots.len() + 64 {
        return;
    }
    let names: std::collections::HashSet<String> =
        slots.keys().map(|k| k.file_name(category)).collect();
    if let Err(e) = uploads::compact(dir, |n| names.contains(n)) {
        tracing::warn!(%category, "compacting the upload ledger: {e}");
    }
}

/// Deletes every form of `key`. Under the compressor's lock, so a compression of the file
/// cannot commit a `.gz` of it afterwards (it finds its source gone and drops its temporary);
/// that compression's own temporary is left to it.
fn delete_key(
    dir: &Path,
    category: &Category,
    key: FileKey,
    compressor: &Compressor,
) -> Result<(), WriteError> {
    let plain = dir.join(key.file_name(category));
    let locked = compressor.lock();
    remove_if_exists(&layout::gz_path(&plain))?;
    remove_if_exists(&plain)?;
    if !locked.is_pending(&plain) {
        remove_if_exists(&layout::gz_tmp_path(&plain))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::fs::File;
    use std::time::Duration;

    fn cat() -> Category {
        "k".parse().unwrap()
    }

    fn now() -> DateTime<Local> {
        Local
            .with_ymd_and_hms(2024, 1, 20, 12, 0, 0)
            .single()
            .unwrap()
    }

    /// Files k_00000..k_0000{n-1}, file i holding `size` bytes, modified `n - i` days ago
    /// (in `now()` time), every other one compressed (by name only).
    fn setup(n: u64, size: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        std::fs::create_dir(&dir).unwrap();
        for i in 0..n {
            let mut name = layout::file_name(&cat(), i);
            if i % 2 == 1 && i + 1 < n {
                name.push_str(".gz");
            }
            let p = dir.join(name);
            std::fs::write(&p, vec![b'x'; size]).unwrap();
            let age = chrono::Duration::days((n - i) as i64) - chrono::Duration::hours(1);
            let t = SystemTime::from(now() - age);
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        (d, dir)
    }

    fn run(dir: &Path, r: Retention, current: u64) -> Vec<u64> {
        let mut slots = layout::scan_dir(dir, &cat()).unwrap();
        let deleted = apply(
            &r,
            dir,
            &cat(),
            &mut slots,
            FileKey::undated(current),
            now(),
            &Compressor::new(1),
        )
        .unwrap();
        assert_eq!(slots, layout::scan_dir(dir, &cat()).unwrap());
        deleted.into_iter().map(|k| k.suffix).collect()
    }

    fn left(dir: &Path) -> Vec<u64> {
        layout::scan_dir(dir, &cat())
            .unwrap()
            .keys()
            .map(|k| k.suffix)
            .collect()
    }

    #[test]
    fn keep_files_deletes_the_oldest_only() {
        let (_d, dir) = setup(6, 10);
        let r = Retention {
            keep_files: Some(4),
            ..Retention::default()
        };
        assert_eq!(run(&dir, r, 5), [0, 1]);
        assert_eq!(left(&dir), [2, 3, 4, 5]);
        // Idempotent.
        assert_eq!(run(&dir, r, 5), Vec::<u64>::new());
        // Never the current file, even with a limit of 0.
        let r0 = Retention {
            keep_files: Some(0),
            ..Retention::default()
        };
        assert_eq!(run(&dir, r0, 5), [2, 3, 4]);
        assert_eq!(left(&dir), [5]);
    }

    #[test]
    fn keep_bytes_counts_every_file_including_current() {
        let (_d, dir) = setup(5, 100);
        let r = Retention {
            keep_bytes: Some(250),
            ..Retention::default()
        };
        assert_eq!(run(&dir, r, 4), [0, 1, 2]);
        assert_eq!(left(&dir), [3, 4]);
        // The current file alone over the limit stays.
        let r = Retention {
            keep_bytes: Some(50),
            ..Retention::default()
        };
        assert_eq!(run(&dir, r, 4), [3]);
        assert_eq!(left(&dir), [4]);
    }

    #[test]
    fn keep_days_uses_mtime_and_stops_at_the_first_young_file() {
        let (_d, dir) = setup(6, 1);
        // Ages: 6, 5, 4, 3, 2, 1 days (minus an hour).
        let r = Retention {
            keep_days: Some(3),
            ..Retention::default()
        };
        assert_eq!(run(&dir, r, 5), [0, 1, 2]);
        // File 3 is 3 days minus an hour old: kept.
        assert_eq!(left(&dir), [3, 4, 5]);
        // An old file after a young one is not a prefix: kept (no holes).
        let p = dir.join("k_00004");
        let old = SystemTime::from(now()) - Duration::from_secs(30 * 86_400);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(run(&dir, r, 5), Vec::<u64>::new());
    }

    #[test]
    fn deletes_every_form_of_a_key_and_nothing_after_current() {
        let (_d, dir) = setup(3, 1);
        std::fs::write(dir.join("k_00000.gz"), b"dup").unwrap();
        std::fs::write(dir.join("k_00000.gz.tmp"), b"tmp").unwrap();
        let r = Retention {
            keep_files: Some(1),
            ..Retention::default()
        };
        // Current is 1: file 2 (newer) is never touched, file 0 goes in every form.
        assert_eq!(run(&dir, r, 1), [0]);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["k_00001.gz", "k_00002"]);
    }

    #[test]
    fn uploaded_only_keeps_every_file_from_the_first_not_uploaded() {
        let (_d, dir) = setup(6, 10);
        for i in [0u64, 1, 3] {
            let name = layout::file_name(&cat(), i);
            crate::uploads::append(&dir, &crate::uploads::Record::Done { name }, false).unwrap();
        }
        let r = Retention {
            keep_files: Some(1),
            uploaded_only: true,
            ..Retention::default()
        };
        // 2 is not uploaded: it and everything after it stay, though 3 is uploaded.
        assert_eq!(run(&dir, r, 5), [0, 1]);
        assert_eq!(left(&dir), [2, 3, 4, 5]);
        crate::uploads::append(
            &dir,
            &crate::uploads::Record::Done {
                name: layout::file_name(&cat(), 2),
            },
            false,
        )
        .unwrap();
        assert_eq!(run(&dir, r, 5), [2, 3]);
    }
}
