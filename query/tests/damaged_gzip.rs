//! A damaged or truncated gzip file among the inputs: every subcommand reports it (name and
//! compressed byte offset), uses what decoded before the damage, reads the inputs after it,
//! and exits 2 — GNU grep's way with a file it cannot read.

mod common;

use std::path::Path;

use common::*;

/// `n` lines `TAG N` (N from 0), each with a numbered second field.
fn lines(tag: &str, n: usize) -> String {
    (0..n).map(|i| format!("{tag} {i}\n")).collect()
}

/// A category `web` of three files: a good gzip one, one of two gzip members whose second is
/// cut inside its header (only the first member's lines can be read), and the newest, plain.
/// Returns the byte offset at which the damaged file ends.
fn archive_with_a_truncated_member(data: &Path) -> usize {
    let dir = data.join("web");
    std::fs::create_dir_all(&dir).unwrap();
    write(&dir.join("web_00000.gz"), &gzip(lines("a", 3).as_bytes()));
    let mut damaged = gzip(lines("b", 2).as_bytes());
    damaged.extend_from_slice(&gzip(lines("lost", 5).as_bytes())[..5]);
    write(&dir.join("web_00001.gz"), &damaged);
    write(&dir.join("web_00002"), lines("c", 2).as_bytes());
    damaged.len()
}

#[test]
fn every_subcommand_reads_past_a_truncated_gzip_file_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let end = archive_with_a_truncated_member(&data);
    let d = data.to_str().unwrap();
    let all = "a 0\na 1\na 2\nb 0\nb 1\nc 0\nc 1\n";
    let cases: [(&[&str], &str); 6] = [
        (&["grep", "-h", " "], all),
        (&["cut", "-d", " ", "-f", "1"], "a\na\na\nb\nb\nc\nc\n"),
        (&["where", "$2 >= 1"], "a 1\na 2\nb 1\nc 1\n"),
        (&["print", "$1"], "a\na\na\nb\nb\nc\nc\n"),
        (&["count", "--format", "plain"], "count\n7\n"),
        (&["stats", "sum($2)", "--format", "plain"], "sum($2)\n5\n"),
    ];
    let damaged = data.join("web/web_00001.gz");
    let message = format!(
        "logq: {}: damaged gzip data at byte {end}: ",
        damaged.display()
    );
    for (args, want) in cases {
        let mut argv = args.to_vec();
        argv.extend(["--category", "web", "--data-dir", d]);
        let (code, out, err) = logq_out(&argv);
        assert_eq!(out, want, "{args:?}: {err}");
        // GNU cut's status for any failure is 1; the others follow grep (2).
        let status = if args[0] == "cut" { 1 } else { 2 };
        assert_eq!(
            code, status,
            "{args:?}: an unreadable input makes the status {status}"
        );
        assert!(err.starts_with(&message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: reported once: {err}");
    }
}

#[test]
fn grep_prints_what_decoded_before_damage_in_a_listed_file_and_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let text = lines("x", 50_000);
    let good = tmp.path().join("1.log.gz");
    write(&good, &gzip(b"x first\n"));
    // Cut short in the middle of its deflate data, as an interrupted copy leaves it.
    let mut cut = gzip(text.as_bytes());
    cut.truncate(cut.len() / 2);
    let truncated = tmp.path().join("2.log.gz");
    write(&truncated, &cut);
    // Damaged in place: bytes overwritten in the middle.
    let mut bad = gzip(text.as_bytes());
    let mid = bad.len() / 2;
    bad[mid..mid + 16].fill(0xff);
    let corrupt = tmp.path().join("3.log.gz");
    write(&corrupt, &bad);
    let after = tmp.path().join("4.log");
    write(&after, b"x last\n");
    let names = [&good, &truncated, &corrupt, &after].map(|p| p.to_str().unwrap().to_string());
    let mut argv = vec!["grep", "-h", "x"];
    argv.extend(names.iter().map(String::as_str));
    let (code, out, err) = logq_out(&argv);
    assert_eq!(code, 2, "{err}");
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.first(), Some(&"x first"));
    assert_eq!(
        got.last(),
        Some(&"x last"),
        "the file after the damage is read"
    );
    // What each damaged file held before the damage: its first lines, in order.
    let body = &got[1..got.len() - 1];
    let want: Vec<String> = (0..50_000).map(|i| format!("x {i}")).collect();
    assert_eq!(body.first(), Some(&"x 0"));
    let second = body[1..].iter().position(|l| *l == "x 0").unwrap() + 1;
    let (from_cut, from_bad) = body.split_at(second);
    let intact = |part: &[&str]| part.iter().zip(&want).take_while(|(a, b)| *a == *b).count();
    // The truncated file: every line before the cut, the last one possibly partial.
    assert!(
        from_cut.len() > 1000,
        "most of what precedes the cut is read"
    );
    let n = intact(from_cut);
    assert!(
        n >= from_cut.len() - 1,
        "{n} of {} lines intact",
        from_cut.len()
    );
    let last = from_cut[from_cut.len() - 1];
    assert!(want[from_cut.len() - 1].starts_with(last), "{last:?}");
    // The overwritten one: its lines up to the damage (what the decoder makes of the damaged
    // bytes themselves, before it notices, is not defined).
    assert!(
        intact(from_bad) > 1000,
        "most of what precedes the damage is read"
    );
    // Each damaged file reported once (files are read in parallel: in either order), with
    // its name and an offset within it.
    assert_eq!(err.lines().count(), 2, "{err}");
    for (path, len) in [(&names[1], cut.len()), (&names[2], bad.len())] {
        let prefix = format!("logq: {path}: damaged gzip data at byte ");
        let line = err.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("{path} not reported: {err}"));
        let at: usize = line[prefix.len()..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(at <= len, "{line}");
    }
}

#[test]
fn grep_q_that_found_a_match_still_exits_0_despite_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a.gz");
    let mut gz = gzip(b"hit\n");
    gz.extend_from_slice(&[0x1f, 0x8b, 8]);
    write(&p, &gz);
    let (code, out, _) = logq_out(&["grep", "-q", "hit", p.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = logq_out(&["grep", "-c", "hit", p.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
}
