//! The outbox against a mock Scribe server: spooling while it is down, replay in order, a
//! damaged spool tail, failover.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scribe_protocol::client::ClientOptions;
use scribe_protocol::native::BatchBuilder;
use scribe_spool::{Spool, SpoolOptions};
use shipper::outbox::{self, Batch, OutboxOptions, OutboxReport};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn batch(from: u32, to: u32) -> Batch<u32> {
    let mut b = BatchBuilder::new();
    for i in from..to {
        b.push(b"c", format!("line {i}\n").as_bytes(), None);
    }
    Batch {
        lines: u64::from(to - from),
        bytes: 0,
        body: b.finish(),
        tag: to,
    }
}

fn options(to: Vec<String>, spool: Option<&std::path::Path>) -> OutboxOptions {
    OutboxOptions {
        to,
        client: ClientOptions {
            connect_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        },
        window: 1,
        spool_after: Duration::from_millis(300),
        give_up: None,
        spool: spool.map(|d| (d.to_path_buf(), SpoolOptions::default())),
        drain_after_input: Duration::from_secs(20),
        max_frame: 16 << 20,
    }
}

fn expected(n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("line {i}\n").into_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spools_while_down_then_replays_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, then leave it closed: the aggregator is down.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);

    let (tx, rx) = mpsc::channel(2);
    let safe = Arc::new(Mutex::new(Vec::new()));
    let s = safe.clone();
    let opts = options(vec![addr.clone()], Some(dir.path()));
    let task = tokio::spawn(async move {
        let mut report = OutboxReport::default();
        let r = outbox::run(rx, move |t| s.lock().unwrap().push(t), opts, &mut report).await;
        (r, report)
    });
    for i in 0..10 {
        tx.send(batch(i * 10, i * 10 + 10)).await.unwrap();
    }
    // Every batch becomes safe (spooled and fsynced) although nothing is listening.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while safe.lock().unwrap().len() < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "batches never became safe"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *safe.lock().unwrap(),
        (1..=10).map(|i| i * 10).collect::<Vec<_>>()
    );

    // The aggregator comes back; more input arrives meanwhile.
    let got = Received::default();
    let listener = TcpListener::bind(&addr).await.unwrap();
    tokio::spawn(serve(listener, got.clone()));
    tx.send(batch(100, 150)).await.unwrap();
    drop(tx);
    let (r, report) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("outbox finished")
        .unwrap();
    r.unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        expected(150),
        "all lines, in order, once"
    );
    assert!(report.lines_spooled >= 100, "{report:?}");
    assert_eq!(report.left_in_spool, 0);
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(spool.is_empty(), "replayed spool is committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_left_over_spool_with_a_torn_tail_is_replayed_and_emptied() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
        for i in 0..3u32 {
            let msg = format!("line {i}\n");
            spool.append(&[(&b"c"[..], msg.as_bytes())]).unwrap();
        }
        spool.sync().unwrap();
    }
    // A crash mid-append leaves garbage after the last record.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0xF7, 0x53, 0x50, 0x4C, 9, 9]);
    std::fs::write(&seg, bytes).unwrap();

    let got = Received::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, got.clone()));
    let (tx, rx) = mpsc::channel::<Batch<u32>>(1);
    drop(tx);
    let mut report = OutboxReport::default();
    let opts = options(vec![addr], Some(dir.path()));
    tokio::time::timeout(
        Duration::from_secs(20),
        outbox::run(rx, |_| {}, opts, &mut report),
    )
    .await
    .expect("does not spin on the damaged tail")
    .unwrap();
    assert_eq!(*got.lock().unwrap(), expected(3));
    assert_eq!(report.left_in_spool, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_aggregator() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let got = Received::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, got.clone()));

    let (tx, rx) = mpsc::channel(4);
    tx.send(batch(0, 20)).await.unwrap();
    drop(tx);
    let mut report = OutboxReport::default();
    let mut opts = options(vec![dead_addr, addr], None);
    opts.give_up = Some(Duration::from_secs(10));
    let mut tags = Vec::new();
    outbox::run(rx, |t| tags.push(t), opts, &mut report)
        .await
        .unwrap();
    assert_eq!(*got.lock().unwrap(), expected(20));
    assert_eq!(tags, [20]);
    assert_eq!(report.lines_delivered, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spool_it_gives_up_when_asked() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (tx, rx) = mpsc::channel(4);
    tx.send(batch(0, 5)).await.unwrap();
    let mut opts = options(vec![dead_addr], None);
    opts.give_up = Some(Duration::from_millis(300));
    let mut report = OutboxReport::default();
    let mut tags: Vec<u32> = Vec::new();
    let err = outbox::run(rx, |t| tags.push(t), opts, &mut report)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no progress"), "{err}");
    assert!(tags.is_empty(), "nothing was safe");
    drop(tx);
}

/// The damage scenarios scribed's buffer store runs too (`scribed/src/stores/buffer.rs`): a
/// spool left by an earlier run with a torn tail, a record cut short, flipped bytes, damage in
/// an older segment, nothing but damage. Every undamaged record is delivered, in order; the
/// drained spool is empty (damage is committed past, not left counted against `--spool-max`);
/// the next run finds no backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_spool_is_replayed_and_left_empty() {
    use scribe_spool::testing::{write_damaged, Damage};
    // `max_frame` 2: one record per replayed batch, so damage is met at the start of a read.
    for (damage, max_frame) in Damage::ALL
        .into_iter()
        .flat_map(|d| [(d, 2), (d, 16 << 20)])
    {
        let dir = tempfile::tempdir().unwrap();
        let spooled = write_damaged(dir.path(), damage).unwrap();
        let want: Vec<Vec<u8>> = spooled.expected.iter().map(|(_, m)| m.clone()).collect();
        let got = Received::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(serve(listener, got.clone()));
        for run in 0..2 {
            let (tx, rx) = mpsc::channel::<Batch<u32>>(1);
            drop(tx);
            let mut report = OutboxReport::default();
            let mut opts = options(vec![addr.clone()], Some(dir.path()));
            opts.max_frame = max_frame;
            tokio::time::timeout(
                Duration::from_secs(20),
                outbox::run(rx, |_| {}, opts, &mut report),
            )
            .await
            .unwrap_or_else(|_| panic!("{damage:?}/{max_frame}: run {run} did not finish"))
            .unwrap();
            assert_eq!(
                *got.lock().unwrap(),
                want,
                "{damage:?}/{max_frame}: run {run}"
            );
            assert_eq!(report.left_in_spool, 0, "{damage:?}/{max_frame}");
            let replayed = if run == 0 { want.len() as u64 } else { 0 };
            assert_eq!(report.lines_replayed, replayed, "{damage:?}/{max_frame}");
            let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
            assert!(
                spool.is_empty(),
                "{damage:?}/{max_frame}: a backlog is left"
            );
        }
        server.abort();
    }
}

/// A 1 MiB tmpfs, full (a filler takes it all), unmounted when dropped; `None` (after saying
/// why) where a tmpfs cannot be mounted.
struct FullDisk {
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl FullDisk {
    fn mount(test: &str) -> Option<FullDisk> {
        let disk = FullDisk::mount_with(test, "size=1m")?;
        let mut filler = std::fs::File::create(disk.dir.join("filler")).unwrap();
        while std::io::Write::write_all(&mut filler, &[0; 4096]).is_ok() {}
        Some(disk)
    }

    /// A tmpfs with room for 1 MiB but not a single new file or directory (ENOSPC too): its
    /// few inodes are taken by empty fillers.
    fn mount_without_inodes(test: &str) -> Option<FullDisk> {
        let disk = FullDisk::mount_with(test, "size=1m,nr_inodes=16")?;
        for i in 0.. {
            if std::fs::File::create(disk.dir.join(format!("filler{i}"))).is_err() {
                break;
            }
        }
        Some(disk)
    }

    fn mount_with(test: &str, options: &str) -> Option<FullDisk> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            println!("{test} SKIPPED: cannot mount a tmpfs: {}", why.trim());
            return None;
        }
        Some(FullDisk { dir, _tmp: tmp })
    }

    /// Removes the fillers.
    fn free(&self) {
        for e in std::fs::read_dir(&self.dir).unwrap() {
            let path = e.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("filler")
            {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

type OutboxTask = tokio::task::JoinHandle<(Result<(), outbox::OutboxError>, OutboxReport)>;

/// Runs an outbox whose spool is on `disk` (full) with the aggregator at `addr` down; starts
/// sending ten batches (lines 0..100, the task returned second); checks that none is safe,
/// that the outbox stopped taking them, and that it holds on rather than failing.
async fn outbox_on_a_full_disk(
    disk: &FullDisk,
    addr: &str,
) -> (
    mpsc::Sender<Batch<u32>>,
    tokio::task::JoinHandle<()>,
    Arc<Mutex<Vec<u32>>>,
    OutboxTask,
) {
    let (tx, rx) = mpsc::channel(2);
    let safe = Arc::new(Mutex::new(Vec::new()));
    let s = safe.clone();
    let opts = options(vec![addr.to_string()], Some(&disk.dir.join("spool")));
    let task = tokio::spawn(async move {
        let mut report = OutboxReport::default();
        let r = outbox::run(rx, move |t| s.lock().unwrap().push(t), opts, &mut report).await;
        (r, report)
    });
    let sent = tokio::spawn({
        let tx = tx.clone();
        async move {
            for i in 0..10 {
                tx.send(batch(i * 10, i * 10 + 10)).await.unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!task.is_finished(), "the outbox stopped on a full disk");
    assert!(safe.lock().unwrap().is_empty(), "a batch counted as safe");
    assert!(
        !sent.is_finished(),
        "the outbox kept taking batches it could not place"
    );
    (tx, sent, safe, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_batches_until_the_spool_has_room() {
    let Some(disk) = FullDisk::mount("a_full_disk_holds_batches_until_the_spool_has_room") else {
        return;
    };
    held_until_the_spool_has_room(disk).await;
}

/// Not even the spool's directory can be created: the outbox starts without it, and creates
/// it when it is needed and there is room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_that_cannot_be_created_yet_is_created_when_needed() {
    let Some(disk) = FullDisk::mount_without_inodes("a_spool_that_cannot_be_created_yet") else {
        return;
    };
    held_until_the_spool_has_room(disk).await;
}

async fn held_until_the_spool_has_room(disk: FullDisk) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (tx, sent, safe, task) = outbox_on_a_full_disk(&disk, &addr).await;
    // Room again: what was held is spooled (and so safe) without the aggregator.
    disk.free();
    sent.await.unwrap();
    for i in 0..10 {
        tx.send(batch(100 + i, 101 + i)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while safe.lock().unwrap().len() < 20 {
        assert!(tokio::time::Instant::now() < deadline, "never spooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = Received::default();
    tokio::spawn(serve(TcpListener::bind(&addr).await.unwrap(), got.clone()));
    drop(tx);
    let (r, report) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("outbox finished")
        .unwrap();
    r.unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        expected(110),
        "every line once, in order"
    );
    assert_eq!(report.disk_full, 1, "{report:?}");
    assert_eq!(report.lines_spooled, 110);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_batches_until_the_aggregator_takes_them() {
    let Some(disk) = FullDisk::mount("a_full_disk_holds_batches_until_the_aggregator") else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (tx, sent, safe, task) = outbox_on_a_full_disk(&disk, &addr).await;
    // The aggregator is back while the disk stays full.
    let got = Received::default();
    tokio::spawn(serve(TcpListener::bind(&addr).await.unwrap(), got.clone()));
    sent.await.unwrap();
    for i in 0..10 {
        tx.send(batch(100 + i, 101 + i)).await.unwrap();
    }
    drop(tx);
    let (r, report) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("outbox finished")
        .unwrap();
    r.unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        expected(110),
        "every line once, in order"
    );
    assert_eq!(safe.lock().unwrap().len(), 20);
    assert_eq!(report.disk_full, 1, "{report:?}");
    assert_eq!(report.lines_spooled, 0);
}
