//! TLS for the security tests: one test PKI (`scribe_tls::testing`) with a server and three
//! clients, and the config blocks that use them.

use std::path::{Path, PathBuf};

use scribe_tls::testing::{CertFiles, TestPki};

use crate::procs::{Launch, Scribed};

/// One CA with a server (`scribed.test`) and three clients (`web01`, `relay`, `ops`), and a
/// CA nobody trusts.
pub struct Pki {
    pub ca: PathBuf,
    pub server: CertFiles,
    pub web: CertFiles,
    pub relay: CertFiles,
    pub ops: CertFiles,
    pub main: TestPki,
    pub other: TestPki,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let main = TestPki::new(&dir.join("pki"), "main");
        let other = TestPki::new(&dir.join("other"), "other");
        Pki {
            ca: main.ca(),
            server: main.server("scribed.test"),
            web: main.client("web01"),
            relay: main.client("relay"),
            ops: main.client("ops"),
            main,
            other,
        }
    }

    /// A `[[listener]]` on 127.0.0.1:`port` with the server certificate; `mtls`: clients
    /// must present one from the CA. `extra`: more keys for the block.
    pub fn listener(&self, port: u16, mtls: bool, extra: &str) -> String {
        let ca = if mtls {
            format!("tls_client_ca = \"{}\"\n", p(&self.ca))
        } else {
            String::new()
        };
        format!(
            "[[listener]]\naddress = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             {ca}{extra}\n",
            p(&self.server.cert),
            p(&self.server.key)
        )
    }

    /// ship's flags to trust the CA and, with `client`, present that certificate.
    pub fn ship_args(&self, client: Option<&CertFiles>) -> Vec<String> {
        let mut args = vec!["--tls-ca".to_string(), p(&self.ca)];
        if let Some(c) = client {
            args.extend([
                "--tls-cert".into(),
                p(&c.cert),
                "--tls-key".into(),
                p(&c.key),
            ]);
        }
        args
    }
}

/// `[[client]]` blocks for the three clients: `web` writes `web.*`, `relay` anything, `ops`
/// anything and is an admin.
pub const CLIENTS: &str = r#"
[[client]]
name = "web"
certificate_names = ["web01"]
categories = ["web.*"]

[[client]]
name = "relay"
certificate_names = ["relay"]
categories = ["*"]

[[client]]
name = "ops"
certificate_names = ["ops"]
categories = ["*"]
admin = true
"#;

/// A scribed on `data` with `config`.
pub fn launch(data: &Path, config: String) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    )
}

/// A path as config text.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}
