//! Aggregates checked against an independent computation in the test itself (plain string
//! handling, no logq code), across several files and byte-range splits so that the parallel
//! merge is exercised; empty time buckets across a gap; approximate modes within bounds.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Combined-format lines over `minutes` minutes starting 23/Nov/2026 06:00, some minutes empty.
fn access_log(seed: u64, lines: usize, minutes: usize) -> String {
    let mut r = fastrand::Rng::with_seed(seed);
    let mut s = String::new();
    let mut sec = 0usize;
    for _ in 0..lines {
        sec += r.usize(..3);
        // Leave minutes 7..=9 empty: a gap the output must show as zero rows.
        if (7 * 60..10 * 60).contains(&(sec % (minutes * 60))) {
            sec = 10 * 60 + (sec / (minutes * 60)) * minutes * 60;
        }
        let t = sec % (minutes * 60);
        let ip = format!("10.0.{}.{}", r.usize(..4), r.usize(..50));
        let status = [200, 200, 200, 304, 404, 500][r.usize(..6)];
        let bytes = if status == 304 {
            "-".to_string()
        } else {
            r.usize(..100_000).to_string()
        };
        s.push_str(&format!(
            "{ip} - - [23/{}/2026:06:{:02}:{:02} +0000] \"GET /p/{} HTTP/1.1\" {status} {bytes} \"-\" \"ua {}\"\n",
            MONTHS[10],
            t / 60,
            t % 60,
            r.usize(..20),
            r.usize(..5)
        ));
    }
    s
}

#[derive(Default)]
struct Expected {
    count: u64,
    ips: BTreeSet<String>,
    bytes: Vec<f64>,
}

fn independent(lines: &str) -> BTreeMap<String, Expected> {
    let mut m: BTreeMap<String, Expected> = BTreeMap::new();
    for l in lines.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        // w[3] = "[23/Nov/2026:06:MM:SS"
        let minute = &w[3][13..18];
        let e = m.entry(format!("2026-11-23 {minute}:00")).or_default();
        e.count += 1;
        e.ips.insert(w[0].to_string());
        if let Ok(b) = w[9].parse::<f64>() {
            e.bytes.push(b);
        }
    }
    m
}

fn fmt(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        let s = format!("{n:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn stats(args: &[&str], env_piece: Option<&str>) -> String {
    let mut c = logq();
    c.arg("stats").args(args);
    if let Some(p) = env_piece {
        c.env("LOGQ_PIECE_BYTES", p);
    }
    let o = run(c, b"");
    assert!(o.status.success(), "{}", show(&o.stderr));
    show(&o.stdout)
}

#[test]
fn per_minute_aggregates_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = String::new();
    let mut files = Vec::new();
    for i in 0..3 {
        let text = access_log(100 + i, 4000, 15);
        let p = dir.path().join(format!("access{i}.log"));
        if i == 1 {
            write(&p.with_extension("log.gz"), &gzip(text.as_bytes()));
            files.push(p.with_extension("log.gz").display().to_string());
        } else {
            write(&p, text.as_bytes());
            files.push(p.display().to_string());
        }
        all.push_str(&text);
    }
    let exp = independent(&all);
    let mut want = String::from("time\tcount\tcount_distinct(ip)\tsum(bytes)\tmin(bytes)\tmax(bytes)\tavg(bytes)\tp50(bytes)\tp99(bytes)\n");
    let first = exp.keys().next().unwrap().clone();
    let last = exp.keys().last().unwrap().clone();
    let minute = |k: &str| k[14..16].parse::<usize>().unwrap();
    for m in minute(&first)..=minute(&last) {
        let key = format!("2026-11-23 06:{m:02}:00");
        match exp.get(&key) {
            None => want.push_str(&format!("{key}\t0\t0\t0\t\t\t\t\t\n")),
            Some(e) => {
                let mut b = e.bytes.clone();
                b.sort_by(f64::total_cmp);
                let rank = |p: f64| {
                    b[((p / 100.0 * b.len() as f64).ceil() as usize).clamp(1, b.len()) - 1]
                };
                let sum: f64 = b.iter().sum();
                want.push_str(&format!(
                    "{key}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    e.count,
                    e.ips.len(),
                    fmt(sum),
                    fmt(b[0]),
                    fmt(b[b.len() - 1]),
                    fmt(sum / b.len() as f64),
                    fmt(rank(50.0)),
                    fmt(rank(99.0)),
                ));
            }
        }
    }
    assert!(
        want.contains("06:08:00\t0\t0"),
        "the generated data must have a gap"
    );
    let aggs = "count,count_distinct(ip),sum(bytes),min(bytes),max(bytes),avg(bytes),p50(bytes),p99(bytes)";
    let mut args = vec![aggs, "--by", "minute", "-O", "tsv"];
    args.extend(files.iter().map(String::as_str));
    assert_eq!(stats(&args, None), want);
    // Split into many byte ranges: the merged result is the same.
    assert_eq!(stats(&args, Some("4096")), want);
}

#[test]
fn group_by_fields_sort_and_top() {
    let text = access_log(7, 3000, 10);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    write(&p, text.as_bytes());
    let mut per_status: BTreeMap<String, u64> = BTreeMap::new();
    for l in text.lines() {
        *per_status
            .entry(l.split(' ').nth(8).unwrap().to_string())
            .or_default() += 1;
    }
    let mut rows: Vec<(String, u64)> = per_status.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let want: String = std::iter::once("status,count\n".to_string())
        .chain(rows.iter().take(2).map(|(s, c)| format!("{s},{c}\n")))
        .collect();
    let got = stats(
        &[
            "count",
            "-g",
            "status",
            "--top",
            "2",
            "-O",
            "csv",
            p.to_str().unwrap(),
        ],
        Some("8192"),
    );
    assert_eq!(got, want);
    // Filter + ascending sort by a named column.
    let got = stats(
        &[
            "count",
            "-g",
            "status",
            "--where",
            "status >= 400",
            "--sort",
            "status",
            "-O",
            "csv",
            p.to_str().unwrap(),
        ],
        None,
    );
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "status,count");
    assert!(
        lines[1].starts_with("404,") && lines[2].starts_with("500,") && lines.len() == 3,
        "{got}"
    );
}

#[test]
fn empty_buckets_across_a_gap_are_zero() {
    let lines = [
        "10.0.0.1 - - [23/Nov/2026:06:00:10 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"",
        "10.0.0.2 - - [23/Nov/2026:06:00:50 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"",
        "10.0.0.1 - - [23/Nov/2026:06:01:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"",
        "10.0.0.3 - - [23/Nov/2026:06:05:59 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"a\"",
    ]
    .join("\n");
    let mut c = logq();
    c.args([
        "stats",
        "count,count_distinct(ip)",
        "--by",
        "minute",
        "-O",
        "csv",
    ]);
    let o = run(c, lines.as_bytes());
    assert_eq!(
        show(&o.stdout),
        "time,count,count_distinct(ip)\n\
         2026-11-23 06:00:00,2,2\n\
         2026-11-23 06:01:00,1,1\n\
         2026-11-23 06:02:00,0,0\n\
         2026-11-23 06:03:00,0,0\n\
         2026-11-23 06:04:00,0,0\n\
         2026-11-23 06:05:00,1,1\n"
    );
    let mut c = logq();
    c.args(["count", "--by", "5m", "-O", "json"]);
    let o = run(c, lines.as_bytes());
    assert_eq!(
        show(&o.stdout),
        "{\"time\":\"2026-11-23 06:00:00\",\"count\":3}\n{\"time\":\"2026-11-23 06:05:00\",\"count\":1}\n"
    );
}

#[test]
fn approximate_modes_stay_close() {
    let mut s = String::new();
    for i in 0..60_000u32 {
        s.push_str(&format!(
            "10.{}.{}.{} {}\n",
            i % 7,
            (i / 7) % 250,
            i % 199,
            (i * 37) % 10_000
        ));
    }
    let mut c = logq();
    c.args([
        "stats",
        "count_distinct($1),p99($2)",
        "--approx",
        "-O",
        "tsv",
    ]);
    let o = run(c, s.as_bytes());
    let out = show(&o.stdout);
    let row: Vec<f64> = out
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .map(|v| v.parse().unwrap())
        .collect();
    let mut exact = std::collections::HashSet::new();
    for l in s.lines() {
        exact.insert(l.split(' ').next().unwrap());
    }
    let n = exact.len() as f64;
    assert!(
        (row[0] - n).abs() / n < 0.05,
        "approx distinct {} vs {n}",
        row[0]
    );
    assert!(
        (row[1] - 9900.0).abs() / 9900.0 < 0.02,
        "approx p99 {}",
        row[1]
    );
}

#[test]
fn split_files_give_the_same_grep_cut_and_print_output() {
    // Over 1 MiB: read through a memory map, whole and in ranges.
    let text = access_log(9, 15000, 30);
    assert!(text.len() > 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.log");
    write(&p, text.as_bytes());
    let f = p.to_str().unwrap();
    for args in [
        &["grep", "-E", "-o", "10\\.0\\.[0-9]+\\.1[0-9] .*404", f][..],
        &["grep", "-v", "GET /p/1", f],
        &["cut", "-d", " ", "-f", "1,7", f],
        &["cut", "-c", "5-30", f],
        &["print", "ip,status", "--where", "status == 500", f],
        &["where", "bytes > 99000", f],
    ] {
        let whole = run(
            {
                let mut c = logq();
                c.args(args);
                c
            },
            b"",
        );
        let split = run(
            {
                let mut c = logq();
                c.args(args).env("LOGQ_PIECE_BYTES", "3000");
                c
            },
            b"",
        );
        // The same pieces read with read(2) instead of a memory map.
        let read = run(
            {
                let mut c = logq();
                c.args(args)
                    .arg("--no-mmap")
                    .env("LOGQ_PIECE_BYTES", "3000");
                c
            },
            b"",
        );
        assert!(!whole.stdout.is_empty(), "{args:?}");
        assert_eq!(show(&whole.stdout), show(&split.stdout), "{args:?}");
        assert_eq!(
            show(&whole.stdout),
            show(&read.stdout),
            "{args:?} --no-mmap"
        );
    }
}

#[test]
fn plots_render_svg_and_png_and_refuse_non_series() {
    let text = access_log(11, 2000, 10);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    write(&log, text.as_bytes());
    let svg = dir.path().join("hits.svg");
    let png = dir.path().join("hits.png");
    for (out, args) in [
        (&svg, vec!["count,count_distinct(ip)", "--by", "minute"]),
        (&png, vec!["count", "--by", "2m", "-g", "status"]),
    ] {
        let mut c = logq();
        c.arg("stats").args(&args).arg("--plot").arg(out).arg(&log);
        let o = run(c, b"");
        assert!(o.status.success(), "{}", show(&o.stderr));
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    assert!(
        svg.contains("count_distinct(ip)") && svg.contains("<polyline"),
        "legend and lines"
    );
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    // A plot needs a time series.
    let mut c = logq();
    c.args(["count", "-g", "status", "--plot"])
        .arg(dir.path().join("x.svg"))
        .arg(&log);
    let o = run(c, b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(show(&o.stderr).contains("--by"), "{}", show(&o.stderr));
}

#[test]
fn hostile_times_do_not_break_a_time_series() {
    // Year 0001 and `ts: 1e300` are outside 1970..=9999: no time (warned about). One line
    // dated 9999 among lines of 2026 is far too many minute buckets to fill: the gaps are
    // left out (warned about) and the buckets with lines still print.
    let input = "{\"time\":\"0001-01-01T00:00:00Z\"}\n{\"ts\":1e300}\n\
                 {\"time\":\"2026-11-23T06:00:10Z\"}\n{\"time\":\"2026-11-23T06:00:20Z\"}\n\
                 {\"time\":\"2026-11-23T06:02:00Z\"}\n{\"time\":\"9999-12-31T23:59:59Z\"}\n";
    let mut c = logq();
    c.args(["count", "--by", "minute"]);
    let o = run(c, input.as_bytes());
    assert!(o.status.success(), "{}", show(&o.stderr));
    assert_eq!(
        show(&o.stdout),
        "time\tcount\n2026-11-23 06:00:00\t2\n2026-11-23 06:02:00\t1\n9999-12-31 23:59:00\t1\n"
    );
    let err = show(&o.stderr);
    assert!(err.contains("2 lines without a recognisable time"), "{err}");
    assert!(err.contains("empty time buckets not shown"), "{err}");
    // Without the outlier the gap is filled as usual.
    let mut c = logq();
    c.args(["count", "--by", "minute", "--until", "2030-01-01"]);
    let o = run(c, input.as_bytes());
    assert!(o.status.success(), "{}", show(&o.stderr));
    assert_eq!(
        show(&o.stdout),
        "time\tcount\n2026-11-23 06:00:00\t2\n2026-11-23 06:01:00\t0\n2026-11-23 06:02:00\t1\n"
    );
}

/// The format is detected line by line: a banner line before an access log must not hide
/// the access-log fields and times of the lines after it.
#[test]
fn banner_line_does_not_decide_the_format() {
    let log = access_log(7, 300, 20);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.log");
    let banner = dir.path().join("banner.log");
    std::fs::write(&plain, &log).unwrap();
    std::fs::write(&banner, format!("# access log, rotated daily\n{log}")).unwrap();
    for args in [&["count", "--by", "hour"][..], &["count", "-g", "status"]] {
        let want = logq().args(args).arg(&plain).output().unwrap();
        let got = logq().args(args).arg(&banner).output().unwrap();
        assert!(want.status.success() && got.status.success());
        let want = String::from_utf8(want.stdout).unwrap();
        let got = String::from_utf8(got.stdout).unwrap();
        if args[1] == "--by" {
            assert_eq!(got, "time\tcount\n2026-11-23 06:00:00\t300\n");
        } else {
            // The banner is one more line, without a status.
            assert_eq!(got, format!("{want}\t1\n"), "args {args:?}");
        }
    }
}

/// A logfmt log with stack traces counts the same whatever the piece size, even when a
/// piece starts inside a stack trace.
#[test]
fn mixed_logfmt_and_stack_traces_do_not_depend_on_pieces() {
    let mut r = fastrand::Rng::with_seed(11);
    let mut log = String::new();
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for i in 0..400 {
        let minute = i / 40;
        let level = ["info", "warn", "error"][r.usize(..3)];
        log.push_str(&format!(
            "time=2026-11-23T06:{minute:02}:{:02}Z level={level} msg=\"request {i}\"\n",
            i % 60
        ));
        *want
            .entry((format!("2026-11-23 06:{minute:02}:00"), level.to_string()))
            .or_default() += 1;
        if level == "error" {
            for _ in 0..r.usize(..4) + 1 {
                log.push_str("    at com.example.Handler.run(Handler.java:42)\n");
            }
        }
    }
    let mut expect = String::from("time\tlevel\tcount\n");
    for ((t, l), n) in &want {
        expect.push_str(&format!("{t}\t{l}\t{n}\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, &log).unwrap();
    for piece in ["200", "997", "1000000"] {
        let out = logq()
            .env("LOGQ_PIECE_BYTES", piece)
            .args(["count", "--by", "minute", "-g", "level"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            expect,
            "piece {piece}"
        );
    }
}

/// Group values are log bytes: TSV and CSV write them as they are, not as U+FFFD.
#[test]
fn tsv_and_csv_keep_group_bytes() {
    let input: &[u8] = b"caf\xe9 x\ncaf\xe9 y\n\xff,\"q x\n";
    let mut c = logq();
    c.args(["count", "-g", "1", "-O", "tsv"]);
    let o = run(c, input);
    assert!(o.status.success(), "{}", show(&o.stderr));
    assert_eq!(o.stdout, b"$1\tcount\ncaf\xe9\t2\n\xff,\"q\t1\n".to_vec());
    let mut c = logq();
    c.args(["count", "-g", "1", "-O", "csv"]);
    let o = run(c, input);
    assert_eq!(
        o.stdout,
        b"$1,count\ncaf\xe9,2\n\"\xff,\"\"q\",1\n".to_vec()
    );
}

/// With groups, a bucket gets a row only for the groups it has lines of, unless `--fill`;
/// without groups, quiet buckets are zero rows.
#[test]
fn zero_rows_for_groups_only_when_asked() {
    let log = "time=2026-11-23T06:00:10Z ip=a\n\
               time=2026-11-23T06:00:20Z ip=b\n\
               time=2026-11-23T06:02:00Z ip=a\n";
    let run_with = |extra: &[&str]| {
        let mut c = logq();
        c.args(["count", "--by", "minute", "-O", "tsv"]).args(extra);
        show(&run(c, log.as_bytes()).stdout)
    };
    assert_eq!(
        run_with(&["-g", "ip"]),
        "time\tip\tcount\n2026-11-23 06:00:00\ta\t1\n2026-11-23 06:00:00\tb\t1\n\
         2026-11-23 06:02:00\ta\t1\n"
    );
    let filled = run_with(&["-g", "ip", "--fill"]);
    assert_eq!(filled.lines().count(), 1 + 3 * 2, "{filled}");
    assert!(filled.contains("2026-11-23 06:01:00\tb\t0\n"), "{filled}");
    assert_eq!(
        run_with(&[]),
        "time\tcount\n2026-11-23 06:00:00\t2\n2026-11-23 06:01:00\t0\n2026-11-23 06:02:00\t1\n"
    );
}
