//! The server as a library, in one process: `server::run` on loopback ports with a queue in a
//! temporary SQLite file and a MoEngage sandbox as the destination. The collector commits before it
//! answers and refuses what the queue must never see; the worker claims, delivers and records each
//! event's fate; a refused key pauses the integration; shutdown returns.

use std::time::Duration;

use serde_json::{Value, json};
use store::{Queue, State};

const WRITE_KEY: &str = "site-key";

struct Running {
    _dir: tempfile::TempDir,
    collector: String,
    sandbox: String,
    queue: store::AnyQueue,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), server::ServerError>>,
    http: reqwest::Client,
}

async fn start(api_key: &str) -> Running {
    // Before this test's own HTTP client is built (the server installs it too, later).
    sender::install_crypto_provider();
    // The sandbox's own workspace: `sandbox`, with the key `sandbox-key`.
    let sandbox =
        sandbox::spawn_on_loopback(sandbox::SandboxConfig::default()).await.expect("the sandbox starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nstorage:\n  sqlite: signal.db\n\
         sources:\n  site:\n    write_key: {WRITE_KEY}\n\
         integrations:\n  shop:\n    workspace_id: sandbox\n    data_api_key: {api_key}\n    data_center: \"01\"\n    endpoint: {sandbox}\n\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n"
    );
    let config = config::check("signal.yaml", &text, dir.path(), &|_| None).expect("a valid configuration");
    let (queue, _) = store::open(&config.storage).await.expect("the queue opens");
    let listeners = server::Listeners::bind(&config).await.expect("loopback ports");
    let collector = format!("http://{}", listeners.collector.local_addr().expect("an address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::run(
        config,
        queue.clone(),
        listeners,
        async move {
            let _ = stopped.await;
        },
        None,
    ));
    Running { _dir: dir, collector, sandbox, queue, stop: Some(stop), served, http: reqwest::Client::new() }
}

impl Running {
    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.collector))
            .basic_auth(key, Some(""))
            .json(&body)
            .send()
            .await
            .expect("the collector answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    async fn actions(&self, user: &str) -> Vec<Value> {
        let url = format!("{}/sandbox/workspaces/sandbox/customers/{user}/actions", self.sandbox);
        let listed: Value = self.http.get(url).send().await.expect("the sandbox answers").json().await.expect("JSON");
        listed["actions"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until every event has a fate, and returns the records by `message_id`.
    async fn settled(&self, count: usize) -> Vec<store::EventRecord> {
        for _ in 0..200 {
            let records = self.queue.recent(100).await.expect("recent events");
            if records.len() >= count && records.iter().all(|record| record.outcome.is_some()) {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the events were not settled: {:?}", self.queue.recent(100).await);
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let returned = tokio::time::timeout(Duration::from_secs(10), &mut self.served).await;
        assert!(matches!(returned, Ok(Ok(Ok(())))), "the server stops cleanly: {returned:?}");
    }
}

fn record<'a>(records: &'a [store::EventRecord], message_id: &str) -> &'a store::EventRecord {
    records.iter().find(|record| record.message_id == message_id).expect("a record of the event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_queues_and_the_worker_records_each_fate() {
    let running = start("sandbox-key").await;
    let batch = json!({"batch": [
        {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": "m-order", "properties": {"revenue": 12}},
        {"type": "page", "name": "Home", "userId": "u-1", "messageId": "m-page"},
        {"type": "group", "userId": "u-1", "groupId": "acme", "messageId": "m-group"},
        {"type": "track", "event": "Not Mapped", "userId": "u-1", "messageId": "m-unmapped"},
    ]});
    let (status, answer) = running.post("/v1/batch", WRITE_KEY, batch.clone()).await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(4)), "{answer}");

    let records = running.settled(4).await;
    let order = record(&records, "m-order");
    assert_eq!(order.state, State::Delivered);
    let outcome = order.outcome.as_ref().expect("an outcome");
    assert_eq!((outcome.http_status, outcome.code.as_deref(), outcome.attempts), (Some(200), Some("200"), 1));
    assert!(
        outcome.body_sent.as_deref().is_some_and(|body| String::from_utf8_lossy(body).contains(r#""customer_id":"u-1""#)),
        "the request sent is kept"
    );
    assert_eq!(record(&records, "m-page").state, State::Delivered);
    for (message_id, code) in [("m-group", "unsupported_type"), ("m-unmapped", "not_in_blueprint")] {
        let dropped = record(&records, message_id);
        assert_eq!(dropped.state, State::Dropped, "{message_id}");
        assert_eq!(dropped.outcome.as_ref().and_then(|outcome| outcome.code.as_deref()), Some(code));
    }
    // Delivered concurrently: in either order.
    let mut actions: Vec<String> = running
        .actions("u-1")
        .await
        .into_iter()
        .filter_map(|action| action["action"].as_str().map(str::to_owned))
        .collect();
    actions.sort();
    assert_eq!(actions, ["Order Completed", "Page Viewed"]);

    // The same batch again: acknowledged, counted as duplicates, delivered once.
    let (status, answer) = running.post("/v1/batch", WRITE_KEY, batch).await;
    assert_eq!((status, answer["duplicates"].clone()), (200, json!(4)), "{answer}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_refused_never_reaches_the_queue() {
    let running = start("sandbox-key").await;
    let event = json!({"type": "track", "event": "Order Completed", "userId": "u-2"});
    assert_eq!(running.post("/v1/track", "guess", event).await.0, 401);
    let (status, answer) = running.post("/v1/track", WRITE_KEY, json!({"type": "track", "userId": "u-2"})).await;
    assert_eq!((status, answer["error"]["field"].clone()), (400, json!("event")), "{answer}");
    let depth = running.queue.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.claimed), (0, 0));
    assert!(running.queue.recent(10).await.expect("recent").is_empty(), "nothing was stored");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_pauses_the_integration_and_its_events_wait() {
    let running = start("wrong-key").await;
    for n in 0..3 {
        let event = json!({"type": "track", "event": "Order Completed", "userId": "u-3", "messageId": format!("p-{n}")});
        assert_eq!(running.post("/v1/track", WRITE_KEY, event).await.0, 200);
    }
    let mut paused = Vec::new();
    for _ in 0..200 {
        paused = running.queue.recent(10).await.expect("recent");
        if paused.iter().any(|record| record.state == State::Paused) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = paused.iter().find(|record| record.state == State::Paused).expect("a paused event");
    let outcome = first.outcome.as_ref().expect("an outcome");
    assert_eq!(outcome.code.as_deref(), Some("401"));
    assert!(outcome.detail.as_deref().is_some_and(|detail| detail.contains("Data API key")), "{outcome:?}");
    assert!(paused.iter().all(|record| record.state != State::Delivered && record.state != State::Failed));
    assert!(running.actions("u-3").await.is_empty(), "nothing reached the workspace");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_the_blueprint_drops_is_settled_at_once_and_refused_events_wait_for_nothing() {
    let running = start("sandbox-key").await;
    // 2,000 events no blueprint maps, and 1,000 the collector refuses: none of them needs a request.
    for round in 0..2 {
        let batch: Vec<Value> = (0..1_000)
            .map(|n| json!({"type": "track", "event": "Not Mapped", "userId": "u-4", "messageId": format!("d-{round}-{n}")}))
            .collect();
        assert_eq!(running.post("/v1/batch", WRITE_KEY, json!({"batch": batch})).await.0, 200);
    }
    let refused: Vec<Value> = (0..1_000).map(|_| json!({"type": "nope"})).collect();
    let (status, answer) = running.post("/v1/batch", WRITE_KEY, json!({"batch": refused})).await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(0)));
    let order = json!({"type": "track", "event": "Order Completed", "userId": "u-4", "messageId": "d-order"});
    assert_eq!(running.post("/v1/track", WRITE_KEY, order).await.0, 200);

    let started = std::time::Instant::now();
    loop {
        let depth = running.queue.depth().await.expect("depth");
        if depth.pending == 0 && depth.claimed == 0 && !running.actions("u-4").await.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still waiting: {depth:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
}
