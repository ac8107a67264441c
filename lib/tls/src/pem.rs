//! PEM files: certificate chains, private keys and CA bundles, read with `rustls-pki-types`
//! (not the unmaintained `rustls-pemfile`). Every error names the file and what was wrong
//! with it, because "bad certificate" without a path is the first thing an operator rotating
//! files at 3 a.m. would curse.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// Largest PEM file read: certificates and bundles are kilobytes; a path pointing at a log
/// file by mistake must not be read whole into memory.
const MAX_PEM_BYTES: u64 = 4 << 20;

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let err = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(content(what, path, "larger than 4 MiB: not a PEM file"));
    }
    Ok(bytes)
}

fn content(what: &'static str, path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Content {
        what,
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Reads every `CERTIFICATE` block of `path` (a chain: the end-entity certificate first).
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(what, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content(what, path, "holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Reads the private key of `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("private key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "holds no PRIVATE KEY block (PKCS#8, RSA or EC)".to_string()
            }
            e => format!("not a valid private key: {e}"),
        };
        content("private key", path, problem)
    })
}

/// Reads a CA bundle into a root store.
pub fn root_store(what: &'static str, path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(what, path)? {
        roots
            .add(cert)
            .map_err(|e| content(what, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The system's trusted roots (Debian: `/etc/ssl/certs`), for clients given no CA file.
pub fn system_roots() -> Result<rustls::RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the system has no CA certificates".into());
        return Err(TlsError::NoRoots(why));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = certificates("certificate", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("reading certificate ") && e.contains("missing.pem"),
            "{e}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = certificates("certificate", &junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = private_key(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PRIVATE KEY"),
            "{e}"
        );
    }
}
