//! Config-file values in the spellings every config file of the pipeline accepts (scribed's
//! and ship's): sizes (`"64M"` or a byte count) and durations (`"1s"`, `"500ms"`, `"2h"`, or a
//! number of seconds). One type per kind, so the same TOML value means the same thing in
//! every file.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A byte count: an integer, or a string with a K/M/G/T suffix (powers of 1024, as
/// [`crate::parse_size`] reads flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1048576, \"64K\", \"512M\" or \"1G\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size may not be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                crate::parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: a string such as `"1s"`, `"250ms"`, `"2h"` (humantime's syntax, as the
/// binaries' duration flags take it), or an integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1s\", \"500ms\", \"2h\" or a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|s| Dur(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("duration may not be negative ({v})")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                humantime::parse_duration(v)
                    .map(Dur)
                    .map_err(|e| E::custom(format!("invalid duration {v:?}: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        size: Option<Size>,
        dur: Option<Dur>,
    }

    fn parse(text: &str) -> Result<File, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_size_is_an_integer_or_a_string_with_a_unit() {
        assert_eq!(
            parse("size = 1073741824").unwrap().size,
            Some(Size(1 << 30))
        );
        assert_eq!(parse("size = \"1G\"").unwrap().size, Some(Size(1 << 30)));
        assert_eq!(parse("size = \"1500\"").unwrap().size, Some(Size(1500)));
        assert!(parse("size = -1").unwrap_err().contains("negative"));
        assert!(parse("size = \"lots\"")
            .unwrap_err()
            .contains("invalid size"));
        assert!(parse("size = 1.5").is_err());
    }

    #[test]
    fn a_duration_is_a_string_with_a_unit_or_seconds() {
        let secs = |s| Some(Dur(Duration::from_secs(s)));
        assert_eq!(parse("dur = 5").unwrap().dur, secs(5));
        assert_eq!(parse("dur = \"5s\"").unwrap().dur, secs(5));
        assert_eq!(
            parse("dur = \"250ms\"").unwrap().dur,
            Some(Dur(Duration::from_millis(250)))
        );
        assert!(parse("dur = -1").unwrap_err().contains("negative"));
        assert!(parse("dur = \"soon\"")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse("dur = \"5\"").is_err(), "a string needs its unit");
    }
}
