//! Output polish: the aligned table by display width with control characters escaped, plain
//! one-line warnings, labelled plot axes with readable ticks.

mod common;

use common::*;

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
fn table_cells_align_by_display_width_and_escape_control_characters() {
    let input = "中文 c\nplain c\n\x1b[31mred c\nx\x07y c\n".as_bytes();
    let (code, out, err) = logq_on(&["count", "-g", "$1,$2", "-O", "table"], input);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "$1           $2  count");
    // Each `c` column starts at the same terminal column: 中文 is 4 columns wide.
    let col = |l: &str| unicode_col(&l[..l.find("  c").unwrap()]);
    assert!(lines[1..].iter().all(|l| col(l) == 11), "{out}");
    assert!(out.contains("\\x1b[31mred"), "{out}");
    assert!(out.contains("x\\x07y"), "{out}");
}

/// Display columns of `s` (CJK ideographs are two wide; everything here else one).
fn unicode_col(s: &str) -> usize {
    s.chars()
        .map(|c| {
            if ('\u{4e00}'..='\u{9fff}').contains(&c) {
                2
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn warnings_are_plain_lines() {
    let (code, _, err) = logq_on(&["count", "--by", "minute"], b"no time here\n");
    assert_eq!(code, 0);
    assert_eq!(
        err,
        "logq: warning: 1 lines without a recognisable time were not counted\n"
    );
}

#[test]
fn plot_axes_are_labelled_with_readable_ticks() {
    let log = (0..10)
        .map(|m| {
            format!(
                "10.0.0.1 - - [23/Nov/2026:06:{m:02}:00 +0000] \"GET / HTTP/1.1\" 200 {} \"-\" \"x\"\n",
                m * 20_000
            )
        })
        .collect::<String>();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let svg_s = svg.to_str().unwrap();
    let (code, _, err) = logq_on(
        &[
            "stats",
            "sum(bytes)",
            "--by",
            "minute",
            "--tz",
            "+01:00",
            "--plot",
            svg_s,
        ],
        log.as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let labels: Vec<&str> = text
        .split("</text>")
        .filter_map(|t| t.rsplit('>').next())
        .map(str::trim)
        .collect();
    for want in ["sum(bytes)", "time (+01:00)", "07:00", "100k"] {
        assert!(labels.contains(&want), "no label {want:?} in {labels:?}");
    }
    assert!(!labels.iter().any(|l| l.contains("100000")), "{labels:?}");
}
