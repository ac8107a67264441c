//! scribed's syslog input with real senders: util-linux `logger` (RFC 5424 and 3164, UDP and
//! TCP, octet counting) and Debian's rsyslog forwarding with `omfwd` (octet-counted and plain
//! TCP; 100,000 lines byte-exact; scribed stopped for 10 s in the middle). Bad input on each
//! port: garbage, a 10 MB frame, an octet count of 99999999999.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use pipeline_tests::inputs::{input_addr, rsyslogd_path, Rsyslogd};
use pipeline_tests::{
    check_order_no_loss, free_port, metric, read_category, wait_for, Launch, Scribed,
};

const CONFIG: &str = r#"
[[syslog]]
name = "tcp"
listen = "127.0.0.1:0"
max_message = "64K"

[[syslog]]
name = "udp"
listen = "127.0.0.1:0"
transport = "udp"
recv_buffer = "1M"

[[syslog]]
name = "norm"
listen = "127.0.0.1:0"
stored = "normalized"
category = "norm.{app_name}"
"#;

fn start(dir: &std::path::Path) -> Scribed {
    Scribed::launch(
        &dir.join("data"),
        Launch {
            config: Some(CONFIG.into()),
            ..Launch::default()
        },
    )
}

/// Waits (at most 10 s) until category `cat` holds a line containing `needle`; that line.
fn line_with(s: &Scribed, cat: &str, needle: &str) -> String {
    let mut found = String::new();
    wait_for(
        Duration::from_secs(10),
        &format!("{needle:?} in {cat}"),
        || {
            let text = String::from_utf8_lossy(&read_category(&s.data_dir, cat)).into_owned();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                found = l.to_string();
            }
            !found.is_empty()
        },
    );
    found
}

fn logger(args: &[&str], addr: &str, msg: &str) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("logger")
        .args(["-n", host, "-P", port])
        .args(args)
        .arg(msg)
        .output()
        .expect("running logger (util-linux)");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn logger_rfc5424_and_rfc3164_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let (tcp, udp, norm) = (
        input_addr(&s, "tcp"),
        input_addr(&s, "udp"),
        input_addr(&s, "norm"),
    );
    logger(
        &["-T", "--rfc5424", "-t", "t5424"],
        &tcp,
        "five four two four tcp",
    );
    logger(
        &["-T", "--rfc5424", "--octet-count", "-t", "t5424"],
        &tcp,
        "octet counted tcp",
    );
    logger(
        &["-T", "--rfc3164", "-t", "t3164"],
        &tcp,
        "three one six four tcp",
    );
    logger(
        &["-T", "--rfc3164", "--octet-count", "-t", "t3164"],
        &tcp,
        "3164 octet counted",
    );
    logger(
        &["-d", "--rfc5424", "-t", "u5424"],
        &udp,
        "five four two four udp",
    );
    logger(
        &["-d", "--rfc3164", "-t", "u3164", "-p", "local3.err"],
        &udp,
        "three one six four udp",
    );
    logger(
        &["-d", "--rfc3164", "-p", "local5.info", "-t", ""],
        &udp,
        "no tag at all",
    );
    logger(
        &[
            "-T",
            "--rfc5424",
            "--sd-id",
            "zoo@123",
            "--sd-param",
            "tiger=\"hungry\"",
            "--msgid",
            "M1",
            "-t",
            "n",
        ],
        &norm,
        "normalized one",
    );

    let l = line_with(&s, "syslog.t5424", "five four two four tcp");
    assert!(
        l.starts_with("<13>1 ") && l.ends_with(" five four two four tcp"),
        "stored as received: {l:?}"
    );
    line_with(&s, "syslog.t5424", "octet counted tcp");
    let l = line_with(&s, "syslog.t3164", "three one six four tcp");
    assert!(
        l.starts_with("<13>") && l.ends_with("t3164: three one six four tcp"),
        "{l:?}"
    );
    line_with(&s, "syslog.t3164", "3164 octet counted");
    line_with(&s, "syslog.u5424", "five four two four udp");
    let l = line_with(&s, "syslog.u3164", "three one six four udp");
    assert!(l.starts_with("<155>"), "local3.err is <155>: {l:?}");
    let l = line_with(&s, "norm.n", "normalized one");
    let v: serde_json::Value = serde_json::from_str(&l).expect("normalized is JSON");
    assert_eq!(v["sd"]["zoo@123"]["tiger"], "hungry", "{l}");
    assert_eq!(
        (v["msgid"].as_str(), v["msg"].as_str()),
        (Some("M1"), Some("normalized one")),
        "{l}"
    );
    // Without a tag, logger puts the user name there; whatever it is, the message arrives.
    let any = std::fs::read_dir(&s.data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<scribe_archive::Category>().is_ok() && !n.starts_with('.'))
        .any(|n| {
            String::from_utf8_lossy(&read_category(&s.data_dir, &n)).contains("no tag at all")
        });
    assert!(any, "the untagged message arrived somewhere");

    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            r#"scribed_input_messages_total{input="tcp",kind="syslog-tcp"}"#
        ),
        Some(4.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"scribed_input_messages_total{input="udp",kind="syslog-udp"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"scribed_input_parse_failures_total{input="tcp",kind="syslog-tcp"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn bad_input_on_each_syslog_port_is_counted_and_the_listener_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let (tcp, udp) = (input_addr(&s, "tcp"), input_addr(&s, "udp"));

    // Garbage: kept, as received, in syslog.unparsed.
    let mut c = TcpStream::connect(&tcp).unwrap();
    c.write_all(b"\x00\x01\x02 binary garbage\n").unwrap();
    // A 10 MB frame (non-transparent) is skipped in bounded memory; the connection goes on.
    let big = vec![b'x'; 10 << 20];
    c.write_all(b"<13>1 - h big - - - ").unwrap();
    c.write_all(&big).unwrap();
    c.write_all(b"\n<13>1 - h after - - - after the big one\n")
        .unwrap();
    line_with(&s, "syslog.after", "after the big one");
    line_with(&s, "syslog.unparsed", "binary garbage");
    drop(c);

    // An octet count of 99999999999: the connection is closed with a counted error.
    let mut c = TcpStream::connect(&tcp).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"99999999999 <13>1 - h x - - - never").unwrap();
    let mut buf = [0u8; 16];
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "closed by scribed"
    );
    // A new connection is served.
    let mut c = TcpStream::connect(&tcp).unwrap();
    c.write_all(b"24 <13>1 - h later - - - ok").unwrap();
    drop(c);
    line_with(&s, "syslog.later", "ok");

    // UDP: garbage and an oversize datagram.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"\xff\xfe not syslog", &udp).unwrap();
    u.send_to(&vec![b'y'; 65_000], &udp).unwrap();
    u.send_to(b"<13>1 - h udpok - - - fine", &udp).unwrap();
    line_with(&s, "syslog.udpok", "fine");
    line_with(&s, "syslog.unparsed", "not syslog");

    let (_, m) = s.http_get("/metrics");
    let get = |name: &str, input: &str, kind: &str| {
        metric(
            &m,
            &format!(r#"scribed_input_{name}{{input="{input}",kind="{kind}"}}"#),
        )
        .unwrap_or(-1.0)
    };
    assert_eq!(get("oversize_total", "tcp", "syslog-tcp"), 1.0, "{m}");
    assert_eq!(get("bad_input_total", "tcp", "syslog-tcp"), 1.0, "{m}");
    assert_eq!(get("parse_failures_total", "tcp", "syslog-tcp"), 1.0, "{m}");
    assert_eq!(
        get("oversize_total", "udp", "syslog-udp"),
        0.0,
        "65,000 bytes is under the 64K default"
    );
    assert_eq!(get("parse_failures_total", "udp", "syslog-udp"), 2.0, "{m}");
}

/// rsyslog's config: lines arrive on imptcp at `in_port` and leave by omfwd to `to_port`,
/// forwarded raw (`%rawmsg%`), with a disk-less queue that holds while scribed is away.
fn rsyslog_conf(
    dir: &std::path::Path,
    in_port: u16,
    to_port: u16,
    framing: &str,
    tls: Option<&Tls>,
) -> String {
    // Over TLS (RFC 5425): GnuTLS, the server checked against the CA and by name, and a
    // client certificate for scribed's mutual TLS.
    let (global_tls, action_tls) = match tls {
        None => (String::new(), String::new()),
        Some(t) => (
            format!(
                r#" defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{}" defaultNetstreamDriverCertFile="{}" defaultNetstreamDriverKeyFile="{}""#,
                t.ca.display(),
                t.client.cert.display(),
                t.client.key.display()
            ),
            r#" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="scribed.test""#.to_string(),
        ),
    };
    format!(
        r#"global(workDirectory="{work}" maxMessageSize="64k"{global_tls})
module(load="imptcp")
input(type="imptcp" port="{in_port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%")
action(type="omfwd" target="127.0.0.1" port="{to_port}" protocol="tcp" TCP_Framing="{framing}"
       template="raw" action.resumeRetryCount="-1" action.resumeInterval="1"{action_tls}
       queue.type="LinkedList" queue.size="500000" queue.dequeueBatchSize="1024")
"#,
        work = dir.join("work").display()
    )
}

/// Certificates for the TLS run: the CA, scribed's server certificate, rsyslog's client one.
struct Tls {
    ca: std::path::PathBuf,
    server: scribe_tls::testing::CertFiles,
    client: scribe_tls::testing::CertFiles,
}

/// Line `i` as sent to rsyslog: an RFC 5424 message whose MSG is a sequenced line.
fn rline(i: u64) -> Vec<u8> {
    let mut l = b"<13>1 2026-12-04T00:00:00Z h rtest - - - ".to_vec();
    l.extend_from_slice(&pipeline_tests::seq_line("r", i));
    l
}

fn rsyslog_run(framing: &str, lines: u64, pause_scribed: bool) {
    rsyslog_run_with(framing, lines, pause_scribed, false)
}

fn rsyslog_run_with(framing: &str, lines: u64, pause_scribed: bool, tls: bool) {
    if rsyslogd_path().is_none() {
        panic!("rsyslogd is not installed (scripts/test installs Debian's rsyslog)");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tls = tls.then(|| {
        let pki = scribe_tls::testing::TestPki::new(&dir.path().join("pki"), "syslog");
        Tls {
            ca: pki.ca(),
            server: pki.server("scribed.test"),
            client: pki.client("rsyslog"),
        }
    });
    let mut conf = format!("[[syslog]]\nname = \"tcp\"\nlisten = \"127.0.0.1:{port}\"\n");
    if let Some(t) = &tls {
        conf.push_str(&format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n",
            t.server.cert.display(),
            t.server.key.display(),
            t.ca.display()
        ));
    }
    let launch = || {
        Scribed::launch(
            &dir.path().join("data"),
            Launch {
                config: Some(conf.clone()),
                ..Launch::default()
            },
        )
    };
    let mut s = launch();
    let in_port = free_port();
    let r = Rsyslogd::start(
        &dir.path().join("rsyslog"),
        &rsyslog_conf(
            &dir.path().join("rsyslog"),
            in_port,
            port,
            framing,
            tls.as_ref(),
        ),
    );
    let mut feed = None;
    wait_for(Duration::from_secs(10), "rsyslog's imptcp port", || {
        feed = TcpStream::connect(("127.0.0.1", in_port)).ok();
        feed.is_some()
    });
    let mut feed = feed.unwrap();
    let sender = std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(1 << 20);
        for i in 0..lines {
            buf.extend_from_slice(&rline(i));
            if buf.len() > (1 << 20) - 256 {
                feed.write_all(&buf).unwrap();
                buf.clear();
            }
        }
        feed.write_all(&buf).unwrap();
    });
    let expected: Vec<Vec<u8>> = (0..lines).map(rline).collect();
    let total: u64 = expected.iter().map(|l| l.len() as u64).sum();
    let stored = |s: &Scribed| pipeline_tests::category_bytes(&s.data_dir, "syslog.rtest");
    let start = Instant::now();
    if pause_scribed {
        wait_for(Duration::from_secs(30), "a third of the lines", || {
            stored(&s) > total / 3
        });
        assert!(s.stop().success(), "scribed stops cleanly");
        std::thread::sleep(Duration::from_secs(10));
        s = launch();
    }
    wait_for(Duration::from_secs(60), "every line", || {
        stored(&s) >= total
    });
    let took = start.elapsed();
    sender.join().unwrap();
    let got = read_category(&s.data_dir, "syslog.rtest");
    let dups = check_order_no_loss(&got, &expected)
        .unwrap_or_else(|e| panic!("{e}\nrsyslog: {}", r.log_text()));
    eprintln!("{framing}: {lines} lines through rsyslog in {took:?}, {dups} duplicates");
    r.stop();
}

#[test]
fn rsyslog_omfwd_octet_counted_100k_lines_byte_exact() {
    rsyslog_run("octet-counted", 100_000, false);
}

/// RFC 5425: rsyslog's GnuTLS driver, checking scribed's certificate by name, presenting
/// its own to scribed's mutual-TLS syslog listener.
#[test]
fn rsyslog_omfwd_over_mutual_tls_20k_lines_byte_exact() {
    rsyslog_run_with("octet-counted", 20_000, false, true);
}

/// Plain TCP has no acknowledgement: rsyslog counts a message sent once its kernel took it.
/// At SIGTERM the input half-closes and reads until rsyslog closes its side, so what was on
/// the wire is written, and rsyslog's queue holds the rest until scribed is back. (Before the
/// input read to the sender's end of stream, a fixed 5 s drain lost a batch of 256 lines
/// under load.)
#[test]
fn rsyslog_omfwd_plain_tcp_with_scribed_stopped_10s_loses_nothing() {
    rsyslog_run("traditional", 100_000, true);
}

/// While the stores answer `TRY_LATER` (here: a network store whose upstream is not up yet),
/// a syslog TCP connection holds its batch and reads nothing more; once the upstream is up,
/// every line goes through, in order.
#[test]
fn tcp_input_waits_while_stores_refuse_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let up_port = free_port();
    let conf = format!(
        "[[syslog]]\nname = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
         [[store]]\ncategory = \"default\"\ntype = \"network\"\nremote = [\"127.0.0.1:{up_port}\"]\n\
         connect_timeout = \"1s\"\n"
    );
    let s = Scribed::launch(
        &dir.path().join("relay"),
        Launch {
            config: Some(conf),
            ..Launch::default()
        },
    );
    let mut c = TcpStream::connect(input_addr(&s, "tcp")).unwrap();
    let expected: Vec<Vec<u8>> = (0..2_000).map(rline).collect();
    // Each line is an RFC 5424 message ending in LF: the framing.
    c.write_all(&expected.concat()).unwrap();
    wait_for(Duration::from_secs(10), "a refused batch", || {
        let (_, m) = s.http_get("/metrics");
        metric(
            &m,
            r#"scribed_input_refused_total{input="tcp",kind="syslog-tcp"}"#,
        )
        .unwrap_or(0.0)
            > 0.0
    });
    let up = Scribed::launch(
        &dir.path().join("up"),
        Launch {
            listen: Some(format!("127.0.0.1:{up_port}")),
            ..Launch::default()
        },
    );
    let total: u64 = expected.iter().map(|l| l.len() as u64).sum();
    wait_for(Duration::from_secs(30), "every line upstream", || {
        pipeline_tests::category_bytes(&up.data_dir, "syslog.rtest") >= total
    });
    check_order_no_loss(&read_category(&up.data_dir, "syslog.rtest"), &expected).unwrap();
}

/// A sender that goes on writing after scribed's SIGTERM (it has not looked for the end of
/// the stream yet) loses nothing: the input reads up to the sender's own end of stream, not
/// for a fixed time. Here the sender writes a line every 100 ms for 8 s after the signal,
/// then closes; every line is written before scribed exits. (With a fixed 5 s drain, the
/// last ~30 lines were reset away.)
#[test]
fn tcp_input_at_shutdown_reads_until_the_sender_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path());
    let mut c = TcpStream::connect(input_addr(&s, "tcp")).unwrap();
    let expected: Vec<Vec<u8>> = (0..100).map(rline).collect();
    c.write_all(&expected[..20].concat()).unwrap();
    let first: u64 = expected[..20].iter().map(|l| l.len() as u64).sum();
    wait_for(Duration::from_secs(10), "the first lines", || {
        pipeline_tests::category_bytes(&s.data_dir, "syslog.rtest") >= first
    });
    s.signal(nix::sys::signal::Signal::SIGTERM);
    for l in &expected[20..] {
        // A write may fail only if scribed reset the connection: the check below says so.
        let _ = c.write_all(l);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    let mut status = None;
    wait_for(Duration::from_secs(30), "scribed to exit", || {
        status = s.try_exit_status();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{}", s.log_text());
    let dups = check_order_no_loss(&read_category(&s.data_dir, "syslog.rtest"), &expected)
        .unwrap_or_else(|e| panic!("{e}\n{}", s.log_text()));
    assert_eq!(dups, 0);
}
