//! The scenario rig: a temporary directory with one followed file per source, a `ship
//! --follow` per file (each with its own state directory), and the writers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_tests::torture::Writer;
use pipeline_tests::{bin, ShipProc, ShipStats};

pub struct Rig {
    pub tmp: tempfile::TempDir,
    /// The one category every shipper of the scenario sends to (so their lines interleave in
    /// the same archive files).
    pub category: String,
    /// Source names: `<scenario>.s<i>`, the first token of each line.
    pub sources: Vec<String>,
    logs: PathBuf,
}

impl Rig {
    /// Builds the binaries first (once per test process), so a scenario's time is its own.
    pub fn new(scenario: &str, n: usize) -> Rig {
        bin("scribed");
        bin("ship");
        let tmp = tempfile::tempdir().expect("tempdir");
        let logs = tmp.path().join("logs");
        std::fs::create_dir(&logs).expect("creating the log directory");
        let sources: Vec<String> = (0..n).map(|i| format!("{scenario}.s{i}")).collect();
        for s in &sources {
            std::fs::File::create(logs.join(format!("{s}.log"))).expect("creating a log");
        }
        Rig {
            tmp,
            category: scenario.to_string(),
            sources,
            logs,
        }
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.logs.join(format!("{}.log", self.sources[i]))
    }

    pub fn ship_err(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("ship{i}.err"))
    }

    /// `ship --follow` of source `i`'s file into the scenario's category; the same arguments
    /// on every restart, so positions and spool carry over.
    pub fn ship_args(&self, i: usize, addr: &str) -> Vec<String> {
        self.ship_args_at(i, addr, &self.tmp.path().join(format!("state{i}")))
    }

    /// [`Rig::ship_args`] with the state directory (positions, producer id, spool) at `state`.
    pub fn ship_args_at(&self, i: usize, addr: &str, state: &Path) -> Vec<String> {
        vec![
            "--to".into(),
            addr.into(),
            "--state-dir".into(),
            s(state),
            "--from-beginning".into(),
            "--follow".into(),
            format!("{}={}", s(&self.log_path(i)), self.category),
        ]
    }

    pub fn start_ships(&self, addr: &str) -> Vec<Arc<Mutex<Option<ShipProc>>>> {
        (0..self.sources.len())
            .map(|i| {
                let p = ShipProc::spawn(&self.ship_args(i, addr), &self.ship_err(i), None);
                Arc::new(Mutex::new(Some(p)))
            })
            .collect()
    }

    pub fn start_writers(&self, per_sec: u64) -> Vec<Writer> {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, src)| Writer::start(&self.log_path(i), src, per_sec))
            .collect()
    }

    /// Panics (with its stderr) if a ship exited by itself.
    pub fn assert_ships_running(&self, ships: &[Arc<Mutex<Option<ShipProc>>>]) {
        for ship in ships {
            if let Some(p) = ship.lock().unwrap().as_mut() {
                p.assert_running();
            }
        }
    }

    /// Lets the scenario run for `d`, checking every 100 ms that no ship died by itself.
    pub fn run_for(&self, d: Duration, ships: &[Arc<Mutex<Option<ShipProc>>>]) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.assert_ships_running(ships);
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
    }

    /// Stops every ship with SIGTERM (each must exit cleanly) and sums the delivery counters
    /// of their last runs: `ship_spooled=N ship_replayed=N ship_retries=N ...`.
    pub fn stop_ships(&self, ships: Vec<Arc<Mutex<Option<ShipProc>>>>) -> String {
        self.stop_ships_counting(ships).0
    }

    /// [`Rig::stop_ships`], with the sums by counter as well.
    pub fn stop_ships_counting(
        &self,
        ships: Vec<Arc<Mutex<Option<ShipProc>>>>,
    ) -> (String, BTreeMap<&'static str, u64>) {
        const KEYS: [&str; 6] = [
            "spooled",
            "replayed",
            "retries",
            "truncations",
            "truncated_unread_bytes",
            "disk_full",
        ];
        let mut sums = [0u64; KEYS.len()];
        for ship in ships {
            let Some(p) = ship.lock().unwrap().take() else {
                continue;
            };
            let (status, stderr) = p.stop();
            assert!(
                status.success(),
                "ship exited {status} on SIGTERM: {stderr}"
            );
            let stats = ShipStats::from_stderr(&stderr);
            for (sum, key) in sums.iter_mut().zip(KEYS) {
                *sum += stats.0.get(key).copied().unwrap_or(0);
            }
        }
        let text = KEYS
            .iter()
            .zip(sums)
            .map(|(k, v)| format!("ship_{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        (text, KEYS.into_iter().zip(sums).collect())
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}
