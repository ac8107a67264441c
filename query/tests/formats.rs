//! Format detection and named fields on real-shaped lines of each supported format.

use logq::formats::{detect, FieldRef, Format, Record};
use logq::timefmt::parse_iso;

fn get(line: &str, fmt: Format, name: &str) -> Option<String> {
    let mut r = Record::new(
        line.as_bytes(),
        fmt,
        parse_iso(b"2026-11-23T12:00:00Z").unwrap(),
    );
    r.get(&FieldRef::parse(name).unwrap())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn time(line: &str, fmt: Format) -> Option<i64> {
    Record::new(
        line.as_bytes(),
        fmt,
        parse_iso(b"2026-11-23T12:00:00Z").unwrap(),
    )
    .time()
}

#[test]
fn apache_common_and_combined() {
    let common =
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
    assert_eq!(detect(common.as_bytes()), Format::Clf);
    assert_eq!(get(common, Format::Clf, "ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(get(common, Format::Clf, "user").as_deref(), Some("frank"));
    assert_eq!(get(common, Format::Clf, "method").as_deref(), Some("GET"));
    assert_eq!(
        get(common, Format::Clf, "path").as_deref(),
        Some("/apache_pb.gif")
    );
    assert_eq!(get(common, Format::Clf, "status").as_deref(), Some("200"));
    assert_eq!(get(common, Format::Clf, "bytes").as_deref(), Some("2326"));
    assert_eq!(get(common, Format::Clf, "agent"), None);
    assert_eq!(
        time(common, Format::Clf),
        parse_iso(b"2000-10-10T20:55:36Z")
    );
    // awk-style numbering still works on a detected format.
    assert_eq!(
        get(common, Format::Clf, "$7").as_deref(),
        Some("/apache_pb.gif")
    );

    let combined = r#"198.51.100.7 - - [23/Nov/2026:06:00:10 +0100] "POST /api/v1/login?next=%2F HTTP/1.1" 302 - "https://example.com/a \"q\"" "Mozilla/5.0 (X11; Linux x86_64)""#;
    assert_eq!(detect(combined.as_bytes()), Format::Clf);
    assert_eq!(get(combined, Format::Clf, "bytes").as_deref(), Some("-"));
    assert_eq!(
        get(combined, Format::Clf, "referer").as_deref(),
        Some(r#"https://example.com/a \"q\""#)
    );
    assert_eq!(
        get(combined, Format::Clf, "agent").as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64)")
    );
    assert_eq!(
        time(combined, Format::Clf),
        parse_iso(b"2026-11-23T05:00:10Z")
    );
}

#[test]
fn nginx_combined_and_ipv6() {
    let l = r#"2001:db8::1 - alice [23/Nov/2026:06:00:10 +0000] "GET /index.html HTTP/2.0" 200 0 "-" "curl/8.5.0" "10.0.0.9""#;
    assert_eq!(detect(l.as_bytes()), Format::Clf);
    assert_eq!(get(l, Format::Clf, "ip").as_deref(), Some("2001:db8::1"));
    assert_eq!(get(l, Format::Clf, "protocol").as_deref(), Some("HTTP/2.0"));
    assert_eq!(get(l, Format::Clf, "agent").as_deref(), Some("curl/8.5.0"));
}

#[test]
fn syslog_rfc3164() {
    let l = "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0";
    assert_eq!(detect(l.as_bytes()), Format::Syslog3164);
    assert_eq!(get(l, Format::Syslog3164, "host").as_deref(), Some("combo"));
    assert_eq!(
        get(l, Format::Syslog3164, "app").as_deref(),
        Some("sshd(pam_unix)")
    );
    assert_eq!(get(l, Format::Syslog3164, "pid").as_deref(), Some("19939"));
    assert_eq!(
        get(l, Format::Syslog3164, "msg").as_deref(),
        Some("authentication failure; logname= uid=0")
    );
    assert_eq!(
        time(l, Format::Syslog3164),
        parse_iso(b"2026-06-14T15:16:01Z")
    );
    let with_pri = "<34>Oct  1 22:14:15 mymachine su: 'su root' failed";
    assert_eq!(detect(with_pri.as_bytes()), Format::Syslog3164);
    assert_eq!(
        get(with_pri, Format::Syslog3164, "pri").as_deref(),
        Some("34")
    );
    assert_eq!(
        get(with_pri, Format::Syslog3164, "app").as_deref(),
        Some("su")
    );
    assert_eq!(
        time(with_pri, Format::Syslog3164),
        parse_iso(b"2026-10-01T22:14:15Z")
    );
}

#[test]
fn syslog_rfc5424() {
    let l = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8";
    assert_eq!(detect(l.as_bytes()), Format::Syslog5424);
    assert_eq!(
        get(l, Format::Syslog5424, "host").as_deref(),
        Some("mymachine.example.com")
    );
    assert_eq!(get(l, Format::Syslog5424, "app").as_deref(), Some("su"));
    assert_eq!(get(l, Format::Syslog5424, "pid"), None);
    assert_eq!(get(l, Format::Syslog5424, "msgid").as_deref(), Some("ID47"));
    assert_eq!(
        get(l, Format::Syslog5424, "msg").as_deref(),
        Some("BOM'su root' failed for lonvick on /dev/pts/8")
    );
    assert_eq!(
        time(l, Format::Syslog5424),
        parse_iso(b"2003-10-11T22:14:15Z")
    );
    let sd = r#"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [exampleSDID@32473 iut="3" eventSource="App]"] %% It's time"#;
    assert_eq!(
        get(sd, Format::Syslog5424, "sd").as_deref(),
        Some(r#"[exampleSDID@32473 iut="3" eventSource="App]"]"#)
    );
    assert_eq!(
        get(sd, Format::Syslog5424, "msg").as_deref(),
        Some("%% It's time")
    );
    assert_eq!(get(sd, Format::Syslog5424, "pid").as_deref(), Some("8710"));
}

#[test]
fn json_lines() {
    let l = r#"{"ts":"2026-11-23T06:00:00Z","level":"error","http":{"status":503,"path":"/api"},"msg":"upstream \"db\" down"}"#;
    assert_eq!(detect(l.as_bytes()), Format::Json);
    assert_eq!(get(l, Format::Json, "level").as_deref(), Some("error"));
    assert_eq!(get(l, Format::Json, "http.status").as_deref(), Some("503"));
    assert_eq!(
        get(l, Format::Json, "msg").as_deref(),
        Some(r#"upstream "db" down"#)
    );
    assert_eq!(get(l, Format::Json, "missing"), None);
    assert_eq!(time(l, Format::Json), parse_iso(b"2026-11-23T06:00:00Z"));
    let epoch_ms = r#"{"time":1795413600000,"x":1}"#;
    assert_eq!(time(epoch_ms, Format::Json), Some(1795413600));
}

#[test]
fn logfmt() {
    let l = r#"time=2026-11-23T06:00:00Z level=info msg="request done" path=/api status=200 dur=12.5ms"#;
    assert_eq!(detect(l.as_bytes()), Format::Logfmt);
    assert_eq!(
        get(l, Format::Logfmt, "msg").as_deref(),
        Some("request done")
    );
    assert_eq!(get(l, Format::Logfmt, "status").as_deref(), Some("200"));
    assert_eq!(time(l, Format::Logfmt), parse_iso(b"2026-11-23T06:00:00Z"));
}

#[test]
fn plain_text_falls_back_to_awk_fields() {
    let l = "root       123 25.0  0.1  12345  6789 ?  Ss  10:00  0:01 /usr/bin/python3 app.py";
    assert_eq!(detect(l.as_bytes()), Format::Plain);
    assert_eq!(get(l, Format::Plain, "$3").as_deref(), Some("25.0"));
    assert_eq!(
        get(l, Format::Plain, "$11").as_deref(),
        Some("/usr/bin/python3")
    );
    assert_eq!(get(l, Format::Plain, "$0").as_deref(), Some(l));
    assert_eq!(get(l, Format::Plain, "$99"), None);
    let stamped = "2026-11-23 06:00:01,123 ERROR worker died";
    assert_eq!(
        time(stamped, Format::Plain),
        parse_iso(b"2026-11-23T06:00:01Z")
    );
}

#[test]
fn rsyslog_iso_timestamps_vhost_combined_and_error_logs() {
    let iso = "2026-11-23T06:00:05.123456+01:00 web1 nginx[42]: upstream timed out";
    assert_eq!(detect(iso.as_bytes()), Format::Syslog3164);
    assert_eq!(
        get(iso, Format::Syslog3164, "host").as_deref(),
        Some("web1")
    );
    assert_eq!(
        get(iso, Format::Syslog3164, "app").as_deref(),
        Some("nginx")
    );
    assert_eq!(get(iso, Format::Syslog3164, "pid").as_deref(), Some("42"));
    assert_eq!(
        get(iso, Format::Syslog3164, "msg").as_deref(),
        Some("upstream timed out")
    );
    assert_eq!(
        time(iso, Format::Syslog3164),
        parse_iso(b"2026-11-23T05:00:05Z")
    );
    // An ISO time and words without a `tag:` stay plain text.
    assert_eq!(
        detect(b"2026-11-23T06:00:05Z INFO GET /a took 12ms"),
        Format::Plain
    );

    let vhost = r#"www.example.com:443 10.0.0.1 - - [23/Nov/2026:06:00:05 +0000] "GET /a HTTP/1.1" 200 512 "-" "curl/8""#;
    assert_eq!(detect(vhost.as_bytes()), Format::Clf);
    assert_eq!(
        get(vhost, Format::Clf, "vhost").as_deref(),
        Some("www.example.com:443")
    );
    assert_eq!(get(vhost, Format::Clf, "port").as_deref(), Some("443"));
    assert_eq!(get(vhost, Format::Clf, "ip").as_deref(), Some("10.0.0.1"));
    assert_eq!(get(vhost, Format::Clf, "agent").as_deref(), Some("curl/8"));
    assert_eq!(time(vhost, Format::Clf), parse_iso(b"2026-11-23T06:00:05Z"));

    let nginx = r#"2026/11/23 06:00:05 [error] 1234#5678: *99 open() "/x" failed, client: 10.0.0.1, server: a, request: "GET /x HTTP/1.1", host: "a""#;
    assert_eq!(detect(nginx.as_bytes()), Format::NginxError);
    assert_eq!(
        get(nginx, Format::NginxError, "level").as_deref(),
        Some("error")
    );
    assert_eq!(
        get(nginx, Format::NginxError, "ip").as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(
        get(nginx, Format::NginxError, "path").as_deref(),
        Some("/x")
    );
    assert_eq!(
        time(nginx, Format::NginxError),
        parse_iso(b"2026-11-23T06:00:05Z")
    );

    let apache = "[Mon Nov 23 06:00:05.123456 2026] [proxy:error] [pid 7:tid 8] [client 10.0.0.2:5555] AH01114: connect failed";
    assert_eq!(detect(apache.as_bytes()), Format::ApacheError);
    assert_eq!(
        get(apache, Format::ApacheError, "module").as_deref(),
        Some("proxy")
    );
    assert_eq!(
        get(apache, Format::ApacheError, "level").as_deref(),
        Some("error")
    );
    assert_eq!(
        get(apache, Format::ApacheError, "ip").as_deref(),
        Some("10.0.0.2")
    );
    assert_eq!(
        get(apache, Format::ApacheError, "code").as_deref(),
        Some("AH01114")
    );
    assert_eq!(
        time(apache, Format::ApacheError),
        parse_iso(b"2026-11-23T06:00:05Z")
    );
}
