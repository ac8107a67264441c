//! The relay tier with real processes: `ship` → leaf scribed (buffer store: network primary +
//! disk spool) → central scribed (file store). Outages, kills, and a damaged spool.

use std::path::Path;
use std::time::{Duration, Instant};

use pipeline_tests::{
    check_order_no_loss, free_port, get_counter, http_get, leaf_config, metric, read_category,
    ship, wait_for, Launch, Scribed, SlowUpstream,
};

/// A central scribed (default file store) on a fixed address, so it can be restarted there.
fn central_at(data: &Path, addr: &str) -> Scribed {
    Scribed::launch(
        data,
        Launch {
            listen: Some(addr.to_string()),
            ..Launch::default()
        },
    )
}

/// Numbered lines, so order and completeness can be checked line by line.
fn numbered(category: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{category} {i:07} \u{00e9}\tpayload\n").into_bytes())
        .collect()
}

fn leaf_status(leaf: &Scribed) -> serde_like::Status {
    serde_like::Status::parse(&leaf.http_get("/status").1)
}

/// Just enough of `/status` for these tests, read with string search to keep the harness free
/// of a JSON dependency: the leaf's buffer store (not its network primary, whose `spool_bytes`
/// is always 0).
mod serde_like {
    pub struct Status {
        pub spool_bytes_zero: bool,
        pub streaming: bool,
    }
    impl Status {
        pub fn parse(body: &str) -> Status {
            // A store's status is a flat JSON object: from its `kind` to the closing brace.
            let buffer = body
                .find("\"kind\":\"buffer\"")
                .map(|at| &body[at..])
                .and_then(|rest| rest.split('}').next())
                .unwrap_or("");
            Status {
                spool_bytes_zero: buffer.contains("\"spool_bytes\":0,")
                    || buffer.ends_with("\"spool_bytes\":0"),
                streaming: buffer.contains("\"state\":\"streaming\""),
            }
        }
    }
}

#[test]
fn central_outage_while_lines_flow_loses_nothing_and_keeps_order() {
    let tmp = tempfile::tempdir().unwrap();
    let central_port = free_port();
    let central_addr = format!("127.0.0.1:{central_port}");
    let central_data = tmp.path().join("central");
    let central = central_at(&central_data, &central_addr);
    let leaf = Scribed::launch(
        &tmp.path().join("leaf"),
        Launch {
            config: Some(leaf_config(&central_addr, &tmp.path().join("spool"))),
            ..Launch::default()
        },
    );

    let cats = ["web.access", "app.log"];
    let inputs: Vec<Vec<Vec<u8>>> = cats.iter().map(|c| numbered(c, 100_000)).collect();
    let leaf_addr = leaf.addr.clone();
    let shippers: Vec<_> = cats
        .iter()
        .zip(&inputs)
        .map(|(c, lines)| {
            let addr = leaf_addr.clone();
            let body = lines.concat();
            let c = c.to_string();
            std::thread::spawn(move || ship(&addr, &c, &body, &["--batch-lines", "2000"]))
        })
        .collect();

    // Take the central away while lines flow, for a few seconds.
    wait_for(
        Duration::from_secs(30),
        "lines to reach the central",
        || read_category(&central_data, cats[0]).len() > 100_000,
    );
    assert!(central.stop().success());
    std::thread::sleep(Duration::from_secs(3));
    let central = central_at(&central_data, &central_addr);

    for s in shippers {
        let out = s.join().unwrap();
        assert!(
            out.status.success(),
            "ship: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_for(
        Duration::from_secs(60),
        "the leaf to drain its spool",
        || {
            let st = leaf_status(&leaf);
            st.spool_bytes_zero && st.streaming
        },
    );
    for (c, lines) in cats.iter().zip(&inputs) {
        let stored = read_category(&central_data, c);
        // The central was stopped gracefully: every batch it wrote was acknowledged, so
        // nothing is duplicated and the archive equals the input exactly.
        assert_eq!(check_order_no_loss(&stored, lines), Ok(0), "{c}");
    }
    assert!(
        get_counter(&leaf.addr, "scribe_overall:spooled") > 0,
        "the outage was spooled through"
    );
    assert!(get_counter(&leaf.addr, "scribe_overall:replayed") > 0);
    drop(central);
}

#[test]
fn leaf_killed_while_spooling_replays_everything_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let central_addr = format!("127.0.0.1:{}", free_port());
    let leaf_port = free_port();
    let leaf_addr = format!("127.0.0.1:{leaf_port}");
    let spool = tmp.path().join("spool");
    let leaf_launch = || Launch {
        listen: Some(leaf_addr.clone()),
        config: Some(leaf_config(&central_addr, &spool)),
        ..Launch::default()
    };
    // No central yet: everything the leaf acknowledges is spooled (and fsynced first).
    let leaf = Scribed::launch(&tmp.path().join("leaf"), leaf_launch());
    let lines = numbered("spooled", 60_000);
    let body = lines.concat();
    let shipper = {
        let addr = leaf_addr.clone();
        std::thread::spawn(move || {
            ship(
                &addr,
                "spooled",
                &body,
                &["--batch-lines", "500", "--timeout", "60s"],
            )
        })
    };
    wait_for(
        Duration::from_secs(30),
        "the leaf to spool part of the input",
        || get_counter(&leaf_addr, "scribe_overall:spooled") > 10_000,
    );
    leaf.kill9();
    std::thread::sleep(Duration::from_millis(500));
    // ship keeps retrying the unacknowledged batch until the leaf is back.
    let leaf = Scribed::launch(&tmp.path().join("leaf"), leaf_launch());
    let out = shipper.join().unwrap();
    assert!(
        out.status.success(),
        "ship: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let central_data = tmp.path().join("central");
    let _central = central_at(&central_data, &central_addr);
    wait_for(Duration::from_secs(60), "the replay to complete", || {
        let st = leaf_status(&leaf);
        st.spool_bytes_zero && st.streaming
    });
    let stored = read_category(&central_data, "spooled");
    let dups = check_order_no_loss(&stored, &lines).unwrap();
    // Duplicates are possible (a batch spooled but not acknowledged before the kill is sent
    // again by ship) and bounded by the batch that was in flight.
    assert!(dups <= 500, "{dups} duplicates");
}

#[test]
fn damaged_spool_records_are_skipped_and_counted_and_the_rest_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let central_addr = format!("127.0.0.1:{}", free_port());
    let spool = tmp.path().join("spool");
    let leaf_dir = tmp.path().join("leaf");
    let launch = || Launch {
        config: Some(leaf_config(&central_addr, &spool)),
        ..Launch::default()
    };
    let leaf = Scribed::launch(&leaf_dir, launch());
    let lines = numbered("damaged", 20_000);
    let out = ship(
        &leaf.addr,
        "damaged",
        &lines.concat(),
        &["--batch-lines", "100"],
    );
    assert!(out.status.success());
    assert!(leaf.stop().success());

    // Flip bytes in the middle of the spool and cut its tail mid-record.
    let mut segments: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(!segments.is_empty(), "spool has segments");
    let seg = segments.last().unwrap();
    let mut data = std::fs::read(seg).unwrap();
    let len = data.len();
    for at in [len / 3, len / 3 + 1, len / 2] {
        data[at] ^= 0x5a;
    }
    data.truncate(len - 37);
    std::fs::write(seg, &data).unwrap();

    let central_data = tmp.path().join("central");
    let _central = central_at(&central_data, &central_addr);
    let leaf = Scribed::launch(&leaf_dir, launch());
    wait_for(Duration::from_secs(60), "the replay to complete", || {
        let st = leaf_status(&leaf);
        st.spool_bytes_zero && st.streaming
    });
    let stored = read_category(&central_data, "damaged");
    // What arrived is in order, with no garbage; what is missing are whole damaged records.
    let mut expected_iter = lines.iter();
    let mut delivered = 0;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        assert!(
            expected_iter.any(|l| l[..] == *line),
            "garbage or out-of-order line {:?}",
            String::from_utf8_lossy(line)
        );
        delivered += 1;
    }
    assert!(delivered < lines.len(), "damage must cost something");
    assert!(delivered > lines.len() / 2, "only {delivered} delivered");
    assert!(get_counter(&leaf.addr, "scribe_overall:dropped corrupt") >= 1);
    let (code, _) = http_get(&leaf.status_addr, "/health");
    assert_eq!(code, 200);
}

/// One message larger than the central accepts (`--max-frame 16K`), among ordinary lines: the
/// leaf must not retry it for ever with every later line stuck behind it. The central
/// advertises its limits in the native `WELCOME`; the leaf splits batches to fit, puts the
/// message that can never fit into the dead-letter file beside its spool (intact, counted)
/// and moves on, so the ordinary lines all arrive, in order, in bounded time.
#[test]
fn a_message_too_big_for_the_central_is_dead_lettered_and_the_rest_flows_on() {
    let tmp = tempfile::tempdir().unwrap();
    let central_data = tmp.path().join("central");
    let central = Scribed::start(&central_data, &["--max-frame", "16K"]);
    let spool = tmp.path().join("spool");
    let leaf = Scribed::launch(
        &tmp.path().join("leaf"),
        Launch {
            config: Some(leaf_config(&central.addr, &spool)),
            ..Launch::default()
        },
    );
    let normal = numbered("oversize", 3_000);
    // Recognisable bytes from end to end, so "intact" means something.
    let mut big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    big.push(b'\n');
    let mut input = normal[..1_500].concat();
    input.extend_from_slice(&big);
    input.extend_from_slice(&normal[1_500..].concat());

    let started = Instant::now();
    // Small batches, so lines follow the big one in batches of their own.
    let out = ship(&leaf.addr, "oversize", &input, &["--batch-lines", "100"]);
    assert!(
        out.status.success(),
        "the leaf accepts everything: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: usize = normal.iter().map(Vec::len).sum();
    wait_for(
        Duration::from_secs(30),
        "the ordinary lines to reach the central past the big one",
        || read_category(&central_data, "oversize").len() >= want,
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let stored = read_category(&central_data, "oversize");
    assert_eq!(check_order_no_loss(&stored, &normal), Ok(0));

    let dead = std::fs::read(spool.join("dead-letter").join("oversize")).unwrap();
    assert!(dead == big, "the dead-letter file holds the message intact");
    assert_eq!(get_counter(&leaf.addr, "oversize:dead lettered"), 1);
    let (_, metrics) = leaf.http_get("/metrics");
    assert_eq!(
        metric(
            &metrics,
            "scribed_dead_lettered_total{category=\"oversize\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    wait_for(Duration::from_secs(10), "the leaf to stream again", || {
        let st = leaf_status(&leaf);
        st.spool_bytes_zero && st.streaming
    });
    let log = leaf.log_text();
    assert_eq!(
        log.lines().filter(|l| l.contains("dead-letter")).count(),
        1,
        "logged once for the category: {log}"
    );
}

/// A relay forwards a pipelining client's batches with several in flight upstream, as the
/// client sent them (the leaf reads the next batch while the one before waits for the
/// upstream), on one connection, in order; and acknowledges each only after the upstream did.
#[test]
fn a_relay_keeps_several_of_a_clients_batches_in_flight_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = SlowUpstream::start(Duration::from_millis(40));
    let leaf = Scribed::launch(
        &tmp.path().join("leaf"),
        Launch {
            config: Some(leaf_config(&upstream.addr, &tmp.path().join("spool"))),
            ..Launch::default()
        },
    );
    let lines = numbered("piped", 4_000);
    let started = Instant::now();
    let out = ship(
        &leaf.addr,
        "piped",
        &lines.concat(),
        &["--batch-lines", "100"],
    );
    assert!(
        out.status.success(),
        "ship: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 40 batches answered 40 ms apart one at a time would take 1.6 s.
    let took = started.elapsed();
    let got: Vec<Vec<u8>> = upstream.messages().iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, lines, "every line once, in order");
    let max = upstream.max_unanswered();
    assert!(
        max >= 2,
        "at most {max} batch in flight upstream (took {took:?})"
    );
    assert_eq!(get_counter(&leaf.addr, "scribe_overall:spooled"), 0);
}
