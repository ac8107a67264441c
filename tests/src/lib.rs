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
