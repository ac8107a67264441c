//! `logq --archive s3://...` against a real S3 server on loopback (SeaweedFS's `weed mini`):
//! the same output as logq over the aggregators' local files, `--since`/`--until` fetching
//! only the objects of the partitions that can match (logq's own GET counter), credentials
//! from the shared AWS files, and every misconfiguration named in one line, exit 2.
//!
//! The bucket is filled the way scribed's uploader fills it (`scribe_objstore::layout`
//! keys, gzipped bodies) from local category directories written here, with first-line
//! times chosen so the objects spread over two days of hourly partitions.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, TimeZone, Utc};
use object_store::ObjectStoreExt;
use pipeline_tests::s3::{block_on, Weed, ACCESS_KEY, SECRET_KEY};
use scribe_archive::Category;
use scribe_objstore::layout::object_key;

/// Files per aggregator; each holds `HOURS_PER_FILE` hours of lines.
const FILES: usize = 12;
const HOURS_PER_FILE: i64 = 4;
/// One line every this many seconds.
const EVERY: i64 = 90;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

/// Writes `<root>/<agg>/<cat>/<cat>_NNNNN` files (JSON lines, times from `t0 + offset`) and
/// uploads each, gzipped, under the key scribed would give it. Returns the number of objects.
fn fill(weed: &Weed, root: &Path, agg: &str, cat: &str, offset_h: i64) -> usize {
    let dir = root.join(agg).join(cat);
    std::fs::create_dir_all(&dir).unwrap();
    let store = weed.client("logs", "");
    let category: Category = cat.parse().unwrap();
    let mut rng = fastrand::Rng::with_seed(offset_h as u64 * 7919 + agg.len() as u64);
    for f in 0..FILES {
        let start = t0() + Duration::hours(offset_h + f as i64 * HOURS_PER_FILE);
        let mut body = Vec::new();
        let mut t = start;
        while t < start + Duration::hours(HOURS_PER_FILE) {
            let status = [200, 200, 200, 404, 500][rng.usize(..5)];
            writeln!(
                body,
                "{{\"time\":\"{}\",\"agg\":\"{agg}\",\"status\":{status},\"path\":\"/p/{}\",\"ms\":{}}}",
                t.format("%Y-%m-%dT%H:%M:%SZ"),
                rng.u32(..20),
                rng.u32(1..900)
            )
            .unwrap();
            t += Duration::seconds(EVERY);
        }
        let name = format!("{cat}_{f:05}");
        std::fs::write(dir.join(&name), &body).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let key = object_key("arch", &category, start, agg, &name);
        let path = object_store::path::Path::from(key.as_str());
        block_on(store.put(&path, gz.finish().unwrap().into())).expect("putting an object");
    }
    FILES
}

/// logq with only the given environment (no AWS settings of the machine running the tests;
/// the instance metadata endpoint pointed at a closed loopback port, so nothing leaves it).
fn logq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(pipeline_tests::bin("logq"));
    cmd.args(args).env_clear().env("HOME", "/nonexistent").env(
        "AWS_METADATA_ENDPOINT",
        format!("http://127.0.0.1:{}", pipeline_tests::procs::free_port()),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running logq")
}

fn creds(weed: &Weed) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
        ("AWS_ENDPOINT_URL", weed.endpoint.clone()),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The GETs `--archive-stats` reported.
fn gets(stderr: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.contains(" GETs, "))
        .unwrap_or_else(|| panic!("no --archive-stats line in {text:?}"));
    let before = line.split(" GETs").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

struct Setup {
    weed: Weed,
    _dir: tempfile::TempDir,
    root: PathBuf,
    objects: usize,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let weed = Weed::start(&dir.path().join("weed"), &["logs"]);
    let root = dir.path().join("local");
    // Aggregator "agg-b" is an hour behind "agg-a"; "api" is a second category.
    let objects = fill(&weed, &root, "agg-a", "web", 0)
        + fill(&weed, &root, "agg-b", "web", 1)
        + fill(&weed, &root, "agg-a", "api", 2);
    Setup {
        weed,
        _dir: dir,
        root,
        objects,
    }
}

impl Setup {
    fn local(&self, agg: &str, cat: &str) -> String {
        self.root.join(agg).join(cat).display().to_string()
    }

    /// `cmd` over the bucket and over the local directories (aggregators in id order).
    fn both(&self, cmd: &[&str]) -> (Output, Output) {
        let env = creds(&self.weed);
        let mut remote: Vec<&str> = cmd.to_vec();
        remote.extend(["--archive", "s3://logs/arch", "--category", "web"]);
        let remote_out = logq(&remote, &refs(&env));
        let (a, b) = (self.local("agg-a", "web"), self.local("agg-b", "web"));
        let mut local: Vec<&str> = cmd.to_vec();
        local.extend([a.as_str(), b.as_str()]);
        (remote_out, logq(&local, &[]))
    }
}

fn assert_same(what: &str, (remote, local): (Output, Output)) {
    assert!(
        local.status.success(),
        "{what} locally: {}",
        String::from_utf8_lossy(&local.stderr)
    );
    assert_eq!(
        remote.status.code(),
        local.status.code(),
        "{what}: {}",
        String::from_utf8_lossy(&remote.stderr)
    );
    assert!(!local.stdout.is_empty(), "{what}: no output to compare");
    assert!(
        remote.stdout == local.stdout,
        "{what}: the bucket gave {} bytes, the local files {}",
        remote.stdout.len(),
        local.stdout.len()
    );
}

#[test]
fn logq_archive_output_is_byte_identical_and_since_fetches_only_matching_partitions() {
    let s = setup();
    assert_same("grep", s.both(&["grep", "-h", "status\":500"]));
    assert_same("cut", s.both(&["cut", "-d", ",", "-f", "1,3"]));
    assert_same(
        "where",
        s.both(&["where", "status >= 404 && ms > 800", "-p", "time,path"]),
    );
    assert_same("count", s.both(&["count", "--by", "hour", "-g", "agg"]));
    assert_same(
        "stats",
        s.both(&["stats", "count, p50(ms), max(ms)", "-g", "status"]),
    );
    assert_same("merge", s.both(&["grep", "-h", "--merge", "/p/7\""]));
    assert_same("fields", s.both(&["fields"]));

    // The whole bucket: every object once.
    let env = creds(&s.weed);
    let all = logq(
        &[
            "count",
            "--archive",
            "s3://logs/arch",
            "--category",
            "*",
            "--archive-stats",
        ],
        &refs(&env),
    );
    assert!(all.status.success(), "{all:?}");
    assert_eq!(gets(&all.stderr), s.objects as u64);

    // 10:00 to 12:00 on the first day, an hour of slack each side (09:00 to 13:00), judged
    // by keys alone: agg-a's files start every 4 h from 00:00 (the 04:00 file ended before
    // 09:00, since the 08:00 one started in its 08:00 hour), so 08:00 and 12:00; agg-b's
    // from 01:00, so 05:00 and 09:00. Four GETs of 24 objects, and the same lines as logq
    // over every local file with the same range.
    let range = [
        "--since",
        "2026-03-01T10:00:00Z",
        "--until",
        "2026-03-01T12:00:00Z",
    ];
    let mut cmd = vec!["grep", "-h", "status"];
    cmd.extend(range);
    cmd.push("--archive-stats");
    let (remote, local) = s.both(&cmd);
    assert_eq!(gets(&remote.stderr), 4, "{:?}", remote.stderr);
    let n = local.stdout.split(|b| *b == b'\n').count() - 1;
    assert_eq!(n as i64, 2 * 2 * 3600 / EVERY, "lines in the range");
    assert_same("grep --since --until", (remote, local));
}

#[test]
fn logq_archive_takes_profile_files_and_names_each_misconfiguration() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let creds_file = dir.path().join("credentials");
    let config_file = dir.path().join("config");
    std::fs::write(
        &creds_file,
        format!("[lab]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    std::fs::write(
        &config_file,
        format!(
            "[profile lab]\nregion = us-east-1\nendpoint_url = {}\n",
            s.weed.endpoint
        ),
    )
    .unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds_file.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
    ];
    let count = ["count", "--category", "web"];
    let with = |extra: &[(&str, &str)], archive: &str| {
        let mut env = files.to_vec();
        env.extend_from_slice(extra);
        let mut args = count.to_vec();
        args.extend(["--archive", archive]);
        logq(&args, &env)
    };

    // Keys and endpoint from the profile; LOGQ_ARCHIVE as the default archive.
    let out = with(
        &[("AWS_PROFILE", "lab"), ("LOGQ_ARCHIVE", "s3://logs/arch")],
        "s3://logs/arch",
    );
    assert!(out.status.success(), "{out:?}");
    let lines = format!(
        "count\n{}",
        2 * FILES as i64 * HOURS_PER_FILE * 3600 / EVERY
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), lines);
    let mut env = files.to_vec();
    env.extend([("AWS_PROFILE", "lab"), ("LOGQ_ARCHIVE", "s3://logs/arch")]);
    let out = logq(&count, &env);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        lines,
        "{out:?}"
    );

    let endpoint = format!("http://127.0.0.1:{}", pipeline_tests::procs::free_port());
    let mut cases: Vec<(&str, Output, &str)> = vec![
        (
            "missing bucket",
            with(&[("AWS_PROFILE", "lab")], "s3://nosuch/arch"),
            "the bucket does not exist",
        ),
        (
            "wrong key",
            with(
                &[
                    ("AWS_PROFILE", "lab"),
                    ("AWS_SECRET_ACCESS_KEY", "wrong"),
                    ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ],
                "s3://logs/arch",
            ),
            "the secret key is wrong",
        ),
        (
            "bad endpoint",
            with(
                &[("AWS_PROFILE", "lab"), ("AWS_ENDPOINT_URL", &endpoint)],
                "s3://logs/arch",
            ),
            "the endpoint cannot be reached",
        ),
        (
            "no credentials",
            with(&[("AWS_ENDPOINT_URL", &s.weed.endpoint)], "s3://logs/arch"),
            "no credentials",
        ),
        (
            "unknown profile",
            with(&[("AWS_PROFILE", "nope")], "s3://logs/arch"),
            "AWS_PROFILE=nope: no such profile",
        ),
    ];
    if let Some(lib) = pipeline_tests::s3::libfaketime() {
        let lib = lib.display().to_string();
        let skewed = [
            ("AWS_PROFILE", "lab"),
            ("LD_PRELOAD", lib.as_str()),
            ("FAKETIME", "-20m"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ];
        let out = with(&skewed, "s3://logs/arch");
        cases.push(("clock skew", out, "this machine's clock is off"));
    } else {
        eprintln!("clock skew not checked: libfaketime not installed (scripts/test installs it)");
    }
    for (what, out, cause) in cases {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: output {:?}", out.stdout);
        assert!(
            err.contains(cause),
            "{what}: {err:?} does not say {cause:?}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err:?}");
    }
}
