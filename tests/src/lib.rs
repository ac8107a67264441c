//! Harness for the workspace end-to-end tests: builds the real binaries, starts `scribed` on an
//! ephemeral loopback port with a temporary data directory, runs `ship`, reads archives back.
//!
//! Every process started here is killed when its handle drops, so a failing test leaves nothing
//! running; every wait is bounded.
//!
//! By role: [`procs`] (the binaries as processes), [`wire`] (talking to servers by hand),
//! [`seq`] (sequenced lines and loss/order checks), [`archive`] (reading categories back),
//! [`inputs`] (syslog/OTLP listeners, HTTP POST, rsyslogd), [`kafka`] (a tansu broker),
//! [`sasl`] (a SASL-authenticating relay in front of it), [`relay`] (what such relays share),
//! [`tls`] (test certificates and TLS config blocks), [`s3`] (SeaweedFS on loopback, reading a
//! bucket back, DuckDB), [`tmpfs`] (small disks to fill), [`torture`] (the fault-injection
//! scenarios).

pub mod archive;
pub mod inputs;
pub mod kafka;
pub mod procs;
pub mod relay;
pub mod s3;
pub mod sasl;
pub mod seq;
pub mod tls;
pub mod tmpfs;
pub mod torture;
pub mod wire;

pub use archive::*;
pub use procs::*;
pub use seq::*;
pub use wire::*;

/// Seeded pseudo-random numbers, so failures reproduce.
pub use fastrand::Rng;
