//! ship with its spool on a full disk while the aggregator is down: the state directory is on a
//! small tmpfs ([`Disk`]) that a filler file takes over. In every mode ship must stop reading
//! (`run`: the command's writes block; `--follow`: the files wait; stdin: it is not read), keep
//! trying the aggregator and the spool, say so once, and go on when either recovers: every line
//! arrives exactly once and in order, ship never exits early, and the command is never killed.
//!
//! The tmpfs is mounted by the test when it may (root), else by ship inside its own user and
//! mount namespace; without either the tests are skipped with a printed reason.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pipeline_tests::tmpfs::{fill, Disk};
use pipeline_tests::{
    bin, free_port, read_category, seq_lines, wait_for, Launch, Scribed, ShipProc, ShipStats,
};

/// The tmpfs: room for every line of a test several times over once the filler is gone.
const DISK: u64 = 16 << 20;
/// Lines a test writes: 4 MB, well past what ship holds in memory with 64 KiB batches, so a
/// ship that kept reading with nowhere to put the lines would be caught.
const LINES: u64 = 40_000;
/// What ship logs once when its spool's disk is full.
const DISK_FULL: &str = "the disk is full";

/// A temporary directory with the tmpfs at `disk`; `None` (after saying why) when no tmpfs can
/// be had here.
fn setup(test: &str) -> Option<(tempfile::TempDir, Disk)> {
    let tmp = tempfile::tempdir().unwrap();
    match Disk::new(&tmp.path().join("disk"), DISK) {
        Ok(disk) => Some((tmp, disk)),
        Err(why) => {
            println!("{test} SKIPPED: cannot mount a tmpfs: {why}");
            None
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Flags of every test: state (and spool) on the tmpfs, spool after 1 s without an
/// acknowledgement, small batches.
fn common(addr: &str, state: &Path) -> Vec<String> {
    [
        "--to",
        addr,
        "--state-dir",
        &s(state),
        "--spool-after",
        "1s",
        "--batch-bytes",
        "64K",
    ]
    .map(String::from)
    .to_vec()
}

/// A `seq -f` format printing [`seq_line`]s of `src`.
fn seq_format(src: &str) -> String {
    format!("{src} %010g {} end", "x".repeat(83 - src.len()))
}

fn scribed_at(data: &Path, addr: &str) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            listen: Some(addr.to_string()),
            ..Launch::default()
        },
    )
}

/// Lets `d` pass, checking every 100 ms that ship is still running.
fn hold_for(ship: &mut ShipProc, d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        ship.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(text: &str, what: &str) -> usize {
    text.matches(what).count()
}

/// Appends `seq_lines(src, from..to)` to `log`.
fn append(log: &Path, src: &str, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(&seq_lines(src, from..to)).unwrap();
}

/// Waits (at most 60 s) until `category` holds `n` lines.
fn wait_lines(data: &Path, category: &str, n: u64, ship: &mut ShipProc) {
    wait_for(Duration::from_secs(60), "every line to arrive", || {
        ship.assert_running();
        read_category(data, category).len() as u64 >= n * pipeline_tests::SEQ_LINE_LEN as u64
    });
}

#[test]
fn run_on_a_full_disk_blocks_the_command_and_loses_nothing() {
    let Some((tmp, disk)) = setup("run_on_a_full_disk") else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let done = tmp.path().join("command.done");
    let script = format!(
        "seq -f '{}' 0 {}; seq -f 'err %g' 1 100 >&2; : > '{}'",
        seq_format("app"),
        LINES - 1,
        s(&done)
    );
    let mut args = vec!["run".to_string()];
    args.extend(common(&addr, &disk.dir().join("st")));
    args.extend(["--category", "app", "--", "sh", "-c", &script].map(String::from));
    let err = tmp.path().join("ship.err");
    let cmd = disk.command(&bin("ship"), true);
    let mut ship = ShipProc::spawn_command(cmd, &args, Stdio::null(), &err);
    let view = disk.view(ship.pid() as u32);

    // Aggregator down, disk full: ship holds what it read and reads no more.
    hold_for(&mut ship, Duration::from_secs(3));
    assert!(
        !done.exists(),
        "the command wrote everything: ship kept reading with nowhere to put the lines"
    );
    assert_eq!(
        count(&ship.stderr_text(), DISK_FULL),
        1,
        "{}",
        ship.stderr_text()
    );

    // Room again (ship spools), then the aggregator is back (ship replays).
    std::fs::remove_file(view.join("filler")).unwrap();
    hold_for(&mut ship, Duration::from_secs(2));
    let data = tmp.path().join("data");
    let _scribed = scribed_at(&data, &addr);
    let (status, stderr) = ship.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "the command's status: {stderr}");
    assert!(done.exists(), "the command did not finish");
    assert!(
        read_category(&data, "app") == seq_lines("app", 0..LINES),
        "app: every line once, in order"
    );
    let errs: Vec<u8> = (1..=100)
        .flat_map(|i| format!("err {i}\n").into_bytes())
        .collect();
    assert_eq!(read_category(&data, "app.stderr"), errs);
    assert!(
        ShipStats::from_stderr(&stderr).get("disk_full") >= 1,
        "{stderr}"
    );
}

#[test]
fn follow_keeps_files_unread_while_the_spool_disk_is_full() {
    let Some((tmp, disk)) = setup("follow_disk_fills") else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let log = tmp.path().join("app.log");
    std::fs::File::create(&log).unwrap();
    let mut args = common(&addr, &disk.dir().join("st"));
    args.extend([
        "--from-beginning".into(),
        "--follow".into(),
        format!("{}=app", s(&log)),
    ]);
    let err = tmp.path().join("ship.err");
    let cmd = disk.command(&bin("ship"), false);
    let mut ship = ShipProc::spawn_command(cmd, &args, Stdio::null(), &err);
    let view = disk.view(ship.pid() as u32);

    // Aggregator down: the first lines go to the spool.
    append(&log, "app", 0, 1000);
    let spool = view.join("st").join("spool");
    wait_for(Duration::from_secs(20), "ship to spool", || {
        ship.assert_running();
        spooled_bytes(&spool) > 0
    });
    // Then the disk fills up, and more lines come.
    fill(&view.join("filler"), 0, u64::MAX);
    append(&log, "app", 1000, LINES);
    hold_for(&mut ship, Duration::from_secs(3));
    assert_eq!(
        count(&ship.stderr_text(), DISK_FULL),
        1,
        "{}",
        ship.stderr_text()
    );

    // The aggregator comes back while the disk is still full: the spool is replayed, what
    // ship held and the rest of the file follow.
    let data = tmp.path().join("data");
    let scribed = scribed_at(&data, &addr);
    wait_lines(&data, "app", LINES, &mut ship);
    // Draining the spool gave its space back; fill it again: now the positions file cannot be
    // saved, and delivery goes on all the same.
    fill(&view.join("filler"), 0, u64::MAX);
    append(&log, "app", LINES, LINES + 1000);
    wait_lines(&data, "app", LINES + 1000, &mut ship);
    hold_for(&mut ship, Duration::from_secs(1));
    // Room again; more lines.
    std::fs::remove_file(view.join("filler")).unwrap();
    append(&log, "app", LINES + 1000, LINES + 2000);
    wait_lines(&data, "app", LINES + 2000, &mut ship);

    let (status, stderr) = ship.stop();
    assert!(status.success(), "ship on SIGTERM: {stderr}");
    assert!(
        read_category(&data, "app") == seq_lines("app", 0..LINES + 2000),
        "every line once, in order"
    );
    assert!(
        ShipStats::from_stderr(&stderr).get("disk_full") >= 1,
        "{stderr}"
    );
    // Once per stretch of failures (the first fill may or may not have made one).
    let positions = count(&stderr, "saving positions");
    assert!((1..=2).contains(&positions), "{stderr}");
    drop(scribed);
}

#[test]
fn follow_started_on_a_full_disk_waits_for_room() {
    let Some((tmp, disk)) = setup("follow_started_full") else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let log = tmp.path().join("app.log");
    append(&log, "app", 0, 2000);
    let mut args = common(&addr, &disk.dir().join("st"));
    args.extend([
        "--from-beginning".into(),
        "--follow".into(),
        format!("{}=app", s(&log)),
    ]);
    let err = tmp.path().join("ship.err");
    let cmd = disk.command(&bin("ship"), true);
    let mut ship = ShipProc::spawn_command(cmd, &args, Stdio::null(), &err);
    let view = disk.view(ship.pid() as u32);

    // Not even its producer id fits: ship waits, and says so once.
    hold_for(&mut ship, Duration::from_secs(3));
    assert_eq!(
        count(&ship.stderr_text(), DISK_FULL),
        1,
        "{}",
        ship.stderr_text()
    );
    std::fs::remove_file(view.join("filler")).unwrap();
    let data = tmp.path().join("data");
    let _scribed = scribed_at(&data, &addr);
    wait_lines(&data, "app", 2000, &mut ship);
    let (status, stderr) = ship.stop();
    assert!(status.success(), "ship on SIGTERM: {stderr}");
    assert!(
        read_category(&data, "app") == seq_lines("app", 0..2000),
        "every line once, in order"
    );
}

#[test]
fn stdin_is_not_read_while_the_spool_disk_is_full() {
    let Some((tmp, disk)) = setup("stdin_on_a_full_disk") else {
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let mut args = common(&addr, &disk.dir().join("st"));
    args.extend([
        "--spool-dir".into(),
        s(&disk.dir().join("spool")),
        "app".into(),
    ]);
    let err = tmp.path().join("ship.err");
    let cmd = disk.command(&bin("ship"), true);
    let mut ship = ShipProc::spawn_command(cmd, &args, Stdio::piped(), &err);
    let view = disk.view(ship.pid() as u32);
    let mut stdin = ship.take_stdin().unwrap();
    let written = Arc::new(AtomicBool::new(false));
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let r = stdin.write_all(&seq_lines("app", 0..LINES));
        w.store(true, Ordering::SeqCst);
        r
    });

    hold_for(&mut ship, Duration::from_secs(3));
    assert!(
        !written.load(Ordering::SeqCst),
        "all of stdin was read: ship kept reading with nowhere to put the lines"
    );
    assert_eq!(
        count(&ship.stderr_text(), DISK_FULL),
        1,
        "{}",
        ship.stderr_text()
    );
    // Both recover at once.
    let data = tmp.path().join("data");
    let _scribed = scribed_at(&data, &addr);
    std::fs::remove_file(view.join("filler")).unwrap();
    let (status, stderr) = ship.wait_exit(Duration::from_secs(60));
    writer
        .join()
        .unwrap()
        .expect("writing ship's stdin (a broken pipe means ship quit reading)");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        read_category(&data, "app") == seq_lines("app", 0..LINES),
        "every line once, in order"
    );
}

/// Bytes in the spool's segment files.
fn spooled_bytes(spool: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(spool) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
