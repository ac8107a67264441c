//! Hostile peers against real `scribed` and `tailgate` processes on loopback: random bytes to
//! every listening port, a thousand idle connections, oversized frames and impossible length
//! fields, and category names built to escape the data directory. After each, the servers must
//! still be running, still serve a good client, and have written nothing they should not have.
//! docs/reliability.md ("Hostile peers") says what each test shows.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pipeline_tests::{
    bin, get_counter, http_get, open_fds, read_category, spawn_reading_stdout, wait_for, RawConn,
    Rng, Scribed,
};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};

fn entry(c: &[u8], m: &[u8]) -> LogEntry {
    LogEntry {
        category: Bytes::copy_from_slice(c),
        message: Bytes::copy_from_slice(m),
    }
}

fn log_call(entries: &[LogEntry]) -> Vec<u8> {
    encode_log_call(HeaderStyle::Strict, entries).to_vec()
}

/// One good `Log` call on a fresh connection: the reply code, or `None` if the connection was
/// closed without a reply.
fn good_log(addr: &str, category: &str, message: &str) -> Option<ResultCode> {
    let mut c = RawConn::connect(addr);
    let payload = log_call(&[entry(category.as_bytes(), message.as_bytes())]);
    let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    // A refused connection may already be closed: a failed write is a missing reply too.
    c.send_raw(&framed).ok()?;
    c.recv().map(|r| decode_log_reply(r).expect("a Log reply"))
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The soft limit on open descriptors of this process (`ulimit -n`).
fn nofile_soft_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

// ---------------------------------------------------------------------------------------------
// tailgate, started with both its HTTP and its Scribe listener on ephemeral ports.

fn tailgate_bin() -> PathBuf {
    bin("tailgate")
}

struct Tailgate {
    child: Child,
    http: String,
    scribe: String,
}

impl Tailgate {
    /// Starts tailgate and waits (at most 20 s) for the two address lines it prints.
    fn start(dir: &Path, extra: &[&str]) -> Tailgate {
        let log = std::fs::File::create(dir.join("tailgate.log")).expect("tailgate log");
        let (child, rx) = spawn_reading_stdout(
            Command::new(tailgate_bin())
                .args(["--listen", "127.0.0.1:0", "--scribe-listen", "127.0.0.1:0"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stderr(log),
        );
        let (mut http, mut scribe) = (None, None);
        while http.is_none() || scribe.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("tailgate printed its addresses");
            if let Some(rest) = line.strip_prefix("tailgate listening on http://") {
                http = rest.split('/').next().map(String::from);
            } else if let Some(rest) = line.strip_prefix("tailgate scribe listening on ") {
                scribe = Some(rest.to_string());
            }
        }
        Tailgate {
            child,
            http: http.unwrap(),
            scribe: scribe.unwrap(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!("tailgate exited ({st})");
        }
    }
}

impl Drop for Tailgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_scribed_running(server: &Scribed) {
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.pid()), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(alive, "scribed exited: {}", server.log_text());
}

// ---------------------------------------------------------------------------------------------
// Random bytes.

#[derive(Clone, Copy, PartialEq)]
enum PortKind {
    Thrift,
    Http,
}

/// One hostile connection's bytes: pure noise, or noise behind a plausible start (a frame
/// length; a strict `Log` header; the native protocol's magic and a `HELLO` frame header; an
/// HTTP request line and headers), so the servers' parsers are driven past their first check.
fn noise(rng: &mut Rng, kind: PortKind, i: usize) -> Vec<u8> {
    let len = 1 + rng.u64(..48 << 10) as usize;
    let mut out = Vec::with_capacity(len + 64);
    match (kind, i % 4) {
        (_, 0) => {}
        (PortKind::Thrift, 1) => out.extend_from_slice(&(len as u32).to_be_bytes()),
        (PortKind::Thrift, 3) => {
            // The native protocol's opening, then a frame that claims to be its HELLO.
            out.extend_from_slice(&scribe_protocol::native::MAGIC);
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.push(scribe_protocol::native::kind::HELLO);
        }
        (PortKind::Thrift, _) => {
            out.extend_from_slice(&(len as u32 + 15).to_be_bytes());
            out.extend_from_slice(&[0x80, 0x01, 0x00, 0x01, 0, 0, 0, 3, b'L', b'o', b'g']);
            out.extend_from_slice(&[0, 0, 0, 1]);
        }
        (PortKind::Http, 1) => out.extend_from_slice(b"GET /ws?category=a HTTP/1.1\r\n"),
        (PortKind::Http, _) => out.extend_from_slice(
            b"POST /api/tail/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
        ),
    }
    out.extend((0..len).map(|_| rng.u8(..)));
    out
}

/// Sends `conns` connections of noise to `addr` from `threads` threads; each connection
/// writes its bytes (the server may close it early), half-closes, and drains whatever comes
/// back until the server closes or 1 s passes. Returns the bytes sent.
fn storm(addr: &str, kind: PortKind, seed: u64, conns: usize, threads: usize) -> usize {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let mut rng = Rng::with_seed(seed * 1000 + t as u64);
                let mut sent = 0;
                for i in (t..conns).step_by(threads) {
                    let bytes = noise(&mut rng, kind, i);
                    let Ok(mut s) = TcpStream::connect(&addr) else {
                        continue;
                    };
                    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                    if s.write_all(&bytes).is_ok() {
                        sent += bytes.len();
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    let mut sink = [0u8; 4096];
                    let mut got = 0;
                    while got < 1 << 20 {
                        match s.read(&mut sink) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                }
                sent
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("storm thread"))
        .sum()
}

/// RSS allowed above a server's resting RSS after the storm. Each port gets at most 8
/// connections at a time, each sending at most 48 KiB, so the input buffered at any moment is
/// under 2 MiB per server; allocator slack and worker stacks account for a few MiB more. A
/// server that kept anything per connection, or buffered a declared (up to 16 MiB) frame
/// length instead of the bytes that arrived, would pass this within the first few hundred
/// connections.
const RSS_GROWTH_LIMIT_KIB: u64 = 48 << 10;

#[test]
fn random_bytes_to_every_port_leave_the_servers_up_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let mut tail = Tailgate::start(tmp.path(), &[]);
    // Warm both up with one good batch so the resting RSS includes a file writer and a feed.
    assert_eq!(good_log(&server.addr, "warm", "up"), Some(ResultCode::Ok));
    assert_eq!(good_log(&tail.scribe, "warm", "up"), Some(ResultCode::Ok));
    let scribed_pid = server.pid() as u32;
    let (scribed_before, tail_before) = (
        status_kib(scribed_pid, "VmRSS"),
        status_kib(tail.pid(), "VmRSS"),
    );

    let ports = [
        ("scribed thrift", server.addr.clone(), PortKind::Thrift),
        ("scribed status", server.status_addr.clone(), PortKind::Http),
        ("tailgate http", tail.http.clone(), PortKind::Http),
        ("tailgate scribe", tail.scribe.clone(), PortKind::Thrift),
    ];
    let started = Instant::now();
    let mut total = 0;
    for (seed, (name, addr, kind)) in ports.iter().enumerate() {
        let sent = storm(addr, *kind, seed as u64 + 1, 160, 8);
        assert!(sent > 2 << 20, "{name}: only {sent} bytes went out");
        total += sent;
    }
    eprintln!(
        "sent {} MiB of noise in 640 connections in {:?}",
        total >> 20,
        started.elapsed()
    );

    assert_scribed_running(&server);
    tail.assert_running();
    let (scribed_after, tail_after) = (
        status_kib(scribed_pid, "VmRSS"),
        status_kib(tail.pid(), "VmRSS"),
    );
    eprintln!(
        "VmRSS KiB: scribed {scribed_before} -> {scribed_after} (peak {}), \
         tailgate {tail_before} -> {tail_after} (peak {})",
        status_kib(scribed_pid, "VmHWM"),
        status_kib(tail.pid(), "VmHWM"),
    );
    assert!(
        scribed_after < scribed_before + RSS_GROWTH_LIMIT_KIB,
        "scribed grew from {scribed_before} to {scribed_after} KiB"
    );
    assert!(
        tail_after < tail_before + RSS_GROWTH_LIMIT_KIB,
        "tailgate grew from {tail_before} to {tail_after} KiB"
    );

    // Still serving, on every port.
    assert_eq!(
        good_log(&server.addr, "after", "storm"),
        Some(ResultCode::Ok)
    );
    assert_eq!(read_category(&data, "after"), b"storm\n");
    assert_eq!(server.http_get("/health").0, 200);
    assert_eq!(
        good_log(&tail.scribe, "after", "storm"),
        Some(ResultCode::Ok)
    );
    let (code, body) = http_get(&tail.http, "/api/tail/after");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("storm"), "{body}");
    // Noise never formed a category: only the two written on purpose exist.
    let mut dirs: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    // (and the directory's lock).
    assert_eq!(dirs, [".scribed+lock", "after", "warm"]);
}

// ---------------------------------------------------------------------------------------------
// Idle connections.

#[test]
fn a_thousand_idle_connections_are_capped_then_timed_out() {
    const CAP: usize = 200;
    // This process holds every client socket; leave room for the test harness and the other
    // tests running in parallel.
    let limit = nofile_soft_limit();
    let n = 1000.min(limit.saturating_sub(300) as usize);
    assert!(
        n > CAP + 100,
        "ulimit -n {limit} is too small for this test"
    );
    if n < 1000 {
        eprintln!("ulimit -n is {limit}: opening {n} idle connections instead of 1000");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(
        &data,
        &[
            "--idle-timeout",
            "2s",
            "--max-connections",
            &CAP.to_string(),
        ],
    );
    let fds_before = open_fds(server.pid());

    let started = Instant::now();
    // Paced: scribed listens with a backlog of 128, and a burst of connects faster than it
    // accepts overflows it; the kernel then drops SYNs and those connects take a second or
    // more (a retransmit), which would push the burst past the idle timeout.
    let conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(15));
            }
            TcpStream::connect(&server.addr).expect("connect")
        })
        .collect();
    let connected = started.elapsed();
    for c in &conns {
        c.set_nonblocking(true).unwrap();
    }
    let open_count = |conns: &[TcpStream]| {
        conns
            .iter()
            .filter(|c| {
                let mut b = [0u8; 1];
                let mut s: &TcpStream = c;
                match s.read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => panic!("scribed sent bytes to an idle connection"),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                    Err(_) => false,
                }
            })
            .count()
    };

    // Past the cap, connections are closed at once; the first CAP are held. Until the idle
    // timeout (2 s after the first accept) none of the held ones may close, so exactly CAP
    // stay open; on a machine too loaded to refuse 800 connections in that time, only the
    // cap itself can be checked.
    let mut open = open_count(&conns);
    while open > CAP {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{open} of {n} connections still open after 10 s: the cap of {CAP} is not enforced"
        );
        std::thread::sleep(Duration::from_millis(20));
        open = open_count(&conns);
    }
    let at_cap = started.elapsed();
    if at_cap < Duration::from_millis(1800) {
        assert_eq!(open, CAP, "{at_cap:?} after connecting: {open} of {n} open");
        // At the cap, a new client is refused too (closed without a reply, nothing written)...
        assert_eq!(good_log(&server.addr, "good", "refused"), None);
    } else {
        eprintln!(
            "slow machine: {open} of {n} open only {at_cap:?} after connecting \
             (connecting took {connected:?})"
        );
    }
    // ...but the status endpoint, which is not a Scribe slot, answers.
    assert_eq!(server.http_get("/health").0, 200);

    // After the idle timeout every idle connection reads end-of-file.
    wait_for(
        Duration::from_secs(6),
        "idle connections to be closed",
        || open_count(&conns) == 0,
    );
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1900),
        "held connections closed after {closed_after:?}, before the 2 s idle timeout"
    );
    eprintln!("{n} idle connections: {CAP} held, all closed after {closed_after:?}");

    // Their slots and descriptors are free again: a good client is served.
    assert_eq!(
        good_log(&server.addr, "good", "served"),
        Some(ResultCode::Ok)
    );
    assert_eq!(read_category(&data, "good"), b"served\n");
    wait_for(
        Duration::from_secs(5),
        "scribed's descriptors to drop",
        || open_fds(server.pid()) <= fds_before + 5,
    );
    assert!(server.log_text().contains("at max-connections"));
    drop(conns);
    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------------
// Oversized frames and impossible lengths.

/// Overwrites the 4 bytes before the `nth` (0-based) occurrence of `needle` (a Thrift string's
/// or list's length field) with `value`.
fn patch_len(payload: &[u8], needle: &[u8], nth: usize, value: u32) -> Vec<u8> {
    let at = payload
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{needle:?} not in the payload"));
    let mut v = payload.to_vec();
    v[at - 4..at].copy_from_slice(&value.to_be_bytes());
    v
}

/// Framed payloads that must each close the connection without writing anything. Every one
/// carries messages for `victim`, so a partial decode would show up as a `victim` file.
fn impossible_frames(max_frame: usize) -> Vec<(&'static str, Vec<u8>)> {
    let frame = |p: &[u8]| {
        let mut v = (p.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(p);
        v
    };
    let two = log_call(&[entry(b"victim", b"first"), entry(b"victim", b"second")]);
    // A valid Log call one byte over the limit.
    let overhead = log_call(&[entry(b"victim", b"")]).len();
    let over = log_call(&[entry(b"victim", &vec![b'v'; max_frame + 1 - overhead])]);
    assert_eq!(over.len(), max_frame + 1);
    // The list's element count sits right after the list's element type (STRUCT, 12), which
    // follows the 15-byte strict header and the field header.
    let count_at = 19;
    assert_eq!(
        two[count_at - 1],
        12,
        "STRUCT element type before the count"
    );
    let mut huge_count = two.clone();
    huge_count[count_at..count_at + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut negative_count = two.clone();
    negative_count[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    vec![
        ("frame over --max-frame", frame(&over)),
        ("frame length 4 GiB - 1", {
            let mut v = u32::MAX.to_be_bytes().to_vec();
            v.extend_from_slice(&two);
            v
        }),
        (
            "message length past the frame",
            frame(&patch_len(&two, b"second", 0, 1 << 20)),
        ),
        (
            "message length 2^31 - 1",
            frame(&patch_len(&two, b"second", 0, 0x7fff_ffff)),
        ),
        (
            "negative message length",
            frame(&patch_len(&two, b"second", 0, 0x8000_0000)),
        ),
        (
            "category length past the frame",
            frame(&patch_len(&two, b"victim", 1, 1 << 20)),
        ),
        ("list count 2^31 - 1", frame(&huge_count)),
        ("list count -1", frame(&negative_count)),
        ("truncated second entry", frame(&two[..two.len() - 5])),
    ]
}

fn assert_hostile_frames_refused(addr: &str, max_frame: usize) {
    for (what, bytes) in impossible_frames(max_frame) {
        let mut c = RawConn::connect(addr);
        // The server may close before reading everything: a failed write is fine.
        let _ = c.send_raw(&bytes);
        assert!(c.recv().is_none(), "{what}: connection not closed");
    }
}

#[test]
fn oversized_frames_and_impossible_lengths_close_the_connection_and_write_nothing() {
    const MAX_FRAME: usize = 64 << 10;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-frame", "64K"]);
    let mut tail = Tailgate::start(tmp.path(), &["--max-frame", "64K"]);

    assert_hostile_frames_refused(&server.addr, MAX_FRAME);
    assert_hostile_frames_refused(&tail.scribe, MAX_FRAME);

    // Nothing of any of them was written, and a frame of exactly --max-frame is accepted.
    assert!(!data.join("victim").exists(), "a refused frame was written");
    let overhead = log_call(&[entry(b"edge", b"")]).len();
    let exact = log_call(&[entry(b"edge", &vec![b'e'; MAX_FRAME - overhead])]);
    assert_eq!(exact.len(), MAX_FRAME);
    let mut c = RawConn::connect(&server.addr);
    assert_eq!(decode_log_reply(c.call(&exact)), Ok(ResultCode::Ok));
    assert_eq!(read_category(&data, "edge").len(), MAX_FRAME - overhead + 1);
    assert_eq!(get_counter(&server.addr, "victim:received good"), 0);
    assert_scribed_running(&server);
    assert!(server.log_text().contains("unreadable frame"));

    tail.assert_running();
    let (_, cats) = http_get(&tail.http, "/api/categories");
    assert!(
        !cats.contains("victim"),
        "tailgate published a refused frame: {cats}"
    );
    assert_eq!(good_log(&tail.scribe, "fine", "yes"), Some(ResultCode::Ok));
    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------------
// Category names.

fn hostile_names() -> Vec<Vec<u8>> {
    vec![
        b"../x".to_vec(),
        b"a/b".to_vec(),
        b"/tmp/abs".to_vec(),
        b"..".to_vec(),
        b".".to_vec(),
        b"nul\0cat".to_vec(),
        b"x\0".to_vec(),
        b"\0".to_vec(),
        b"..\\x".to_vec(),
        "caf\u{e9}".as_bytes().to_vec(),
        vec![b'a'; 10 << 10],
        b"../".repeat((10 << 10) / 3),
        vec![0xff; 10 << 10],
    ]
}

/// Every path under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_category_names_are_dropped_counted_and_never_become_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let mut tail = Tailgate::start(tmp.path(), &[]);
    let names = hostile_names();

    // A batch of nothing but hostile names, then one with a good name among them.
    let only_bad: Vec<LogEntry> = names.iter().map(|n| entry(n, b"evil")).collect();
    let mut mixed = vec![entry(b"good", b"one")];
    mixed.extend(names.iter().map(|n| entry(n, b"evil")));
    mixed.push(entry(b"good", b"two"));
    for addr in [&server.addr, &tail.scribe] {
        let mut c = RawConn::connect(addr);
        for batch in [&only_bad, &mixed] {
            // The valid part is accepted; the rest is dropped, not refused (a retry would not
            // make the names valid).
            assert_eq!(
                decode_log_reply(c.call(&log_call(batch))),
                Ok(ResultCode::Ok)
            );
        }
    }

    assert_eq!(read_category(&data, "good"), b"one\ntwo\n");
    let files = tree(tmp.path());
    let allowed = |p: &String| {
        p == "data"
            || p == "data/.scribed+lock"
            || p.starts_with("data/good")
            || ["data.log", "data.ready", "tailgate.log"].contains(&p.as_str())
    };
    let stray: Vec<&String> = files.iter().filter(|p| !allowed(p)).collect();
    assert!(stray.is_empty(), "unexpected paths: {stray:?}");
    assert_eq!(
        get_counter(&server.addr, "scribe_overall:received bad"),
        2 * names.len() as i64
    );
    // Dropped names do not become per-category counters or metric labels, and the warning
    // quotes at most a bounded prefix of a 10 KB name.
    let (_, metrics) = server.http_get("/metrics");
    for n in ["../x", "a/b", "caf", "aaaaaaaaaaaaaaaaaaaa"] {
        assert!(!metrics.contains(n), "/metrics mentions {n:?}");
    }
    assert!(!server.log_text().contains(&"a".repeat(1000)));
    assert_scribed_running(&server);

    tail.assert_running();
    let (_, cats) = http_get(&tail.http, "/api/categories");
    let v: String = cats.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(v.contains("\"good\""), "{cats}");
    for n in ["../x", "a/b", "caf", "nul\\u0000", "aaaaaaaaaa"] {
        assert!(!cats.contains(n), "tailgate lists {n:?}: {cats}");
    }
    assert!(server.stop().success());
}
