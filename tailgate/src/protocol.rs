//! The `/ws` JSON messages (documented in docs/tailgate-protocol.md) and how a line's bytes
//! are carried: as a JSON string when they are UTF-8, else as `{"b64": "..."}` (standard
//! base64 of the exact bytes), so no byte is lost or altered.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ring::Cursor;

/// Client → server. Fields this version does not know are ignored, so a newer client can
/// add some without breaking an older server.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Subscribe {
        /// The client's name for this subscription (default: the pattern); messages for it
        /// carry it, and subscribing again under the same id replaces it.
        id: Option<String>,
        /// A category name or glob (`apache.*`).
        category: String,
        /// A regex: only lines matching it are sent.
        filter: Option<String>,
        /// A regex: lines matching it are not sent (applied after `filter`).
        exclude: Option<String>,
        /// With a filter: also send this many lines before and after each match.
        context: Option<usize>,
        /// Send the newest N lines of each matching category first.
        backlog: Option<usize>,
        /// Resume: send what follows this seq. A number (for a single category) or a map of
        /// category → seq (for a glob).
        since_seq: Option<SinceSeq>,
        /// Kafka categories: resume after these offsets (category → partition → the next
        /// offset wanted), which hold across restarts of tailgate; wins over `since_seq`.
        #[serde(default, deserialize_with = "since_offsets")]
        since_offsets: Option<SinceOffsets>,
    },
    Unsubscribe {
        id: String,
    },
    Ping {
        data: Option<serde_json::Value>,
    },
    Categories {},
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SinceSeq {
    One(u64),
    Map(HashMap<String, u64>),
}

/// Per category, per partition, the next offset wanted.
pub type SinceOffsets = HashMap<String, Cursor>;

/// `since_offsets`, whose partitions are JSON object keys (strings): parsed here, because a
/// message tagged by `type` is buffered first, and serde reads no integer keys from a buffer.
fn since_offsets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SinceOffsets>, D::Error> {
    use serde::de::Error;
    let raw: Option<HashMap<String, HashMap<String, i64>>> = Option::deserialize(d)?;
    let Some(raw) = raw else { return Ok(None) };
    let mut out = SinceOffsets::with_capacity(raw.len());
    for (category, partitions) in raw {
        let mut cursor = Cursor::new();
        for (p, offset) in partitions {
            let p: i32 = p.parse().map_err(|_| {
                D::Error::custom(format!("since_offsets: partition {p:?} is not a number"))
            })?;
            cursor.insert(p, offset);
        }
        out.insert(category, cursor);
    }
    Ok(Some(out))
}

/// One line as JSON.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum LineOut<'a> {
    Text(&'a str),
    Binary { b64: String },
}

impl<'a> LineOut<'a> {
    pub fn new(bytes: &'a Bytes) -> LineOut<'a> {
        match std::str::from_utf8(bytes) {
            Ok(s) => LineOut::Text(s),
            Err(_) => LineOut::Binary {
                b64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }
}

/// Server → client.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    Hello {
        server: &'static str,
        version: &'static str,
        /// Changes when tailgate restarts (and its sequence numbers begin again).
        instance: &'a str,
        categories: Vec<String>,
    },
    Subscribed {
        id: &'a str,
        category: &'a str,
        matched: Vec<&'a str>,
        /// Per matched category, the last seq this subscription starts after (its backlog
        /// is at or before it, live lines after it): a resume point even for a category
        /// that then stays quiet.
        last_seq: std::collections::BTreeMap<&'a str, u64>,
        /// Per matched category, the first seq its backlog or resume accounts for
        /// (`last_seq + 1` when it sends none): with `last_seq`, how many lines it covers.
        from_seq: std::collections::BTreeMap<&'a str, u64>,
        /// Per matched Kafka category, its cursor at `last_seq` (partition → next offset):
        /// the resume point by offsets.
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        offsets: std::collections::BTreeMap<&'a str, &'a Cursor>,
    },
    Unsubscribed {
        id: &'a str,
    },
    Lines {
        id: &'a str,
        category: &'a str,
        /// Seq of the first line in `lines`.
        seq: u64,
        /// The last seq this message accounts for (lines a filter skipped included): resume
        /// with `since_seq` = this.
        last_seq: u64,
        lines: Vec<LineOut<'a>>,
        /// With a filter, each line's seq (they are not consecutive then).
        #[serde(skip_serializing_if = "Option::is_none")]
        seqs: Option<Vec<u64>>,
        /// With `context`, the indices in `lines` of context lines (not matches).
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<Vec<usize>>,
        /// Kafka: per partition with lines here, the offset after the last (the resume point
        /// by offsets moves there).
        #[serde(skip_serializing_if = "Option::is_none")]
        offsets: Option<&'a Cursor>,
    },
    /// Lines up to `last_seq` were all skipped by the subscription's filter: nothing to
    /// show, but the resume point moves on.
    Progress {
        id: &'a str,
        category: &'a str,
        last_seq: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        offsets: Option<&'a Cursor>,
    },
    Dropped {
        id: &'a str,
        category: &'a str,
        count: u64,
        from_seq: u64,
    },
    Gap {
        id: &'a str,
        category: &'a str,
        from_seq: u64,
        to_seq: u64,
    },
    /// A resume by offsets asked for offsets of a partition that are not held (older than
    /// the ring, or from before this tailgate started reading).
    OffsetGap {
        id: &'a str,
        category: &'a str,
        partition: i32,
        from_offset: i64,
        to_offset: i64,
        /// Why: older than the ring, than the topic's retention, more than the read-back
        /// cap behind, or the read-back failed.
        reason: String,
    },
    Categories {
        categories: Vec<String>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<serde_json::Value>,
    },
    Error {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
}

impl ServerMsg<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","reason":"encoding a message failed: {e}"}}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_lines_are_base64() {
        let b = Bytes::from_static(b"\xff\xfeok");
        assert_eq!(
            serde_json::to_string(&LineOut::new(&b)).unwrap(),
            r#"{"b64":"//5vaw=="}"#
        );
        let t = Bytes::from_static(b"<script>\"x\"");
        assert_eq!(
            serde_json::to_string(&LineOut::new(&t)).unwrap(),
            r#""<script>\"x\"""#
        );
    }

    #[test]
    fn parses_requests() {
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"subscribe","category":"a.*","since_seq":{"a.b":5},"backlog":3}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMsg::Subscribe {
                since_seq: Some(SinceSeq::Map(_)),
                backlog: Some(3),
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"subscribe"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope"}"#).is_err());
        // Forward compatibility: unknown fields are ignored.
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"subscribe","category":"a","exclude":"x","future":{"k":[1]}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMsg::Subscribe {
                exclude: Some(_),
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"ping","later":1}"#).is_ok());
        // Offsets: partitions are object keys.
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"subscribe","category":"a","since_offsets":{"a":{"0":5,"12":7}}}"#,
        )
        .unwrap();
        let ClientMsg::Subscribe {
            since_offsets: Some(o),
            ..
        } = m
        else {
            panic!("since_offsets");
        };
        assert_eq!(o["a"], Cursor::from([(0, 5), (12, 7)]));
        assert!(serde_json::from_str::<ClientMsg>(
            r#"{"type":"subscribe","category":"a","since_offsets":{"a":{"x":5}}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"categories","x":2}"#).is_ok());
    }
}
