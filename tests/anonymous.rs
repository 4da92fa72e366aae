//! Anonymous visitors become known customers, through `signal serve`: with Retail extended by
//! `customer_id: [$.user_id, $.anonymous_id]`, a visit before any login reaches MoEngage under the
//! anonymous id; the login (a call with both ids) makes Signal merge that customer into the user by
//! itself — once, after the anonymous customer's events, across a restart — and the sandbox's
//! profile holds the whole journey. Run on SQLite and, in `tests/run`'s second pass, on PostgreSQL.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually};
use serde_json::{Value, json};

const WRITE_KEY: &str = "shop-write-key";
const API_KEY: &str = "sandbox-data-key";

/// A configuration delivering through `shop.yaml` (Retail, with the anonymous fallback) to WS1.
fn shop(dir: &Path, sandbox: &str) -> String {
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints/moengage");
    for file in ["base.yaml", "retail.yaml"] {
        std::fs::copy(presets.join(file), dir.join(file)).expect("copy a preset");
    }
    std::fs::write(dir.join("shop.yaml"), "extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymous_id]\n")
        .expect("write the blueprint");
    let config = dir.join("signal.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  sqlite: signal.db\nsources:\n  site:\n    write_key: {WRITE_KEY}\n\
             integrations:\n  moengage:\n    workspace_id: WS1\n    data_api_key: {API_KEY}\n    data_center: \"01\"\n    endpoint: {sandbox}\n\
             pipelines:\n  site:\n    source: site\n    integration: moengage\n    blueprint: shop.yaml\n"
        ),
    )
    .expect("write the configuration");
    config.display().to_string()
}

fn send(http: &Http, serve: &ServeProcess, events: Value) {
    let (status, answer) =
        http.post(&format!("{}/v1/batch", serve.collector), Some(WRITE_KEY), &[], json!({"batch": events}).to_string().into_bytes());
    assert_eq!((status, &answer["rejected"]), (200, &json!([])), "{answer}");
}

fn actions(sandbox: &SandboxProcess, customer: &str) -> Vec<String> {
    sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{customer}"))["actions"]
        .as_array()
        .map(|actions| actions.iter().filter_map(|action| action["action"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn merges_sent(sandbox: &SandboxProcess) -> Vec<Value> {
    sandbox.get("/sandbox/workspaces/WS1/requests")["requests"]
        .as_array()
        .map(|requests| requests.iter().filter(|body| body.get("merge_data").is_some()).cloned().collect())
        .unwrap_or_default()
}

#[test]
fn a_visit_before_login_and_the_purchase_after_are_one_customer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = shop(dir.path(), &sandbox.base);
    let http = Http::new();
    let anonymous = "anon-5f1c";

    // The visit: nobody has logged in.
    let mut serve = ServeProcess::start(&["--config", &config], &[]);
    send(
        &http,
        &serve,
        json!([
            {"type": "page", "name": "Home", "anonymousId": anonymous},
            {"type": "track", "event": "Product Viewed", "anonymousId": anonymous, "properties": {"product_id": "P-1"}},
            {"type": "track", "event": "Product Added", "anonymousId": anonymous, "properties": {"product_id": "P-1"}},
        ]),
    );
    eventually(Duration::from_secs(30), "the visit under the anonymous id", || actions(&sandbox, anonymous).len() == 3);

    // A restart between the visit and the login changes nothing.
    common::terminate(serve.child.id());
    assert!(serve.wait(Duration::from_secs(30)).success(), "{}", serve.logs());
    let serve = ServeProcess::start(&["--config", &config], &[]);

    // The login, then the purchase, then another login: one merge.
    send(
        &http,
        &serve,
        json!([{"type": "identify", "userId": "u_8842", "anonymousId": anonymous,
                "traits": {"email": "jane@example.com", "phone": "+447700900123"}}]),
    );
    eventually(Duration::from_secs(30), "the merge", || !merges_sent(&sandbox).is_empty());
    send(
        &http,
        &serve,
        json!([
            {"type": "track", "event": "Order Completed", "userId": "u_8842", "anonymousId": anonymous,
             "properties": {"order_id": "ORD-1001", "revenue": 89.99, "currency": "GBP"}},
            {"type": "track", "event": "Logged In", "userId": "u_8842", "anonymousId": anonymous},
        ]),
    );
    eventually(Duration::from_secs(30), "the purchase", || actions(&sandbox, "u_8842").contains(&"Order Completed".to_owned()));
    std::thread::sleep(Duration::from_secs(2));

    let profile = sandbox.get("/sandbox/workspaces/WS1/customers/u_8842");
    assert_eq!(profile["merged_users"], json!([anonymous]), "{profile}");
    let journey = actions(&sandbox, "u_8842");
    for action in ["Page Viewed", "Product Viewed", "Product Added", "Order Completed", "Logged In"] {
        assert!(journey.contains(&action.to_owned()), "{action} missing from {journey:?}");
    }
    assert_eq!(
        merges_sent(&sandbox),
        [json!({"merge_data": [{"merged_user": anonymous, "retained_user": "u_8842"}]})],
        "exactly one merge request"
    );
    // Its own record in the Event Debugger, and a metric.
    let listed = http.json(&format!("{}/api/events?event=automatic%20merge", serve.admin));
    let merges = listed["events"].as_array().expect("events");
    assert_eq!(merges.len(), 1, "{listed}");
    assert_eq!((&merges[0]["state"], &merges[0]["type"], &merges[0]["customer_id"]), (&json!("delivered"), &json!("merge"), &json!("u_8842")));
    assert_eq!(common::metric(&http, &serve, "signal_automatic_merges_total{pipeline=\"site\"}"), 1);
}

#[test]
fn a_login_whose_anonymous_id_never_reached_moengage_merges_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = shop(dir.path(), &sandbox.base);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    send(&http, &serve, json!([{"type": "identify", "userId": "u1", "anonymousId": "anon-never", "traits": {"email": "a@b.test"}}]));
    eventually(Duration::from_secs(30), "the profile", || {
        sandbox.get("/sandbox/workspaces/WS1/customers/u1")["attributes"]["u_em"] == "a@b.test"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(merges_sent(&sandbox).is_empty(), "{:?}", merges_sent(&sandbox));
}
