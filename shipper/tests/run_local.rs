//! `ship run --local`: a daemon's output into rotated local files, no aggregator involved.

use std::process::Command;

#[test]
fn both_streams_land_whole_in_rotated_local_files_and_the_status_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("logs/app.log");
    let out = Command::new(env!("CARGO_BIN_EXE_ship"))
        .args(["run", "--local"])
        .arg(&pattern)
        .args(["--rotate", "20K", "--", "sh", "-c"])
        .arg(
            "i=0; while [ $i -lt 3000 ]; do echo \"out $i padding padding\"; \
             echo \"err $i\" >&2; i=$((i+1)); done; printf 'no newline'; exit 5",
        )
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // (Size rotation within one second reuses the epoch-suffixed name, as rotatelogs does.)
    assert!(!files.is_empty());
    let mut outs = Vec::new();
    let mut errs = Vec::new();
    let mut tail = 0;
    for f in &files {
        let text = String::from_utf8(std::fs::read(f).unwrap()).unwrap();
        for line in text.split_inclusive('\n') {
            if let Some(n) = line.strip_prefix("out ") {
                assert!(line.ends_with(" padding padding\n"), "whole line: {line:?}");
                outs.push(n.split(' ').next().unwrap().parse::<u32>().unwrap());
            } else if let Some(n) = line.strip_prefix("err ") {
                errs.push(n.trim_end().parse::<u32>().unwrap());
            } else {
                // Written with a newline added once stdout ended, so stderr's next line
                // cannot run into it.
                assert_eq!(line, "no newline\n", "unexpected line in {}", f.display());
                tail += 1;
            }
        }
    }
    assert_eq!(
        outs,
        (0..3000).collect::<Vec<_>>(),
        "stdout complete and in order"
    );
    assert_eq!(
        errs,
        (0..3000).collect::<Vec<_>>(),
        "stderr complete and in order"
    );
    assert_eq!(tail, 1, "the last partial line is kept");
}

#[test]
fn run_needs_a_category_or_a_local_pattern() {
    let out = Command::new(env!("CARGO_BIN_EXE_ship"))
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--local"));
}
