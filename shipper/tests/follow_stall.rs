//! The follow thread while delivery is stuck: it stops reading, but keeps looking at its
//! files, so one that grows meanwhile and is deleted is counted as vanished (lines lost),
//! while files read to their end are not.

mod common;
use common::*;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use scribe_follow::Globs;
use scribe_protocol::ProducerId;
use shipper::batch::BatchLimits;
use shipper::follow::{spawn, FollowEntry, FollowSettings};
use shipper::template::CategoryTemplate;
use tokio::sync::mpsc;

fn settings(dir: &Path, file: &Path) -> FollowSettings {
    FollowSettings {
        entries: vec![FollowEntry {
            globs: Globs::new(&[file.display().to_string()], &[]).unwrap(),
            category: CategoryTemplate::parse("app").unwrap(),
            from_beginning: true,
            multiline: None,
        }],
        positions: dir.join("positions"),
        poll_interval: Duration::from_millis(20),
        notify: false,
        rescan_interval: Duration::from_secs(60),
        limits: BatchLimits {
            max_line: 1000,
            batch_lines: 1,
            batch_bytes: 1 << 20,
            linger: Duration::ZERO,
        },
        producer: ProducerId::random(),
        names: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_grows_while_delivery_is_stuck_and_is_deleted_counts_as_vanished() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &["one"]);
    // A one-batch outbox that nobody empties yet: delivery is stuck.
    let (tx, mut rx) = mpsc::channel(1);
    let (commits_tx, commits_rx) = std_mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = spawn(settings(dir.path(), &log), tx, commits_rx, stop.clone()).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.is_empty() {
        assert!(Instant::now() < deadline, "the first line was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The next line's batch finds the outbox full: the thread stops reading...
    append(&log, &["two"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    // ...and this line is never read; the file is then deleted.
    append(&log, &["three"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    std::fs::remove_file(&log).unwrap();

    // Delivery resumes: the thread polls again and finds the file gone.
    let mut got = Vec::new();
    let resumed = Instant::now() + Duration::from_millis(700);
    while Instant::now() < resumed {
        if let Ok(Some(batch)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            got.push(batch.lines);
        }
    }
    stop.store(true, Ordering::Release);
    drop(rx);
    drop(commits_tx);
    let stats = tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .expect("the follow thread panicked")
        .unwrap();
    assert_eq!(
        got,
        [1, 1],
        "\"one\" and \"two\" were sent, \"three\" never read"
    );
    assert_eq!(stats.vanished, 1, "{stats:?}");
    assert_eq!(stats.vanished_unread, "three\n".len() as u64);
}
