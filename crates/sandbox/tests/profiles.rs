//! The sandbox's customer and merge APIs over real loopback HTTP: MoEngage's paths, auth and
//! answers, one limit per workspace shared with the event API, and the read-back of a profile's
//! attributes and merges.

use std::time::Duration;

use moengage::ApiKey;
use sandbox::SandboxConfig;
use serde_json::{Value, json};

const KEY: &str = "test-key";

async fn start(config: SandboxConfig) -> String {
    sender::install_crypto_provider();
    sandbox::spawn_on_loopback(config).await.expect("sandbox on loopback")
}

fn config() -> SandboxConfig {
    SandboxConfig { workspaces: vec![("WS1".into(), ApiKey::new(KEY))], ..SandboxConfig::default() }
}

async fn post(base: &str, path: &str, user: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .basic_auth(user, Some(KEY))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sandbox answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}{path}")).await.expect("read back");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn event(customer: &str, action: &str) -> Value {
    json!({"type": "event", "customer_id": customer, "actions": [{"action": action, "attributes": {}}]})
}

#[tokio::test]
async fn a_customer_update_sets_the_profile_and_a_merge_moves_a_user_into_another() {
    let base = start(config()).await;
    let update = json!({"type": "customer", "customer_id": "u1",
                        "attributes": {"u_em": "a@b.test", "u_fn": "Ann", "plan": "pro", "bio": "x".repeat(600)}});
    let (status, answer) = post(&base, "/v1/customer/WS1", "WS1", &update).await;
    assert_eq!((status, &answer["status"]), (200, &json!("success")), "{answer}");
    assert_eq!(post(&base, "/v1/event/WS1", "WS1", &event("anon", "Products Searched")).await.0, 200);
    let (status, answer) = post(&base, "/v1/customer/WS1", "WS1", &json!({"type": "customer", "customer_id": "anon",
        "attributes": {"u_em": "old@b.test", "source": "ads"}})).await;
    assert_eq!(status, 200, "{answer}");

    let merge = json!({"merge_data": [{"merged_user": "anon", "retained_user": "u1"}]});
    let (status, answer) = post(&base, "/v1/customer/merge?app_id=WS1", "WS1", &merge).await;
    assert_eq!((status, &answer["status"]), (200, &json!("success")), "{answer}");

    let (status, profile) = get(&base, "/sandbox/workspaces/WS1/customers/u1").await;
    assert_eq!(status, 200);
    let bio = profile["attributes"]["bio"].as_str().expect("bio").len();
    assert_eq!(bio, 512, "values are kept as MoEngage keeps an event's");
    assert_eq!(profile["attributes"]["u_em"], "a@b.test", "the retained user's own attribute stays");
    assert_eq!(profile["attributes"]["source"], "ads", "what the retained user lacked comes over");
    assert_eq!(profile["actions"][0]["action"], "Products Searched");
    assert_eq!(profile["merged_users"], json!(["anon"]));
    assert_eq!(get(&base, "/sandbox/workspaces/WS1/customers/anon").await.0, 404);
    assert_eq!(get(&base, "/sandbox/workspaces/WS1/merges").await.1["merges"], json!([{"retained_user": "u1", "merged_users": ["anon"]}]));
    let (_, stats) = get(&base, "/sandbox/stats").await;
    assert_eq!((stats["accepted_actions"].as_u64(), stats["accepted_customer_updates"].as_u64(), stats["accepted_merges"].as_u64()), (Some(1), Some(2), Some(1)), "{stats}");
}

#[tokio::test]
async fn the_customer_and_merge_apis_answer_as_moengage_does() {
    let base = start(config()).await;
    let cases = [
        ("/v1/customer/WS1", "WS1", json!({"type": "customer", "attributes": {}}), 400, "customer_id is not found in the payload"),
        ("/v1/customer/WS1", "WS1", json!({"type": "event", "customer_id": "u1"}), 400, "type must be `customer` for the customer API"),
        ("/v1/customer/WS1", "WS1", json!({"type": "customer", "customer_id": "u1", "attributes": [1]}), 400, "attributes must be an object"),
        ("/v1/customer/WS2", "WS2", json!({"type": "customer", "customer_id": "u1"}), 401, "App Secret key mismatch. Please check the Workspace ID and Data API key."),
        ("/v1/customer/merge?app_id=WS1", "WS1", json!({"merge_data": []}), 400, "merge_data is not found in the payload"),
        ("/v1/customer/merge?app_id=WS1", "WS1", json!({"merge_data": [{"merged_user": "a"}]}), 400, "retained_user is not found in the payload"),
        ("/v1/customer/merge?app_id=WS1", "WS1", json!({"merge_data": [{"merged_user": "a", "retained_user": "a"}]}), 400, "merged_user and retained_user are the same user"),
        ("/v1/customer/merge", "WS1", json!({"merge_data": [{"merged_user": "a", "retained_user": "b"}]}), 401, "App Secret key mismatch. Please check the Workspace ID and Data API key."),
    ];
    for (path, user, body, status, message) in cases {
        let (got, answer) = post(&base, path, user, &body).await;
        assert_eq!((got, answer["error"]["message"].as_str()), (status, Some(message)), "{path} {body}: {answer}");
        assert_eq!(answer["status"], "fail");
    }
}

#[tokio::test]
async fn one_limit_covers_the_three_apis_of_a_workspace() {
    let base = start(SandboxConfig { per_window: 3, window: Duration::from_secs(60), ..config() }).await;
    assert_eq!(post(&base, "/v1/event/WS1", "WS1", &event("u1", "A")).await.0, 200);
    assert_eq!(post(&base, "/v1/customer/WS1", "WS1", &json!({"type": "customer", "customer_id": "u1"})).await.0, 200);
    let merge = json!({"merge_data": [{"merged_user": "anon", "retained_user": "u1"}]});
    assert_eq!(post(&base, "/v1/customer/merge?app_id=WS1", "WS1", &merge).await.0, 200);
    let (status, answer) = post(&base, "/v1/customer/WS1", "WS1", &json!({"type": "customer", "customer_id": "u2"})).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(post(&base, "/v1/event/WS1", "WS1", &event("u1", "B")).await.0, 429);
}

#[tokio::test]
async fn the_device_api_registers_a_device_of_an_existing_customer() {
    let base = start(config()).await;
    let device = |customer: &str, device_id: Option<&str>, attributes: Value| {
        let mut body = json!({"type": "device", "customer_id": customer, "attributes": attributes});
        if let Some(id) = device_id {
            body["device_id"] = json!(id);
        }
        body
    };
    let android = json!({"platform": "ANDROID", "push_id": "fcm-1", "model": "Pixel 8", "app_version": "2.3.1"});
    // MoEngage creates devices for existing users only.
    let (status, answer) = post(&base, "/v1/device/WS1", "WS1", &device("nobody", Some("d1"), android.clone())).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(post(&base, "/v1/event/WS1", "WS1", &event("u1", "Application Installed")).await.0, 200);
    let (status, answer) = post(&base, "/v1/device/WS1", "WS1", &device("u1", Some("d1"), android.clone())).await;
    assert_eq!((status, &answer["status"]), (200, &json!("success")), "{answer}");
    // The same device_id is updated, not added.
    let mut newer = android.clone();
    newer["push_id"] = json!("fcm-2");
    assert_eq!(post(&base, "/v1/device/WS1", "WS1", &device("u1", Some("d1"), newer)).await.0, 200);
    let ios = json!({"platform": "iOS", "push_id": "apns-1"});
    assert_eq!(post(&base, "/v1/device/WS1", "WS1", &device("u1", Some("d2"), ios)).await.0, 200);
    let (_, profile) = get(&base, "/sandbox/workspaces/WS1/customers/u1").await;
    assert_eq!(
        profile["devices"],
        json!([{"device_id": "d1", "attributes": {"platform": "ANDROID", "push_id": "fcm-2", "model": "Pixel 8", "app_version": "2.3.1"}},
               {"device_id": "d2", "attributes": {"platform": "iOS", "push_id": "apns-1"}}])
    );

    // MoEngage's 400s: the type, a platform it does not name, no push_id, no attributes.
    for (body, says) in [
        (json!({"type": "customer", "customer_id": "u1", "attributes": android}), "type must be `device`"),
        (device("u1", None, json!({"platform": "android", "push_id": "x"})), "ANDROID, iOS or web"),
        (device("u1", None, json!({"platform": "web"})), "push_id is not found"),
        (json!({"type": "device", "customer_id": "u1"}), "attributes must be an object"),
        (json!({"type": "device", "attributes": {"platform": "web", "push_id": "x"}}), "customer_id is not found"),
    ] {
        let (status, answer) = post(&base, "/v1/device/WS1", "WS1", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|message| message.contains(says)), "{body}: {answer}");
    }
    let (_, stats) = get(&base, "/sandbox/stats").await;
    assert_eq!(stats["accepted_devices"], 3, "{stats}");
    assert_eq!(post(&base, "/v1/device/WS1", "nobody", &device("u1", None, json!({"platform": "web", "push_id": "x"}))).await.0, 401);
}
