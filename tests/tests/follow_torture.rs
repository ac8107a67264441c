//! `ship --follow` under load while the followed file is rotated, truncated in place, while
//! ship is killed, and while the aggregator is away.
//!
//! A writer thread appends sequenced lines ([`seq_line`]) at `FOLLOW_TORTURE_RATE` lines/s
//! (default 20,000) for `FOLLOW_TORTURE_SECS` seconds (default 20, what CI runs); the archive
//! is then parsed and every sequence number accounted for.
//!
//! Environment knobs: `FOLLOW_TORTURE_SECS`, `FOLLOW_TORTURE_RATE`, `FOLLOW_OUTAGE_SECS`
//! (aggregator downtime, default 10).

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_tests::torture::{copy_and_truncate, knob, rename_and_recreate, Every, Writer};
use pipeline_tests::{
    bin, category_bytes, category_files, free_port, read_category, seq_line, Launch, Scribed,
    SeqReport, ShipProc, ShipStats, SEQ_LINE_LEN,
};

fn torture_secs() -> u64 {
    knob("FOLLOW_TORTURE_SECS", 20).max(2)
}

fn rate() -> u64 {
    knob("FOLLOW_TORTURE_RATE", 20_000).max(100)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// True when `ship --help` lists `flag` (batching knobs make the duplicate bound tight).
fn ship_has_flag(flag: &str) -> bool {
    let out = std::process::Command::new(bin("ship"))
        .arg("--help")
        .output()
        .expect("running ship --help");
    String::from_utf8_lossy(&out.stdout).contains(flag)
}

/// The file being written and the next sequence number, shared by the writer and whoever
/// rotates or truncates the file.
/// Waits (at most `limit`) until the last line of `category` is `last`; false on timeout.
fn wait_last_line(
    ship: &mut ShipProc,
    data: &Path,
    category: &str,
    last: &[u8],
    limit: Duration,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        ship.assert_running();
        if let Some(f) = category_files(data, category).last() {
            if std::fs::read(f).is_ok_and(|b| b.ends_with(last)) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
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

/// Sequence numbers of `src` that arrived more than once, ascending.
fn duplicated(r: &SeqReport, src: &str) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut dup: std::collections::BTreeSet<u64> = Default::default();
    for &s in r.per_src.get(src).map_or(&[][..], |v| &v[..]) {
        if !seen.insert(s) {
            dup.insert(s);
        }
    }
    dup.into_iter().collect()
}

/// Missing sequence numbers as ranges, for readable failures.
fn ranges(missing: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &m in missing {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == m => *end = m,
            _ => out.push((m, m)),
        }
    }
    out
}

#[test]
fn rename_and_recreate_every_100ms_delivers_every_line_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("app.log");
    File::create(&path).unwrap();
    let mut ship = ShipProc::spawn(
        &[
            "--to".into(),
            scribed.addr.clone(),
            "--state-dir".into(),
            s(&tmp.path().join("state")),
            "--from-beginning".into(),
            "--follow".into(),
            format!("{}=rot", s(&path)),
        ],
        &tmp.path().join("ship.err"),
        None,
    );

    let secs = torture_secs();
    let writer = Writer::start(&path, "rot", rate());
    let log = writer.log.clone();
    let rotator = Every::start(
        Duration::from_millis(100),
        Duration::ZERO,
        0,
        move |round| rename_and_recreate(&log, round),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let rotations = rotator.finish();
    let (_, written) = writer.finish();
    let done = wait_last_line(
        &mut ship,
        &data,
        "rot",
        &seq_line("rot", written - 1),
        Duration::from_secs(60 + secs),
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "rot"));
    let missing = r.missing("rot", written);
    println!(
        "rename torture: {written} lines in {secs} s, {rotations} rotations; ship saw {} \
         rotations; {} missing, {} duplicates; stats {stats:?}",
        stats.get("rotations"),
        missing.len(),
        r.duplicates()
    );
    assert!(
        missing.is_empty(),
        "{} of {written} lines lost (ranges {:?}); {}",
        missing.len(),
        &ranges(&missing)[..ranges(&missing).len().min(10)],
        where_lost(&dir, "rot", &ranges(&missing), &tmp.path().join("ship.err"))
    );
    assert!(done, "the last line was not the last to arrive");
    assert_eq!(r.duplicates(), 0, "lines delivered twice");
    assert!(
        r.malformed.is_empty(),
        "cut or glued lines: {:?}",
        &r.malformed[..r.malformed.len().min(3)]
    );
    assert_eq!(
        r.per_src["rot"],
        (0..written).collect::<Vec<_>>(),
        "lines out of order"
    );
    assert!(
        stats.get("rotations") > 0 && stats.get("rotations") <= rotations,
        "ship counted {} rotations of {rotations}",
        stats.get("rotations")
    );
    assert_eq!(stats.get("truncations"), 0);
    assert_eq!(stats.get("vanished"), 0);
}

#[test]
fn copytruncate_every_500ms_repeats_nothing_and_loses_only_unread_tails() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("app.log");
    File::create(&path).unwrap();
    let mut ship = ShipProc::spawn(
        &[
            "--to".into(),
            scribed.addr.clone(),
            "--state-dir".into(),
            s(&tmp.path().join("state")),
            "--from-beginning".into(),
            "--follow".into(),
            format!("{}=ct", s(&path)),
        ],
        &tmp.path().join("ship.err"),
        None,
    );

    let secs = torture_secs();
    let writer = Writer::start(&path, "ct", rate());
    let log = writer.log.clone();
    // The first sequence number of each generation after a truncation.
    let boundaries = Arc::new(Mutex::new(Vec::new()));
    let b = boundaries.clone();
    // logrotate's copytruncate, with the writer held off while the copy and the truncation
    // happen: lines written in between would be lost by any follower (they are in neither the
    // copy nor the file), and excluding them makes what ship alone loses exactly checkable.
    let truncator = Every::start(Duration::from_millis(500), Duration::ZERO, 0, move |_| {
        b.lock().unwrap().push(copy_and_truncate(&log));
    });
    std::thread::sleep(Duration::from_secs(secs));
    let truncations = truncator.finish();
    let (_, written) = writer.finish();
    let done = wait_last_line(
        &mut ship,
        &data,
        "ct",
        &seq_line("ct", written - 1),
        Duration::from_secs(60 + secs),
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "ct"));
    let missing = r.missing("ct", written);
    let lost_bytes = missing.len() as u64 * SEQ_LINE_LEN as u64;
    println!(
        "copytruncate torture: {written} lines in {secs} s, {truncations} truncations; ship \
         detected {}; lost {} lines ({lost_bytes} bytes), ship reported {} unread bytes; {} \
         fragments; stats {stats:?}",
        stats.get("truncations"),
        missing.len(),
        stats.get("truncated_unread_bytes"),
        r.malformed.len()
    );
    let dups = ranges(&duplicated(&r, "ct"));
    assert_eq!(
        r.duplicates(),
        0,
        "copytruncate made ship repeat lines: ranges {:?}; generations start at {:?}",
        &dups[..dups.len().min(10)],
        &boundaries.lock().unwrap()[..]
    );
    assert_eq!(
        r.per_src["ct"].windows(2).find(|w| w[0] >= w[1]),
        None,
        "lines out of order"
    );
    assert!(
        done,
        "the last line written ({}) did not arrive last; the last to arrive: {:?}",
        written - 1,
        r.per_src["ct"].last()
    );
    // Generation g holds [start_g, end_g); ship reads each from 0 until its truncation, so
    // what it lost of a generation is a tail, and the last generation is complete.
    let mut starts = vec![0];
    starts.extend(boundaries.lock().unwrap().iter().copied());
    let got = r.distinct("ct");
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(written);
        let arrived: Vec<u64> = (start..end).filter(|s| got.contains(s)).collect();
        assert_eq!(
            arrived,
            (start..start + arrived.len() as u64).collect::<Vec<_>>(),
            "generation {i} ({start}..{end}): lines lost from its middle, not only its tail"
        );
        if i + 1 == starts.len() {
            assert_eq!(
                arrived.len() as u64,
                end - start,
                "the last generation is incomplete"
            );
        }
    }
    // A partial line is given up only where a file was truncated.
    assert!(
        r.malformed.len() as u64 <= stats.get("truncations"),
        "{} fragments for {} truncations: {:?}",
        r.malformed.len(),
        stats.get("truncations"),
        &r.malformed[..r.malformed.len().min(3)]
    );
    let detected = stats.get("truncations");
    assert!(
        detected >= 1 && detected <= truncations,
        "ship detected {detected} of {truncations} truncations"
    );
    // What ship reports is a lower bound (bytes it saw but had not read when the file was
    // truncated): never more than what was really lost, and nothing when nothing was lost.
    // But loss must not go unreported (the issue: "anything lost is counted and reported").
    let reported = stats.get("truncated_unread_bytes");
    assert!(
        reported <= lost_bytes,
        "ship reported {reported} unread bytes but only {lost_bytes} were lost"
    );
    assert!(
        lost_bytes == 0 || reported > 0,
        "{} lines ({lost_bytes} bytes) were lost and ship reported no loss",
        missing.len()
    );
}

#[test]
fn kill9_mid_stream_then_restart_delivers_everything_with_bounded_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("app.log");
    File::create(&path).unwrap();
    // Small batches make "at most the in-flight batches" a tight bound.
    let (batch_lines, window) = if ship_has_flag("--batch-lines") && ship_has_flag("--window") {
        (1000u64, 4u64)
    } else {
        (16_384, 4)
    };
    let mut args = vec![
        "--to".to_string(),
        scribed.addr.clone(),
        "--state-dir".into(),
        s(&tmp.path().join("state")),
        "--from-beginning".into(),
        "--follow".into(),
        format!("{}=k9", s(&path)),
    ];
    if batch_lines == 1000 {
        args.extend([
            "--batch-lines".into(),
            batch_lines.to_string(),
            "--window".into(),
            window.to_string(),
        ]);
    }
    let err = tmp.path().join("ship.err");
    let mut ship = ShipProc::spawn(&args, &err, None);

    let secs = (torture_secs() / 2).max(4);
    let writer = Writer::start(&path, "k9", rate());
    let log = writer.log.clone();
    // Rotations too, also while ship is down: a restart must find its file under its new name.
    let rotator = Every::start(
        Duration::from_millis(1000),
        Duration::ZERO,
        0,
        move |round| rename_and_recreate(&log, round),
    );
    let kills = 2;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(secs * 1000 / (kills + 1)));
        ship.assert_running();
        ship.kill9();
        std::thread::sleep(Duration::from_millis(500));
        ship = ShipProc::spawn(&args, &err, None);
    }
    std::thread::sleep(Duration::from_millis(secs * 1000 / (kills + 1)));
    rotator.finish();
    let (_, written) = writer.finish();
    let last = seq_line("k9", written - 1);
    let start = Instant::now();
    // Duplicates may follow the last line, so wait on the set, not on the last line.
    loop {
        ship.assert_running();
        if category_bytes(&data, "k9") >= written * SEQ_LINE_LEN as u64
            && SeqReport::of(&read_category(&data, "k9"))
                .missing("k9", written)
                .is_empty()
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(60 + secs) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let stats = stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "k9"));
    let missing = r.missing("k9", written);
    // What a kill can repeat (docs/ship.md, "Checkpoints"): the window, the 4 batches handed
    // over behind it, the lines of one read of at most 4 MiB, and the 16 acknowledged batches
    // whose positions may not be saved yet.
    let (handover, unsaved, read) = (4, 16, (4 << 20) / SEQ_LINE_LEN as u64 + 1);
    let bound = kills * ((window + handover + unsaved) * batch_lines + read);
    println!(
        "kill -9 restart: {written} lines in {secs} s, {kills} kills; {} missing, {} \
         duplicates (bound {bound} = {kills} kills x (window {window} + {handover} handed over \
         + {unsaved} unsaved) x {batch_lines} lines + {read} lines of a read); last run's stats \
         {stats:?}",
        missing.len(),
        r.duplicates()
    );
    assert!(
        missing.is_empty(),
        "{} of {written} lines lost (ranges {:?})",
        missing.len(),
        &ranges(&missing)[..ranges(&missing).len().min(10)]
    );
    assert!(
        r.malformed.is_empty(),
        "cut or glued lines: {:?}",
        &r.malformed[..r.malformed.len().min(3)]
    );
    r.check_first_arrivals_in_order().unwrap();
    let dups = ranges(&duplicated(&r, "k9"));
    assert!(
        r.duplicates() as u64 <= bound,
        "{} duplicates, more than the {bound} lines that can be in flight: ranges {:?}; {}",
        r.duplicates(),
        &dups[..dups.len().min(10)],
        where_lost(&dir, "k9", &dups, &err)
    );
    assert!(r.per_src["k9"].contains(&(written - 1)) && last.len() == SEQ_LINE_LEN);
}

#[test]
fn aggregator_down_for_a_while_spools_and_replays_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let at = |addr: &str| {
        Scribed::launch(
            &data,
            Launch {
                listen: Some(addr.to_string()),
                ..Launch::default()
            },
        )
    };
    let scribed = at(&addr);
    let dir = tmp.path().join("logs");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("app.log");
    File::create(&path).unwrap();
    let spool = tmp.path().join("spool");
    let mut ship = ShipProc::spawn(
        &[
            "--to".into(),
            addr.clone(),
            "--state-dir".into(),
            s(&tmp.path().join("state")),
            "--spool-dir".into(),
            s(&spool),
            "--spool-max".into(),
            "512M".into(),
            "--from-beginning".into(),
            "--follow".into(),
            format!("{}=out", s(&path)),
        ],
        &tmp.path().join("ship.err"),
        None,
    );
    let outage = Duration::from_secs(knob("FOLLOW_OUTAGE_SECS", 10));
    let per_sec = (rate() / 4).max(100);
    let writer = Writer::start(&path, "out", per_sec);
    std::thread::sleep(Duration::from_secs(2));
    ship.assert_running();
    assert!(
        category_bytes(&data, "out") > 0,
        "nothing arrived before the outage"
    );
    assert!(scribed.stop().success());
    let down_at = Instant::now();
    let mut spool_peak = 0;
    while down_at.elapsed() < outage {
        ship.assert_running();
        spool_peak = spool_peak.max(dir_size(&spool));
        std::thread::sleep(Duration::from_millis(200));
    }
    let _scribed = at(&addr);
    std::thread::sleep(Duration::from_secs(2));
    let (_, written) = writer.finish();
    let done = wait_last_line(
        &mut ship,
        &data,
        "out",
        &seq_line("out", written - 1),
        Duration::from_secs(90),
    );
    std::thread::sleep(Duration::from_millis(300));
    let stats = stop_clean(ship);

    let r = SeqReport::of(&read_category(&data, "out"));
    let missing = r.missing("out", written);
    println!(
        "aggregator outage of {outage:?}: {written} lines at {per_sec}/s; spool peaked at \
         {spool_peak} bytes; {} missing, {} duplicates; stats {stats:?}",
        missing.len(),
        r.duplicates()
    );
    assert!(
        missing.is_empty(),
        "{} of {written} lines lost (ranges {:?})",
        missing.len(),
        &ranges(&missing)[..ranges(&missing).len().min(10)]
    );
    assert!(done, "the last line written did not arrive last");
    assert!(
        r.malformed.is_empty(),
        "cut or glued lines: {:?}",
        &r.malformed[..r.malformed.len().min(3)]
    );
    r.check_first_arrivals_in_order().unwrap();
    assert_eq!(
        r.duplicates(),
        0,
        "scribed was stopped cleanly, so every batch it wrote was acknowledged"
    );
    assert!(
        stats.get("spooled") > 0,
        "the outage went through the spool"
    );
    assert!(stats.get("replayed") > 0, "the spool was replayed");
    assert!(
        spool_peak > 0,
        "nothing was written to --spool-dir during the outage"
    );
}

/// For a failure message: which files of `dir` hold the first line of each lost range, and
/// what ship logged about those files.
fn where_lost(dir: &Path, src: &str, lost: &[(u64, u64)], ship_err: &Path) -> String {
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    let log = std::fs::read_to_string(ship_err).unwrap_or_default();
    let mut out = String::new();
    for &(first, last) in lost.iter().take(3) {
        let line = seq_line(src, first);
        let holder = files
            .iter()
            .find(|(_, body)| body.windows(line.len()).any(|w| w == &line[..]))
            .map(|(name, body)| (name.clone(), body.len() / SEQ_LINE_LEN));
        out += &format!("lines {first}..={last} are in {holder:?} (file, lines);");
        if let Some((name, _)) = holder {
            let said: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains(&format!("/{name} "))
                        || l.contains(&format!("/{name}\""))
                        || l.ends_with(&format!("/{name}"))
                })
                .take(5)
                .collect();
            out += &format!(" ship logged about it: {said:?}; ");
        }
    }
    out
}

/// Total size of the regular files under `dir` (0 when it does not exist).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
