//! A real S3 server on loopback for the object-store archive tests: SeaweedFS's `weed mini`
//! (installed by `scripts/seaweedfs.sh`, pinned with its hash), every one of its ports an
//! ephemeral loopback port, requests signed (an identities file), telemetry off, stopped by
//! pid. Plus reading a bucket back (`object_store`) and DuckDB from the same virtualenv.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use scribe_objstore::layout::{parse_key, ObjectName};
use scribe_objstore::S3Location;

use crate::procs::free_port;

pub const ACCESS_KEY: &str = "AKSCRIBETEST";
pub const SECRET_KEY: &str = "SKscribetestsecret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Path of `weed`, installed (once per test process) by `scripts/seaweedfs.sh`.
pub fn weed_bin() -> PathBuf {
    static WEED: OnceLock<PathBuf> = OnceLock::new();
    WEED.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/seaweedfs.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running scripts/seaweedfs.sh");
        assert!(out.status.success(), "scripts/seaweedfs.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
    .clone()
}

/// The virtualenv's Python (with duckdb and its httpfs extension).
pub fn venv_python() -> PathBuf {
    weed_bin().parent().expect("venv bin dir").join("python")
}

/// A running `weed mini`.
pub struct Weed {
    child: Option<Child>,
    dir: PathBuf,
    ports: Vec<u16>,
    buckets: String,
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
}

/// `weed mini`'s port flags; each gets its own ephemeral port.
const PORT_FLAGS: [&str; 13] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "metricsPort",
    "admin.port",
    "admin.port.grpc",
];

impl Weed {
    /// Starts SeaweedFS with its data under `dir`, creating `buckets`, and waits (at most
    /// 30 s) until signed requests to every bucket succeed.
    pub fn start(dir: &Path, buckets: &[&str]) -> Weed {
        std::fs::create_dir_all(dir.join("data")).expect("weed data dir");
        let ids = serde_json::json!({"identities": [{
            "name": "scribe-test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        std::fs::write(dir.join("s3.json"), ids.to_string()).expect("identities file");
        let mut w = Weed {
            child: None,
            dir: dir.to_path_buf(),
            endpoint: String::new(),
            ports: Vec::new(),
            buckets: buckets.join(","),
        };
        // Ports picked free can be taken before weed binds them (by another test's outgoing
        // connection, say): then weed exits naming the port, and gets new ones, a few times.
        let mut attempt = 1;
        loop {
            w.ports = PORT_FLAGS.iter().map(|_| free_port()).collect();
            w.endpoint = format!("http://127.0.0.1:{}", w.ports[6]);
            match w.spawn() {
                Ok(()) => return w,
                Err(log) if log.contains("address already in use") && attempt < 5 => {
                    eprintln!("weed mini: a port was taken before it bound it; new ports");
                    attempt += 1;
                }
                Err(log) => panic!("weed mini exited: {log}"),
            }
        }
    }

    /// Starts weed on `self.ports`; `Err` with what it logged this time if it exits before
    /// serving every bucket.
    fn spawn(&mut self) -> Result<(), String> {
        let logged_before = self.log_text().len();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .expect("weed log");
        let mut cmd = Command::new(weed_bin());
        cmd.arg("mini")
            .arg(format!("-dir={}", self.dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
            ])
            // As AWS: a PUT into a missing bucket fails instead of creating it.
            .arg("-s3.autoCreateBucket=false")
            .arg(format!("-s3.config={}", self.dir.join("s3.json").display()));
        if !self.buckets.is_empty() {
            cmd.arg(format!("-bucket={}", self.buckets));
        }
        for (flag, port) in PORT_FLAGS.iter().zip(&self.ports) {
            cmd.arg(format!("-{flag}={port}"));
        }
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting weed mini");
        self.child = Some(child);
        let buckets: Vec<String> = self
            .buckets
            .split(',')
            .filter(|b| !b.is_empty())
            .map(String::from)
            .collect();
        let start = Instant::now();
        for b in buckets {
            let store = self.client(&b, "");
            loop {
                let ok = block_on(async { store.list_with_delimiter(None).await.is_ok() });
                if ok {
                    eprintln!("weed mini: bucket {b} ready after {:?}", start.elapsed());
                    break;
                }
                if let Some(st) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    self.child = None;
                    let log = self.log_text();
                    let this_time = log.get(logged_before..).unwrap_or(&log);
                    return Err(format!("({st}): {this_time}"));
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "weed mini not serving bucket {b} after 30 s: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
    }

    /// Kills it (SIGKILL, by pid) and reaps it; its data stays for [`Weed::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn() {
            panic!("weed mini exited on restart: {log}");
        }
    }

    /// The location of `bucket`/`prefix` on this server, as a scribed config would name it.
    pub fn location(&self, bucket: &str, prefix: &str) -> S3Location {
        S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
        }
    }

    /// A signed client for `bucket`.
    pub fn client(&self, bucket: &str, prefix: &str) -> Arc<dyn ObjectStore> {
        let s = self
            .location(bucket, prefix)
            .builder()
            .expect("S3 location")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .expect("S3 client");
        Arc::new(s)
    }

    /// `[store.s3]` lines for a scribed config.
    pub fn store_block(&self, bucket: &str, prefix: &str, aggregator: &str) -> String {
        format!(
            "[store.s3]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\n\
             region = \"us-east-1\"\npath_style = true\naggregator_id = \"{aggregator}\"\n\
             retry_max = \"2s\"\n",
            self.endpoint
        )
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The environment that gives scribed (or logq) the test credentials.
pub fn s3_env() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ]
}

/// Runs a future to completion on a small runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Every object the uploader wrote under `prefix`, parsed, with its key.
pub fn list_objects(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<(ObjectName, String, u64)> {
    use futures::TryStreamExt;
    let metas: Vec<object_store::ObjectMeta> = block_on(async {
        let p = object_store::path::Path::from(prefix);
        store.list(Some(&p)).try_collect().await
    })
    .expect("listing the bucket");
    let mut out = Vec::new();
    for m in metas {
        let key = m.location.to_string();
        let name = parse_key(prefix, &key)
            .unwrap_or_else(|| panic!("object {key} is not in the archive layout"));
        out.push((name, key, m.size));
    }
    out
}

/// Per (aggregator, category): the decompressed objects concatenated in write order.
pub fn read_bucket(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> BTreeMap<(String, String), Vec<u8>> {
    let mut objects = list_objects(store, prefix);
    objects.sort_by(|a, b| {
        (&a.0.aggregator, a.0.category.as_str(), a.0.file).cmp(&(
            &b.0.aggregator,
            b.0.category.as_str(),
            b.0.file,
        ))
    });
    let mut out: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for (name, key, _) in objects {
        let body = block_on(async {
            let p = object_store::path::Path::from(key.as_str());
            store.get(&p).await?.bytes().await
        })
        .unwrap_or_else(|e| panic!("reading {key}: {e}"));
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .unwrap_or_else(|e| panic!("gunzip {key}: {e}"));
        out.entry((name.aggregator, name.category.as_str().to_string()))
            .or_default()
            .extend_from_slice(&plain);
    }
    out
}

/// Runs a DuckDB SQL query (httpfs loaded, the test credentials and endpoint set) and returns
/// its rows as tab-separated lines.
pub fn duckdb_query(weed: &Weed, sql: &str) -> Vec<String> {
    let script = r#"
import duckdb, glob, os, sys
ext = glob.glob(os.path.join(os.path.dirname(duckdb.__file__), "..", "duckdb_ext", "extensions", "*", "*", "httpfs.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
con.execute("LOAD '%s'" % ext)
host = sys.argv[1].split("://", 1)[1]
con.execute(f"CREATE SECRET s (TYPE s3, KEY_ID '{sys.argv[2]}', SECRET '{sys.argv[3]}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
for row in con.execute(sys.stdin.read()).fetchall():
    print("\t".join(str(v) for v in row))
"#;
    let mut child = Command::new(venv_python())
        .args(["-c", script, &weed.endpoint, ACCESS_KEY, SECRET_KEY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running python with duckdb");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(sql.as_bytes()).expect("sending the query");
    }
    let out = child.wait_with_output().expect("duckdb query");
    assert!(
        out.status.success(),
        "duckdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect()
}

/// libfaketime (installed by scripts/test with the `faketime` package): preloaded into one
/// process (`LD_PRELOAD`, `FAKETIME`), it shifts that process's clock and no other's.
pub fn libfaketime() -> Option<PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
}
