//! Where the archive lives: a bucket on an S3-API object store, and how to reach it.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{explain, Error};
use crate::layout::clean_prefix;

/// A bucket, a key prefix, and how to reach them. Credentials are never part of it: they come
/// from the environment and the shared AWS files the way AWS tools take them
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `~/.aws/credentials`
/// and `~/.aws/config` under `AWS_PROFILE`, web identity, ECS task roles, EC2 instance
/// metadata); see [`S3Location::builder`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible server; `None`: AWS (or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// `None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers need;
    /// otherwise virtual-hosted style (`bucket.endpoint/key`).
    pub path_style: bool,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`.
    pub fn from_url(url: &str) -> Result<S3Location, Error> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Config(format!("{url:?} is not an s3://bucket/prefix URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: clean_prefix(prefix),
            ..S3Location::default()
        })
    }

    /// The client for this location. Requests are signed with the credentials of the usual
    /// AWS chain (environment first); plain `http://` endpoints are allowed (loopback test
    /// servers, private networks). Retries of one request stay short (3 retries, 20 s), so
    /// an outage reaches the caller, whose own retry loop backs off and counts it.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, Error> {
        let store = self
            .builder()?
            .build()
            .map_err(|e| Error::Config(explain(&e)))?;
        Ok(Arc::new(store))
    }

    /// The client's builder as [`Self::build`] configures it, for callers that add to it
    /// (credentials given explicitly, as tests do).
    ///
    /// Settings come, first found first: this location's own fields; the environment
    /// (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...); the shared AWS files'
    /// profile ([`crate::profile`]: static keys, `region`, `endpoint_url`); then `us-east-1`
    /// and AWS's own endpoints. Without keys in the environment or a profile, the
    /// environment's web identity or container credentials are used, else the instance
    /// metadata service.
    pub fn builder(&self) -> Result<AmazonS3Builder, Error> {
        check_bucket(&self.bucket)?;
        let profile = crate::profile::load()?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        let env_keys = b
            .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
            .is_some();
        if let (false, Some(k), Some(s)) =
            (env_keys, &profile.access_key_id, &profile.secret_access_key)
        {
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = &profile.session_token {
                b = b.with_token(t);
            }
        }
        if let Some(e) = self.resolved_endpoint(&profile) {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "endpoint {e:?} must start with http:// or https://"
                )));
            }
            b = b
                .with_endpoint(&e)
                .with_allow_http(e.starts_with("http://"));
        }
        let region = self
            .region
            .clone()
            .or_else(|| env_var("AWS_REGION"))
            .or_else(|| env_var("AWS_DEFAULT_REGION"))
            .or(profile.region)
            .unwrap_or_else(|| "us-east-1".into());
        Ok(b.with_region(region))
    }

    /// The endpoint requests go to: this location's, else `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`,
    /// else the profile's `endpoint_url`; `None`: AWS S3.
    pub fn endpoint(&self) -> Result<Option<String>, Error> {
        Ok(self.resolved_endpoint(&crate::profile::load()?))
    }

    fn resolved_endpoint(&self, profile: &crate::profile::Profile) -> Option<String> {
        self.endpoint
            .clone()
            .or_else(|| env_var("AWS_ENDPOINT_URL"))
            .or_else(|| env_var("AWS_ENDPOINT"))
            .or_else(|| profile.endpoint_url.clone())
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A set, non-empty environment variable.
fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// S3's bucket naming rules, loosely: 3–63 bytes of lowercase letters, digits, `.` and `-`.
fn check_bucket(bucket: &str) -> Result<(), Error> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "bucket {bucket:?} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let l = S3Location::from_url("s3://logs/a/b/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("logs", "a/b"));
        assert_eq!(l.url(), "s3://logs/a/b");
        assert_eq!(S3Location::from_url("s3://logs").unwrap().prefix, "");
        for bad in ["logs/a", "s3://", "s3://Logs/a", "s3://a/b"] {
            assert!(S3Location::from_url(bad).is_err(), "{bad}");
        }
    }
}
