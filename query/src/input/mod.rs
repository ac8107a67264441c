//! Where lines come from: files, directories, stdin and category archives, in reading order,
//! with gzip decoded in-process.
//!
//! Every input is opened as a byte stream; `.gz` content (recognised by its magic bytes, so a
//! renamed or suffix-less gzip file still works) goes through flate2's `MultiGzDecoder`, which
//! also reads files made of several concatenated gzip members (`cat a.gz b.gz`, `gzip -r`
//! appends). Category archives are listed by `scribe_archive::layout::list_archive`, the one
//! implementation of the layout: undated, then dated files, plain or gzipped, the current
//! (newest) file last.
//!
//! A damaged or truncated gzip input does not stop the run (see `Gunzip`): what decoded
//! before the damage is read, the damage is reported with the input's name and the compressed
//! byte offset, and the run goes on with the next input and exits 2 at the end.

pub mod merge;
#[cfg(feature = "s3")]
pub mod s3;

/// Without the `s3` feature there are no object inputs.
#[cfg(not(feature = "s3"))]
pub mod s3 {
    #[derive(Debug, Clone)]
    pub enum ObjectInput {}

    impl ObjectInput {
        pub fn open(&self) -> Box<dyn std::io::Read + Send> {
            match *self {}
        }

        pub fn size(&self) -> u64 {
            match *self {}
        }

        pub fn stream(&self) -> &str {
            match *self {}
        }
    }

    pub fn report_stats() {}
}

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use scribe_archive::category::{CategoryGlob, GlobError};
use scribe_archive::layout::{list_archive, ArchiveFile};
use scribe_archive::Category;

/// The gzip magic number (RFC 1952 ID1, ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read size for plain files and the gzip decoder's input buffer: large reads keep syscall
/// overhead out of the profile.
pub const READ_BUF: usize = 256 * 1024;

/// One input, in the order it is read.
#[derive(Debug, Clone)]
pub struct Input {
    /// The name shown in output (`grep -H` prefixes, errors): the path as given, or
    /// `(standard input)` as GNU grep writes it.
    pub name: String,
    pub kind: InputKind,
}

#[derive(Debug, Clone)]
pub enum InputKind {
    Stdin,
    Path(PathBuf),
    Archive(ArchiveFile),
    /// `--follow`: every named file and category, live, as one stream.
    Follow(crate::follow::FollowSpec),
    /// `--merge`: several inputs interleaved by time, as one stream.
    Merge(merge::MergeSpec),
    /// An object of the object-store archive (`--archive s3://...`): gzip, fetched.
    Object(s3::ObjectInput),
}

impl Input {
    pub fn stdin() -> Input {
        Input {
            name: "(standard input)".to_string(),
            kind: InputKind::Stdin,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match &self.kind {
            InputKind::Stdin | InputKind::Follow(_) | InputKind::Merge(_) => None,
            InputKind::Object(_) => None,
            InputKind::Path(p) => Some(p),
            InputKind::Archive(a) => Some(&a.path),
        }
    }

    /// Whether the bytes on disk are gzip (checked by magic, not by name). Only regular files
    /// are sniffed here: reading the start of a FIFO or a `<(...)` pipe would consume bytes
    /// that no later open could read again, so those are sniffed by [`Input::open`] on the
    /// one stream it reads.
    pub fn is_gzip(&self) -> io::Result<bool> {
        match &self.kind {
            InputKind::Stdin | InputKind::Follow(_) | InputKind::Merge(_) => Ok(false),
            InputKind::Archive(a) if a.compressed => Ok(true),
            InputKind::Object(_) => Ok(true),
            _ => {
                let Some(path) = self.path() else {
                    return Ok(false);
                };
                if !std::fs::metadata(path)?.is_file() {
                    return Ok(false);
                }
                let mut magic = [0u8; 2];
                let got = read_full(&mut File::open(path)?, &mut magic)?;
                Ok(got == 2 && magic == GZIP_MAGIC)
            }
        }
    }

    /// Whether the input is a regular file (not stdin, a FIFO or a character device), so that
    /// it can be opened more than once and read from any offset.
    pub fn is_regular(&self) -> bool {
        self.path()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file())
    }

    /// Size on disk (in the bucket), for the progress bar (compressed size for gzip files).
    pub fn disk_len(&self) -> u64 {
        if let InputKind::Object(o) = &self.kind {
            return o.size();
        }
        self.path()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Opens the input for reading its (decompressed) bytes. Damaged gzip data ends the
    /// stream and is reported (see `Gunzip`).
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        self.open_with(Damage::Report)
    }

    /// [`Input::open`] for a look at the start of an input (`--since`/`--until` pruning):
    /// damage ends the stream silently, since the read that follows reports it.
    pub fn open_quiet(&self) -> Result<Box<dyn Read + Send>> {
        self.open_with(Damage::Quiet)
    }

    fn open_with(&self, damage: Damage) -> Result<Box<dyn Read + Send>> {
        let how = Decode {
            name: self.name.clone(),
            damage,
        };
        match &self.kind {
            InputKind::Stdin => {
                decode_if_gzip(io::stdin(), how).with_context(|| format!("reading {}", self.name))
            }
            InputKind::Merge(spec) => Ok(Box::new(merge::MergeReader::new(spec))),
            InputKind::Follow(spec) => Ok(Box::new(crate::follow::FollowReader::open(
                spec,
                crate::lines::max_line(),
            )?)),
            // Decoded here rather than by `ArchiveFile::open`, for the damage handling; by
            // the archive's word, not the magic, so a `.gz` whose header is damaged is
            // reported rather than read as text.
            InputKind::Archive(a) if a.compressed => {
                let f = File::open(&a.path).with_context(|| format!("opening {}", self.name))?;
                Ok(Box::new(Gunzip::new(f, how)))
            }
            InputKind::Archive(a) => a.open().with_context(|| format!("opening {}", self.name)),
            InputKind::Object(o) => Ok(Box::new(Gunzip::new(o.open(), how))),
            InputKind::Path(p) => {
                let f = File::open(p).with_context(|| format!("opening {}", self.name))?;
                decode_if_gzip(f, how).with_context(|| format!("reading {}", self.name))
            }
        }
    }
}

/// Reads until `buf` is full or the end; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The stream's bytes, gunzipped if they start with the gzip magic. The sniffed bytes are
/// put back in front of the stream, which is opened only once (pipes cannot be re-read).
fn decode_if_gzip<R: Read + Send + 'static>(
    mut r: R,
    how: Decode,
) -> io::Result<Box<dyn Read + Send>> {
    let mut magic = [0u8; 2];
    let got = read_full(&mut r, &mut magic)?;
    let stream = io::Cursor::new(magic).take(got as u64).chain(r);
    if got == 2 && magic == GZIP_MAGIC {
        Ok(Box::new(Gunzip::new(stream, how)))
    } else {
        Ok(Box::new(stream))
    }
}

/// What to do about damaged gzip data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// Say so on stderr and make the exit status 2.
    Report,
    /// End the stream without a word (a peek whose input is read again later).
    Quiet,
}

/// How an input's gzip data is decoded: its name for messages, and what damage does.
struct Decode {
    name: String,
    damage: Damage,
}

/// Most decoded bytes asked of flate2 at once. When it meets damage, flate2 returns the error
/// and drops what it decoded in that same call, so smaller calls lose less of what precedes
/// the damage. 64 KiB calls cost no measurable speed (flate2 1.1, a 56 MB stream: within the
/// run-to-run noise of 1 MiB calls).
const DECODE_CHUNK: usize = 64 * 1024;

/// A gzip stream (any number of members) whose damage ends it instead of failing the read.
///
/// A corrupt or truncated member, a bad checksum or a bad header is reported once — the
/// input's name, flate2's reason and how far into the compressed bytes decoding got, which is
/// at or just past the damage — and counted for the exit status; then the stream ends. So
/// every command uses what decoded before the damage (a partial last line included) and goes
/// on with the next input: GNU grep's way with a file it cannot read, here for a
/// `cat`-concatenated archive with one bad member or a copy cut short.
struct Gunzip<R: Read> {
    decoder: flate2::bufread::MultiGzDecoder<Counted<io::BufReader<R>>>,
    how: Decode,
    ended: bool,
}

impl<R: Read> Gunzip<R> {
    fn new(compressed: R, how: Decode) -> Gunzip<R> {
        let counted = Counted {
            inner: io::BufReader::with_capacity(READ_BUF, compressed),
            consumed: 0,
        };
        Gunzip {
            decoder: flate2::bufread::MultiGzDecoder::new(counted),
            how,
            ended: false,
        }
    }
}

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended {
            return Ok(0);
        }
        let want = buf.len().min(DECODE_CHUNK);
        match self.decoder.read(&mut buf[..want]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.ended = true;
                if self.how.damage == Damage::Report {
                    let at = self.decoder.get_ref().consumed;
                    // An object whose download failed (`scribe_objstore::read`) is not
                    // damaged: say what failed.
                    let what = if e.kind() == io::ErrorKind::ConnectionAborted {
                        "reading failed"
                    } else {
                        "damaged gzip data"
                    };
                    report_unreadable(
                        &self.how.name,
                        &format!("{what} at byte {at}: {e}; the rest is skipped"),
                    );
                }
                Ok(0)
            }
            ok => ok,
        }
    }
}

/// A buffered reader that counts the bytes its user consumed: how far into the compressed
/// input the decoder got.
struct Counted<B> {
    inner: B,
    consumed: u64,
}

impl<B: BufRead> Read for Counted<B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<B: BufRead> BufRead for Counted<B> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

/// What the user named on the command line.
#[derive(Debug, Clone, Default)]
pub struct InputSpec {
    /// Paths as given; `-` is stdin. Directories are read recursively, entries sorted by name.
    pub paths: Vec<String>,
    /// Category names or globs (`apache.*`).
    pub categories: Vec<String>,
    pub data_dir: PathBuf,
    /// `--follow`: read the files and categories live, from their end, as one stream.
    pub follow: bool,
    /// `--archive s3://bucket/prefix` (or `LOGQ_ARCHIVE`): categories come from there.
    pub archive: Option<String>,
    /// `--archive` was given on the command line (not only in the environment): with no
    /// category and no file named, every category of the archive is read.
    pub archive_flag: bool,
    /// `--since`/`--until` (seconds since the epoch), for pruning the archive's objects
    /// before they are fetched.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Resolves the spec into the ordered list of inputs. No paths and no categories means stdin.
pub fn resolve(spec: &InputSpec) -> Result<Vec<Input>> {
    if spec.follow {
        return resolve_follow(spec);
    }
    let mut out = Vec::new();
    let from_archive = spec
        .archive
        .as_ref()
        .filter(|_| !spec.categories.is_empty() || (spec.archive_flag && spec.paths.is_empty()));
    if let Some(url) = from_archive {
        out.extend(resolve_archive(url, spec)?);
    }
    let local_categories = if from_archive.is_some() {
        &[][..]
    } else {
        &spec.categories[..]
    };
    for pattern in local_categories {
        for cat in matching_categories(&spec.data_dir, pattern)? {
            let files = list_archive(&spec.data_dir, &cat).with_context(|| {
                format!("listing category {cat} in {}", spec.data_dir.display())
            })?;
            if files.is_empty() {
                crate::output::warn(&format!(
                    "category {cat} has no files under {}",
                    spec.data_dir.display()
                ));
            }
            for f in files {
                out.push(Input {
                    name: f.path.display().to_string(),
                    kind: InputKind::Archive(f),
                });
            }
        }
    }
    for p in &spec.paths {
        if p == "-" {
            out.push(Input::stdin());
            continue;
        }
        let path = PathBuf::from(p);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                // Like grep and cut: say so, go on with the other inputs, exit 2 at the end.
                report_missing(p, &e);
                continue;
            }
        };
        if meta.is_dir() {
            if let Some(files) = category_files(&path) {
                out.extend(files);
                continue;
            }
            walk_dir(&path, &mut out).with_context(|| format!("reading directory {p}"))?;
        } else if let Err(e) = check_readable(&path, &meta) {
            report_missing(p, &e);
        } else {
            out.push(Input {
                name: p.clone(),
                kind: InputKind::Path(path),
            });
        }
    }
    if spec.paths.is_empty() && spec.categories.is_empty() && from_archive.is_none() {
        out.push(Input::stdin());
    }
    Ok(out)
}

#[cfg(feature = "s3")]
fn resolve_archive(url: &str, spec: &InputSpec) -> Result<Vec<Input>> {
    s3::resolve(url, &spec.categories, (spec.since, spec.until))
}

#[cfg(not(feature = "s3"))]
fn resolve_archive(url: &str, _: &InputSpec) -> Result<Vec<Input>> {
    bail!("--archive {url}: this logq was built without the `s3` feature")
}

/// `--follow`: one input, every named file and category followed live.
fn resolve_follow(spec: &InputSpec) -> Result<Vec<Input>> {
    if spec.paths.is_empty() && spec.categories.is_empty() {
        bail!("--follow needs a file or a --category (standard input is followed anyway)");
    }
    if let (Some(url), false) = (&spec.archive, spec.categories.is_empty()) {
        bail!("--follow reads local categories as they grow; {url} holds closed files only");
    }
    let mut follow = crate::follow::FollowSpec {
        data_dir: spec.data_dir.clone(),
        ..Default::default()
    };
    for pattern in &spec.categories {
        follow
            .categories
            .extend(matching_categories(&spec.data_dir, pattern)?);
    }
    for p in &spec.paths {
        if p == "-" {
            bail!("--follow reads files and categories; standard input is followed anyway");
        }
        follow.files.push(PathBuf::from(p));
    }
    let name = match (spec.paths.as_slice(), spec.categories.as_slice()) {
        ([one], []) => one.clone(),
        ([], [one]) => one.clone(),
        _ => "(follow)".to_string(),
    };
    Ok(vec![Input {
        name,
        kind: InputKind::Follow(follow),
    }])
}

/// Set when an input named on the command line could not be read: the run goes on with the
/// others and exits 2 at the end (GNU grep's and cut's behaviour). A process-wide flag
/// because the exit status is decided in `main`, far from input resolution.
static INPUT_ERRORS: AtomicBool = AtomicBool::new(false);

fn report_missing(name: &str, e: &io::Error) {
    let what = match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
        _ => e.to_string(),
    };
    report_unreadable(name, &what);
}

/// `grep -s`: no messages about unreadable inputs (the exit status still says so).
static NO_MESSAGES: AtomicBool = AtomicBool::new(false);

pub fn set_no_messages(yes: bool) {
    NO_MESSAGES.store(yes, Ordering::Relaxed);
}

/// Tells that (part of) an input could not be read, and makes the exit status 2.
fn report_unreadable(name: &str, what: &str) {
    if !NO_MESSAGES.load(Ordering::Relaxed) {
        eprintln!("logq: {name}: {what}");
    }
    INPUT_ERRORS.store(true, Ordering::Relaxed);
}

/// Opens a regular file once to find out now, not in the middle of the run, that it cannot
/// be read (permissions). Other kinds (FIFOs) are not opened: that would consume them.
fn check_readable(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    if meta.is_file() {
        File::open(path)?;
    }
    Ok(())
}

/// `--archive-stats`: report the object store requests at the end ([`report_archive_stats`]).
static ARCHIVE_STATS: AtomicBool = AtomicBool::new(false);

pub fn set_report_archive_stats(yes: bool) {
    ARCHIVE_STATS.store(yes, Ordering::Relaxed);
}

/// Prints the object store requests of the run on stderr, if `--archive-stats` asked.
pub fn report_archive_stats() {
    if ARCHIVE_STATS.load(Ordering::Relaxed) {
        s3::report_stats();
    }
}

/// Whether some named input could not be read (the exit status must then be 2).
pub fn had_input_errors() -> bool {
    INPUT_ERRORS.load(Ordering::Relaxed)
}

/// A directory that is a category's archive (`<data>/<cat>/` holding `<cat>_NNNNN` files),
/// read as `--category` reads it: each rotated file once, in write order, the current one
/// last, without the `_current` link (the newest file again) or a compressor's `.gz.tmp`.
fn category_files(dir: &Path) -> Option<Vec<Input>> {
    let name = dir.file_name()?.to_str()?;
    let cat = Category::new(name.as_bytes()).ok()?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    let files = list_archive(parent, &cat).ok()?;
    if files.is_empty() {
        return None;
    }
    let shown = |f: &ArchiveFile| dir.join(f.path.file_name().unwrap_or_default());
    Some(
        files
            .into_iter()
            .map(|f| Input {
                name: shown(&f).display().to_string(),
                kind: InputKind::Archive(f),
            })
            .collect(),
    )
}

/// Files under `dir`, depth first, names sorted so that the order is stable across runs.
fn walk_dir(dir: &Path, out: &mut Vec<Input>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        // Symlinks are followed (like `grep -R`); a dangling one is reported and skipped.
        let ft = match std::fs::metadata(&path) {
            Ok(m) => m.file_type(),
            Err(e) => {
                report_missing(&path.display().to_string(), &e);
                continue;
            }
        };
        if ft.is_dir() {
            match category_files(&path) {
                Some(files) => out.extend(files),
                None => walk_dir(&path, out)?,
            }
        } else if ft.is_file() {
            if let Err(e) = File::open(&path) {
                report_missing(&path.display().to_string(), &e);
                continue;
            }
            out.push(Input {
                name: path.display().to_string(),
                kind: InputKind::Path(path),
            });
        }
    }
    Ok(())
}

/// The categories a name or glob selects ([`CategoryGlob`], the syntax tailgate's
/// subscriptions take too). A plain name must be a valid category (hostile names like `../x`
/// are refused by `Category`); a glob matches the directory names under the data dir that are
/// valid categories, sorted.
pub fn matching_categories(data_dir: &Path, pattern: &str) -> Result<Vec<Category>> {
    let glob = CategoryGlob::new(pattern).map_err(|e| {
        let what = if matches!(e, GlobError::Name(_)) {
            "name"
        } else {
            "glob"
        };
        anyhow::Error::new(e).context(format!("invalid category {what} {pattern:?}"))
    })?;
    if let Some(cat) = glob.as_category() {
        return Ok(vec![cat.clone()]);
    }
    let mut cats = scribe_archive::layout::list_categories(data_dir)
        .with_context(|| format!("reading data dir {}", data_dir.display()))?;
    cats.retain(|cat| glob.matches(cat.as_str()));
    if cats.is_empty() {
        bail!(
            "no category under {} matches {pattern:?}",
            data_dir.display()
        );
    }
    Ok(cats)
}
