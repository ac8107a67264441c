//! The server side: settings from PEM files, re-read on demand, and a bounded handshake.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::{explain, pem, PeerIdentity, TlsError, PLAINTEXT_ON_TLS};

/// Where a TLS listener's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The certificate chain, end-entity first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate this CA bundle verifies (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A TLS listener's settings, replaceable while connections are served: a handshake uses the
/// settings in force when it starts.
pub struct ServerTls {
    files: ServerTlsFiles,
    config: RwLock<Arc<ServerConfig>>,
}

/// Why a connection on a TLS port did not become a TLS session.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The client sent something other than a TLS handshake.
    #[error("{PLAINTEXT_ON_TLS}")]
    Plaintext,
    /// The client closed the connection before its first byte.
    #[error("closed before the TLS handshake")]
    Closed,
    /// The handshake did not finish in time.
    #[error("TLS handshake timed out after {0:?}")]
    TimedOut(Duration),
    /// The handshake failed; the text says why (see [`crate::explain`]).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

/// A fatal `unexpected_message` alert, in a plaintext TLS 1.2 record: what a plaintext client
/// on a TLS port is sent, so that clients which look (ship does) can say "this port speaks
/// TLS" instead of reporting a garbled reply.
const UNEXPECTED_MESSAGE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

impl ServerTls {
    /// Reads the files and builds the settings; every error names the file and the problem.
    pub fn load(files: ServerTlsFiles) -> Result<ServerTls, TlsError> {
        let config = build(&files, true)?;
        Ok(ServerTls {
            files,
            config: RwLock::new(config),
        })
    }

    /// Tests only (feature `testing`): [`ServerTls::load`] without refusing a certificate
    /// outside its validity period, to test how clients refuse a server that presents one.
    #[cfg(feature = "testing")]
    pub fn load_even_if_expired(files: ServerTlsFiles) -> Result<ServerTls, TlsError> {
        let config = build(&files, false)?;
        Ok(ServerTls {
            files,
            config: RwLock::new(config),
        })
    }

    /// Re-reads the files. On an error the settings in force stay in force, and the error
    /// says what was wrong with the new files.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files, true)?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    /// The files this listener reads.
    pub fn files(&self) -> &ServerTlsFiles {
        &self.files
    }

    /// An acceptor with the settings in force, for servers that run the handshake inside
    /// their own stream type (tailgate's HTTP listener does, so a slow handshake never
    /// holds up accepting others). Prefer [`ServerTls::accept`] otherwise.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_certificate(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Runs the handshake on an accepted connection, within `timeout` (from the first byte
    /// awaited to the handshake's end). Returns the session and, when the client presented
    /// a certificate (verified against the CA), its names.
    pub async fn accept(
        &self,
        mut stream: TcpStream,
        timeout: Duration,
    ) -> Result<(TlsStream<TcpStream>, Option<PeerIdentity>), AcceptError> {
        let config = self
            .config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let handshake = async {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(0) => return Err(AcceptError::Closed),
                Ok(_) if first[0] != 0x16 => {
                    let _ = stream.write_all(&UNEXPECTED_MESSAGE_ALERT).await;
                    let _ = stream.shutdown().await;
                    return Err(AcceptError::Plaintext);
                }
                Ok(_) => {}
                Err(e) => return Err(AcceptError::Handshake(e.to_string())),
            }
            let tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(stream)
                .await
                .map_err(|e| AcceptError::Handshake(explain(&e)))?;
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| PeerIdentity::from_der(cert));
            Ok((tls, identity))
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .unwrap_or(Err(AcceptError::TimedOut(timeout)))
    }
}

fn build(files: &ServerTlsFiles, check_dates: bool) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = pem::certificates("certificate", &files.cert)?;
    if check_dates {
        check_validity(&files.cert, &chain[0])?;
    }
    let key = pem::private_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(crate::VERSIONS)
        .map_err(|source| TlsError::Rustls {
            context: "TLS versions".into(),
            source,
        })?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = pem::root_store("client CA", ca)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider())
                    .build()
                    .map_err(|e| TlsError::Content {
                        what: "client CA",
                        path: ca.clone(),
                        problem: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            context: format!(
                "certificate {} with key {}",
                files.cert.display(),
                files.key.display()
            ),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Refuses a certificate outside its validity period: serving it would fail every client's
/// handshake, so starting (or reloading) with it is better refused with the dates.
fn check_validity(path: &std::path::Path, der: &[u8]) -> Result<(), TlsError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let problem = |p: String| TlsError::Content {
        what: "certificate",
        path: path.to_path_buf(),
        problem: p,
    };
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| problem(format!("does not parse as X.509: {e}")))?;
    let validity = cert.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now > validity.not_after {
        return Err(problem(format!("expired on {}", validity.not_after)));
    }
    if now < validity.not_before {
        return Err(problem(format!("not valid before {}", validity.not_before)));
    }
    Ok(())
}
