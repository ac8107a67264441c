//! tansu, a Kafka-protocol broker, as a process on loopback for the Kafka tests: installed by
//! `scripts/tansu.sh` (pinned, hashed), started on an ephemeral port with the memory engine,
//! topics created with its own CLI (it does not auto-create), stopped by pid when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::procs::free_port;

/// The tansu binary: `scripts/tansu.sh` installs it once (idempotent) and prints its path.
pub fn tansu_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new(root.join("scripts/tansu.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/tansu.sh");
        assert!(out.status.success(), "scripts/tansu.sh failed");
        let path = PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim());
        assert!(path.exists(), "{} missing", path.display());
        path
    })
    .clone()
}

/// A running tansu broker, killed when dropped.
pub struct Tansu {
    child: Option<Child>,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub addr: String,
    log: PathBuf,
}

impl Tansu {
    /// Starts a broker with the memory engine on a free loopback port; waits (10 s at most)
    /// until it accepts connections. `log` collects its output.
    pub fn start(log: PathBuf) -> Tansu {
        let addr = format!("127.0.0.1:{}", free_port());
        let url = format!("tcp://{addr}");
        let out = std::fs::File::create(&log).expect("tansu log");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("starting tansu");
        let t = Tansu {
            child: Some(child),
            addr,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&t.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} in 10 s: {}",
                t.addr,
                t.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t
    }

    /// Creates `topic` with `partitions` partitions (tansu's CLI, bounded to 30 s).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let mut child = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://{}", self.addr),
            ])
            .args(["--partitions", &partitions.to_string(), topic])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tansu topic create");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().expect("waiting for tansu topic create") {
                break s;
            }
            assert!(Instant::now() < deadline, "tansu topic create hung");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "tansu topic create {topic} failed");
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
