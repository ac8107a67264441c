//! Bearer tokens: read from a file (so they stay out of command lines and `ps`), compared in
//! constant time (so a remote peer cannot learn a token byte by byte from response times).

use std::path::Path;

use subtle::ConstantTimeEq;

use crate::TlsError;

/// Longest token accepted, in bytes. Tokens are sent in handshakes whose size is bounded.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A secret shared between a client and a server.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl Token {
    /// Reads a token file: its contents without the trailing newline (and `\r`). Empty files,
    /// tokens over `MAX_TOKEN_LEN` (4096 bytes) and tokens with whitespace or control bytes inside are
    /// refused: each is an editing mistake that would otherwise fail far from its cause.
    pub fn from_file(path: &Path) -> Result<Token, TlsError> {
        let content = |problem: &str| TlsError::Content {
            what: "token file",
            path: path.to_path_buf(),
            problem: problem.to_string(),
        };
        let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
            what: "token file",
            path: path.to_path_buf(),
            source,
        })?;
        if meta.len() > MAX_TOKEN_LEN as u64 + 2 {
            return Err(content("longer than 4096 bytes"));
        }
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            what: "token file",
            path: path.to_path_buf(),
            source,
        })?;
        let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        Token::new(text.to_vec()).map_err(content)
    }

    /// A token from bytes, with the same rules as [`Token::from_file`].
    pub fn new(bytes: Vec<u8>) -> Result<Token, &'static str> {
        if bytes.is_empty() {
            return Err("is empty");
        }
        if bytes.len() > MAX_TOKEN_LEN {
            return Err("longer than 4096 bytes");
        }
        if bytes
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("holds whitespace or control characters inside the token");
        }
        Ok(Token(bytes))
    }

    /// The token's bytes, to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `offered` is this token, in time that depends only on the lengths.
    pub fn matches(&self, offered: &[u8]) -> bool {
        self.0.ct_eq(offered).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_trimmed_checked_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "s3cret-token\r\n").unwrap();
        let t = Token::from_file(&path).unwrap();
        assert!(t.matches(b"s3cret-token"));
        assert!(!t.matches(b"s3cret-tokem"));
        assert!(!t.matches(b"s3cret"));
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        for bad in ["", "\n", "two words\n", "x".repeat(5000).as_str()] {
            std::fs::write(&path, bad).unwrap();
            let e = Token::from_file(&path).unwrap_err().to_string();
            assert!(
                e.contains("token file") && e.contains(path.to_str().unwrap()),
                "{e}"
            );
        }
    }
}
