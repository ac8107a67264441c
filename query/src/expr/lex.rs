//! Tokens of filter and aggregate expressions.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name (`status`, `a.b`, `NF`, a function) or `$N`.
    Field(String),
    Str(String),
    Regex(String, bool),
    /// An unsigned number (a leading `-` is the unary operator).
    Num(f64),
    Op(&'static str),
    /// `$` before something other than digits: `$NF`, `$(NF-1)`.
    Dollar,
    LParen,
    RParen,
    Comma,
}

/// A token and the byte range of the source it came from.
pub type Spanned = (usize, usize, Tok);

fn err(pos: usize, msg: &str) -> ParseError {
    ParseError {
        pos,
        msg: msg.to_string(),
    }
}

pub fn tokenize(src: &str) -> Result<Vec<Spanned>, ParseError> {
    let b = src.as_bytes();
    let mut out: Vec<Spanned> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let prev_is_match = matches!(out.last(), Some((_, _, Tok::Op("~" | "!~"))));
        let tok = match c {
            b'(' | b')' | b',' => {
                i += 1;
                match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    _ => Tok::Comma,
                }
            }
            b'"' | b'\'' => {
                let (s, next) = string(src, i)?;
                i = next;
                Tok::Str(s)
            }
            b'/' if prev_is_match => {
                let (s, next) = regex(src, i)?;
                i = next;
                let ci = b.get(i) == Some(&b'i');
                i += ci as usize;
                Tok::Regex(s, ci)
            }
            b'$' => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == start + 1 {
                    Tok::Dollar
                } else {
                    Tok::Field(src[start..i].to_string())
                }
            }
            // An exponent may have a sign (`1e-3`).
            b'0'..=b'9' | b'.' => {
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_digit()
                        || b[i] == b'.'
                        || b[i] == b'e'
                        || (b"+-".contains(&b[i]) && b[i - 1] == b'e'))
                {
                    i += 1;
                }
                let n = src[start..i]
                    .parse()
                    .map_err(|_| err(start, "bad number"))?;
                Tok::Num(n)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'@' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_.@".contains(&b[i])) {
                    i += 1;
                }
                match &src[start..i] {
                    "and" => Tok::Op("&&"),
                    "or" => Tok::Op("||"),
                    "not" => Tok::Op("!"),
                    name => Tok::Field(name.to_string()),
                }
            }
            _ => {
                const OPS: [&str; 17] = [
                    "==", "!=", "<=", ">=", "&&", "||", "!~", "<", ">", "~", "!", "=", "+", "-",
                    "*", "/", "%",
                ];
                let op = OPS
                    .iter()
                    .find(|op| src[i..].starts_with(**op))
                    .ok_or_else(|| {
                        let ch = src[i..].chars().next().unwrap_or('?');
                        err(start, &format!("unexpected character {ch:?}"))
                    })?;
                i += op.len();
                // A lone `=` is a typo for `==` often enough to accept it.
                Tok::Op(if *op == "=" { "==" } else { op })
            }
        };
        out.push((start, i, tok));
    }
    Ok(out)
}

/// A quoted string starting at `i`; `\` before the quote character escapes it, other escapes
/// are kept for the regex engine (`"\d+"`). Returns the text and where it ends.
fn string(src: &str, i: usize) -> Result<(String, usize), ParseError> {
    let b = src.as_bytes();
    let q = b[i];
    let mut s = String::new();
    let mut j = i + 1;
    loop {
        let Some(&ch) = b.get(j) else {
            return Err(err(i, "unterminated string"));
        };
        if ch == q {
            return Ok((s, j + 1));
        }
        if ch == b'\\' && b.get(j + 1) == Some(&q) {
            s.push(q as char);
            j += 2;
            continue;
        }
        let len = utf8_len(ch);
        s.push_str(&src[j..j + len]);
        j += len;
    }
}

/// A `/regex/` starting at `i` (`\/` is a slash).
fn regex(src: &str, i: usize) -> Result<(String, usize), ParseError> {
    let b = src.as_bytes();
    let mut s = String::new();
    let mut j = i + 1;
    loop {
        let Some(&ch) = b.get(j) else {
            return Err(err(i, "unterminated /regex/"));
        };
        if ch == b'/' {
            return Ok((s, j + 1));
        }
        if ch == b'\\' && b.get(j + 1) == Some(&b'/') {
            s.push('/');
            j += 2;
            continue;
        }
        let len = utf8_len(ch);
        s.push_str(&src[j..j + len]);
        j += len;
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}
