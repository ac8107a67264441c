//! Who a verified peer certificate says the peer is: its subject common name and subject
//! alternative names. Callers map these to permissions (scribed: which categories a client
//! may write), in the manner of rsyslog's `x509/name` with `PermittedPeer`.

use std::fmt;
use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The names in a peer's end-entity certificate. Only built from a certificate rustls has
/// already verified against the configured CA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (`CN=`), when it has one that is valid UTF-8.
    pub common_name: Option<String>,
    /// Subject alternative names of type DNS.
    pub dns_names: Vec<String>,
    /// Subject alternative names of type IP address.
    pub ip_addresses: Vec<IpAddr>,
    /// Subject alternative names of type e-mail (RFC 822 name).
    pub emails: Vec<String>,
    /// Subject alternative names of type URI (SPIFFE ids, say).
    pub uris: Vec<String>,
}

impl PeerIdentity {
    /// Reads the names of a DER certificate; `None` if it does not parse (rustls accepted it,
    /// so this does not happen for verified peers).
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut id = PeerIdentity {
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            ..PeerIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => id.dns_names.push(n.to_string()),
                    GeneralName::RFC822Name(n) => id.emails.push(n.to_string()),
                    GeneralName::URI(n) => id.uris.push(n.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            id.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            id.ip_addresses.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// Every name, as text: the common name first, then the alternative names.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.common_name
            .iter()
            .cloned()
            .chain(self.dns_names.iter().cloned())
            .chain(self.ip_addresses.iter().map(|ip| ip.to_string()))
            .chain(self.emails.iter().cloned())
            .chain(self.uris.iter().cloned())
    }
}

impl PeerIdentity {
    /// Whether one of the peer's names matches `pattern` (see [`name_matches`]).
    pub fn is_named(&self, pattern: &str) -> bool {
        self.names().any(|n| name_matches(pattern, &n))
    }
}

/// A certificate name pattern: exact (ASCII case-insensitive, as DNS), or `*.domain`
/// matching any name that ends in `.domain` (one or more labels below it). Compared as
/// bytes, so names that are not ASCII never split a character.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    match pattern.strip_prefix(b"*.") {
        Some(domain) => {
            name.len() > domain.len() + 1
                && name[name.len() - domain.len() - 1] == b'.'
                && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

impl fmt::Display for PeerIdentity {
    /// The name logs use: the common name, else the first alternative name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names().next() {
            Some(n) => f.write_str(&n),
            None => f.write_str("(certificate without names)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_subject_and_the_alternative_names() {
        let mut params = rcgen::CertificateParams::new(vec!["web01.example.com".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "web01");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap()));
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.org/web".try_into().unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = PeerIdentity::from_der(cert.der()).unwrap();
        assert_eq!(id.common_name.as_deref(), Some("web01"));
        assert_eq!(id.dns_names, vec!["web01.example.com"]);
        assert_eq!(id.ip_addresses, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(id.uris, vec!["spiffe://example.org/web"]);
        assert_eq!(id.to_string(), "web01");
        assert_eq!(id.names().count(), 4);
        assert!(PeerIdentity::from_der(b"junk").is_none());
        assert!(id.is_named("*.example.com") && id.is_named("WEB01"));
        assert!(!id.is_named("*.other.com"));
    }

    #[test]
    fn names_match_exactly_or_below_a_domain() {
        assert!(name_matches("*.web.example.com", "a.web.example.com"));
        assert!(name_matches("*.web.example.com", "a.b.WEB.example.com"));
        assert!(!name_matches("*.web.example.com", "web.example.com"));
        assert!(!name_matches("*.web.example.com", "aweb.example.com"));
        assert!(!name_matches("*.é.com", "xé.com"));
        assert!(!name_matches("*.a.com", "ééé.a.com.x"));
        assert!(name_matches("Web-Admin", "web-admin"));
    }
}
