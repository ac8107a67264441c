//! Reading a category archive: numbered, dated, gzipped and current files in write order;
//! globs over categories; hostile names refused; `--since`/`--until` over rotated files.

mod common;

use std::path::Path;

use common::*;

/// A category with files in the naming forms scribed writes: undated numbered (one gzipped),
/// dated numbered (one gzipped, one made of two gzip members), the newest plain one, and the
/// `_current` symlink to it. Each file's lines say which file they are in.
fn make_archive(data: &Path, cat: &str) {
    let dir = data.join(cat);
    std::fs::create_dir_all(&dir).unwrap();
    let lines = |tag: &str| format!("{tag} line1\n{tag} line2\n").into_bytes();
    write(&dir.join(format!("{cat}_00000.gz")), &gzip(&lines("u0")));
    write(&dir.join(format!("{cat}_00001")), &lines("u1"));
    let mut two = gzip(b"d0 line1\n");
    two.extend(gzip(b"d0 line2\n"));
    write(&dir.join(format!("{cat}-2026-11-20_00000.gz")), &two);
    write(
        &dir.join(format!("{cat}-2026-11-20_00001.gz")),
        &gzip(&lines("d1")),
    );
    write(&dir.join(format!("{cat}-2026-11-21_00000")), &lines("d2"));
    // Not part of the archive: an unfinished compression and an unrelated file.
    write(
        &dir.join(format!("{cat}-2026-11-21_00000.gz.tmp")),
        b"garbage",
    );
    write(&dir.join("notes.txt"), b"u0 not a log\n");
    std::os::unix::fs::symlink(
        format!("{cat}-2026-11-21_00000"),
        dir.join(format!("{cat}_current")),
    )
    .unwrap();
}

#[test]
fn category_files_are_read_in_write_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_archive(&data, "web");
    let d = data.to_str().unwrap();
    let (code, out, err) = logq_out(&["grep", "-h", "line", "--category", "web", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    let tags: Vec<&str> = out.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        tags,
        ["u0", "u0", "u1", "u1", "d0", "d0", "d1", "d1", "d2", "d2"],
        "{out}"
    );
    // print, count and cut see the same lines in the same order.
    let (_, printed, _) = logq_out(&["print", "1", "--category", "web", "--data-dir", d]);
    assert_eq!(printed.lines().collect::<Vec<_>>(), tags);
    let (_, counted, _) = logq_out(&[
        "count",
        "-g",
        "1",
        "--category",
        "web",
        "--data-dir",
        d,
        "-O",
        "csv",
        "--sort",
        "$1",
    ]);
    assert_eq!(counted, "$1,count\nd0,2\nd1,2\nd2,2\nu0,2\nu1,2\n");
    let (_, last, _) = logq_out(&[
        "cut",
        "-w",
        "-f",
        "1",
        "--tail",
        "3",
        "--category",
        "web",
        "--data-dir",
        d,
    ]);
    assert_eq!(last, "d1\nd2\nd2\n");
}

#[test]
fn category_globs_and_hostile_names() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_archive(&data, "apache.access");
    make_archive(&data, "apache.error");
    make_archive(&data, "mail");
    let d = data.to_str().unwrap();
    let (code, out, _) = logq_out(&[
        "grep",
        "-c",
        "line",
        "--category",
        "apache.*",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 0);
    // Two categories × 5 files, each with two matching lines, in category-name order.
    assert_eq!(out.lines().count(), 10);
    assert!(
        out.lines()
            .take(5)
            .all(|l| l.contains("apache.access/") && l.ends_with(":2")),
        "{out}"
    );
    assert!(
        out.lines().skip(5).all(|l| l.contains("apache.error/")),
        "{out}"
    );
    let (code, _, err) = logq_out(&["grep", "x", "--category", "../etc", "--data-dir", d]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid category"), "{err}");
    let (code, _, err) = logq_out(&["grep", "x", "--category", "nomatch*", "--data-dir", d]);
    assert_eq!(code, 2);
    assert!(err.contains("no category"), "{err}");
}

/// Classes and braces, as tailgate subscriptions take them; `{` alone makes a glob too.
#[test]
fn category_classes_and_braces() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for cat in ["web.a", "web.b", "web.c", "mail"] {
        make_archive(&data, cat);
    }
    let d = data.to_str().unwrap();
    let dirs = |pattern: &str| {
        let (code, out, err) =
            logq_out(&["grep", "-c", "line", "--category", pattern, "--data-dir", d]);
        assert_eq!(code, 0, "{pattern}: {err}");
        let mut cats: Vec<String> = out
            .lines()
            .map(|l| l.rsplit('/').nth(1).unwrap().to_string())
            .collect();
        cats.dedup();
        cats
    };
    assert_eq!(dirs("web.[ab]*"), ["web.a", "web.b"]);
    assert_eq!(dirs("web.[!ab]"), ["web.c"]);
    assert_eq!(dirs("{mail,web.c}"), ["mail", "web.c"]);
    assert_eq!(dirs("{m*,*.[a-b]}"), ["mail", "web.a", "web.b"]);
    let (code, _, err) = logq_out(&["grep", "x", "--category", "web.{a", "--data-dir", d]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid category glob") && err.contains("never closed"),
        "{err}"
    );
}

fn clf(t: &str, ip: &str) -> String {
    format!("{ip} - - [{t} +0000] \"GET /x HTTP/1.1\" 200 10 \"-\" \"ua\"\n")
}

#[test]
fn since_and_until_filter_lines_and_skip_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = data.join("acc");
    std::fs::create_dir_all(&dir).unwrap();
    let day = |d: u32| {
        let mut s = String::new();
        for h in [1, 12, 23] {
            s.push_str(&clf(
                &format!("{d:02}/Nov/2026:{h:02}:00:00"),
                &format!("10.0.{d}.{h}"),
            ));
        }
        s
    };
    write(
        &dir.join("acc-2026-11-18_00000.gz"),
        &gzip(day(18).as_bytes()),
    );
    write(
        &dir.join("acc-2026-11-19_00000.gz"),
        &gzip(day(19).as_bytes()),
    );
    // A gzip file that is not valid past its header: must be skipped by time, never read.
    let mut broken = gzip(day(20).as_bytes());
    let n = broken.len();
    broken.truncate(n / 2);
    let broken_head = gzip(clf("17/Nov/2026:00:00:00", "1.1.1.1").as_bytes());
    write(
        &dir.join("acc-2026-11-17_00000.gz"),
        &[broken_head, broken].concat(),
    );
    write(&dir.join("acc-2026-11-21_00000"), day(21).as_bytes());
    let d = data.to_str().unwrap();
    let (code, out, err) = logq_out(&[
        "print",
        "ip",
        "--category",
        "acc",
        "--data-dir",
        d,
        "--since",
        "2026-11-19T12:00:00Z",
        "--until",
        "2026-11-21 12:00",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "10.0.19.12\n10.0.19.23\n10.0.21.1\n");
}

/// A category's directory named as a path is read as its archive: each file once, in write
/// order (not `_current`, the newest file again, nor a compressor's `.gz.tmp`).
#[test]
fn a_category_directory_given_as_a_path_is_read_as_its_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_archive(&data, "web");
    let d = data.to_str().unwrap();
    let (_, by_category, _) =
        logq_out(&["grep", "-h", "line", "--category", "web", "--data-dir", d]);
    for path in [data.join("web"), data.clone()] {
        let (code, out, err) = logq_out(&["grep", "-h", "line", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, by_category, "{}", path.display());
        let (_, counted, _) = logq_out(&["grep", "-c", "-h", "line", path.to_str().unwrap()]);
        let total: u64 = counted.lines().map(|l| l.parse::<u64>().unwrap()).sum();
        assert_eq!(total, 10, "{}: {counted}", path.display());
    }
}
