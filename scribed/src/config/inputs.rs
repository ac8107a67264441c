//! `[[syslog]]` and `[[otlp]]` blocks: the listeners for other protocols than Scribe's
//! (docs/inputs.md). Each block is optional and independent; its templates are checked here,
//! so a bad one is a config error with its key, never a surprise at the first message.

use std::net::SocketAddr;

use serde::Deserialize;

use scribe_archive::Category;
use scribe_syslog::{Classifier, Stored, Template, SYSLOG_FIELDS};

use super::locate::KeyError;
use super::values::Size;

/// Default `max_message` of a syslog listener (RFC 5425 asks for at least 8192 octets).
pub const DEFAULT_SYSLOG_MAX_MESSAGE: u64 = 64 << 10;
/// Default `max_body` of an OTLP listener: the request body and its decompressed size.
pub const DEFAULT_OTLP_MAX_BODY: u64 = 16 << 20;
pub const DEFAULT_OTLP_CATEGORY: &str = "otlp.{service_name}";
pub const DEFAULT_OTLP_FALLBACK: &str = "otlp.unknown_service";
/// The fields an OTLP category template may name (from the record's resource and scope).
pub const OTLP_FIELDS: &[&str] = &["service_name", "service_namespace", "scope_name"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub listen: SocketAddr,
    /// `tcp` (default) or `udp`.
    pub transport: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub fallback_category: Option<String>,
    pub unparsed_category: Option<String>,
    /// `as_received` (default) or `normalized`.
    pub stored: Option<String>,
    pub max_message: Option<Size>,
    /// UDP: the socket's receive buffer (`SO_RCVBUF`).
    pub recv_buffer: Option<Size>,
    /// TCP: simultaneous connections.
    pub max_connections: Option<usize>,
    /// TCP: speak TLS (RFC 5425) with this certificate and key; with `tls_client_ca`,
    /// senders must present a certificate from that CA.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    pub tls_client_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    pub listen: SocketAddr,
    pub name: Option<String>,
    pub category: Option<String>,
    pub fallback_category: Option<String>,
    pub max_body: Option<Size>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// One syslog listener, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogInput {
    /// For metrics and logs: `name`, or `syslog[i]`.
    pub name: String,
    pub listen: SocketAddr,
    pub transport: Transport,
    pub classifier: Classifier,
    pub max_message: usize,
    pub recv_buffer: Option<usize>,
    pub max_connections: usize,
    /// TCP over TLS (RFC 5425).
    pub tls: Option<scribe_tls::ServerTlsFiles>,
}

/// One OTLP/HTTP listener, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpInput {
    pub name: String,
    pub listen: SocketAddr,
    pub category: Template,
    pub fallback: Category,
    pub max_body: usize,
}

/// Every input listener besides Scribe's own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    pub syslog: Vec<SyslogInput>,
    pub otlp: Vec<OtlpInput>,
}

fn template(
    at: &str,
    key: &str,
    text: Option<&str>,
    default: &str,
    fields: &[&str],
) -> Result<Template, KeyError> {
    Template::parse(text.unwrap_or(default), fields)
        .map_err(|e| KeyError::new(format!("{at}.{key}"), e.to_string()))
}

fn category(at: &str, key: &str, text: Option<&str>, default: &str) -> Result<Category, KeyError> {
    let text = text.unwrap_or(default);
    text.parse().map_err(|e| {
        KeyError::new(
            format!("{at}.{key}"),
            format!("{text:?} is not a valid category: {e}"),
        )
    })
}

fn size(
    at: &str,
    key: &str,
    v: Option<Size>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<usize, KeyError> {
    let v = v.map_or(default, |s| s.0);
    if v < min || v > max {
        return Err(KeyError::new(
            format!("{at}.{key}"),
            format!("{v} bytes is outside {min}..={max}"),
        ));
    }
    Ok(v as usize)
}

pub fn resolve(syslog: Vec<SyslogConfig>, otlp: Vec<OtlpConfig>) -> Result<Inputs, KeyError> {
    let mut inputs = Inputs::default();
    for (i, c) in syslog.into_iter().enumerate() {
        let at = format!("syslog[{i}]");
        let transport = match c.transport.as_deref().unwrap_or("tcp") {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            other => {
                return Err(KeyError::new(
                    format!("{at}.transport"),
                    format!("{other:?} is not `tcp` or `udp`"),
                ))
            }
        };
        let stored = match c.stored.as_deref().unwrap_or("as_received") {
            "as_received" => Stored::AsReceived,
            "normalized" => Stored::Normalized,
            other => {
                return Err(KeyError::new(
                    format!("{at}.stored"),
                    format!("{other:?} is not `as_received` or `normalized`"),
                ))
            }
        };
        let classifier = Classifier {
            category: template(
                &at,
                "category",
                c.category.as_deref(),
                scribe_syslog::DEFAULT_CATEGORY,
                SYSLOG_FIELDS,
            )?,
            fallback: template(
                &at,
                "fallback_category",
                c.fallback_category.as_deref(),
                scribe_syslog::DEFAULT_FALLBACK,
                SYSLOG_FIELDS,
            )?,
            unparsed: category(
                &at,
                "unparsed_category",
                c.unparsed_category.as_deref(),
                scribe_syslog::DEFAULT_UNPARSED,
            )?,
            stored,
        };
        if c.recv_buffer.is_some() && transport == Transport::Tcp {
            return Err(KeyError::new(
                format!("{at}.recv_buffer"),
                "only for `transport = \"udp\"`",
            ));
        }
        let tls = match (c.tls_cert, c.tls_key) {
            (Some(cert), Some(key)) if transport == Transport::Tcp => {
                Some(scribe_tls::ServerTlsFiles {
                    cert,
                    key,
                    client_ca: c.tls_client_ca,
                })
            }
            (Some(_), Some(_)) => {
                return Err(KeyError::new(
                    format!("{at}.tls_cert"),
                    "TLS is for `transport = \"tcp\"` (RFC 5425), not UDP",
                ))
            }
            (None, None) if c.tls_client_ca.is_none() => None,
            _ => {
                return Err(KeyError::new(
                    format!("{at}.tls_cert"),
                    "tls_cert and tls_key go together (and tls_client_ca needs both)",
                ))
            }
        };
        let max_connections = c.max_connections.unwrap_or(1000);
        if max_connections == 0 {
            return Err(KeyError::new(
                format!("{at}.max_connections"),
                "must be at least 1",
            ));
        }
        inputs.syslog.push(SyslogInput {
            name: c.name.unwrap_or_else(|| at.clone()),
            listen: c.listen,
            transport,
            classifier,
            max_message: size(
                &at,
                "max_message",
                c.max_message,
                DEFAULT_SYSLOG_MAX_MESSAGE,
                480,
                64 << 20,
            )?,
            recv_buffer: c
                .recv_buffer
                .map(|s| size(&at, "recv_buffer", Some(s), 0, 4096, 1 << 30))
                .transpose()?,
            max_connections,
            tls,
        });
    }
    for (i, c) in otlp.into_iter().enumerate() {
        let at = format!("otlp[{i}]");
        inputs.otlp.push(OtlpInput {
            name: c.name.unwrap_or_else(|| at.clone()),
            listen: c.listen,
            category: template(
                &at,
                "category",
                c.category.as_deref(),
                DEFAULT_OTLP_CATEGORY,
                OTLP_FIELDS,
            )?,
            fallback: category(
                &at,
                "fallback_category",
                c.fallback_category.as_deref(),
                DEFAULT_OTLP_FALLBACK,
            )?,
            max_body: size(
                &at,
                "max_body",
                c.max_body,
                DEFAULT_OTLP_MAX_BODY,
                1024,
                1 << 30,
            )?,
        });
    }
    let mut names: Vec<&str> = inputs
        .syslog
        .iter()
        .map(|s| s.name.as_str())
        .chain(inputs.otlp.iter().map(|o| o.name.as_str()))
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(KeyError::new(
            "syslog",
            format!("two input listeners are named {:?}", w[0]),
        ));
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::check_config_text;

    fn check(text: &str) -> Result<super::Inputs, String> {
        check_config_text(Path::new("t.toml"), text)
            .map(|s| s.inputs)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        let i = check(
            "[[syslog]]\nlisten = \"127.0.0.1:514\"\n\
             [[syslog]]\nlisten = \"127.0.0.1:514\"\ntransport = \"udp\"\nrecv_buffer = \"4M\"\n\
             name = \"edge\"\ncategory = \"net.{hostname}\"\nstored = \"normalized\"\n\
             [[otlp]]\nlisten = \"127.0.0.1:4318\"\n",
        )
        .unwrap();
        assert_eq!(i.syslog[0].name, "syslog[0]");
        assert_eq!(i.syslog[0].max_message, 64 << 10);
        assert_eq!(i.syslog[0].classifier, scribe_syslog::Classifier::default());
        assert_eq!(i.syslog[1].recv_buffer, Some(4 << 20));
        assert_eq!(i.syslog[1].classifier.category.as_str(), "net.{hostname}");
        assert_eq!(i.otlp[0].category.as_str(), "otlp.{service_name}");
        assert!(check("").unwrap().syslog.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            check("[[syslog]]\nlisten = \"127.0.0.1:514\"\ncategory = \"x.{nope}\"\n").unwrap_err();
        assert!(
            e.contains("syslog[0].category") && e.contains("unknown field {nope}"),
            "{e}"
        );
        let e =
            check("[[syslog]]\nlisten = \"127.0.0.1:514\"\ntransport = \"sctp\"\n").unwrap_err();
        assert!(e.contains("syslog[0].transport"), "{e}");
        let e =
            check("[[syslog]]\nlisten = \"127.0.0.1:514\"\nrecv_buffer = \"1M\"\n").unwrap_err();
        assert!(e.contains("syslog[0].recv_buffer"), "{e}");
        let e =
            check("[[otlp]]\nlisten = \"127.0.0.1:1\"\nfallback_category = \"a/b\"\n").unwrap_err();
        assert!(e.contains("otlp[0].fallback_category"), "{e}");
        let e = check("[[otlp]]\nlisten = \"127.0.0.1:1\"\nmax_bodyy = 1\n").unwrap_err();
        assert!(e.contains("unknown field `max_bodyy`"), "{e}");
        let e = check("[[syslog]]\nlisten = \"127.0.0.1:1\"\nname = \"a\"\n[[otlp]]\nlisten = \"127.0.0.1:2\"\nname = \"a\"\n").unwrap_err();
        assert!(e.contains("named \"a\""), "{e}");
    }
}
