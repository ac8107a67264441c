//! The buffer store's unit tests (beside `buffer.rs`, which they would push past its size).

use super::*;
use crate::config::{Args, Settings, StoreSpec};
use crate::stores::testing::MockStore;
use clap::Parser;

fn spec(dir: &std::path::Path) -> BufferSpec {
    BufferSpec {
        primary: Box::new(StoreSpec::Null(Default::default())),
        spool_dir: Some(dir.to_path_buf()),
        max_spool_bytes: None,
        retry_interval: Some(crate::config::values::Dur(Duration::from_millis(5))),
        replay_batch_bytes: Some(crate::config::values::Size(300)),
    }
}

fn context(settings: &Settings) -> BuildContext<'_> {
    BuildContext {
        settings,
        counters: Arc::new(Counters::default()),
        name: "buffer".into(),
        key: "k".into(),
        dead_letter: None,
    }
}

fn batch(cat: &str, msgs: &[String]) -> Batch {
    Arc::new(CategoryBatch::new(
        cat.parse().unwrap(),
        msgs.iter().map(|m| Bytes::from(m.clone())).collect(),
    ))
}

/// A primary that refuses about a third of all sends, during streaming and during replay
/// alike: every message must still arrive exactly once, in order per category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_primary_loses_nothing_and_keeps_order() {
    fastrand::seed(7);
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    let ctx = context(&settings);
    let mock = Arc::new(MockStore::default());
    mock.fail_permille.store(330, Ordering::Relaxed);
    let store = BufferStore::with_primary(&spec(tmp.path()), &ctx, mock.clone()).unwrap();
    let mut want: Vec<(String, Bytes)> = Vec::new();
    for i in 0..300 {
        let cat = if i % 3 == 0 { "a" } else { "b" };
        let msgs: Vec<String> = (0..5).map(|j| format!("{cat}-{i}-{j}")).collect();
        want.extend(
            msgs.iter()
                .map(|m| (cat.to_string(), Bytes::from(m.clone()))),
        );
        store.write(&[batch(cat, &msgs)]).await.unwrap();
    }
    // Let the backlog drain with the primary healthy.
    mock.fail_permille.store(0, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut st = Vec::new();
        store.status(&mut st);
        if st[0].state == "streaming" && st[0].spool_bytes == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "did not drain: {:?}", st[0]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mock.messages(), want);
    assert!(ctx.counters.get("scribe_overall:spooled") > 0);
    assert!(ctx.counters.get("scribe_overall:replayed") > 0);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_refuses_instead_of_dropping() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    let ctx = context(&settings);
    let mock = Arc::new(MockStore::default());
    mock.down.store(true, Ordering::Relaxed);
    let mut s = spec(tmp.path());
    s.max_spool_bytes = Some(crate::config::values::Size(2000));
    s.retry_interval = Some(crate::config::values::Dur(Duration::from_secs(3600)));
    let store = BufferStore::with_primary(&s, &ctx, mock.clone()).unwrap();
    let msgs: Vec<String> = (0..10).map(|i| format!("{i:0100}")).collect();
    store.write(&[batch("a", &msgs)]).await.unwrap();
    let refused = store.write(&[batch("a", &msgs)]).await;
    assert!(
        matches!(refused, Err(StoreError::SpoolFull { .. })),
        "{refused:?}"
    );
    store.close().await;
}

fn status_of(store: &BufferStore) -> StoreStatus {
    let mut st = Vec::new();
    store.status(&mut st);
    st.swap_remove(0)
}

/// A damaged spool left by an earlier run (torn tail, record cut short, flipped bytes,
/// several segments, nothing but damage): the replay delivers every undamaged record, in
/// order; once drained the spool counts no bytes (the damage neither lingers in
/// `spool_bytes` nor against `max_spool_bytes`); a restart finds no backlog. ship's outbox
/// runs the same scenarios (`shipper/tests/outbox.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_spool_is_replayed_and_left_empty() {
    use scribe_spool::testing::{write_damaged, Damage};
    // One record per replayed batch, so the damage is met at the start of a read (then no
    // batch's position lies past it); and several records per batch.
    for (damage, replay_bytes) in Damage::ALL.into_iter().flat_map(|d| [(d, 1), (d, 300)]) {
        let tmp = tempfile::tempdir().unwrap();
        let mut spec = spec(tmp.path());
        spec.replay_batch_bytes = Some(crate::config::values::Size(replay_bytes));
        let spooled = write_damaged(tmp.path(), damage).unwrap();
        let want: Vec<(String, Bytes)> = spooled
            .expected
            .iter()
            .map(|(c, m)| (c.clone(), Bytes::from(m.clone())))
            .collect();
        let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
        let ctx = context(&settings);
        let mock = Arc::new(MockStore::default());
        let store = BufferStore::with_primary(&spec, &ctx, mock.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while status_of(&store).state != "streaming" || mock.messages().len() < want.len() {
            assert!(
                Instant::now() < deadline,
                "{damage:?}: {:?}",
                status_of(&store)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(mock.messages(), want, "{damage:?}");
        assert_eq!(
            status_of(&store).spool_bytes,
            0,
            "{damage:?}/{replay_bytes}: drained spool"
        );
        assert!(
            ctx.counters.get("scribe_overall:dropped corrupt") >= 1,
            "{damage:?}"
        );
        store.close().await;

        let store = BufferStore::with_primary(&spec, &ctx, mock.clone()).unwrap();
        let st = status_of(&store);
        assert_eq!(
            (st.state.as_str(), st.spool_bytes),
            ("streaming", 0),
            "{damage:?}/{replay_bytes}: a restart finds a backlog"
        );
        store.close().await;
        assert_eq!(mock.messages(), want, "{damage:?}: nothing replayed twice");
    }
}

/// A pipelined primary (as a network store's lane) that fails now and then, during streaming
/// and replay alike: several batches are in flight at once, a failure spools the failed batch
/// and every one behind it in order, and batches one connection hands over without waiting
/// (`submit`, as a reading-ahead native connection does) are all acknowledged. Every message
/// arrives exactly once, in order per category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_primary_keeps_several_in_flight_and_loses_nothing() {
    use crate::stores::testing::{MockPipeline, PipelinedStore};
    fastrand::seed(11);
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    let ctx = context(&settings);
    let pipe = MockPipeline::start(4);
    pipe.store.fail_permille.store(60, Ordering::Relaxed);
    let primary = Arc::new(PipelinedStore(pipe.clone()));
    let store = BufferStore::with_primary(&spec(tmp.path()), &ctx, primary).unwrap();
    let chain = Chain::default();
    let mut want: Vec<(String, Bytes)> = Vec::new();
    let mut answers = Vec::new();
    for i in 0..400 {
        let cat = if i % 3 == 0 { "a" } else { "b" };
        let msgs: Vec<String> = (0..5).map(|j| format!("{cat}-{i}-{j}")).collect();
        want.extend(
            msgs.iter()
                .map(|m| (cat.to_string(), Bytes::from(m.clone()))),
        );
        let answer = store.submit(&[batch(cat, &msgs)], &chain);
        answers.push(answer.expect("a buffer store takes batches over"));
        // A read-ahead of 8, as a native connection's.
        if answers.len() == 8 {
            for a in answers.drain(..) {
                a.await.unwrap();
            }
        }
    }
    for a in answers {
        a.await.unwrap();
    }
    pipe.store.fail_permille.store(0, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&store).state != "streaming" || status_of(&store).spool_bytes != 0 {
        assert!(
            Instant::now() < deadline,
            "did not drain: {:?}",
            status_of(&store)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pipe.store.messages(), want);
    let max = pipe.max_in_flight.load(Ordering::Relaxed);
    assert!(max > 1, "at most {max} write(s) in flight");
    assert!(max <= 4, "{max} writes in flight, over the window");
    assert!(ctx.counters.get("scribe_overall:spooled") > 0);
    assert!(ctx.counters.get("scribe_overall:replayed") > 0);
    assert!(!chain.is_broken());
    store.close().await;
}

/// A connection's batch behind one the store refused (full spool) is refused too, though it
/// would fit, so nothing is written behind a refused batch; another connection's still fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_behind_a_refused_one_of_the_same_connection_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    let ctx = context(&settings);
    let mock = Arc::new(MockStore::default());
    mock.down.store(true, Ordering::Relaxed);
    let mut s = spec(tmp.path());
    s.max_spool_bytes = Some(crate::config::values::Size(2000));
    s.retry_interval = Some(crate::config::values::Dur(Duration::from_secs(3600)));
    let store = BufferStore::with_primary(&s, &ctx, mock.clone()).unwrap();
    let big: Vec<String> = (0..10).map(|i| format!("{i:0100}")).collect();
    let small = vec!["small".to_string()];
    let chain = Chain::default();
    let answers: Vec<Pending> = [&big, &big, &small]
        .into_iter()
        .map(|msgs| store.submit(&[batch("a", msgs)], &chain).unwrap())
        .collect();
    let mut results = Vec::new();
    for a in answers {
        results.push(a.await);
    }
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::SpoolFull { .. })),
        "{results:?}"
    );
    assert!(
        matches!(&results[2], Err(StoreError::Failed { reason, .. }) if reason.contains("behind a refused batch")),
        "{results:?}"
    );
    assert!(chain.is_broken());
    store.write(&[batch("a", &small)]).await.unwrap();
    store.close().await;
}
