//! The shared sender delivering to MoEngage's emulator over real loopback HTTP: the troubleshooting
//! table's rows end as they should, permanent answers are never retried, faults are retried until
//! every event is in the sandbox's store, a burst stays under the limit, and the key never shows.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use moengage::{ApiKey, Credentials, MoEngageDestination, RequestKind};
use sandbox::{Faults, SandboxConfig};
use sender::{Ending, HttpSender, NoAnswer, RateLimit, Request, RetryPolicy};
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
    destination_of("WS1", base, key)
}

fn destination_of(workspace: &str, base: &str, key: &str) -> MoEngageDestination {
    let credentials =
        Credentials::new(workspace, ApiKey::new(key), "01".parse().expect("dc")).expect("credentials");
    MoEngageDestination::new(credentials, Some(base), 30_000)
}

async fn sandbox_stats(base: &str) -> Value {
    reqwest::get(format!("{base}/sandbox/stats")).await.expect("stats").json().await.expect("json")
}

/// A request for the Track Event API: an order for `customer`.
fn body(customer: &str, order: usize) -> Request {
    let body = json!({
        "type": "event", "customer_id": customer,
        "actions": [{"action": "Order Completed", "platform": "web", "attributes": {"order_id": order}}]
    });
    RequestKind::Event.request(body.to_string().into_bytes())
}

async fn stored(base: &str, customer: &str) -> Vec<Value> {
    stored_in(base, "WS1", customer).await
}

async fn stored_in(base: &str, workspace: &str, customer: &str) -> Vec<Value> {
    let listed: Value =
        reqwest::get(format!("{base}/sandbox/workspaces/{workspace}/customers/{customer}/actions"))
            .await
            .expect("read back")
            .json()
            .await
            .expect("json");
    listed["actions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn each_troubleshooting_row_ends_as_documented_and_permanent_errors_are_tried_once() {
    let base = start(SandboxConfig {
        workspaces: vec![("WS1".into(), ApiKey::new(KEY)), ("WS_SUSPENDED".into(), ApiKey::new(KEY))],
        suspended: vec!["WS_SUSPENDED".into()],
        ..SandboxConfig::default()
    })
    .await;
    let sender = HttpSender::new(quick_retries(), Duration::from_secs(5)).expect("client");

    let delivered = sender.send(&destination(&base, KEY), body("u_8842", 1)).await;
    assert_eq!((delivered.ending, delivered.attempts), (Ending::Delivered, 1));
    assert_eq!(delivered.last.as_ref().map(|answer| answer.status), Ok(200));
    assert_eq!(stored(&base, "u_8842").await.len(), 1);

    let permanent: [(MoEngageDestination, Request, u16, &str); 4] = [
        (destination(&base, "wrong-key"), body("u_1", 1), 401, "Wrong Workspace ID or Data API key"),
        (destination_of("WS_SUSPENDED", &base, KEY), body("u_1", 1), 403, "Account suspended or blocked"),
        (destination(&format!("{base}/not-moengage"), KEY), body("u_1", 1), 404, "answered 404"),
        (
            destination(&base, KEY),
            RequestKind::Event.request(b"{\"type\":\"event\",\"actions\":[]}".to_vec()),
            400,
            "Missing customer_id",
        ),
    ];
    for (destination, request, status, cause) in permanent {
        let sent = sender.deliver(&destination, request).await;
        let (delivery, classification) = (sent.delivery, sent.classification);
        assert_eq!((delivery.ending, delivery.attempts), (Ending::Permanent, 1), "{status}");
        let answer = delivery.last.expect("an answer");
        assert_eq!(answer.status, status);
        assert!(classification.hint.is_some_and(|hint| hint.contains(cause)), "{status}");
        assert_eq!(classification.pause, matches!(status, 401 | 403), "{status}");
        assert!(!format!("{answer:?}{destination:?}").contains(KEY), "the key never shows");
    }
    assert_eq!(
        sandbox_stats(&base).await["requests"],
        4,
        "one request each; the 404 never reached the API path"
    );

    // 429 and 5xx are retried until the window closes, then failed with their cause.
    let retried: [(Faults, u16, &str); 2] = [
        (
            Faults { throttle_rate: 1.0, retry_after_secs: 0, ..Faults::default() },
            429,
            "Over 30,000 events/minute",
        ),
        (Faults { error_rate: 1.0, ..Faults::default() }, 500, "Signal retries"),
    ];
    let short = RetryPolicy { window: Duration::from_millis(400), ..quick_retries() };
    let sender = HttpSender::new(short, Duration::from_secs(5)).expect("client");
    for (faults, status, cause) in retried {
        let base = start(sandbox_config(faults)).await;
        let sent = sender.deliver(&destination(&base, KEY), body("u_1", 1)).await;
        let (delivery, classification) = (sent.delivery, sent.classification);
        assert_eq!(delivery.ending, Ending::GaveUp, "{status}");
        assert!(delivery.attempts > 2, "{status}: {} attempts", delivery.attempts);
        let answer = delivery.last.expect("an answer");
        assert_eq!(answer.status, status);
        assert!(answer.latency < Duration::from_secs(1));
        assert!(classification.hint.is_some_and(|hint| hint.contains(cause)), "{status}");
    }
}

#[tokio::test]
async fn a_body_over_128_kb_is_refused_before_sending_with_the_413_cause() {
    let base = start(sandbox_config(Faults::default())).await;
    let sender = HttpSender::new(quick_retries(), Duration::from_secs(5)).expect("client");
    let delivery = sender.send(&destination(&base, KEY), body(&"x".repeat(140_000), 1)).await;
    assert_eq!((delivery.ending, delivery.attempts), (Ending::Permanent, 0));
    let Err(NoAnswer::TooLarge { bytes, limit }) = delivery.last else {
        panic!("refused for its size: {:?}", delivery.last);
    };
    assert!(bytes > 140_000 && limit == 131_072, "{bytes} {limit}");
    let refused = sender.deliver(&destination(&base, KEY), body(&"x".repeat(140_000), 1)).await.classification;
    assert_eq!(refused.code, "413");
    assert!(refused.hint.is_some_and(|cause| cause.contains("Event exceeds 128 KB")));
    assert_eq!(sandbox_stats(&base).await["requests"], 0, "nothing was sent");
    // Exactly 128 KB is still sent.
    let mut at_limit = body("u_limit", 1);
    let padding = 131_072 - at_limit.body.len();
    let attributes = at_limit.body.iter().rposition(|b| *b == b'}').expect("end") - 2;
    at_limit.body.splice(attributes..attributes, std::iter::repeat_n(b' ', padding));
    assert_eq!(at_limit.body.len(), 131_072);
    let delivery = sender.send(&destination(&base, KEY), at_limit).await;
    assert_eq!((delivery.ending, delivery.attempts), (Ending::Delivered, 1), "{:?}", delivery.last);
}

#[tokio::test]
async fn a_host_that_does_not_answer_is_retried_until_the_window_closes() {
    let closed = common::RefusingPort::new();
    let sender = HttpSender::new(quick_retries(), Duration::from_secs(1)).expect("client");
    let started = tokio::time::Instant::now();
    let delivery = sender.send(&destination(&closed.url(), KEY), body("u_2", 1)).await;
    assert_eq!(delivery.ending, Ending::GaveUp);
    assert!(delivery.attempts > 3, "{} attempts", delivery.attempts);
    assert!(matches!(delivery.last, Err(NoAnswer::Connection(_))), "{:?}", delivery.last);
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = format!("{:?}", delivery.last);
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_500s_429s_and_dropped_connections_no_event_vanishes_and_duplicates_are_counted() {
    let base = start(sandbox_config(Faults {
        error_rate: 0.2,
        throttle_rate: 0.05,
        retry_after_secs: 0,
        drop_rate: 0.05,
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
    let (mut retried, mut failed, mut dropped_seen) = (0, Vec::new(), 0);
    for (order, task) in tasks.into_iter().enumerate() {
        let delivery = task.await.expect("task");
        retried += usize::from(delivery.attempts > 1);
        if delivery.ending != Ending::Delivered {
            failed.push(order);
        }
        dropped_seen += usize::from(delivery.attempts > 1 && delivery.last.is_ok());
    }
    let actions = stored(&base, "u_faults").await;
    let mut copies = std::collections::BTreeMap::<u64, usize>::new();
    for action in &actions {
        *copies.entry(action["attributes"]["order_id"].as_u64().expect("order id")).or_default() += 1;
    }
    for order in 0..events as u64 {
        assert!(
            copies.contains_key(&order) || failed.contains(&(order as usize)),
            "event {order} is neither in the store nor reported failed"
        );
    }
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    let stats = sandbox_stats(&base).await;
    let dropped_after_accept = stats["dropped_after_accept"].as_u64().expect("count") as usize;
    let dropped_before_accept = stats["dropped_before_accept"].as_u64().expect("count") as usize;
    // A request stored and then cut off is the only way to a second copy: the sender cannot know it
    // arrived, so it sends again.
    assert_eq!(duplicates, dropped_after_accept, "{stats}");
    assert!(failed.is_empty(), "within a 20 s window every event gets through: {failed:?}");
    assert!(dropped_after_accept + dropped_before_accept > 0, "connections were dropped: {stats}");
    assert!(retried > events / 10, "faults were injected and retried: {retried}");
    assert!(dropped_seen > 0);
    eprintln!("{events} events, {retried} retried, {duplicates} duplicated, sandbox: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_three_times_the_limit_is_delivered_without_a_429_and_workspaces_do_not_wait_for_each_other()
{
    // MoEngage's limit scaled down: 200 events per 10 s instead of 30,000 per minute. The sandbox
    // allows 5% more, so that what is tested is the sender's spacing (no burst past the limit, the
    // whole taking three windows), not a race between a loaded machine's scheduling and the edge
    // of the sandbox's window.
    let limit = RateLimit { requests: 200, per: Duration::from_secs(10) };
    let base = start(SandboxConfig {
        workspaces: vec![("WS1".into(), ApiKey::new(KEY)), ("WS2".into(), ApiKey::new(KEY))],
        per_window: limit.requests + limit.requests / 20,
        window: limit.per,
        ..SandboxConfig::default()
    })
    .await;
    let sender = Arc::new(HttpSender::new(quick_retries(), Duration::from_secs(5)).expect("client"));
    let burst = 3 * limit.requests as usize;
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for workspace in ["WS1", "WS2"] {
        let destination = Arc::new(destination_of(workspace, &base, KEY).with_rate_limit(limit));
        for order in 0..burst {
            let (sender, destination) = (sender.clone(), destination.clone());
            tasks.push(tokio::spawn(async move { sender.send(&*destination, body("u_burst", order)).await }));
        }
    }
    for task in tasks {
        let delivery = task.await.expect("task");
        assert_eq!((delivery.ending, delivery.attempts), (Ending::Delivered, 1));
    }
    let elapsed = started.elapsed();
    let stats = sandbox_stats(&base).await;
    assert_eq!(stats["by_status"].get("429"), None, "no 429 caused by the sender: {stats}");
    for workspace in ["WS1", "WS2"] {
        assert_eq!(stored_in(&base, workspace, "u_burst").await.len(), burst);
    }
    // Three windows' worth at the limit takes about three windows; the second workspace
    // does not queue behind the first (that would take six).
    assert!(elapsed >= Duration::from_millis(29_500), "the burst was spread out: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(45), "each workspace has its own limit: {elapsed:?}");
}
