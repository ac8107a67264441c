//! Harness for the workspace end-to-end tests: builds the real binaries, starts `scribed` on an
//! ephemeral loopback port with a temporary data directory, runs `ship`, reads archives back.
//!
//! Every process started here is killed when its handle drops, so a failing test leaves nothing
//! running; every wait is bounded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use scribe_archive::{layout, Category};

pub mod torture;

/// Path of a workspace binary, built (once per test process) by `cargo build` so tests never
/// run a stale binary.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // target/<profile>/deps/<test-exe> -> target/<profile>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary lives in target/<profile>/deps")
            .to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build", "--quiet", "-p", "scribed", "-p", "shipper", "--bins",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(status.success(), "cargo build of scribed/ship failed");
        profile_dir
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Waits until `cond` holds, checking every 20 ms, for at most `limit`.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How to start a `scribed`.
#[derive(Default, Clone)]
pub struct Launch<'a> {
    /// Listen address; default `127.0.0.1:0` (fixed ports let a restarted server keep its
    /// address).
    pub listen: Option<String>,
    /// Config file contents (TOML), written next to the data dir and passed with `--config`.
    pub config: Option<String>,
    pub extra: &'a [&'a str],
    /// Run under this descriptor limit (soft and hard), as `ulimit -n` would set it.
    pub nofile: Option<u64>,
}

/// A running `scribed`.
pub struct Scribed {
    child: Option<Child>,
    pub addr: String,
    /// The HTTP status address (`/metrics`, `/health`, `/status`).
    pub status_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Scribed {
    /// Starts scribed on `127.0.0.1:0` writing to `data_dir`, and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Scribed {
        Scribed::launch(
            data_dir,
            Launch {
                extra,
                ..Launch::default()
            },
        )
    }

    /// Starts scribed as `how` says and waits (at most 20 s) until it listens.
    pub fn launch(data_dir: &Path, how: Launch<'_>) -> Scribed {
        let ready = data_dir.with_extension("ready");
        let log = data_dir.with_extension("log");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = match how.nofile {
            None => Command::new(bin("scribed")),
            Some(n) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(bin("scribed"));
                c
            }
        };
        cmd.args(["--listen", how.listen.as_deref().unwrap_or("127.0.0.1:0")])
            .args(["--status-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready);
        if let Some(text) = &how.config {
            let path = data_dir.with_extension("toml");
            std::fs::write(&path, text).expect("writing config");
            cmd.arg("--config").arg(path);
        }
        // Append to the log, so a restarted server's log follows the previous one's.
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening scribed log");
        let child = cmd
            .args(how.extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting scribed");
        let mut s = Scribed {
            child: Some(child),
            addr: String::new(),
            status_addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        wait_for(Duration::from_secs(20), "scribed's ready file", || {
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("scribed exited early ({st}): {}", s.log_text());
            }
            ready.exists()
        });
        let text = std::fs::read_to_string(&ready).expect("reading ready file");
        for line in text.lines() {
            match line.strip_prefix("status ") {
                Some(a) => s.status_addr = a.to_string(),
                None if s.addr.is_empty() => s.addr = line.to_string(),
                None => {}
            }
        }
        assert!(!s.addr.is_empty(), "ready file names an address: {text:?}");
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What scribed logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling scribed");
    }

    /// Kills scribed with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET path` on the status address: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(&self.status_addr, path)
    }

    /// Sends SIGTERM and waits (at most 30 s) for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signalling scribed");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for scribed") {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("scribed did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scribed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// A minimal HTTP/1.1 GET (the tests' only HTTP client need): (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).expect("connecting to the status address");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// The value of a Prometheus sample line `name{labels} value` (exact match on the part before
/// the value).
pub fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Checks `stored` holds every line of `expected` with first occurrences in order; lines seen
/// again (replayed duplicates) are allowed and counted. Returns the number of duplicates.
pub fn check_order_no_loss(stored: &[u8], expected: &[Vec<u8>]) -> Result<usize, String> {
    let mut next = 0;
    let mut seen = std::collections::HashSet::new();
    let mut dups = 0;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        if next < expected.len() && line == &expected[next][..] {
            seen.insert(line.to_vec());
            next += 1;
        } else if seen.contains(line) {
            dups += 1;
        } else {
            return Err(format!(
                "unexpected line {:?} where line {next} ({:?}) was due",
                String::from_utf8_lossy(line),
                expected
                    .get(next)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
            ));
        }
    }
    if next != expected.len() {
        return Err(format!(
            "only {next} of {} lines arrived; first missing: {:?}",
            expected.len(),
            String::from_utf8_lossy(&expected[next])
        ));
    }
    Ok(dups)
}

/// Runs `ship --to addr category` with `input` on stdin; bounded by a 120 s timeout.
pub fn ship(addr: &str, category: &str, input: &[u8], extra: &[&str]) -> Output {
    let mut child = Command::new(bin("ship"))
        .args(["--to", addr])
        .args(extra)
        .arg(category)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ship");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A write error means ship exited early; its status says why.
        let _ = stdin.write_all(&input);
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("waiting for ship").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ship did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = writer.join();
    child.wait_with_output().expect("collecting ship output")
}

/// The numbered files of a category, oldest first.
pub fn category_files(data_dir: &Path, category: &str) -> Vec<PathBuf> {
    let c: Category = category.parse().expect("valid category");
    layout::list_files(data_dir, &c)
        .expect("listing category files")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// The concatenation of a category's files, oldest first.
pub fn read_category(data_dir: &Path, category: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in category_files(data_dir, category) {
        out.extend(std::fs::read(&p).expect("reading category file"));
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A blocking framed-Thrift connection for protocol-level tests: sends raw payloads and reads
/// raw replies, with a read timeout so a missing reply fails the test instead of hanging it.
pub struct RawConn {
    stream: std::net::TcpStream,
}

impl RawConn {
    pub fn connect(addr: &str) -> RawConn {
        let stream = std::net::TcpStream::connect(addr).expect("connecting to scribed");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        RawConn { stream }
    }

    /// Writes bytes exactly as given (for hostile frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one frame: 4-byte big-endian length, then the payload.
    pub fn send(&mut self, payload: &[u8]) {
        let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(payload);
        self.stream.write_all(&framed).expect("sending frame");
    }

    /// Reads one reply frame's payload; `None` when the server closed the connection.
    pub fn recv(&mut self) -> Option<bytes::Bytes> {
        use std::io::Read;
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("reading reply: {e}"),
        }
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream
            .read_exact(&mut payload)
            .expect("reading reply payload");
        Some(payload.into())
    }

    /// Sends a call and returns its reply.
    pub fn call(&mut self, payload: &[u8]) -> bytes::Bytes {
        self.send(payload);
        self.recv().expect("a reply")
    }
}

/// Encodes a no-argument fb303 call, or `getCounter(key)`.
pub fn fb303_call(name: &str, style: scribe_protocol::HeaderStyle, key: Option<&[u8]>) -> Vec<u8> {
    use scribe_protocol::message::{message_type, MessageHeader};
    use scribe_protocol::thrift::{ttype, Writer};
    let mut b = bytes::BytesMut::new();
    MessageHeader {
        name: name.into(),
        message_type: message_type::CALL,
        seqid: 9,
        style,
    }
    .write(&mut b);
    let mut w = Writer { buf: &mut b };
    if let Some(k) = key {
        w.field_begin(ttype::STRING, 1);
        w.binary(k);
    }
    w.field_stop();
    b.to_vec()
}

/// Reads a reply whose result is field 0 of a scalar or string type; returns the header and a
/// reader positioned at that value.
pub fn reply_value(
    reply: bytes::Bytes,
) -> (
    scribe_protocol::message::MessageHeader,
    u8,
    scribe_protocol::thrift::Reader,
) {
    use scribe_protocol::message::MessageHeader;
    use scribe_protocol::thrift::Reader;
    let mut r = Reader::new(reply);
    let h = MessageHeader::read(&mut r).expect("reply header");
    let (ty, id) = r
        .read_field_begin()
        .expect("result field")
        .expect("a result value");
    assert_eq!(id, 0, "result is field 0");
    (h, ty, r)
}

/// fb303 `getCounter(key)` over a fresh connection.
pub fn get_counter(addr: &str, key: &str) -> i64 {
    let mut c = RawConn::connect(addr);
    let reply = c.call(&fb303_call(
        "getCounter",
        scribe_protocol::HeaderStyle::Unversioned,
        Some(key.as_bytes()),
    ));
    let (_, _, mut r) = reply_value(reply);
    r.read_i64().expect("i64 counter")
}

// ---------------------------------------------------------------------------------------------
// `ship` in follow and run mode: long-running processes, their final stats, sequenced lines.

/// A long-running `ship` (follow or run mode), killed when dropped.
pub struct ShipProc {
    child: Option<Child>,
    /// Where its stderr goes (appended, so a restarted ship's output follows the previous).
    pub stderr_path: PathBuf,
}

impl ShipProc {
    /// Starts `ship ARGS...` with stdin closed and stderr appended to `stderr_path`; with
    /// `nofile`, under that descriptor limit (soft and hard), as `ulimit -n` would set it.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        stderr_path: &Path,
        nofile: Option<u64>,
    ) -> ShipProc {
        match nofile {
            None => Self::spawn_after(None, args, stderr_path),
            Some(n) => Self::spawn_after(Some(&format!("ulimit -n {n}")), args, stderr_path),
        }
    }

    /// As [`ShipProc::spawn`], with `setup` run by bash first in the process that then
    /// `exec`s ship (a `ulimit`, or `trap '' INT` to start ship with SIGINT ignored).
    pub fn spawn_after<S: AsRef<std::ffi::OsStr>>(
        setup: Option<&str>,
        args: &[S],
        stderr_path: &Path,
    ) -> ShipProc {
        let mut cmd = match setup {
            None => Command::new(bin("ship")),
            Some(setup) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("{setup} && exec \"$0\" \"$@\"")])
                    .arg(bin("ship"));
                c
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .expect("opening ship's stderr file");
        let child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting ship");
        ShipProc {
            child: Some(child),
            stderr_path: stderr_path.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything ship wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// Panics (with ship's stderr) if ship has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("ship exited early ({st}): {}", self.stderr_text());
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .expect("signalling ship");
    }

    /// Kills ship with SIGKILL (no shutdown work at all) and reaps it.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (at most `limit`) for ship to exit by itself: its status and stderr.
    pub fn wait_exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for ship") {
                return (status, self.stderr_text());
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ship did not exit within {limit:?}: {}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most 60 s) for ship to exit: its status and stderr.
    pub fn stop(self) -> (ExitStatus, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(60))
    }
}

impl Drop for ShipProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The counters of ship's final `ship: stats key=N ...` line.
#[derive(Debug, Clone)]
pub struct ShipStats(pub std::collections::BTreeMap<String, u64>);

impl ShipStats {
    /// Parses the last stats line in `stderr`; `None` when there is none.
    pub fn parse(stderr: &str) -> Option<ShipStats> {
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.split_once("ship: stats ").map(|(_, rest)| rest))?;
        let map = line
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        Some(ShipStats(map))
    }

    /// Parses the last stats line in `stderr`, panicking (with the stderr) when there is none.
    pub fn from_stderr(stderr: &str) -> ShipStats {
        ShipStats::parse(stderr)
            .unwrap_or_else(|| panic!("no `ship: stats` line in ship's stderr:\n{stderr}"))
    }

    /// A counter; panics when the stats line lacks it.
    pub fn get(&self, key: &str) -> u64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("ship's stats line has no {key}=: {:?}", self.0))
    }
}

/// Descriptors a process has open (entries of `/proc/PID/fd`).
pub fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Length of every [`seq_line`]: fixed, so a byte count converts to a line count.
pub const SEQ_LINE_LEN: usize = 100;

/// A line `SRC SEQ xxx...x end\n` of exactly [`SEQ_LINE_LEN`] bytes. Sources are tokens
/// without spaces, at most 40 bytes. A fragment of such a line, or two run together, does not
/// parse, so cut or glued lines are detected.
pub fn seq_line(src: &str, seq: u64) -> Vec<u8> {
    let head = format!("{src} {seq:010} ");
    let filler = SEQ_LINE_LEN - head.len() - " end\n".len();
    let mut line = head.into_bytes();
    line.resize(line.len() + filler, b'x');
    line.extend_from_slice(b" end\n");
    line
}

/// Parses a [`seq_line`] (with or without its `\n`): (source, sequence number).
pub fn parse_seq_line(line: &[u8]) -> Option<(&str, u64)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let mut it = text.split(' ');
    let (src, seq, filler, end) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some()
        || end != "end"
        || seq.len() != 10
        || filler.is_empty()
        || !filler.bytes().all(|b| b == b'x')
        || line.len() + 1 != SEQ_LINE_LEN
    {
        return None;
    }
    Some((src, seq.parse().ok()?))
}

/// What arrived of sequenced lines, per source, in arrival order.
#[derive(Debug, Default)]
pub struct SeqReport {
    pub per_src: std::collections::BTreeMap<String, Vec<u64>>,
    /// Lines that are not a whole [`seq_line`] (fragments, foreign lines). A fragment glued to
    /// a whole line is listed here, and the whole line counted as arrived.
    pub malformed: Vec<Vec<u8>>,
}

impl SeqReport {
    /// Splits `stored` (archive bytes) into lines and parses each.
    pub fn of(stored: &[u8]) -> SeqReport {
        let mut r = SeqReport::default();
        for line in stored.split_inclusive(|&b| b == b'\n') {
            if let Some((src, seq)) = parse_seq_line(line) {
                r.per_src.entry(src.to_string()).or_default().push(seq);
                continue;
            }
            // A fragment delivered without its `\n` (a follower gives up a partial line when
            // its file is truncated) is glued to the next line: keep that line.
            let glued = line
                .len()
                .checked_sub(SEQ_LINE_LEN)
                .filter(|&at| line.ends_with(b"\n") && at > 0)
                .and_then(|at| Some((at, parse_seq_line(&line[at..])?)));
            match glued {
                Some((at, (src, seq))) => {
                    r.per_src.entry(src.to_string()).or_default().push(seq);
                    r.malformed.push(line[..at].to_vec());
                }
                None => r.malformed.push(line.to_vec()),
            }
        }
        r
    }

    /// Number of lines that arrived again after their first arrival.
    pub fn duplicates(&self) -> usize {
        self.per_src
            .values()
            .map(|seqs| {
                let unique: std::collections::HashSet<_> = seqs.iter().collect();
                seqs.len() - unique.len()
            })
            .sum()
    }

    /// The distinct sequence numbers of `src` that arrived.
    pub fn distinct(&self, src: &str) -> std::collections::BTreeSet<u64> {
        self.per_src
            .get(src)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks that each source's first arrivals are in increasing order (duplicates, replayed
    /// later, are allowed); returns the first violation.
    pub fn check_first_arrivals_in_order(&self) -> Result<(), String> {
        for (src, seqs) in &self.per_src {
            let mut seen = std::collections::HashSet::new();
            let mut last: Option<u64> = None;
            for &s in seqs {
                if !seen.insert(s) {
                    continue;
                }
                if last.is_some_and(|l| s < l) {
                    return Err(format!("{src}: line {s} arrived first after line {last:?}"));
                }
                last = Some(s);
            }
        }
        Ok(())
    }

    /// Sequence numbers of `src` in `0..n` that never arrived.
    pub fn missing(&self, src: &str, n: u64) -> Vec<u64> {
        let got = self.distinct(src);
        (0..n).filter(|s| !got.contains(s)).collect()
    }
}

/// Total size of a category's files (cheap progress check while waiting).
pub fn category_bytes(data_dir: &Path, category: &str) -> u64 {
    category_files(data_dir, category)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A minimal Scribe server that records every `Log` entry and answers OK, for tests that must
/// see message boundaries (which scribed's archive files do not keep). It answers the fb303
/// handshake as a plain (non-scribed) server, so clients send one batch at a time.
pub struct Recorder {
    pub addr: String,
    entries: std::sync::Arc<std::sync::Mutex<Vec<scribe_protocol::LogEntry>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    pub fn start() -> Recorder {
        use std::sync::atomic::Ordering;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding recorder");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local_addr").to_string();
        let entries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (e, s, c) = (entries.clone(), stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        if let Ok(clone) = stream.try_clone() {
                            c.lock().unwrap().push(clone);
                        }
                        let e = e.clone();
                        std::thread::spawn(move || Recorder::serve(stream, &e));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Recorder {
            addr,
            entries,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// Serves one connection until it closes or sends something undecodable.
    fn serve(
        mut stream: std::net::TcpStream,
        entries: &std::sync::Mutex<Vec<scribe_protocol::LogEntry>>,
    ) {
        use scribe_protocol::scribe::{encode_log_reply, encode_string_reply, encode_void_reply};
        use scribe_protocol::Request;
        use std::io::Read;
        loop {
            let mut len = [0u8; 4];
            if stream.read_exact(&mut len).is_err() {
                return;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > 64 << 20 {
                return;
            }
            let mut payload = vec![0u8; len];
            if stream.read_exact(&mut payload).is_err() {
                return;
            }
            let Ok(call) = scribe_protocol::decode_call(payload.into()) else {
                return;
            };
            let reply = match call.request {
                Request::Log(batch) => {
                    entries.lock().unwrap().extend(batch);
                    encode_log_reply(&call.header, scribe_protocol::ResultCode::Ok)
                }
                Request::GetName => encode_string_reply(&call.header, b"recorder"),
                Request::GetOption(_) => encode_string_reply(&call.header, b""),
                Request::SetOption(..) => encode_void_reply(&call.header),
                _ => return,
            };
            let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }

    /// Every entry received so far, in arrival order.
    pub fn entries(&self) -> Vec<scribe_protocol::LogEntry> {
        self.entries.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`. Linux reports it in
/// USER_HZ ticks, which is 100 per second on every architecture.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A leaf scribed's config: everything goes to `central` through a buffer store that spools
/// under `spool` while it is away (retrying every 200 ms, so an outage's end is noticed
/// quickly).
pub fn leaf_config(central: &str, spool: &Path) -> String {
    format!(
        r#"
[[store]]
category = "default"
type = "buffer"
spool_dir = "{}"
retry_interval = "200ms"
replay_batch_bytes = "256K"

[store.primary]
type = "network"
remote = ["{central}"]
connect_timeout = "1s"
timeout = "5s"
"#,
        spool.display()
    )
}
