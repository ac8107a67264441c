//! Time buckets: top N groups per bucket (`--top N --per SPAN`), checked against an
//! independent count; sorting by any column within buckets.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

fn log(seed: u64, lines: usize) -> String {
    let mut r = fastrand::Rng::with_seed(seed);
    let mut s = String::new();
    for i in 0..lines {
        let sec = i * 300 / lines;
        // Skewed: low addresses are busier, so that tops differ from minute to minute.
        let ip = r.usize(..12).min(r.usize(..12));
        s.push_str(&format!(
            "10.0.0.{ip} - - [23/Nov/2026:06:{:02}:{:02} +0000] \"GET / HTTP/1.1\" 200 {} \"-\" \"ua\"\n",
            sec / 60,
            sec % 60,
            r.usize(..1000)
        ));
    }
    s
}

#[test]
fn top_n_per_bucket_keeps_each_buckets_busiest_groups() {
    let text = log(3, 6000);
    let mut want: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for l in text.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        *want
            .entry(format!("2026-11-23 {}:00", &w[3][13..18]))
            .or_default()
            .entry(w[0].to_string())
            .or_default() += 1;
    }
    let mut c = logq();
    c.args([
        "count", "-g", "ip", "--top", "3", "--per", "minute", "-O", "tsv",
    ]);
    let o = run(c, text.as_bytes());
    assert!(o.status.success(), "{}", show(&o.stderr));
    let out = show(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("time\tip\tcount"));
    let mut got: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        got.entry(f[0].to_string())
            .or_default()
            .push((f[1].to_string(), f[2].parse().unwrap()));
    }
    assert_eq!(got.len(), want.len(), "{out}");
    for (minute, counts) in &want {
        let rows = &got[minute];
        assert_eq!(rows.len(), 3, "{minute}: {rows:?}");
        // Largest first, each the true count, none smaller than a group left out.
        assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "{rows:?}");
        for (ip, n) in rows {
            assert_eq!(counts[ip], *n, "{minute} {ip}");
        }
        let kept: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        let floor = rows.last().unwrap().1;
        for (ip, n) in counts {
            assert!(
                kept.contains(&ip) || *n <= floor,
                "{minute}: {ip} ({n}) left out"
            );
        }
    }
    // --sort chooses the order within buckets; --per and --by must agree.
    let mut c = logq();
    c.args([
        "stats",
        "count, max(bytes) as big",
        "-g",
        "ip",
        "--per",
        "minute",
    ])
    .args(["--sort", "-big", "--top", "1", "-O", "tsv"]);
    let o = run(c, text.as_bytes());
    assert!(o.status.success(), "{}", show(&o.stderr));
    assert_eq!(show(&o.stdout).lines().count(), 1 + want.len());
    let (code, _, err) = logq_out(&["count", "--per", "minute", "--by", "hour", "--top", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("differ"), "{err}");
    let (code, _, err) = logq_out(&["count", "--per", "minute"]);
    assert_eq!(code, 2);
    assert!(err.contains("give --top N"), "{err}");
}

fn count_by(args: &[&str], input: &str) -> Vec<String> {
    let mut c = logq();
    c.args(["count", "-O", "tsv"]).args(args);
    let o = run(c, input.as_bytes());
    assert!(o.status.success(), "{args:?}: {}", show(&o.stderr));
    show(&o.stdout).lines().skip(1).map(String::from).collect()
}

#[test]
fn tz_aligns_buckets_reads_zoneless_times_and_shows_local_times() {
    assert!(
        Path::new("/usr/share/zoneinfo/Europe/Berlin").is_file(),
        "the --tz tests need the system zone database (Debian: apt-get install tzdata)"
    );
    // 22:30Z is 23:30 in Berlin on the 23rd, 23:30Z is 00:30 on the 24th.
    let late = "2026-11-23T22:30:00Z a\n2026-11-23T23:30:00Z b\n";
    assert_eq!(count_by(&["--by", "day"], late), ["2026-11-23 00:00:00\t2"]);
    assert_eq!(
        count_by(&["--by", "day", "--tz", "Europe/Berlin"], late),
        ["2026-11-23 00:00:00\t1", "2026-11-24 00:00:00\t1"]
    );
    assert_eq!(
        count_by(&["--by", "hour", "--tz", "+05:30"], late),
        ["2026-11-24 04:00:00\t1", "2026-11-24 05:00:00\t1"]
    );
    // The day of the spring change is 23 hours long, and the next starts at midnight
    // summer time (22:30Z is 00:30 CEST on the 30th; it would be the 29th at winter time).
    let dst = "2026-03-28T12:00:00Z\n2026-03-29T00:30:00Z\n2026-03-29T21:30:00Z\n\
               2026-03-29T22:30:00Z\n2026-03-30T12:00:00Z\n";
    assert_eq!(
        count_by(&["--by", "day", "--tz", "Europe/Berlin"], dst),
        [
            "2026-03-28 00:00:00\t1",
            "2026-03-29 00:00:00\t2",
            "2026-03-30 00:00:00\t2"
        ]
    );
    // Zone-less times and --since are read in the zone (syslog's year-less times are left
    // out: their year depends on today's date).
    let zoneless = "2026-11-23T10:15:00 x\n2026-11-23T10:45:00 y\n2026-11-23 10:50:00 z\n";
    let since = ["--since", "2026-11-23T09:30:00Z"];
    assert_eq!(count_by(&since, zoneless), ["3"]);
    let mut zoned = since.to_vec();
    zoned.extend(["--tz", "Europe/Berlin"]);
    assert_eq!(count_by(&zoned, zoneless), ["2"]);
    assert_eq!(
        count_by(
            &["--since", "2026-11-23 10:30", "--tz", "Europe/Berlin"],
            zoneless
        ),
        ["2"]
    );
    let (code, _, err) = logq_out(&["count", "--tz", "Mars/Olympus"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such zone"), "{err}");
}
