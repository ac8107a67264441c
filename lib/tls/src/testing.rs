//! Certificates for tests, made in-process with `rcgen` (no `openssl` binary): a CA, servers
//! and clients it signs, certificates outside their validity period, and a second CA whose
//! certificates the first does not trust. Each is written as PEM files in a directory the
//! test owns, because the programs under test read files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// 1975 to 4096.
    Current,
    /// Ended in 2021.
    Expired,
    /// Starts in 2090.
    NotYetValid,
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A server: names `localhost`, `127.0.0.1` and `::1` besides its common name.
    Server,
    /// A client: its common name, and the DNS name `<name>.clients.test`.
    Client,
}

/// A test certificate authority writing into one directory.
pub struct TestPki {
    dir: PathBuf,
    name: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestPki {
    /// A new CA named `name`, its certificate written to `<dir>/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> TestPki {
        std::fs::create_dir_all(dir).expect("creating the test PKI directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let pki = TestPki {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            ca,
        };
        std::fs::write(pki.ca(), pki.ca.pem()).expect("writing the CA certificate");
        pki
    }

    /// The CA certificate's file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A current server certificate for `name` (also valid for localhost and 127.0.0.1).
    pub fn server(&self, name: &str) -> CertFiles {
        self.issue(name, Role::Server, Validity::Current)
    }

    /// A current client certificate with common name `name`.
    pub fn client(&self, name: &str) -> CertFiles {
        self.issue(name, Role::Client, Validity::Current)
    }

    /// A certificate for `name`, written to `<dir>/<name>.pem` and `<dir>/<name>.key`.
    pub fn issue(&self, name: &str, role: Role, validity: Validity) -> CertFiles {
        let sans = match role {
            Role::Server => vec![name.to_string(), "localhost".to_string()],
            Role::Client => vec![format!("{name}.clients.test")],
        };
        let mut params = CertificateParams::new(sans).expect("certificate params");
        if role == Role::Server {
            for ip in ["127.0.0.1", "::1"] {
                params
                    .subject_alt_names
                    .push(rcgen::SanType::IpAddress(ip.parse().expect("an IP")));
            }
        }
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![match role {
            Role::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Role::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        match validity {
            Validity::Current => {}
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            Validity::NotYetValid => {
                params.not_before = rcgen::date_time_ymd(2090, 1, 1);
                params.not_after = rcgen::date_time_ymd(2091, 1, 1);
            }
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("signing");
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("writing a certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("writing a key");
        files
    }
}
