//! The crate's errors, each phrased with its cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work (bucket name, endpoint, aggregator id).
    #[error("{0}")]
    Config(String),
    /// The object store refused or failed a request; the text names the cause.
    #[error("{op} {key}: {reason}")]
    Store {
        op: &'static str,
        key: String,
        reason: String,
    },
    /// An object of this key exists and is not this file (an aggregator id reused after its
    /// local archive was lost?): never overwritten, the file is kept locally.
    #[error("{key} already exists with {existing} bytes, but the local file gives {local}: is another aggregator using this aggregator id?")]
    Conflict {
        key: String,
        existing: u64,
        local: u64,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Archive(#[from] scribe_archive::WriteError),
}

impl Error {
    pub(crate) fn store(op: &'static str, key: &str, e: &object_store::Error) -> Error {
        Error::Store {
            op,
            key: key.to_string(),
            reason: explain(e),
        }
    }
}

/// An error and its chain of causes on one line, with the S3 error codes that tell the
/// common mistakes apart spelled out.
pub fn explain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = s.source();
    }
    let hint = [
        // The instance metadata service is the chain's last resort: reaching it (and
        // failing) means nothing else gave credentials.
        (
            "latest/api/token",
            "no credentials: none in the environment (AWS_ACCESS_KEY_ID, ...) or the AWS profile files, and no instance metadata service answered",
        ),
        ("NoSuchBucket", "the bucket does not exist"),
        (
            "InvalidAccessKeyId",
            "the access key is not known to the store",
        ),
        ("SignatureDoesNotMatch", "the secret key is wrong"),
        (
            "RequestTimeTooSkewed",
            "this machine's clock is off from the store's",
        ),
        ("AccessDenied", "the credentials may not do this"),
        ("error sending request", "the endpoint cannot be reached"),
        ("Connection refused", "nothing listens at the endpoint"),
    ]
    .iter()
    .find(|(code, _)| text.contains(code));
    let mut text = text.replace('\n', " ");
    if let Some((_, h)) = hint {
        text = format!("{h} ({text})");
    }
    text
}
