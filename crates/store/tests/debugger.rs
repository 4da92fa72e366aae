//! What the Event Debugger asks of the queue, on both engines (a real SQLite file, a real
//! PostgreSQL database): listings filtered and paged newest first, one event in full, the live
//! feed, replays of failed events, retention that never touches waiting events; and an SQLite file
//! written before the debugger existed.

mod common;

use std::time::Duration;

use common::{Engine, Store};

use store::{
    Labels, Listing, NewEvent, Settlement, Queue, Requeue, Retention, RetryNote, Shown, SqliteQueue, State,
};

on_both_engines!(
    listings_filter_and_page_newest_first,
    one_event_in_full_and_the_feed_of_changes,
    failed_events_are_replayed_in_steps_and_paused_ones_resumed,
    retention_prunes_old_and_surplus_settled_events_and_never_waiting_ones,
    time_filters_are_exact_over_events_hours_apart,
    failed_events_wait_for_a_replay_whatever_the_count_and_go_only_by_age,
);

const DAY: Duration = Duration::from_secs(86_400);

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis())
        .expect("ms")
}

fn event(n: usize, name: &str, customer: &str, received_at_ms: i64) -> NewEvent {
    NewEvent {
        source: "web".into(),
        pipeline: if n % 2 == 0 { "even".into() } else { "odd".into() },
        message_id: format!("m-{n}"),
        received_at_ms,
        payload: format!(r#"{{"type":"track","event":"{name}","user_id":"{customer}","message_id":"m-{n}"}}"#),
        labels: Labels {
            call_type: Some("track".into()),
            event: Some(name.into()),
            customer_id: Some(customer.into()),
        },
        dropped: None,
    }
}

fn settled(id: i64, state: State, status: Option<u16>) -> Settlement {
    Settlement {
        id,
        state,
        code: status.map(|status| status.to_string()),
        detail: (state == State::Failed).then(|| "Wrong Workspace ID or Data API key".to_owned()),
        attempts: 1,
        attempt_log: vec![store::AttemptRecord { status, latency_ms: 21 }],
        http_status: status,
        response_body: Some(br#"{"status":"success"}"#.to_vec()),
        body_sent: Some(br#"{"type":"event"}"#.to_vec()),
        latency_ms: Some(40),
        finished_at_ms: now_ms(),
    }
}

async fn claim_all(queue: &impl Queue) -> Vec<store::Claimed> {
    let mut claimed = queue.claim("even".into(), 1000).await.expect("claim");
    claimed.extend(queue.claim("odd".into(), 1000).await.expect("claim"));
    claimed.sort_by_key(|event| event.id);
    claimed
}

async fn listings_filter_and_page_newest_first(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let start = now_ms();
    let events: Vec<NewEvent> = (0..30)
        .map(|n| {
            let name = if n % 3 == 0 { "Order Completed" } else { "Product Viewed" };
            event(n, name, &format!("u_{}", n % 5), start + i64::try_from(n).expect("n") * 1000)
        })
        .collect();
    queue.enqueue(events, DAY).await.expect("enqueue");
    let claimed = claim_all(&queue).await;
    // The first ten delivered, the next five failed with 401; the rest wait.
    let mut outcomes: Vec<Settlement> = claimed[..10].iter().map(|e| settled(e.id, State::Delivered, Some(200))).collect();
    outcomes.extend(claimed[10..15].iter().map(|e| settled(e.id, State::Failed, Some(401))));
    queue.finish(outcomes).await.expect("finish");
    queue.release(claimed[15..].iter().map(|e| e.id).collect()).await.expect("release");

    let all = queue.list(Listing { limit: 100, ..Listing::default() }).await.expect("list");
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first");
    assert_eq!(all[0].message_id, "m-29");

    let failed = queue.list(Listing { state: Some(Shown::Failed), ..Listing::default() }).await.expect("list");
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|line| line.state == State::Failed && line.status == Some(401)));
    assert_eq!(failed[0].hint.as_deref(), Some("Wrong Workspace ID or Data API key"));

    let pending = queue.list(Listing { state: Some(Shown::Pending), ..Listing::default() }).await.expect("list");
    assert_eq!(pending.len(), 15);

    let orders = queue
        .list(Listing { event: Some("Order Completed".into()), customer_id: Some("u_0".into()), ..Listing::default() })
        .await
        .expect("list");
    // n % 3 == 0 and n % 5 == 0: 0, 15.
    assert_eq!(orders.iter().map(|line| line.message_id.as_str()).collect::<Vec<_>>(), ["m-15", "m-0"]);
    assert_eq!(orders[0].labels.event.as_deref(), Some("Order Completed"));

    let odd = queue.list(Listing { pipeline: Some("odd".into()), ..Listing::default() }).await.expect("list");
    assert_eq!(odd.len(), 15);
    assert!(odd.iter().all(|line| line.pipeline == "odd"));

    let window = queue
        .list(Listing { since_ms: Some(start + 10_000), until_ms: Some(start + 12_000), ..Listing::default() })
        .await
        .expect("list");
    assert_eq!(window.iter().map(|line| line.message_id.as_str()).collect::<Vec<_>>(), ["m-11", "m-10"]);

    // Pages of seven, each continuing below the last id seen, cover every event once.
    let mut seen = Vec::new();
    let mut before_id = None;
    loop {
        let page = queue.list(Listing { limit: 7, before_id, ..Listing::default() }).await.expect("list");
        if page.is_empty() {
            break;
        }
        before_id = page.last().map(|line| line.id);
        seen.extend(page.into_iter().map(|line| line.id));
    }
    assert_eq!(seen, all.iter().map(|line| line.id).collect::<Vec<_>>());
}

async fn line(feed: &mut tokio::sync::broadcast::Receiver<store::Change>, what: &str) -> store::Summary {
    match tokio::time::timeout(Duration::from_secs(5), feed.recv()).await {
        Ok(Ok(store::Change::Line(summary))) => summary,
        other => panic!("{what}: {other:?}"),
    }
}

async fn one_event_in_full_and_the_feed_of_changes(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let mut feed = queue.subscribe();
    queue.enqueue(vec![event(0, "Order Completed", "u_8842", now_ms())], DAY).await.expect("enqueue");
    let new = line(&mut feed, "a line for the new event").await;
    assert_eq!((new.message_id.as_str(), new.state), ("m-0", State::Pending));
    assert_eq!(new.labels.customer_id.as_deref(), Some("u_8842"));

    let claimed = queue.claim("even".into(), 10).await.expect("claim");
    let id = claimed[0].id;
    queue
        .note_retrying(vec![RetryNote { id, attempts: 1, code: "503".into(), status: Some(503), hint: None }])
        .await
        .expect("note");
    let retrying = line(&mut feed, "a line for the retry").await;
    assert_eq!((retrying.id, retrying.state, retrying.status), (id, State::Retrying, Some(503)));
    assert_eq!(Shown::of(retrying.state).as_str(), "retrying");

    queue.finish(vec![settled(id, State::Delivered, Some(200))]).await.expect("finish");
    let delivered = line(&mut feed, "a line for the delivery").await;
    assert_eq!((delivered.id, delivered.state, delivered.status), (id, State::Delivered, Some(200)));

    // A paused event resumed is told too.
    queue.enqueue(vec![event(2, "Signed Up", "u_2", now_ms())], DAY).await.expect("enqueue");
    line(&mut feed, "the second event").await;
    let paused = queue.claim("even".into(), 10).await.expect("claim");
    queue.finish(vec![settled(paused[0].id, State::Paused, Some(401))]).await.expect("finish");
    assert_eq!(line(&mut feed, "paused").await.state, State::Paused);
    assert_eq!(queue.resume_paused(vec!["even".into()]).await.expect("resume"), 1);
    assert_eq!(line(&mut feed, "resumed").await.state, State::Pending);

    let detail = queue.detail(id).await.expect("detail").expect("kept");
    assert!(detail.payload.contains(r#""user_id":"u_8842""#), "{}", detail.payload);
    assert_eq!(detail.body_sent.as_deref(), Some(&br#"{"type":"event"}"#[..]));
    assert_eq!(detail.attempt_log, [store::AttemptRecord { status: Some(200), latency_ms: 21 }]);
    assert_eq!(detail.latency_ms, Some(40));
    assert!(detail.finished_at_ms.is_some());
    assert!(queue.detail(id + 1000).await.expect("detail").is_none());
}

async fn failed_events_are_replayed_in_steps_and_paused_ones_resumed(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let start = now_ms();
    queue
        .enqueue((0..12).map(|n| event(n, "Signed Up", "u_1", start)).collect(), DAY)
        .await
        .expect("enqueue");
    let claimed = claim_all(&queue).await;
    let mut outcomes: Vec<Settlement> = claimed[..9].iter().map(|e| settled(e.id, State::Failed, None)).collect();
    outcomes.extend(claimed[9..].iter().map(|e| settled(e.id, State::Paused, Some(401))));
    queue.finish(outcomes).await.expect("finish");

    let step = |limit| Requeue {
        state: State::Failed,
        pipeline: None,
        since_ms: None,
        until_ms: None,
        after_id: None,
        limit,
    };
    assert_eq!(queue.count_requeue(step(0)).await.expect("count"), 9);
    let first = queue.requeue(step(4)).await.expect("requeue");
    assert_eq!(first.requeued, 4);
    let after_first = Requeue { after_id: first.last_id, ..step(0) };
    assert_eq!(queue.count_requeue(after_first.clone()).await.expect("count"), 5, "five still to do");

    // One of the four fails again at once: the same replay, continuing after the first step, does
    // not queue it a second time.
    let again = queue.claim("even".into(), 1).await.expect("claim");
    queue.finish(vec![settled(again[0].id, State::Failed, Some(400))]).await.expect("finish");
    let rest = queue.requeue(Requeue { limit: 100, ..after_first }).await.expect("requeue");
    assert_eq!(rest.requeued, 5);
    assert!(rest.last_id > first.last_id);
    let failed = queue.list(Listing { state: Some(Shown::Failed), ..Listing::default() }).await.expect("list");
    assert_eq!(failed.iter().map(|line| line.id).collect::<Vec<_>>(), [again[0].id], "left for another replay");
    queue.requeue(step(100)).await.expect("requeue");
    let pending = queue.list(Listing { state: Some(Shown::Pending), ..Listing::default() }).await.expect("list");
    assert_eq!(pending.len(), 9);
    assert!(pending.iter().all(|line| line.code.is_none() && line.attempts == 0), "the old fate is cleared");
    let cleared = queue.detail(pending[0].id).await.expect("detail").expect("kept");
    assert!(cleared.body_sent.is_none() && cleared.attempt_log.is_empty() && cleared.response_body.is_none());

    let only_even = Requeue { state: State::Paused, pipeline: Some("even".into()), ..step(100) };
    let even = queue.requeue(only_even).await.expect("requeue");
    assert_eq!(even.requeued, 1, "paused: m-10 is the only even one");
    assert_eq!(queue.resume_paused(vec!["odd".into(), "nowhere".into()]).await.expect("resume"), 2);
    assert_eq!(queue.depth().await.expect("depth").pending, 12);
}

async fn retention_prunes_old_and_surplus_settled_events_and_never_waiting_ones(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let now = now_ms();
    let old = now - 10 * 86_400_000;
    // Ten old events (eight settled, two still pending), then ten recent ones, all settled.
    queue.enqueue((0..10).map(|n| event(n, "Signed Up", "u_1", old)).collect(), DAY).await.expect("enqueue");
    let claimed = claim_all(&queue).await;
    queue.finish(claimed[..8].iter().map(|e| settled(e.id, State::Delivered, Some(200))).collect()).await.expect("finish");
    queue.release(claimed[8..].iter().map(|e| e.id).collect()).await.expect("release");
    queue.enqueue((10..20).map(|n| event(n, "Signed Up", "u_1", now)).collect(), DAY).await.expect("enqueue");
    let recent = claim_all(&queue).await;
    let recent: Vec<_> = recent.into_iter().filter(|e| e.received_at_ms == now).collect();
    queue.finish(recent.iter().map(|e| settled(e.id, State::Delivered, Some(200))).collect()).await.expect("finish");

    let week = Retention { max_age: Some(7 * DAY), max_events: None };
    assert_eq!(queue.prune(week, 3).await.expect("prune").total, 3, "in steps");
    let mut pruned = 3;
    loop {
        let step = queue.prune(week, 3).await.expect("prune").total;
        if step == 0 {
            break;
        }
        pruned += step;
    }
    assert_eq!(pruned, 8, "the eight old settled events");
    let left = queue.list(Listing::default()).await.expect("list");
    assert_eq!(left.len(), 12);
    assert_eq!(left.iter().filter(|line| line.received_at_ms == old).count(), 2, "old but waiting: kept");

    let five = Retention { max_age: None, max_events: Some(5) };
    while queue.prune(five, 100).await.expect("prune").total > 0 {}
    let left = queue.list(Listing::default()).await.expect("list");
    let settled_left = left.iter().filter(|line| line.state == State::Delivered).count();
    assert_eq!(settled_left, 5, "the newest five settled events");
    assert_eq!(left.len(), 7, "and the two waiting ones");
}

#[tokio::test]
async fn a_file_from_before_the_debugger_is_brought_up_to_date() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("signal.db");
    {
        // The first release's table, with one waiting event.
        let connection = rusqlite::Connection::open(&path).expect("open");
        connection
            .execute_batch(
                "CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, pipeline TEXT NOT NULL,
                    message_id TEXT NOT NULL, received_at INTEGER NOT NULL, payload TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', code TEXT, detail TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0, attempt_log TEXT, http_status INTEGER,
                    response_body BLOB, body_sent BLOB, latency_ms INTEGER, finished_at INTEGER);
                 CREATE INDEX events_waiting ON events (state) WHERE state IN ('pending', 'claimed', 'paused');
                 INSERT INTO events (source, pipeline, message_id, received_at, payload)
                 VALUES ('web', 'even', 'm-old', 1, '{}');",
            )
            .expect("old schema");
    }
    let (queue, _) = SqliteQueue::open(&path).expect("open an old file");
    let lines = queue.list(Listing::default()).await.expect("list");
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].message_id.as_str(), lines[0].labels.event.clone()), ("m-old", None));
    queue.enqueue(vec![event(2, "Signed Up", "u_1", now_ms())], DAY).await.expect("enqueue");
    let by_name = queue.list(Listing { event: Some("Signed Up".into()), ..Listing::default() }).await.expect("list");
    assert_eq!(by_name.len(), 1);
    assert_eq!(queue.claim("even".into(), 10).await.expect("claim").len(), 2, "the old event still goes");
}

async fn time_filters_are_exact_over_events_hours_apart(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let start = now_ms() - 50 * 600_000;
    // Fifty events ten minutes apart, queued in five requests.
    for chunk in 0..5 {
        let events = (chunk * 10..chunk * 10 + 10)
            .map(|n| event(n, "Signed Up", "u_1", start + i64::try_from(n).expect("n") * 600_000))
            .collect();
        queue.enqueue(events, DAY).await.expect("enqueue");
    }
    let names = |lines: Vec<store::Summary>| lines.into_iter().map(|line| line.message_id).collect::<Vec<_>>();
    let between = Listing { since_ms: Some(start + 12 * 600_000), until_ms: Some(start + 15 * 600_000), ..Listing::default() };
    assert_eq!(names(queue.list(between).await.expect("list")), ["m-14", "m-13", "m-12"]);
    let early = Listing { until_ms: Some(start + 2 * 600_000 + 1), ..Listing::default() };
    assert_eq!(names(queue.list(early).await.expect("list")), ["m-2", "m-1", "m-0"]);
    let late = Listing { since_ms: Some(start + 48 * 600_000), ..Listing::default() };
    assert_eq!(names(queue.list(late).await.expect("list")), ["m-49", "m-48"]);
    let future = Listing { since_ms: Some(now_ms() + 3_600_000), ..Listing::default() };
    assert!(queue.list(future).await.expect("list").is_empty());
    let before_all = Listing { until_ms: Some(start - 3_600_000), ..Listing::default() };
    assert!(queue.list(before_all).await.expect("list").is_empty());
}

async fn failed_events_wait_for_a_replay_whatever_the_count_and_go_only_by_age(engine: Engine) {
    let store = Store::new(engine).await;
    let (queue, _) = store.open().await;
    let now = now_ms();
    let old = now - 10 * 86_400_000;
    queue.enqueue((0..4).map(|n| event(n, "Signed Up", "u_1", old)).collect(), DAY).await.expect("enqueue");
    queue.enqueue((4..20).map(|n| event(n, "Signed Up", "u_1", now)).collect(), DAY).await.expect("enqueue");
    let claimed = claim_all(&queue).await;
    // The four old ones and four recent ones failed; the rest were delivered.
    let mut outcomes: Vec<Settlement> = claimed[..8].iter().map(|e| settled(e.id, State::Failed, Some(400))).collect();
    outcomes.extend(claimed[8..].iter().map(|e| settled(e.id, State::Delivered, Some(200))));
    queue.finish(outcomes).await.expect("finish");

    let two = Retention { max_age: None, max_events: Some(2) };
    let mut by_count = store::Pruned::default();
    loop {
        let step = queue.prune(two, 100).await.expect("prune");
        if step.total == 0 {
            break;
        }
        by_count.total += step.total;
        by_count.failed += step.failed;
    }
    assert_eq!((by_count.total, by_count.failed), (10, 0), "the delivered ones past the count, no failed one");
    let failed = queue.list(Listing { state: Some(Shown::Failed), ..Listing::default() }).await.expect("list");
    assert_eq!(failed.len(), 8);

    let week = Retention { max_age: Some(7 * DAY), max_events: None };
    let by_age = queue.prune(week, 100).await.expect("prune");
    assert_eq!((by_age.total, by_age.failed), (4, 4), "the four failed ten days ago");
    let failed = queue.list(Listing { state: Some(Shown::Failed), ..Listing::default() }).await.expect("list");
    assert_eq!(failed.len(), 4);
}
