//! Expressions: arithmetic, NF and functions against the system's awk on the lines where awk
//! and logq agree by design (every operand a number); stats columns computed from
//! conditional aggregates against an independent computation, across parallel pieces.

mod common;

use std::collections::BTreeMap;

use common::*;

/// Lines of 2 to 6 non-zero numbers (integers and decimals, some negative), so that awk never
/// divides by zero and `$(NF-1)` always exists.
fn numeric_lines(seed: u64, n: usize) -> String {
    let mut r = fastrand::Rng::with_seed(seed);
    let mut s = String::new();
    for _ in 0..n {
        let k = r.usize(2..=6);
        let words: Vec<String> = (0..k)
            .map(|_| {
                let mut v = r.i32(1..60);
                if r.bool() {
                    v = -v;
                }
                if r.u8(..4) == 0 {
                    format!("{v}.5")
                } else {
                    v.to_string()
                }
            })
            .collect();
        s.push_str(&words.join(if r.bool() { " " } else { " \t " }));
        s.push('\n');
    }
    s
}

#[test]
fn arithmetic_nf_and_functions_select_what_awk_selects() {
    // mawk (Debian's required awk) has no --version: check that awk runs at all, so that a
    // missing awk fails the test instead of passing it.
    let probe = std::process::Command::new("awk")
        .arg("BEGIN { exit 0 }")
        .status();
    assert!(probe.is_ok_and(|s| s.success()), "system awk not found");
    let input = numeric_lines(16, 3000);
    let exprs = [
        "$1 + $2 * 3 > $NF - 1",
        "($1 - $2) % 7 == 1 || $1 / $2 < -2",
        "2 * -$1 > $2 / 2",
        "NF >= 4 && $(NF-1) < 0",
        "$NF * 2 + 1 >= 40",
        "length($1) == 3",
        "substr($2, 1, 1) == \"-\"",
        "$(NF - NF + 1) == $1 && NF % 2 == 0",
        "NR % 7 == 1 || NR == 100",
    ];
    for e in exprs {
        let mut c = logq();
        c.args(["where", e]);
        let ours = run(c, input.as_bytes());
        let mut a = std::process::Command::new("awk");
        a.env("LC_ALL", "C").arg(e);
        let theirs = run(a, input.as_bytes());
        assert!(theirs.status.success(), "awk {e}: {}", show(&theirs.stderr));
        assert!(
            !theirs.stdout.is_empty() && theirs.stdout.len() < input.len(),
            "{e}: the expression must select some lines but not all"
        );
        assert_eq!(show(&ours.stdout), show(&theirs.stdout), "where {e:?}");
    }
}

/// Access-log lines over ten minutes; statuses, paths and bytes (some `-`) vary.
fn access_log(seed: u64, lines: usize) -> String {
    let mut r = fastrand::Rng::with_seed(seed);
    let mut s = String::new();
    for i in 0..lines {
        let sec = i * 600 / lines;
        let status = [200, 200, 200, 304, 404, 500, 503][r.usize(..7)];
        let bytes = if status == 304 {
            "-".to_string()
        } else {
            r.usize(..100_000).to_string()
        };
        s.push_str(&format!(
            "10.0.{}.{} - - [23/Nov/2026:06:{:02}:{:02} +0000] \"GET /p/{}?id={} HTTP/1.1\" {status} {bytes} \"-\" \"ua\"\n",
            r.usize(..4),
            r.usize(..50),
            sec / 60,
            sec % 60,
            r.usize(..3),
            r.usize(..9),
        ));
    }
    s
}

#[derive(Default)]
struct Want {
    count: u64,
    errors: u64,
    ok_bytes: f64,
    max_p1: Option<f64>,
    ids: std::collections::BTreeSet<String>,
}

#[test]
fn computed_columns_and_conditional_aggregates_match_an_independent_computation() {
    let log = access_log(7, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, &log).unwrap();
    let mut want: BTreeMap<String, Want> = BTreeMap::new();
    for l in log.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        let e = want
            .entry(format!("2026-11-23 {}:00", &w[3][13..18]))
            .or_default();
        let status: u32 = w[8].parse().unwrap();
        e.count += 1;
        e.errors += (status >= 500) as u64;
        if status == 200 {
            e.ok_bytes += w[9].parse::<f64>().unwrap();
        }
        if w[6].starts_with("/p/1") {
            if let Ok(b) = w[9].parse::<f64>() {
                e.max_p1 = Some(e.max_p1.map_or(b, |m: f64| m.max(b)));
            }
        }
        e.ids.insert(w[6].split("id=").nth(1).unwrap().to_string());
    }
    let aggs = "count, count_if(status >= 500) * 100 / count as err_pct, \
                sum_if(bytes, status == 200) as ok_bytes, max_if(bytes, path ~ \"^/p/1\"), \
                dc(url_param(path, \"id\")) as ids";
    for piece in [None, Some("65536")] {
        let mut c = logq();
        c.args(["stats", aggs, "--by", "minute", "-O", "json"])
            .arg(&path);
        if let Some(p) = piece {
            c.env("LOGQ_PIECE_BYTES", p);
        }
        let o = run(c, b"");
        assert!(o.status.success(), "{}", show(&o.stderr));
        let rows: Vec<serde_json::Value> = show(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), want.len());
        for (row, (minute, w)) in rows.iter().zip(&want) {
            assert_eq!(row["time"], minute.as_str());
            assert_eq!(row["count"], w.count);
            let pct = row["err_pct"].as_f64().unwrap();
            let expect = w.errors as f64 * 100.0 / w.count as f64;
            assert!((pct - expect).abs() < 1e-9, "{minute}: {pct} vs {expect}");
            assert_eq!(row["ok_bytes"].as_f64().unwrap(), w.ok_bytes);
            assert_eq!(row["max_if(bytes,path~\"^/p/1\")"].as_f64(), w.max_p1);
            assert_eq!(row["ids"], w.ids.len() as u64);
        }
    }
}

#[test]
fn nr_counts_lines_across_files_and_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::write(&a, numeric_lines(1, 2000)).unwrap();
    std::fs::write(&b, numeric_lines(2, 500)).unwrap();
    let mut c = logq();
    // Small pieces would let workers run ahead: NR must still count in input order.
    c.env("LOGQ_PIECE_BYTES", "4096")
        .args(["print", "NR, $1", "--where", "NR % 97 == 3"])
        .args([&a, &b]);
    let ours = run(c, b"");
    let mut k = std::process::Command::new("awk");
    k.env("LC_ALL", "C")
        .arg("NR % 97 == 3 { print NR, $1 }")
        .args([&a, &b]);
    let theirs = run(k, b"");
    assert!(!theirs.stdout.is_empty());
    assert_eq!(show(&ours.stdout), show(&theirs.stdout));
    let (code, _, err) = logq_out(&["stats", "max(NR)"]);
    assert_eq!(code, 2);
    assert!(err.contains("where and print only"), "{err}");
}

#[test]
fn expression_errors_are_one_line_and_exit_2() {
    for (args, needle) in [
        (&["where", "nope($1)"][..], "unknown function \"nope\""),
        (&["where", "substr($1)"], "substr takes 2 or 3 argument(s)"),
        (&["stats", "status"], "field status outside an aggregate"),
        (&["stats", "count(ip)"], "count takes no argument"),
        (&["stats", "sum_if(bytes)"], "sum_if takes two arguments"),
        (
            &["stats", "count_if(status > 1) > 2"],
            "a column is aggregates",
        ),
        (&["where", "$1 +"], "expression ends too early"),
    ] {
        let (code, out, err) = logq_out(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
