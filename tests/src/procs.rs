//! The real binaries as processes: `scribed` on an ephemeral loopback port with its own data
//! directory, `ship` one-shot or long-running, and what tests read off them (`/proc` CPU time,
//! descriptors, ship's final stats). Every process is killed when its handle drops.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::wire::http_get;

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
        // The selection `scripts/test` runs (`cargo test --workspace --all-targets`; there are
        // no benches): cargo unifies features per invocation, and the tests' dev-dependencies
        // turn on features (scribe-tls's `testing`, ...) that a `--bins` build of a few
        // packages does not. Any other selection built a second copy of most of the workspace
        // in the middle of the test run: minutes on 2 cores, and gigabytes of disk (a CI run
        // once ran out of space there). Under `scripts/test` this finds everything fresh.
        cmd.args([
            "build",
            "--quiet",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(
            status.success(),
            "cargo build of scribed/ship/logq/tailgate failed"
        );
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

/// Spawns `cmd` with its stdout piped and drained to the end by a thread (a closed pipe would
/// fail the process's later writes); its lines come out of the receiver.
pub fn spawn_reading_stdout(cmd: &mut Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// [`spawn_reading_stdout`], then waits up to 20 s for the first line, which must start with
/// `first_line` (a server's "listening on" line). Panics otherwise.
pub fn spawn_announcing(cmd: &mut Command, first_line: &str) -> Child {
    let (child, rx) = spawn_reading_stdout(cmd);
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{:?} printed no line within 20 s", cmd.get_program()));
    assert!(line.starts_with(first_line), "{line}");
    child
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
    /// Where the ready file, the log and the config go (`<files>.ready`, `.log`, `.toml`);
    /// default: beside the data dir, named after it. Two scribeds on one data dir need their
    /// own.
    pub files: Option<PathBuf>,
    /// Environment variables set for the process (e.g. S3 credentials).
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `scribed`.
pub struct Scribed {
    child: Option<Child>,
    pub addr: String,
    /// Every client address it listens on, in the ready file's order (`addr` first).
    pub addrs: Vec<String>,
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
        Scribed::try_launch(data_dir, how).unwrap_or_else(|(st, log)| {
            panic!("scribed exited early ({st}): {log}");
        })
    }

    /// As [`Scribed::launch`], but a scribed that exits before it listens is an `Err` with its
    /// exit status and log (for tests of what scribed refuses to start with).
    pub fn try_launch(data_dir: &Path, how: Launch<'_>) -> Result<Scribed, (ExitStatus, String)> {
        let files = how.files.clone().unwrap_or_else(|| data_dir.to_path_buf());
        let ready = files.with_extension("ready");
        let log = files.with_extension("log");
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
            let path = files.with_extension("toml");
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
            .envs(how.env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting scribed");
        let mut s = Scribed {
            child: Some(child),
            addr: String::new(),
            addrs: Vec::new(),
            status_addr: String::new(),
            data_dir: data_dir.to_path_buf(),
            log,
        };
        let mut exited = None;
        wait_for(Duration::from_secs(20), "scribed's ready file", || {
            exited = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            exited.is_some() || ready.exists()
        });
        if let Some(st) = exited {
            s.child = None;
            return Err((st, s.log_text()));
        }
        let text = std::fs::read_to_string(&ready).expect("reading ready file");
        for line in text.lines() {
            match line.strip_prefix("status ") {
                Some(a) => s.status_addr = a.to_string(),
                // `input NAME ADDR`: a syslog or OTLP listener, not a Scribe one.
                None if line.starts_with("input ") => {}
                None => s.addrs.push(line.to_string()),
            }
        }
        s.addr = s.addrs.first().cloned().unwrap_or_default();
        assert!(!s.addr.is_empty(), "ready file names an address: {text:?}");
        Ok(s)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Its exit status, if it has exited (it is then reaped).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(st)
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

    /// The `problem` `/status` reports for store `i` (in config order), or "" when none.
    pub fn store_problem(&self, i: usize) -> String {
        let (_, status) = self.http_get("/status");
        let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
        v["stores"][i]["problem"]
            .as_str()
            .unwrap_or_default()
            .to_string()
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
        let cmd = match setup {
            None => Command::new(bin("ship")),
            Some(setup) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("{setup} && exec \"$0\" \"$@\"")])
                    .arg(bin("ship"));
                c
            }
        };
        Self::spawn_command(cmd, args, Stdio::null(), stderr_path)
    }

    /// Starts `cmd ARGS...`, where `cmd` ends up running ship (say, `unshare ... ship`), with
    /// `stdin` (see [`ShipProc::take_stdin`]) and stderr appended to `stderr_path`.
    pub fn spawn_command<S: AsRef<std::ffi::OsStr>>(
        mut cmd: Command,
        args: &[S],
        stdin: Stdio,
        stderr_path: &Path,
    ) -> ShipProc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .expect("opening ship's stderr file");
        let child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(stdin)
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

    /// Ship's standard input, when it was started with [`Stdio::piped`].
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut().and_then(|c| c.stdin.take())
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
