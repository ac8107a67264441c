//! `--merge`: categories (rotated, gzipped files in write order) and files interleaved by
//! time; untimed continuation lines stay with their line; aggregates do not change.

mod common;

use std::path::Path;

use common::*;

/// A syslog-ISO line of host `h` at second `s` past 06:00.
fn line(h: &str, s: u32, what: &str) -> String {
    format!(
        "2026-11-23T06:{:02}:{:02}.000000+00:00 {h} app[1]: {what}\n",
        s / 60,
        s % 60
    )
}

fn category(data: &Path, cat: &str, rotated: &str, current: &str) {
    let dir = data.join(cat);
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir.join(format!("{cat}-2026-11-23_00000.gz")),
        &gzip(rotated.as_bytes()),
    );
    write(
        &dir.join(format!("{cat}-2026-11-23_00001")),
        current.as_bytes(),
    );
}

#[test]
fn categories_and_files_interleave_by_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // web.a: seconds 0, 10 (+ a continuation line), | rotation | 30, 40.
    let a1 = line("a", 0, "start") + &line("a", 10, "boom") + "  at frame 1\n";
    let a2 = line("a", 30, "x") + &line("a", 40, "y");
    category(&data, "web.a", &a1, &a2);
    // web.b: 5, 10 (a tie with web.a: web.a, named first, goes first), | 35.
    let b1 = line("b", 5, "b1") + &line("b", 10, "b2");
    let b2 = line("b", 35, "b3");
    category(&data, "web.b", &b1, &b2);
    let file = tmp.path().join("c.log");
    std::fs::write(&file, line("c", 20, "c1") + &line("c", 45, "c2")).unwrap();
    let d = data.to_str().unwrap();
    let f = file.to_str().unwrap();
    let (code, out, err) = logq_out(&[
        "grep",
        "-h",
        "",
        "--category",
        "web.*",
        "--data-dir",
        d,
        f,
        "--merge",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<String> = out
        .lines()
        .map(|l| match l.split(' ').nth(1) {
            Some(h) if !l.starts_with(' ') => format!("{h}:{}", l.rsplit(' ').next().unwrap()),
            _ => "cont".to_string(),
        })
        .collect();
    assert_eq!(
        got,
        ["a:start", "b:b1", "a:boom", "cont", "b:b2", "c:c1", "a:x", "b:b3", "a:y", "c:c2"],
        "{out}"
    );
    // Without --merge: in the order named. Aggregates are the same either way.
    let (_, plain, _) = logq_out(&["grep", "-h", "", "--category", "web.*", "--data-dir", d, f]);
    assert!(plain.starts_with(&a1), "{plain}");
    for extra in [&[][..], &["--merge"]] {
        let mut args = vec![
            "count",
            "-g",
            "host",
            "--category",
            "web.*",
            "--data-dir",
            d,
            f,
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = logq_out(&args);
        assert_eq!(code, 0, "{err}");
        let mut rows: Vec<&str> = out.lines().skip(1).collect();
        rows.sort();
        assert_eq!(rows, ["\t1", "a\t4", "b\t3", "c\t2"], "{extra:?}: {out}");
    }
    let (code, _, err) = logq_out(&["where", "1", "--merge", "--follow", f]);
    assert_eq!(code, 2);
    assert!(err.contains("--merge"), "{err}");
}
