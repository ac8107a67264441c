//! Field discovery (`logq fields`), the "did you mean" error for a field no line has, and
//! JSON's flat dotted keys and lossily decoded lines.

mod common;

use common::*;

const MIXED: &[u8] =
    b"10.0.0.1 - - [23/Nov/2026:06:00:00 +0000] \"GET /a?x=1 HTTP/1.1\" 503 512 \"-\" \"curl/8\"\n\
{\"log.level\":\"warn\",\"req\":{\"path\":\"/a\",\"ms\":12},\"time\":\"2026-11-23T06:00:00Z\"}\n\
{\"log.level\":\"info\",\"msg\":\"caf\xc3\",\"req\":{\"ms\":30}}\n\
ts=2026-11-23T06:00:01Z level=warn msg=\"slow thing\"\n\
plain words here\n";

fn logq_on(args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut c = logq();
    c.args(args);
    let o = run(c, input);
    (
        o.status.code().unwrap_or(-1),
        show(&o.stdout),
        show(&o.stderr),
    )
}

#[test]
fn fields_lists_formats_names_and_samples() {
    let (code, out, err) = logq_on(&["fields", "-O", "tsv"], MIXED);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows[0], ["format", "lines", "field", "with", "samples"]);
    let row = |f: &str, n: &str| {
        rows.iter()
            .find(|r| r[0] == f && r[2] == n)
            .unwrap_or_else(|| panic!("no {f} {n} in\n{out}"))
            .clone()
    };
    assert_eq!(row("clf", "status"), ["clf", "1", "status", "1", "503"]);
    assert_eq!(row("clf", "path")[4], "/a?x=1");
    // The invalid UTF-8 line is still JSON (decoded lossily), and flat dotted keys are names.
    assert_eq!(
        row("json", "log.level"),
        ["json", "2", "log.level", "2", "warn | info"]
    );
    assert_eq!(row("json", "req.ms")[3..], ["2", "12 | 30"]);
    assert_eq!(row("json", "msg")[4], "caf\u{fffd}");
    assert_eq!(row("logfmt", "msg")[4], "slow thing");
    assert_eq!(row("plain", "$3")[4], "here");
    assert!(err.contains("5 lines sampled, 3 with a time"), "{err}");
}

#[test]
fn a_field_no_line_has_is_an_error_with_a_hint() {
    for (args, hint) in [
        (&["where", "stauts >= 500"][..], "did you mean \"status\"?"),
        (&["stats", "p99(req.mss)"], "did you mean \"req.ms\"?"),
        (&["count", "-g", "log.levle"], "did you mean \"log.level\"?"),
        (
            &["print", "ip,zzzzzz"],
            "`logq fields FILE` lists the fields",
        ),
    ] {
        let (code, _, err) = logq_on(args, MIXED);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("no input line has a field named"),
            "{args:?}: {err}"
        );
        assert!(err.contains(hint), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Found in one line is enough; never looked at (after a false `&&`) is no error.
    let (code, out, err) = logq_on(&["print", "log.level,msg", "--where", "req.ms > 20"], MIXED);
    assert_eq!((code, out.as_str()), (0, "info caf\u{fffd}\n"), "{err}");
    let (code, _, err) = logq_on(&["where", "status == 1 && nosuchfield"], MIXED);
    assert_eq!(code, 1, "{err}");
    // Empty input: nothing was looked for.
    let (code, _, err) = logq_on(&["where", "nosuchfield"], b"");
    assert_eq!(code, 1, "{err}");
}
