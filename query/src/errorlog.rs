//! Web server error logs: nginx's `error_log` and Apache httpd's `ErrorLog` (2.2 and 2.4
//! shapes). Their times carry no zone and are taken as UTC, like other zone-less times.
//!
//! ```text
//! 2026/11/23 06:00:00 [error] 1234#5678: *99 open() "/x" failed, client: 10.0.0.1, server: a, request: "GET /x HTTP/1.1", host: "a"
//! [Mon Nov 23 06:00:00.123456 2026] [core:error] [pid 1234:tid 5678] [client 10.0.0.1:5555] AH00126: Invalid URI
//! [Mon Nov 23 06:00:00 2026] [error] [client 10.0.0.1] File does not exist: /x
//! ```

use crate::timefmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Apache,
}

/// Spans of an error-log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorLog<'a> {
    pub time: &'a [u8],
    pub level: &'a [u8],
    pub module: Option<&'a [u8]>,
    pub pid: Option<&'a [u8]>,
    pub tid: Option<&'a [u8]>,
    /// nginx's connection number (`*99`).
    pub cid: Option<&'a [u8]>,
    /// Apache's client `ip[:port]`, nginx's `client:` value.
    pub client: Option<&'a [u8]>,
    /// Apache's message code (`AH00126`).
    pub code: Option<&'a [u8]>,
    pub msg: &'a [u8],
    /// nginx: the `, key: value` list after the message.
    tail: &'a [u8],
}

/// Which error log a line is, from its first bytes.
pub fn detect(line: &[u8]) -> Option<Kind> {
    let nginx = line.len() > 21
        && line[4] == b'/'
        && line[7] == b'/'
        && line[10] == b' '
        && line[13] == b':'
        && line[16] == b':'
        && line[19] == b' '
        && line[20] == b'['
        && line[..4].iter().all(u8::is_ascii_digit);
    if nginx {
        return Some(Kind::Nginx);
    }
    let apache = line.len() > 26
        && line[0] == b'['
        && line[4] == b' '
        && timefmt::month(&line[5..8]).is_some()
        && parse_apache_time(&line[1..line.iter().position(|&b| b == b']')?]).is_some();
    apache.then_some(Kind::Apache)
}

pub fn parse(line: &[u8], kind: Kind) -> Option<ErrorLog<'_>> {
    match kind {
        Kind::Nginx => parse_nginx(line),
        Kind::Apache => parse_apache(line),
    }
}

fn parse_nginx(line: &[u8]) -> Option<ErrorLog<'_>> {
    let time = line.get(..19)?;
    let rest = line.get(20..)?.strip_prefix(b"[")?;
    let close = rest.iter().position(|&b| b == b']')?;
    let level = &rest[..close];
    let rest = rest[close + 1..].strip_prefix(b" ")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let (pid, tid) = match rest[..colon].iter().position(|&b| b == b'#') {
        Some(h) => (&rest[..h], Some(&rest[h + 1..colon])),
        None => (&rest[..colon], None),
    };
    let mut msg = rest[colon + 1..].trim_ascii_start();
    let mut cid = None;
    if let Some(r) = msg.strip_prefix(b"*") {
        let end = r.iter().position(|&b| b == b' ').unwrap_or(r.len());
        cid = Some(&r[..end]);
        msg = r[end..].trim_ascii_start();
    }
    let (msg, tail) = match find(msg, b", client: ") {
        Some(i) => (&msg[..i], &msg[i..]),
        None => (msg, &b""[..]),
    };
    let mut e = ErrorLog {
        time,
        level,
        pid: Some(pid),
        tid,
        cid,
        msg,
        tail,
        ..ErrorLog::default()
    };
    e.client = e.tail_value("client");
    Some(e)
}

fn parse_apache(line: &[u8]) -> Option<ErrorLog<'_>> {
    let mut rest = line;
    let mut groups = Vec::with_capacity(5);
    while let Some(r) = rest.strip_prefix(b"[") {
        let close = r.iter().position(|&b| b == b']')?;
        groups.push(&r[..close]);
        rest = r[close + 1..].trim_ascii_start();
        if groups.len() == 5 {
            break;
        }
    }
    let (&time, others) = groups.split_first()?;
    let mut e = ErrorLog {
        time,
        msg: rest,
        ..ErrorLog::default()
    };
    for g in others {
        if let Some(p) = g.strip_prefix(b"pid ") {
            match p.iter().position(|&b| b == b':') {
                Some(i) => {
                    e.pid = Some(&p[..i]);
                    e.tid = p[i + 1..].strip_prefix(b"tid ");
                }
                None => e.pid = Some(p),
            }
        } else if let Some(c) = g.strip_prefix(b"client ") {
            e.client = Some(c);
        } else if e.level.is_empty() {
            match g.iter().position(|&b| b == b':') {
                Some(i) => {
                    e.module = Some(&g[..i]);
                    e.level = &g[i + 1..];
                }
                None => e.level = g,
            }
        }
    }
    // `AH00126: message`.
    if let Some(i) = e.msg.iter().position(|&b| b == b':') {
        let code = &e.msg[..i];
        if code.len() == 7 && code.starts_with(b"AH") && code[2..].iter().all(u8::is_ascii_digit) {
            e.code = Some(code);
            e.msg = e.msg[i + 1..].trim_ascii_start();
        }
    }
    Some(e)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// The address of a client `ip[:port]` (IPv4 with a port, or an IPv6 address as is).
fn client_ip(c: &[u8]) -> &[u8] {
    match c.iter().rposition(|&b| b == b':') {
        Some(i) if c[..i].contains(&b'.') && !c[..i].contains(&b':') => &c[..i],
        _ => c,
    }
}

impl<'a> ErrorLog<'a> {
    /// nginx's `, key: value` after the message (a quoted value without its quotes).
    fn tail_value(&self, key: &str) -> Option<&'a [u8]> {
        let pat = format!(", {key}: ");
        let at = find(self.tail, pat.as_bytes())? + pat.len();
        let v = &self.tail[at..];
        if let Some(q) = v.strip_prefix(b"\"") {
            return q.iter().position(|&b| b == b'"').map(|e| &q[..e]);
        }
        Some(&v[..find(v, b", ").unwrap_or(v.len())])
    }

    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        let request = || self.tail_value("request");
        let part = |i: usize| request()?.splitn(3, |&b| b == b' ').nth(i);
        match name {
            "time" | "timestamp" => Some(self.time),
            "level" | "severity" => Some(self.level),
            "module" => self.module,
            "pid" => self.pid,
            "tid" => self.tid,
            "cid" | "connection" => self.cid,
            "client" => self.client,
            "ip" => self.client.map(client_ip),
            "code" => self.code,
            "msg" | "message" => Some(self.msg),
            "request" => request(),
            "method" => part(0),
            "path" | "url" | "uri" => part(1),
            "protocol" => part(2),
            "server" | "upstream" | "host" | "referrer" | "subrequest" => self.tail_value(name),
            _ => None,
        }
    }

    pub fn unix_time(&self, kind: Kind) -> Option<i64> {
        match kind {
            Kind::Nginx => parse_nginx_time(self.time),
            Kind::Apache => parse_apache_time(self.time),
        }
    }
}

/// Field names, for `logq fields`.
pub const NAMES: [&str; 15] = [
    "time", "level", "module", "pid", "tid", "cid", "client", "ip", "code", "msg", "server",
    "request", "method", "path", "host",
];

/// `2026/11/23 06:00:00`.
fn parse_nginx_time(b: &[u8]) -> Option<i64> {
    let mut iso = b.to_vec();
    if iso.len() != 19 {
        return None;
    }
    iso[4] = b'-';
    iso[7] = b'-';
    timefmt::parse_iso(&iso)
}

/// `Mon Nov 23 06:00:00[.123456] 2026`.
fn parse_apache_time(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let mut w = s.split_ascii_whitespace();
    let (_dow, mon, day, hms, year) = (w.next()?, w.next()?, w.next()?, w.next()?, w.next()?);
    let mo = timefmt::month(mon.as_bytes())?;
    let hms = hms.split('.').next()?;
    let iso = format!("{year}-{mo:02}-{:02}T{hms}", day.parse::<u32>().ok()?);
    timefmt::parse_iso(iso.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_lines() {
        let l = br#"2026/11/23 06:00:05 [error] 1234#5678: *99 open() "/x" failed (2: No such file), client: 10.0.0.1, server: a.example, request: "GET /x?y=1 HTTP/1.1", host: "a.example""#;
        assert_eq!(detect(l), Some(Kind::Nginx));
        let e = parse(l, Kind::Nginx).unwrap();
        let f = |n| std::str::from_utf8(e.field(n).unwrap()).unwrap();
        assert_eq!(f("level"), "error");
        assert_eq!(f("pid"), "1234");
        assert_eq!(f("tid"), "5678");
        assert_eq!(f("cid"), "99");
        assert_eq!(f("msg"), r#"open() "/x" failed (2: No such file)"#);
        assert_eq!(f("ip"), "10.0.0.1");
        assert_eq!(f("server"), "a.example");
        assert_eq!(f("path"), "/x?y=1");
        assert_eq!(f("host"), "a.example");
        assert_eq!(e.unix_time(Kind::Nginx), Some(1_795_413_605));
        let bare = b"2026/11/23 06:00:05 [notice] 1#1: signal process started";
        let e = parse(bare, Kind::Nginx).unwrap();
        assert_eq!(e.msg, b"signal process started");
        assert!(e.field("client").is_none());
    }

    #[test]
    fn apache_lines() {
        let l = b"[Mon Nov 23 06:00:05.123456 2026] [core:error] [pid 1234:tid 5678] [client 10.0.0.1:5555] AH00126: Invalid URI in request";
        assert_eq!(detect(l), Some(Kind::Apache));
        let e = parse(l, Kind::Apache).unwrap();
        let f = |n| std::str::from_utf8(e.field(n).unwrap()).unwrap();
        assert_eq!(f("module"), "core");
        assert_eq!(f("level"), "error");
        assert_eq!(f("pid"), "1234");
        assert_eq!(f("tid"), "5678");
        assert_eq!(f("ip"), "10.0.0.1");
        assert_eq!(f("code"), "AH00126");
        assert_eq!(f("msg"), "Invalid URI in request");
        assert_eq!(e.unix_time(Kind::Apache), Some(1_795_413_605));
        let old =
            b"[Mon Nov 23 06:00:05 2026] [error] [client 2001:db8::1] File does not exist: /x";
        let e = parse(old, Kind::Apache).unwrap();
        assert_eq!(e.level, b"error");
        assert_eq!(e.field("ip").unwrap(), b"2001:db8::1");
        assert_eq!(e.msg, b"File does not exist: /x");
        assert_eq!(detect(b"[not a time] x"), None);
    }
}
