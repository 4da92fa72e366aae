//! A crash loses nothing: `signal serve` is killed with SIGKILL while 20,000 acknowledged events are
//! being delivered; after a restart every one of them reaches the sandbox. Events that were
//! delivered but whose outcome was not yet recorded are delivered again: the test counts them.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Http, SandboxProcess, ServeProcess, eventually};
use serde_json::{Value, json};

const KEY: &str = "crash-test-key";
const EVENTS: u64 = 20_000;
const CUSTOMERS: u64 = 20;
const CONCURRENCY: u64 = 64;

fn config(dir: &std::path::Path, sandbox: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        r#"storage:
  sqlite: signal.db
delivery:
  concurrency: {CONCURRENCY}
sources:
  web:
    write_key: web-key
integrations:
  moengage:
    workspace_id: WS123
    data_api_key: {KEY}
    data_center: "01"
    endpoint: {sandbox}
pipelines:
  web:
    source: web
    integration: moengage
    preset: retail
"#
    );
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// order id → how many times the sandbox holds it.
fn delivered(http: &Http, sandbox: &str) -> BTreeMap<u64, u64> {
    let mut copies = BTreeMap::new();
    for customer in 0..CUSTOMERS {
        let listed = http.json(&format!("{sandbox}/sandbox/workspaces/WS123/customers/u_{customer}/actions"));
        for action in listed["actions"].as_array().into_iter().flatten() {
            if let Some(order) = action["attributes"]["order_id"].as_u64() {
                *copies.entry(order).or_default() += 1;
            }
        }
    }
    copies
}

#[test]
fn every_acknowledged_event_is_delivered_after_a_kill_9() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), &sandbox.base);
    let mut serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    let batch_url = format!("{}/v1/batch", serve.collector);
    for start in (0..EVENTS).step_by(100) {
        let batch: Vec<Value> = (start..start + 100)
            .map(|n| {
                json!({"type": "track", "event": "Order Completed", "user_id": format!("u_{}", n % CUSTOMERS),
                       "message_id": format!("m-{n}"), "properties": {"order_id": n, "revenue": 1.0}})
            })
            .collect();
        let (status, answer) =
            http.post(&batch_url, Some("web-key"), &[], json!({"batch": batch}).to_string().into_bytes());
        assert_eq!(status, 200, "acknowledged: {answer}");
    }
    eventually(Duration::from_secs(60), "deliveries under way", || {
        http.json(&format!("{}/sandbox/stats", sandbox.base))["accepted_actions"].as_u64().unwrap_or(0)
            >= 2_000
    });
    serve.child.kill().expect("SIGKILL");
    let _ = serve.child.wait();
    let before_restart: u64 = delivered(&http, &sandbox.base).values().sum();
    assert!(before_restart < EVENTS, "killed while delivering: {before_restart} had arrived");

    let restarted = ServeProcess::start(&["--config", &config], &[]);
    let started = Instant::now();
    eventually(Duration::from_secs(150), "every acknowledged event in the sandbox", || {
        delivered(&http, &sandbox.base).len() as u64 == EVENTS
    });
    std::thread::sleep(Duration::from_millis(500));
    let copies = delivered(&http, &sandbox.base);
    assert_eq!(copies.keys().copied().collect::<Vec<_>>(), (0..EVENTS).collect::<Vec<_>>(), "none lost");
    let duplicates: u64 = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 after {before_restart} of {EVENTS} delivered; after the restart all {EVENTS} arrived in {:.1} s with {duplicates} delivered twice",
        started.elapsed().as_secs_f64()
    );
    // Only events in flight at the kill (delivered, outcome not yet committed) can arrive twice.
    assert!(duplicates <= 2 * CONCURRENCY, "{duplicates} duplicates");
    assert!(
        restarted.logs().contains("queued again"),
        "the restart says what it recovered: {}",
        restarted.logs()
    );
}
