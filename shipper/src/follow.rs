//! `ship --follow`: the thread that follows files and turns their lines into batches.
//!
//! One OS thread owns the [`Follower`] (from `scribe-follow`), the glob discovery, the
//! multiline joiners and the batch being built. It loops: apply the commits the outbox handed
//! back (saving checkpoints), re-scan globs when due, poll every followed file, send full
//! batches, then sleep until a change notification or the poll interval. Sending blocks when
//! the outbox is full — that is the backpressure that stops reading while the aggregator is
//! down and the spool is full: unread lines wait in the files. While it waits, the thread
//! still looks at the files (their sizes, not their lines), so a file deleted before it could
//! be read is counted as vanished with what it held.
//!
//! Each batch carries the file offsets its lines end at; they are committed only when the
//! outbox says the batch is safe (acknowledged, or fsynced into the spool). Checkpoints are
//! saved without fsync once [`SAVE_EVERY`] batches were committed since the last save, or
//! [`SAVE_AFTER`] after a commit (so `kill -9` repeats at most the batches read and not yet
//! acknowledged: `--window` in flight, [`HANDOVER`] waiting for the outbox, and those of one
//! read of at most 4 MiB; plus at most `SAVE_EVERY` acknowledged batches not saved yet) and
//! with fsync every second and at exit. Not after every commit: replacing the positions file
//! (a rename over the old one) took 3-25 ms on ext4 while the aggregator wrote, which kept the
//! thread from reading for a third of a `--follow` run (docs/benchmarks.md).
//!
//! Every line carries an id: the producer id derived from this ship's id and the file's
//! stream nonce (kept in the checkpoint), and the line's byte range in the file. A restarted
//! ship reads again from the checkpoint and sends the same bytes under the same ids, so the
//! lines it repeats are recognised by the aggregator instead of written twice. For that the
//! nonce of a new file must be on disk before any of its lines leaves: batches made during a
//! poll wait until the positions (with any new nonce) are saved with fsync.
//!
//! A positions file that cannot be saved (a full disk) stops nothing but new files: the save is
//! tried again at every turn of the loop (logged once until it works), and batches holding
//! lines of a new stream nonce wait for it — meanwhile no file is read, so the files are the
//! buffer. Lines of files whose nonce is on disk go on: a stale positions file only makes a
//! restart send lines again under the same ids.
//!
//! [`ship_files`] is the whole mode: this thread and the outbox, until a shutdown; then a
//! bounded grace for what was read to be delivered, and the final positions.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use scribe_archive::Category;
use scribe_follow::{
    Checkpoints, Event, FileId, FollowOptions, FollowStats, Follower, Globs, Waker,
};
use scribe_protocol::ProducerId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{BatchBuf, BatchLimits};
use crate::dead_letter::FileNames;
use crate::lines;
use crate::multiline::{Joiner, MultilineRule, Record};
use crate::outbox::{self, Batch, OutboxError, OutboxOptions, OutboxReport};
use crate::template::CategoryTemplate;

mod batcher;
use batcher::Batcher;

/// Maps keyed by the follower's file ids, looked up for every line: a fast hash (the ids are
/// this process's own counters, nothing a peer chooses).
type FileIdMap<V> = HashMap<FileId, V, foldhash::fast::RandomState>;

/// Offsets to commit once a batch is safe: for each file, the end of its last line in it.
pub type Commits = Vec<(FileId, u64)>;

/// One `[[follow]]` entry: which files, under which category.
#[derive(Debug, Clone)]
pub struct FollowEntry {
    pub globs: Globs,
    pub category: CategoryTemplate,
    pub from_beginning: bool,
    pub multiline: Option<MultilineRule>,
}

#[derive(Debug, Clone)]
pub struct FollowSettings {
    pub entries: Vec<FollowEntry>,
    /// The positions file.
    pub positions: PathBuf,
    pub poll_interval: Duration,
    /// Use change notifications (inotify) to poll sooner.
    pub notify: bool,
    /// How often globs are expanded again to find new files.
    pub rescan_interval: Duration,
    pub limits: BatchLimits,
    /// This ship's producer id (see [`crate::batch::load_producer_id`]).
    pub producer: ProducerId,
    /// Filled with the file each producer id stands for (for reports of over-long lines).
    pub names: FileNames,
}

/// What a follow run did: the follower's counters and the outbox's.
#[derive(Debug)]
pub struct FollowReport {
    pub follow: FollowStats,
    pub outbox: OutboxReport,
    /// Why delivery stopped for good, if it did (then ship exits 1).
    pub failed: Option<OutboxError>,
}

/// The counters, as `ship` prints them at exit (`lines=... retries=...`).
impl fmt::Display for FollowReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, r) = (&self.follow, &self.outbox);
        write!(
            f,
            "lines={} bytes={} rotations={} truncations={} truncated_unread_bytes={} \
             vanished={} vanished_unread_bytes={} long_lines={} delivered={} spooled={} \
             replayed={} retries={} disk_full={}",
            s.lines,
            s.bytes,
            s.rotations,
            s.truncations,
            s.truncated_unread,
            s.vanished,
            s.vanished_unread,
            s.long_lines,
            r.lines_delivered,
            r.lines_spooled,
            r.lines_replayed,
            r.retries,
            r.disk_full,
        )
    }
}

/// Follows `settings`' files and delivers their lines through an outbox until `shutdown` is
/// cancelled or delivery fails for good. Then it stops reading, lets what was read be
/// delivered (or spooled) for at most `grace`, commits what was acknowledged, and saves the
/// positions. An error is returned only when following itself failed (positions, thread).
pub async fn ship_files(
    settings: FollowSettings,
    outbox: OutboxOptions,
    grace: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<FollowReport> {
    // HANDOVER batches wait beside the window, so the thread reads the next lines while the
    // outbox sends (with one, reading and sending took turns: `--follow` ran at 0.4x stdin).
    let (batches_tx, batches_rx) = mpsc::channel(HANDOVER);
    let (commits_tx, commits_rx) = std_mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let tail = spawn(settings, batches_tx, commits_rx, stop.clone())?;

    let mut report = OutboxReport::default();
    let ended = {
        let sent = outbox::run(
            batches_rx,
            move |c| {
                let _ = commits_tx.send(c);
            },
            outbox,
            &mut report,
        );
        tokio::pin!(sent);
        let ended = tokio::select! {
            r = &mut sent => Some(r),
            _ = shutdown.cancelled() => None,
        };
        stop.store(true, Ordering::Release);
        match ended {
            Some(r) => Some(r),
            // Let what was read be delivered (bounded): the follow thread stops and closes
            // the outbox's input; acknowledged batches commit their offsets. Past the
            // deadline the outbox is dropped, which closes the commit channel and lets the
            // thread save what was committed.
            None => tokio::time::timeout(grace, &mut sent).await.ok(),
        }
    };
    let follow = tokio::task::spawn_blocking(move || tail.join())
        .await
        .context("follow thread")?
        .map_err(|_| anyhow::anyhow!("the follow thread panicked"))??;
    Ok(FollowReport {
        follow,
        outbox: report,
        failed: ended.and_then(Result::err),
    })
}

/// Batches handed over to the outbox and not yet sent, beside its window. With the batches in
/// the window and those of one read (at most `max_read_bytes`), the bound on what a `kill -9`
/// sends again: read, and not yet acknowledged (docs/ship.md, "Checkpoints").
pub const HANDOVER: usize = 4;

/// Committed batches after which the positions are saved (without fsync), whatever the time:
/// with `--window`, [`HANDOVER`] and one read, what a `kill -9` can send again.
pub const SAVE_EVERY: usize = 16;

/// How long committed offsets may wait for a save when fewer than [`SAVE_EVERY`] batches
/// came (a trickle): they are saved at the first turn of the loop after this.
pub const SAVE_AFTER: Duration = Duration::from_millis(100);

/// What a followed path maps to.
struct Target {
    category: Category,
    entry: usize,
}

struct Tail {
    settings: FollowSettings,
    follower: Follower,
    targets: HashMap<PathBuf, Target>,
    joiners: HashMap<PathBuf, Joiner>,
    /// Glob matches skipped because they are a followed file under its rotated name, with
    /// the (device, inode) they had: skipped for as long as that file stays there.
    skipped: HashMap<PathBuf, (u64, u64)>,
    waker: Waker,
    batcher: Batcher,
    /// The last save of the positions failed: it is tried again at every turn.
    save_failing: bool,
    /// New stream nonces are not on disk yet (`Follower::has_unsaved_streams` was cleared by
    /// the save that failed): the ready batches wait for a durable save.
    nonces_unsaved: bool,
    /// Batches committed since the positions were last saved.
    unsaved_commits: usize,
    /// When the positions were last saved (or tried), for [`SAVE_AFTER`].
    last_save: Instant,
}

/// Starts following; returns the thread, which ends after `stop` is set and the commit
/// channel closed (the outbox finished), having saved the final checkpoints.
pub fn spawn(
    settings: FollowSettings,
    out: mpsc::Sender<Batch<Commits>>,
    commits: std_mpsc::Receiver<Commits>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<FollowStats>>> {
    let checkpoints = Checkpoints::load(&settings.positions).with_context(|| {
        format!(
            "loading positions (move {} away to start over)",
            settings.positions.display()
        )
    })?;
    let opts = FollowOptions {
        max_line_bytes: settings.limits.max_line + 1,
        // Whole lines read together come as one run, and go out as one (`Batcher::add_lines`).
        line_runs: true,
        ..FollowOptions::default()
    };
    let waker = if settings.notify {
        Waker::notifying(settings.poll_interval).unwrap_or_else(|e| {
            tracing::warn!("{e}; polling only");
            Waker::polling(settings.poll_interval)
        })
    } else {
        Waker::polling(settings.poll_interval)
    };
    let batcher = Batcher {
        builder: BatchBuf::with_runs(&settings.limits),
        limits: settings.limits.clone(),
        out,
        commits: FileIdMap::default(),
        ready: Vec::new(),
        producer: settings.producer,
        streams: FileIdMap::default(),
        names: settings.names.clone(),
        closed: false,
        runtime: tokio::runtime::Handle::try_current().ok(),
        look_every: settings.poll_interval.max(Duration::from_millis(10)),
    };
    let mut tail = Tail {
        follower: Follower::with_checkpoints(opts, &checkpoints),
        settings,
        targets: HashMap::new(),
        joiners: HashMap::new(),
        skipped: HashMap::new(),
        waker,
        batcher,
        save_failing: false,
        nonces_unsaved: false,
        unsaved_commits: 0,
        last_save: Instant::now(),
    };
    // Files found now, before the first poll, existed before this run: they start at their
    // end unless asked otherwise (or a checkpoint says where).
    tail.discover();
    let handle = std::thread::Builder::new()
        .name("ship-follow".into())
        .spawn(move || tail.run(commits, stop))
        .context("starting the follow thread")?;
    Ok(handle)
}

impl Tail {
    fn run(
        mut self,
        commits: std_mpsc::Receiver<Commits>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<FollowStats> {
        let positions = self.settings.positions.clone();
        let mut last_durable = Instant::now();
        let mut last_scan = Instant::now();
        while !stop.load(Ordering::Acquire) && !self.batcher.closed {
            self.unsaved_commits += self.apply_commits(&commits);
            if self.save_due() {
                self.save(&positions, &mut last_durable);
            }
            if last_scan.elapsed() >= self.settings.rescan_interval {
                self.discover();
                last_scan = Instant::now();
            }
            // Batches waiting for their nonces to be saved: read nothing more meanwhile.
            let mut pending = false;
            if self.batcher.ready.is_empty() {
                pending = self.poll().pending;
                self.expire_joiners(Instant::now());
                self.batcher.flush();
            }
            self.send_ready(&positions, &mut last_durable);
            if !pending {
                self.waker.wait();
            }
        }
        // Stop reading; hand over what was read, and keep applying commits until the outbox
        // is done with it (or gave up), then save for good.
        let pending: Vec<(PathBuf, Record)> = self
            .joiners
            .iter_mut()
            .filter_map(|(p, j)| Some((p.clone(), j.take()?)))
            .collect();
        for (path, r) in pending {
            self.add_record(&path, r);
        }
        self.batcher.flush();
        self.send_ready(&positions, &mut last_durable);
        let Tail {
            mut follower,
            batcher,
            ..
        } = self;
        drop(batcher);
        for c in commits.iter() {
            commit(&mut follower, c);
        }
        match follower.checkpoints().save(&positions) {
            Ok(()) => {}
            // Nothing is lost: the next start sends again what was committed since the last
            // save, under the same ids (the nonces were saved before their lines left).
            Err(e) if crate::disk::is_disk_full(&e) => tracing::warn!(
                "saving positions at exit: {e}; the next start resends lines since the last \
                 save, which the aggregator recognises"
            ),
            Err(e) => return Err(e).context("saving positions"),
        }
        Ok(follower.stats().clone())
    }

    /// Expands every entry's globs and starts following new paths.
    fn discover(&mut self) {
        let mut seen: HashSet<PathBuf> = HashSet::new();
        for (i, entry) in self.settings.entries.iter().enumerate() {
            for root in entry.globs.roots() {
                self.waker.watch_dir(&root);
            }
            for path in entry.globs.scan() {
                seen.insert(path.clone());
                if self.targets.contains_key(&path) {
                    continue;
                }
                if let Some(key) = file_key(&path) {
                    if self.skipped.get(&path) == Some(&key) {
                        continue;
                    }
                    if self.follower.is_following(key.0, key.1) {
                        // A followed file under its rotated name (a pattern matches both).
                        tracing::debug!(path = %path.display(), "skipping a rotated name");
                        self.skipped.insert(path, key);
                        continue;
                    }
                }
                let category = match entry.category.render(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "not followed: {e}");
                        self.skipped
                            .insert(path.clone(), file_key(&path).unwrap_or((0, 0)));
                        continue;
                    }
                };
                tracing::info!(path = %path.display(), %category, "following");
                if let Some(dir) = path.parent() {
                    self.waker.watch_dir(dir);
                }
                self.follower.watch_with(&path, entry.from_beginning);
                self.targets.insert(path, Target { category, entry: i });
            }
        }
        // Paths no pattern names any more, whose files are gone and fully committed.
        let gone: Vec<PathBuf> = self
            .targets
            .iter()
            .filter(|(p, _)| !seen.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            if self.follower.unwatch_if_idle(&p) {
                self.targets.remove(&p);
                self.joiners.remove(&p);
            }
        }
        self.skipped.retain(|p, key| file_key(p) == Some(*key));
    }

    fn poll(&mut self) -> scribe_follow::PollOutcome {
        let now = Instant::now();
        let Tail {
            follower,
            targets,
            joiners,
            batcher,
            settings,
            ..
        } = self;
        let max_line = settings.limits.max_line;
        let mut finished: Vec<PathBuf> = Vec::new();
        let targets = &*targets;
        // The target of the previous line: lines come file by file, and hashing the path of
        // every line showed in profiles.
        let mut last: Option<(&Path, &Target)> = None;
        let outcome = follower.poll(&mut |event| match event {
            Event::Line { .. } | Event::Lines { .. } => {
                let (path, file_id, stream, offset_after, bytes, count) = match event {
                    Event::Line {
                        path,
                        file_id,
                        stream,
                        offset_after,
                        bytes,
                    } => (path, file_id, stream, offset_after, bytes, None),
                    Event::Lines {
                        path,
                        file_id,
                        stream,
                        offset_after,
                        bytes,
                        count,
                    } => (path, file_id, stream, offset_after, bytes, Some(count)),
                    _ => return,
                };
                let target = match last {
                    Some((p, t)) if p == path => t,
                    _ => {
                        let Some((p, t)) = targets.get_key_value(path) else {
                            return;
                        };
                        last = Some((p, t));
                        t
                    }
                };
                let category = &target.category;
                match (settings.entries[target.entry].multiline.as_ref(), count) {
                    (Some(rule), _) => {
                        // The record a line joins is added later, without the event.
                        let mut start = offset_after - bytes.len() as u64;
                        batcher.note_stream(path, file_id, stream, start);
                        let j = joiners.entry(path.to_path_buf()).or_default();
                        for line in lines::split_lines(bytes) {
                            start += line.len() as u64;
                            if let Some(r) = j.push(rule, max_line, line, file_id, start, now) {
                                let at = (r.file_id, r.offset_after);
                                batcher.add(path, category, &r.bytes, at, None);
                            }
                        }
                    }
                    (None, None) => {
                        let at = (file_id, offset_after);
                        batcher.add(path, category, bytes, at, Some(stream));
                    }
                    (None, Some(count)) => {
                        let at = (file_id, offset_after);
                        batcher.add_lines(path, category, bytes, count, at, stream);
                    }
                }
            }
            Event::Truncated {
                path,
                offset,
                size,
                copy,
                new_file_id,
                new_stream,
                ..
            } => {
                finished.push(path.to_path_buf());
                batcher.note_stream(path, new_file_id, new_stream, 0);
                match copy {
                    Some(copy) => tracing::info!(
                        path = %path.display(),
                        copy = %copy.display(),
                        read = offset,
                        "file truncated in place (copytruncate): reading the rest from its copy, \
                         then the file again from the start"
                    ),
                    None => tracing::warn!(
                        path = %path.display(),
                        read = offset,
                        size,
                        "file truncated in place (copytruncate?) and no copy found: reading it \
                         again from the start; lines written after the last read and before the \
                         truncation are lost"
                    ),
                }
            }
            Event::Vanished {
                path,
                offset,
                file_id,
                unread,
            } => {
                finished.push(path.to_path_buf());
                batcher.forget_stream(file_id);
                tracing::warn!(
                    path = %path.display(),
                    read = offset,
                    unread,
                    "file deleted (or moved away) before it was read to its end: at least \
                     {unread} bytes lost"
                );
            }
            Event::Rotated { path, to, .. } => {
                tracing::info!(path = %path.display(), to = %to.display(), "rotated; draining the old file");
            }
            Event::Closed { path, file_id, .. } => {
                finished.push(path.to_path_buf());
                batcher.forget_stream(file_id);
            }
            Event::LineTooLong {
                path, offset, max, ..
            } => {
                tracing::warn!(path = %path.display(), offset, max, "line too long: skipped");
            }
            Event::Error { path, error } => tracing::warn!(path = %path.display(), "{error}"),
            Event::Opened {
                path,
                file_id,
                offset,
                stream,
            } => batcher.note_stream(path, file_id, stream, offset),
        });
        // A record never spans two files: send what a finished file left pending.
        for path in finished {
            if let Some(r) = self.joiners.get_mut(&path).and_then(Joiner::take) {
                self.add_record(&path, r);
            }
        }
        outcome
    }

    fn expire_joiners(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (path, j) in &mut self.joiners {
            let Some(rule) = self
                .targets
                .get(path)
                .and_then(|t| self.settings.entries[t.entry].multiline.as_ref())
            else {
                continue;
            };
            if let Some(r) = j.expire(rule, now) {
                done.push((path.clone(), r));
            }
        }
        for (path, r) in done {
            self.add_record(&path, r);
        }
    }

    fn add_record(&mut self, path: &Path, r: Record) {
        if let Some(target) = self.targets.get(path) {
            let at = (r.file_id, r.offset_after);
            self.batcher.add(path, &target.category, &r.bytes, at, None);
        }
    }

    /// Applies every commit handed back so far (one per batch); returns how many there were.
    fn apply_commits(&mut self, commits: &std_mpsc::Receiver<Commits>) -> usize {
        let mut n = 0;
        while let Ok(c) = commits.try_recv() {
            commit(&mut self.follower, c);
            n += 1;
        }
        n
    }

    /// Whether the positions should be saved now: a failed save is retried at every turn;
    /// commits are saved every [`SAVE_EVERY`] batches, or [`SAVE_AFTER`] after they came.
    fn save_due(&self) -> bool {
        self.save_failing
            || self.unsaved_commits >= SAVE_EVERY
            || (self.unsaved_commits > 0 && self.last_save.elapsed() >= SAVE_AFTER)
    }

    /// Sends the batches made since the last call, after saving the positions with fsync if
    /// a file got a new stream nonce (so its lines can never come back under another id). If
    /// that save fails, the batches wait for the next turn.
    fn send_ready(&mut self, positions: &Path, last_durable: &mut Instant) {
        if self.batcher.ready.is_empty() {
            return;
        }
        if self.follower.has_unsaved_streams() || self.nonces_unsaved {
            self.nonces_unsaved = !self.save_now(positions, true, last_durable);
            if self.nonces_unsaved {
                return;
            }
        }
        let Tail {
            batcher, follower, ..
        } = self;
        batcher.send_ready(&mut || follower.observe());
    }

    fn save(&mut self, positions: &Path, last_durable: &mut Instant) {
        let nonces = self.nonces_unsaved || self.follower.has_unsaved_streams();
        let durable = nonces || last_durable.elapsed() >= Duration::from_secs(1);
        let saved = self.save_now(positions, durable, last_durable);
        // A new nonce is on disk only after a durable save that worked; the follower forgets
        // it either way (`checkpoints()`), so it is remembered here.
        self.nonces_unsaved = nonces && !saved;
    }

    /// Saves the positions; false if that failed (said once until a save works again).
    fn save_now(&mut self, positions: &Path, durable: bool, last_durable: &mut Instant) -> bool {
        let cps = self.follower.checkpoints();
        self.last_save = Instant::now();
        let saved = if durable {
            *last_durable = Instant::now();
            cps.save(positions)
        } else {
            cps.save_unsynced(positions)
        };
        match saved {
            Ok(()) if std::mem::take(&mut self.save_failing) => {
                tracing::info!("positions saved again");
                self.unsaved_commits = 0;
                true
            }
            Ok(()) => {
                self.unsaved_commits = 0;
                true
            }
            Err(e) => {
                if !std::mem::replace(&mut self.save_failing, true) {
                    tracing::warn!(
                        "saving positions: {e}; trying again at every poll (until it works, \
                         lines of a file not recorded yet hold up reading; the others go on)"
                    );
                }
                false
            }
        }
    }
}

fn commit(follower: &mut Follower, commits: Commits) {
    for (id, offset) in commits {
        if let Err(e) = follower.commit(id, offset) {
            tracing::error!("{e}");
        }
    }
}

fn file_key(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    path.metadata().ok().map(|m| (m.dev(), m.ino()))
}
