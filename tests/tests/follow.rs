//! `ship --follow` and `ship --config` with real processes: where reading starts, files and
//! directories that appear later, category templates, clean restarts, a thousand files with few
//! descriptors, multiline records, and bytes that are not UTF-8.
//!
//! Rotation, truncation, crashes and outages under load are in `follow_torture.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_tests::{
    category_bytes, cpu_time, open_fds, read_category, seq_line, seq_lines, wait_for, Recorder,
    Scribed, SeqReport, ShipProc, ShipStats, SEQ_LINE_LEN,
};

/// Appends `bytes` to `path` (creating it) in one write, as a logging daemon does.
fn append(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `--to ADDR --state-dir DIR` plus `extra`.
fn ship_args(addr: &str, state: &Path, extra: &[String]) -> Vec<String> {
    let mut a = vec!["--to".into(), addr.into(), "--state-dir".into(), s(state)];
    a.extend_from_slice(extra);
    a
}

/// Waits (at most `limit`) until `category` holds at least `bytes` bytes, checking that ship
/// keeps running meanwhile.
fn wait_bytes(ship: &mut ShipProc, data: &Path, category: &str, bytes: u64, limit: Duration) {
    wait_for(limit, &format!("{bytes} bytes in {category}"), || {
        ship.assert_running();
        category_bytes(data, category) >= bytes
    });
}

/// Stops ship with SIGTERM, asserts a clean exit, and returns its final stats.
fn stop_clean(ship: ShipProc) -> ShipStats {
    let (status, stderr) = ship.stop();
    assert!(
        status.success(),
        "ship exited {status} on SIGTERM: {stderr}"
    );
    ShipStats::from_stderr(&stderr)
}

/// Appends one `marker` line to `path` every 50 ms until one reaches `category`, which proves
/// ship has started and scanned its paths (ship has no ready file in follow mode). Returns how
/// many marker lines were written.
fn sync_with_ship(ship: &mut ShipProc, data: &Path, path: &Path, category: &str) -> u64 {
    let start = Instant::now();
    let mut n = 0;
    while category_bytes(data, category) == 0 {
        ship.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no line appended to {} reached {category} within 30 s: {}",
            path.display(),
            ship.stderr_text()
        );
        append(path, &seq_line("marker", n));
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    n
}

#[test]
fn follows_one_file_from_the_beginning_and_as_it_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let log = tmp.path().join("app.log");
    append(&log, &seq_lines("app", 0..500));

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--from-beginning".into(),
                "--follow".into(),
                format!("{}=one", s(&log)),
            ],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    wait_bytes(
        &mut ship,
        &data,
        "one",
        500 * SEQ_LINE_LEN as u64,
        Duration::from_secs(30),
    );
    for chunk in 0..5 {
        append(
            &log,
            &seq_lines("app", 500 + chunk * 100..600 + chunk * 100),
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    wait_bytes(
        &mut ship,
        &data,
        "one",
        1000 * SEQ_LINE_LEN as u64,
        Duration::from_secs(30),
    );
    let stats = stop_clean(ship);

    assert_eq!(
        read_category(&data, "one"),
        std::fs::read(&log).unwrap(),
        "the archive is the file, byte for byte"
    );
    assert_eq!(stats.get("lines"), 1000, "{stats:?}");
    assert_eq!(stats.get("bytes"), 1000 * SEQ_LINE_LEN as u64, "{stats:?}");
}

#[test]
fn a_file_that_existed_before_the_first_run_starts_at_its_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let log = tmp.path().join("old.log");
    append(&log, &seq_lines("old", 0..300));

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &["--follow".into(), format!("{}=tail", s(&log))],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    let markers = sync_with_ship(&mut ship, &data, &log, "tail");
    append(&log, &seq_lines("new", 0..200));
    // Everything after the first marker that arrived must arrive too.
    std::thread::sleep(Duration::from_millis(300));
    let first = SeqReport::of(&read_category(&data, "tail"))
        .distinct("marker")
        .first()
        .copied()
        .expect("a marker arrived");
    let want = (markers - first + 200) * SEQ_LINE_LEN as u64;
    wait_bytes(&mut ship, &data, "tail", want, Duration::from_secs(30));
    stop_clean(ship);

    let stored = read_category(&data, "tail");
    let r = SeqReport::of(&stored);
    assert!(
        r.distinct("old").is_empty(),
        "lines written before ship first ran were sent without --from-beginning"
    );
    assert!(r.malformed.is_empty(), "{:?}", r.malformed);
    assert_eq!(r.duplicates(), 0);
    assert_eq!(r.distinct("marker"), (first..markers).collect());
    assert_eq!(r.distinct("new"), (0..200).collect());
    r.check_first_arrivals_in_order().unwrap();
}

#[test]
fn a_file_created_later_in_a_globbed_directory_is_read_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let first = dir.join("a.log");
    append(&first, &seq_lines("old", 0..50));

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &["--follow".into(), format!("{}/*.log=glob", s(&dir))],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    let markers = sync_with_ship(&mut ship, &data, &first, "glob");
    // Written in three pieces: the first may be all there is when ship first sees the file.
    let later = dir.join("b.log");
    for part in 0..3 {
        append(&later, &seq_lines("later", part * 100..(part + 1) * 100));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A name the glob does not match is not followed.
    append(&dir.join("c.txt"), &seq_lines("unmatched", 0..10));
    wait_for(Duration::from_secs(30), "b.log's 300 lines", || {
        ship.assert_running();
        SeqReport::of(&read_category(&data, "glob"))
            .distinct("later")
            .len()
            >= 300
    });
    std::thread::sleep(Duration::from_millis(500));
    stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "glob"));
    assert_eq!(
        r.distinct("later"),
        (0..300).collect(),
        "b.log read from its start"
    );
    assert!(r.distinct("old").is_empty());
    assert!(r.distinct("unmatched").is_empty(), "c.txt is not *.log");
    assert!(r.distinct("marker").iter().all(|&m| m < markers));
    assert_eq!(r.duplicates(), 0);
    assert!(r.malformed.is_empty(), "{:?}", r.malformed);
    r.check_first_arrivals_in_order().unwrap();
}

#[test]
fn a_directory_created_later_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let marker = tmp.path().join("marker.log");
    append(&marker, b"");
    let sub = tmp.path().join("later").join("sub");

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--follow".into(),
                format!("{}=marker", s(&marker)),
                "--follow".into(),
                format!("{}/*.log=sub", s(&sub)),
            ],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    sync_with_ship(&mut ship, &data, &marker, "marker");
    std::fs::create_dir_all(&sub).unwrap();
    append(&sub.join("x.log"), &seq_lines("x", 0..200));
    wait_bytes(
        &mut ship,
        &data,
        "sub",
        200 * SEQ_LINE_LEN as u64,
        Duration::from_secs(30),
    );
    stop_clean(ship);
    assert_eq!(
        read_category(&data, "sub"),
        seq_lines("x", 0..200),
        "a file in a directory that did not exist when ship started is read from its start"
    );
}

#[test]
fn category_templates_name_categories_after_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let logs = tmp.path().join("logs");
    let other = tmp.path().join("other");
    std::fs::create_dir(&logs).unwrap();
    std::fs::create_dir(&other).unwrap();
    append(&logs.join("web.log"), &seq_lines("web", 0..100));
    append(&logs.join("db.log"), &seq_lines("db", 0..120));
    // A file name that makes no valid category: ship must refuse it, not crash or escape.
    append(&logs.join("bad name.log"), &seq_lines("bad", 0..10));
    append(&other.join("jobs.txt"), &seq_lines("jobs", 0..80));

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--from-beginning".into(),
                "--follow".into(),
                format!("{}/*.log={{stem}}", s(&logs)),
                "--follow".into(),
                format!("{}/*.txt=file.{{name}}", s(&other)),
            ],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    for (cat, n) in [("web", 100), ("db", 120), ("file.jobs.txt", 80)] {
        wait_bytes(
            &mut ship,
            &data,
            cat,
            n * SEQ_LINE_LEN as u64,
            Duration::from_secs(30),
        );
    }
    // A file that appears later gets its own category too.
    append(&logs.join("cache.log"), &seq_lines("cache", 0..30));
    wait_bytes(
        &mut ship,
        &data,
        "cache",
        30 * SEQ_LINE_LEN as u64,
        Duration::from_secs(30),
    );
    stop_clean(ship);

    assert_eq!(read_category(&data, "web"), seq_lines("web", 0..100));
    assert_eq!(read_category(&data, "db"), seq_lines("db", 0..120));
    assert_eq!(
        read_category(&data, "file.jobs.txt"),
        seq_lines("jobs", 0..80)
    );
    assert_eq!(read_category(&data, "cache"), seq_lines("cache", 0..30));
    let dirs: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert!(
        !dirs.iter().any(|d| d.contains(' ')),
        "an invalid category name was written: {dirs:?}"
    );
}

/// A writer appending sequenced lines at a steady rate until stopped (or dropped).
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    fn start(path: PathBuf, src: &'static str, per_sec: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("opening log");
            let start = Instant::now();
            let mut seq = 0;
            while !flag.load(Ordering::SeqCst) {
                let due = start.elapsed().as_millis() as u64 * per_sec / 1000;
                while seq < due {
                    f.write_all(&seq_line(src, seq)).expect("writing log");
                    seq += 1;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seq
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops writing; returns how many lines were written.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("writer thread")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn clean_restart_while_lines_flow_neither_loses_nor_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let log = tmp.path().join("app.log");
    append(&log, b"");
    let args = ship_args(
        &scribed.addr,
        &tmp.path().join("state"),
        &[
            "--from-beginning".into(),
            "--follow".into(),
            format!("{}=restart", s(&log)),
        ],
    );
    let err = tmp.path().join("ship.err");
    let writer = Writer::start(log.clone(), "r", 3000);

    let mut stats = Vec::new();
    for round in 0..3 {
        let mut ship = ShipProc::spawn(&args, &err, None);
        let have = category_bytes(&data, "restart");
        wait_bytes(
            &mut ship,
            &data,
            "restart",
            have + 1,
            Duration::from_secs(30),
        );
        std::thread::sleep(Duration::from_millis(700));
        stats.push(stop_clean(ship));
        // Lines keep coming while ship is down; the next run must start where this one ended.
        if round < 2 {
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    let written = writer.finish();
    let mut ship = ShipProc::spawn(&args, &err, None);
    wait_bytes(
        &mut ship,
        &data,
        "restart",
        written * SEQ_LINE_LEN as u64,
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_millis(300));
    stats.push(stop_clean(ship));

    let stored = read_category(&data, "restart");
    let r = SeqReport::of(&stored);
    assert_eq!(r.duplicates(), 0, "a clean restart repeated lines");
    assert_eq!(r.missing("r", written), Vec::<u64>::new(), "lines lost");
    assert_eq!(stored, std::fs::read(&log).unwrap(), "archive == file");
    let total: u64 = stats.iter().map(|s| s.get("lines")).sum();
    assert_eq!(total, written, "the runs' line counts add up: {stats:?}");
}

#[test]
fn a_thousand_files_in_a_glob_are_followed_without_a_descriptor_each() {
    const FILES: usize = 1000;
    const NEW_FILES: usize = 200;
    const LINES: u64 = 5;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("many");
    std::fs::create_dir(&dir).unwrap();
    let name = |i: usize| format!("f{i:05}");
    for i in 0..FILES {
        append(
            &dir.join(format!("{}.log", name(i))),
            &seq_lines(&name(i), 0..LINES),
        );
    }

    // 128 descriptors: far fewer than the files, so a descriptor per file cannot work.
    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--from-beginning".into(),
                "--poll".into(),
                "--poll-interval".into(),
                "100ms".into(),
                "--follow".into(),
                format!("{}/*.log=many", s(&dir)),
            ],
        ),
        &tmp.path().join("ship.err"),
        Some(128),
    );
    let line = SEQ_LINE_LEN as u64;
    let mut max_fds = 0;
    let initial = FILES as u64 * LINES * line;
    wait_for(Duration::from_secs(60), "the first 1000 files", || {
        ship.assert_running();
        max_fds = max_fds.max(open_fds(ship.pid()));
        category_bytes(&data, "many") >= initial
    });
    // New files appear, and old ones grow, while ship runs.
    for i in FILES..FILES + NEW_FILES {
        append(
            &dir.join(format!("{}.log", name(i))),
            &seq_lines(&name(i), 0..LINES),
        );
        if i % 50 == 0 {
            max_fds = max_fds.max(open_fds(ship.pid()));
        }
    }
    for i in (0..FILES).step_by(10) {
        append(
            &dir.join(format!("{}.log", name(i))),
            &seq_lines(&name(i), LINES..2 * LINES),
        );
    }
    let total = initial + (NEW_FILES as u64 + FILES as u64 / 10) * LINES * line;
    wait_for(Duration::from_secs(60), "every file's lines", || {
        ship.assert_running();
        max_fds = max_fds.max(open_fds(ship.pid()));
        category_bytes(&data, "many") >= total
    });
    stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "many"));
    assert!(
        r.malformed.is_empty(),
        "{:?}",
        &r.malformed[..r.malformed.len().min(3)]
    );
    assert_eq!(r.duplicates(), 0);
    r.check_first_arrivals_in_order().unwrap();
    for i in 0..FILES + NEW_FILES {
        let n = if i < FILES && i % 10 == 0 {
            2 * LINES
        } else {
            LINES
        };
        assert_eq!(r.distinct(&name(i)), (0..n).collect(), "{}", name(i));
    }
    println!(
        "ship held at most {max_fds} descriptors following {} files",
        FILES + NEW_FILES
    );
    assert!(
        max_fds < 64,
        "ship held {max_fds} descriptors for {} files",
        FILES + NEW_FILES
    );
}

#[test]
fn multiline_records_from_a_config_file_are_joined_and_flushed_after_a_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let recorder = Recorder::start();
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let records: Vec<&[u8]> = vec![
        b"2026-11-23 10:00:00 INFO starting\n",
        b"2026-11-23 10:00:01 ERROR request failed\n\tat a.b.C.run(C.java:10)\n\tat a.b.D.main(D.java:3)\n",
        b"2026-11-23 10:00:02 INFO recovered\n",
        b"2026-11-23 10:00:03 WARN slow\n  detail one\n  detail \xff two\n",
    ];
    let app = dir.join("app.log");
    append(&app, &records[..2].concat());
    append(&dir.join("skip-me.log"), b"2026-11-23 10:00:00 excluded\n");
    let config = tmp.path().join("ship.toml");
    std::fs::write(
        &config,
        format!(
            r#"
to = ["{addr}"]
state_dir = "{state}"

[[follow]]
include = ["{dir}/*.log"]
exclude = ["{dir}/skip-*.log"]
category = "ml"
from_beginning = true
multiline_start = '^\d{{4}}-\d{{2}}-\d{{2}} '
multiline_timeout = "400ms"
"#,
            addr = recorder.addr,
            state = s(&tmp.path().join("state")),
            dir = s(&dir),
        ),
    )
    .unwrap();

    let mut ship = ShipProc::spawn(
        &["--config".to_string(), s(&config)],
        &tmp.path().join("ship.err"),
        None,
    );
    let n = |ship: &mut ShipProc, want: usize| {
        wait_for(Duration::from_secs(30), &format!("{want} records"), || {
            ship.assert_running();
            recorder.entries().len() >= want
        })
    };
    // The first record is complete once the second starts; the second only after the timeout.
    n(&mut ship, 2);
    append(&app, records[2]);
    // The last record arrives in pieces; its continuation lines must not be cut off.
    append(&app, b"2026-11-23 10:00:03 WARN slow\n");
    std::thread::sleep(Duration::from_millis(100));
    append(&app, b"  detail one\n  detail \xff two\n");
    n(&mut ship, 4);
    let flushed_at = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    stop_clean(ship);

    let entries = recorder.entries();
    let messages: Vec<&[u8]> = entries.iter().map(|e| &e.message[..]).collect();
    assert!(entries.iter().all(|e| &e.category[..] == b"ml"));
    assert_eq!(
        messages, records,
        "each record (a start line and its continuation lines) is one message"
    );
    assert!(flushed_at.elapsed() < Duration::from_secs(30));
}

#[test]
fn bytes_that_are_not_utf8_pass_through_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let log = tmp.path().join("bin.log");
    let mut body = Vec::new();
    body.extend_from_slice(b"caf\xe9 latin-1\n");
    body.extend_from_slice(b"\xff\xfe\x00NUL and BOM\r\n");
    body.extend_from_slice(b"\xc3\x28 bad sequence\n");
    body.extend_from_slice(b"\xed\xa0\x80 surrogate\n");
    body.extend_from_slice(b"\n");
    body.extend_from_slice(b"plain \xf0\x9f\x98\x80 emoji\n");
    body.extend((0u8..=255).filter(|&b| b != b'\n'));
    body.push(b'\n');
    append(&log, &body);

    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--from-beginning".into(),
                "--follow".into(),
                format!("{}=bin", s(&log)),
            ],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    wait_bytes(
        &mut ship,
        &data,
        "bin",
        body.len() as u64,
        Duration::from_secs(30),
    );
    let stats = stop_clean(ship);
    assert_eq!(read_category(&data, "bin"), body);
    assert_eq!(stats.get("lines"), 7);
}

#[test]
fn an_idle_follower_uses_almost_no_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    for name in ["a.log", "b.log", "c.log"] {
        append(&dir.join(name), &seq_lines(name, 0..100));
    }
    let mut ship = ShipProc::spawn(
        &ship_args(
            &scribed.addr,
            &tmp.path().join("state"),
            &[
                "--from-beginning".into(),
                "--follow".into(),
                format!("{}/*.log=idle", s(&dir)),
            ],
        ),
        &tmp.path().join("ship.err"),
        None,
    );
    wait_bytes(
        &mut ship,
        &data,
        "idle",
        300 * SEQ_LINE_LEN as u64,
        Duration::from_secs(30),
    );
    // Nothing changes from here on: ship should sleep between its polls. (Its own reads must
    // not wake it up again: inotify reports opens and reads of watched files too.)
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_time(ship.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_time(ship.pid()) - before;
    ship.assert_running();
    stop_clean(ship);
    assert!(
        used < Duration::from_millis(300),
        "ship used {used:?} of CPU in 3 s with nothing to read"
    );
}
