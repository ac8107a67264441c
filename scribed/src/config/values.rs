//! Config values that accept a friendly spelling, and the parsers of a file store's enumerated
//! strings. Sizes (`64M` or a byte count) and durations (`1s`, `500ms`, `2h`, or a number of
//! seconds) are `scribe-cli`'s, shared with ship's config file. The string parsers live here,
//! not in the file store, so validating a config never reaches into a store; the store reads
//! its spec through the same functions.

use scribe_archive::{Fsync, RotatePeriod};
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use scribe_cli::{Dur, Size};

/// A network store's `protocol`: `auto`, `native` or `thrift`.
pub fn protocol<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<scribe_protocol::client::Protocol>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(de::Error::custom)
}

/// A file store's `rotate_period`, in Scribe's syntax: `never`, `hourly`, `daily`, or `N` with an
/// optional unit (`"30m"`; no unit: seconds).
pub fn parse_rotate_period(s: &str) -> Result<RotatePeriod, String> {
    RotatePeriod::parse(s).map_err(|e| e.to_string())
}

/// A file store's `fsync`: `never`, `batch`, or an interval such as `1s`.
pub fn parse_fsync(s: &str) -> Result<Fsync, String> {
    match s {
        "never" => Ok(Fsync::Never),
        "batch" => Ok(Fsync::Batch),
        other => humantime::parse_duration(other)
            .ok()
            .filter(|d| !d.is_zero())
            .map(Fsync::Interval)
            .ok_or_else(|| format!("{other:?} is not `never`, `batch` or an interval like \"1s\"")),
    }
}
