//! The sandbox over real loopback HTTP: every answer of the real API, the per-minute limit, injected
//! faults, and reading back what was accepted.

use moengage::ApiKey;
use sandbox::{Faults, SandboxConfig};
use serde_json::{Value, json};

const KEY: &str = "test-key";

async fn start(config: SandboxConfig) -> String {
    sender::install_crypto_provider();
    sandbox::spawn_on_loopback(config).await.expect("sandbox on loopback")
}

async fn read_back(base: &str, customer: &str) -> Value {
    reqwest::get(format!("{base}/sandbox/workspaces/WS1/customers/{customer}/actions"))
        .await
        .expect("read back")
        .json()
        .await
        .expect("json")
}

fn config() -> SandboxConfig {
    SandboxConfig { workspaces: vec![("WS1".into(), ApiKey::new(KEY))], ..SandboxConfig::default() }
}

fn document_payload() -> Value {
    json!({
      "type": "event",
      "customer_id": "u_8842",
      "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
      "actions": [{"action": "Order Completed", "platform": "web",
                   "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}}]
    })
}

async fn post(
    base: &str,
    workspace: &str,
    key: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value, Option<String>) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/event/{workspace}"))
        .basic_auth(workspace, Some(key))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sandbox answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null), retry_after)
}

async fn post_json(base: &str, payload: &Value) -> (u16, Value, Option<String>) {
    post(base, "WS1", KEY, "application/json", payload.to_string().into_bytes()).await
}

#[tokio::test]
async fn the_documents_example_is_accepted_and_appears_under_the_customer() {
    let base = start(config()).await;
    let (status, body, _) = post_json(&base, &document_payload()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Your request has been accepted and will be processed soon."})
    );
    let listed = read_back(&base, "u_8842").await;
    assert_eq!(listed["actions"], document_payload()["actions"]);
}

#[tokio::test]
async fn every_refusal_has_the_real_apis_status_and_body() {
    let base = start(config()).await;
    let payload = document_payload().to_string().into_bytes();
    let (status, body, _) = post(&base, "WS1", "wrong", "application/json", payload.clone()).await;
    assert_eq!((status, body["status"].as_str()), (401, Some("fail")));
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("App Secret key mismatch")));
    assert!(body["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let (status, _, _) = post(&base, "WS1", KEY, "text/plain", payload.clone()).await;
    assert_eq!(status, 415);

    let (status, body, _) = post(&base, "WS1", KEY, "application/json", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "ValidationError");

    let mut missing = document_payload();
    missing.as_object_mut().expect("object").remove("customer_id");
    let (status, body, _) = post_json(&base, &missing).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("MissingAttributeError")));
    assert_eq!(body["error"]["message"], "customer_id is not found in the payload");

    let mut empty = document_payload();
    empty["actions"] = json!([]);
    assert_eq!(post_json(&base, &empty).await.0, 400);

    let mut big = document_payload();
    big["actions"][0]["attributes"]["notes"] = json!("x".repeat(moengage::MAX_BODY_BYTES));
    let (status, body, _) = post_json(&base, &big).await;
    assert_eq!((status, body["error"]["message"].as_str()), (413, Some("Payload size exceeds 128 KB")));

    let response = reqwest::get(format!("{base}/v2/nothing")).await.expect("answers");
    assert_eq!(response.status().as_u16(), 404);

    let listed = read_back(&base, "u_8842").await;
    assert_eq!(listed["actions"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn over_the_minute_limit_answers_429_with_retry_after() {
    let base = start(SandboxConfig { per_window: 3, ..config() }).await;
    for _ in 0..3 {
        assert_eq!(post_json(&base, &document_payload()).await.0, 200);
    }
    let (status, body, retry_after) = post_json(&base, &document_payload()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["message"], "Rate limits for customers exceeded. Please Try After Some Time");
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn injected_faults_answer_500_and_429() {
    let failing =
        start(SandboxConfig { faults: Faults { error_rate: 1.0, ..Faults::default() }, ..config() }).await;
    assert_eq!(post_json(&failing, &document_payload()).await.0, 500);
    let throttling = start(SandboxConfig {
        faults: Faults { throttle_rate: 1.0, retry_after_secs: 7, ..Faults::default() },
        ..config()
    })
    .await;
    let (status, _, retry_after) = post_json(&throttling, &document_payload()).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
    let stats: Value =
        reqwest::get(format!("{throttling}/sandbox/stats")).await.expect("stats").json().await.expect("json");
    assert_eq!(stats["by_status"]["429"], 1);
    assert_eq!(stats["accepted_actions"], 0);
}

#[tokio::test]
async fn a_seed_repeats_the_faults_and_a_body_is_faulted_at_most_so_many_times() {
    let seeded = |seed| SandboxConfig {
        faults: Faults { error_rate: 0.5, seed: Some(seed), ..Faults::default() },
        ..config()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let base = start(seeded(7)).await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(post_json(&base, &document_payload()).await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "the same seed, the same faults");
    assert!(runs[0].contains(&500) && runs[0].contains(&200), "{:?}", runs[0]);

    let passing = start(SandboxConfig {
        faults: Faults { error_rate: 1.0, max_faults_per_body: Some(2), ..Faults::default() },
        ..config()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post_json(&passing, &document_payload()).await.0);
    }
    assert_eq!(statuses, [500, 500, 200, 200], "faulted twice, then through");
}
