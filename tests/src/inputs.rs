//! For the syslog and OTLP input tests: the address of an input listener, an HTTP POST, and
//! `Rsyslogd`, Debian's rsyslog run as a foreground process with its own config, pid file and
//! work directory (killed when dropped).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::procs::{wait_for, Scribed};

/// The address of scribed's input listener `name` (from its ready file's `input NAME ADDR`).
pub fn input_addr(s: &Scribed, name: &str) -> String {
    let ready = s.log.with_extension("ready");
    let text = std::fs::read_to_string(&ready).expect("reading ready file");
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("input ")?;
            let (n, addr) = rest.split_once(' ')?;
            (n == name).then(|| addr.to_string())
        })
        .unwrap_or_else(|| panic!("no input {name} in {text:?}"))
}

/// A minimal HTTP/1.1 POST: (status code, headers, body). Bounded by a 30 s read timeout.
pub fn http_post(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("request head");
    // The server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(text.len());
    let head = String::from_utf8_lossy(&text[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let body = text.get(split + 4..).unwrap_or_default().to_vec();
    (code, head, body)
}

/// A running `rsyslogd -n` (Debian's rsyslog).
pub struct Rsyslogd {
    child: Option<Child>,
    pub dir: PathBuf,
}

/// Where Debian installs rsyslogd; `None` (and the test says it is skipping) when missing.
pub fn rsyslogd_path() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Rsyslogd {
    /// Starts rsyslogd in the foreground with `config` (its work directory is `dir/work`, its
    /// pid file `dir/rsyslogd.pid`), and waits until it wrote its pid file.
    pub fn start(dir: &Path, config: &str) -> Rsyslogd {
        let bin = rsyslogd_path().expect("rsyslogd installed (scripts/test installs it)");
        std::fs::create_dir_all(dir.join("work")).expect("work dir");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(&conf, config).expect("writing rsyslog.conf");
        let pid = dir.join("rsyslogd.pid");
        let log = std::fs::File::create(dir.join("rsyslogd.log")).expect("rsyslogd log");
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting rsyslogd");
        let mut r = Rsyslogd {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        wait_for(Duration::from_secs(20), "rsyslogd's pid file", || {
            if let Some(Some(st)) = r.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!("rsyslogd exited ({st}): {}", r.log_text());
            }
            pid.exists()
        });
        r
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }

    /// Stops it by its pid (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..200 {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
