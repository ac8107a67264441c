//! Who a client is, and what it may do.
//!
//! A connection's identity comes from its client certificate (verified by the listener's
//! `tls_client_ca`) matched against each `[[client]]` block's `certificate_names`, or from
//! the bearer token of a native `HELLO` matched against each block's `token_file` (a token
//! wins over a certificate). A client that is neither is *anonymous*; what it may write is
//! its listener's `anonymous` list, by default everything when no `[[client]]` block exists
//! (today's behaviour) or the listener is on loopback, and nothing otherwise.
//!
//! Admin calls (fb303 `shutdown`, `reinitialize`, `setOption`) need a client on loopback (on
//! a listener with `trust_loopback`, the default) or one whose block says `admin = true`.
//!
//! Rules are part of the configuration ([`crate::router::Routing::rules`]), so a reload
//! replaces them, token files included; a connection keeps the client name it was given and
//! is checked against the rules in force at each batch.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use scribe_tls::{PeerIdentity, Token};

use crate::config::{ClientSettings, ListenerSettings, Settings, ANONYMOUS};

/// The identity rules in force.
pub struct Rules {
    clients: Vec<(ClientSettings, Option<Token>)>,
    status_token: Option<Token>,
}

impl Rules {
    /// The rules of `settings`, reading every token file (an unreadable or empty one is an
    /// error naming the block and the file).
    pub fn load(settings: &Settings) -> anyhow::Result<Rules> {
        let mut clients = Vec::new();
        for (i, c) in settings.clients.iter().enumerate() {
            let token = c
                .token_file
                .as_deref()
                .map(Token::from_file)
                .transpose()
                .with_context(|| format!("client[{i}] ({})", c.name))?;
            clients.push((c.clone(), token));
        }
        let status_token = settings
            .status_token_file
            .as_deref()
            .map(Token::from_file)
            .transpose()
            .context("status_token_file")?;
        Ok(Rules {
            clients,
            status_token,
        })
    }

    /// The `[[client]]` whose certificate names match `id`.
    pub fn by_certificate(&self, id: &PeerIdentity) -> Option<&str> {
        self.clients
            .iter()
            .find(|(c, _)| c.certificate_names.iter().any(|p| id.is_named(p)))
            .map(|(c, _)| c.name.as_str())
    }

    /// The `[[client]]` whose token is `offered`. Every token is compared (each in constant
    /// time), so the time taken does not tell which one nearly matched.
    pub fn by_token(&self, offered: &[u8]) -> Option<&str> {
        let mut found = None;
        for (c, token) in &self.clients {
            if let Some(t) = token {
                if t.matches(offered) && found.is_none() {
                    found = Some(c.name.as_str());
                }
            }
        }
        found
    }

    /// The token `/metrics` and `/status` require.
    pub fn status_token(&self) -> Option<&Token> {
        self.status_token.as_ref()
    }

    fn client(&self, peer: &Peer) -> Option<&ClientSettings> {
        let name = peer.client.as_deref()?;
        self.clients.iter().map(|(c, _)| c).find(|c| c.name == name)
    }

    /// Whether `peer` may write `category`. `Err` carries the patterns it may write, for
    /// the refusal's message.
    pub fn may_write(&self, peer: &Peer, category: &str) -> Result<(), String> {
        let globs = match self.client(peer) {
            Some(c) => &c.categories,
            None => match &peer.listener.anonymous {
                Some(globs) => globs,
                None if self.clients.is_empty() || peer.listener.address.ip().is_loopback() => {
                    return Ok(())
                }
                None => return Err("nothing (anonymous on a non-loopback listener)".into()),
            },
        };
        if globs.iter().any(|g| g.matches(category)) {
            return Ok(());
        }
        if globs.is_empty() {
            return Err("nothing".into());
        }
        let shown: Vec<&str> = globs.iter().map(|g| g.as_str()).collect();
        Err(shown.join(", "))
    }

    /// Whether `peer` may make admin calls: on loopback (unless its listener does not trust
    /// loopback), or a client marked `admin`.
    pub fn is_admin(&self, peer: &Peer) -> bool {
        (peer.listener.trust_loopback && peer.addr.ip().is_loopback())
            || self.client(peer).is_some_and(|c| c.admin)
    }
}

/// One connection's peer: where it is, which listener it came in on, who it is.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub listener: Arc<ListenerSettings>,
    /// The names of its verified client certificate.
    pub certificate: Option<PeerIdentity>,
    /// The `[[client]]` it was recognised as.
    pub client: Option<String>,
}

impl Peer {
    /// The name logs and metrics use: the `[[client]]` name, else `anonymous`.
    pub fn name(&self) -> &str {
        self.client.as_deref().unwrap_or(ANONYMOUS)
    }

    /// The senders of a syslog or OTLP input (`name`, as in its metrics): no identity yet,
    /// and anonymous may write any category there (`[[client]]` rules do not apply to inputs;
    /// docs/security.md).
    pub fn input(name: &str) -> Peer {
        let addr = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut listener = ListenerSettings::plain(addr);
        listener.at = name.to_string();
        listener.anonymous = Some(vec![
            scribe_archive::category::CategoryGlob::new("*").expect("a valid glob")
        ]);
        listener.trust_loopback = false;
        Peer {
            addr,
            listener: Arc::new(listener),
            certificate: None,
            client: None,
        }
    }

    /// A peer on a plaintext loopback listener that allows everything: for tests and
    /// in-process callers.
    pub fn local(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            listener: Arc::new(ListenerSettings::plain(addr)),
            certificate: None,
            client: None,
        }
    }
}

/// What was refused, per client name: bounded by the `[[client]]` blocks (plus
/// `anonymous`), and per listener for handshakes.
#[derive(Default)]
pub struct AuthCounters {
    counts: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// Messages refused because the client may not write their category.
pub const DENIED_WRITES: &str = "denied_messages";
/// Batches refused for the same reason.
pub const DENIED_BATCHES: &str = "denied_batches";
/// Admin calls refused.
pub const DENIED_ADMIN: &str = "denied_admin_calls";
/// Native handshakes with a token no client has.
pub const UNKNOWN_TOKENS: &str = "unknown_tokens";
/// TLS handshakes that failed, per listener.
pub const TLS_FAILURES: &str = "tls_handshake_failures";

impl AuthCounters {
    pub fn add(&self, what: &'static str, who: &str, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry((what, who.to_string())).or_default() += n;
    }

    /// `(what, who, count)`, sorted.
    pub fn snapshot(&self) -> Vec<(&'static str, String, u64)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|((w, k), n)| (*w, k.clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scribe_archive::category::CategoryGlob;

    fn rules(clients: Vec<ClientSettings>) -> Rules {
        Rules {
            clients: clients.into_iter().map(|c| (c, None)).collect(),
            status_token: None,
        }
    }

    fn web() -> ClientSettings {
        ClientSettings {
            name: "web".into(),
            certificate_names: vec!["*.web.example.com".into(), "web-admin".into()],
            token_file: None,
            categories: vec![CategoryGlob::new("web.*").unwrap()],
            admin: false,
        }
    }

    fn peer(listen: &str, from: &str, client: Option<&str>) -> Peer {
        Peer {
            addr: from.parse().unwrap(),
            listener: Arc::new(ListenerSettings::plain(listen.parse().unwrap())),
            certificate: None,
            client: client.map(str::to_string),
        }
    }

    #[test]
    fn certificate_names_pick_the_client() {
        let r = rules(vec![web()]);
        let id = PeerIdentity {
            common_name: Some("x".into()),
            dns_names: vec!["h1.web.example.com".into()],
            ..Default::default()
        };
        assert_eq!(r.by_certificate(&id), Some("web"));
        assert_eq!(r.by_certificate(&PeerIdentity::default()), None);
    }

    #[test]
    fn what_each_client_may_write_and_call() {
        let open = rules(vec![]);
        let r = rules(vec![web()]);
        let remote = "10.0.0.1:1463";
        // No rules: everything, anywhere (today's behaviour).
        assert!(open
            .may_write(&peer(remote, "10.0.0.9:5", None), "db.audit")
            .is_ok());
        // Rules: a known client writes its globs only.
        let web_peer = peer(remote, "10.0.0.9:5", Some("web"));
        assert!(r.may_write(&web_peer, "web.access").is_ok());
        assert_eq!(r.may_write(&web_peer, "db.audit").unwrap_err(), "web.*");
        // Anonymous: everything on loopback, nothing elsewhere, unless the listener says.
        assert!(r
            .may_write(&peer("127.0.0.1:1", "127.0.0.1:5", None), "x")
            .is_ok());
        assert!(r.may_write(&peer(remote, "10.0.0.9:5", None), "x").is_err());
        let mut l = ListenerSettings::plain(remote.parse().unwrap());
        l.anonymous = Some(vec![CategoryGlob::new("public.*").unwrap()]);
        let anon = Peer {
            listener: Arc::new(l),
            ..peer(remote, "10.0.0.9:5", None)
        };
        assert!(r.may_write(&anon, "public.x").is_ok());
        assert!(r.may_write(&anon, "x").is_err());
        // Admin: loopback or admin = true.
        assert!(!r.is_admin(&web_peer));
        assert!(r.is_admin(&peer(remote, "127.0.0.1:5", None)));
        let mut boss = web();
        boss.admin = true;
        assert!(rules(vec![boss]).is_admin(&web_peer));
    }
}
