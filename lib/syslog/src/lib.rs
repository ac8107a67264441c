//! Syslog for the pipeline, as a library with no I/O:
//!
//! - [`framing`]: RFC 6587 framing of a stream (octet counting or LF/NUL, chosen per
//!   connection), every frame bounded; one message per datagram for UDP.
//! - [`parse`](mod@parse): RFC 5424 (structured data, nil values, BOM) and RFC 3164 as found in the wild.
//! - [`template`]: category templates (`syslog.{app_name}`) rendered into the category
//!   alphabet of `scribe_archive::category`.
//! - [`Classifier`]: one received message → its category and the line to store (as received,
//!   or [normalized](normalized_json) to one JSON object).
//!
//! scribed's syslog listeners (`scribed/src/inputs/syslog.rs`) are the I/O around this.

#![forbid(unsafe_code)]

pub mod framing;
pub mod parse;
pub mod template;

use bytes::Bytes;

pub use framing::{datagram, Deframer, Frame, Framing, FramingError};
pub use parse::{facility_name, parse, severity_name, Format, Message, ParseError, SdElement};
pub use template::{Template, TemplateError, SYSLOG_FIELDS};

/// What is stored for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stored {
    /// The message exactly as received, without its transport framing (default).
    #[default]
    AsReceived,
    /// One JSON object per message ([`normalized_json`]); unparseable input stays as received.
    Normalized,
}

/// Where messages go and in what form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classifier {
    pub category: Template,
    pub fallback: Template,
    /// Category of input that is not syslog (and of parsed messages neither template fits).
    pub unparsed: scribe_archive::Category,
    pub stored: Stored,
}

/// One message, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub category: String,
    pub line: Bytes,
    /// `false`: the input did not parse and went to the unparsed category as received.
    pub parsed: bool,
}

pub const DEFAULT_CATEGORY: &str = "syslog.{app_name}";
pub const DEFAULT_FALLBACK: &str = "syslog.{facility}";
pub const DEFAULT_UNPARSED: &str = "syslog.unparsed";

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            category: Template::parse(DEFAULT_CATEGORY, SYSLOG_FIELDS).expect("valid default"),
            fallback: Template::parse(DEFAULT_FALLBACK, SYSLOG_FIELDS).expect("valid default"),
            unparsed: DEFAULT_UNPARSED.parse().expect("valid default"),
            stored: Stored::AsReceived,
        }
    }
}

impl Classifier {
    pub fn classify(&self, raw: Bytes) -> Classified {
        let Ok(m) = parse(&raw) else {
            return Classified {
                category: self.unparsed.to_string(),
                line: raw,
                parsed: false,
            };
        };
        let lookup = |f: &str| match f {
            "app_name" => m.app_name,
            "hostname" => m.hostname,
            "facility" => m.facility(),
            "severity" => m.severity(),
            "msgid" => m.msgid,
            "procid" => m.procid,
            _ => None,
        };
        let category = self
            .category
            .render(lookup)
            .or_else(|| self.fallback.render(lookup))
            .unwrap_or_else(|| self.unparsed.to_string());
        let line = match self.stored {
            Stored::AsReceived => raw.clone(),
            Stored::Normalized => Bytes::from(normalized_json(&m)),
        };
        Classified {
            category,
            line,
            parsed: true,
        }
    }
}

/// The normalized form: one JSON object on one line, keys absent when the field is nil:
/// `format` (`rfc5424`/`rfc3164`), `facility` and `severity` (keywords), `time` (the timestamp
/// as sent: RFC 3164 ones carry no year or zone), `host`, `app`, `procid`, `msgid`, `sd`
/// (`{"id": {"param": "value"}}`; a repeated param keeps its last value) and `msg` (invalid
/// UTF-8 replaced by U+FFFD).
pub fn normalized_json(m: &Message<'_>) -> Vec<u8> {
    use serde_json::{Map, Value};
    let mut o = Map::new();
    let fmt = match m.format {
        Format::Rfc5424 => "rfc5424",
        Format::Rfc3164 => "rfc3164",
    };
    o.insert("format".into(), fmt.into());
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            o.insert(k.into(), Value::String(v.into()));
        }
    };
    put("facility", m.facility());
    put("severity", m.severity());
    put("time", m.timestamp);
    put("host", m.hostname);
    put("app", m.app_name);
    put("procid", m.procid);
    put("msgid", m.msgid);
    if !m.structured_data.is_empty() {
        let mut sd = Map::new();
        for e in &m.structured_data {
            let params: Map<String, Value> = e
                .params
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String(v.to_string())))
                .collect();
            sd.insert(e.id.into(), Value::Object(params));
        }
        o.insert("sd".into(), Value::Object(sd));
    }
    o.insert("msg".into(), String::from_utf8_lossy(m.msg).into());
    serde_json::to_vec(&Value::Object(o)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_defaults() {
        let c = Classifier::default();
        let r = c.classify(Bytes::from_static(b"<13>1 - h sshd - - - hi"));
        assert_eq!((r.category.as_str(), r.parsed), ("syslog.sshd", true));
        assert_eq!(&r.line[..], b"<13>1 - h sshd - - - hi");
        let r = c.classify(Bytes::from_static(b"<134>1 - h - - - - hi"));
        assert_eq!(r.category, "syslog.local0");
        let r = c.classify(Bytes::from_static(b"\x00\x01 garbage"));
        assert_eq!((r.category.as_str(), r.parsed), ("syslog.unparsed", false));
    }

    #[test]
    fn normalized_is_one_json_line() {
        let c = Classifier {
            stored: Stored::Normalized,
            ..Classifier::default()
        };
        let r = c.classify(Bytes::from_static(
            b"<165>1 2003-10-11T22:14:15Z h app 1 ID [a@1 k=\"v\"] two\nlines",
        ));
        let v: serde_json::Value = serde_json::from_slice(&r.line).unwrap();
        assert_eq!(v["severity"], "notice");
        assert_eq!(v["sd"]["a@1"]["k"], "v");
        assert_eq!(v["msg"], "two\nlines");
        assert!(!r.line.contains(&b'\n'));
    }
}
