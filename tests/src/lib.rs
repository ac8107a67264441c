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

/// A running `scribed`.
pub struct Scribed {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Scribed {
    /// Starts scribed on `127.0.0.1:0` writing to `data_dir`, and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Scribed {
        let ready = data_dir.with_extension("ready");
        let log = data_dir.with_extension("log");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(bin("scribed"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating scribed log"))
            .spawn()
            .expect("starting scribed");
        let mut s = Scribed {
            child: Some(child),
            addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        wait_for(Duration::from_secs(20), "scribed's ready file", || {
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("scribed exited early ({st}): {}", s.log_text());
            }
            ready.exists()
        });
        s.addr = std::fs::read_to_string(&ready)
            .expect("reading ready file")
            .lines()
            .next()
            .expect("ready file names an address")
            .to_string();
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// What scribed logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
