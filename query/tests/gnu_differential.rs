//! The differential comparison: `logq grep` and `logq cut` against the system's GNU grep
//! and cut (Debian's), in `LC_ALL=C.UTF-8`, on a generated corpus of the inputs line tools
//! get wrong: clean text, CRLF, NUL bytes, invalid UTF-8, non-ASCII letters, long lines, no
//! final newline, byte-order marks, several files, stdin, and files split into parallel
//! pieces. Every case must give byte-identical stdout and the same exit status; all
//! mismatches are listed before the test fails.

mod common;

use std::process::Command;

use common::*;

/// The corpus: (name, bytes).
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let clean = b"GET /x 200\nfoo bar baz\nfoobar foo\n\nPOST /login 500\nab abc abcd\n".to_vec();
    let crlf = b"foo\r\nbar baz\r\n\r\nfoo bar\r\n".to_vec();
    let nul = b"a\0b foo\n\0\nfoo\0bar\nx\0\0y\n".to_vec();
    let invalid = b"caf\xc3 foo\n\xff\xfefoo\nx\xffy ok\n\xc3\xa9t\xc3\xa9 \xe2\x82\n".to_vec();
    let letters = "CAFÉ café ÀB ß ٣ 3 a\nÉcole élève\nnaïve NAÏVE x_y\n\u{a0}sp ace\tTab\n"
        .as_bytes()
        .to_vec();
    let mut long = Vec::new();
    for i in 0..3 {
        long.extend(b"abc foo ".repeat(9000 + i));
        long.extend(b"end\n");
    }
    let no_final = b"foo\nbar\nlast foo".to_vec();
    let bom16le = b"\xff\xfeGET /x 200\nfoo\n".to_vec();
    let bom16be = b"\xfe\xffGET foo\nfoo\n".to_vec();
    let bom8 = b"\xef\xbb\xbffoo\nbar\n".to_vec();
    vec![
        ("clean", clean),
        ("crlf", crlf),
        ("nul", nul),
        ("invalid", invalid),
        ("letters", letters),
        ("long", long),
        ("no-final-newline", no_final),
        ("bom16le", bom16le),
        ("bom16be", bom16be),
        ("bom8", bom8),
        ("mixed", edge_text(5, 40, false)),
    ]
}

/// Basic (default) patterns, GNU-only syntax and errors included.
const BRE: &[&str] = &[
    "foo",
    "fo\\+",
    "o\\{2\\}",
    "^bar",
    "baz$",
    "[0-9]\\+",
    "foo\\|ab",
    "a*",
    "\\(ab\\)*c",
    "[[:upper:]]\\+",
    "[[:alpha:]]*",
    "[[:alnum:]]",
    "[[:digit:]]",
    "[[:space:]]",
    "[[:punct:]]",
    "\\w\\+",
    "\\W",
    "\\bfoo\\b",
    "\\<ba",
    "é",
    ".",
    "[^a-z ]",
    "a.b",
    "*a",
    "[]a]",
    "x\\|*",
    "a+",
    "[[:digits:]]",
    "[[:space]]",
    "[:space:]",
    "\\(a",
    "a\\)",
    "[z-a]",
    "a\\{1",
    "a\\",
];

/// Extended (`-E`) patterns.
const ERE: &[&str] = &[
    "foo|foobar",
    "fo+|f",
    "(a|ab)(c|bcd)",
    "[[:alnum:]]+",
    "o{1,2}",
    "a{1",
    "(a",
    "a)",
    "a{2,1}",
    "ab|abc|abcd",
    "(foo|foob)(ar)?",
    "^$",
    "",
];

const FIXED: &[&str] = &["foo", "a.b", "foo\nab", "", "ba"];

/// The patterns run on every input.
const READING: &[&str] = &[
    "foo",
    "^bar",
    "baz$",
    ".",
    "a*",
    "[^a-z ]",
    "foo|foobar",
    "^$",
    "",
];

const FLAGS: &[&[&str]] = &[
    &[],
    &["-i"],
    &["-v"],
    &["-w"],
    &["-x"],
    &["-c"],
    &["-o"],
    &["-n", "-b"],
    &["-o", "-b"],
    &["-w", "-o"],
    &["-i", "-o"],
    &["--color=always"],
    &["-m", "1", "-n"],
    &["-C", "1", "-n"],
];

struct Diff {
    mismatches: Vec<String>,
    cases: usize,
}

impl Diff {
    fn compare(&mut self, tool: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) {
        self.cases += 1;
        let mut gnu = Command::new(tool);
        gnu.env("LC_ALL", "C.UTF-8");
        if tool == "grep" {
            gnu.arg("-a");
        }
        gnu.args(args);
        let mut ours = logq();
        ours.env("LC_ALL", "C.UTF-8").arg(tool).args(args);
        for (k, v) in env {
            ours.env(k, v);
        }
        let (g, o) = (run(gnu, stdin), run(ours, stdin));
        if g.stdout != o.stdout || g.status.code() != o.status.code() {
            self.mismatches.push(format!(
                "{tool} {args:?} on {:?}: exit gnu {:?} logq {:?}\n  gnu:  {:?}\n  logq: {:?}\n  logq stderr: {}",
                show(&stdin[..stdin.len().min(60)]),
                g.status.code(),
                o.status.code(),
                clip(&g.stdout),
                clip(&o.stdout),
                show(&o.stderr).trim(),
            ));
        }
    }

    fn check(self) {
        let n = self.mismatches.len();
        eprintln!("{} cases compared with GNU, {n} differ", self.cases);
        let show_all = std::env::var_os("LOGQ_DIFF_ALL").is_some();
        for m in self
            .mismatches
            .iter()
            .take(if show_all { usize::MAX } else { 40 })
        {
            eprintln!("{m}");
        }
        assert_eq!(n, 0, "{n} of {} cases differ from GNU", self.cases);
    }
}

fn clip(b: &[u8]) -> String {
    show(&b[..b.len().min(300)])
}

/// Patterns whose compilation is slow in a debug build (a repeated Unicode class): run on
/// fewer inputs and flags, to keep the suite fast.
const HEAVY: &[&str] = &["[[:alpha:]]*", "[[:upper:]]\\+", "\\w\\+", "[[:alnum:]]+"];

#[test]
fn grep_matches_gnu_grep_on_the_corpus() {
    require("grep");
    let mut d = Diff {
        mismatches: Vec::new(),
        cases: 0,
    };
    let corpus = corpus();
    let syntaxes: [(&[&str], &[&str]); 3] = [(&[], BRE), (&["-E"], ERE), (&["-F"], FIXED)];
    for (name, input) in &corpus {
        for (syntax, patterns) in syntaxes {
            for pat in patterns {
                // Every pattern plainly and with all flags on the mixed input, with a few
                // flags on the non-ASCII ones; the inputs that test reading (CRLF, NUL,
                // BOMs, long lines) with the patterns that tell lines apart.
                let heavy = HEAVY.contains(pat);
                let flag_sets: &[&[&str]] = match *name {
                    "mixed" if !heavy => FLAGS,
                    "letters" => &[&[], &["-o"], &["-i", "-o"], &["-w"]],
                    "invalid" => &[&["-o"], &["-w", "-c"]],
                    _ if heavy || !READING.contains(pat) => &[],
                    _ => &[&["-n"], &["-o", "-b"]],
                };
                for flags in flag_sets {
                    let mut args: Vec<&str> = syntax.to_vec();
                    args.extend_from_slice(flags);
                    args.extend(["-e", pat]);
                    d.compare("grep", &args, input, &[]);
                }
            }
        }
    }
    d.check();
}

#[test]
fn back_references_are_refused_in_one_line() {
    let (code, out, err) = logq_out(&["grep", "\\(a\\)\\1"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("back-references are not supported"), "{err}");
}

#[test]
fn grep_flags_and_several_files_match_gnu_grep() {
    require("grep");
    let mut d = Diff {
        mismatches: Vec::new(),
        cases: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, input) in corpus() {
        let p = dir.path().join(name);
        write(&p, &input);
        files.push(p.display().to_string());
    }
    let f: Vec<&str> = files.iter().map(String::as_str).collect();
    let missing = dir.path().join("missing").display().to_string();
    let pats = dir.path().join("patterns");
    write(&pats, b"foo\nab\n");
    let empty_pats = dir.path().join("empty-patterns");
    write(&empty_pats, b"");
    let (pats, empty_pats) = (pats.to_str().unwrap(), empty_pats.to_str().unwrap());
    let cases: &[&[&str]] = &[
        &["foo"],
        &["-c", "foo"],
        &["-l", "foo"],
        &["-L", "foo"],
        &["-lZ", "foo"],
        &["-cZ", "foo"],
        &["-h", "-n", "foo"],
        &["-H", "-b", "-o", "fo*"],
        &["-T", "-n", "foo"],
        &["-q", "foo"],
        &["-s", "foo"],
        &["-f", pats],
        &["-c", "-f", pats],
        &["-c", "-f", empty_pats],
        &["-c", "-v", "-f", empty_pats],
        &["-n", "-n", "foo"],
        &["-C", "2", "-C", "0", "foo"],
        &["-1", "-n", "baz"],
        &["-E", "-E", "fo+"],
        &["-E", "-G", "fo+"],
        &["-z", "-c", "foo"],
        &["-z", "-o", "fo*"],
        &["--label=LBL", "-H", "foo"],
    ];
    for args in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(&f);
        d.compare("grep", &all, b"", &[]);
        // One file, and stdin.
        let mut one: Vec<&str> = args.to_vec();
        one.push(f[0]);
        d.compare("grep", &one, b"", &[]);
        d.compare("grep", args, &corpus()[3].1, &[]);
    }
    // A missing file among others: reported, the others still searched, exit 2.
    for args in [&["foo"][..], &["-s", "-c", "foo"], &["-q", "foo"]] {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([missing.as_str(), f[0]]);
        d.compare("grep", &all, b"", &[]);
    }
    d.check();
}

#[test]
fn split_pieces_match_gnu_grep_and_cut() {
    require("grep");
    let mut d = Diff {
        mismatches: Vec::new(),
        cases: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    // A file cut into 4 KiB pieces, several of which start with a byte-order mark.
    let mut big = Vec::new();
    let mut r = fastrand::Rng::with_seed(11);
    while big.len() < 64 * 1024 {
        let boms: [&[u8]; 4] = [b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b""];
        big.extend(boms[r.usize(..4)]);
        big.extend(edge_text(r.u64(..), 3, true));
    }
    let p = dir.path().join("big.log");
    write(&p, &big);
    let f = p.to_str().unwrap();
    let env = [("LOGQ_PIECE_BYTES", "4096")];
    for args in [
        &["grep", "foo", f][..],
        &["grep", "-v", "foo", f],
        &["grep", "-o", "fo*", f],
        &["grep", "-E", "^.", f],
        &["cut", "-c", "1-3", f],
        &["cut", "-d", ",", "-f", "2", f],
    ] {
        d.compare(args[0], &args[1..], b"", &env);
    }
    d.check();
}

#[test]
fn cut_matches_gnu_cut_on_the_corpus() {
    require("cut");
    let mut d = Diff {
        mismatches: Vec::new(),
        cases: 0,
    };
    let cases: &[&[&str]] = &[
        &["-b", "1-3"],
        &["-c", "2,4-"],
        &["-b", "-2,5-6", "--output-delimiter=|"],
        &["-f", "1", "-d", " "],
        &["-f", "2-", "-d", " ", "-s"],
        &["-f", "1,3", "-d", " ", "--complement"],
        &["-f", "1", "-d", "\t"],
        &["-z", "-b", "1-2"],
        &["-z", "-f", "1", "-d", " "],
        &["-n", "-b", "1-3"],
        &["-f", "1,,3", "-d", " "],
        &["-f", "0"],
        &["-b", "3-1"],
        &["-f", "1", "-d", "ab"],
        &["-b", "1", "-d", " "],
        &[],
        &["-f", "x"],
        &["-b", "1", "-b", "2"],
        &["-d", " ", "-d", ",", "-f", "1"],
    ];
    for (_, input) in corpus() {
        for args in cases {
            d.compare("cut", args, &input, &[]);
        }
    }
    d.check();
}
