//! What the pipeline's Kafka clients share, written once: scribed's `kafka` store (producer),
//! its `[[kafka_input]]` archiver and tailgate's `--kafka` source (consumers).
//!
//! - [`template`]: the topic template (`logs.{category}`), category → topic for producers
//!   and topic → category for consumers, with the checks that make every category a legal
//!   topic name.
//! - [`id`]: the `scribe.id` record header carrying a message's entry id, so the archiver's
//!   commit log writes a record produced twice once.
//! - `client` (feature `client`, on by default): [`ClientSettings`] (brokers, client id, TLS, SASL, librdkafka properties
//!   passed through) turned into a librdkafka configuration; [`consumer_config`], whose fetch
//!   buffers are bounded; [`LogContext`], librdkafka's log through `tracing`, rate-limited,
//!   with the last error kept for status pages.

#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;
pub mod id;
pub mod template;

#[cfg(feature = "client")]
pub use client::{consumer_config, ClientSettings, FetchBounds, LogContext, Sasl, SettingsError};
pub use id::{decode_id, encode_id, ID_HEADER};
pub use template::{TemplateError, TopicTemplate, DEFAULT_TEMPLATE, MAX_TOPIC_LEN, PLACEHOLDER};
