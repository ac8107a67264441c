//! The exactly-once torture suite: file -> `ship --follow` -> scribed (-> relay) -> archive,
//! while processes are killed with SIGKILL, the central is away, its disk fills up, the
//! shippers' own disk (their spool) fills up, and the followed files rotate every 100 ms.
//!
//! Each scenario runs 3 writers appending sequenced lines ([`seq_line`]: source, sequence
//! number) to their own file at `TORTURE_RATE` lines/s (default 2,000) for `TORTURE_SECS`
//! seconds (default 20: the short mode, about 80 s for the file with two test threads), one
//! `ship` per file.
//! At the end the killing stops, everything drains (bounded wait), ship and scribed stop, and
//! every archive file (plain and `.gz`) is read back and compared with what the writers
//! produced: each scenario prints
//! `torture scenario=NAME sent=N delivered=N lost=N duplicated=N reordered=N torn=N window=N
//! secs=S ...` and fails on any loss, duplicate, reorder or torn line.
//!
//! `TORTURE_AT_LEAST_ONCE=1` tolerates duplicates (still reported) for binaries that do not
//! dedupe. `TORTURE_SEED` changes the kill timing. `bench/torture.sh` runs the long mode.

#[path = "exactly_once/disk_full.rs"]
mod disk_full;
#[path = "exactly_once/rig.rs"]
mod rig;
#[path = "exactly_once/spool_disk_full.rs"]
mod spool_disk_full;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_tests::leaf_config;
use pipeline_tests::torture::{
    copy_and_truncate, drain, knob, read_archive, rename_and_recreate, Every, Tally, Writer,
};
use pipeline_tests::{free_port, get_counter, Launch, Scribed, SeqReport, ShipProc};
use rig::Rig;

fn secs() -> u64 {
    knob("TORTURE_SECS", 20).max(4)
}

fn rate() -> u64 {
    knob("TORTURE_RATE", 2_000).max(100)
}

fn seed() -> u64 {
    knob("TORTURE_SEED", 0x5eed)
}

/// How long draining may take once the killing stopped: ship may be in its longest backoff
/// (5 s) or replaying its spool, a leaf replaying its own.
fn drain_limit() -> Duration {
    Duration::from_secs(60 + secs())
}

/// A scribed at a fixed address (so a restarted one is found where the old one was).
fn scribed_at(data: &Path, addr: &str, config: Option<String>) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            listen: Some(addr.to_string()),
            config,
            ..Launch::default()
        },
    )
}

/// A process slot a kill loop empties and refills.
type Slot<T> = Arc<Mutex<Option<T>>>;

fn slot<T>(t: T) -> Slot<T> {
    Arc::new(Mutex::new(Some(t)))
}

/// Kills whatever is in `slot` with SIGKILL (reaping it) and puts `restart()` in its place.
fn kill9_and_restart<T>(slot: &Mutex<Option<T>>, kill9: fn(T), restart: impl FnOnce() -> T) {
    let mut g = slot.lock().unwrap();
    if let Some(p) = g.take() {
        kill9(p);
    }
    *g = Some(restart());
}

/// Kills whatever is in `slot` with SIGKILL (reaping it), leaving the slot empty.
fn kill9_only<T>(slot: &Mutex<Option<T>>, kill9: fn(T)) {
    if let Some(p) = slot.lock().unwrap().take() {
        kill9(p);
    }
}

/// What is shared by scenarios 1, 2 and 5: three shippers straight to one scribed.
struct Plan {
    name: &'static str,
    kill_scribed: bool,
    kill_ship: bool,
    rotate_every: Option<Duration>,
    /// copytruncate instead of rename rotation (then `rotate_every` is its period).
    copytruncate: bool,
}

fn run_direct(plan: Plan) {
    let rig = Rig::new(plan.name, 3);
    let started = Instant::now();
    let data = rig.tmp.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let scribed = slot(scribed_at(&data, &addr, None));
    let ships = rig.start_ships(&addr);
    let writers = rig.start_writers(rate());

    let mut loops = Vec::new();
    if plan.kill_scribed {
        let (s, d, a) = (scribed.clone(), data.clone(), addr.clone());
        loops.push(Every::start(
            Duration::from_secs(1),
            Duration::from_millis(300),
            seed(),
            move |_| kill9_and_restart(&s, Scribed::kill9, || scribed_at(&d, &a, None)),
        ));
    }
    if plan.kill_ship {
        for (i, ship) in ships.iter().enumerate() {
            let (s, args, err) = (ship.clone(), rig.ship_args(i, &addr), rig.ship_err(i));
            loops.push(Every::start(
                Duration::from_secs(1),
                Duration::from_millis(300),
                seed() + 1 + i as u64,
                move |_| {
                    kill9_and_restart(&s, ShipProc::kill9, || ShipProc::spawn(&args, &err, None))
                },
            ));
        }
    }
    // Per source, the first sequence number of each generation after a copytruncate.
    let cuts: BTreeMap<String, Arc<Mutex<Vec<u64>>>> = writers
        .iter()
        .map(|w| (w.src.clone(), Arc::default()))
        .collect();
    let rotators: Vec<Every> = match plan.rotate_every {
        None => Vec::new(),
        Some(period) => writers
            .iter()
            .map(|w| {
                let (log, cut) = (w.log.clone(), cuts[&w.src].clone());
                let copytruncate = plan.copytruncate;
                Every::start(period, Duration::ZERO, 0, move |round| {
                    if copytruncate {
                        cut.lock().unwrap().push(copy_and_truncate(&log));
                    } else {
                        rename_and_recreate(&log, round);
                    }
                })
            })
            .collect(),
    };
    rig.run_for(Duration::from_secs(secs()), &ships);
    let kills: u64 = loops.into_iter().map(Every::finish).sum();
    let rotations: u64 = rotators.into_iter().map(Every::finish).sum();
    let written: Vec<(String, u64)> = writers.into_iter().map(Writer::finish).collect();

    let cuts: BTreeMap<String, Vec<u64>> = cuts
        .into_iter()
        .map(|(src, c)| (src, c.lock().unwrap().clone()))
        .collect();
    let mut drained = false;
    let start = Instant::now();
    if plan.copytruncate {
        // Lines in unread tails never arrive: wait for the last line of each source instead.
        while !drained && start.elapsed() < drain_limit() {
            rig.assert_ships_running(&ships);
            let r = SeqReport::of(&read_archive(&data, &rig.category));
            drained = written.iter().all(|(src, n)| {
                n.checked_sub(1)
                    .is_none_or(|l| r.distinct(src).contains(&l))
            });
            std::thread::sleep(Duration::from_millis(500));
        }
    } else {
        drained = drain(&data, &rig.category, &written, drain_limit(), || {
            rig.assert_ships_running(&ships)
        });
    }
    let stats = rig.stop_ships(ships);
    if let Some(s) = scribed.lock().unwrap().take() {
        assert!(s.stop().success(), "scribed did not stop cleanly");
    }
    let tally = Tally::with_generations(&read_archive(&data, &rig.category), &written, &cuts);
    tally.report(
        plan.name,
        started.elapsed().as_secs_f64(),
        &format!("kills={kills} rotations={rotations} {stats}"),
    );
    assert!(drained, "{}: not everything arrived in time", plan.name);
}

/// Scenario 1: kill -9 scribed about every second while 3 shippers follow growing files.
#[test]
fn kill_scribed() {
    run_direct(Plan {
        name: "kill-scribed",
        kill_scribed: true,
        kill_ship: false,
        rotate_every: None,
        copytruncate: false,
    });
}

/// Scenario 2: kill -9 each ship about every second.
#[test]
fn kill_ship() {
    run_direct(Plan {
        name: "kill-ship",
        kill_scribed: false,
        kill_ship: true,
        rotate_every: None,
        copytruncate: false,
    });
}

/// Scenario 5: Rename rotation of every followed file every 100 ms, while scribed is killed about
/// every second.
#[test]
fn rotation_storm_kill_scribed() {
    run_direct(Plan {
        name: "rotate-kill-scribed",
        kill_scribed: true,
        kill_ship: false,
        rotate_every: Some(Duration::from_millis(100)),
        copytruncate: false,
    });
}

/// Scenario 5b: copytruncate of every followed file every 500 ms while scribed is killed about
/// every second: lines not yet read when their file was truncated are copytruncate's unavoidable
/// window (counted as `window`, not failed); nothing else may be lost or repeated.
#[test]
fn copytruncate_storm_kill_scribed() {
    run_direct(Plan {
        name: "copytruncate-kill-scribed",
        kill_scribed: true,
        kill_ship: false,
        rotate_every: Some(Duration::from_millis(500)),
        copytruncate: true,
    });
}

/// Scenario 3: ship -> leaf (buffer store: network to the central, disk spool) -> central. In each
/// cycle the central is killed, the leaf spools, the leaf is killed with SIGKILL while spooling and
/// restarted, then the central comes back and the leaf replays.
#[test]
fn relay_central_down_leaf_killed_while_spooling() {
    let name = "relay";
    let rig = Rig::new(name, 3);
    let started = Instant::now();
    let central_data = rig.tmp.path().join("central");
    let central_addr = format!("127.0.0.1:{}", free_port());
    let leaf_addr = format!("127.0.0.1:{}", free_port());
    let leaf_dir = rig.tmp.path().join("leaf");
    let spool = rig.tmp.path().join("spool");
    let leaf_conf = leaf_config(&central_addr, &spool);
    let start_leaf = || scribed_at(&leaf_dir, &leaf_addr, Some(leaf_conf.clone()));
    let central = slot(scribed_at(&central_data, &central_addr, None));
    let leaf = slot(start_leaf());
    let ships = rig.start_ships(&leaf_addr);
    let writers = rig.start_writers(rate());

    let cycles = (secs() / 8).max(1);
    let quarter = Duration::from_millis(secs() * 1000 / cycles / 4);
    let (mut leaf_kills, mut spooling_at_kill) = (0, 0);
    for _ in 0..cycles {
        rig.run_for(quarter, &ships);
        kill9_only(&central, Scribed::kill9);
        rig.run_for(quarter, &ships);
        // Kill the leaf once it is spooling (it is, unless no batch came since the outage).
        let spooled_before = get_counter(&leaf_addr, "scribe_overall:spooled");
        let until = Instant::now() + Duration::from_secs(5);
        let mut spooling = false;
        while Instant::now() < until && !spooling {
            spooling = get_counter(&leaf_addr, "scribe_overall:spooled") > spooled_before;
            std::thread::sleep(Duration::from_millis(20));
        }
        spooling_at_kill += u64::from(spooling);
        kill9_and_restart(&leaf, Scribed::kill9, start_leaf);
        leaf_kills += 1;
        rig.run_for(quarter, &ships);
        *central.lock().unwrap() = Some(scribed_at(&central_data, &central_addr, None));
        rig.run_for(quarter, &ships);
    }
    let written: Vec<(String, u64)> = writers.into_iter().map(Writer::finish).collect();
    let drained = drain(
        &central_data,
        &rig.category,
        &written,
        drain_limit(),
        || rig.assert_ships_running(&ships),
    );
    let stats = rig.stop_ships(ships);
    let leaf_spooled = get_counter(&leaf_addr, "scribe_overall:spooled");
    for s in [&leaf, &central] {
        if let Some(s) = s.lock().unwrap().take() {
            assert!(s.stop().success(), "scribed did not stop cleanly");
        }
    }
    let tally = Tally::of(&read_archive(&central_data, &rig.category), &written);
    tally.report(
        name,
        started.elapsed().as_secs_f64(),
        &format!(
            "outages={cycles} leaf_kills={leaf_kills} spooling_at_kill={spooling_at_kill} \
                 leaf_spooled_after_restart={leaf_spooled} {stats}"
        ),
    );
    assert!(drained, "{name}: not everything arrived in time");
    assert!(
        spooling_at_kill > 0,
        "the leaf never spooled during an outage, so no kill hit it while spooling"
    );
}
