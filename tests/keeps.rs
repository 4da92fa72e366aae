//! Send what MoEngage keeps, end to end: an order's products through `signal serve` reach the
//! sandbox as arrays a workspace without object data keeps, or as objects where it has object data;
//! what was sent equals what was kept; each cut is a warning in the Event Debugger, the metrics and
//! `signal send`'s summary.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually, metric};
use serde_json::{Value, json};

const API_KEY: &str = "keeps-data-key";
const WRITE_KEY: &str = "keeps-write-key";

fn config(dir: &Path, sandbox: &str, integration_extra: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        "storage:\n  sqlite: signal.db\nsources:\n  site:\n    write_key: {WRITE_KEY}\n\
         integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: {API_KEY}\n    data_center: \"01\"\n    endpoint: {sandbox}\n{integration_extra}\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n"
    );
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

fn order(customer: &str) -> Value {
    json!({"type": "track", "event": "Order Completed", "user_id": customer,
           "properties": {"order_id": "ORD-7", "revenue": 30.0, "note": "n".repeat(600),
                          "products": [{"product_id": "P-1", "sku": "SKU-1", "price": 10.0, "quantity": 1},
                                       {"product_id": "P-2", "sku": "SKU-2", "price": 20.0, "quantity": 1}]}})
}

/// Sends `event`, waits for it to be delivered, and returns (the body sent, the customer as the
/// sandbox keeps them).
fn deliver(http: &Http, serve: &ServeProcess, sandbox: &SandboxProcess, event: &Value) -> (Value, Value) {
    let (status, answer) =
        http.post(&format!("{}/v1/track", serve.collector), Some(WRITE_KEY), &[], event.to_string().into_bytes());
    assert_eq!(status, 200, "{answer}");
    eventually(Duration::from_secs(20), "the order delivered", || {
        metric(http, serve, "signal_events_delivered_total{pipeline=\"site\"}") == 1
    });
    let sent = sandbox.get("/sandbox/workspaces/WS1/requests")["requests"][0].clone();
    let customer = event["user_id"].as_str().expect("a user id");
    (sent, sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{customer}")))
}

#[test]
fn without_object_data_an_orders_products_reach_the_sandbox_as_arrays_it_keeps() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let serve = ServeProcess::start(&["--config", &config(dir.path(), &sandbox.base, "")], &[]);
    let http = Http::new();
    let (sent, kept) = deliver(&http, &serve, &sandbox, &order("u_plain"));

    let attributes = &kept["actions"][0]["attributes"];
    assert_eq!(attributes["product_sku"], json!(["SKU-1", "SKU-2"]), "{kept}");
    assert_eq!(attributes["product_price"], json!([10.0, 20.0]));
    assert_eq!(attributes["note"], "n".repeat(512));
    assert!(attributes.get("products").is_none(), "no object reaches a workspace without object data");
    assert_eq!(kept["actions"], sent["actions"], "what was sent is what was kept");

    // The cut is reported: in the debugger's record of the delivered event, and in the metrics.
    let listed = http.json(&format!("{}/api/events?state=delivered", serve.admin));
    let record = &listed["events"][0];
    assert_eq!(record["status"], 200, "{listed}");
    let said = record["hint"].as_str().unwrap_or_default();
    assert!(said.contains("warning[value_truncated]") && said.contains("`note` has 600 characters"), "{record}");
    assert_eq!(metric(&http, &serve, "signal_event_warnings_total{pipeline=\"site\",code=\"value_truncated\"}"), 1);
}

#[test]
fn with_object_data_the_products_are_kept_as_objects() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}"), "--object-data", "WS1"]);
    let dir = tempfile::tempdir().expect("dir");
    let serve = ServeProcess::start(&["--config", &config(dir.path(), &sandbox.base, "    object_data: true\n")], &[]);
    let http = Http::new();
    let event = order("u_objects");
    let (sent, kept) = deliver(&http, &serve, &sandbox, &event);
    assert_eq!(kept["actions"][0]["attributes"]["products"], event["properties"]["products"], "{kept}");
    assert_eq!(kept["actions"], sent["actions"], "what was sent is what was kept");
}

#[test]
fn a_workspace_without_object_data_ignores_objects_sent_to_it() {
    // What the flattening spares a user from: the sandbox, like MoEngage, drops dictionary values.
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let serve = ServeProcess::start(&["--config", &config(dir.path(), &sandbox.base, "    object_data: true\n")], &[]);
    let http = Http::new();
    let (sent, kept) = deliver(&http, &serve, &sandbox, &order("u_lost"));
    assert!(sent["actions"][0]["attributes"]["products"].is_array());
    assert!(kept["actions"][0]["attributes"].get("products").is_none(), "{kept}");
}

#[test]
fn signal_send_reports_each_cut_in_its_summary_and_signal_map_on_stderr() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let events = dir.path().join("orders.ndjson");
    let long_name = json!({"type": "track", "event": "Cart.Viewed", "user_id": "u2", "properties": {"n".repeat(201): 1}});
    std::fs::write(&events, format!("{}\n{long_name}\n", order("u1"))).expect("write events");
    let output = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["send", "--blueprint", "blueprints/moengage/retail.yaml", "--events"])
        .arg(&events)
        .args(["--workspace-id", "WS1", "--api-key", API_KEY, "--data-center", "01", "--endpoint", &sandbox.base])
        .env_remove("MOENGAGE_WORKSPACE_ID")
        .env_remove("MOENGAGE_DATA_API_KEY")
        .output()
        .expect("signal send runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Cart.Viewed is not in the Retail preset: only the order is sent.
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("warning") && stdout.contains("value_truncated") && stdout.contains("line 1"), "{stdout}");

    let map = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["map", "--blueprint", "crates/blueprint/tests/fixtures/valid/everything.yaml", "--events"])
        .arg(&events)
        .output()
        .expect("signal map runs");
    let stderr = String::from_utf8_lossy(&map.stderr);
    for expected in [
        "line 1: warning[value_truncated]",
        "line 2: warning[period_in_name]: the action name `Cart.Viewed` has a `.`",
        "line 2: warning[name_truncated]",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

#[test]
fn signal_validate_shows_a_period_in_an_action_name_as_a_warning_and_passes() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, "identity:\n  customer_id: $.user_id\nevents:\n  Cart.Viewed: {}\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_signal")).arg("validate").arg(&file).output().expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "a warning is not an error: {stdout}");
    assert!(stdout.contains("ok (1 event: Cart.Viewed, 1 warning)"), "{stdout}");
    assert!(
        stdout.contains("shop.yaml:4:3: warning[period_in_name]: the action name `Cart.Viewed` has a `.`"),
        "{stdout}"
    );
    assert!(stdout.contains("= hint: write the name MoEngage will show"), "{stdout}");
}
