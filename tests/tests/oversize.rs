//! `ship` against a scribed whose `--max-frame` is smaller than what ship would send: batches
//! are split to the limits the server advertises, and a line that can never fit is reported
//! at once (and kept with `--dead-letter`) instead of being retried until `--timeout`.

use std::time::{Duration, Instant};

use pipeline_tests::{check_order_no_loss, read_category, ship, wait_for, Scribed, ShipProc};
use scribe_protocol::native;

/// The server's frame limit in these tests, and the largest message it advertises with it.
const MAX_FRAME: usize = 16 * 1024;

fn lines(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut l = format!("{i:07} ").into_bytes();
            l.resize(len - 1, b'x');
            l.push(b'\n');
            l
        })
        .collect()
}

/// `normal` with `big` inserted before line `at`: the input, and the big line's offset in it.
fn with_big_line(normal: &[Vec<u8>], at: usize, big: &[u8]) -> (Vec<u8>, usize) {
    let mut input = normal[..at].concat();
    let offset = input.len();
    input.extend_from_slice(big);
    input.extend_from_slice(&normal[at..].concat());
    (input, offset)
}

fn big_line(len: usize) -> Vec<u8> {
    let mut big: Vec<u8> = (0..len - 1).map(|i| b'A' + (i % 26) as u8).collect();
    big.push(b'\n');
    big
}

#[test]
fn a_batch_bigger_than_the_servers_frame_is_split_and_delivered_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-frame", "16K"]);
    // 500 KB in 1 MiB batches (ship's default): each batch is ~30 of the server's frames.
    let normal = lines(5_000, 100);
    let started = Instant::now();
    let out = ship(
        &server.addr,
        "split",
        &normal.concat(),
        &["--timeout", "20s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let stored = read_category(&data, "split");
    assert_eq!(check_order_no_loss(&stored, &normal), Ok(0));
}

#[test]
fn a_line_over_the_servers_limit_is_reported_at_once_and_the_rest_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-frame", "16K"]);
    let normal = lines(300, 80);
    let big = big_line(50_000);
    let (input, offset) = with_big_line(&normal, 150, &big);
    let started = Instant::now();
    let out = ship(&server.addr, "big", &input, &["--timeout", "30s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not reported at once: {err}"
    );
    assert!(!out.status.success(), "{err}");
    let limit = native::max_message(MAX_FRAME, 200);
    for what in [
        format!("byte offset {offset} of standard input"),
        "50000 bytes".to_string(),
        format!("{limit} bytes"),
    ] {
        assert!(err.contains(&what), "no {what:?} in: {err}");
    }
    let stored = read_category(&data, "big");
    assert_eq!(check_order_no_loss(&stored, &normal), Ok(0));
}

#[test]
fn with_dead_letter_ship_keeps_the_line_there_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-frame", "16K"]);
    let normal = lines(300, 80);
    let big = big_line(50_000);
    let (input, _) = with_big_line(&normal, 10, &big);
    let dead = tmp.path().join("dead");
    let dead_arg = dead.to_str().unwrap();
    let out = ship(
        &server.addr,
        "big",
        &input,
        &["--timeout", "30s", "--dead-letter", dead_arg],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(dead_arg), "the report names the file: {err}");
    assert!(std::fs::read(dead.join("big")).unwrap() == big);
    let stored = read_category(&data, "big");
    assert_eq!(check_order_no_loss(&stored, &normal), Ok(0));
}

#[test]
fn follow_mode_keeps_an_over_long_line_in_its_state_dir_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-frame", "16K"]);
    let normal = lines(200, 80);
    let big = big_line(50_000);
    let (input, offset) = with_big_line(&normal, 100, &big);
    let log = tmp.path().join("app.log");
    std::fs::write(&log, &input).unwrap();
    let state = tmp.path().join("state");
    let follow = format!("{}=app", log.display());
    let args = [
        "--to",
        &server.addr,
        "--state-dir",
        state.to_str().unwrap(),
        "--from-beginning",
        "--follow",
        &follow,
    ];
    let mut shipper = ShipProc::spawn(&args, &tmp.path().join("ship.err"), None);
    let want: usize = normal.iter().map(Vec::len).sum();
    wait_for(Duration::from_secs(30), "the other lines to arrive", || {
        shipper.assert_running();
        read_category(&data, "app").len() >= want
    });
    let (status, err) = shipper.stop();
    assert!(status.success(), "{err}");
    let at = format!("byte offset {offset} of {}", log.display());
    assert!(err.contains(&at), "no {at:?} in: {err}");
    let kept = std::fs::read(state.join("dead-letter").join("app")).unwrap();
    assert!(kept == big, "kept whole in STATE/dead-letter");
    let stored = read_category(&data, "app");
    assert_eq!(check_order_no_loss(&stored, &normal), Ok(0));
}
