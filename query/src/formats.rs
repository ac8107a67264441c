//! Line formats and named fields: Apache/NCSA common and combined (and nginx's `combined`,
//! the same shape), syslog RFC 3164 and RFC 5424, JSON lines, logfmt, and plain
//! whitespace-separated text. Each is detected from a line or forced with `--format`.
//!
//! A [`Record`] parses its line lazily and at most once: a query that only needs `$3` never
//! parses the access-log structure, and one that needs `status` and `time` parses it once.

use std::borrow::Cow;

use crate::cli::FormatArg;
use crate::custom::Custom;
use crate::errorlog::{self, ErrorLog};
use crate::lines::blank_split;
use crate::timefmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Clf,
    Syslog3164,
    Syslog5424,
    Json,
    Logfmt,
    NginxError,
    ApacheError,
    Plain,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Clf => Format::Clf,
            FormatArg::Syslog => Format::Syslog3164,
            FormatArg::Syslog5424 => Format::Syslog5424,
            FormatArg::Json => Format::Json,
            FormatArg::Logfmt => Format::Logfmt,
            FormatArg::NginxError => Format::NginxError,
            FormatArg::ApacheError => Format::ApacheError,
            FormatArg::Plain => Format::Plain,
        }
    }
}

/// Guesses the format of a line. Structured formats are tried strictest first; anything else
/// is plain text (where only `$N` fields and a leading ISO timestamp are known).
pub fn detect(line: &[u8]) -> Format {
    let line = line.trim_ascii();
    if line.first() == Some(&b'{') && parse_json(line).is_some() {
        return Format::Json;
    }
    if is_clf(line) {
        return Format::Clf;
    }
    match errorlog::detect(line) {
        Some(errorlog::Kind::Nginx) => return Format::NginxError,
        Some(errorlog::Kind::Apache) => return Format::ApacheError,
        None => {}
    }
    if parse_5424(line).is_some() {
        return Format::Syslog5424;
    }
    if parse_3164(line).is_some() {
        return Format::Syslog3164;
    }
    // Most plain lines have no `=`: skip building their pair list.
    if memchr::memchr(b'=', line).is_none() {
        return Format::Plain;
    }
    let pairs = logfmt_pairs(line);
    if pairs.len() >= 2 && pairs.iter().all(|(k, _)| !k.is_empty()) && line.contains(&b'=') {
        let words = blank_split(line).count();
        if pairs.len() * 2 >= words {
            return Format::Logfmt;
        }
    }
    Format::Plain
}

/// A JSON line's value. A line with an invalid UTF-8 byte (a truncated multi-byte character
/// from a logger that cuts at a byte limit) is decoded lossily, the bad bytes becoming U+FFFD,
/// so that its other fields still answer.
pub fn parse_json(line: &[u8]) -> Option<serde_json::Value> {
    match serde_json::from_slice(line) {
        Ok(v) => Some(v),
        Err(_) if std::str::from_utf8(line).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(line)).ok()
        }
        Err(_) => None,
    }
}

/// A key of a JSON object by dotted name: `a.b` is key `b` of object `a`, or the key `a.b`
/// itself (ECS's flat `"log.level"`), the longest literal key first at each level; `a.0` is
/// an array's first item.
pub fn json_lookup<'v>(v: &'v serde_json::Value, name: &str) -> Option<&'v serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(x) = m.get(name) {
                return Some(x);
            }
            // Split at each dot, longest first key last: a nested walk stays cheap
            // (names are short) and never recurses deeper than the name has dots.
            name.match_indices('.').find_map(|(i, _)| {
                let head = m.get(&name[..i])?;
                json_lookup(head, &name[i + 1..])
            })
        }
        serde_json::Value::Array(a) => {
            let (idx, rest) = match name.split_once('.') {
                Some((i, rest)) => (i, Some(rest)),
                None => (name, None),
            };
            let item = a.get(idx.parse::<usize>().ok()?)?;
            match rest {
                Some(r) => json_lookup(item, r),
                None => Some(item),
            }
        }
        _ => None,
    }
}

/// Detects the format of every line on its own, so that a banner line or a stack trace in
/// the middle of a log does not decide how the other lines are read, and so that results do
/// not depend on where an input was cut into pieces: the format of a line is `detect(line)`
/// whatever came before it. The last structured format seen is only a hint tried first, to
/// skip the full detection on the common run of same-format lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detector {
    forced: Option<Format>,
    last: Option<Format>,
}

impl Detector {
    pub fn new(forced: Option<FormatArg>) -> Detector {
        Detector {
            forced: forced.map(Format::from),
            last: None,
        }
    }

    /// The line as a record in its format (forced, or detected).
    pub fn record<'a>(&mut self, line: &'a [u8], now: i64) -> Record<'a> {
        if let Some(f) = self.forced {
            return Record::new(line, f, now);
        }
        // The hint is taken only where it is sure to agree with `detect`: JSON and leading
        // blanks go through the full detection.
        let plain_start = line
            .first()
            .is_some_and(|&b| b != b'{' && !b.is_ascii_whitespace());
        if plain_start {
            match self.last {
                // Checking the shape only (not the referer and agent) keeps `count --by
                // minute` at the cost of finding the `[time]`; fields parse lazily later.
                Some(Format::Clf) => {
                    if let Some(head) = clf_head(line) {
                        let mut r = Record::new(line, Format::Clf, now);
                        r.clf_head = Some(head);
                        return r;
                    }
                }
                Some(Format::Syslog3164) if parse_3164(line).is_some() => {
                    return Record::new(line, Format::Syslog3164, now);
                }
                _ => {}
            }
        }
        let f = detect(line);
        if f != Format::Plain {
            self.last = Some(f);
        }
        Record::new(line, f, now)
    }
}

/// A field reference: `$0`, `$N`, or a name resolved per format at use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    Line,
    Num(usize),
    Name(String),
}

impl FieldRef {
    /// `$3`, `3`, `$0`, or a name (`ip`, `status`, JSON/logfmt keys, `a.b` for nested JSON).
    pub fn parse(s: &str) -> Option<FieldRef> {
        let s = s.trim();
        let digits = s.strip_prefix('$').unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let n: usize = digits.parse().ok()?;
            return Some(if n == 0 {
                FieldRef::Line
            } else {
                FieldRef::Num(n)
            });
        }
        if s.is_empty()
            || s.starts_with('$')
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
        {
            return None;
        }
        Some(FieldRef::Name(s.to_string()))
    }

    pub fn label(&self) -> String {
        match self {
            FieldRef::Line => "$0".into(),
            FieldRef::Num(n) => format!("${n}"),
            FieldRef::Name(s) => s.clone(),
        }
    }
}

/// Spans of an Apache/nginx access-log line.
#[derive(Debug, Clone, Copy)]
pub struct Clf<'a> {
    pub ip: &'a [u8],
    pub ident: &'a [u8],
    pub user: &'a [u8],
    pub time: &'a [u8],
    pub request: &'a [u8],
    pub status: &'a [u8],
    pub bytes: &'a [u8],
    pub referer: Option<&'a [u8]>,
    pub agent: Option<&'a [u8]>,
    /// `vhost_combined`'s leading `host:port`.
    pub vhost: Option<&'a [u8]>,
}

fn split_word(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = memchr::memchr(b' ', b)?;
    Some((&b[..i], &b[i + 1..]))
}

/// A double-quoted string at the start of `b` (backslash escapes skipped, left as is), and the
/// rest after the closing quote.
fn quoted(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = b.strip_prefix(b"\"")?;
    let mut i = 0;
    loop {
        let j = memchr::memchr2(b'"', b'\\', &b[i..])? + i;
        if b[j] == b'\\' {
            i = j + 2;
            if i > b.len() {
                return None;
            }
        } else {
            return Some((&b[..j], &b[j + 1..]));
        }
    }
}

/// The part of an access-log line that decides whether it is one: `host ident user [time]
/// "request" status`; returns the spans and the rest after the status.
/// The spans are `[ip, ident, user, time, request, status, vhost]` (`vhost` empty unless
/// the line is Apache's `vhost_combined`, which starts with `host:port`).
type ClfHead<'a> = ([&'a [u8]; 7], &'a [u8]);

fn clf_head(line: &[u8]) -> Option<ClfHead<'_>> {
    clf_head_plain(line).or_else(|| {
        let (vhost, rest) = split_word(line)?;
        let (_, port) = vhost.split_at(memchr::memrchr(b':', vhost)? + 1);
        if port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let (mut spans, rest) = clf_head_plain(rest)?;
        spans[6] = vhost;
        Some((spans, rest))
    })
}

fn clf_head_plain(line: &[u8]) -> Option<ClfHead<'_>> {
    let (ip, rest) = split_word(line)?;
    let (ident, rest) = split_word(rest)?;
    let (user, rest) = split_word(rest)?;
    let rest = rest.strip_prefix(b"[")?;
    let close = memchr::memchr(b']', rest)?;
    let time = &rest[..close];
    let rest = rest[close + 1..].strip_prefix(b" ")?;
    let (request, rest) = quoted(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (status, rest) = split_word(rest).unwrap_or((rest, b""));
    if status.len() != 3 || !status.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(([ip, ident, user, time, request, status, b""], rest))
}

/// Whether `parse_clf` accepts the line, without looking at its (long) referer and agent.
pub fn is_clf(line: &[u8]) -> bool {
    clf_head(line).is_some()
}

/// `host ident user [time] "request" status bytes ["referer" "agent"]`.
pub fn parse_clf(line: &[u8]) -> Option<Clf<'_>> {
    Some(clf_from_head(clf_head(line)?))
}

/// The rest of an access-log line after its [`clf_head`].
fn clf_from_head(head: ClfHead<'_>) -> Clf<'_> {
    let ([ip, ident, user, time, request, status, vhost], rest) = head;
    let (bytes, rest) = split_word(rest).unwrap_or((rest, b""));
    let (referer, agent) = match quoted(rest) {
        Some((r, rest)) => match rest.strip_prefix(b" ").and_then(quoted) {
            Some((a, _)) => (Some(r), Some(a)),
            None => (Some(r), None),
        },
        None => (None, None),
    };
    Clf {
        ip,
        ident,
        user,
        time,
        request,
        status,
        bytes,
        referer,
        agent,
        vhost: (!vhost.is_empty()).then_some(vhost),
    }
}

/// The time of an access-log line from its `[...]` alone: the bracket after the first three
/// space-separated words (a `[` inside an IPv6 host or user name is not taken for it).
fn clf_time(line: &[u8]) -> Option<i64> {
    let (_, rest) = split_word(line)?;
    let (_, rest) = split_word(rest)?;
    let (_, rest) = split_word(rest)?;
    let rest = rest.strip_prefix(b"[")?;
    let close = memchr::memchr(b']', rest)?;
    timefmt::parse_clf(&rest[..close])
}

impl<'a> Clf<'a> {
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        let mut req = self.request.splitn(3, |&b| b == b' ');
        Some(match name {
            "ip" | "host" | "remote_addr" | "client" => self.ip,
            "ident" => self.ident,
            "user" | "remote_user" => self.user,
            "time" | "timestamp" => self.time,
            "request" => self.request,
            "method" => req.next()?,
            "path" | "url" | "uri" => req.nth(1)?,
            "protocol" | "proto" => req.nth(2)?,
            "status" => self.status,
            "bytes" | "size" => self.bytes,
            "referer" | "referrer" => self.referer?,
            "agent" | "user_agent" | "ua" => self.agent?,
            "vhost" | "server" => self.vhost?,
            "port" => &self.vhost?[memchr::memrchr(b':', self.vhost?)? + 1..],
            _ => return None,
        })
    }
}

/// Spans of a syslog line (either RFC).
#[derive(Debug, Clone, Copy, Default)]
pub struct Syslog<'a> {
    pub pri: Option<&'a [u8]>,
    pub time: &'a [u8],
    pub host: &'a [u8],
    pub app: &'a [u8],
    pub pid: Option<&'a [u8]>,
    pub msgid: Option<&'a [u8]>,
    pub sd: Option<&'a [u8]>,
    pub msg: &'a [u8],
}

fn strip_pri(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if let Some(rest) = line.strip_prefix(b"<") {
        if let Some(i) = memchr::memchr(b'>', rest) {
            if i > 0 && i <= 3 && rest[..i].iter().all(u8::is_ascii_digit) {
                return (Some(&rest[..i]), &rest[i + 1..]);
            }
        }
    }
    (None, line)
}

/// `[<pri>]Mmm dd hh:mm:ss host tag[pid]: msg` (files written by rsyslog drop the `<pri>`).
pub fn parse_3164(line: &[u8]) -> Option<Syslog<'_>> {
    let (pri, rest) = strip_pri(line);
    let bsd = rest.len() >= 16
        && timefmt::month(&rest[..3]).is_some()
        && rest[15] == b' '
        && rest[9] == b':'
        && rest[12] == b':';
    let (ts, rest) = if bsd {
        (&rest[..15], &rest[16..])
    } else {
        // rsyslog's RSYSLOG_FileFormat: an RFC 3339 time in place of `Mmm dd hh:mm:ss`.
        let (ts, rest) = split_word(rest)?;
        match timefmt::parse_iso_prefix(ts) {
            Some((_, n)) if n == ts.len() && ts.len() > 19 => (ts, rest),
            _ => return None,
        }
    };
    let (host, rest) = split_word(rest)?;
    let (tag, msg) = match memchr::memchr(b':', rest) {
        Some(i) if !rest[..i].contains(&b' ') => (&rest[..i], rest[i + 1..].trim_ascii_start()),
        // An ISO time then two words is common in plain application logs: without a
        // `tag:` it is not taken for syslog.
        _ if !bsd => return None,
        _ => (&b""[..], rest),
    };
    if !bsd && tag.is_empty() {
        return None;
    }
    let (app, pid) = match (memchr::memchr(b'[', tag), tag.last()) {
        (Some(i), Some(b']')) => (&tag[..i], Some(&tag[i + 1..tag.len() - 1])),
        _ => (tag, None),
    };
    Some(Syslog {
        pri,
        time: ts,
        host,
        app,
        pid,
        msg,
        ..Syslog::default()
    })
}

/// `<pri>1 timestamp host app procid msgid [sd|-] msg`.
pub fn parse_5424(line: &[u8]) -> Option<Syslog<'_>> {
    let (pri, rest) = strip_pri(line);
    pri?;
    let rest = rest.strip_prefix(b"1 ")?;
    let (time, rest) = split_word(rest)?;
    if time != b"-" && timefmt::parse_iso(time).is_none() {
        return None;
    }
    let (host, rest) = split_word(rest)?;
    let (app, rest) = split_word(rest)?;
    let (procid, rest) = split_word(rest)?;
    let (msgid, rest) = split_word(rest).unwrap_or((rest, b""));
    let (sd, msg) = if rest.starts_with(b"[") {
        // Structured data: `[id k="v" ...]...`, values may hold escaped `]`.
        let mut i = 0;
        let mut in_quote = false;
        let mut end = rest.len();
        while i < rest.len() {
            match rest[i] {
                b'\\' => i += 1,
                b'"' => in_quote = !in_quote,
                b']' if !in_quote && rest.get(i + 1) != Some(&b'[') => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        (&rest[..end], rest.get(end + 1..).unwrap_or(b""))
    } else {
        split_word(rest).unwrap_or((rest, b""))
    };
    let nil = |b: &'_ [u8]| -> bool { b == b"-" };
    Some(Syslog {
        pri: Some(pri?),
        time,
        host,
        app,
        pid: (!nil(procid)).then_some(procid),
        msgid: (!nil(msgid)).then_some(msgid),
        sd: (!nil(sd)).then_some(sd),
        msg,
    })
}

impl<'a> Syslog<'a> {
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        match name {
            "pri" | "priority" => self.pri,
            "time" | "timestamp" => Some(self.time),
            "host" | "hostname" => Some(self.host),
            "app" | "tag" | "program" | "appname" => Some(self.app),
            "pid" | "procid" => self.pid,
            "msgid" => self.msgid,
            "sd" | "structured_data" => self.sd,
            "msg" | "message" => Some(self.msg),
            _ => None,
        }
    }
}

/// A logfmt key and its (unquoted, unescaped) value.
pub type Pair<'a> = (&'a [u8], Cow<'a, [u8]>);

/// `k=v k2="quoted \" v" flag` pairs (a bare key has an empty value).
pub fn logfmt_pairs(line: &[u8]) -> Vec<Pair<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        let ks = i;
        while i < line.len() && line[i] != b'=' && !line[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &line[ks..i];
        if key.is_empty() && i >= line.len() {
            break;
        }
        if i < line.len() && line[i] == b'=' {
            i += 1;
            if line.get(i) == Some(&b'"') {
                match quoted(&line[i..]) {
                    Some((v, rest)) => {
                        i = line.len() - rest.len();
                        out.push((key, unescape(v)));
                    }
                    None => {
                        out.push((key, Cow::Borrowed(&line[i..])));
                        i = line.len();
                    }
                }
            } else {
                let vs = i;
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    i += 1;
                }
                out.push((key, Cow::Borrowed(&line[vs..i])));
            }
        } else {
            out.push((key, Cow::Borrowed(&b""[..])));
            if key.is_empty() {
                i += 1;
            }
        }
    }
    out
}

fn unescape(v: &[u8]) -> Cow<'_, [u8]> {
    if !v.contains(&b'\\') {
        return Cow::Borrowed(v);
    }
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            match it.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(&o) => out.push(o),
                None => out.push(b'\\'),
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Keys JSON and logfmt logs commonly keep their timestamp under, tried in order.
pub const TIME_KEYS: [&str; 6] = ["time", "timestamp", "ts", "@timestamp", "t", "date"];

/// One line being evaluated, with its parse cached.
pub struct Record<'a> {
    pub line: &'a [u8],
    pub format: Format,
    /// `$1`, `$2`, ... split so far: only as far as the highest field asked for, so that a
    /// huge line of short words is never turned into a huge list.
    words: Vec<&'a [u8]>,
    /// The part of the line not split into `words` yet (`None`: splitting not started).
    words_rest: Option<&'a [u8]>,
    clf: Option<Option<Clf<'a>>>,
    /// The access-log head found by detection, so that neither the time nor the fields
    /// scan the start of the line again.
    clf_head: Option<ClfHead<'a>>,
    syslog: Option<Option<Syslog<'a>>>,
    json: Option<Option<serde_json::Value>>,
    logfmt: Option<Vec<Pair<'a>>>,
    errlog: Option<Option<ErrorLog<'a>>>,
    /// The `--parse` shape, and its match on this line once looked for.
    custom: Option<&'static Custom>,
    caps: Option<Option<regex::bytes::CaptureLocations>>,
    pub now: i64,
    /// The line number, 1-based over all inputs (set where `NR` is used; 0 elsewhere).
    pub nr: u64,
}

impl<'a> Record<'a> {
    pub fn new(line: &'a [u8], format: Format, now: i64) -> Record<'a> {
        Record {
            line,
            format,
            words: Vec::new(),
            words_rest: None,
            clf: None,
            clf_head: None,
            syslog: None,
            json: None,
            logfmt: None,
            errlog: None,
            custom: crate::custom::get(),
            caps: None,
            now,
            nr: 0,
        }
    }

    fn error_kind(&self) -> Option<errorlog::Kind> {
        match self.format {
            Format::NginxError => Some(errorlog::Kind::Nginx),
            Format::ApacheError => Some(errorlog::Kind::Apache),
            _ => None,
        }
    }

    fn errlog(&mut self) -> Option<&ErrorLog<'a>> {
        let kind = self.error_kind()?;
        let line = self.line;
        self.errlog
            .get_or_insert_with(|| errorlog::parse(line, kind))
            .as_ref()
    }

    /// Whether the `--parse` shape matches the line (false without one).
    pub fn custom_matches(&mut self) -> bool {
        let Some(c) = self.custom else { return false };
        let line = self.line;
        self.caps
            .get_or_insert_with(|| {
                let mut locs = c.re.capture_locations();
                c.re.captures_read(&mut locs, line).map(|_| locs)
            })
            .is_some()
    }

    /// A field of the `--parse` shape, if it matches the line and has the field (`method`,
    /// `path`, `protocol` also from a `request` field, as in an access log).
    fn custom_field(&mut self, c: &Custom, name: &str) -> Option<&'a [u8]> {
        let line = self.line;
        if !self.custom_matches() {
            return None;
        }
        let locs = self.caps.as_ref()?.as_ref()?;
        let span = |i: usize| locs.get(i).map(|(a, b)| &line[a..b]);
        if let Some(i) = c.group(name) {
            return span(i);
        }
        let part = ["method", "path", "protocol"]
            .iter()
            .position(|p| *p == name)?;
        let request = span(c.group("request")?)?;
        let mut words = request.splitn(3, |&b| b == b' ');
        words.nth(part)
    }

    pub fn get(&mut self, f: &FieldRef) -> Option<Cow<'a, [u8]>> {
        match f {
            FieldRef::Line => Some(Cow::Borrowed(self.line)),
            FieldRef::Num(n) => {
                let blank = |b: &u8| *b == b' ' || *b == b'\t';
                let rest = self.words_rest.get_or_insert(self.line);
                while self.words.len() < *n {
                    let from = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
                    let r = &rest[from..];
                    if r.is_empty() {
                        *rest = r;
                        break;
                    }
                    let end = r.iter().position(blank).unwrap_or(r.len());
                    self.words.push(&r[..end]);
                    *rest = &r[end..];
                }
                self.words.get(n.checked_sub(1)?).map(|w| Cow::Borrowed(*w))
            }
            FieldRef::Name(name) => self.named(name),
        }
    }

    /// The number of whitespace-separated fields (awk's `NF`), counted without storing them.
    pub fn nf(&mut self) -> usize {
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let rest = self.words_rest.unwrap_or(self.line);
        let mut n = self.words.len();
        let mut in_word = false;
        for b in rest {
            let word = !blank(b);
            n += (word && !in_word) as usize;
            in_word = word;
        }
        n
    }

    fn named(&mut self, name: &str) -> Option<Cow<'a, [u8]>> {
        if let Some(c) = self.custom {
            if let Some(v) = self.custom_field(c, name) {
                return Some(Cow::Borrowed(v));
            }
        }
        let line = self.line;
        match self.format {
            Format::Clf => {
                let head = self.clf_head;
                let clf = self
                    .clf
                    .get_or_insert_with(|| match head {
                        Some(h) => Some(clf_from_head(h)),
                        None => parse_clf(line),
                    })
                    .as_ref()?;
                clf.field(name).map(Cow::Borrowed)
            }
            Format::Syslog3164 | Format::Syslog5424 => {
                let fmt = self.format;
                let s = self
                    .syslog
                    .get_or_insert_with(|| {
                        if fmt == Format::Syslog5424 {
                            parse_5424(line)
                        } else {
                            parse_3164(line)
                        }
                    })
                    .as_ref()?;
                s.field(name).map(Cow::Borrowed)
            }
            Format::Json => {
                let v = self.json.get_or_insert_with(|| parse_json(line)).as_ref()?;
                let cur = json_lookup(v, name)?;
                Some(match cur {
                    serde_json::Value::String(s) => Cow::Owned(s.clone().into_bytes()),
                    serde_json::Value::Null => return None,
                    other => Cow::Owned(other.to_string().into_bytes()),
                })
            }
            Format::Logfmt => {
                let pairs = self.logfmt.get_or_insert_with(|| logfmt_pairs(line));
                pairs
                    .iter()
                    .find(|(k, _)| *k == name.as_bytes())
                    .map(|(_, v)| v.clone())
            }
            Format::NginxError | Format::ApacheError => {
                self.errlog()?.field(name).map(Cow::Borrowed)
            }
            Format::Plain => None,
        }
    }

    /// The line's time, Unix seconds, if it has one.
    pub fn time(&mut self) -> Option<i64> {
        if let Some(c) = self.custom {
            let now = self.now;
            let t = crate::custom::TIME_FIELDS.iter().find_map(|f| {
                c.names
                    .iter()
                    .any(|n| n.as_deref() == Some(*f))
                    .then_some(())?;
                let v = self.custom_field(c, f)?;
                timefmt::parse_any(v, now)
            });
            if t.is_some() {
                return t;
            }
        }
        match self.format {
            Format::Clf => match &self.clf {
                Some(clf) => timefmt::parse_clf(clf.as_ref()?.time),
                // Bucketing by time needs only `[...]`: skip parsing the rest of the line,
                // which is most of the per-line cost of `count --by minute`.
                None => match &self.clf_head {
                    Some(([_, _, _, time, ..], _)) => timefmt::parse_clf(time),
                    None => clf_time(self.line)
                        .or_else(|| timefmt::parse_clf(clf_head(self.line)?.0[3])),
                },
            },
            Format::Syslog3164 => {
                let t = self.named("time")?;
                timefmt::parse_3164(&t, self.now).or_else(|| timefmt::parse_iso(&t))
            }
            Format::NginxError | Format::ApacheError => {
                let kind = self.error_kind()?;
                self.errlog()?.unix_time(kind)
            }
            Format::Syslog5424 => timefmt::parse_iso(&self.named("time")?),
            Format::Json | Format::Logfmt => {
                let now = self.now;
                TIME_KEYS
                    .iter()
                    .find_map(|k| self.named(k).and_then(|v| timefmt::parse_any(&v, now)))
            }
            Format::Plain => timefmt::parse_iso_prefix(self.line.trim_ascii_start()).map(|t| t.0),
        }
    }
}
