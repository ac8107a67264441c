//! `[[listener]]` and `[[client]]` blocks and `status_token_file`: which ports speak TLS,
//! who a client is (certificate names or a token) and what it may write. Only validated here
//! (file contents are read when listeners start and when stores are built, see
//! `crate::auth`), so `--check-config` stays a pure check of the text.

use std::net::SocketAddr;
use std::path::PathBuf;

use scribe_archive::category::CategoryGlob;
use scribe_tls::ServerTlsFiles;
use serde::Deserialize;

use super::locate::KeyError;

/// A `[[listener]]` block as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub anonymous: Option<Vec<String>>,
    pub trust_loopback: Option<bool>,
}

/// A `[[client]]` block as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub name: String,
    #[serde(default)]
    pub certificate_names: Vec<String>,
    pub token_file: Option<PathBuf>,
    pub categories: Vec<String>,
    #[serde(default)]
    pub admin: bool,
}

/// One address scribed accepts clients on.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSettings {
    pub address: SocketAddr,
    /// `None`: plaintext.
    pub tls: Option<ServerTlsFiles>,
    /// What a client without an identity may write here; `None`: the default (everything
    /// when no `[[client]]` block exists or the listener is on loopback, else nothing).
    pub anonymous: Option<Vec<CategoryGlob>>,
    /// Whether a client connecting from loopback may make admin calls (default `true`).
    /// `false` behind a proxy on the same host, where every client comes from loopback.
    pub trust_loopback: bool,
    /// `listener[2]`, or `listen` for the plaintext addresses of that key.
    pub at: String,
}

impl ListenerSettings {
    /// A plaintext listener from the `listen` key or `--listen`.
    pub fn plain(address: SocketAddr) -> ListenerSettings {
        ListenerSettings {
            address,
            tls: None,
            anonymous: None,
            trust_loopback: true,
            at: "listen".into(),
        }
    }
}

/// A known client: how it is recognised and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub name: String,
    /// Names its certificate must carry (common name or subject alternative name); a
    /// leading `*.` matches one or more labels.
    pub certificate_names: Vec<String>,
    pub token_file: Option<PathBuf>,
    pub categories: Vec<CategoryGlob>,
    pub admin: bool,
}

/// The name that stands for clients without an identity in logs and metrics.
pub const ANONYMOUS: &str = "anonymous";

pub fn listener(i: usize, spec: ListenerSpec) -> Result<ListenerSettings, KeyError> {
    let at = format!("listener[{i}]");
    let tls = match (spec.tls_cert, spec.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTlsFiles {
            cert,
            key,
            client_ca: spec.tls_client_ca,
        }),
        (None, None) if spec.tls_client_ca.is_some() => {
            return Err(KeyError::new(
                format!("{at}.tls_client_ca"),
                "needs tls_cert and tls_key (client certificates are checked over TLS)",
            ))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(KeyError::new(
                format!("{at}.tls_key"),
                "tls_cert needs tls_key",
            ))
        }
        (None, Some(_)) => {
            return Err(KeyError::new(
                format!("{at}.tls_cert"),
                "tls_key needs tls_cert",
            ))
        }
    };
    let anonymous = spec
        .anonymous
        .map(|globs| globs_of(&globs, &format!("{at}.anonymous")))
        .transpose()?;
    Ok(ListenerSettings {
        address: spec.address,
        tls,
        anonymous,
        trust_loopback: spec.trust_loopback.unwrap_or(true),
        at,
    })
}

pub fn client(i: usize, spec: ClientSpec) -> Result<ClientSettings, KeyError> {
    let at = format!("client[{i}]");
    let name = spec.name.trim();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(KeyError::new(
            format!("{at}.name"),
            "must be 1 to 64 printable ASCII characters without spaces",
        ));
    }
    if name == ANONYMOUS {
        return Err(KeyError::new(
            format!("{at}.name"),
            "\"anonymous\" stands for clients without an identity: use a listener's \
             `anonymous` key for what they may write",
        ));
    }
    if spec.certificate_names.is_empty() && spec.token_file.is_none() {
        return Err(KeyError::new(
            &at,
            "needs certificate_names or token_file: how else is this client recognised?",
        ));
    }
    for n in &spec.certificate_names {
        let bare = n.strip_prefix("*.").unwrap_or(n);
        if bare.is_empty() || bare.contains('*') {
            return Err(KeyError::new(
                format!("{at}.certificate_names"),
                format!("{n:?}: a name, or `*.` followed by a domain"),
            ));
        }
    }
    Ok(ClientSettings {
        name: name.to_string(),
        certificate_names: spec.certificate_names,
        token_file: spec.token_file,
        categories: globs_of(&spec.categories, &format!("{at}.categories"))?,
        admin: spec.admin,
    })
}

/// Checks across blocks: names and addresses used once.
pub fn check(listeners: &[ListenerSettings], clients: &[ClientSettings]) -> Result<(), KeyError> {
    for (i, l) in listeners.iter().enumerate() {
        // Port 0 asks for any free port: two of those never collide.
        if l.address.port() != 0 && listeners[..i].iter().any(|o| o.address == l.address) {
            return Err(KeyError::new(
                &l.at,
                format!("address {} is listed twice", l.address),
            ));
        }
    }
    for (i, c) in clients.iter().enumerate() {
        if clients[..i].iter().any(|o| o.name == c.name) {
            return Err(KeyError::new(
                format!("client[{i}].name"),
                format!("{:?} names two clients", c.name),
            ));
        }
    }
    Ok(())
}

fn globs_of(globs: &[String], at: &str) -> Result<Vec<CategoryGlob>, KeyError> {
    globs
        .iter()
        .map(|g| CategoryGlob::new(g).map_err(|e| KeyError::new(at, format!("{g:?}: {e}"))))
        .collect()
}
