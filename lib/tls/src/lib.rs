//! TLS for every hop of the pipeline, written once.
//!
//! scribed's listeners, its relays, `ship` and tailgate all speak TLS through this crate, so
//! the rules are the same everywhere:
//!
//! - **rustls only**, with the `ring` provider, TLS 1.2 and 1.3 ([`provider`], [`VERSIONS`]);
//!   no OpenSSL. PEM files are read with `rustls-pki-types` ([`pem`]).
//! - **Servers** ([`ServerTls`]): a certificate and key, and optionally a CA whose client
//!   certificates are required (mutual TLS). [`ServerTls::reload`] re-reads the files; a bad
//!   new certificate leaves the old one in force and says why. [`ServerTls::accept`] bounds
//!   the handshake in time and tells a plaintext client on a TLS port apart from a failed
//!   handshake.
//! - **Clients** ([`ClientTls`]): the system roots or a given CA, an optional client
//!   certificate, the server name checked (overridable).
//! - **Identities** ([`PeerIdentity`]): the subject common name and subject alternative names
//!   of a verified peer certificate, which callers map to what the peer may do.
//! - **Tokens** ([`Token`]): read from a file, compared in constant time.
//! - **Errors** ([`explain`]): the causes operators meet (unknown CA, expired, not yet valid,
//!   name mismatch, no client certificate, plaintext on a TLS port and the reverse) as one
//!   line each, on both sides.
//!
//! The crate depends on no other crate of the workspace.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

mod client;
mod explain;
mod identity;
pub mod pem;
mod server;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod token;

pub use client::{ClientTls, ClientTlsFiles};
pub use explain::{explain, explain_rustls, PLAINTEXT_ON_TLS};
pub use identity::{name_matches, PeerIdentity};
pub use server::{AcceptError, ServerTls, ServerTlsFiles};
pub use stream::Stream;
pub use token::Token;
pub use tokio_rustls;

/// The TLS versions offered and accepted: 1.3 and 1.2, nothing older.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// How long a TLS handshake may take before the connection is dropped, unless a caller says
/// otherwise: a peer that connects and sends nothing must not hold a connection slot.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The crypto provider every configuration is built with (`ring`: no C toolchain beyond what
/// `ring` builds itself, and a shorter build than `aws-lc-rs`).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether the first bytes of a connection are a TLS handshake record (content type 22,
/// major version 3): what a TLS client sends first. Used to recognise a TLS client on a
/// plaintext port, and a plaintext client on a TLS port.
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, ..])
}

/// Whether the first bytes a server answered are a TLS record (handshake or alert): a
/// plaintext client that gets this back is talking to a TLS port.
pub fn looks_like_tls_reply(first: &[u8]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03, ..])
}

/// What can go wrong loading TLS settings: each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file was read but holds nothing usable.
    #[error("{what} {path}: {problem}")]
    Content {
        what: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// rustls refused the combination (a key that does not match its certificate, say).
    #[error("{context}: {}", explain_rustls(.source))]
    Rustls {
        context: String,
        source: rustls::Error,
    },
    /// The system's trusted roots could not be loaded and no CA file was given.
    #[error("no trusted roots: {0} (give a CA file)")]
    NoRoots(String),
    /// A server name that is not a DNS name or an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_records_are_recognised_and_protocol_starts_are_not() {
        assert!(super::looks_like_tls(&[0x16, 0x03, 0x01, 0x02]));
        assert!(!super::looks_like_tls(&[0xF5, b'S', b'C', b'N']));
        assert!(!super::looks_like_tls(&[0, 0, 0, 40]));
        assert!(super::looks_like_tls_reply(&[0x15, 0x03, 0x03, 0]));
        assert!(!super::looks_like_tls_reply(&[0, 0, 0, 12]));
    }
}
