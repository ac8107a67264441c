//! Compatibility with the real Scribe client from PyPI: `facebook-scribe` 2.0.post1 (the
//! Thrift-0.9.0-generated `scribe` and `fb303` packages) on `thrift` 0.25, used exactly as
//! `scribe_cat` uses it. `scripts/compat-venv.sh` installs them (pinned) into
//! `target/compat-venv`; the client script is `tests/compat/scribe_client.py`.
//!
//! These tests need `python3` with `venv` and access to PyPI the first time; when either is
//! missing they fail with the script's error, they are never skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pipeline_tests::{free_port, read_category, Launch, Scribed};
use scribe_archive::Category;

/// How long creating the virtualenv (a `pip install` from PyPI) may take.
const VENV_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one run of the Python client may take (it normally needs well under a second).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long scribed may take to exit after fb303 `shutdown`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

/// Runs `cmd` to completion with piped output, killing it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for child") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The virtualenv's python, after `scripts/compat-venv.sh` made sure the pinned packages are
/// installed (once per test process; the script itself is idempotent and locked).
fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let root = repo_root();
        let mut cmd = Command::new("bash");
        cmd.arg(root.join("scripts/compat-venv.sh"))
            .current_dir(&root);
        let out = run_bounded(cmd, VENV_TIMEOUT, "scripts/compat-venv.sh");
        assert!(
            out.status.success(),
            "scripts/compat-venv.sh failed ({}): the Python compatibility tests need python3 \
             with venv and PyPI access to install facebook-scribe and thrift.\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let python = PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .expect("compat-venv.sh prints the venv's python")
                .trim(),
        );
        assert!(python.exists(), "{} does not exist", python.display());
        python
    })
}

/// Runs `tests/compat/scribe_client.py MODE ADDR OUTDIR` and asserts it succeeded.
fn run_client(mode: &str, addr: &str, outdir: &Path) -> Output {
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo_root().join("tests/compat/scribe_client.py"))
        .args([mode, addr])
        .arg(outdir)
        // Keep __pycache__ out of the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_bounded(cmd, CLIENT_TIMEOUT, "scribe_client.py");
    assert!(
        out.status.success(),
        "scribe_client.py {mode} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// What the client sent, from its `sent.tsv`.
struct Sent {
    /// Category name -> the bytes scribed must have written for it, in order.
    expected: BTreeMap<String, Vec<u8>>,
    /// Messages sent to categories scribed must refuse.
    dropped: Vec<(Vec<u8>, Vec<u8>)>,
}

fn read_sent(outdir: &Path) -> Sent {
    let text = std::fs::read_to_string(outdir.join("sent.tsv")).expect("reading sent.tsv");
    let mut sent = Sent {
        expected: BTreeMap::new(),
        dropped: Vec::new(),
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [cat, msg, verdict] = fields[..] else {
            panic!("malformed sent.tsv line {line:?}");
        };
        let (cat, msg) = (unhex(cat), unhex(msg));
        // The client's idea of a valid category must be scribed's.
        let valid = Category::new(&cat).is_ok();
        match verdict {
            "keep" => {
                assert!(valid, "client expects {cat:?} to be kept but it is invalid");
                let out = sent
                    .expected
                    .entry(String::from_utf8(cat).expect("valid categories are ASCII"))
                    .or_default();
                // scribed's framing: the message, then `\n` unless it already ends in one.
                out.extend_from_slice(&msg);
                if !msg.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            "drop" => {
                assert!(
                    !valid,
                    "client expects {cat:?} to be dropped but it is valid"
                );
                sent.dropped.push((cat, msg));
            }
            _ => panic!("bad verdict in {line:?}"),
        }
    }
    sent
}

/// Compares bytes without dumping megabytes on failure.
fn assert_same_bytes(category: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let window = |b: &[u8]| {
        let end = (at + 40).min(b.len());
        format!(
            "{:?}",
            String::from_utf8_lossy(&b[at.saturating_sub(20).min(end)..end])
        )
    };
    panic!(
        "category {category}: wrote {} bytes, expected {}; first difference at byte {at}: \
         got {} want {}",
        got.len(),
        want.len(),
        window(got),
        window(want)
    );
}

/// Every path under `dir`, recursively (symlinks are listed, not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("dir entry");
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Places a `../escape` category could reach if a path were built from it unchecked: next to
/// the data directory or any of its ancestors, and relative to scribed's working directory
/// (this test's) or its ancestors.
fn escape_targets(data: &Path) -> Vec<PathBuf> {
    let cwd = std::env::current_dir().expect("cwd");
    data.ancestors()
        .chain(cwd.ancestors())
        .map(|d| d.join("escape"))
        .collect()
}

#[test]
fn python_scribe_client_bytes_land_exactly() {
    let python = venv_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).expect("creating out dir");
    let preexisting: Vec<PathBuf> = escape_targets(&data)
        .into_iter()
        .filter(|p| p.exists())
        .collect();

    let s = Scribed::start(&data, &[]);
    let out = run_client("compat", &s.addr, &outdir);
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    let sent = read_sent(&outdir);
    assert!(
        sent.expected.len() >= 10 && !sent.dropped.is_empty(),
        "client sent less than expected ({python:?}):\n{summary}"
    );

    // Exact bytes per category.
    for (category, want) in &sent.expected {
        let got = read_category(&data, category);
        assert_same_bytes(category, &got, want);
    }

    // The data dir holds exactly the valid categories, each only its own files (and the
    // directory's lock).
    let want_dirs: BTreeSet<String> = sent.expected.keys().cloned().collect();
    let mut want_entries = want_dirs.clone();
    want_entries.insert(".scribed+lock".into());
    assert_eq!(names(&data), want_entries, "entries of the data dir");
    for category in &want_dirs {
        // The commit log (exactly-once) lives beside the data files.
        for name in names(&data.join(category))
            .into_iter()
            .filter(|n| n != ".commits")
        {
            let rest = name
                .strip_prefix(category.as_str())
                .and_then(|r| r.strip_prefix('_'));
            assert!(
                rest.is_some_and(
                    |r| r == "current" || (r.len() >= 5 && r.bytes().all(|b| b.is_ascii_digit()))
                ),
                "unexpected file {name:?} in category {category}"
            );
        }
    }

    // Nothing was written outside the data dir: the temp dir holds only what the harness and
    // this test put there, nothing is named "escape" anywhere under it, and no file holds a
    // dropped message.
    assert_eq!(
        names(tmp.path()),
        ["data", "data.log", "data.ready", "out"]
            .map(String::from)
            .into(),
        "entries of the test's temp dir"
    );
    for p in walk(tmp.path()) {
        assert!(
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains("escape")),
            "found {}",
            p.display()
        );
        if p.is_file() && p.starts_with(&data) {
            let bytes = std::fs::read(&p).expect("reading a data file");
            for (cat, msg) in &sent.dropped {
                assert!(
                    !bytes.windows(msg.len()).any(|w| w == &msg[..]),
                    "message for invalid category {:?} found in {}",
                    String::from_utf8_lossy(cat),
                    p.display()
                );
            }
        }
    }
    for p in escape_targets(&data) {
        if !preexisting.contains(&p) {
            assert!(!p.exists(), "{} was created", p.display());
        }
    }

    // Still healthy (the client's last call was getStatus == ALIVE): a second run of the
    // whole client against the same server works and appends the same bytes again.
    run_client("compat", &s.addr, &outdir);
    for (category, want) in &sent.expected {
        let got = read_category(&data, category);
        assert_same_bytes(category, &got, &[&want[..], &want[..]].concat());
    }

    let log = s.log_text();
    assert!(!log.contains("panicked"), "scribed log:\n{log}");
    let status = s.stop();
    assert!(
        status.success(),
        "scribed exited with {status} after SIGTERM:\n{log}"
    );
}

/// Whether process `pid` has exited (it is a zombie awaiting our wait, or gone).
fn has_exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

#[test]
fn python_fb303_oneway_shutdown_stops_scribed() {
    venv_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).expect("creating out dir");

    let s = Scribed::start(&data, &[]);
    // The client logs a message, sends the oneway shutdown, and checks that no reply comes and
    // the server closes the connection.
    let out = run_client("shutdown", &s.addr, &outdir);

    let pid = s.pid();
    let start = Instant::now();
    while !has_exited(pid) {
        if start.elapsed() > SHUTDOWN_TIMEOUT {
            // Dropping `s` kills it.
            panic!(
                "scribed still running {SHUTDOWN_TIMEOUT:?} after fb303 shutdown; client said:\n\
                 {}\nscribed log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                s.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = s.log_text();
    // The process has already exited: stop() only collects its status (the signal it sends
    // to the zombie has no effect).
    let status = s.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "scribed's exit after fb303 shutdown: {status}\n{log}"
    );

    let sent = read_sent(&outdir);
    for (category, want) in &sent.expected {
        assert_same_bytes(category, &read_category(&data, category), want);
    }
}

// ---------------------------------------------------------------------------------------
// The same client over TLS: thrift's own `TSSLSocket` under the `TFramedTransport`
// (`scribe_client.py tls`), against `[[listener]]` blocks with certificates made by
// `scribe_tls::testing::TestPki`.

/// Runs `scribe_client.py tls ADDR OUTDIR ARGS..`, which exits non-zero unless its outcome is
/// `--expect`; returns the outcome it reported.
fn run_tls_client(addr: &str, outdir: &Path, args: &[PathBuf]) -> String {
    std::fs::create_dir_all(outdir).expect("creating out dir");
    let _ = std::fs::remove_file(outdir.join("sent.tsv"));
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo_root().join("tests/compat/scribe_client.py"))
        .args(["tls", addr])
        .arg(outdir)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // thrift 0.25 warns about ssl.match_hostname's deprecation on every open.
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning");
    let out = run_bounded(cmd, CLIENT_TIMEOUT, "scribe_client.py tls");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scribe_client.py tls {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary is pretty-printed JSON; its "outcome" is a one-line string.
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"outcome\": "))
        .unwrap_or_else(|| panic!("no outcome in the client's summary:\n{stdout}"));
    line.trim_end_matches(',').trim_matches('"').to_string()
}

/// `scribe_client.py tls` options as paths (so certificate paths need no conversion).
fn opts(pairs: &[(&str, &Path)]) -> Vec<PathBuf> {
    pairs
        .iter()
        .flat_map(|(k, v)| [PathBuf::from(k), v.to_path_buf()])
        .collect()
}

/// Asserts the client's accepted batch (its sent.tsv) landed byte-exact.
fn assert_landed(data: &Path, outdir: &Path, category: &str) {
    let sent = read_sent(outdir);
    let want = sent
        .expected
        .get(category)
        .unwrap_or_else(|| panic!("the client sent nothing to {category}"));
    assert!(
        want.len() > 64 * 1024,
        "the batch spans several TLS records"
    );
    assert_same_bytes(category, &read_category(data, category), want);
}

/// Asserts nothing of the client's batch was written: no `category` directory and no data
/// file holding the batch's marker.
fn assert_not_written(data: &Path, outdir: &Path, category: &str) {
    let sent = std::fs::read_to_string(outdir.join("sent.tsv")).unwrap_or_default();
    assert!(
        sent.is_empty(),
        "the client recorded an accepted batch:\n{sent}"
    );
    assert!(
        !data.join(category).exists(),
        "{category} was created in the data dir"
    );
    // The batch's large message repeats "<category>-<counter> ".
    let marker = format!("{category}-000001 ");
    for p in walk(data) {
        if p.is_file() {
            let bytes = std::fs::read(&p).expect("reading a data file");
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds a refused batch",
                p.display()
            );
        }
    }
}

fn tls_listener(
    port: u16,
    server: &scribe_tls::testing::CertFiles,
    client_ca: Option<&Path>,
) -> String {
    let mut s = format!(
        "[[listener]]\naddress = \"127.0.0.1:{port}\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        server.cert, server.key
    );
    if let Some(ca) = client_ca {
        s.push_str(&format!("tls_client_ca = {ca:?}\n"));
    }
    s
}

/// (a) TLS without client certificates: the batch lands byte-exact. (b) mutual TLS: with the
/// client certificate it lands, without one the handshake is refused, the Python client gets
/// an error and nothing is written.
#[test]
fn python_scribe_client_over_tls_and_mutual_tls() {
    venv_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = scribe_tls::testing::TestPki::new(&tmp.path().join("pki"), "compat");
    let server = pki.server("scribed.test");
    let client = pki.client("py01");
    let (tls_port, mtls_port) = (free_port(), free_port());
    let config = format!(
        "{}\n{}",
        tls_listener(tls_port, &server, None),
        tls_listener(mtls_port, &server, Some(&pki.ca()))
    );
    let data = tmp.path().join("data");
    let s = Scribed::launch(
        &data,
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let mtls_addr = format!("127.0.0.1:{mtls_port}");
    let ca = pki.ca();
    let ca = ca.as_path();

    // (a) Server authentication only.
    let out = tmp.path().join("a");
    let outcome = run_tls_client(
        &tls_addr,
        &out,
        &opts(&[
            ("--ca", ca),
            ("--category", Path::new("tls.server_auth")),
            ("--expect", Path::new("ok")),
        ]),
    );
    assert_eq!(outcome, "ok");
    assert_landed(&data, &out, "tls.server_auth");

    // The client checks the server's name: "localhost" is on the certificate, another is not.
    let out = tmp.path().join("a-name");
    let outcome = run_tls_client(
        &tls_addr,
        &out,
        &opts(&[
            ("--ca", ca),
            ("--server-name", Path::new("elsewhere.test")),
            ("--category", Path::new("tls.wrong_name")),
            ("--expect", Path::new("tls-error")),
        ]),
    );
    assert!(
        outcome.contains("SSLCertVerificationError") && outcome.contains("elsewhere.test"),
        "{outcome}"
    );
    assert_not_written(&data, &out, "tls.wrong_name");

    // (b) Mutual TLS with the client certificate.
    let out = tmp.path().join("b");
    let outcome = run_tls_client(
        &mtls_addr,
        &out,
        &opts(&[
            ("--ca", ca),
            ("--cert", client.cert.as_path()),
            ("--key", client.key.as_path()),
            ("--category", Path::new("tls.mutual")),
            ("--expect", Path::new("ok")),
        ]),
    );
    assert_eq!(outcome, "ok");
    assert_landed(&data, &out, "tls.mutual");

    // (b) Mutual TLS without one: with TLS 1.3 the client's handshake completes before the
    // server checks, so the error comes with the first read (the server's alert or close).
    let out = tmp.path().join("b-nocert");
    let outcome = run_tls_client(
        &mtls_addr,
        &out,
        &opts(&[
            ("--ca", ca),
            ("--category", Path::new("tls.nocert")),
            ("--expect", Path::new("tls-error")),
        ]),
    );
    assert!(outcome.starts_with("tls-error: "), "{outcome}");
    assert_not_written(&data, &out, "tls.nocert");

    let (code, metrics) = s.http_get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("scribed_tls_handshake_failures_total"),
        "refused handshakes are counted:\n{metrics}"
    );
    let log = s.log_text();
    assert!(!log.contains("panicked"), "scribed log:\n{log}");
    let status = s.stop();
    assert!(status.success(), "scribed exited with {status}:\n{log}");
}

/// (c) A client whose certificate maps to `[[client]]` "web" (may write `web.*`) on a mutual
/// TLS listener with `anonymous = []`: `db.audit` is refused with a TApplicationException
/// naming the category, counted, nothing written; `web.access` lands. A certificate from the
/// same CA that names no `[[client]]` is anonymous there and may write nothing.
#[test]
fn python_scribe_client_tls_identity_limits_categories() {
    venv_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = scribe_tls::testing::TestPki::new(&tmp.path().join("pki"), "compat");
    let server = pki.server("scribed.test");
    let web = pki.client("web01");
    let stranger = pki.client("stranger01");
    let port = free_port();
    let config = format!(
        "{}anonymous = []\n\n[[client]]\nname = \"web\"\ncertificate_names = [\"web01\"]\n\
         categories = [\"web.*\"]\n",
        tls_listener(port, &server, Some(&pki.ca()))
    );
    let data = tmp.path().join("data");
    let s = Scribed::launch(
        &data,
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    let addr = format!("127.0.0.1:{port}");
    let ca = pki.ca();
    let ca = ca.as_path();
    let as_web = |category: &str, expect: &str, out: &Path| {
        run_tls_client(
            &addr,
            out,
            &opts(&[
                ("--ca", ca),
                ("--cert", web.cert.as_path()),
                ("--key", web.key.as_path()),
                ("--category", Path::new(category)),
                ("--expect", Path::new(expect)),
            ]),
        )
    };

    let out = tmp.path().join("db");
    let outcome = as_web("db.audit", "refused", &out);
    assert!(
        outcome.contains("db.audit") && outcome.contains("web"),
        "the refusal names the category and the client: {outcome}"
    );
    assert_not_written(&data, &out, "db.audit");

    let out = tmp.path().join("web");
    assert_eq!(as_web("web.access", "ok", &out), "ok");
    assert_landed(&data, &out, "web.access");

    let out = tmp.path().join("stranger");
    let outcome = run_tls_client(
        &addr,
        &out,
        &opts(&[
            ("--ca", ca),
            ("--cert", stranger.cert.as_path()),
            ("--key", stranger.key.as_path()),
            ("--category", Path::new("web.stranger")),
            ("--expect", Path::new("refused")),
        ]),
    );
    assert!(outcome.contains("web.stranger"), "{outcome}");
    assert_not_written(&data, &out, "web.stranger");

    let (code, metrics) = s.http_get("/metrics");
    assert_eq!(code, 200);
    // The refused batch: one batch of the client's six messages.
    assert!(
        metrics.contains("scribed_denied_batches_total{client=\"web\"} 1"),
        "refusals are counted per client:\n{metrics}"
    );
    assert!(
        metrics.contains("scribed_denied_messages_total{client=\"web\"} 6"),
        "refused messages are counted per client:\n{metrics}"
    );
    let log = s.log_text();
    assert!(log.contains("db.audit"), "the refusal is logged:\n{log}");
    assert!(!log.contains("panicked"), "scribed log:\n{log}");
    let status = s.stop();
    assert!(status.success(), "scribed exited with {status}:\n{log}");
}
