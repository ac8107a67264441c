//! Scenario 6: the shippers' own disk fills up. Each ship's state directory (producer id,
//! positions, spool) is on a small tmpfs of its own ([`Disk`]). In each cycle the central is
//! killed, the shippers spool, their disks are filled to the last byte (spool appends, fsyncs,
//! positions saves fail with ENOSPC), freed, filled again while the central is still away; then
//! the central comes back — in odd cycles while the disks are still full (the spools are
//! replayed and what the shippers held goes straight to it), in even ones after they were
//! freed. The shippers must hold what they read, stop reading (the followed files are the
//! buffer), never exit, and in the end the archive holds every line exactly once.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_tests::tmpfs::{fill, Disk};
use pipeline_tests::torture::{drain, read_archive, Tally, Writer};
use pipeline_tests::{bin, free_port, Scribed, ShipProc};

use crate::rig::Rig;
use crate::{drain_limit, kill9_only, rate, scribed_at, secs, slot};

/// One tmpfs per ship: room for a cycle's outage several times over.
const DISK: u64 = 16 << 20;

/// Fills every ship's disk to the last byte; returns the bytes written.
fn fill_all(views: &[std::path::PathBuf]) -> u64 {
    views
        .iter()
        .map(|v| fill(&v.join("filler"), 0, u64::MAX))
        .sum()
}

fn free_all(views: &[std::path::PathBuf]) {
    for v in views {
        let _ = std::fs::remove_file(v.join("filler"));
    }
}

#[test]
fn spool_disk_full_on_the_shippers() {
    let name = "spool-disk-full";
    let rig = Rig::new(name, 3);
    let started = Instant::now();
    let mut disks = Vec::new();
    for i in 0..rig.sources.len() {
        match Disk::new(&rig.tmp.path().join(format!("disk{i}")), DISK) {
            Ok(d) => disks.push(d),
            Err(why) => {
                println!("torture scenario={name} SKIPPED: cannot mount a tmpfs: {why}");
                return;
            }
        }
    }
    let data = rig.tmp.path().join("central");
    let addr = format!("127.0.0.1:{}", free_port());
    let central = slot(scribed_at(&data, &addr, None));
    let ships: Vec<_> = disks
        .iter()
        .enumerate()
        .map(|(i, disk)| {
            let mut args = rig.ship_args_at(i, &addr, &disk.dir().join("state"));
            args.extend(["--spool-after".into(), "1s".into()]);
            let cmd = disk.command(&bin("ship"), false);
            let p = ShipProc::spawn_command(cmd, &args, Stdio::null(), &rig.ship_err(i));
            Arc::new(Mutex::new(Some(p)))
        })
        .collect();
    let views: Vec<_> = disks
        .iter()
        .zip(&ships)
        .map(|(d, s)| d.view(s.lock().unwrap().as_ref().unwrap().pid() as u32))
        .collect();
    let writers = rig.start_writers(rate());

    let cycles = (secs() / 8).max(1);
    let step = Duration::from_millis(secs() * 1000 / cycles / 8);
    let (mut fills, mut filled) = (0, 0);
    for cycle in 0..cycles {
        rig.run_for(step, &ships);
        kill9_only(&central, Scribed::kill9);
        // Longer than --spool-after: the shippers spool.
        rig.run_for(step.max(Duration::from_millis(1500)), &ships);
        filled += fill_all(&views);
        fills += 1;
        rig.run_for(step, &ships);
        free_all(&views);
        rig.run_for(step, &ships);
        filled += fill_all(&views);
        fills += 1;
        rig.run_for(step, &ships);
        if cycle % 2 == 0 {
            // Back while the disks are still full, which are freed only later.
            *central.lock().unwrap() = Some(scribed_at(&data, &addr, None));
            rig.run_for(2 * step, &ships);
            free_all(&views);
        } else {
            free_all(&views);
            rig.run_for(step, &ships);
            *central.lock().unwrap() = Some(scribed_at(&data, &addr, None));
            rig.run_for(step, &ships);
        }
    }
    let written: Vec<(String, u64)> = writers.into_iter().map(Writer::finish).collect();
    let drained = drain(&data, &rig.category, &written, drain_limit(), || {
        rig.assert_ships_running(&ships)
    });
    let (stats, sums) = rig.stop_ships_counting(ships);
    if let Some(s) = central.lock().unwrap().take() {
        assert!(s.stop().success(), "scribed did not stop cleanly");
    }
    drop(disks);
    let tally = Tally::of(&read_archive(&data, &rig.category), &written);
    tally.report(
        name,
        started.elapsed().as_secs_f64(),
        &format!("outages={cycles} fills={fills} filled_bytes={filled} {stats}"),
    );
    assert!(drained, "{name}: not everything arrived in time");
    assert!(
        sums["disk_full"] > 0,
        "{name}: no ship ever found its disk full ({stats})"
    );
}
