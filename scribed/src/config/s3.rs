//! `[store.s3]` of a file store: copy every closed file to an S3-API bucket
//! (docs/config.md, "Object-store archive"). Checked here; run by `stores::upload`.

use serde::Deserialize;

use super::locate::KeyError;
use super::values::{Dur, Size};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Spec {
    pub bucket: String,
    /// Key prefix inside the bucket (default: none).
    #[serde(default)]
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server; default `AWS_ENDPOINT_URL`, the AWS
    /// profile's `endpoint_url`, else AWS.
    pub endpoint: Option<String>,
    /// Default `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    /// This aggregator's name in every object key; unique among the aggregators that write
    /// the bucket.
    pub aggregator_id: String,
    /// Multipart part size (default 8M, at least 5M); files up to it go in one PUT.
    pub part_size: Option<Size>,
    /// Parts uploaded at once (default 2).
    pub parts_in_flight: Option<usize>,
    /// Longest pause between retries while the store fails (default 30s).
    pub retry_max: Option<Dur>,
}

/// Checks what serde cannot; `at` is the block's key path (`store[1].s3`).
pub fn validate(s: &S3Spec, at: &str) -> Result<(), KeyError> {
    let bad = |key: &str, problem: String| Err(KeyError::new(format!("{at}.{key}"), problem));
    if !cfg!(feature = "s3") {
        return bad(
            "bucket",
            "this scribed was built without the `s3` feature".into(),
        );
    }
    #[cfg(feature = "s3")]
    {
        if let Err(e) = scribe_objstore::S3Location::from_url(&format!("s3://{}", s.bucket)) {
            return bad("bucket", e.to_string());
        }
        if let Err(e) = scribe_objstore::layout::check_aggregator_id(&s.aggregator_id) {
            return bad("aggregator_id", e);
        }
        if let Some(p) = s
            .part_size
            .filter(|p| p.0 < scribe_objstore::upload::MIN_PART_SIZE as u64 || p.0 > 1 << 30)
        {
            return bad(
                "part_size",
                format!("{} bytes is out of range (5M to 1G)", p.0),
            );
        }
    }
    if let Some(e) = &s.endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return bad(
                "endpoint",
                format!("{e:?} must start with http:// or https://"),
            );
        }
    }
    if s.parts_in_flight.is_some_and(|n| n == 0 || n > 64) {
        return bad("parts_in_flight", "must be 1 to 64".into());
    }
    if s.retry_max.is_some_and(|d| d.0.is_zero()) {
        return bad("retry_max", "must be more than 0".into());
    }
    Ok(())
}
