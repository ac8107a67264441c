//! tansu, a Kafka-protocol broker, as a process on loopback for the Kafka tests: installed by
//! `scripts/tansu.sh` (pinned, hashed), started on an ephemeral port with the memory engine,
//! topics created with its own CLI (it does not auto-create), stopped by pid when dropped.
//!
//! tansu 0.6.0 has no working TLS listener (its `--cert` and `--key` flags refuse each
//! other), so [`TlsProxy`] puts one in front: it terminates TLS with `scribe_tls` (a test
//! PKI's certificate) and relays the bytes to tansu, which advertises the proxy's address so
//! that every connection of a client goes through it.

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
    advertised: String,
    engine: String,
    env: Vec<(String, String)>,
    /// `--authentication`: clients must authenticate with SASL (no user ever can, see
    /// [`Tansu::start_authenticating`]).
    authentication: bool,
}

impl Tansu {
    /// Starts a broker with the memory engine on a free loopback port; waits (10 s at most)
    /// until it accepts connections. `log` collects its output.
    pub fn start(log: PathBuf) -> Tansu {
        Tansu::start_advertising(log, None)
    }

    /// As [`Tansu::start`], telling clients to connect to `advertised` (a proxy's address)
    /// instead of its own.
    pub fn start_advertising(log: PathBuf, advertised: Option<&str>) -> Tansu {
        let addr = format!("127.0.0.1:{}", free_port());
        let advertised = advertised.unwrap_or(&addr).to_string();
        Tansu::launch(addr, advertised, log, "memory://tansu/".into(), Vec::new())
    }

    /// As [`Tansu::start`], with `--authentication`. Its engine keeps no SCRAM credentials
    /// (`tansu user create` answers success and stores nothing), so every SASL exchange ends
    /// in "unknown user": what a broker refusing a client's credentials looks like.
    pub fn start_authenticating(log: PathBuf) -> Tansu {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut t = Tansu {
            child: None,
            addr: addr.clone(),
            log,
            advertised: addr,
            engine: "memory://tansu/".into(),
            env: Vec::new(),
            authentication: true,
        };
        t.spawn();
        t
    }

    /// A broker whose storage is `bucket` on SeaweedFS (the S3 engine): what it acknowledged
    /// survives its `kill -9` ([`Tansu::kill9_and_restart`]).
    pub fn start_s3(log: PathBuf, weed: &crate::s3::Weed, bucket: &str) -> Tansu {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env: Vec<(String, String)> = crate::s3::s3_env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("AWS_ENDPOINT".into(), weed.endpoint.clone()));
        env.push(("AWS_ALLOW_HTTP".into(), "true".into()));
        env.push(("AWS_DEFAULT_REGION".into(), "us-east-1".into()));
        Tansu::launch(addr.clone(), addr, log, format!("s3://{bucket}/"), env)
    }

    fn launch(
        addr: String,
        advertised: String,
        log: PathBuf,
        engine: String,
        env: Vec<(String, String)>,
    ) -> Tansu {
        let mut t = Tansu {
            child: None,
            addr,
            log,
            advertised,
            engine,
            env,
            authentication: false,
        };
        t.spawn();
        t
    }

    /// Starts the process (on `addr`, appending to the log) and waits until it listens.
    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("tansu log");
        let child = Command::new(tansu_bin())
            .args(["broker", "--listener-url", &format!("tcp://{}", self.addr)])
            .args([
                "--advertised-listener-url",
                &format!("tcp://{}", self.advertised),
            ])
            .args(["--storage-engine", &self.engine])
            .args(self.authentication.then_some("--authentication"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} in 10 s: {}",
                self.addr,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then after `down` a new broker on the same address and storage.
    pub fn kill9_and_restart(&mut self, down: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.spawn();
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

/// A TLS-terminating TCP relay on loopback in front of a broker ([`crate::relay::Relay`]);
/// stopped when dropped.
pub struct TlsProxy {
    /// `127.0.0.1:PORT`: where clients connect (and what the broker advertises).
    pub addr: String,
    _relay: crate::relay::Relay,
}

impl TlsProxy {
    /// Binds a loopback port now (so the broker can advertise it before it starts) and
    /// serves TLS with `cert` once [`TlsProxy::relay_to`] names the upstream.
    pub fn bind() -> (std::net::TcpListener, String) {
        crate::relay::Relay::bind()
    }

    /// Relays every TLS connection accepted on `listener` to `upstream` in plaintext.
    pub fn relay_to(
        listener: std::net::TcpListener,
        upstream: &str,
        cert: &scribe_tls::testing::CertFiles,
    ) -> TlsProxy {
        // Even an expired certificate: the tests check that clients refuse it.
        let tls = scribe_tls::ServerTls::load_even_if_expired(scribe_tls::ServerTlsFiles {
            cert: cert.cert.clone(),
            key: cert.key.clone(),
            client_ca: None,
        })
        .expect("the proxy's certificate");
        let tls = std::sync::Arc::new(tls);
        let upstream = upstream.to_string();
        let relay = crate::relay::Relay::serve(listener, move |tcp| {
            let (tls, upstream) = (tls.clone(), upstream.clone());
            async move {
                // A client that refuses the certificate ends here: nothing to relay.
                let Ok((mut client, _)) = tls.accept(tcp, Duration::from_secs(10)).await else {
                    return;
                };
                let Ok(mut broker) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
            }
        });
        TlsProxy {
            addr: relay.addr.clone(),
            _relay: relay,
        }
    }
}

/// Produces one record to `topic`'s `partition` with `producer`, waiting while its queue is
/// full (the test producers send unpaced).
pub fn produce_waiting(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    partition: i32,
    payload: &str,
) {
    use rdkafka::error::RDKafkaErrorCode;
    let mut record = rdkafka::producer::BaseRecord::<(), str>::to(topic)
        .payload(payload)
        .partition(partition);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                record = r;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => panic!("producing to {topic}/{partition}: {e}"),
        }
    }
}
