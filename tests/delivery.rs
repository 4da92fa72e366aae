//! The shared sender delivering to MoEngage's emulator over real loopback HTTP: the troubleshooting
//! table's rows end as they should, permanent answers are never retried, faults are retried until
//! every event is in the sandbox's store, and the key never shows.

use std::sync::Arc;
use std::time::Duration;

use moengage::{ApiKey, Credentials, MoEngageDestination};
use sandbox::{Faults, SandboxConfig};
use sender::{Ending, HttpSender, NoAnswer, RetryPolicy};
use serde_json::{Value, json};

const KEY: &str = "sup3r-s3cret-data-key";

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        window: Duration::from_secs(3),
    }
}

async fn start(config: SandboxConfig) -> String {
    sender::install_crypto_provider();
    sandbox::spawn_on_loopback(config).await.expect("sandbox on loopback")
}

fn sandbox_config(faults: Faults) -> SandboxConfig {
    SandboxConfig { workspaces: vec![("WS1".into(), ApiKey::new(KEY))], faults, ..SandboxConfig::default() }
}

fn destination(base: &str, key: &str) -> MoEngageDestination {
    let credentials =
        Credentials::new("WS1", ApiKey::new(key), "01".parse().expect("dc")).expect("credentials");
    MoEngageDestination::new(credentials, Some(base), 30_000)
}

fn body(customer: &str, order: usize) -> Vec<u8> {
    json!({
        "type": "event", "customer_id": customer,
        "actions": [{"action": "Order Completed", "platform": "web", "attributes": {"order_id": order}}]
    })
    .to_string()
    .into_bytes()
}

async fn stored(base: &str, customer: &str) -> Vec<Value> {
    let listed: Value = reqwest::get(format!("{base}/sandbox/workspaces/WS1/customers/{customer}/actions"))
        .await
        .expect("read back")
        .json()
        .await
        .expect("json");
    listed["actions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn each_troubleshooting_row_ends_as_documented_and_permanent_errors_are_tried_once() {
    let base = start(sandbox_config(Faults::default())).await;
    let sender = HttpSender::new(quick_retries(), Duration::from_secs(5)).expect("client");

    let delivered = sender.send(&destination(&base, KEY), body("u_8842", 1)).await;
    assert_eq!((delivered.ending, delivered.attempts), (Ending::Delivered, 1));
    assert_eq!(delivered.last.as_ref().map(|answer| answer.status), Ok(200));
    assert_eq!(stored(&base, "u_8842").await.len(), 1);

    let cases: [(MoEngageDestination, Vec<u8>, u16, &str); 3] = [
        (destination(&base, "wrong-key"), body("u_1", 1), 401, "Wrong Workspace ID or Data API key"),
        (
            destination(&base, KEY),
            b"{\"type\":\"event\",\"actions\":[]}".to_vec(),
            400,
            "Missing customer_id",
        ),
        (destination(&base, KEY), body(&"x".repeat(140_000), 1), 413, "Event exceeds 128 KB"),
    ];
    for (destination, request, status, cause) in cases {
        let delivery = sender.send(&destination, request).await;
        assert_eq!((delivery.ending, delivery.attempts), (Ending::Permanent, 1), "{status}");
        let answer = delivery.last.expect("an answer");
        assert_eq!(answer.status, status);
        let classification = moengage::classify(answer.status, &answer.body);
        assert!(classification.hint.is_some_and(|hint| hint.contains(cause)), "{status}");
        assert!(!format!("{answer:?}{destination:?}").contains(KEY), "the key never shows");
    }
}

#[tokio::test]
async fn a_host_that_does_not_answer_is_retried_until_the_window_closes() {
    // Bind and drop a listener to get a loopback port that refuses connections.
    let closed =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address");
    let sender = HttpSender::new(quick_retries(), Duration::from_secs(1)).expect("client");
    let started = tokio::time::Instant::now();
    let delivery = sender.send(&destination(&format!("http://{closed}"), KEY), body("u_2", 1)).await;
    assert_eq!(delivery.ending, Ending::GaveUp);
    assert!(delivery.attempts > 3, "{} attempts", delivery.attempts);
    assert!(matches!(delivery.last, Err(NoAnswer::Connection(_))), "{:?}", delivery.last);
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = format!("{:?}", delivery.last);
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_20_percent_500s_and_5_percent_429s_every_event_arrives_once() {
    let base = start(sandbox_config(Faults {
        error_rate: 0.2,
        throttle_rate: 0.05,
        retry_after_secs: 0,
        ..Faults::default()
    }))
    .await;
    let sender = Arc::new(
        HttpSender::new(
            RetryPolicy {
                first_delay: Duration::from_millis(2),
                max_delay: Duration::from_millis(20),
                window: Duration::from_secs(20),
            },
            Duration::from_secs(5),
        )
        .expect("client"),
    );
    let destination = Arc::new(destination(&base, KEY));
    let events = 400;
    let mut tasks = Vec::new();
    for order in 0..events {
        let (sender, destination) = (sender.clone(), destination.clone());
        tasks.push(tokio::spawn(async move { sender.send(&*destination, body("u_faults", order)).await }));
    }
    let mut retried = 0;
    for task in tasks {
        let delivery = task.await.expect("task");
        assert_eq!(delivery.ending, Ending::Delivered);
        retried += usize::from(delivery.attempts > 1);
    }
    let actions = stored(&base, "u_faults").await;
    let mut orders: Vec<u64> = actions.iter().filter_map(|a| a["attributes"]["order_id"].as_u64()).collect();
    orders.sort_unstable();
    orders.dedup();
    assert_eq!(actions.len(), events, "no event lost and none duplicated (no connection was dropped)");
    assert_eq!(orders.len(), events);
    assert!(retried > events / 10, "faults were injected and retried: {retried}");
}
