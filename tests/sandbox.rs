//! `signal sandbox` as an integrator runs it: a real process on loopback, the document's payload
//! posted with Basic auth, the action read back under its customer, and a clean stop on Ctrl-C.

use std::process::Command;

use serde_json::{Value, json};

use crate::common;

#[test]
fn sandbox_accepts_the_documents_payload_and_shows_it_under_the_customer() {
    let mut sandbox = common::SandboxProcess::start(&["--workspace", "WS9:key9"]);
    let base = sandbox.base.clone();

    let payload = json!({
      "type": "event", "customer_id": "u_8842",
      "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
      "actions": [{"action": "Order Completed", "platform": "web",
                   "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}}]
    });
    sender::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (status, listed) = runtime.block_on(async {
        let client = reqwest::Client::new();
        let status = client
            .post(format!("{base}/v1/event/WS9"))
            .basic_auth("WS9", Some("key9"))
            .json(&payload)
            .send()
            .await
            .expect("sandbox answers")
            .status();
        let listed: Value = client
            .get(format!("{base}/sandbox/workspaces/WS9/customers/u_8842/actions"))
            .send()
            .await
            .expect("read back")
            .json()
            .await
            .expect("json");
        (status, listed)
    });
    assert_eq!(status.as_u16(), 200);
    assert_eq!(listed["actions"], payload["actions"]);

    sandbox.interrupt();
    let exit = sandbox.child.wait().expect("sandbox exits");
    assert!(exit.success(), "Ctrl-C stops the sandbox cleanly: {exit:?}");
}

#[test]
fn sandbox_refuses_a_fault_rate_outside_0_to_1() {
    let output = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["sandbox", "--throttle-rate", "1.5"])
        .output()
        .expect("signal runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a rate from 0 to 1"));
}

#[test]
fn the_fault_flags_do_what_they_say() {
    use base64::Engine as _;
    let auth = |workspace: &str, key: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{workspace}:{key}")))
    };
    let payload = json!({"type": "event", "customer_id": "u_flags",
        "actions": [{"action": "Signed Up", "platform": "web", "attributes": {}}]})
    .to_string()
    .into_bytes();
    let http = common::Http::new();
    let post = |base: &str, workspace: &str, key: &str| {
        let headers = [("authorization", auth(workspace, key)), ("content-type", "application/json".to_owned())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        http.send("POST", &format!("{base}/v1/event/{workspace}"), &headers, payload.clone()).0
    };

    // --suspended: correctly signed requests get 403; others are served.
    let sandbox = common::SandboxProcess::start(&["--workspace", "WS1:k1", "--workspace", "WS2:k2", "--suspended", "WS2"]);
    assert_eq!(post(&sandbox.base, "WS2", "k2"), 403);
    assert_eq!(post(&sandbox.base, "WS1", "k1"), 200);
    assert_eq!(post(&sandbox.base, "WS2", "wrong"), 401, "the key is checked first");

    // --per-minute over --window-secs: the third request in the window gets 429.
    let limited = common::SandboxProcess::start(&["--workspace", "WS1:k1", "--per-minute", "2", "--window-secs", "60"]);
    let statuses: Vec<u16> = (0..3).map(|_| post(&limited.base, "WS1", "k1")).collect();
    assert_eq!(statuses, [200, 200, 429]);
}
