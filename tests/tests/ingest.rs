//! End to end: `ship` → `scribed` → category files, with real processes on loopback.

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline_tests::{
    category_files, get_counter, read_category, ship, wait_for, RawConn, Rng, Scribed,
};
use scribe_protocol::scribe::{decode_log_reply, encode_log_call};
use scribe_protocol::{HeaderStyle, LogEntry, ResultCode};

/// 200k lines of mixed content: tabs, invalid UTF-8, NUL, CR, empty lines, one 1 MiB line.
fn generated_input(lines: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::with_seed(seed);
    let mut out = Vec::with_capacity(lines * 70 + (1 << 20));
    for i in 0..lines {
        if i == lines / 2 {
            out.extend(std::iter::repeat_n(b'M', 1 << 20));
            out.push(b'\n');
            continue;
        }
        match rng.u64(..10) {
            0 => out.extend_from_slice(b"\xff\xfe invalid utf8 \xc3\x28 here"),
            1 => out.extend_from_slice(b"tab\tseparated\tfields\t42"),
            2 => {}
            3 => out.extend_from_slice(b"nul\0byte and cr\r"),
            _ => {
                out.extend_from_slice(
                    format!("127.0.0.{} - - [23/Nov/2026:06:{:02}:00 +0000] \"GET /p/{i} HTTP/1.1\" 200 {}", rng.u64(..255), i % 60, rng.u64(..99999))
                        .as_bytes(),
                );
            }
        }
        out.push(b'\n');
    }
    out
}

/// Counts messages in a file under scribed's framing (one per `\n`).
fn newlines(p: &Path) -> usize {
    std::fs::read(p)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[test]
fn shipped_file_is_stored_byte_for_byte_across_size_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let max_size: u64 = 1 << 20;
    let server = Scribed::start(&data, &["--max-size", "1M"]);
    let input = generated_input(200_000, 7);

    let out = ship(&server.addr, "apache.access", &input, &[]);
    assert!(
        out.status.success(),
        "ship failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let stored = read_category(&data, "apache.access");
    assert_eq!(stored.len(), input.len());
    assert!(stored == input, "stored bytes differ from the input");

    let files = category_files(&data, "apache.access");
    assert!(
        files.len() > 5,
        "1 MiB rotation gave only {} files",
        files.len()
    );
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(
            size <= max_size || newlines(f) == 1,
            "{} is {size} bytes with several messages",
            f.display()
        );
    }
    let current = std::fs::read_link(data.join("apache.access/apache.access_current")).unwrap();
    assert_eq!(
        Path::new(current.file_name().unwrap()),
        Path::new(files.last().unwrap().file_name().unwrap()),
        "_current must point at the newest file"
    );
    assert!(current.is_relative(), "_current is a relative link");
    assert_eq!(
        get_counter(&server.addr, "apache.access:received good"),
        200_000
    );
    assert!(server.stop().success(), "scribed exits 0 on SIGTERM");
}

#[test]
fn restart_appends_to_the_newest_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first: Vec<u8> = (0..1000)
        .flat_map(|i| format!("first {i}\n").into_bytes())
        .collect();
    let second: Vec<u8> = (0..1000)
        .flat_map(|i| format!("second {i}\n").into_bytes())
        .collect();

    let server = Scribed::start(&data, &["--max-size", "4K"]);
    assert!(ship(&server.addr, "web", &first, &[]).status.success());
    assert!(server.stop().success());
    let files_before = category_files(&data, "web");
    let newest = files_before.last().unwrap().clone();
    let newest_len = std::fs::metadata(&newest).unwrap().len();
    assert!(newest_len < 4096);

    let server = Scribed::start(&data, &["--max-size", "4K"]);
    assert!(ship(&server.addr, "web", &second, &[]).status.success());
    assert!(server.stop().success());

    let mut want = first.clone();
    want.extend_from_slice(&second);
    assert!(read_category(&data, "web") == want);
    // The newest file of the first run was continued, not abandoned.
    assert!(std::fs::metadata(&newest).unwrap().len() > newest_len);
    let files_after = category_files(&data, "web");
    assert_eq!(files_after[..files_before.len()], files_before[..]);
}

#[test]
fn hostile_categories_are_dropped_and_cannot_escape_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let entry = |c: &[u8], m: &[u8]| LogEntry {
        category: bytes::Bytes::copy_from_slice(c),
        message: bytes::Bytes::copy_from_slice(m),
    };
    let batch = vec![
        entry(b"good", b"one"),
        entry(b"../escape", b"evil"),
        entry(b"..", b"evil"),
        entry(b".", b"evil"),
        entry(b"a/b", b"evil"),
        entry(b"/tmp/abs", b"evil"),
        entry(b"nul\0cat", b"evil"),
        entry(b"", b"blank"),
        entry(b"good", b"two"),
    ];
    let mut conn = RawConn::connect(&server.addr);
    let reply = conn.call(&encode_log_call(HeaderStyle::Strict, &batch));
    assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok));
    assert_eq!(read_category(&data, "good"), b"one\ntwo\n");

    let mut entries: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["data", "data.log", "data.ready"]);
    let mut in_data: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_data.sort();
    assert_eq!(in_data, [".scribed+lock", "good"]);
    assert_eq!(get_counter(&server.addr, "scribe_overall:received bad"), 6);
    assert_eq!(
        get_counter(&server.addr, "scribe_overall:received blank category"),
        1
    );
    assert_eq!(get_counter(&server.addr, "good:received good"), 2);
}

#[test]
fn several_shippers_on_several_categories_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &["--max-size", "256K"]);
    let inputs: Vec<(String, Vec<u8>)> = (0..6)
        .map(|c| {
            let cat = format!("cat{c}.log");
            let body = (0..20_000)
                .flat_map(|i| format!("{cat} line {i} \u{e9}\t{}\n", i * c).into_bytes())
                .collect();
            (cat, body)
        })
        .collect();
    std::thread::scope(|s| {
        for (cat, body) in &inputs {
            let addr = &server.addr;
            s.spawn(move || {
                let out = ship(addr, cat, body, &["--batch-lines", "500"]);
                assert!(
                    out.status.success(),
                    "{cat}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
        }
    });
    for (cat, body) in &inputs {
        assert!(read_category(&data, cat) == *body, "{cat} differs");
    }
}

#[test]
fn ship_fails_clearly_when_nothing_listens() {
    // Bind then drop a listener to find a port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = ship(
        &format!("127.0.0.1:{port}"),
        "c",
        b"a\nb\nc\n",
        &["--timeout", "1s"],
    );
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0 lines delivered, 3 lines read but not delivered"),
        "{err}"
    );
}

#[test]
fn overlong_line_stops_ship_before_anything_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let mut input = b"one\ntwo\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2000));
    input.extend_from_slice(b"\nafter\n");
    let out = ship(&server.addr, "c", &input, &["--max-line", "1000"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3 "), "{err}");
    assert_eq!(read_category(&data, "c"), b"one\ntwo\n");
}

#[test]
fn last_line_without_newline_is_shipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let out = ship(&server.addr, "c", b"first\nunterminated", &[]);
    assert!(out.status.success());
    // scribed frames a message that lacks a newline with one.
    assert_eq!(read_category(&data, "c"), b"first\nunterminated\n");
}

#[test]
fn trickling_input_is_shipped_by_linger_not_held_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    let mut child = std::process::Command::new(pipeline_tests::bin("ship"))
        .args(["--to", &server.addr, "--linger", "20ms", "slow"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(b"early line\n").unwrap();
    stdin.flush().unwrap();
    // The line must arrive while ship's input is still open.
    wait_for(Duration::from_secs(10), "the trickled line", || {
        read_category(&data, "slow") == b"early line\n"
    });
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn unwritable_store_answers_try_later_and_ship_retries_until_it_can() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::start(&data, &[]);
    // A plain file where the category directory must go: every write fails (as on a dead or
    // full disk), whatever the privileges the test runs with.
    std::fs::write(data.join("blocked"), b"").unwrap();
    let input: Vec<u8> = (0..5000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let addr = server.addr.clone();
    let shipper = std::thread::spawn({
        let input = input.clone();
        move || ship(&addr, "blocked", &input, &["--timeout", "60s"])
    });
    wait_for(
        Duration::from_secs(20),
        "scribed to report the failing write",
        || server.log_text().contains("TRY_LATER"),
    );
    assert!(
        !shipper.is_finished(),
        "ship must keep retrying, not give up or succeed"
    );
    std::fs::remove_file(data.join("blocked")).unwrap();
    let out = shipper.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read_category(&data, "blocked") == input);
    assert!(get_counter(&server.addr, "scribe_overall:write errors") > 0);
}

#[test]
fn ship_gives_up_on_time_even_while_its_input_stays_open() {
    use std::io::Write;
    let port = pipeline_tests::free_port();
    let mut child = std::process::Command::new(pipeline_tests::bin("ship"))
        .args(["--to", &format!("127.0.0.1:{port}"), "--timeout", "1s", "c"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `tail -F | ship`: a line, then an input that never ends.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    stdin.flush().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ship did not give up while its input stayed open");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    drop(stdin);
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("0 lines delivered, 1 lines read but not delivered"),
        "{err}"
    );
}

#[test]
fn thousands_of_categories_in_one_batch_do_not_exhaust_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Scribed::launch(
        &data,
        pipeline_tests::Launch {
            nofile: Some(512),
            ..pipeline_tests::Launch::default()
        },
    );
    let batch: Vec<LogEntry> = (0..3000)
        .map(|i| LogEntry {
            category: bytes::Bytes::from(format!("cat{i:04}")),
            message: bytes::Bytes::from(format!("m{i}")),
        })
        .collect();
    let mut conn = RawConn::connect(&server.addr);
    for round in 0..2 {
        let reply = conn.call(&encode_log_call(HeaderStyle::Unversioned, &batch));
        assert_eq!(decode_log_reply(reply), Ok(ResultCode::Ok), "round {round}");
    }
    for i in [0, 1234, 2999] {
        assert_eq!(
            read_category(&data, &format!("cat{i:04}")),
            format!("m{i}\nm{i}\n").into_bytes()
        );
    }
    assert_eq!(get_counter(&server.addr, "scribe_overall:write errors"), 0);
}
