//! One line per handshake failure, naming the cause the way an operator would say it.
//!
//! rustls' own `Display` is precise but speaks in protocol terms ("received fatal alert:
//! UnknownCA", "invalid peer certificate: UnknownIssuer"). The common mistakes get a sentence
//! that says what is wrong and which side must fix it; everything else falls back to rustls'
//! text.

use rustls::{AlertDescription, CertificateError, Error, InconsistentKeys};

/// What a server logs, and a client is told, when plaintext arrives on a TLS port.
pub const PLAINTEXT_ON_TLS: &str =
    "plaintext client on a TLS port: the client must connect with TLS (ship: --tls)";

/// The cause of a failed handshake or TLS read/write, as one line.
pub fn explain(e: &std::io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        return explain_rustls(tls);
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted => {
            "the peer closed the connection during the TLS handshake (is it a plaintext \
             port, or did it refuse our certificate?)"
                .into()
        }
        std::io::ErrorKind::TimedOut => "the TLS handshake timed out".into(),
        _ => e.to_string(),
    }
}

/// The cause of a rustls error, as one line.
pub fn explain_rustls(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => format!("certificate refused: {}", certificate(c)),
        Error::NoCertificatesPresented => {
            "the client sent no certificate, and this port requires one (mutual TLS)".into()
        }
        Error::AlertReceived(a) => alert(*a),
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the peer does not speak TLS (a plaintext port or client?)".into()
        }
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not match the certificate".into()
        }
        Error::InconsistentKeys(InconsistentKeys::Unknown) => {
            "cannot tell whether the private key matches the certificate".into()
        }
        Error::PeerIncompatible(p) => format!("no TLS version or cipher in common: {p:?}"),
        e => e.to_string(),
    }
}

fn certificate(c: &CertificateError) -> String {
    match c {
        CertificateError::UnknownIssuer => {
            "signed by an unknown CA (not one this side trusts)".into()
        }
        CertificateError::Expired => "expired".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired ({}s ago)",
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        CertificateError::NotValidYet => "not yet valid".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not yet valid (valid in {}s)",
            not_before.as_secs().saturating_sub(time.as_secs())
        ),
        CertificateError::NotValidForName => "not valid for the server name asked for".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "name mismatch: expected {:?}, the certificate names {}",
            expected.to_str(),
            if presented.is_empty() {
                "nothing".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "not meant for this use (extended key usage: server vs client)".into()
        }
        CertificateError::Revoked => "revoked".into(),
        c => format!("{c:?}"),
    }
}

fn alert(a: AlertDescription) -> String {
    match a {
        AlertDescription::UnknownCA => {
            "the peer refused our certificate: signed by a CA it does not trust".into()
        }
        AlertDescription::CertificateExpired => "the peer refused our certificate: expired".into(),
        AlertDescription::CertificateRequired => {
            "the server requires a client certificate (ship: --tls-cert and --tls-key)".into()
        }
        AlertDescription::BadCertificate | AlertDescription::CertificateUnknown => {
            "the peer refused our certificate (bad certificate: not yet valid, not for the \
             name it expected, or not one it accepts)"
                .into()
        }
        AlertDescription::ProtocolVersion => "no TLS version in common (1.2 or 1.3)".into(),
        AlertDescription::HandshakeFailure => {
            "the peer ended the handshake (no common parameters, or it refused our \
             certificate)"
                .into()
        }
        a => format!("the peer sent the TLS alert {a:?}"),
    }
}

/// `DnsName("a.example")` or `IpAddress(10.0.0.1)` (how rustls lists the names a certificate
/// presents) as `a.example` / `10.0.0.1`.
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}
