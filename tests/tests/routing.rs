//! Routing, checked by where bytes land: exact, prefix (longest wins), default, double
//! logging, multi, bucket, null; and file-store features end to end (gzip, retention).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use pipeline_tests::{get_counter, read_category, wait_for, Launch, RawConn, Scribed};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};

fn send(addr: &str, entries: &[(&str, &str)]) {
    let batch: Vec<LogEntry> = entries
        .iter()
        .map(|(c, m)| LogEntry {
            category: Bytes::copy_from_slice(c.as_bytes()),
            message: Bytes::copy_from_slice(m.as_bytes()),
        })
        .collect();
    let mut conn = RawConn::connect(addr);
    let reply = conn.call(&encode_log_call(HeaderStyle::Unversioned, &batch));
    assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
}

fn cat(dir: &Path, category: &str) -> String {
    String::from_utf8(read_category(dir, category)).unwrap()
}

#[test]
fn categories_land_where_the_config_routes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    let config = format!(
        r#"
[[store]]
category = "exact"
type = "file"
path = "{exact}"

[[store]]
category = "web*"
type = "file"
path = "{web}"

[[store]]
category = "web.api*"
type = "file"
path = "{webapi}"

[[store]]
categories = ["dup", "default"]
type = "file"
path = "{dflt}"

[[store]]
category = "dup"
type = "file"
path = "{dup2}"

[[store]]
category = "fan"
type = "multi"
[[store.stores]]
type = "file"
path = "{fan1}"
[[store.stores]]
type = "file"
path = "{fan2}"

[[store]]
category = "shard"
type = "bucket"
num_buckets = 3
path = "{shard}"
[store.bucket]
type = "file"
path = "{shard}"

[[store]]
category = "void"
type = "null"
"#,
        exact = p("exact").display(),
        web = p("web").display(),
        webapi = p("webapi").display(),
        dflt = p("default").display(),
        dup2 = p("dup2").display(),
        fan1 = p("fan1").display(),
        fan2 = p("fan2").display(),
        shard = p("shard").display(),
    );
    // `path` is not a bucket-store key: the config must be rejected first.
    let check = std::process::Command::new(pipeline_tests::bin("scribed"))
        .arg("--check-config")
        .arg({
            let f = p("bad.toml");
            std::fs::write(&f, &config).unwrap();
            f
        })
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("store[6]"));
    let config = config.replacen(
        &format!("num_buckets = 3\npath = \"{}\"\n", p("shard").display()),
        "num_buckets = 3\n",
        1,
    );

    let server = Scribed::launch(
        &p("data"),
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    send(
        &server.addr,
        &[
            ("exact", "e1"),
            ("web.access", "w1"),
            ("web.api.v2", "a1"),
            ("webby", "w2"),
            ("other", "o1"),
            ("dup", "d1"),
            ("fan", "f1"),
            ("void", "gone"),
            ("shard", "alice:1"),
            ("shard", "bob:2"),
            ("shard", "alice:3"),
            ("shard", "nokey"),
        ],
    );
    assert_eq!(cat(&p("exact"), "exact"), "e1\n");
    assert_eq!(cat(&p("web"), "web.access"), "w1\n");
    assert_eq!(cat(&p("web"), "webby"), "w2\n");
    assert_eq!(
        cat(&p("webapi"), "web.api.v2"),
        "a1\n",
        "longest prefix wins"
    );
    assert_eq!(cat(&p("web"), "web.api.v2"), "", "only the longest prefix");
    assert_eq!(cat(&p("default"), "other"), "o1\n");
    assert_eq!(cat(&p("default"), "dup"), "d1\n", "both blocks naming dup");
    assert_eq!(cat(&p("dup2"), "dup"), "d1\n");
    assert_eq!(
        cat(&p("default"), "exact"),
        "",
        "exact matches skip default"
    );
    assert_eq!(cat(&p("fan1"), "fan"), "f1\n");
    assert_eq!(cat(&p("fan2"), "fan"), "f1\n");
    assert!(!p("default").join("void").exists());
    assert_eq!(get_counter(&server.addr, "void:ignored"), 1);

    // Buckets: the same key always lands in the same bucket; no key goes to bucket 000.
    assert_eq!(cat(&p("shard").join("bucket000"), "shard"), "nokey\n");
    let mut alice = None;
    let mut all = String::new();
    for b in 1..=3 {
        let text = cat(&p("shard").join(format!("bucket{b:03}")), "shard");
        if text.contains("alice:1") {
            assert!(text.contains("alice:3"), "same key, same bucket");
            alice = Some(b);
        }
        all.push_str(&text);
    }
    assert!(alice.is_some());
    assert_eq!(all.lines().count(), 3);
}

#[test]
fn unrouted_categories_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[[store]]\ncategory = \"only\"\ntype = \"file\"\npath = \"{}\"\n",
        tmp.path().join("out").display()
    );
    let server = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    send(&server.addr, &[("only", "kept"), ("stray", "dropped")]);
    assert_eq!(cat(&tmp.path().join("out"), "only"), "kept\n");
    assert_eq!(get_counter(&server.addr, "scribe_overall:received bad"), 1);
}

#[test]
fn rotated_files_are_gzipped_and_old_ones_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let config = format!(
        "[[store]]\ncategory = \"default\"\ntype = \"file\"\npath = \"{}\"\nmax_size = \"4K\"\ncompress = true\nkeep_files = 4\n",
        out.display()
    );
    let server = Scribed::launch(
        &tmp.path().join("data"),
        Launch {
            config: Some(config),
            ..Launch::default()
        },
    );
    let mut sent = Vec::new();
    for i in 0..40 {
        let line = format!("{i:04} {}", "x".repeat(500));
        send(&server.addr, &[("z", &line)]);
        sent.push(format!("{line}\n"));
    }
    let dir = out.join("z");
    // Data files only: the commit log (`.commits`, exactly-once) lives beside them.
    let names = |d: &std::path::Path| -> Vec<String> {
        names(d)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    wait_for(Duration::from_secs(20), "compression and retention", || {
        let names = names(&dir);
        let plain_rotated = names
            .iter()
            .filter(|n| !n.ends_with(".gz") && !n.ends_with("_current") && !n.contains(".tmp"))
            .count();
        names.iter().filter(|n| n.ends_with(".gz")).count() == 3 && plain_rotated == 1
    });
    // The newest files hold the newest lines, byte for byte, through gzip.
    let mut files: Vec<_> = names(&dir)
        .into_iter()
        .filter(|n| !n.ends_with("_current"))
        .collect();
    files.sort();
    let mut text = String::new();
    for f in &files {
        let raw = std::fs::read(dir.join(f)).unwrap();
        if f.ends_with(".gz") {
            let mut d = flate2::read::GzDecoder::new(&raw[..]);
            d.read_to_string(&mut text).unwrap();
        } else {
            text.push_str(std::str::from_utf8(&raw).unwrap());
        }
    }
    let all = sent.concat();
    assert!(
        all.ends_with(&text),
        "kept files are the newest lines, intact"
    );
    assert!(text.len() < all.len(), "older files were removed");
    assert!(text.starts_with(&sent[sent.len() - text.lines().count()]));
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
