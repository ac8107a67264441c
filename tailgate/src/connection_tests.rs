//! The shared-chunk `lines` messages against what serializing each line gives.

use super::*;
use crate::hub::HubConfig;
use crate::protocol::LineOut;

fn sub(id: &str) -> Sub {
    Sub {
        id: id.into(),
        filter: None,
    }
}

/// Publishes `chunks` (line lists) to category `a` for one live subscriber and renders its
/// queue as the sender does.
fn rendered(id: &str, chunks: &[Vec<Bytes>]) -> (Vec<String>, u64) {
    let hub = Hub::new(HubConfig {
        client_buffer: 64 << 20,
        ..HubConfig::default()
    });
    let q = hub.new_queue();
    let (key, _) = hub.subscribe(&q, CategoryGlob::new("a").unwrap(), &Start::Backlog(0));
    for c in chunks {
        hub.publish("a", c.clone()).unwrap();
    }
    render(&HashMap::from([(key, sub(id))]), false, q.drain())
}

#[test]
fn chunk_messages_are_the_bytes_serde_gives_cut_at_1000_lines() {
    let line = |i: usize| match i % 3 {
        0 => Bytes::from(format!("{i} \"quoted\" \\ tab\t")),
        1 => Bytes::from(
            format!("{i}")
                .into_bytes()
                .into_iter()
                .chain(*b"\xff")
                .collect::<Vec<_>>(),
        ),
        _ => Bytes::from(format!("{i} plain")),
    };
    let all: Vec<Bytes> = (0..2500).map(line).collect();
    let chunks = vec![
        all[..1200].to_vec(),
        all[1200..2000].to_vec(),
        all[2000..].to_vec(),
    ];
    let (out, sent) = rendered("p\"1", &chunks);
    assert_eq!(sent, 2500);
    let want: Vec<String> = all
        .chunks(BATCH_LINES)
        .enumerate()
        .map(|(m, ls)| {
            let seq = (m * BATCH_LINES) as u64 + 1;
            ServerMsg::Lines {
                id: "p\"1",
                category: "a",
                seq,
                last_seq: seq + ls.len() as u64 - 1,
                lines: ls.iter().map(LineOut::new).collect(),
                seqs: None,
                offsets: None,
                context: None,
            }
            .to_json()
        })
        .collect();
    assert_eq!(out, want);
}

#[test]
fn chunk_messages_are_cut_by_bytes_and_keep_every_line_in_order() {
    let all: Vec<Bytes> = (0..900)
        .map(|i| Bytes::from(format!("{i:04}{}", "x".repeat(996))))
        .collect();
    let (out, sent) = rendered("p", &[all[..500].to_vec(), all[500..].to_vec()]);
    assert_eq!(sent, 900);
    let mut next = 1u64;
    let mut got = Vec::new();
    for m in &out {
        let v: serde_json::Value = serde_json::from_str(m).unwrap();
        let lines = v["lines"].as_array().unwrap();
        assert_eq!(v["seq"], next);
        next += lines.len() as u64;
        assert_eq!(v["last_seq"], next - 1);
        let bytes: usize = lines.iter().map(|l| l.as_str().unwrap().len()).sum();
        assert!(bytes <= BATCH_BYTES, "{bytes} bytes in one message");
        got.extend(lines.iter().map(|l| l.as_str().unwrap().to_string()));
    }
    assert!(out.len() >= 4, "900 KB of lines in {} messages", out.len());
    let want: Vec<String> = all
        .iter()
        .map(|l| String::from_utf8(l.to_vec()).unwrap())
        .collect();
    assert_eq!(got, want);
}

/// Lines read back from Kafka go through the subscription's filter like any other, in
/// messages of their own (seq 0, each line's seq 0), and move the offsets by every line
/// read, matched or not.
#[test]
fn read_back_lines_are_filtered_and_sent_apart_from_ring_lines() {
    use crate::ring::Origin;
    let permit = Arc::new(tokio::sync::Semaphore::new(1))
        .try_acquire_owned()
        .unwrap();
    let include = filter::compile("filter", Some("^a".into())).unwrap();
    let filtered = Sub {
        id: "f".into(),
        filter: Some(Arc::new(Filters::new(include, None, 0, permit))),
    };
    let origin = |offset| Origin {
        partition: 0,
        offset,
    };
    let lines = |v: &[&'static str]| v.iter().map(|l| Bytes::from_static(l.as_bytes())).collect();
    let read_back = Chunk::read_back(
        lines(&["a 0", "b 1", "a 2", "b 3"]),
        (0..4).map(origin).collect(),
    );
    let ring = Chunk::with_origins(7, lines(&["a 4"]), Some(vec![origin(4)]));
    let category: Arc<str> = Arc::from("k");
    let item = |chunk: &Arc<Chunk>| Item::Lines {
        key: 1,
        category: category.clone(),
        chunk: chunk.clone(),
        from: 0,
        to: chunk.len(),
    };
    let (out, sent) = render(
        &HashMap::from([(1, filtered)]),
        false,
        vec![item(&read_back), item(&ring)],
    );
    assert_eq!(sent, 3);
    let msgs: Vec<serde_json::Value> = out
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(msgs.len(), 2, "{out:?}");
    assert_eq!(msgs[0]["lines"], serde_json::json!(["a 0", "a 2"]));
    assert_eq!(msgs[0]["seq"], 0);
    assert_eq!(msgs[0]["seqs"], serde_json::json!([0, 0]));
    assert_eq!(msgs[0]["offsets"], serde_json::json!({"0": 4}));
    assert_eq!(msgs[1]["lines"], serde_json::json!(["a 4"]));
    assert_eq!(msgs[1]["seq"], 7);
    assert_eq!(msgs[1]["offsets"], serde_json::json!({"0": 5}));
}
