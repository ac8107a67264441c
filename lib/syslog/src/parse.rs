//! Parsing one syslog message: RFC 5424, and RFC 3164 in the forms seen in the wild.
//!
//! - RFC 5424: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
//!   STRUCTURED-DATA [SP MSG]`; `-` is the nil value; structured data is parsed (with its
//!   `\"`, `\\`, `\]` escapes); a UTF-8 BOM at the start of MSG is dropped.
//! - RFC 3164: `[<PRI>][TIMESTAMP SP][HOSTNAME SP][TAG[\[PID\]]: ]MSG`, where TIMESTAMP is
//!   `Mmm dd hh:mm:ss` (the day space-padded or not, fractions allowed) or rsyslog's ISO 8601
//!   variant; the hostname is absent when the word after the timestamp is already the tag.
//!
//! Input that has neither a `<PRI>` nor a 3164 timestamp at its start is not syslog: that is
//! a [`ParseError`], and the caller keeps it as received. Nothing here allocates in
//! proportion to the input except structured-data values that carry escapes.

use std::borrow::Cow;

/// Which RFC a message followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// One SD-ELEMENT: `[id name="value" ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A parsed message, borrowing from the bytes it was parsed from. `None` is "absent or nil".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub format: Format,
    /// Facility 0..=23 and severity 0..=7, from `<PRI>`.
    pub pri: Option<(u8, u8)>,
    pub timestamp: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    /// The free-form message (a leading BOM dropped).
    pub msg: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no <PRI> and no RFC 3164 timestamp at the start")]
    NotSyslog,
    #[error("bad <PRI>")]
    BadPri,
    #[error("RFC 5424 header: {0}")]
    Header(&'static str),
    #[error("RFC 5424 structured data: {0}")]
    StructuredData(&'static str),
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// The keyword of facility `f` (`user`, `local0`, ...).
pub fn facility_name(f: u8) -> &'static str {
    FACILITIES.get(f as usize).copied().unwrap_or("unknown")
}

/// The keyword of severity `s` (`err`, `info`, ...).
pub fn severity_name(s: u8) -> &'static str {
    SEVERITIES.get(s as usize).copied().unwrap_or("unknown")
}

impl Message<'_> {
    pub fn facility(&self) -> Option<&'static str> {
        self.pri.map(|(f, _)| facility_name(f))
    }
    pub fn severity(&self) -> Option<&'static str> {
        self.pri.map(|(_, s)| severity_name(s))
    }
}

/// Parses one message (without its transport framing).
pub fn parse(input: &[u8]) -> Result<Message<'_>, ParseError> {
    let (pri, rest) = match input.first() {
        Some(b'<') => {
            let (pri, rest) = parse_pri(input)?;
            (Some(pri), rest)
        }
        _ => (None, input),
    };
    if pri.is_some() {
        // `<PRI>1 ` is RFC 5424 (VERSION is a nonzero number; only 1 is defined).
        let digits = rest
            .iter()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if (1..=2).contains(&digits) && rest[0] != b'0' && rest.get(digits) == Some(&b' ') {
            return parse_5424(pri, &rest[digits + 1..]);
        }
    }
    parse_3164(pri, rest)
}

fn parse_pri(input: &[u8]) -> Result<((u8, u8), &[u8]), ParseError> {
    let end = input
        .iter()
        .take(5)
        .position(|&b| b == b'>')
        .ok_or(ParseError::BadPri)?;
    let digits = &input[1..end];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(ParseError::BadPri);
    }
    let v: u16 = digits.iter().fold(0, |v, d| v * 10 + u16::from(d - b'0'));
    if v > 191 {
        return Err(ParseError::BadPri);
    }
    Ok((((v / 8) as u8, (v % 8) as u8), &input[end + 1..]))
}

/// The next space-delimited header field (printable ASCII, at most `max` bytes); `-` is nil.
fn field<'a>(
    rest: &mut &'a [u8],
    max: usize,
    what: &'static str,
) -> Result<Option<&'a str>, ParseError> {
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let word = &rest[..end];
    if word.is_empty() || word.len() > max || !word.iter().all(|b| (33..=126).contains(b)) {
        return Err(ParseError::Header(what));
    }
    *rest = &rest[end..];
    // Printable ASCII: valid UTF-8.
    let word = std::str::from_utf8(word).map_err(|_| ParseError::Header(what))?;
    Ok((word != "-").then_some(word))
}

fn space(rest: &mut &[u8], what: &'static str) -> Result<(), ParseError> {
    match rest.split_first() {
        Some((b' ', tail)) => {
            *rest = tail;
            Ok(())
        }
        _ => Err(ParseError::Header(what)),
    }
}

fn parse_5424(pri: Option<(u8, u8)>, mut rest: &[u8]) -> Result<Message<'_>, ParseError> {
    let r = &mut rest;
    let timestamp = field(r, 64, "TIMESTAMP")?;
    space(r, "HOSTNAME missing")?;
    let hostname = field(r, 255, "HOSTNAME")?;
    space(r, "APP-NAME missing")?;
    let app_name = field(r, 48, "APP-NAME")?;
    space(r, "PROCID missing")?;
    let procid = field(r, 128, "PROCID")?;
    space(r, "MSGID missing")?;
    let msgid = field(r, 32, "MSGID")?;
    space(r, "STRUCTURED-DATA missing")?;
    let structured_data = parse_sd(r)?;
    let msg = match r.split_first() {
        None => &[][..],
        Some((b' ', m)) => m.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(m),
        Some(_) => return Err(ParseError::StructuredData("no space before MSG")),
    };
    Ok(Message {
        format: Format::Rfc5424,
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
    })
}

/// An SD-NAME: 1..=32 printable ASCII bytes except `=`, SP, `]`, `"`.
fn sd_name<'a>(r: &mut &'a [u8]) -> Result<&'a str, ParseError> {
    let end = r
        .iter()
        .position(|&b| !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"'))
        .unwrap_or(r.len());
    if end == 0 || end > 32 {
        return Err(ParseError::StructuredData("bad SD-ID or PARAM-NAME"));
    }
    let name =
        std::str::from_utf8(&r[..end]).map_err(|_| ParseError::StructuredData("bad name"))?;
    *r = &r[end..];
    Ok(name)
}

fn parse_sd<'a>(r: &mut &'a [u8]) -> Result<Vec<SdElement<'a>>, ParseError> {
    if let Some(tail) = r.strip_prefix(b"-") {
        *r = tail;
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    while let Some(tail) = r.strip_prefix(b"[") {
        *r = tail;
        let id = sd_name(r)?;
        let mut params = Vec::new();
        loop {
            match r.split_first() {
                Some((b']', tail)) => {
                    *r = tail;
                    break;
                }
                Some((b' ', tail)) => {
                    *r = tail;
                    let name = sd_name(r)?;
                    let tail = r
                        .strip_prefix(b"=\"")
                        .ok_or(ParseError::StructuredData("expected =\" after PARAM-NAME"))?;
                    *r = tail;
                    params.push((name, sd_value(r)?));
                }
                _ => return Err(ParseError::StructuredData("unterminated SD-ELEMENT")),
            }
        }
        elements.push(SdElement { id, params });
    }
    if elements.is_empty() {
        return Err(ParseError::StructuredData("neither - nor ["));
    }
    Ok(elements)
}

/// A PARAM-VALUE up to its closing quote, unescaped (`\"`, `\\`, `\]`; any other backslash is
/// kept, as RFC 5424 says).
fn sd_value<'a>(r: &mut &'a [u8]) -> Result<Cow<'a, str>, ParseError> {
    let mut i = 0;
    let mut escaped = false;
    while i < r.len() {
        match r[i] {
            b'\\' if i + 1 < r.len() && matches!(r[i + 1], b'"' | b'\\' | b']') => {
                escaped = true;
                i += 2;
            }
            b'"' => break,
            _ => i += 1,
        }
    }
    if i >= r.len() {
        return Err(ParseError::StructuredData("unterminated PARAM-VALUE"));
    }
    let raw = &r[..i];
    *r = &r[i + 1..];
    let text = String::from_utf8_lossy(raw);
    if !escaped {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, '"' | '\\' | ']') {
                    out.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    Ok(Cow::Owned(out))
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Length of a 3164 timestamp at the start of `s` (not counting the space after it).
fn bsd_timestamp(s: &[u8]) -> Option<usize> {
    if s.len() < 15 || !MONTHS.iter().any(|m| &s[..3] == *m) || s[3] != b' ' {
        return None;
    }
    // `Dec  4`, `Dec 04` or `Dec 4`.
    let day_end = match (s[4], s[5]) {
        (b' ', d) if d.is_ascii_digit() => 6,
        (a, b) if a.is_ascii_digit() && b.is_ascii_digit() => 6,
        (a, b' ') if a.is_ascii_digit() => 5,
        _ => return None,
    };
    let t = s.get(day_end..day_end + 9)?;
    let ok = t[0] == b' '
        && t[1..3].iter().all(u8::is_ascii_digit)
        && t[3] == b':'
        && t[4..6].iter().all(u8::is_ascii_digit)
        && t[6] == b':'
        && t[7..9].iter().all(u8::is_ascii_digit);
    if !ok {
        return None;
    }
    let mut end = day_end + 9;
    if s.get(end) == Some(&b'.') {
        end += 1 + s[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    }
    Some(end)
}

/// Length of an ISO 8601 timestamp (`2024-12-04T10:00:00[.frac](Z|+hh:mm)`) at the start.
fn iso_timestamp(s: &[u8]) -> Option<usize> {
    let d = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| s.get(i) == Some(&c);
    let date = (0..4).all(d) && at(4, b'-') && d(5) && d(6) && at(7, b'-') && d(8) && d(9);
    if !(date
        && at(10, b'T')
        && d(11)
        && d(12)
        && at(13, b':')
        && d(14)
        && d(15)
        && at(16, b':')
        && d(17)
        && d(18))
    {
        return None;
    }
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    (end <= 40).then_some(end)
}

fn parse_3164(pri: Option<(u8, u8)>, rest: &[u8]) -> Result<Message<'_>, ParseError> {
    let stamp = bsd_timestamp(rest).or_else(|| iso_timestamp(rest));
    if pri.is_none() && stamp.is_none() {
        return Err(ParseError::NotSyslog);
    }
    let (timestamp, mut rest) = match stamp {
        // ASCII, checked above.
        Some(n) => (
            std::str::from_utf8(&rest[..n]).ok(),
            rest[n..].strip_prefix(b" ").unwrap_or(&rest[n..]),
        ),
        None => (None, rest),
    };
    let mut hostname = None;
    if timestamp.is_some() {
        // The word after the timestamp is the hostname unless it is already the tag.
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let word = &rest[..end];
        let is_tag = word.ends_with(b":") || word.contains(&b'[');
        if !is_tag && end < rest.len() && !word.is_empty() && word.len() <= 255 {
            hostname = std::str::from_utf8(word).ok();
            rest = &rest[end + 1..];
        }
    }
    let (app_name, procid, msg) = tag(rest);
    Ok(Message {
        format: Format::Rfc3164,
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: Vec::new(),
        msg,
    })
}

/// `TAG[PID]: MSG` or `TAG: MSG`; without such a tag, the whole is the message.
fn tag(rest: &[u8]) -> (Option<&str>, Option<&str>, &[u8]) {
    let none = (None, None, rest);
    let end = rest
        .iter()
        .take(49)
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    if end == 0 || end > 48 {
        return none;
    }
    let Ok(app) = std::str::from_utf8(&rest[..end]) else {
        return none;
    };
    let mut after = &rest[end..];
    let mut procid = None;
    if let Some(tail) = after.strip_prefix(b"[") {
        let Some(close) = tail.iter().take(129).position(|&b| b == b']') else {
            return none;
        };
        procid = std::str::from_utf8(&tail[..close]).ok();
        after = &tail[close + 1..];
    }
    match after.strip_prefix(b":") {
        Some(m) => (Some(app), procid, m.strip_prefix(b" ").unwrap_or(m)),
        None => none,
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
