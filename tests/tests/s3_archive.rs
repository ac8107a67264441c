//! The object-store archive (`[store.s3]`) against a real S3 server on loopback (SeaweedFS's
//! `weed mini`, installed by `scripts/seaweedfs.sh`): two aggregators into one bucket, read
//! back byte-exact and by DuckDB; `kill -9` during uploads; the store down under load; bad
//! settings.
//!
//! Sizes are scaled for CI (the issue asks for 1M lines through two aggregators; the first
//! test ships exactly that). A category's newest file is the one being written and is not
//! uploaded until it rotates, so "what each aggregator received" is checked as the bucket's
//! objects followed by the local current file.

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline_tests::s3::{duckdb_query, read_bucket, s3_env, Weed};
use pipeline_tests::{ship, Launch, Scribed};
use scribe_archive::Category;

/// A file store for every category, rotating at `max_size`, uploading as `agg`.
fn config(weed: &Weed, agg: &str, max_size: &str, compress: bool, extra: &str) -> String {
    format!(
        "[[store]]\ncategory = \"default\"\ntype = \"file\"\nmax_size = \"{max_size}\"\n\
         compress = {compress}\n{extra}\n{}",
        weed.store_block("logs", "arch", agg)
    )
}

fn start(dir: &Path, name: &str, config: String) -> Scribed {
    let env = s3_env();
    Scribed::launch(
        &dir.join(name),
        Launch {
            config: Some(config),
            env: &env,
            ..Launch::default()
        },
    )
}

/// `n` distinct lines for (`agg`, `cat`).
fn lines(agg: &str, cat: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 40);
    for i in 0..n {
        out.extend_from_slice(format!("{agg} {cat} {i:08} some payload text\n").as_bytes());
    }
    out
}

/// The bytes of a category's newest (current) local file: not uploaded until it rotates.
fn current_file(data: &Path, cat: &str) -> Vec<u8> {
    let cat: Category = cat.parse().expect("category");
    let files = scribe_archive::layout::list_archive(data, &cat).expect("listing");
    match files.last() {
        Some(f) if f.newest && !f.compressed => std::fs::read(&f.path).expect("reading"),
        _ => Vec::new(),
    }
}

/// A category's local files (plain or gzipped) read back in order. A file may be compressed
/// or deleted between the listing and the read: then it reads again (bounded).
fn read_local(data: &Path, cat: &str) -> Vec<u8> {
    use std::io::Read;
    let cat: Category = cat.parse().expect("category");
    for _ in 0..50 {
        let mut out = Vec::new();
        let read = scribe_archive::layout::list_archive(data, &cat)
            .expect("listing")
            .iter()
            .try_for_each(|f| f.open().and_then(|mut r| r.read_to_end(&mut out)).map(drop));
        if read.is_ok() {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{cat}: local files kept changing while read");
}

/// Sum of every sample of a metric family (over stores).
fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Whether the bucket's objects of (`agg`, `cat`) followed by the local current file are
/// exactly `want`.
fn complete(
    bucket: &std::collections::BTreeMap<(String, String), Vec<u8>>,
    data: &Path,
    agg: &str,
    cat: &str,
    want: &[u8],
) -> bool {
    let mut got = bucket
        .get(&(agg.to_string(), cat.to_string()))
        .cloned()
        .unwrap_or_default();
    got.extend_from_slice(&current_file(data, cat));
    got == want
}

/// Waits (bounded) until every (aggregator, category) is complete in the bucket; panics
/// with what differs.
fn wait_complete(weed: &Weed, expect: &[(&str, &Path, &str, &[u8])], limit: Duration) {
    let store = weed.client("logs", "arch");
    let start = Instant::now();
    loop {
        let bucket = read_bucket(&store, "arch");
        let missing: Vec<String> = expect
            .iter()
            .filter(|(agg, data, cat, want)| !complete(&bucket, data, agg, cat, want))
            .map(|(agg, data, cat, want)| {
                let got = bucket
                    .get(&(agg.to_string(), cat.to_string()))
                    .map_or(0, Vec::len);
                let cur = current_file(data, cat).len();
                format!(
                    "{agg}/{cat}: bucket {got} + current {cur} bytes, want {}",
                    want.len()
                )
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "bucket incomplete after {limit:?}: {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_aggregators_one_bucket_byte_exact_and_duckdb_counts() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    // One gzips its files (the .gz is uploaded), one does not (gzipped on the way); both
    // keep only 2 files locally, so retention runs while uploads go on.
    let a = start(
        dir.path(),
        "a",
        config(&weed, "agg-a", "512K", true, "keep_files = 2"),
    );
    let b = start(
        dir.path(),
        "b",
        config(&weed, "agg-b", "512K", false, "keep_files = 2"),
    );
    // 1M lines: 250,000 per category per aggregator.
    let n = 250_000;
    let mut want = Vec::new();
    for (agg, s) in [("agg-a", &a), ("agg-b", &b)] {
        for cat in ["web", "api"] {
            let input = lines(agg, cat, n);
            let out = ship(&s.addr, cat, &input, &[]);
            assert!(
                out.status.success(),
                "ship: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            want.push((agg, s.data_dir.clone(), cat, input));
        }
    }
    let expect: Vec<(&str, &Path, &str, &[u8])> = want
        .iter()
        .map(|(agg, d, cat, w)| (*agg, d.as_path(), *cat, w.as_slice()))
        .collect();
    wait_complete(&weed, &expect, Duration::from_secs(90));
    for s in [&a, &b] {
        let (_, m) = s.http_get("/metrics");
        assert_eq!(metric_sum(&m, "scribed_upload_backlog_files"), 0.0, "{m}");
        assert!(metric_sum(&m, "scribed_uploaded_files") > 10.0, "{m}");
        assert_eq!(metric_sum(&m, "scribed_upload_failures"), 0.0, "{m}");
    }
    // Retention never deleted a file before its upload (the bytes above are complete);
    // once files are uploaded, the next rotations delete them down to keep_files.
    let before = pipeline_tests::category_files(&b.data_dir, "web").len();
    assert!(
        before > 10,
        "ingest outran uploads, so retention had to keep files: {before}"
    );
    let extra = lines("agg-b", "web2", 40_000);
    let out = ship(&b.addr, "web", &extra, &[]);
    assert!(out.status.success());
    want[2].3.extend_from_slice(&extra);
    let expect: Vec<(&str, &Path, &str, &[u8])> = want
        .iter()
        .map(|(agg, d, cat, w)| (*agg, d.as_path(), *cat, w.as_slice()))
        .collect();
    wait_complete(&weed, &expect, Duration::from_secs(60));
    let after = pipeline_tests::category_files(&b.data_dir, "web").len();
    assert!(after <= 6, "uploaded files were kept: {before} -> {after}");

    // DuckDB reads the layout as Hive partitions: lines per category (and per hour) equal
    // what the bucket holds.
    let bucket = read_bucket(&weed.client("logs", "arch"), "arch");
    let rows = duckdb_query(
        &weed,
        "SELECT category, dt, hour, count(*) FROM read_csv('s3://logs/arch/**/*.gz', \
         columns = {'line': 'VARCHAR'}, header = false, delim = '|', quote = '', escape = '', \
         hive_partitioning = true) GROUP BY ALL ORDER BY ALL",
    );
    let mut per_cat = std::collections::BTreeMap::<String, u64>::new();
    for r in &rows {
        let f: Vec<&str> = r.split('\t').collect();
        assert_eq!(f.len(), 4, "{r}");
        *per_cat.entry(f[0].to_string()).or_default() += f[3].parse::<u64>().unwrap();
    }
    for cat in ["web", "api"] {
        let in_bucket: u64 = bucket
            .iter()
            .filter(|((_, c), _)| c == cat)
            .map(|(_, v)| v.iter().filter(|&&b| b == b'\n').count() as u64)
            .sum();
        assert!(in_bucket > 0);
        assert_eq!(per_cat.get(cat).copied(), Some(in_bucket), "{rows:?}");
    }
}

/// `n` lines of seeded random letters (gzip shrinks them by only about a quarter, so a file
/// of a few MiB takes a multipart upload).
fn random_lines(seed: u64, tag: &str, n: usize) -> Vec<u8> {
    let mut rng = pipeline_tests::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(n * 120);
    for i in 0..n {
        out.extend_from_slice(format!("{tag} {i:08} ").as_bytes());
        out.extend((0..100).map(|_| rng.alphanumeric() as u8));
        out.push(b'\n');
    }
    out
}

#[test]
fn kill_9_during_uploads_then_restart_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    // Files of 7 MiB, uploaded in 5 MiB parts (plain files, gzipped on the way): each one a
    // multipart upload with a HEAD first, so kills land inside them.
    let cfg = config(&weed, "agg-k", "7M", false, "keep_files = 1").replace(
        "retry_max = \"2s\"",
        "retry_max = \"2s\"\npart_size = \"5M\"",
    );
    let mut s = start(dir.path(), "k", cfg.clone());
    let data = s.data_dir.clone();
    let input = random_lines(7, "kill", 300_000);
    let out = ship(&s.addr, "big", &input, &[]);
    assert!(
        out.status.success(),
        "ship: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rng = pipeline_tests::Rng::with_seed(9);
    let mut killed_with_backlog = 0;
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(rng.u64(200..1200)));
        let (_, m) = s.http_get("/metrics");
        if metric_sum(&m, "scribed_upload_backlog_files") > 0.0 {
            killed_with_backlog += 1;
        }
        s.kill9();
        s = start(dir.path(), "k", cfg.clone());
    }
    assert!(
        killed_with_backlog > 0,
        "no kill came while uploads were pending"
    );
    wait_complete(
        &weed,
        &[("agg-k", &data, "big", &input)],
        Duration::from_secs(120),
    );
    // One object per file, no second copy under another key.
    let objects = pipeline_tests::s3::list_objects(&weed.client("logs", "arch"), "arch");
    let mut files: Vec<_> = objects.iter().map(|(n, _, _)| n.file).collect();
    files.sort();
    let before = files.len();
    files.dedup();
    assert_eq!(
        files.len(),
        before,
        "a file was uploaded twice: {objects:?}"
    );
    assert!(before >= 4, "{objects:?}");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(metric_sum(&m, "scribed_upload_backlog_files"), 0.0, "{m}");
}

/// How long the object store is down in the outage test (the figure).
const OUTAGE: Duration = Duration::from_secs(30);

#[test]
fn object_store_down_under_load_ingest_goes_on_and_backlog_drains() {
    let dir = tempfile::tempdir().unwrap();
    let mut weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    let s = start(
        dir.path(),
        "d",
        config(&weed, "agg-d", "256K", true, "keep_files = 1"),
    );
    let first = lines("agg-d", "one", 20_000);
    assert!(ship(&s.addr, "web", &first, &[]).status.success());
    weed.stop();
    // Down for 30 s (the figure) under load: a ship every 2 s, each one of which
    // must succeed; the backlog shows in /metrics and /status, and grows old.
    let t0 = Instant::now();
    let mut second = Vec::new();
    for round in 0..30 {
        if t0.elapsed() >= OUTAGE {
            break;
        }
        let batch = lines("agg-d", &format!("two{round:02}"), 10_000);
        let out = ship(&s.addr, "web", &batch, &[]);
        assert!(
            out.status.success(),
            "ingest stopped while the store was down (round {round})"
        );
        second.extend_from_slice(&batch);
        std::thread::sleep(Duration::from_secs(2).min(OUTAGE.saturating_sub(t0.elapsed())));
    }
    assert!(
        t0.elapsed() >= OUTAGE,
        "the load rounds ran out before 30 s"
    );
    let start_wait = Instant::now();
    let m = loop {
        let (_, m) = s.http_get("/metrics");
        if metric_sum(&m, "scribed_upload_backlog_files") > 0.0
            && metric_sum(&m, "scribed_upload_failures") > 0.0
        {
            break m;
        }
        assert!(
            start_wait.elapsed() < Duration::from_secs(60),
            "no backlog shown: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metric_sum(&m, "scribed_upload_backlog_bytes") > 0.0, "{m}");
    let oldest = metric_sum(&m, "scribed_upload_backlog_oldest_seconds");
    assert!(
        oldest >= 20.0,
        "the backlog's oldest file is only {oldest} s old: {m}"
    );
    let (code, status) = s.http_get("/status");
    assert_eq!(code, 200);
    assert!(status.contains("\"last_error\":\""), "{status}");
    assert_eq!(
        s.http_get("/health").0,
        200,
        "an upload outage is not a write failure"
    );
    // keep_files = 1, yet nothing un-uploaded was deleted: all that came while the store
    // was down is still here (what came before may have been uploaded and deleted).
    let local: Vec<u8> = read_local(&s.data_dir, "web");
    assert!(
        local.ends_with(&second),
        "retention deleted a file not uploaded"
    );
    let mut both = first.clone();
    both.extend_from_slice(&second);
    weed.restart();
    eprintln!("store down for {:?}", t0.elapsed());
    wait_complete(
        &weed,
        &[("agg-d", &s.data_dir, "web", &both)],
        Duration::from_secs(60),
    );
    let (_, m) = s.http_get("/metrics");
    assert_eq!(metric_sum(&m, "scribed_upload_backlog_files"), 0.0, "{m}");
    assert_eq!(
        metric_sum(&m, "scribed_upload_backlog_oldest_seconds"),
        0.0,
        "{m}"
    );
}

/// Ships a few files' worth to `s`, then waits until `/status` shows an upload error, which
/// must contain `cause`; every line stays on local disk (nothing deleted) and ingest is OK.
fn assert_upload_error(s: &Scribed, cause: &str) {
    let t0 = Instant::now();
    let input = lines("bad", "x", 20_000);
    let out = ship(&s.addr, "web", &input, &[]);
    assert!(
        out.status.success(),
        "ingest must not depend on the object store"
    );
    let t = Instant::now();
    let status = loop {
        let (_, st) = s.http_get("/status");
        if st.contains("\"last_error\":\"") {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no upload error shown: {st}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("{cause}: shown after {:?}", t0.elapsed());
    assert!(
        status.contains(cause),
        "error does not name {cause:?}: {status}"
    );
    assert!(s.log_text().contains(cause), "log does not name {cause:?}");
    assert!(
        read_local(&s.data_dir, "web") == input,
        "a file was deleted though not uploaded"
    );
}

#[test]
fn wrong_key_missing_bucket_bad_endpoint_are_named_and_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    let cfg = |agg: &str| config(&weed, agg, "64K", true, "keep_files = 1");
    // A wrong secret key.
    let env = [
        ("AWS_ACCESS_KEY_ID", pipeline_tests::s3::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
    ];
    let s = Scribed::launch(
        &dir.path().join("key"),
        Launch {
            config: Some(cfg("agg-key")),
            env: &env,
            ..Launch::default()
        },
    );
    assert_upload_error(&s, "the secret key is wrong");
    drop(s);
    // A bucket that does not exist.
    let s = start(
        dir.path(),
        "nobucket",
        cfg("agg-nb").replace("bucket = \"logs\"", "bucket = \"nosuch\""),
    );
    assert_upload_error(&s, "the bucket does not exist");
    drop(s);
    // An endpoint nothing listens on.
    let port = pipeline_tests::free_port();
    let s = start(
        dir.path(),
        "noendpoint",
        cfg("agg-ne").replace(&weed.endpoint, &format!("http://127.0.0.1:{port}")),
    );
    assert_upload_error(&s, "the endpoint cannot be reached");
    drop(s);
    // Settings that cannot work are refused at start, naming the key.
    let t0 = Instant::now();
    let env = s3_env();
    for (bad, key) in [
        ("aggregator_id = \"agg-bad\"", "aggregator_id = \"a/b\""),
        ("bucket = \"logs\"", "bucket = \"Logs_\""),
        ("retry_max = \"2s\"", "part_size = \"1M\""),
    ] {
        let text = cfg("agg-bad").replace(bad, key);
        let r = Scribed::try_launch(
            &dir.path().join("refused"),
            Launch {
                config: Some(text),
                env: &env,
                ..Launch::default()
            },
        );
        let (_, log) = r.err().unwrap_or_else(|| panic!("{key} was accepted"));
        let name = key.split(' ').next().unwrap();
        assert!(log.contains(&format!("s3.{name}")), "{key}: {log}");
    }
    eprintln!("refusals took {:?}", t0.elapsed());
}

/// Drives the uploader directly over a hand-made archive whose files have fixed start times
/// (so keys are known): a multipart upload, a retry that finds its object (the `done` record
/// lost, as after a crash between upload and record), and another archive under the same
/// aggregator id whose file differs (a conflict: reported, never overwritten, kept locally).
#[test]
fn uploader_recognises_its_own_objects_and_refuses_to_overwrite_others() {
    use scribe_archive::uploads::{self, Record};
    use scribe_objstore::{UploadOptions, Uploader};

    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    // 2026-01-02 03:04:05 UTC.
    let t = 1_767_323_045_000;
    let make = |base: &Path, seed: u64| {
        let cat = base.join("web");
        std::fs::create_dir_all(&cat).unwrap();
        // 9 MiB of random letters: gzipped still over one 5 MiB part.
        std::fs::write(cat.join("web_00000"), random_lines(seed, "m", 80_000)).unwrap();
        std::fs::write(cat.join("web_00001"), b"current\n").unwrap();
        for name in ["web_00000", "web_00001"] {
            let rec = Record::First {
                name: name.into(),
                unix_ms: t,
            };
            uploads::append(&cat, &rec, false).unwrap();
        }
    };
    let run = |base: &Path, until: &dyn Fn(&scribe_objstore::UploadStatus) -> bool| {
        let mut o = UploadOptions::new(weed.location("logs", "arch"), "agg-u".into());
        o.part_size = 5 << 20;
        o.retry_max = Duration::from_secs(1);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _in = rt.enter();
        let up = Uploader::with_store(base.to_path_buf(), o, weed.client("logs", "")).unwrap();
        let t0 = Instant::now();
        let st = loop {
            let st = up.status();
            if until(&st) {
                break st;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{st:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        rt.block_on(up.stop(Duration::from_secs(5)));
        st
    };
    let a = dir.path().join("a");
    make(&a, 1);
    let st = run(&a, &|s| s.uploaded_files == 1);
    assert_eq!((st.already_present, st.failures), (0, 0), "{st:?}");
    let key = "arch/category=web/dt=2026-01-02/hour=03/agg-u-web_00000.gz";
    let objects = pipeline_tests::s3::list_objects(&weed.client("logs", "arch"), "arch");
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].1, key);
    assert!(
        objects[0].2 > 5 << 20,
        "not a multipart-sized object: {objects:?}"
    );
    let ledger = uploads::read(&a.join("web")).unwrap();
    assert!(ledger.is_done("web_00000") && !ledger.is_done("web_00001"));
    assert_eq!(ledger.planned["web_00000"], key);

    // The `done` record lost: the next run finds the object and records it, no second copy.
    uploads::compact(&a.join("web"), |_| true).unwrap();
    let text = std::fs::read_to_string(uploads::ledger_path(&a.join("web"))).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(" done "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(uploads::ledger_path(&a.join("web")), kept).unwrap();
    let st = run(&a, &|s| s.already_present == 1);
    assert_eq!(st.uploaded_files, 0, "{st:?}");
    assert!(uploads::read(&a.join("web")).unwrap().is_done("web_00000"));
    assert_eq!(
        pipeline_tests::s3::list_objects(&weed.client("logs", "arch"), "arch").len(),
        1
    );

    // Another archive, same aggregator id, same names and times, other bytes: a conflict.
    let b = dir.path().join("b");
    make(&b, 2);
    let st = run(&b, &|s| s.last_error.is_some());
    let err = st.last_error.unwrap();
    assert!(
        err.contains("another aggregator using this aggregator id"),
        "{err}"
    );
    assert!(!uploads::read(&b.join("web")).unwrap().is_done("web_00000"));
    assert!(b.join("web/web_00000").exists());
    let objects = pipeline_tests::s3::list_objects(&weed.client("logs", "arch"), "arch");
    assert_eq!(objects.len(), 1);
}

/// scribed's clock 20 minutes ahead of the store's: every signed request is refused as
/// skewed (S3 allows 15 minutes), the error says so, ingest goes on, nothing is deleted.
#[test]
fn clock_skew_is_named_ingest_goes_on_and_nothing_is_deleted() {
    let Some(lib) = pipeline_tests::s3::libfaketime() else {
        eprintln!(
            "SKIPPED: libfaketime not installed (scripts/test installs the faketime package)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    let lib = lib.display().to_string();
    let mut env: Vec<(&str, &str)> = s3_env().to_vec();
    // Only the wall clock moves: timers and timeouts keep the monotonic clock.
    env.extend([
        ("LD_PRELOAD", lib.as_str()),
        ("FAKETIME", "+20m"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ]);
    let s = Scribed::launch(
        &dir.path().join("skew"),
        Launch {
            config: Some(config(&weed, "agg-skew", "64K", true, "keep_files = 1")),
            env: &env,
            ..Launch::default()
        },
    );
    assert_upload_error(&s, "this machine's clock is off from the store's");
}

/// No credentials in the environment: scribed takes the keys from the shared AWS files of
/// the profile `AWS_PROFILE` names (`scribe_objstore::profile`), as the AWS CLI would.
#[test]
fn credentials_come_from_the_aws_profile_files() {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    let creds = dir.path().join("credentials");
    let conf = dir.path().join("config");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = AKNOTTHIS\naws_secret_access_key = nope\n\
             [ops]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            pipeline_tests::s3::ACCESS_KEY,
            pipeline_tests::s3::SECRET_KEY
        ),
    )
    .unwrap();
    std::fs::write(&conf, "[profile ops]\nregion = us-east-1\n").unwrap();
    let (creds, conf) = (creds.display().to_string(), conf.display().to_string());
    // Were the files not read, the chain would end at the instance metadata service: kept
    // on loopback, where nothing answers.
    let imds = format!("http://127.0.0.1:{}", pipeline_tests::free_port());
    let env = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.as_str()),
        ("AWS_CONFIG_FILE", conf.as_str()),
        ("AWS_PROFILE", "ops"),
        ("AWS_METADATA_ENDPOINT", imds.as_str()),
    ];
    let s = Scribed::launch(
        &dir.path().join("p"),
        Launch {
            config: Some(config(&weed, "agg-p", "64K", true, "")),
            env: &env,
            ..Launch::default()
        },
    );
    let input = lines("agg-p", "prof", 5_000);
    assert!(ship(&s.addr, "web", &input, &[]).status.success());
    wait_complete(
        &weed,
        &[("agg-p", &s.data_dir, "web", &input)],
        Duration::from_secs(60),
    );
}
