//! `logq grep` against the system's GNU grep: the same flags on the same generated inputs
//! must give byte-identical output and the same exit status. GNU grep runs as
//! `LC_ALL=C.UTF-8 grep -a` (logq never suppresses "binary" input); both get `-E` here
//! (the patterns below are extended regexes) unless `-F`. `gnu_differential.rs` covers BRE,
//! errors and odd inputs.

mod common;

use std::process::Command;

use common::*;

const PATTERNS: [&str; 10] = [
    "foo", "fo+", "^bar", "baz\r?$", "[0-9]+", "foo|345", "x", "Foo", "a_b", "GET",
];

const FLAGS: [&[&str]; 36] = [
    &[],
    &["-i"],
    &["-v"],
    &["-F"],
    &["-w"],
    &["-x"],
    &["-c"],
    &["-m", "2"],
    &["-n"],
    &["-o"],
    &["-A", "1"],
    &["-B", "2"],
    &["-C", "1"],
    &["-n", "-C", "2"],
    &["-l"],
    &["-H"],
    &["-h"],
    &["-c", "-v"],
    &["-o", "-i"],
    &["-m", "1", "-A", "2"],
    &["-v", "-n"],
    &["-w", "-o"],
    &["-n", "-o"],
    &["-i", "-w", "-n"],
    &["--color=always"],
    &["--color=always", "-n", "-H", "-A", "1"],
    &["-q"],
    &["-q", "-v"],
    // Context given as 0, and context with -o: GNU still separates groups with `--`.
    &["-A", "0"],
    &["-B", "0"],
    &["-n", "-C", "0"],
    &["-o", "-A", "1"],
    &["-o", "-B", "1"],
    &["-o", "-v", "-A", "1"],
    &["--color=always", "-v", "-A", "1"],
    &["-a"],
];

fn compare(args: &[String], files: &[String], stdin: &[u8]) {
    let mut gnu = Command::new("grep");
    gnu.env("LC_ALL", "C.UTF-8").arg("-a");
    let syntax: &[&str] = if args.iter().any(|a| a == "-F") {
        &[]
    } else {
        &["-E"]
    };
    gnu.args(syntax).args(args).args(files);
    let mut ours = logq();
    ours.arg("grep").args(syntax).args(args).args(files);
    let (g, o) = (run(gnu, stdin), run(ours, stdin));
    assert_eq!(
        show(&o.stdout),
        show(&g.stdout),
        "stdout differs for grep {args:?} {files:?}; stderr: {}",
        show(&o.stderr)
    );
    assert_eq!(
        o.stdout, g.stdout,
        "bytes differ for grep {args:?} {files:?}"
    );
    assert_eq!(
        o.status.code(),
        g.status.code(),
        "exit status for grep {args:?}"
    );
}

#[test]
fn flags_and_patterns_match_gnu_grep_on_stdin() {
    require("grep");
    for (seed, trailing) in [(1u64, true), (2, false), (3, true)] {
        let input = edge_text(seed, 60, trailing);
        for flags in FLAGS {
            for pat in PATTERNS {
                let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
                args.push(pat.to_string());
                compare(&args, &[], &input);
            }
        }
    }
}

#[test]
fn several_files_get_prefixes_and_separators_like_gnu_grep() {
    require("grep");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, trailing) in [(0u64, true), (1, false), (2, true)] {
        let p = dir.path().join(format!("f{i}.log"));
        write(&p, &edge_text(10 + i, 40, trailing));
        files.push(p.display().to_string());
    }
    // An empty file and one without any match.
    let empty = dir.path().join("empty.log");
    write(&empty, b"");
    files.push(empty.display().to_string());
    for flags in FLAGS {
        for pat in ["foo", "345", "nomatchanywhere"] {
            let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
            args.push(pat.to_string());
            compare(&args, &files, b"");
        }
    }
}

#[test]
fn repeated_e_patterns_and_empty_pattern() {
    require("grep");
    let input = edge_text(7, 50, true);
    for args in [
        vec!["-e", "foo", "-e", "12"],
        vec!["-n", "-e", "^$"],
        vec!["-c", "-e", ""],
        vec!["-v", "-e", "foo", "-e", "bar"],
        vec!["-o", "-e", "fo", "-e", "oba"],
        vec!["-x", "-e", "foo", "-e", "x"],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        compare(&args, &[], &input);
    }
}

#[test]
fn gzip_input_is_searched_like_zcat_grep() {
    require("grep");
    let dir = tempfile::tempdir().unwrap();
    let plain = edge_text(21, 80, true);
    // Two concatenated gzip members, as `cat a.gz b.gz` makes.
    let mut gz = gzip(&plain[..plain.len() / 2]);
    gz.extend(gzip(&plain[plain.len() / 2..]));
    let p = dir.path().join("a.log.gz");
    write(&p, &gz);
    let ours = run(
        {
            let mut c = logq();
            c.args(["grep", "-n", "foo", p.to_str().unwrap()]);
            c
        },
        b"",
    );
    let gnu = run(
        {
            let mut c = Command::new("grep");
            c.env("LC_ALL", "C.UTF-8").args(["-a", "-n", "foo"]);
            c
        },
        &plain,
    );
    assert_eq!(show(&ours.stdout), show(&gnu.stdout));
}
