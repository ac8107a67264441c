//! `--archive s3://bucket/prefix`: categories read from the object-store archive scribed
//! uploads to (`scribe_objstore`), as inputs like any other, so every command works on them.
//!
//! Order: for each `--category` (a glob's matches sorted), each aggregator's objects (ids
//! sorted), each in write order: what logq gives for the aggregators' local category
//! directories named one after the other. Objects whose keys show they cannot hold a line
//! in `--since`/`--until` are dropped before anything is fetched; the rest are fetched a few
//! ahead of the one being read, each with a bounded read-ahead.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use scribe_archive::category::CategoryGlob;
use scribe_objstore::read::{Bucket, Fetcher, Window};
use scribe_objstore::S3Location;

use super::{Input, InputKind};

/// Objects being fetched beyond the one being read.
const AHEAD: usize = 4;

/// How far a line's time may be from its arrival: as logq's own file skipping allows.
const SLACK: i64 = 3600;

/// One object of the archive, read through the run's [`Fetcher`].
#[derive(Debug, Clone)]
pub struct ObjectInput {
    fetcher: Arc<Fetcher>,
    index: usize,
    size: u64,
    stream: String,
}

impl ObjectInput {
    /// Its size in the bucket (gzip).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `<category>/<aggregator>`: the objects of one stream, for `--merge`.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The object's (compressed) bytes as they arrive.
    pub fn open(&self) -> Box<dyn std::io::Read + Send> {
        Box::new(self.fetcher.open(self.index))
    }
}

/// The bucket of this run, for `--archive-stats`.
static BUCKET: Mutex<Option<Arc<Bucket>>> = Mutex::new(None);

/// Lists the categories' objects in the archive at `url`, pruned to `(since, until)`.
pub fn resolve(
    url: &str,
    categories: &[String],
    (since, until): (Option<i64>, Option<i64>),
) -> Result<Vec<Input>> {
    let mut location = S3Location::from_url(url).map_err(anyhow::Error::msg)?;
    // Servers other than AWS (MinIO, SeaweedFS, Ceph, R2) mostly want path-style requests.
    let endpoint = location.endpoint().map_err(anyhow::Error::msg)?;
    location.path_style = endpoint.is_some_and(|e| !e.contains(".amazonaws.com"));
    let bucket = Arc::new(Bucket::connect(&location).map_err(anyhow::Error::msg)?);
    *BUCKET.lock().unwrap_or_else(PoisonError::into_inner) = Some(bucket.clone());
    let window = Window {
        since,
        until,
        slack: SLACK,
    };
    let all = ["*".to_string()];
    let patterns = if categories.is_empty() {
        &all[..]
    } else {
        categories
    };
    let mut listed = Vec::new();
    let mut in_bucket = None;
    for pattern in patterns {
        let glob = CategoryGlob::new(pattern)
            .with_context(|| format!("invalid category name or glob {pattern:?}"))?;
        let cats = match glob.as_category() {
            Some(c) => vec![c.clone()],
            None => {
                if in_bucket.is_none() {
                    in_bucket = Some(bucket.categories().map_err(anyhow::Error::msg)?);
                }
                let mut cats = in_bucket.clone().unwrap_or_default();
                cats.retain(|c| glob.matches(c.as_str()));
                if cats.is_empty() {
                    anyhow::bail!("no category under {url} matches {pattern:?}");
                }
                cats
            }
        };
        for cat in cats {
            let objects = bucket.list(&cat, &window).map_err(anyhow::Error::msg)?;
            if objects.is_empty() {
                crate::output::warn(&format!(
                    "category {cat} has no objects under {url}{}",
                    if since.is_none() && until.is_none() {
                        ""
                    } else {
                        " in that time range"
                    }
                ));
            }
            listed.extend(objects);
        }
    }
    let fetcher = Arc::new(bucket.fetcher(&listed, AHEAD));
    Ok(listed
        .into_iter()
        .enumerate()
        .map(|(index, o)| Input {
            name: format!("s3://{}/{}", location.bucket, o.key),
            kind: InputKind::Object(ObjectInput {
                fetcher: fetcher.clone(),
                index,
                size: o.size,
                stream: format!("{}/{}", o.name.category, o.name.aggregator),
            }),
        })
        .collect())
}

/// `--archive-stats`: what the run asked of the object store, on stderr.
pub fn report_stats() {
    let bucket = BUCKET
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(b) = bucket {
        let (listings, gets, bytes) = b.stats().snapshot();
        eprintln!(
            "logq: {}: {listings} listings, {gets} GETs, {bytes} bytes fetched",
            b.location().url()
        );
    }
}
