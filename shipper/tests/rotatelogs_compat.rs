//! `ship-rotatelogs` against Debian's `rotatelogs` (apache2-utils): for the same arguments,
//! input and clock, both must leave the same files with the same contents (and the same hard
//! links, `-p` calls and `-e` output).
//!
//! Both run under `faketime` (libfaketime) started at the same fake instant, and input is fed
//! on a schedule whose writes fall at least ~200 ms away from any second or interval boundary,
//! so scheduling jitter cannot move a write across one. scripts/test installs both tools;
//! without them these tests say so loudly and pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const OURS: &str = env!("CARGO_BIN_EXE_ship-rotatelogs");
const APACHE: &str = "/usr/bin/rotatelogs";

fn tools_present() -> bool {
    let faketime = Command::new("faketime")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !faketime || !Path::new(APACHE).exists() {
        eprintln!(
            "\n*** SKIPPING rotatelogs compatibility test: needs faketime and {APACHE} \
             (apt-get install faketime apache2-utils; scripts/test does this) ***\n"
        );
        return false;
    }
    true
}

#[derive(Clone)]
struct Case {
    name: &'static str,
    args: Vec<String>,
    tz: &'static str,
    /// libfaketime start time (`@` + local time in `tz`); the clock then runs normally.
    start: &'static str,
    /// (milliseconds after start, bytes to write)
    feed: Vec<(u64, Vec<u8>)>,
    /// When stdin is closed.
    end_ms: u64,
    /// Files present before the run.
    setup: Vec<(&'static str, &'static [u8])>,
    /// The run is expected to leave a single file (-t; a DST fall-back hour).
    one_file: bool,
}

impl Case {
    fn new(name: &'static str, args: &[&str], start: &'static str) -> Case {
        Case {
            name,
            args: args.iter().map(|s| s.to_string()).collect(),
            tz: "UTC",
            start,
            feed: vec![(200, b"first\n".to_vec()), (2700, b"second\n".to_vec())],
            end_ms: 3000,
            setup: Vec::new(),
            one_file: false,
        }
    }
}

/// What a run left behind: file name -> contents, the groups of names that are hard links of
/// one file, and the sorted lines a `-p` program recorded.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    files: BTreeMap<String, Vec<u8>>,
    links: Vec<Vec<String>>,
    prog_calls: Vec<String>,
    /// What `-e` echoed to stdout.
    echoed: Vec<u8>,
}

fn run(bin: &str, case: &Case, dir: &Path) -> Outcome {
    for (name, data) in &case.setup {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let mut child = Command::new("faketime")
        .arg("-f")
        .arg(case.start)
        .arg(bin)
        .args(&case.args)
        .current_dir(dir)
        .env("TZ", case.tz)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn faketime");
    let t0 = Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    for (at, data) in &case.feed {
        let due = t0 + Duration::from_millis(*at);
        thread::sleep(due.saturating_duration_since(Instant::now()));
        stdin.write_all(data).unwrap();
    }
    thread::sleep(
        (t0 + Duration::from_millis(case.end_ms)).saturating_duration_since(Instant::now()),
    );
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}: {bin} did not exit after stdin closed", case.name);
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    // Small: fits in the pipe, so reading after the exit cannot deadlock.
    let mut echoed = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut echoed).unwrap();
    assert!(
        status.success(),
        "{}: {bin} failed: {status}: {stderr}",
        case.name
    );
    // -p programs are not waited for: give them a moment.
    if case.args.iter().any(|a| a == "-p") {
        thread::sleep(Duration::from_millis(300));
    }
    Outcome {
        echoed,
        ..snapshot(dir)
    }
}

fn snapshot(dir: &Path) -> Outcome {
    let mut files = BTreeMap::new();
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut prog_calls = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = rel.join(e.file_name());
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(name);
                continue;
            }
            let key = name.to_string_lossy().into_owned();
            let data = std::fs::read(e.path()).unwrap();
            if key == "p.out" {
                prog_calls = String::from_utf8(data)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                prog_calls.sort();
                continue;
            }
            by_inode.entry(md.ino()).or_default().push(key.clone());
            files.insert(key, data);
        }
    }
    let mut links: Vec<Vec<String>> = by_inode
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    links.sort();
    Outcome {
        files,
        links,
        prog_calls,
        echoed: Vec::new(),
    }
}

fn compare(case: Case) {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, o_dir) = (tmp.path().join("apache"), tmp.path().join("ours"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&o_dir).unwrap();
    let c2 = case.clone();
    let apache = thread::spawn(move || run(APACHE, &c2, &a_dir));
    let ours = run(OURS, &case, &o_dir);
    let apache = apache.join().unwrap();
    // A case that fails to rotate tests little: check the run did what the case is about.
    let rotated = if case.name == "truncate" {
        apache.files.get("tt").map(Vec::as_slice) == Some(b"second\n")
    } else {
        (apache.files.len() == 1) == case.one_file
    };
    assert!(rotated, "{}: unexpected file count: {apache:?}", case.name);
    assert_eq!(
        ours, apache,
        "{}: ship-rotatelogs (left) vs rotatelogs",
        case.name
    );
}

fn prog_script(dir: &Path) -> String {
    let p = dir.join("prog.sh");
    std::fs::write(&p, "#!/bin/sh\necho \"$#|$1|$2\" >> p.out\n").unwrap();
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).unwrap();
    p.to_string_lossy().into_owned()
}

/// Four writes of 12 bytes: at 0.4 s (opens), 0.7 s (over 10 B: rotates within the same
/// second, hence the same name), 1.5 s and 2.5 s (new seconds, new names).
fn size_feed() -> Vec<(u64, Vec<u8>)> {
    [400, 700, 1500, 2500]
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, format!("line-{i}-abcd\n").into_bytes()))
        .collect()
}

fn cases(prog: &str) -> Vec<Case> {
    vec![
        Case::new("time-epoch", &["./access", "60"], "@2026-11-23 08:00:58"),
        Case {
            tz: "America/New_York",
            ..Case::new(
                "time-strftime-local",
                &["-l", "./access.%Y-%m-%d_%H%M%S.%a.%Z", "3600"],
                "@2026-11-23 08:59:58",
            )
        },
        Case {
            tz: "America/New_York",
            ..Case::new(
                "time-epoch-local",
                &["-l", "./access", "3600"],
                "@2026-11-23 08:59:58",
            )
        },
        // -l across DST changes: the offset is looked up at each check, as in rotatelogs.
        Case {
            tz: "America/New_York",
            ..Case::new(
                "dst-spring-forward",
                &["-l", "./access.%Y%m%d-%H%M%S%z", "3600"],
                "@2026-03-08 01:59:58",
            )
        },
        // 01:59:58 EDT, then 01:00:00 EST: local time goes back, so the interval that
        // started at 01:30 lasts until 02:00 EST and nothing rotates (rotatelogs' rule).
        Case {
            tz: "America/New_York",
            one_file: true,
            ..Case::new(
                "dst-fall-back",
                &["-l", "./access.%Y%m%d-%H%M%S%z", "1800"],
                "@2026-11-01 01:59:58",
            )
        },
        Case::new(
            "daily-offset",
            &["./access.%Y%m%d", "86400", "-300"],
            "@2026-11-24 04:59:58",
        ),
        Case {
            feed: size_feed(),
            ..Case::new("size-epoch", &["./big", "10B"], "@2026-11-23 08:00:00")
        },
        Case {
            feed: size_feed(),
            tz: "Europe/Berlin",
            ..Case::new(
                "size-strftime-local",
                &["-l", "./e.%H%M%S", "10B"],
                "@2026-11-23 08:00:00",
            )
        },
        Case {
            feed: vec![
                (400, b"fifteen bytes!\n".to_vec()),
                (550, b"fifteen bytes!\n".to_vec()),
                (700, b"fifteen bytes!\n".to_vec()),
                (2700, b"fifteen bytes!\n".to_vec()),
            ],
            ..Case::new(
                "time-and-size",
                &["./ts", "60", "20B"],
                "@2026-11-23 08:00:58",
            )
        },
        Case {
            feed: (0..7)
                .map(|i| (400 + 150 * i, format!("line{i:02}-xxxxxxx\n").into_bytes()))
                .collect(),
            end_ms: 1600,
            setup: vec![("n", b"OLD\n")],
            ..Case::new(
                "circular",
                &["-n", "3", "./n", "10B"],
                "@2026-11-23 08:00:00",
            )
        },
        Case {
            feed: (0..3)
                .map(|i| (400 + 150 * i, format!("line{i:02}-xxxxxxx\n").into_bytes()))
                .collect(),
            end_ms: 1000,
            setup: vec![("t.00", b"OLD\n"), ("t.01", b"OLD\n")],
            ..Case::new(
                "truncate-rotated",
                &["-T", "./t.%M", "10B"],
                "@2026-11-23 08:00:00",
            )
        },
        Case {
            setup: vec![("tt", b"OLD\n")],
            ..Case::new("truncate", &["-t", "./tt", "60"], "@2026-11-23 08:00:58")
        },
        Case::new(
            "link-program-echo",
            &["-e", "-L", "./current", "-p", prog, "./L", "60"],
            "@2026-11-23 08:00:58",
        ),
        Case::new(
            "create-dirs",
            &["-D", "./sub/%Y/%m/x.%d-%H%M", "60"],
            "@2026-11-23 08:00:58",
        ),
        Case {
            feed: Vec::new(),
            end_ms: 2500,
            ..Case::new("create-empty", &["-c", "./c", "1"], "@2026-11-23 08:00:58")
        },
        Case {
            feed: vec![(200, b"x\n".to_vec())],
            end_ms: 2600,
            ..Case::new(
                "create-empty-forced",
                &["-c", "-f", "./cf", "2"],
                "@2026-11-23 08:00:57",
            )
        },
    ]
}

#[test]
fn same_files_as_debian_rotatelogs() {
    if !tools_present() {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let prog = prog_script(scripts.path());
    // All cases at once: each takes ~3 s of wall time, mostly sleeping.
    let handles: Vec<_> = cases(&prog)
        .into_iter()
        .map(|c| {
            let name = c.name;
            (name, thread::spawn(move || compare(c)))
        })
        .collect();
    let mut failed = Vec::new();
    for (name, h) in handles {
        if h.join().is_err() {
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "cases differing from rotatelogs: {failed:?}"
    );
}
