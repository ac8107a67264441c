//! Shared helpers for logq's integration tests: running the binary, generating inputs.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn logq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_logq"));
    c.env("LC_ALL", "C").env_remove("RUST_LOG");
    c
}

/// Runs `cmd` with `stdin` as its standard input.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut sin = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    out
}

/// Runs logq with `args` and empty input; returns its exit code, stdout and stderr.
pub fn logq_out(args: &[&str]) -> (i32, String, String) {
    let mut c = logq();
    c.args(args);
    let o = run(c, b"");
    (
        o.status.code().unwrap_or(-1),
        show(&o.stdout),
        show(&o.stderr),
    )
}

/// Fails the test unless a system tool exists: the differential tests need GNU grep and
/// cut, both in Debian's essential set, so a missing one is a broken machine and must not
/// let the comparison pass silently.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "system `{tool}` not found: the differential tests need GNU {tool} (apt-get install {})",
        if tool == "grep" { "grep" } else { "coreutils" }
    );
}

/// Text with the edge cases line tools get wrong: empty lines, CRLF endings, invalid UTF-8,
/// tabs and commas, repeated delimiters, and (when `trailing_newline` is false) a last line
/// without `\n`.
pub fn edge_text(seed: u64, lines: usize, trailing_newline: bool) -> Vec<u8> {
    // Seeded, so that failures reproduce.
    let mut r = fastrand::Rng::with_seed(seed);
    let words: [&[u8]; 14] = [
        b"foo",
        b"bar",
        b"baz",
        b"foobar",
        b"Foo",
        b"FOO",
        b"x",
        b"12",
        b"345",
        b"a_b",
        b"\xff\xfe",
        b"caf\xc3",
        b"",
        b"GET",
    ];
    let seps: [&[u8]; 6] = [b" ", b"\t", b",", b":", b"  ", b", "];
    let mut out = Vec::new();
    for i in 0..lines {
        let n = r.usize(..7);
        for j in 0..n {
            if j > 0 {
                let sep = seps[r.usize(..seps.len())];
                out.extend_from_slice(sep);
            }
            let word = words[r.usize(..words.len())];
            out.extend_from_slice(word);
        }
        if r.usize(..8) == 0 {
            out.push(b'\r');
        }
        if i + 1 < lines || trailing_newline {
            out.push(b'\n');
        }
    }
    out
}

pub fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).expect("write test input");
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
