//! `ship --follow` run in-process through `shipper::modes`, as the binary runs it: against a
//! mock Scribe server, stopped by cancelling its token instead of a signal.

mod common;
use common::*;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use shipper::cli::Cli;
use shipper::config::ConfigFile;
use shipper::modes::follow_mode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn wait_for(got: &Received, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "{:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `ship --follow` in-process; returns its token and task.
fn start(
    argv: &[String],
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<ExitCode>>,
) {
    let cli = Cli::try_parse_from(argv).unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    let task = tokio::spawn(async move { follow_mode(&cli, &ConfigFile::default(), t).await });
    (token, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_mode_delivers_stops_on_cancel_and_owns_its_state_dir() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Received::default();
    tokio::spawn(serve(listener, got.clone()));

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let state = dir.path().join("state");
    append(&log, &["one", "two", "three"]);
    let argv: Vec<String> = [
        "ship",
        "--follow",
        &format!("{}=app", log.display()),
        "--from-beginning",
        "--state-dir",
        state.to_str().unwrap(),
        "--to",
        &addr,
        "--poll-interval",
        "50ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let (token, ship) = start(&argv);
    wait_for(&got, 3).await;
    append(&log, &["four"]);
    wait_for(&got, 4).await;

    // A second ship on the same state directory is refused while the first runs.
    let (_, second) = start(&argv);
    let err = second.await.unwrap().unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "state dir {} is in use by another ship (give each its own --state-dir)",
            state.display()
        )
    );

    token.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), ship).await;
    let code = stopped.expect("stops within the grace").unwrap().unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(state.join("positions").exists());
    assert!(state.join("producer-id").exists());

    // Restarted, it resumes from the saved positions: only the new line is sent.
    append(&log, &["five"]);
    let (token, ship) = start(&argv);
    wait_for(&got, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel();
    assert_eq!(ship.await.unwrap().unwrap(), ExitCode::SUCCESS);
    let lines: Vec<Vec<u8>> = ["one", "two", "three", "four", "five"]
        .iter()
        .map(|l| format!("{l}\n").into_bytes())
        .collect();
    assert_eq!(*got.lock().unwrap(), lines);
}
