//! Unit tests of the hub: fan-out, bounds, backlog and resume, gaps.

use super::*;

fn lines(v: &[&str]) -> Vec<Bytes> {
    v.iter().map(|s| Bytes::from(s.to_string())).collect()
}

fn seqs(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .flat_map(|i| match i {
            Item::Lines {
                chunk, from, to, ..
            } => (*from..*to).map(|i| chunk.seq(i)).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Each line of a `Lines` item as an item of its own, so tests count and index lines.
fn expand(items: Vec<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Lines {
                key,
                category,
                chunk,
                from,
                to,
            } => out.extend((from..to).map(|i| Item::Lines {
                key,
                category: category.clone(),
                chunk: chunk.clone(),
                from: i,
                to: i + 1,
            })),
            other => out.push(other),
        }
    }
    out
}

#[test]
fn backlog_then_live_without_gap() {
    let hub = Hub::new(HubConfig::default());
    hub.publish("a", lines(&["1", "2", "3"])).unwrap();
    let q = hub.new_queue();
    let (_, matched) = hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(2));
    assert_eq!(matched.len(), 1);
    assert_eq!((matched[0].from_seq, matched[0].last_seq), (2, 3));
    let q2 = hub.new_queue();
    let (_, live) = hub.subscribe(&q2, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    assert_eq!(
        (live[0].from_seq, live[0].last_seq),
        (4, 3),
        "no backlog: from the next"
    );
    hub.publish("a", lines(&["4"])).unwrap();
    assert_eq!(seqs(&expand(q.drain())), [2, 3, 4]);
}

#[test]
fn backlog_is_bounded_by_the_client_buffer_and_reports_the_rest() {
    let hub = Hub::new(HubConfig {
        client_buffer: 3 * (LINE_OVERHEAD + 1),
        ..HubConfig::default()
    });
    hub.publish("a", lines(&["1", "2", "3", "4", "5"])).unwrap();
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(5));
    let items = expand(q.drain());
    assert!(
        matches!(
            items[0],
            Item::Gap {
                from_seq: 1,
                to_seq: 2,
                ..
            }
        ),
        "{:?}",
        items.len()
    );
    assert_eq!(seqs(&items), [3, 4, 5]);
    // A resume too: the newest that fit, the rest as a gap.
    let q = hub.new_queue();
    let since = Start::Since(HashMap::from([("a".to_string(), 0)]), 0);
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &since);
    let items = expand(q.drain());
    assert!(matches!(
        items[0],
        Item::Gap {
            from_seq: 1,
            to_seq: 2,
            ..
        }
    ));
    assert_eq!(seqs(&items), [3, 4, 5]);
}

#[test]
fn drain_upto_takes_a_bounded_share_and_drops_come_last() {
    let hub = Hub::new(HubConfig {
        client_buffer: 3 * (LINE_OVERHEAD + 1),
        ..HubConfig::default()
    });
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    hub.publish("a", lines(&["1", "2", "3", "4"])).unwrap();
    let first = expand(q.drain_upto(2 * (LINE_OVERHEAD + 1)));
    assert_eq!(first.len(), 2, "the drop waits for the queue to empty");
    let rest = expand(q.drain_upto(2 * (LINE_OVERHEAD + 1)));
    assert_eq!(seqs(&rest), [3]);
    assert!(matches!(
        rest[1],
        Item::Dropped {
            count: 1,
            from_seq: 4,
            ..
        }
    ));
    assert!(q.is_empty());
}

#[test]
fn glob_subscription_picks_up_new_categories() {
    let hub = Hub::new(HubConfig::default());
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("web.*").unwrap(), &Start::Backlog(0));
    hub.publish("web.a", lines(&["x"])).unwrap();
    hub.publish("db", lines(&["y"])).unwrap();
    let items = expand(q.drain());
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Item::Lines { category, .. } if &**category == "web.a"));
}

#[test]
fn full_queue_counts_drops_in_order() {
    let hub = Hub::new(HubConfig {
        client_buffer: 3 * (LINE_OVERHEAD + 1),
        ..HubConfig::default()
    });
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    hub.publish("a", lines(&["1", "2", "3", "4", "5"])).unwrap();
    let items = expand(q.drain());
    assert_eq!(seqs(&items), [1, 2, 3]);
    assert!(matches!(
        items.last(),
        Some(Item::Dropped {
            count: 2,
            from_seq: 4,
            ..
        })
    ));
    assert_eq!(hub.metrics.lines_dropped.load(Ordering::Relaxed), 2);
    hub.publish("a", lines(&["6"])).unwrap();
    assert_eq!(seqs(&expand(q.drain())), [6]);
}

#[test]
fn resume_lines_are_bounded_per_request() {
    let hub = Hub::new(HubConfig {
        ring_lines: 4,
        ..HubConfig::default()
    });
    hub.publish("a", lines(&["1", "2", "3"])).unwrap();
    hub.publish("b", lines(&["1", "2", "3"])).unwrap();
    let q = hub.new_queue();
    let since = HashMap::from([("a".to_string(), 0), ("b".to_string(), 0)]);
    hub.subscribe(&q, CategoryGlob::new("*").unwrap(), &Start::Since(since, 0));
    let items = expand(q.drain());
    // a: all 3; b: only the newest 1 fits, after a gap for the 2 before it.
    assert_eq!(seqs(&items), [1, 2, 3, 3]);
    assert!(matches!(
        &items[3],
        Item::Gap { from_seq: 1, to_seq: 2, category, .. } if &**category == "b"
    ));
}

/// (from, to) of each gap item.
fn gaps(items: &[Item]) -> Vec<(u64, u64)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Gap {
                from_seq, to_seq, ..
            } => Some((*from_seq, *to_seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_source_gap_reaches_live_subscribers_in_order() {
    let hub = Hub::new(HubConfig::default());
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    hub.publish("a", lines(&["1"])).unwrap();
    assert_eq!(hub.publish_gap("a", 2).unwrap(), (2, 3));
    assert_eq!(
        hub.publish_gap("a", 0).unwrap(),
        (4, 4),
        "merged with the last"
    );
    hub.publish("a", lines(&["5"])).unwrap();
    let items = expand(q.drain());
    assert_eq!(seqs(&items), [1, 5]);
    assert!(matches!(
        items[1],
        Item::Gap {
            from_seq: 2,
            to_seq: 4,
            ..
        }
    ));
    assert_eq!(hub.metrics.source_gaps.load(Ordering::Relaxed), 2);
}

#[test]
fn a_source_gap_while_a_client_is_over_its_bound_counts_as_dropped() {
    let hub = Hub::new(HubConfig {
        client_buffer: 2 * (LINE_OVERHEAD + 1),
        ..HubConfig::default()
    });
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    hub.publish("a", lines(&["1", "2", "3"])).unwrap();
    hub.publish_gap("a", 2).unwrap();
    let items = expand(q.drain());
    assert_eq!(seqs(&items), [1, 2]);
    assert!(matches!(
        items[2],
        Item::Dropped {
            count: 3,
            from_seq: 3,
            ..
        }
    ));
    // Room again: a drop still pending is reported before the gap.
    hub.publish("a", lines(&["6", "7", "8", "9"])).unwrap();
    assert_eq!(seqs(&expand(q.drain_upto(1))), [6]);
    hub.publish_gap("a", 1).unwrap();
    let items = expand(q.drain());
    assert_eq!(seqs(&items), [7]);
    assert!(
        matches!(
            items[1],
            Item::Dropped {
                from_seq: 8,
                count: 2,
                ..
            }
        ),
        "{items:?}"
    );
    assert_eq!(gaps(&items), [(10, 10)]);
}

#[test]
fn backlog_and_resume_across_source_gaps_report_them() {
    let hub = Hub::new(HubConfig::default());
    hub.publish("a", lines(&["1", "2"])).unwrap();
    hub.publish_gap("a", 3).unwrap(); // 3..=5
    hub.publish("a", lines(&["6"])).unwrap();
    hub.publish_gap("a", 1).unwrap(); // 7
    let q = hub.new_queue();
    hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(10));
    let items = expand(q.drain());
    assert_eq!(seqs(&items), [1, 2, 6]);
    assert_eq!(gaps(&items), [(3, 5), (7, 7)]);
    // Resumed right before a gap, and after the last line.
    for (since, want_seqs, want_gaps) in [
        (2, vec![6], vec![(3, 5), (7, 7)]),
        (6, vec![], vec![(7, 7)]),
        (7, vec![], vec![]),
    ] {
        let q = hub.new_queue();
        let start = Start::Since(HashMap::from([("a".to_string(), since)]), 0);
        hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &start);
        let items = expand(q.drain());
        assert_eq!(seqs(&items), want_seqs, "since {since}");
        assert_eq!(gaps(&items), want_gaps, "since {since}");
    }
}

#[test]
fn category_cap() {
    let hub = Hub::new(HubConfig {
        max_categories: 1,
        ..HubConfig::default()
    });
    hub.publish("a", lines(&["1"])).unwrap();
    assert!(hub.publish("b", lines(&["1"])).is_err());
    assert_eq!(hub.metrics.lines_refused.load(Ordering::Relaxed), 1);
}

#[test]
fn total_buffer_caps_all_clients_together() {
    let line = LINE_OVERHEAD + 1;
    let hub = Hub::new(HubConfig {
        client_buffer: 10 * line,
        total_buffer: 4 * line,
        ..HubConfig::default()
    });
    let a = hub.new_queue();
    let b = hub.new_queue();
    hub.subscribe(&a, CategoryGlob::new("x").unwrap(), &Start::Backlog(0));
    hub.subscribe(&b, CategoryGlob::new("x").unwrap(), &Start::Backlog(0));
    hub.publish("x", lines(&["1", "2", "3"])).unwrap();
    // a took 3 of the 4 shared slots, b the last one; the rest is dropped and reported.
    assert_eq!(hub.queued.used(), 4 * line);
    let bi = expand(b.drain());
    assert_eq!(seqs(&bi), [1]);
    assert!(bi.iter().any(|i| matches!(
        i,
        Item::Dropped {
            count: 2,
            from_seq: 2,
            ..
        }
    )));
    assert_eq!(hub.queued.used(), 3 * line, "a drain gives the bytes back");
    // A client that goes away gives back what it had queued.
    drop(a);
    hub.unsubscribe(1);
    hub.unsubscribe(2);
    assert_eq!(hub.queued.used(), 0);
}

/// Kafka lines of `partition` at `offsets`, as "p:o".
fn kafka_lines(partition: i32, offsets: std::ops::Range<i64>) -> Vec<(Bytes, Option<Origin>)> {
    offsets
        .map(|offset| {
            (
                Bytes::from(format!("{partition}:{offset}")),
                Some(Origin { partition, offset }),
            )
        })
        .collect()
}

fn texts(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Lines {
                chunk, from, to, ..
            } => Some(
                (*from..*to)
                    .map(|i| String::from_utf8_lossy(&chunk.lines[i]).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            Item::OffsetGap {
                partition,
                from,
                to,
                ..
            } => Some(format!("gap {partition}:{from}..={to}")),
            _ => None,
        })
        .collect()
}

/// A client resumes by offsets on a tailgate that restarted: what the new ring holds past
/// its offsets, then live lines, skipping those it had even when this tailgate reads them
/// only later, and a gap where the new tailgate starts past them.
#[test]
fn a_resume_by_offsets_skips_what_the_client_has_even_read_later() {
    let hub = Hub::new(HubConfig::default());
    hub.start_partition("k", 0, 0).unwrap();
    hub.publish_from("k", kafka_lines(0, 0..5)).unwrap();
    let q = hub.new_queue();
    let offsets = HashMap::from([("k".to_string(), Cursor::from([(0, 3), (1, 8), (2, 2)]))]);
    let start = Start::Offsets {
        offsets,
        seqs: HashMap::new(),
        backlog: 0,
    };
    let (_, matched) = hub.subscribe(&q, CategoryGlob::new("k").unwrap(), &start);
    assert_eq!(matched[0].cursor, Some(Cursor::from([(0, 5)])));
    // Partition 1 starts before the client's offset 8, partition 2 after its offset 2.
    hub.start_partition("k", 1, 6).unwrap();
    hub.start_partition("k", 2, 4).unwrap();
    hub.publish_from("k", kafka_lines(1, 6..10)).unwrap();
    hub.publish_from("k", kafka_lines(2, 4..5)).unwrap();
    hub.publish_from("k", kafka_lines(0, 5..6)).unwrap();
    assert_eq!(
        texts(&expand(q.drain())),
        ["0:3", "0:4", "gap 2:2..=3", "1:8", "1:9", "2:4", "0:5"]
    );
    // A new client without offsets sees everything held.
    let q2 = hub.new_queue();
    hub.subscribe(&q2, CategoryGlob::new("k").unwrap(), &Start::Backlog(100));
    assert_eq!(texts(&expand(q2.drain())).len(), 5 + 4 + 1 + 1);
}

/// A hub whose read-backs land in the returned channel (a test plays the Kafka side), with
/// partition 0 of "k" read to offset 10 through a ring of 4 lines (it holds 6..=9).
fn hub_reading_back() -> (Hub, std::sync::mpsc::Receiver<ReadBack>) {
    let hub = Hub::new(HubConfig {
        ring_lines: 4,
        ..HubConfig::default()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    hub.enable_read_back(tx);
    hub.start_partition("k", 0, 0).unwrap();
    hub.publish_from("k", kafka_lines(0, 0..10)).unwrap();
    hub.start_partition("k", 1, 0).unwrap();
    (hub, rx)
}

fn resume_at(hub: &Hub, q: &Arc<ClientQueue>, cursor: Cursor) -> u64 {
    let start = Start::Offsets {
        offsets: HashMap::from([("k".to_string(), cursor)]),
        seqs: HashMap::new(),
        backlog: 0,
    };
    hub.subscribe(q, CategoryGlob::new("k").unwrap(), &start).0
}

fn records(partition: i32, offsets: std::ops::Range<i64>) -> Vec<(Bytes, Origin)> {
    kafka_lines(partition, offsets)
        .into_iter()
        .map(|(l, o)| (l, o.unwrap()))
        .collect()
}

/// Offsets below the ring are read back for the client while its other partitions flow
/// live; the hand-over to the ring (which moved on meanwhile) and to live lines repeats and
/// skips nothing.
#[test]
fn a_resume_below_the_ring_is_read_back_then_handed_over_to_the_ring() {
    let (hub, jobs) = hub_reading_back();
    let q = hub.new_queue();
    resume_at(&hub, &q, Cursor::from([(0, 2), (1, 0)]));
    let job = jobs.try_recv().expect("a read-back");
    assert_eq!((job.partition, job.from, job.end), (0, 2, 6));
    assert!(q.drain().is_empty(), "the ring's lines of partition 0 wait");
    // Live: partition 1 flows, partition 0 waits for the read-back (and the ring evicts 6, 7).
    hub.publish_from("k", kafka_lines(1, 0..1)).unwrap();
    hub.publish_from("k", kafka_lines(0, 10..11)).unwrap();
    assert_eq!(job.deliver(2, records(0, 2..5), 5), Step::More);
    // The ring holds partition 0 from 8: 5..=7 from Kafka, 8.. from the ring.
    assert_eq!(job.deliver(5, records(0, 5..9), 9), Step::Done);
    hub.publish_from("k", kafka_lines(0, 11..12)).unwrap();
    let items = expand(q.drain());
    let want: Vec<String> = std::iter::once("1:0".to_string())
        .chain((2..12).map(|o| format!("0:{o}")))
        .collect();
    assert_eq!(texts(&items), want);
    // Read-back lines have no seq; the ring's keep theirs.
    assert_eq!(&seqs(&items)[1..7], [0; 6]);
    assert!(seqs(&items)[7..].iter().all(|s| *s > 0));
    assert_eq!(hub.metrics.read_backs.load(Ordering::Relaxed), 1);
}

/// A read-back that stops early (a cap, a failure) names exactly the offsets it does not
/// send and why, then hands over to the ring.
#[test]
fn a_read_back_that_gives_up_names_the_offsets_and_why() {
    let (hub, jobs) = hub_reading_back();
    let q = hub.new_queue();
    resume_at(&hub, &q, Cursor::from([(0, 1)]));
    let job = jobs.try_recv().expect("a read-back");
    job.gap(1, 1, GapReason::Retention);
    assert_eq!(job.deliver(2, records(0, 2..4), 4), Step::More);
    job.finish(4, GapReason::BehindLines(3));
    let items = expand(q.drain());
    assert_eq!(
        texts(&items),
        [
            "gap 0:1..=1",
            "0:2",
            "0:3",
            "gap 0:4..=5",
            "0:6",
            "0:7",
            "0:8",
            "0:9"
        ]
    );
    let reasons: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::OffsetGap { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "older than the topic's retention",
            "more than 3 lines behind"
        ]
    );
    let failed = GapReason::Failed("no record from the broker for 30s".into());
    assert_eq!(
        failed.to_string(),
        "reading back from Kafka failed: no record from the broker for 30s"
    );
}

/// A client that resumes before this tailgate started the partition is read back from
/// when the partition starts past its offsets; one that leaves cancels its read-back.
#[test]
fn a_partition_started_past_the_client_is_read_back() {
    let (hub, jobs) = hub_reading_back();
    let q = hub.new_queue();
    let key = resume_at(&hub, &q, Cursor::from([(2, 3)]));
    assert!(jobs.try_recv().is_err(), "partition 2 is not started yet");
    // Partition 0 is new to the client: what the ring holds of it.
    assert_eq!(texts(&expand(q.drain())), ["0:6", "0:7", "0:8", "0:9"]);
    hub.start_partition("k", 2, 7).unwrap();
    let job = jobs.try_recv().expect("a read-back");
    assert_eq!((job.partition, job.from, job.end), (2, 3, 7));
    hub.publish_from("k", kafka_lines(2, 7..8)).unwrap();
    assert!(q.drain().is_empty(), "held until the read-back hands over");
    assert_eq!(job.deliver(3, records(2, 3..7), 7), Step::Done);
    let want: Vec<String> = (3..8).map(|o| format!("2:{o}")).collect();
    assert_eq!(texts(&expand(q.drain())), want);
    assert!(!job.cancelled());
    hub.unsubscribe(key);
    assert!(job.cancelled());
}

/// Read-backs waiting for a worker are bounded: past the bound a resume gets an
/// `offset_gap` saying so, and a finished (dropped) read-back makes room again.
#[test]
fn read_backs_waiting_are_bounded() {
    let (hub, jobs) = hub_reading_back();
    let n = readback::MAX_WAITING as i32;
    for p in 2..n + 3 {
        hub.start_partition("k", p, 10).unwrap();
    }
    let q = hub.new_queue();
    // Partitions 0 and 1 are new to the client; 2..n+3 are all behind the ring.
    let cursor: Cursor = (2..n + 3).map(|p| (p, 0)).collect();
    resume_at(&hub, &q, cursor.clone());
    let waiting: Vec<ReadBack> = jobs.try_iter().collect();
    assert_eq!(waiting.len(), readback::MAX_WAITING);
    let busy: Vec<String> = q
        .drain()
        .iter()
        .filter_map(|i| match i {
            Item::OffsetGap {
                partition,
                from,
                to,
                reason,
                ..
            } => Some(format!("{partition}:{from}..={to} {reason}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        busy,
        [format!("{}:0..=9 {n} read-backs already waiting", n + 2)]
    );
    drop(waiting);
    let q2 = hub.new_queue();
    resume_at(&hub, &q2, Cursor::from([(2, 0)]));
    assert_eq!(jobs.try_iter().count(), 1);
}
