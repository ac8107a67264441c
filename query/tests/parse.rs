//! `--parse`: a regex with named groups, angle-grinder's pattern form (one argument or three),
//! and named formats from a formats file (nginx `log_format` pasted as is), used by where,
//! print and stats, with times taken from the shape's time field.

mod common;

use common::*;

const APP_LOG: &str = "\
2026-11-23T06:00:01Z INFO GET /a took 12ms
2026-11-23T06:00:30Z INFO POST /b took 250ms
2026-11-23T06:01:02Z WARN GET /a took 1300ms
not a timing line
2026-11-23T06:01:40Z INFO GET /c took 7ms
";

fn logq_in(args: &[&str], input: &str) -> (i32, String, String) {
    let mut c = logq();
    c.args(args);
    let o = run(c, input.as_bytes());
    (
        o.status.code().unwrap_or(-1),
        show(&o.stdout),
        show(&o.stderr),
    )
}

#[test]
fn pattern_form_as_three_arguments_or_one() {
    for args in [
        &[
            "where",
            "ms > 100",
            "--parse",
            "* took *ms",
            "as",
            "op,ms",
            "-p",
            "op,ms",
        ][..],
        &[
            "where",
            "ms > 100",
            "--parse",
            "* took *ms as op,ms",
            "-p",
            "op,ms",
        ],
        &[
            "where",
            "ms > 100",
            "--parse=(?P<op>\\S+ \\S+ \\S+ \\S+) took (?P<ms>\\d+)ms",
            "-p",
            "op,ms",
        ],
    ] {
        let (code, out, err) = logq_in(args, APP_LOG);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(
            out, "2026-11-23T06:00:30Z INFO POST /b 250\n2026-11-23T06:01:02Z WARN GET /a 1300\n",
            "{args:?}"
        );
    }
    // Fields the shape does not have come from the line's format; NF and $NF still work.
    let (_, out, _) = logq_in(
        &["print", "$NF,$(NF-1),NF", "--parse", "* took *ms as op,ms"],
        "a b took 5ms\n",
    );
    assert_eq!(out, "5ms took 4\n");
    let (code, _, err) = logq_in(&["where", "ms", "--parse", "* took *ms as op"], "");
    assert_eq!(code, 2);
    assert!(err.contains("2 `*` but 1 name(s)"), "{err}");
}

#[test]
fn parsed_fields_aggregate_by_their_own_time() {
    let (code, out, err) = logq_in(
        &[
            "stats",
            "count, max(ms), count_if(ms >= 100) as slow",
            "--by",
            "minute",
            "--parse",
            "(?P<time>\\S+) (?P<level>\\w+) (?P<op>.*) took (?P<ms>\\d+)ms",
            "-O",
            "csv",
        ],
        APP_LOG,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "time,count,max(ms),slow\n2026-11-23 06:00:00,2,250,1\n2026-11-23 06:01:00,2,1300,1\n"
    );
    assert!(err.contains("1 lines without a recognisable time"), "{err}");
}

#[test]
fn named_formats_from_the_formats_file() {
    let dir = tempfile::tempdir().unwrap();
    let formats = dir.path().join("formats");
    std::fs::write(
        &formats,
        r#"# nginx.conf's log_format, pasted
log_format  timed  '$remote_addr - $remote_user [$time_local] "$request" '
                   '$status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time';
ops = '* took *ms as op,ms'
"#,
    )
    .unwrap();
    let log = "\
10.0.0.1 - - [23/Nov/2026:06:00:00 +0000] \"GET /a?id=1 HTTP/1.1\" 200 512 \"-\" \"curl/8\" rt=0.042
10.0.0.2 - bob [23/Nov/2026:06:00:09 +0000] \"POST /b HTTP/1.1\" 503 0 \"-\" \"ua\" rt=1.250
";
    let run_with = |args: &[&str]| {
        let mut c = logq();
        c.env("LOGQ_FORMATS", &formats).args(args);
        let o = run(c, log.as_bytes());
        (
            o.status.code().unwrap_or(-1),
            show(&o.stdout),
            show(&o.stderr),
        )
    };
    let (code, out, err) = run_with(&[
        "print",
        "ip,method,path,status,request_time",
        "--parse",
        "timed",
        "--where",
        "request_time > 1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "10.0.0.2 POST /b 503 1.250\n");
    let (code, out, err) = run_with(&[
        "stats",
        "p50(request_time * 1000) as p50_ms",
        "--by",
        "minute",
        "--parse",
        "timed",
        "-O",
        "tsv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "time\tp50_ms\n2026-11-23 06:00:00\t42\n");
    let (code, _, err) = run_with(&["where", "1", "--parse", "nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("no such format"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
