//! A file store's uploads to an object store (`[store.s3]`): the [`scribe_objstore::Uploader`]
//! beside its writers, and its backlog for `/metrics` and `/status`. Without the `s3` feature
//! a store never has one (the configuration is refused before).

use std::path::Path;
#[cfg(feature = "s3")]
use std::time::{Duration, SystemTime};

use crate::config::FileSpec;

/// Upload progress and backlog of a file store, as `/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadState {
    pub bucket: String,
    /// Closed files not in the bucket yet, their bytes, and the age of the oldest (seconds).
    pub backlog_files: u64,
    pub backlog_bytes: u64,
    pub oldest_backlog_seconds: u64,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub already_present: u64,
    pub failures: u64,
    pub last_error: Option<String>,
}

/// The running uploader of one file store, if it has `[store.s3]`.
#[derive(Default)]
pub struct StoreUploader {
    #[cfg(feature = "s3")]
    inner: Option<(scribe_objstore::Uploader, String)>,
}

impl StoreUploader {
    /// Starts uploading the closed files under `base` when `spec` has an `s3` block.
    pub fn start(spec: &FileSpec, base: &Path, name: &str) -> anyhow::Result<StoreUploader> {
        let Some(s3) = &spec.s3 else {
            return Ok(StoreUploader::default());
        };
        #[cfg(not(feature = "s3"))]
        {
            let _ = (s3, base);
            anyhow::bail!("{name}: s3: this scribed was built without the `s3` feature")
        }
        #[cfg(feature = "s3")]
        {
            use scribe_objstore::{S3Location, UploadOptions, Uploader};
            let location = S3Location {
                bucket: s3.bucket.clone(),
                prefix: scribe_objstore::layout::clean_prefix(&s3.prefix),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                path_style: s3.path_style,
            };
            let url = location.url();
            let mut o = UploadOptions::new(location, s3.aggregator_id.clone());
            if let Some(p) = s3.part_size {
                o.part_size = usize::try_from(p.0).unwrap_or(usize::MAX);
            }
            if let Some(n) = s3.parts_in_flight {
                o.parts_in_flight = n;
            }
            if let Some(d) = s3.retry_max {
                o.retry_max = d.0;
            }
            o.compressed = spec.compress;
            let up = Uploader::start(base.to_path_buf(), o)
                .map_err(|e| anyhow::anyhow!("{name}: s3: {e}"))?;
            tracing::info!("{name}: uploading closed files to {url}");
            Ok(StoreUploader {
                inner: Some((up, url)),
            })
        }
    }

    pub fn state(&self) -> Option<UploadState> {
        #[cfg(feature = "s3")]
        if let Some((up, url)) = &self.inner {
            let s = up.status();
            return Some(UploadState {
                bucket: url.clone(),
                backlog_files: s.backlog_files,
                backlog_bytes: s.backlog_bytes,
                oldest_backlog_seconds: s.oldest_backlog_age(SystemTime::now()),
                uploaded_files: s.uploaded_files,
                uploaded_bytes: s.uploaded_bytes,
                already_present: s.already_present,
                failures: s.failures,
                last_error: s.last_error,
            });
        }
        None
    }

    /// Lets an upload in progress finish (bounded) and stops.
    pub async fn stop(&self) {
        #[cfg(feature = "s3")]
        if let Some((up, _)) = &self.inner {
            up.stop(Duration::from_secs(10)).await;
        }
    }
}
