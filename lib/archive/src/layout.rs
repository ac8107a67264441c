//! The on-disk layout of the category archive, as Scribe's file store wrote it:
//!
//! ```text
//! <data-dir>/<category>/<category>_00000                 rotate_period = never
//! <data-dir>/<category>/<category>-2024-01-31_00000      any other rotate_period (local date)
//! <data-dir>/<category>/<category>-2024-01-31_00000.gz   a rotated file after compression
//! <data-dir>/<category>/<category>_current -> <newest file name>   (relative symlink)
//! ```
//!
//! Suffixes are zero-padded to five digits and keep growing past 99999 (six digits and more),
//! so they must be compared as numbers, never as strings. Files are ordered by [`FileKey`]:
//! undated files first (by suffix), then dated files by date, then suffix. The writer only ever
//! creates a file whose key is greater than every existing one, so this order is write order.
//!
//! `<name>.gz.tmp` is a compression in progress (or left by a crash); it is never part of the
//! archive and readers must ignore it.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::category::Category;

/// Extension of a compressed archive file.
pub const GZ_EXT: &str = ".gz";
/// Extension of a compression that has not been committed yet.
pub const GZ_TMP_EXT: &str = ".gz.tmp";

/// Directory holding one category's files.
pub fn category_dir(data_dir: &Path, category: &Category) -> PathBuf {
    data_dir.join(category.as_str())
}

/// The categories of a data directory: its subdirectories whose names are valid category
/// names (anything else there, such as `.spool`, is not a category), sorted by name.
pub fn list_categories(data_dir: &Path) -> io::Result<Vec<Category>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if let Ok(cat) = Category::new(entry.file_name().as_encoded_bytes()) {
            found.push(cat);
        }
    }
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(found)
}

/// Position of a file in a category's sequence. Derived `Ord` compares `date` first, and
/// `None` sorts before any date: undated files precede dated ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub date: Option<NaiveDate>,
    pub suffix: u64,
}

impl FileKey {
    pub fn undated(suffix: u64) -> FileKey {
        FileKey { date: None, suffix }
    }

    pub fn dated(date: NaiveDate, suffix: u64) -> FileKey {
        FileKey {
            date: Some(date),
            suffix,
        }
    }

    /// The file name (uncompressed) of this key in `category`.
    pub fn file_name(&self, category: &Category) -> String {
        match self.date {
            None => format!("{category}_{:05}", self.suffix),
            Some(d) => format!("{category}-{}_{:05}", d.format("%Y-%m-%d"), self.suffix),
        }
    }
}

/// File name of the `suffix`-th undated file of a category.
pub fn file_name(category: &Category, suffix: u64) -> String {
    FileKey::undated(suffix).file_name(category)
}

/// File name of a dated file (`<cat>-YYYY-MM-DD_NNNNN`).
pub fn dated_file_name(category: &Category, date: NaiveDate, suffix: u64) -> String {
    FileKey::dated(date, suffix).file_name(category)
}

/// Name of the symlink to the newest file.
pub fn current_link_name(category: &Category) -> String {
    format!("{category}_current")
}

/// The suffix of `name` if it is one of `category`'s undated, uncompressed files.
pub fn parse_suffix(category: &Category, name: &str) -> Option<u64> {
    match parse_name(category, name)? {
        (key, FileKind::Plain) if key.date.is_none() => Some(key.suffix),
        _ => None,
    }
}

/// What a directory entry of the archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Plain,
    Gz,
    /// An uncommitted compression: not part of the archive.
    GzTmp,
}

/// The key and kind of `name` if it is one of `category`'s files (any form).
pub fn parse_name(category: &Category, name: &str) -> Option<(FileKey, FileKind)> {
    let (stem, kind) = if let Some(s) = name.strip_suffix(GZ_TMP_EXT) {
        (s, FileKind::GzTmp)
    } else if let Some(s) = name.strip_suffix(GZ_EXT) {
        (s, FileKind::Gz)
    } else {
        (name, FileKind::Plain)
    };
    let rest = stem.strip_prefix(category.as_str())?;
    // Exact-prefix stripping is unambiguous: the directory holds one category only, and what
    // follows the name must be `_digits` or `-YYYY-MM-DD_digits`.
    let (date, digits) = if let Some(digits) = rest.strip_prefix('_') {
        (None, digits)
    } else {
        let dated = rest.strip_prefix('-')?;
        let (date, digits) = dated.split_once('_')?;
        (Some(parse_date(date)?), digits)
    };
    if digits.len() < 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let suffix = digits.parse().ok()?;
    Some((FileKey { date, suffix }, kind))
}

/// Strictly `YYYY-MM-DD` with a real calendar date.
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// The undated, uncompressed numbered files of a category, oldest (lowest suffix) first. A
/// missing directory is an empty archive.
///
/// Kept for callers that only know Scribe's default layout (rotate_period = never, no
/// compression); everything else should use [`list_archive`], which sees every form.
pub fn list_files(data_dir: &Path, category: &Category) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = category_dir(data_dir, category);
    Ok(scan_dir(&dir, category)?
        .into_iter()
        .filter(|(k, _)| k.date.is_none())
        .filter_map(|(k, slot)| slot.plain.map(|p| (k.suffix, p)))
        .collect())
}

/// One file of a category's archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub path: PathBuf,
    /// `Some` for `<cat>-YYYY-MM-DD_NNNNN` names.
    pub date: Option<NaiveDate>,
    pub suffix: u64,
    /// gzip-compressed (`.gz`); read through [`ArchiveFile::open`] to get the original bytes.
    pub compressed: bool,
    /// The last file in order: the one a writer appends to (`<cat>_current` points at it).
    /// Every other file is closed and will not change (except by compression or retention).
    pub newest: bool,
}

impl ArchiveFile {
    pub fn key(&self) -> FileKey {
        FileKey {
            date: self.date,
            suffix: self.suffix,
        }
    }

    /// Opens the file for reading its original bytes, decompressing `.gz` files.
    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let f = std::fs::File::open(&self.path)?;
        let r = io::BufReader::with_capacity(256 * 1024, f);
        if self.compressed {
            Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
        } else {
            Ok(Box::new(r))
        }
    }
}

/// Every file of a category in write order: undated, then dated (by date, then suffix), each
/// either plain or `.gz`. A missing directory is an empty archive.
///
/// One entry per key: if a key exists both plain and compressed (a compression between its
/// rename and the removal of the original, or a crash there), the plain file is listed, since
/// both hold the same bytes and the plain one is cheaper to read; an open descriptor on it
/// stays readable when the compressor removes it.
pub fn list_archive(data_dir: &Path, category: &Category) -> io::Result<Vec<ArchiveFile>> {
    let dir = category_dir(data_dir, category);
    let mut out: Vec<ArchiveFile> = scan_dir(&dir, category)?
        .into_iter()
        .filter_map(|(key, slot)| {
            let (path, compressed) = match (slot.plain, slot.gz) {
                (Some(p), _) => (p, false),
                (None, Some(g)) => (g, true),
                (None, None) => return None,
            };
            Some(ArchiveFile {
                path,
                date: key.date,
                suffix: key.suffix,
                compressed,
                newest: false,
            })
        })
        .collect();
    if let Some(last) = out.last_mut() {
        last.newest = true;
    }
    Ok(out)
}

/// The paths present for one key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub plain: Option<PathBuf>,
    pub gz: Option<PathBuf>,
    pub tmp: Option<PathBuf>,
}

impl Slot {
    /// Whether the key is part of the archive (not just a leftover temporary).
    pub fn is_file(&self) -> bool {
        self.plain.is_some() || self.gz.is_some()
    }
}

/// Every path of the category directory that belongs to the archive, grouped by key, in order.
pub(crate) fn scan_dir(dir: &Path, category: &Category) -> io::Result<BTreeMap<FileKey, Slot>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut map: BTreeMap<FileKey, Slot> = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((key, kind)) = name.to_str().and_then(|n| parse_name(category, n)) else {
            continue;
        };
        let slot = map.entry(key).or_default();
        let path = Some(entry.path());
        match kind {
            FileKind::Plain => slot.plain = path,
            FileKind::Gz => slot.gz = path,
            FileKind::GzTmp => slot.tmp = path,
        }
    }
    Ok(map)
}

/// `<path>.gz` for a plain archive file.
pub(crate) fn gz_path(plain: &Path) -> PathBuf {
    with_ext(plain, GZ_EXT)
}

/// `<path>.gz.tmp` for a plain archive file.
pub(crate) fn gz_tmp_path(plain: &Path) -> PathBuf {
    with_ext(plain, GZ_TMP_EXT)
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(s: &str) -> Category {
        s.parse().unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn names_follow_scribe() {
        assert_eq!(file_name(&cat("test"), 0), "test_00000");
        assert_eq!(file_name(&cat("test"), 123456), "test_123456");
        assert_eq!(current_link_name(&cat("a.b")), "a.b_current");
        assert_eq!(
            dated_file_name(&cat("scribe_test"), date(2009, 10, 9), 0),
            "scribe_test-2009-10-09_00000"
        );
    }

    #[test]
    fn suffixes_parse_numerically() {
        let c = cat("web");
        assert_eq!(parse_suffix(&c, "web_00007"), Some(7));
        assert_eq!(parse_suffix(&c, "web_100000"), Some(100000));
        assert_eq!(parse_suffix(&c, "web_current"), None);
        assert_eq!(parse_suffix(&c, "web_0001"), None);
        assert_eq!(parse_suffix(&c, "webx_00001"), None);
        assert_eq!(parse_suffix(&c, "web_00001.tmp"), None);
        // Dated and compressed files are not undated plain files.
        assert_eq!(parse_suffix(&c, "web-2024-01-02_00001"), None);
        assert_eq!(parse_suffix(&c, "web_00001.gz"), None);
    }

    #[test]
    fn every_form_parses_and_nothing_else() {
        let c = cat("web");
        let d = date(2024, 2, 29);
        assert_eq!(
            parse_name(&c, "web-2024-02-29_00003"),
            Some((FileKey::dated(d, 3), FileKind::Plain))
        );
        assert_eq!(
            parse_name(&c, "web-2024-02-29_00003.gz"),
            Some((FileKey::dated(d, 3), FileKind::Gz))
        );
        assert_eq!(
            parse_name(&c, "web_00003.gz.tmp"),
            Some((FileKey::undated(3), FileKind::GzTmp))
        );
        for bad in [
            "web-2023-02-29_00003", // not a date
            "web-2024-2-29_00003",
            "web-2024-02-29",
            "web-2024-02-29_0003",
            "web-2024-02-29_00003.gz.bak",
            "web-+202-02-29_00003",
            "web_current",
            "web-x_00001",
            "other_00001",
        ] {
            assert_eq!(parse_name(&c, bad), None, "{bad}");
        }
        // A category whose own name looks dated is still read by exact prefix.
        let odd = cat("web-2024-02-29");
        assert_eq!(
            parse_name(&odd, "web-2024-02-29_00001"),
            Some((FileKey::undated(1), FileKind::Plain))
        );
    }

    #[test]
    fn list_sorts_by_number() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("web");
        std::fs::create_dir(d.path().join("web")).unwrap();
        for n in [
            "web_99999",
            "web_100000",
            "web_00002",
            "web_current",
            "other",
            "web-2024-01-01_00000",
            "web_00001.gz",
        ] {
            std::fs::write(d.path().join("web").join(n), b"").unwrap();
        }
        let got: Vec<u64> = list_files(d.path(), &c)
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(got, vec![2, 99999, 100000]);
        assert!(list_files(d.path(), &cat("none")).unwrap().is_empty());
    }

    #[test]
    fn list_archive_orders_undated_then_by_date_then_suffix() {
        let d = tempfile::tempdir().unwrap();
        let c = cat("web");
        let dir = d.path().join("web");
        std::fs::create_dir(&dir).unwrap();
        for n in [
            "web-2024-01-02_00000",
            "web-2024-01-01_00010.gz",
            "web_00001",
            "web-2024-01-01_00002.gz",
            "web-2024-01-01_00002", // both forms: listed once, plain
            "web-2024-01-01_100000",
            "web_00000.gz",
            "web-2024-01-02_00001.gz.tmp", // never listed
            "web_current",
        ] {
            std::fs::write(dir.join(n), b"").unwrap();
        }
        let got: Vec<(String, bool, bool)> = list_archive(d.path(), &c)
            .unwrap()
            .into_iter()
            .map(|f| {
                let name = f.path.file_name().unwrap().to_str().unwrap().to_owned();
                (name, f.compressed, f.newest)
            })
            .collect();
        let want = [
            ("web_00000.gz", true, false),
            ("web_00001", false, false),
            ("web-2024-01-01_00002", false, false),
            ("web-2024-01-01_00010.gz", true, false),
            ("web-2024-01-01_100000", false, false),
            ("web-2024-01-02_00000", false, true),
        ];
        let want: Vec<(String, bool, bool)> = want
            .iter()
            .map(|(n, c, l)| (n.to_string(), *c, *l))
            .collect();
        assert_eq!(got, want);
        let first = &list_archive(d.path(), &c).unwrap()[2];
        assert_eq!(first.date, Some(date(2024, 1, 1)));
        assert_eq!(first.suffix, 2);
        assert!(list_archive(d.path(), &cat("none")).unwrap().is_empty());
    }

    #[test]
    fn open_decompresses_gz_files() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let c = cat("web");
        let dir = d.path().join("web");
        std::fs::create_dir(&dir).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"old\nlines\n").unwrap();
        std::fs::write(dir.join("web_00000.gz"), enc.finish().unwrap()).unwrap();
        std::fs::write(dir.join("web_00001"), b"new\n").unwrap();
        let mut all = Vec::new();
        for f in list_archive(d.path(), &c).unwrap() {
            f.open().unwrap().read_to_end(&mut all).unwrap();
        }
        assert_eq!(all, b"old\nlines\nnew\n");
    }
}
