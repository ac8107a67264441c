//! Inputs that can be read only once (FIFOs, pipes), gzip on stdin, and what is printed for
//! inputs that hold no matching line.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `cmd`, killing it if it has not finished within 20 s (a reader blocked on a FIFO
/// whose writer has gone must fail the test, not hang it).
fn run_bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill");
            let out = child.wait_with_output().expect("wait");
            panic!("logq did not finish reading the FIFO: {out:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}

/// A FIFO with `data` written into it once, by a thread.
fn fifo(dir: &Path, name: &str, data: Vec<u8>) -> std::path::PathBuf {
    let path = dir.join(name);
    let ok = Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo (coreutils) must exist");
    assert!(ok.success());
    let p = path.clone();
    std::thread::spawn(move || {
        // Errors (a reader that closed early) show up as missing lines in the assertions.
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&p) {
            let _ = f.write_all(&data);
        }
    });
    path
}

fn access_lines(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "10.0.0.{} - - [23/Nov/2026:06:{:02}:00 +0000] \"GET /x HTTP/1.1\" 200 {i}\n",
            i % 7,
            i % 60
        ));
    }
    s.into_bytes()
}

#[test]
fn fifos_lose_no_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = access_lines(500);
    let p = fifo(dir.path(), "plain", data.clone());
    let out = run_bounded({
        let mut c = logq();
        c.arg("count").arg(&p);
        c
    });
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "count\n500\n");

    // --since used to read the start of every input to judge its time range.
    let p = fifo(dir.path(), "since", data);
    let out = run_bounded({
        let mut c = logq();
        c.args(["grep", "-c", "--since", "2026-11-23T06:30:00Z", "GET"])
            .arg(&p);
        c
    });
    assert!(out.status.success(), "{out:?}");
    // Minutes 30..59 of each hour-long run of 60 lines: 30 per 60 lines, 500 lines.
    let want = (0..500).filter(|i| i % 60 >= 30).count();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{want}\n"));
}

#[test]
fn gzip_on_stdin_is_decoded() {
    let data = access_lines(50);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let gz = gz.finish().unwrap();
    let out = run(
        {
            let mut c = logq();
            c.arg("count");
            c
        },
        &gz,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "count\n50\n");
}

/// Nothing selected is still a count: 0 (like `awk 'END { print NR }'`), and `grep -c`
/// prints a line for every input, also those `--since` skips unread (like GNU grep).
#[test]
fn empty_selections_print_zero() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log");
    std::fs::write(&a, access_lines(100)).unwrap();
    std::fs::write(&b, access_lines(10)).unwrap();
    let text = |o: Output| String::from_utf8(o.stdout).unwrap();

    let out = logq()
        .args(["count", "--where", "status == 999"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(text(out), "count\n0\n");
    let out = logq()
        .args(["stats", "count,sum(bytes)", "--since", "2030-01-01"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(text(out), "count\tsum(bytes)\n0\t0\n");

    let out = logq()
        .args(["grep", "-c", "--since", "2030-01-01", "GET"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(out), format!("{}:0\n{}:0\n", a.display(), b.display()));
    let out = logq()
        .args(["grep", "-c", "--since", "2030-01-01", "GET"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(text(out), "0\n");
}

/// A line over `--max-line` is an error naming the input (exit 2) for every command and
/// reading path, not an allocation of unbounded size; lines under it are read.
#[test]
fn lines_over_max_line_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.txt");
    let mut data = b"a b\n".to_vec();
    data.extend(std::iter::repeat_n(b'x', 3 << 20));
    data.extend_from_slice(b"\nc d\n");
    std::fs::write(&path, &data).unwrap();
    let cmds: [&[&str]; 6] = [
        &["grep", "-c", "a"],
        &["cut", "-f1"],
        &["count"],
        &["where", "$1 == \"c\""],
        &["print", "1"],
        &["count", "--since", "2000-01-01"],
    ];
    for args in cmds {
        let out = logq()
            .args(args)
            .args(["--no-mmap", "--max-line", "1M"])
            .arg(&path)
            .output()
            .unwrap();
        // GNU cut's status for any failure is 1; the others follow grep (2).
        let status = if args[0] == "cut" { 1 } else { 2 };
        assert_eq!(out.status.code(), Some(status), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--max-line") && err.contains("big.txt"),
            "{args:?}: {err}"
        );
        // Stdin goes through the same readers.
        let mut c = logq();
        c.args(args).args(["--max-line", "1M"]);
        let out = run(c, &data);
        assert_eq!(
            out.status.code(),
            Some(status),
            "{args:?} on stdin: {out:?}"
        );
        // Under the limit, the same input is read.
        let out = logq()
            .args(args)
            .args(["--no-mmap", "--max-line", "4M"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}

/// A file written to in the last seconds (a live log a `copytruncate` rotation may cut) is
/// read, not memory-mapped; an older one of the same size is mapped.
#[test]
fn live_files_are_not_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.log");
    let old = dir.path().join("old.log");
    let data = access_lines(30_000);
    assert!(data.len() > 1 << 20, "over the 1 MiB mapping threshold");
    std::fs::write(&live, &data).unwrap();
    std::fs::write(&old, &data).unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    for (path, mapped) in [(&live, false), (&old, true)] {
        let out = logq()
            .env("RUST_LOG", "logq=debug")
            .args(["count", "--no-progress"])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "count\n30000\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            !err.contains("not mapped: written to in the last seconds"),
            mapped,
            "{}: {err}",
            path.display()
        );
    }
}

/// A missing file is reported and skipped, the others are read, and the status is 2, as
/// with GNU grep and cut (`grep -q` that found a match: 0).
#[test]
fn a_missing_file_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    std::fs::write(&a, access_lines(10)).unwrap();
    let gone = dir.path().join("gone.log");
    let out = logq()
        .args(["grep", "-c", "GET"])
        .arg(&gone)
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}:10\n", a.display())
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: No such file or directory", gone.display())),
        "{err}"
    );
    for (args, want) in [
        (&["count"][..], "count\n10\n"),
        (&["cut", "-c", "1-2"], &"10\n".repeat(10)),
    ] {
        let out = logq().args(args).arg(&gone).arg(&a).output().unwrap();
        let status = if args[0] == "cut" { 1 } else { 2 };
        assert_eq!(out.status.code(), Some(status), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{args:?}");
    }
    let out = logq()
        .args(["grep", "-q", "GET"])
        .arg(&gone)
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// A dangling symlink inside a directory is reported and skipped; the directory's other
/// files are still read (status 2).
#[test]
fn a_dangling_symlink_in_a_directory_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), access_lines(5)).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("b.log")).unwrap();
    std::fs::write(dir.path().join("c.log"), access_lines(7)).unwrap();
    let out = logq().arg("count").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count\n12\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("b.log: No such file or directory"));
}
