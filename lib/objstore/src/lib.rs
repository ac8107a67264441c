//! The object-store archive: closed category files, copied once each to an S3-API bucket in
//! Hive partition layout ([`layout`]), where logq, DuckDB, Spark or Trino read them.
//!
//! - [`layout`]: object keys (`<prefix>/category=<cat>/dt=YYYY-MM-DD/hour=HH/<agg>-<file>.gz`).
//! - [`s3`]: a bucket and how to reach it ([`S3Location`]); [`profile`]: the shared AWS
//!   files (`~/.aws/credentials`, `~/.aws/config`).
//! - [`upload`]: the [`Uploader`], which scribed's file store runs beside its writers: every
//!   closed file (after its gzip, if the store compresses) becomes one immutable object,
//!   recorded in the category's upload ledger ([`scribe_archive::uploads`]) before local
//!   retention may delete it.
//! - [`read`]: reading it back (logq): listing by partition, pruning by time before any
//!   object is fetched, and fetching objects in parallel with a bounded read-ahead.

#![forbid(unsafe_code)]

mod error;
pub mod layout;
pub mod profile;
pub mod read;
pub mod s3;
pub mod upload;

pub use error::{explain, Error};
pub use s3::S3Location;
pub use upload::{UploadOptions, UploadStatus, Uploader};
