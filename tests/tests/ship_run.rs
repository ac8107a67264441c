//! `ship run -- COMMAND`: a daemon's stdout and stderr captured line by line into categories,
//! signals forwarded to it, its exit status returned once everything was delivered.

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline_tests::{free_port, read_category, wait_for, Launch, Scribed, ShipProc};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `ship run --to ADDR --state-dir DIR --category CAT -- sh -c SCRIPT`.
fn run_args(addr: &str, state: &Path, category: &str, script: &str) -> Vec<String> {
    [
        "run",
        "--to",
        addr,
        "--state-dir",
        &s(state),
        "--category",
        category,
        "--",
        "sh",
        "-c",
        script,
    ]
    .map(String::from)
    .to_vec()
}

fn numbered(prefix: &str, n: usize) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("{prefix}{i}\n").into_bytes())
        .collect()
}

#[test]
fn both_streams_are_captured_and_the_exit_status_is_the_childs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let script = "for i in $(seq 1 1000); do echo out$i; echo err$i >&2; done; exit 3";
    let ship = ShipProc::spawn(
        &run_args(&scribed.addr, &tmp.path().join("state"), "c", script),
        &tmp.path().join("ship.err"),
        None,
    );
    let (status, stderr) = ship.wait_exit(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(3),
        "ship run exits with the child's status: {stderr}"
    );
    // Exiting means everything was delivered: no waiting here.
    assert_eq!(read_category(&data, "c"), numbered("out", 1000));
    assert_eq!(read_category(&data, "c.stderr"), numbered("err", 1000));
}

#[test]
fn stderr_can_go_to_a_chosen_category_and_success_is_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    let mut args = run_args(
        &scribed.addr,
        &tmp.path().join("state"),
        "daemon.out",
        // A last line without a newline is still a line.
        "echo one; echo two >&2; printf 'three'; printf 'four' >&2",
    );
    args.splice(
        1..1,
        ["--stderr-category".to_string(), "daemon.errors".into()],
    );
    let (status, stderr) = ShipProc::spawn(&args, &tmp.path().join("ship.err"), None)
        .wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let out = read_category(&data, "daemon.out");
    let err = read_category(&data, "daemon.errors");
    assert!(
        out.starts_with(b"one\nthree"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        err.starts_with(b"two\nfour"),
        "{:?}",
        String::from_utf8_lossy(&err)
    );
    assert!(read_category(&data, "daemon.out.stderr").is_empty());
}

#[test]
fn signals_are_forwarded_and_the_childs_status_returned() {
    signals_are_forwarded(None);
}

/// `nohup`, or `cmd &` in a script, starts ship with signals ignored, and a child inherits an
/// ignored signal across exec (a non-interactive sh then cannot even trap it): ship catches the
/// three before it starts the command, so the command gets them at their default.
#[test]
fn signals_are_forwarded_when_ship_was_started_with_them_ignored() {
    signals_are_forwarded(Some("trap '' INT HUP TERM"));
}

fn signals_are_forwarded(setup: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let scribed = Scribed::start(&data, &[]);
    // The child traps the signals; `sleep 0.1` steps keep it responsive (sh runs a trap only
    // between commands) and bound its life to 60 s should forwarding fail.
    let script = "trap 'echo got HUP' HUP; trap 'echo got INT' INT; \
                  trap 'echo got TERM; exit 143' TERM; echo started; i=0; \
                  while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo unsignalled; exit 9";
    let mut ship = ShipProc::spawn_after(
        setup,
        &run_args(&scribed.addr, &tmp.path().join("state"), "sig", script),
        &tmp.path().join("ship.err"),
    );
    let wait_line = |ship: &mut ShipProc, line: &str| {
        let want = format!("{line}\n");
        wait_for(Duration::from_secs(20), &format!("{line:?} in sig"), || {
            ship.assert_running();
            String::from_utf8_lossy(&read_category(&data, "sig")).contains(&want)
        })
    };
    wait_line(&mut ship, "started");
    ship.signal(nix::sys::signal::Signal::SIGHUP);
    wait_line(&mut ship, "got HUP");
    ship.signal(nix::sys::signal::Signal::SIGINT);
    wait_line(&mut ship, "got INT");
    ship.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, stderr) = ship.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(143),
        "ship exits with the child's status: {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&read_category(&data, "sig")),
        "started\ngot HUP\ngot INT\ngot TERM\n",
        "the line the child wrote on SIGTERM was delivered before ship exited"
    );
}

#[test]
fn lines_spool_while_the_aggregator_is_down_and_the_child_is_not_blocked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let done = tmp.path().join("child-done");
    let script = format!(
        "for i in $(seq 1 2000); do echo line$i; done; touch '{}'; exit 0",
        s(&done)
    );
    let mut ship = ShipProc::spawn(
        &run_args(&addr, &tmp.path().join("state"), "spooled", &script),
        &tmp.path().join("ship.err"),
        None,
    );
    // Nothing listens yet: the child must still run to its end promptly.
    let start = Instant::now();
    wait_for(Duration::from_secs(20), "the child to finish", || {
        done.exists()
    });
    let child_took = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    ship.assert_running();
    let _scribed = Scribed::launch(
        &data,
        Launch {
            listen: Some(addr.clone()),
            ..Launch::default()
        },
    );
    let (status, stderr) = ship.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{stderr}");
    println!("child finished in {child_took:?} with the aggregator down");
    assert_eq!(read_category(&data, "spooled"), numbered("line", 2000));
}
