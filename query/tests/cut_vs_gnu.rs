//! `logq cut` against the system's GNU cut: same flags, same generated inputs (tabs, commas,
//! CRLF, empty lines, invalid UTF-8, no final newline), byte-identical output and status.

mod common;

use std::process::Command;

use common::*;

const LISTS: [&str; 14] = [
    "1", "2", "1,3", "1-2", "2-", "-2", "1-2,4", "1-3,2-5", "3,1", "1-2,3-4", "5-", "2,2,2", "1-1",
    "4-6",
];

fn compare(args: &[&str], input: &[u8]) {
    let mut gnu = Command::new("cut");
    gnu.env("LC_ALL", "C").args(args);
    let mut ours = logq();
    ours.arg("cut").args(args);
    let (g, o) = (run(gnu, input), run(ours, input));
    assert_eq!(
        show(&o.stdout),
        show(&g.stdout),
        "stdout differs for cut {args:?}; our stderr: {}",
        show(&o.stderr)
    );
    assert_eq!(o.stdout, g.stdout, "bytes differ for cut {args:?}");
    assert_eq!(
        o.status.success(),
        g.status.success(),
        "exit status for cut {args:?}: ours {:?}, GNU {:?}",
        o.status,
        g.status
    );
}

#[test]
fn bytes_and_characters_match_gnu_cut() {
    require("cut");
    for (seed, trailing) in [(1u64, true), (2, false)] {
        let input = edge_text(seed, 50, trailing);
        for list in LISTS {
            for mode in ["-b", "-c"] {
                compare(&[mode, list], &input);
                compare(&[mode, list, "--complement"], &input);
                compare(&[mode, list, "--output-delimiter=|"], &input);
                compare(
                    &[mode, list, "--complement", "--output-delimiter=<>"],
                    &input,
                );
                // An empty output delimiter is NUL.
                compare(&[mode, list, "--output-delimiter="], &input);
            }
        }
    }
}

#[test]
fn fields_match_gnu_cut() {
    require("cut");
    for (seed, trailing) in [(3u64, true), (4, false)] {
        let input = edge_text(seed, 50, trailing);
        for list in LISTS {
            for delim in [None, Some(","), Some(":"), Some(" ")] {
                let mut base = vec!["-f", list];
                if let Some(d) = delim {
                    base.push("-d");
                    base.push(d);
                }
                for extra in [
                    &[][..],
                    &["-s"],
                    &["--complement"],
                    &["--output-delimiter=;"],
                    &["--output-delimiter="],
                    &["-s", "--complement", "--output-delimiter=--"],
                ] {
                    let mut args = base.clone();
                    args.extend_from_slice(extra);
                    compare(&args, &input);
                }
            }
        }
    }
}

#[test]
fn bad_lists_fail_like_gnu_cut() {
    require("cut");
    for args in [
        &["-f", "0"][..],
        &["-b", "3-1"],
        &["-c", "-"],
        &["-f", "x"],
        &["-b", "1", "-s"],
        &["-b", "1", "-d", ","],
        &["-d", ",,", "-f", "1"],
        &["-b", "99999999999999999999"],
        &["-f", "1-18446744073709551615"],
        &["-c", "18446744073709551615-"],
    ] {
        compare(args, b"a,b\n");
    }
}

#[test]
fn whitespace_fields_are_awk_fields() {
    // awk '{print $2, $4}' semantics: runs of blanks separate, leading blanks ignored.
    let input = b"  a   b\tc  d  \n\none\n x\t\ty z w\n";
    let out = run(
        {
            let mut c = logq();
            c.args(["cut", "-w", "-f", "2,4"]);
            c
        },
        input,
    );
    assert_eq!(show(&out.stdout), "b d\n\n\ny w\n");
}
