//! Scenario 4: The central's data disk fills up: its data directory is a small tmpfs, a filler file
//! takes the rest of the space, scribed answers `TRY_LATER` (its write fails with ENOSPC and is cut
//! back), the shippers retry and spool; then the filler is deleted and delivery must resume with
//! nothing acknowledged lost.
//!
//! The tmpfs is mounted directly when the test may (root); otherwise scribed runs in a user and
//! mount namespace (`unshare -rm`) that mounts it, and the test reaches the directory through
//! `/proc/<pid>/root` ([`pipeline_tests::tmpfs`]). When neither is possible the scenario is
//! skipped with a printed reason. `TORTURE_FORCE_UNSHARE=1` takes the namespace path even as
//! root (to test it).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pipeline_tests::tmpfs::{Disk, TmpfsMount};
use pipeline_tests::torture::{drain, fill, free_bytes, read_archive, Tally, Writer};
use pipeline_tests::{bin, get_counter, wait_for, Scribed, SEQ_LINE_LEN};

use crate::rig::Rig;
use crate::{drain_limit, rate, scribed_at, secs};

/// The central scribed, writing to a tmpfs mounted by the test or inside its own namespace.
enum Central {
    /// Field order matters: scribed is killed before the tmpfs is unmounted.
    Host(Scribed, TmpfsMount),
    Namespaced(NsScribed),
}

/// scribed inside `unshare -rm`, killed (taking its namespace and tmpfs with it) when dropped.
struct NsScribed {
    child: Child,
    addr: String,
}

impl Drop for NsScribed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Central {
    fn addr(&self) -> &str {
        match self {
            Central::Host(s, _) => &s.addr,
            Central::Namespaced(ns) => &ns.addr,
        }
    }

    /// Where the test sees the data directory `dir` scribed writes to.
    fn view(&self, dir: &Path) -> PathBuf {
        match self {
            Central::Host(..) => dir.to_path_buf(),
            Central::Namespaced(ns) => {
                let rel = dir.strip_prefix("/").unwrap_or(dir);
                PathBuf::from(format!("/proc/{}/root", ns.child.id())).join(rel)
            }
        }
    }

    /// Stops scribed with SIGTERM (bounded) and unmounts; the tmpfs is gone afterwards.
    fn stop(self) {
        match self {
            Central::Host(s, mount) => {
                assert!(s.stop().success(), "scribed did not stop cleanly");
                drop(mount);
            }
            Central::Namespaced(mut ns) => {
                let pid = nix::unistd::Pid::from_raw(ns.child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let until = Instant::now() + Duration::from_secs(30);
                while ns.child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// scribed in a new user + mount namespace that mounts `disk` (at `dir`) first.
fn launch_namespaced(disk: &Disk, dir: &Path, addr: &str) -> Central {
    let ready = dir.with_extension("ready");
    let log = std::fs::File::create(dir.with_extension("log")).expect("creating the log");
    let _ = std::fs::remove_file(&ready);
    let child = disk
        .command(&bin("scribed"), false)
        .args([
            "--listen",
            addr,
            "--status-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting unshare");
    let mut ns = NsScribed {
        child,
        addr: addr.to_string(),
    };
    wait_for(
        Duration::from_secs(20),
        "namespaced scribed's ready file",
        || {
            if let Some(st) = ns.child.try_wait().ok().flatten() {
                let log = std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default();
                panic!("namespaced scribed exited early ({st}): {log}");
            }
            ready.exists()
        },
    );
    Central::Namespaced(ns)
}

/// A central on a fresh tmpfs of `size` at `dir`, or why the scenario cannot run.
fn central_on_tmpfs(dir: &Path, addr: &str, size: u64) -> Result<Central, String> {
    match Disk::new(dir, size)? {
        Disk::Host(m) => Ok(Central::Host(scribed_at(dir, addr, None), m)),
        disk => Ok(launch_namespaced(&disk, dir, addr)),
    }
}

#[test]
fn disk_full_on_the_central() {
    let name = "disk-full";
    let rig = Rig::new(name, 3);
    let started = Instant::now();
    let dir = rig.tmp.path().join("central");
    let addr = format!("127.0.0.1:{}", pipeline_tests::free_port());
    // Room for everything twice over plus slack, so only the filler makes the disk full.
    let expected = rig.sources.len() as u64 * rate() * secs() * SEQ_LINE_LEN as u64;
    let size = (2 * expected + (16 << 20)).next_multiple_of(1 << 20);
    let central = match central_on_tmpfs(&dir, &addr, size) {
        Ok(c) => c,
        Err(why) => {
            println!("torture scenario={name} SKIPPED: cannot mount a tmpfs: {why}");
            return;
        }
    };
    let data = central.view(&dir);
    let ships = rig.start_ships(central.addr());
    let writers = rig.start_writers(rate());
    rig.run_for(Duration::from_secs(1), &ships);

    // Leave 64 KiB: the next few batches fill it, and then every write fails with ENOSPC.
    let filler = data.join("filler");
    let filled = fill(&filler, 64 << 10, size);
    let full_at = Instant::now();
    let refused = || get_counter(&addr, "scribe_overall:denied for store error");
    while refused() == 0 && full_at.elapsed() < Duration::from_secs(30) {
        rig.run_for(Duration::from_millis(100), &ships);
    }
    let refused_when_full = refused();
    assert!(
        refused_when_full > 0,
        "{name}: scribed never refused a batch after the disk filled ({} bytes free)",
        free_bytes(&data)
    );
    // Stay full for a while: the shippers retry, then spool.
    // Longer than ship's --spool-after (5 s), so the shippers spool too.
    let full_for = Duration::from_secs((secs() / 3).max(6));
    rig.run_for(full_for.saturating_sub(full_at.elapsed()), &ships);
    let stored_while_full = read_archive(&data, &rig.category).len();
    std::fs::remove_file(&filler).expect("removing the filler");
    let full_secs = full_at.elapsed().as_secs_f64();
    let rest = Duration::from_secs(secs()).saturating_sub(started.elapsed());
    rig.run_for(rest.max(Duration::from_secs(2)), &ships);
    let written: Vec<(String, u64)> = writers.into_iter().map(Writer::finish).collect();

    let drained = drain(&data, &rig.category, &written, drain_limit(), || {
        rig.assert_ships_running(&ships)
    });
    let stats = rig.stop_ships(ships);
    let refused_total = refused();
    // Read before stopping: a namespaced tmpfs disappears with its scribed.
    let archive = read_archive(&data, &rig.category);
    central.stop();
    let tally = Tally::of(&archive, &written);
    tally.report(
        name,
        started.elapsed().as_secs_f64(),
        &format!(
            "tmpfs={size} filler={filled} full_secs={full_secs:.1} \
                 refused_messages={refused_total} {stats}"
        ),
    );
    assert!(drained, "{name}: not everything arrived in time");
    assert!(
        archive.len() > stored_while_full,
        "{name}: nothing was delivered after space returned"
    );
}
