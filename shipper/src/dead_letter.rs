//! Lines the aggregator can never accept: longer than the longest message it takes (which a
//! scribed says when ship connects; over Thrift, `--max-frame` stands for it). Retrying such a
//! line would hold up every line behind it for ever, so the connection takes it out of its
//! batch (`scribe_protocol::split`) and hands it here, before the rest of the batch is sent:
//!
//! - it is reported at once on stderr: where it came from, its size, the limit;
//! - with a dead-letter directory (`--dead-letter DIR`; follow and run modes default to
//!   `STATE/dead-letter`), it is appended to `DIR/<category>` in the archive's framing and
//!   fsynced before its batch counts as delivered, so `ship CATEGORY < DIR/CATEGORY` replays
//!   it once the aggregator takes such lines;
//! - it is counted: the mode exits 1 at the end if any line was reported and not kept.
//!
//! A batch sent again (after a lost connection) hands the same lines over again; lines with
//! ids seen lately are not reported or kept twice (`OversizeSink` remembers them).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use scribe_archive::{Category, DeadLetter};
use scribe_protocol::split::{Oversize, OversizeSink};
use scribe_protocol::ProducerId;

/// Says where a line came from, for the report ("line at byte offset 120 of standard input").
pub type Describe = Arc<dyn Fn(&Oversize) -> String + Send + Sync>;

/// ship's policy for lines too long for the aggregator, and its counts.
#[derive(Debug)]
pub struct Oversized {
    dead: Option<Arc<DeadLetter>>,
    reported: AtomicU64,
    kept: AtomicU64,
}

impl Oversized {
    /// `dead_letter`: where to keep such lines (`None`: report them only).
    pub fn new(dead_letter: Option<PathBuf>) -> Arc<Oversized> {
        Arc::new(Oversized {
            dead: dead_letter.map(|d| Arc::new(DeadLetter::new(d))),
            reported: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        })
    }

    /// The sink a connection hands such lines to.
    pub fn sink(self: &Arc<Self>, describe: Describe) -> OversizeSink {
        let this = self.clone();
        OversizeSink::new(move |o| {
            let (this, describe) = (this.clone(), describe.clone());
            Box::pin(async move { this.take(o, &*describe).await })
        })
    }

    async fn take(
        &self,
        o: Oversize,
        describe: &(dyn Fn(&Oversize) -> String + Send + Sync),
    ) -> Result<(), String> {
        let what = format!(
            "{} is {} bytes, longer than {} takes ({} bytes)",
            describe(&o),
            o.message.len(),
            o.server,
            o.limit
        );
        let Some(dead) = self.dead.clone() else {
            self.reported.fetch_add(1, Ordering::AcqRel);
            tracing::error!("{what}: not delivered (--dead-letter DIR keeps such lines)");
            return Ok(());
        };
        // ship's categories were valid when the line was batched.
        let category = Category::new(&o.category).map_err(|e| e.to_string())?;
        let message = o.message.clone();
        let path = tokio::task::spawn_blocking(move || dead.append(&category, &message))
            .await
            .map_err(|e| format!("dead-letter task: {e}"))?
            .map_err(|e| e.to_string())?;
        self.reported.fetch_add(1, Ordering::AcqRel);
        self.kept.fetch_add(1, Ordering::AcqRel);
        tracing::warn!("{what}: kept in {}", path.display());
        Ok(())
    }

    /// Lines reported so far.
    pub fn reported(&self) -> u64 {
        self.reported.load(Ordering::Acquire)
    }

    /// Lines reported and kept in the dead-letter directory.
    pub fn kept(&self) -> u64 {
        self.kept.load(Ordering::Acquire)
    }

    /// Lines reported and not kept anywhere.
    pub fn lost(&self) -> u64 {
        self.reported().saturating_sub(self.kept())
    }

    /// Why the run must exit 1, if it must: lines reported and not kept.
    pub fn failure(&self) -> Option<String> {
        match self.lost() {
            0 => None,
            n => Some(format!(
                "{n} line(s) longer than the aggregator takes were not delivered (reported \
                 above); give --dead-letter DIR to keep such lines and go on"
            )),
        }
    }

    /// A line for the end of a run that kept every such line (else [`Self::failure`] says it).
    pub fn summary(&self) -> Option<String> {
        let kept = self.kept();
        let dir = self.dead.as_ref()?.dir().display();
        (kept > 0 && self.lost() == 0)
            .then(|| format!("{kept} line(s) longer than the aggregator takes kept in {dir}"))
    }
}

/// For standard input: the line's byte offset in the stream (its entry id's start).
pub fn describe_stdin() -> Describe {
    Arc::new(|o: &Oversize| match o.id {
        Some(id) => format!("line at byte offset {} of standard input", id.start),
        None => "a line of standard input".to_string(),
    })
}

/// Which file each followed file generation's producer id stands for, so a report can name
/// the file (the follow thread keeps it, one entry per generation it is reading).
#[derive(Debug, Clone, Default)]
pub struct FileNames(Arc<Mutex<HashMap<ProducerId, PathBuf>>>);

impl FileNames {
    pub fn insert(&self, producer: ProducerId, path: PathBuf) {
        self.map().insert(producer, path);
    }

    pub fn remove(&self, producer: &ProducerId) {
        self.map().remove(producer);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ProducerId, PathBuf>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// For followed files: the file and the line's byte offset in it.
pub fn describe_followed(names: FileNames) -> Describe {
    Arc::new(move |o: &Oversize| {
        let file = o.id.and_then(|id| names.map().get(&id.producer).cloned());
        match (o.id, file) {
            (Some(id), Some(file)) => {
                format!("line at byte offset {} of {}", id.start, file.display())
            }
            // The file was closed since: its category and offset still say where to look.
            _ => describe_stream("followed file")(o),
        }
    })
}

/// For lines without a file to name (a command's output): the category and stream offset.
pub fn describe_stream(what: &'static str) -> Describe {
    Arc::new(move |o: &Oversize| {
        let category = String::from_utf8_lossy(&o.category);
        match o.id {
            Some(id) => format!("{what} line for {category} at byte offset {}", id.start),
            None => format!("{what} line for {category}"),
        }
    })
}
