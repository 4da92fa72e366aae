//! The queue on both engines, a real SQLite file and a real PostgreSQL database: what is committed
//! survives a restart, claims never hand out an event twice, a replayed `message_id` is not queued
//! again, and concurrent requests are all committed. Then what only one engine does: SQLite's file
//! is private and served by one process; PostgreSQL's leases hand a dead node's work on.

mod common;

use std::time::Duration;

use common::{Engine, Store};
use store::{NewEvent, Settlement, Queue, SqliteQueue, State};

on_both_engines!(
    events_are_claimed_once_in_order_and_their_outcomes_kept,
    a_replayed_message_id_is_accepted_but_not_queued_again,
    concurrent_requests_are_all_committed,
    a_dedupe_window_longer_than_a_week_is_kept_through_purges,
    an_event_refused_at_the_door_is_recorded_dropped_and_never_claimed,
    remembered_traits_survive_a_restart_and_a_merge_lays_them_under_the_retained_users,
    a_login_is_merged_once_and_only_after_its_anonymous_id_was_a_customer,
);

const DAY: Duration = Duration::from_secs(86_400);

fn event(message_id: &str, pipeline: &str) -> NewEvent {
    NewEvent {
        source: "web".into(),
        pipeline: pipeline.into(),
        message_id: message_id.into(),
        received_at_ms: 1_700_000_000_000,
        payload: format!(r#"{{"type":"track","event":"Signed Up","message_id":"{message_id}"}}"#),
        labels: store::Labels::default(),
        dropped: None,
    }
}

fn delivered(id: i64) -> Settlement {
    Settlement {
        id,
        state: State::Delivered,
        code: None,
        detail: None,
        attempts: 1,
        attempt_log: vec![store::AttemptRecord { status: Some(200), latency_ms: 12 }],
        http_status: Some(200),
        response_body: Some(br#"{"status":"success"}"#.to_vec()),
        body_sent: Some(b"{}".to_vec()),
        latency_ms: Some(12),
        finished_at_ms: 1_700_000_000_100,
    }
}

async fn events_are_claimed_once_in_order_and_their_outcomes_kept(engine: Engine) {
    // Opened as the service opens it: by the configuration's storage, as the one queue type.
    let store = Store::new(engine).await;
    let described = store.storage.describe();
    match &store.storage {
        store::Storage::Sqlite(path) => assert_eq!(described, format!("SQLite file {}", path.display())),
        store::Storage::Postgres { .. } => {
            assert!(described.starts_with("PostgreSQL ") && described.contains("127.0.0.1:"), "{described}");
        }
    }
    let (queue, _) = store.open().await;
    if let store::Storage::Sqlite(path) = &store.storage {
        assert!(path.is_file(), "the file and its directory are created");
    }
    let events: Vec<NewEvent> = (0..10).map(|n| event(&format!("m-{n}"), "web-shop")).collect();
    assert_eq!(queue.enqueue(events, DAY).await.expect("enqueue").queued, 10);

    let first = queue.claim("web-shop".into(), 4).await.expect("claim");
    let second = queue.claim("web-shop".into(), 100).await.expect("claim");
    assert_eq!(first.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>(), ["m-0", "m-1", "m-2", "m-3"]);
    assert_eq!(second.len(), 6, "the rest, none twice");
    assert!(queue.claim("web-shop".into(), 100).await.expect("claim").is_empty());
    assert!(queue.claim("other".into(), 100).await.expect("claim").is_empty());

    queue.finish(first.iter().map(|e| delivered(e.id)).collect()).await.expect("finish");
    let depth = queue.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.claimed), (0, 6));
    let recent = queue.recent(20).await.expect("recent");
    let done: Vec<_> = recent.iter().filter(|r| r.state == State::Delivered).collect();
    assert_eq!(done.len(), 4);
    let outcome = done[0].outcome.as_ref().expect("outcome");
    assert_eq!((outcome.http_status, outcome.latency_ms), (Some(200), Some(12)));
    assert_eq!(outcome.response_body.as_deref(), Some(&br#"{"status":"success"}"#[..]));
    assert_eq!(outcome.attempt_log, [store::AttemptRecord { status: Some(200), latency_ms: 12 }]);

    queue.release(second.iter().map(|e| e.id).collect()).await.expect("release");
    assert_eq!(
        queue.claim("web-shop".into(), 100).await.expect("claim").len(),
        6,
        "released, claimable again"
    );
}

#[tokio::test]
async fn what_was_claimed_when_the_process_stopped_is_pending_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("signal.db");
    {
        let (queue, recovered) = SqliteQueue::open(&path).expect("open");
        assert_eq!((recovered.claimed, recovered.paused), (0, 0));
        queue.enqueue((0..5).map(|n| event(&format!("m-{n}"), "p")).collect(), DAY).await.expect("enqueue");
        let claimed = queue.claim("p".into(), 3).await.expect("claim");
        queue.finish(vec![delivered(claimed[0].id)]).await.expect("finish");
    }
    let (queue, recovered) = SqliteQueue::open(&path).expect("reopen");
    assert_eq!(recovered.claimed, 2, "two were claimed and not finished");
    let again = queue.claim("p".into(), 100).await.expect("claim");
    assert_eq!(again.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>(), ["m-1", "m-2", "m-3", "m-4"]);
}

async fn a_replayed_message_id_is_accepted_but_not_queued_again(engine: Engine) {
    let (queue, _) = Store::new(engine).await.open().await;
    // One event bound for two pipelines is one message: both rows are queued.
    let first = queue.enqueue(vec![event("m-1", "a"), event("m-1", "b")], DAY).await.expect("enqueue");
    assert_eq!((first.queued, first.duplicates), (2, 0));
    let replay = queue.enqueue(vec![event("m-1", "a"), event("m-2", "a")], DAY).await.expect("enqueue");
    assert_eq!((replay.queued, replay.duplicates), (1, 1));
    // Outside the window it is new again (the window is 1 ms: at least that long after it was seen).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let later = queue.enqueue(vec![event("m-1", "a")], Duration::from_millis(1)).await.expect("enqueue");
    assert_eq!(later.queued, 1);
}

async fn concurrent_requests_are_all_committed(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let mut tasks = Vec::new();
    for request in 0..200 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let events = (0..10).map(|n| event(&format!("r{request}-{n}"), "p")).collect();
            queue.enqueue(events, DAY).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("enqueue").queued, 10);
    }
    assert_eq!(queue.depth().await.expect("depth").pending, 2_000);
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_is_private_to_its_user_and_a_loose_one_is_tightened() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    let set = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let path = data.join("signal.db");
    let (queue, recovered) = SqliteQueue::open(&path).expect("open");
    assert!(recovered.made_private.is_empty(), "{:?}", recovered.made_private);
    queue.enqueue(vec![event("m-private", "web-shop")], DAY).await.expect("enqueue");
    assert_eq!((mode(&data), mode(&path)), (0o700, 0o600));
    let wal = data.join("signal.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "SQLite's side files follow the database");
    }
    drop(queue);

    set(&path, 0o644);
    set(&data, 0o755);
    let (_queue, recovered) = SqliteQueue::open(&path).expect("reopen");
    let before: Vec<u32> = recovered.made_private.iter().map(|(_, before)| *before).collect();
    assert!(before.contains(&0o644) && before.contains(&0o755), "{:?}", recovered.made_private);
    assert_eq!(recovered.made_private.len(), 2, "the lock file was private already: {:?}", recovered.made_private);
    assert_eq!((mode(&data), mode(&path)), (0o700, 0o600));

    // A directory that holds other things is not Signal's to change; the database still is.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    set(&shared, 0o755);
    std::fs::write(shared.join("notes.txt"), "mine").expect("write");
    let (_queue, _) = SqliteQueue::open(&shared.join("signal.db")).expect("open in a shared directory");
    assert_eq!((mode(&shared), mode(&shared.join("signal.db"))), (0o755, 0o600));
}

async fn a_dedupe_window_longer_than_a_week_is_kept_through_purges(engine: Engine) {
    let store = Store::new(engine).await;
    let month = Duration::from_secs(30 * 86_400);
    let (queue, _) = store.open().await;
    queue.enqueue(vec![event("m-old", "web-shop")], month).await.expect("enqueue");
    drop(queue);
    // Seen ten days ago: inside a 30-day window.
    let ten_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .saturating_sub(Duration::from_secs(10 * 86_400));
    let seen_at = i64::try_from(ten_days_ago.as_millis()).expect("millis");
    assert_eq!(store.run_sql(&format!("UPDATE seen SET seen_at = {seen_at}")).await, 1, "backdated");

    let (queue, _) = store.open().await;
    // Enough commits for the periodic purge to run, with the month-long window in use.
    queue.enqueue(vec![event("m-new", "web-shop")], month).await.expect("enqueue");
    for _ in 0..1_000 {
        queue.enqueue(Vec::new(), month).await.expect("an empty enqueue");
    }
    let again = queue.enqueue(vec![event("m-old", "web-shop")], month).await.expect("enqueue");
    assert_eq!((again.queued, again.duplicates), (0, 1), "seen ten days ago, inside the window");
}

async fn an_event_refused_at_the_door_is_recorded_dropped_and_never_claimed(engine: Engine) {
    let (queue, _) = Store::new(engine).await.open().await;
    let refused = NewEvent {
        dropped: Some(store::Dropped { code: "invalid_event".into(), detail: "`type` is missing".into() }),
        ..event("m-refused", "web-shop")
    };
    let enqueued = queue.enqueue(vec![refused.clone(), refused, event("m-good", "web-shop")], DAY).await.expect("enqueue");
    assert_eq!((enqueued.queued, enqueued.recorded, enqueued.duplicates), (1, 2, 0));
    let claimed = queue.claim("web-shop".into(), 100).await.expect("claim");
    assert_eq!(claimed.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>(), ["m-good"]);
    let depth = queue.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.claimed), (0, 1), "the refused ones wait for nothing");
    let recent = queue.recent(10).await.expect("recent");
    let dropped: Vec<_> = recent.iter().filter(|record| record.state == State::Dropped).collect();
    assert_eq!(dropped.len(), 2);
    let outcome = dropped[0].outcome.as_ref().expect("an outcome");
    assert_eq!((outcome.code.as_deref(), outcome.detail.as_deref()), (Some("invalid_event"), Some("`type` is missing")));
}

#[tokio::test]
async fn one_process_at_a_time_serves_a_queue_file() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("signal.db");
    let (queue, _) = SqliteQueue::open(&path).expect("open");
    queue.enqueue(vec![event("m-mine", "web-shop")], DAY).await.expect("enqueue");
    let claimed = queue.claim("web-shop".into(), 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // A second opening is refused before it can make the claimed event pending again.
    let error = SqliteQueue::open(&path).err().expect("refused while the first serves it");
    assert!(error.to_string().contains("in use by another `signal serve`"), "{error}");
    assert_eq!(queue.depth().await.expect("depth").claimed, 1, "the claim stands");
}

async fn remembered_traits_survive_a_restart_and_a_merge_lays_them_under_the_retained_users(engine: Engine) {
    use store::TraitChange;
    let store = Store::new(engine).await;
    {
        let (queue, _) = store.open().await;
        queue
            .remember_traits(
                "WS1".into(),
                vec![
                    TraitChange::Set { user: "anon".into(), traits: r#"{"email":"old@b.test","plan":"free"}"#.into() },
                    TraitChange::Set { user: "u1".into(), traits: r#"{"plan":"pro"}"#.into() },
                    TraitChange::Set { user: "u1".into(), traits: r#"{"plan":"team"}"#.into() },
                    TraitChange::Merge { merged: "anon".into(), retained: "u1".into() },
                    TraitChange::Merge { merged: "anon".into(), retained: "u2".into() },
                    TraitChange::Merge { merged: "nobody".into(), retained: "u3".into() },
                    // A node that did not see the merge sends only what it saw: laid on, not replacing.
                    TraitChange::Set { user: "u2".into(), traits: r#"{"plan":"pro"}"#.into() },
                    // A trait is replaced whole, as on a node: a nested object is not merged into.
                    TraitChange::Set { user: "u4".into(), traits: r#"{"address":{"city":"Leeds","street":"Park Row"}}"#.into() },
                    TraitChange::Set { user: "u4".into(), traits: r#"{"address":{"city":"York"}}"#.into() },
                ],
                blueprint::memory::overlaid_text,
            )
            .await
            .expect("remember");
        queue
            .remember_traits(
                "WS2".into(),
                vec![TraitChange::Set { user: "u1".into(), traits: r#"{"email":"ws2@b.test"}"#.into() }],
                blueprint::memory::overlaid_text,
            )
            .await
            .expect("remember");
    }
    let (queue, _) = store.open().await;
    let mut found = queue
        .recall_traits("WS1".into(), vec!["u1".into(), "u2".into(), "u3".into(), "u4".into(), "anon".into()])
        .await
        .expect("recall");
    found.sort();
    let parsed: Vec<(String, serde_json::Value)> =
        found.into_iter().map(|(user, traits)| (user, serde_json::from_str(&traits).expect("json"))).collect();
    assert_eq!(
        parsed,
        [
            ("anon".to_owned(), serde_json::json!({"email": "old@b.test", "plan": "free"})),
            ("u1".to_owned(), serde_json::json!({"email": "old@b.test", "plan": "team"})),
            ("u2".to_owned(), serde_json::json!({"email": "old@b.test", "plan": "pro"})),
            ("u4".to_owned(), serde_json::json!({"address": {"city": "York"}})),
        ],
        "the retained user's own traits win; a merge of nobody leaves nothing; workspaces are apart"
    );
    assert!(queue.recall_traits("WS3".into(), vec!["u1".into()]).await.expect("recall").is_empty());
}

/// Two nodes on one database.
async fn two_nodes() -> (Store, store::AnyQueue, store::AnyQueue) {
    let store = Store::new(Engine::Postgres).await;
    let (first, _) = store.open().await;
    let (second, _) = store.open().await;
    (store, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_lease_is_one_nodes_and_a_dead_nodes_claims_return_with_it() {
    let (_store, first, second) = two_nodes().await;
    assert!(first.is_shared() && second.is_shared());
    let ttl = Duration::from_millis(1_500);
    let lease = || ("workspace:WS1".to_owned(), vec!["p".to_owned()]);
    let taken = first.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("free: taken");
    assert!(taken.taken);
    assert_eq!(first.hold_lease(lease().0, lease().1, ttl).await.expect("lease"), Some(store::Held::default()), "renewed");
    assert_eq!(second.hold_lease(lease().0, lease().1, ttl).await.expect("lease"), None, "the first node holds it");

    first.enqueue((0..5).map(|n| event(&format!("m-{n}"), "p")).collect(), DAY).await.expect("enqueue");
    let claimed = first.claim("p".into(), 3).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    // The first node stops renewing (it died): once the lease runs out, the second takes it, and
    // the events the first had claimed with it.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    let held = second.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("expired: taken");
    assert_eq!((held.taken, held.claimed, held.paused), (true, 3, 0));
    assert_eq!(first.hold_lease(lease().0, lease().1, ttl).await.expect("lease"), None, "taken over");
    let again = second.claim("p".into(), 100).await.expect("claim");
    assert_eq!(again.iter().map(|e| e.message_id.as_str()).collect::<Vec<_>>(), ["m-0", "m-1", "m-2", "m-3", "m-4"]);

    // Renewed without its pipelines, nothing moves; held again to start its workers afresh (they
    // stopped when the database did not answer, and could not give their events back), what this
    // node's own workers had claimed returns.
    let renewed = second.hold_lease(lease().0, Vec::new(), ttl).await.expect("lease").expect("held");
    assert_eq!(renewed, store::Held::default());
    let restarted = second.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("held");
    assert_eq!((restarted.taken, restarted.claimed), (false, 5));
    assert_eq!(second.claim("p".into(), 100).await.expect("claim").len(), 5);

    // Given up on a clean stop: the other node need not wait for it to run out.
    second.give_up_lease(lease().0).await.expect("give up");
    let held = first.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("given up: taken");
    assert_eq!((held.taken, held.claimed), (true, 5), "what the second node had claimed returns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_whose_lease_was_taken_records_nothing_for_the_events_it_lost() {
    let (_store, first, second) = two_nodes().await;
    let ttl = Duration::from_millis(1_000);
    let lease = || ("workspace:WS1".to_owned(), vec!["p".to_owned()]);
    first.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("free: taken");
    first.enqueue((0..3).map(|n| event(&format!("m-{n}"), "p")).collect(), DAY).await.expect("enqueue");
    let lost = first.claim("p".into(), 10).await.expect("claim");
    assert_eq!(lost.len(), 3);
    // The first node stalls past its lease (a long pause, a partition); the second takes the
    // workspace and its events, and is delivering them when the first wakes up.
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    second.hold_lease(lease().0, lease().1, ttl).await.expect("lease").expect("expired: taken");
    let held = second.claim("p".into(), 10).await.expect("claim");
    assert_eq!(held.iter().map(|e| e.id).collect::<Vec<_>>(), lost.iter().map(|e| e.id).collect::<Vec<_>>());

    // What the first node then records or gives back changes nothing.
    let notes = lost
        .iter()
        .map(|e| store::RetryNote { id: e.id, attempts: 1, code: "server_error".into(), status: Some(503), hint: None })
        .collect();
    first.note_retrying(notes).await.expect("note retrying");
    first.finish(lost.iter().map(|e| delivered(e.id)).collect()).await.expect("finish");
    first.release(lost.iter().map(|e| e.id).collect()).await.expect("release");
    let depth = second.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.claimed), (0, 3), "still the second node's");
    assert!(second.recent(10).await.expect("recent").iter().all(|r| r.state == State::Claimed));
    assert!(second.claim("p".into(), 10).await.expect("claim").is_empty(), "not given back to be claimed again");

    // The second node's own outcomes are recorded.
    second.finish(held.iter().map(|e| delivered(e.id)).collect()).await.expect("finish");
    assert!(second.recent(10).await.expect("recent").iter().all(|r| r.state == State::Delivered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_hears_of_events_another_node_queued() {
    let (_store, first, second) = two_nodes().await;
    let mut heard = first.queued_anywhere().expect("a shared store tells of events queued");
    // The listening connection comes up beside the pool: queue until it has heard once.
    let mut told = false;
    for n in 0..50 {
        second.enqueue(vec![event(&format!("m-{n}"), "p")], DAY).await.expect("enqueue");
        if tokio::time::timeout(Duration::from_millis(200), heard.recv()).await.is_ok() {
            told = true;
            break;
        }
    }
    assert!(told, "the first node was never told of the second node's events");
    // Told again for the next commit; a request of nothing but duplicates tells nothing.
    second.enqueue(vec![event("m-new", "p")], DAY).await.expect("enqueue");
    let next = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
    assert!(matches!(next, Ok(Ok(()))), "{next:?}");
    while heard.try_recv().is_ok() {}
    second.enqueue(vec![event("m-new", "p")], DAY).await.expect("enqueue");
    assert!(tokio::time::timeout(Duration::from_millis(500), heard.recv()).await.is_err(), "nothing new, nothing told");
    let dir = tempfile::tempdir().expect("dir");
    let (alone, _) = SqliteQueue::open(&dir.path().join("q.db")).expect("open");
    assert!(alone.queued_anywhere().is_none(), "one process: its collector wakes its workers itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_alive_are_those_renewing_their_own_lease() {
    let (_store, first, second) = two_nodes().await;
    let ttl = Duration::from_millis(1_000);
    first.hold_lease("node:a".into(), Vec::new(), ttl).await.expect("lease").expect("held");
    second.hold_lease("node:b".into(), Vec::new(), Duration::from_secs(60)).await.expect("lease").expect("held");
    assert_eq!(first.live_nodes().await.expect("nodes"), 2);
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(second.live_nodes().await.expect("nodes"), 1, "the first stopped renewing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_claiming_at_once_never_take_the_same_event() {
    let (_store, first, second) = two_nodes().await;
    for batch in 0..10 {
        first.enqueue((0..100).map(|n| event(&format!("b{batch}-{n}"), "p")).collect(), DAY).await.expect("enqueue");
    }
    let drain = |queue: store::AnyQueue| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = queue.claim("p".into(), 7).await.expect("claim");
                if claimed.is_empty() {
                    return ids;
                }
                ids.extend(claimed.iter().map(|event| event.id));
            }
        })
    };
    let (a, b) = (drain(first.clone()), drain(second.clone()));
    let (a, b) = (a.await.expect("drain"), b.await.expect("drain"));
    assert!(!a.is_empty() && !b.is_empty(), "both nodes claimed some: {} and {}", a.len(), b.len());
    let mut all: Vec<i64> = a.into_iter().chain(b).collect();
    all.sort_unstable();
    let claimed = all.len();
    all.dedup();
    assert_eq!((claimed, all.len()), (1_000, 1_000), "each event claimed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_starting_together_migrate_once_and_a_newer_database_is_refused() {
    let store = Store::new(Engine::Postgres).await;
    let opening: Vec<_> = (0..4)
        .map(|_| {
            let storage = store.storage.clone();
            tokio::spawn(async move { store::open(&storage).await.map(drop) })
        })
        .collect();
    for opened in opening {
        opened.await.expect("task").expect("every node opens, whichever migrates");
    }
    assert_eq!(store.run_sql("UPDATE signal_migrations SET applied_at = applied_at WHERE version = 1").await, 1);
    store.run_sql("INSERT INTO signal_migrations (version, applied_at) VALUES (999, 0)").await;
    let error = store::open(&store.storage).await.err().expect("refused");
    assert!(error.to_string().contains("version 999, made by a newer Signal"), "{error}");
}

async fn a_login_is_merged_once_and_only_after_its_anonymous_id_was_a_customer(engine: Engine) {
    let store = Store::new(engine).await;
    fn pair(a: &str, u: &str) -> (String, String) {
        (a.to_owned(), u.to_owned())
    }
    {
        let (queue, _) = store.open().await;
        // An anonymous id never delivered as a customer is not merged.
        let taken = queue.take_merges("WS1".into(), vec![], vec![pair("anon-1", "u1")]).await.expect("take");
        assert!(taken.is_empty(), "{taken:?}");
        // Delivered once as a customer, then a login: merged; another workspace knows nothing of it.
        let taken = queue.take_merges("WS1".into(), vec!["anon-1".into()], vec![pair("anon-1", "u1")]).await.expect("take");
        assert_eq!(taken, [pair("anon-1", "u1")]);
        let elsewhere = queue.take_merges("WS2".into(), vec![], vec![pair("anon-1", "u1")]).await.expect("take");
        assert!(elsewhere.is_empty());
        // Once per pair: a second login, or the same in one call twice.
        let again = queue
            .take_merges("WS1".into(), vec!["anon-1".into()], vec![pair("anon-1", "u1"), pair("anon-1", "u1")])
            .await
            .expect("take");
        assert!(again.is_empty(), "{again:?}");
    }
    // Across a restart (and, on PostgreSQL, nodes): remembered in the store.
    let (queue, _) = store.open().await;
    assert!(queue.take_merges("WS1".into(), vec![], vec![pair("anon-1", "u1")]).await.expect("take").is_empty());
    // Callers racing for one login: exactly one takes it.
    queue.take_merges("WS1".into(), vec!["anon-2".into()], vec![]).await.expect("note");
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let queue = queue.clone();
        racers.spawn(async move { queue.take_merges("WS1".into(), vec![], vec![pair("anon-2", "u2")]).await });
    }
    let mut taken = 0;
    while let Some(result) = racers.join_next().await {
        taken += result.expect("joined").expect("take").len();
    }
    assert_eq!(taken, 1, "one merge, not {taken}");
}

