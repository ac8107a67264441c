//! The README's logq examples, run as written: every command line in the `sh` blocks of the
//! "Querying logs: logq" section runs through `sh -c` with `logq` on the PATH, in a directory
//! holding a copy of `examples/` and a `./scribe-data` archive for the category examples.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn readme_commands() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Querying logs: logq"))
        .expect("README has a 'Querying logs: logq' section");
    let mut cmds = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if in_block && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            cmds.push(line.to_string());
        }
    }
    cmds
}

/// `data/apache.access`: three rotated files around "now" (a 10-day-old gzipped one, a
/// 2-day-old gzipped one, today's plain current file), each with `POST /login` lines.
fn category(dir: &Path) {
    let cat = dir.join("scribe-data/apache.access");
    std::fs::create_dir_all(&cat).unwrap();
    let now = chrono::Utc::now();
    let day = |ago: i64, n: usize| {
        let t = now - chrono::Duration::days(ago);
        let mut s = String::new();
        for i in 0..n {
            let ts = (t + chrono::Duration::seconds(i as i64)).format("%d/%b/%Y:%H:%M:%S +0000");
            let path = if i % 3 == 0 { "/login" } else { "/" };
            let method = if i % 3 == 0 { "POST" } else { "GET" };
            s.push_str(&format!(
                "10.0.{ago}.{i} - - [{ts}] \"{method} {path} HTTP/1.1\" 200 5 \"-\" \"ua\"\n"
            ));
        }
        s
    };
    write(
        &cat.join("apache.access_00000.gz"),
        &gzip(day(10, 9).as_bytes()),
    );
    write(
        &cat.join("apache.access_00001.gz"),
        &gzip(day(2, 9).as_bytes()),
    );
    write(&cat.join("apache.access_00002"), day(0, 9).as_bytes());
}

fn copy_examples(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/apache_access.log");
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    std::fs::copy(src, dir.join("examples/apache_access.log")).unwrap();
}

#[test]
fn readme_examples_run_as_written() {
    let cmds = readme_commands();
    assert!(
        cmds.len() >= 5,
        "expected the README's examples, got {cmds:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    copy_examples(tmp.path());
    category(tmp.path());
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_logq"))
        .parent()
        .unwrap()
        .into();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for cmd in &cmds {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(tmp.path())
            .env("PATH", &path)
            .output()
            .expect("sh");
        let stdout = show(&out.stdout);
        // `ps aux | logq where '$3 > 20'` may legitimately select nothing on an idle machine
        // (exit 1, like grep); every other example must print something.
        let may_be_empty = cmd.starts_with("ps aux");
        assert!(
            out.status.success() || (may_be_empty && out.status.code() == Some(1)),
            "{cmd}: {:?}\n{}",
            out.status,
            show(&out.stderr)
        );
        if cmd.contains("--plot users.png") {
            let png = std::fs::read(tmp.path().join("users.png")).expect("users.png written");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{cmd}");
        } else if !may_be_empty {
            assert!(!stdout.is_empty(), "{cmd}: no output");
        }
        if cmd.contains("--tail 40") {
            assert_eq!(stdout.lines().count(), 40, "{cmd}");
            assert!(
                stdout.lines().all(|l| l.split(' ').count() == 2),
                "{cmd}: {stdout}"
            );
        }
        if cmd.contains("--since 7d") {
            // The 10-day-old file is out of range; the 2-day-old gzip and today's file are in.
            assert!(!stdout.contains("10.0.10."), "{cmd}: {stdout}");
            assert_eq!(
                stdout.lines().filter(|l| l.contains("10.0.2.")).count(),
                3,
                "{stdout}"
            );
            assert_eq!(
                stdout.lines().filter(|l| l.contains("10.0.0.")).count(),
                3,
                "{stdout}"
            );
        }
        if cmd.contains("count_distinct(ip)") && !cmd.contains("--plot") {
            assert!(
                stdout.starts_with("time\tcount\tcount_distinct(ip)\n"),
                "{stdout}"
            );
        }
    }
}

#[test]
fn ps_filter_and_timestamp_prefix() {
    // The ps example on fixed input: header dropped (its $3 is "%CPU"), only CPU > 20 kept.
    let ps = "USER PID %CPU %MEM VSZ RSS TTY STAT START TIME COMMAND\n\
              root 1 0.0 0.1 1 1 ? Ss 10:00 0:01 /sbin/init\n\
              www 42 37.5 2.0 1 1 ? R 10:00 9:01 /usr/bin/php-fpm\n\
              www 43 20 2.0 1 1 ? R 10:00 9:01 /usr/bin/php-fpm\n";
    let mut c = logq();
    c.args(["where", "$3 > 20", "--timestamp"]);
    let out = show(&run(c, ps.as_bytes()).stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let (stamp, rest) = lines[0].split_at(20);
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp.trim_end(), "%Y-%m-%d %H:%M:%S").is_ok(),
        "{stamp}"
    );
    assert_eq!(rest, "www 42 37.5 2.0 1 1 ? R 10:00 9:01 /usr/bin/php-fpm");
}
