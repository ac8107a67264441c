//! `--follow`: real files that grow, rotate (rename + create) and are truncated, and a
//! category archive that rotates, read by a running logq; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::*;

/// A running `logq ... --follow`, its stdout lines arriving on a channel.
struct Live {
    child: Child,
    lines: Receiver<String>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        let mut child = logq()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn logq");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Live { child, lines }
    }

    /// Appends `probe` lines to `path` until logq prints one (it starts at the end of the
    /// file, so lines written before it is ready are not read), then returns.
    fn wait_ready(&self, path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            append(path, "probe 999\n");
            if self.lines.recv_timeout(Duration::from_millis(200)).is_ok() {
                // Drain the other probes.
                while self.lines.recv_timeout(Duration::from_millis(300)).is_ok() {}
                return;
            }
        }
        panic!("logq --follow printed nothing for 20 s");
    }

    /// The next `n` lines, each within 10 s.
    fn next(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("line {i} of {n} did not come"))
            })
            .collect()
    }

    /// No further line within `d`.
    fn quiet_for(&self, d: Duration) {
        if let Ok(l) = self.lines.recv_timeout(d) {
            panic!("unexpected line {l:?}");
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

#[test]
fn where_follows_a_file_across_rename_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "old 500\n");
    let f = log.to_str().unwrap();
    let live = Live::start(&["where", "$2 >= 500", "--follow", f]);
    live.wait_ready(&log);
    append(&log, "a 200\nb 503\n");
    assert_eq!(live.next(1), ["b 503"]);
    // logrotate's rename + create: the rest of the old file, then the new one.
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    append(&dir.path().join("app.log.1"), "c 501\n");
    append(&log, "d 502\ne 100\n");
    let got = live.next(2);
    assert_eq!(got, ["c 501", "d 502"]);
    // copytruncate: read again from the start.
    std::fs::write(&log, b"").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(&log, "f 599\n");
    assert_eq!(live.next(1), ["f 599"]);
    live.quiet_for(Duration::from_millis(300));
}

#[test]
fn grep_and_print_stream_matches_of_a_rotating_category() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cat = data.join("web");
    std::fs::create_dir_all(&cat).unwrap();
    let first = cat.join("web_00000");
    append(&first, "x 1\n");
    std::os::unix::fs::symlink("web_00000", cat.join("web_current")).unwrap();
    let d = data.to_str().unwrap();
    let live = Live::start(&[
        "grep",
        "--follow",
        "-e",
        "GET",
        "--category",
        "web",
        "--data-dir",
        d,
    ]);
    // Probes do not match GET: use a matching probe.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        append(&first, "GET probe\n");
        if live.lines.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no output for 20 s");
    }
    while live.lines.recv_timeout(Duration::from_millis(300)).is_ok() {}
    append(&first, "POST /a\nGET /b\n");
    assert_eq!(live.next(1), ["GET /b"]);
    // Rotation: a new numbered file and the link moved to it.
    append(&cat.join("web_00001"), "GET /c\nPUT /d\nGET /e\n");
    let tmp = cat.join("web_current.tmp");
    std::os::unix::fs::symlink("web_00001", &tmp).unwrap();
    std::fs::rename(&tmp, cat.join("web_current")).unwrap();
    assert_eq!(live.next(2), ["GET /c", "GET /e"]);
    live.quiet_for(Duration::from_millis(300));

    let live = Live::start(&["print", "2", "-F", "--category", "web", "--data-dir", d]);
    live.wait_ready(&cat.join("web_00001"));
    append(&cat.join("web_00001"), "a b\n");
    assert_eq!(live.next(1), ["b"]);
}

#[test]
fn follow_needs_something_to_follow() {
    let (code, _, err) = logq_out(&["where", "$1", "--follow"]);
    assert_eq!(code, 2);
    assert!(err.contains("--follow needs a file"), "{err}");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `count --by 1s --follow` prints each second's row once it has closed, quiet seconds as 0.
#[test]
fn count_by_bucket_prints_each_bucket_as_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, "");
    let f = log.to_str().unwrap();
    let live = Live::start(&["count", "--by", "1s", "--follow", f]);
    // Lines until the first row shows that logq is reading.
    let deadline = Instant::now() + Duration::from_secs(20);
    let header = loop {
        append(
            &log,
            &format!("{{\"ts\": {}, \"m\": \"probe\"}}\n", unix_now()),
        );
        if let Ok(l) = live.lines.recv_timeout(Duration::from_millis(200)) {
            break l;
        }
        assert!(Instant::now() < deadline, "no output for 20 s");
    };
    assert_eq!(header, "time\tcount");
    while live.lines.recv_timeout(Duration::from_millis(100)).is_ok() {}
    // Three lines stamped with one second: one row with 3, printed once that second closed.
    let t = unix_now() + 1;
    for _ in 0..3 {
        append(&log, &format!("{{\"ts\": {t}, \"m\": \"x\"}}\n"));
    }
    let want = |n: u32| {
        let when = chrono_like(t);
        format!("{when}\t{n}")
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rows = Vec::new();
    while Instant::now() < deadline && !rows.contains(&want(3)) {
        if let Ok(l) = live.lines.recv_timeout(Duration::from_millis(500)) {
            rows.push(l);
        }
    }
    assert!(rows.contains(&want(3)), "{rows:?}");
    // The next second had no line: a zero row follows.
    let next = live.next(1);
    assert_eq!(next, [format!("{}\t0", chrono_like(t + 1))], "{rows:?}");
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for Unix seconds (civil-from-days, no dependency).
fn chrono_like(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// With `-O table` (the default on a terminal) the live table is redrawn in place: frames
/// start with cursor-home + clear, closed buckets stay, the open one is marked.
#[test]
fn live_table_redraws_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.jsonl");
    append(&log, "");
    let f = log.to_str().unwrap();
    let live = Live::start(&["count", "--by", "1s", "--follow", "-O", "table", f]);
    let t = unix_now() + 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let closed = |seen: &[String]| {
        seen.iter()
            .any(|l| l.starts_with(&chrono_like(t)) && l.trim_end().ends_with(" 3"))
    };
    let mut wrote = false;
    let marked = |seen: &[String]| seen.iter().any(|l| l.contains("buckets still open"));
    while Instant::now() < deadline && !(closed(&seen) && marked(&seen)) {
        if !wrote {
            // Three lines of second t, written once logq shows it reads (a probe row of a
            // second long past, so that it never shares the bucket of t).
            append(&log, &format!("{{\"ts\": {}, \"m\": \"probe\"}}\n", t - 5));
            if seen.iter().any(|l| l.contains("\x1b[H\x1b[2J")) {
                for _ in 0..3 {
                    append(&log, &format!("{{\"ts\": {t}, \"m\": \"x\"}}\n"));
                }
                wrote = true;
            }
        }
        if let Ok(l) = live.lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    assert!(wrote && closed(&seen), "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.ends_with("\x1b[H\x1b[2Jtime                 count")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("buckets still open")),
        "{seen:?}"
    );
}
