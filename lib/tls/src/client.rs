//! The client side: whom to trust, which certificate to present, which name to check.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::{explain, pem, TlsError};

/// A client's TLS files and name override, as given on a command line or in a config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// CA bundle that verifies the server; the system's roots when `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (for servers that require one), with `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key.
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry, instead of the host connected to.
    pub server_name: Option<String>,
}

impl ClientTlsFiles {
    /// Whether TLS is wanted: asked for (`--tls`, `tls = true`) or implied by any file or
    /// server name given. The one rule for every client: ship, relays, the kafka store.
    pub fn is_wanted(&self, asked: bool) -> bool {
        asked || *self != ClientTlsFiles::default()
    }
}

/// Loaded client settings, shared by every connection a client makes.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// The client settings when TLS is wanted: asked for (`--tls`, `tls = true`) or implied
    /// by any file or server name given; `None` for plaintext. The one rule ship and
    /// scribed's relays follow.
    pub fn load_if_wanted(
        asked: bool,
        files: &ClientTlsFiles,
    ) -> Result<Option<ClientTls>, TlsError> {
        if files.is_wanted(asked) {
            ClientTls::load(files).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads the files; errors name the file and the problem.
    pub fn load(files: &ClientTlsFiles) -> Result<ClientTls, TlsError> {
        let roots = match &files.ca {
            Some(ca) => pem::root_store("CA", ca)?,
            None => pem::system_roots()?,
        };
        let builder = ClientConfig::builder_with_provider(crate::provider())
            .with_protocol_versions(crate::VERSIONS)
            .map_err(|source| TlsError::Rustls {
                context: "TLS versions".into(),
                source,
            })?
            .with_root_certificates(roots);
        let config = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = pem::certificates("client certificate", cert)?;
                let key_der = pem::private_key(key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|source| TlsError::Rustls {
                        context: format!(
                            "client certificate {} with key {}",
                            cert.display(),
                            key.display()
                        ),
                        source,
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), None) | (None, Some(cert)) => {
                return Err(TlsError::Content {
                    what: "client certificate",
                    path: cert.clone(),
                    problem: "a client certificate needs both a certificate and its key".into(),
                })
            }
        };
        let server_name = files.server_name.as_deref().map(server_name).transpose()?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Runs the handshake with `host` (the host part of the address connected to, checked
    /// against the certificate unless a server name was configured) within `timeout`.
    /// The error is one line naming the cause.
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, String> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => server_name(host).map_err(|e| e.to_string())?,
        };
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        match tokio::time::timeout(timeout, connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(format!("TLS handshake with {host} failed: {}", explain(&e))),
            Err(_) => Err(format!(
                "TLS handshake with {host} timed out after {timeout:?}"
            )),
        }
    }
}

/// A DNS name or IP address (brackets around an IPv6 address are dropped).
fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}
