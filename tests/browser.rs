//! The browser SDKs that real sites use, unchanged — Segment's analytics.js and RudderStack's
//! JavaScript SDK, from their npm packages — loaded in headless Chromium from a page on one loopback
//! origin and sending to `signal serve` on another, in every transport they offer. The sandbox must
//! receive each page view and order with its time; a 503 from the collector must be retried by each
//! SDK and get through the browser's CORS checks.
//!
//! Needs Chromium and Node.js: `bash tests/run` installs both and the npm packages; this file installs
//! the npm packages itself (`npm ci` in `tests/browser`) when they are missing.

use crate::common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, browser_kit, eventually, one_pipeline_config};
use serde_json::{Value, json};

const WRITE_KEY: &str = "site-write-key";
const API_KEY: &str = "sandbox-data-key";

/// Headless Chromium with pages that load the SDKs; what it saw, as JSON records.
struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    records: Arc<Mutex<Vec<Value>>>,
}

impl Browser {
    fn open(collector: &str, pages: Value, screenshot: Option<&Path>) -> Browser {
        let kit = browser_kit();
        let settings = json!({
            "collector": collector, "key": WRITE_KEY, "pages": pages,
            "screenshot": screenshot.map(|path| path.display().to_string()),
        });
        let mut child = Command::new("node")
            .arg(kit.join("drive.mjs"))
            .arg(settings.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs drive.mjs");
        let stdin = child.stdin.take();
        let records = common::json_lines(child.stdout.take().expect("stdout"));
        let browser = Browser { child, stdin, records };
        eventually(Duration::from_secs(60), "the pages to make their calls", || browser.has("ready"));
        for made in browser.of_kind("calls_made") {
            assert_eq!(made["result"], true, "a page failed: {made}\n{}", browser.console());
        }
        browser
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.records.lock().expect("lock").iter().filter(|record| record["kind"] == kind).cloned().collect()
    }

    fn has(&self, kind: &str) -> bool {
        !self.of_kind(kind).is_empty()
    }

    fn console(&self) -> String {
        let records = self.records.lock().expect("lock");
        let lines: Vec<String> = records
            .iter()
            .filter(|record| record["kind"] != "request" && record["kind"] != "response")
            .map(Value::to_string)
            .collect();
        lines.join("\n")
    }

    /// Closes the pages (taking screenshots if asked) and the browser.
    fn close(mut self) -> Vec<Value> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"close\n");
        }
        eventually(Duration::from_secs(30), "the browser to close", || {
            self.child.try_wait().ok().flatten().is_some()
        });
        self.records.lock().expect("lock").clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn actions(sandbox: &SandboxProcess, user: &str) -> Vec<Value> {
    sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{user}/actions"))["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn action<'a>(actions: &'a [Value], name: &str) -> Option<&'a Value> {
    actions.iter().find(|action| action["action"] == name)
}

fn metrics(http: &Http, serve: &ServeProcess) -> String {
    http.get(&format!("{}/metrics", serve.admin)).1
}

/// The path of every request the pages made to the collector, with its query.
fn collector_paths(records: &[Value], page: usize) -> BTreeSet<String> {
    records
        .iter()
        .filter(|record| record["kind"] == "request" && record["to_collector"] == true && record["page"] == page)
        .filter_map(|record| record["url"].as_str())
        .map(|url| url.splitn(4, '/').nth(3).map(|path| format!("/{path}")).unwrap_or_default())
        .collect()
}

#[test]
fn both_sdks_deliver_from_a_browser_page_in_every_transport() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    let started = jiff::Timestamp::now();
    let pages = json!([
        {"sdk": "segment", "mode": "standard", "user": "seg-standard", "timezone": "Asia/Kolkata"},
        {"sdk": "segment", "mode": "batching", "user": "seg-batching"},
        {"sdk": "rudderstack", "mode": "xhr", "user": "rs-xhr", "timezone": "Asia/Kolkata"},
        {"sdk": "rudderstack", "mode": "batch", "user": "rs-batch"},
        {"sdk": "rudderstack", "mode": "beacon", "user": "rs-beacon"},
    ]);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-sdks.png");
    let browser = Browser::open(&serve.collector, pages.clone(), Some(&screenshots));
    let users: Vec<&str> = pages.as_array().expect("pages").iter().filter_map(|page| page["user"].as_str()).collect();
    eventually(Duration::from_secs(60), "every page's page view and order in the sandbox", || {
        users.iter().all(|user| {
            let actions = actions(&sandbox, user);
            action(&actions, "Page Viewed").is_some() && action(&actions, "Order Completed").is_some()
        })
    });
    let finished = jiff::Timestamp::now();
    let records = browser.close();

    for page in pages.as_array().expect("pages") {
        let user = page["user"].as_str().expect("user");
        let actions = actions(&sandbox, user);
        let order = action(&actions, "Order Completed").expect("order");
        assert_eq!(
            order["attributes"],
            json!({"order_id": format!("ORD-{user}"), "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}),
            "{user}"
        );
        for name in ["Page Viewed", "Order Completed"] {
            let sent = action(&actions, name).expect("action");
            let time: jiff::Timestamp = sent["current_time"]
                .as_str()
                .unwrap_or_else(|| panic!("{user}: {name} has no current_time: {sent}"))
                .parse()
                .expect("current_time is RFC 3339");
            assert!(time >= started && time <= finished, "{user}: {name} at {time}, run {started}..{finished}");
            let offset = if page["timezone"] == "Asia/Kolkata" { 19800 } else { 0 };
            assert_eq!(sent["user_timezone_offset"], offset, "{user}: {name}");
        }
        assert_eq!(action(&actions, "Page Viewed").expect("page")["attributes"]["page_name"], "Home", "{user}");
    }
    // RudderStack copies the identified user's traits into every call; analytics.js only into identify.
    let requests = sandbox.get("/sandbox/workspaces/WS1/requests")["requests"].as_array().cloned().expect("requests");
    for user in ["rs-xhr", "rs-batch", "rs-beacon"] {
        let order = requests
            .iter()
            .find(|body| body["customer_id"] == user && body["actions"][0]["action"] == "Order Completed")
            .expect("order request");
        assert_eq!(
            order["user_identifiers"],
            json!({"u_em": format!("{user}@example.com"), "u_mb": "+447700900123"}),
            "{user}"
        );
        assert_eq!(order["attributes"], json!({"u_fn": "Jane", "u_ln": "Doe"}), "{user}");
    }

    // Each transport used its own paths, and every answer was a success.
    let expected: [&[&str]; 5] = [
        &["/v1/t", "/v1/p", "/v1/i", "/v1/a", "/v1/g", "/v1/m"],
        &["/v1/b"],
        &["/v1/track", "/v1/page", "/v1/identify", "/v1/alias", "/v1/group"],
        &["/v1/batch"],
        &["/beacon/v1/batch?writeKey=site-write-key"],
    ];
    for (page, paths) in expected.iter().enumerate() {
        let used = collector_paths(&records, page);
        for path in *paths {
            assert!(used.contains(*path), "page {page} never sent to {path}: {used:?}");
        }
    }
    let to_collector: Vec<&Value> = records
        .iter()
        .filter(|record| record["url"].as_str().is_some_and(|url| url.starts_with(&serve.collector)))
        .collect();
    for record in &to_collector {
        if record["kind"] == "response" {
            let status = record["status"].as_u64().unwrap_or(0);
            assert!((200..300).contains(&status), "{record}");
        }
        assert_ne!(record["kind"], "failed", "a request to the collector failed: {record}");
    }
    let metrics = metrics(&http, &serve);
    assert!(!metrics.contains("signal_requests_rejected_total{"), "{metrics}");
    assert!(metrics.contains("signal_events_dropped_total{pipeline=\"site\",code=\"unsupported_type\"} 5"), "{metrics}");

    // The write key the SDKs put in each event is not kept.
    let database = rusqlite::Connection::open(dir.path().join("signal.db")).expect("open the queue");
    let stored: i64 = database
        .query_row("SELECT count(*) FROM events WHERE payload LIKE '%site-write-key%'", [], |row| row.get(0))
        .expect("count");
    assert_eq!(stored, 0, "write keys were stored with events");
    for page in 0..users.len() {
        let shot = screenshots.with_file_name(format!("browser-sdks-{page}.png"));
        assert!(std::fs::metadata(&shot).is_ok_and(|meta| meta.len() > 1000), "no screenshot {}", shot.display());
    }
}

#[test]
fn a_503_is_retried_by_each_sdk_and_its_retry_passes_cors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    let refused = "signal_requests_rejected_total{path=\"events\",status=\"503\"}";

    // Another process holds the database's write lock: the collector cannot store and answers 503.
    let lock = rusqlite::Connection::open(dir.path().join("signal.db")).expect("open the queue");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock the queue");
    let pages = json!([
        {"sdk": "segment", "mode": "standard", "user": "seg-retry"},
        {"sdk": "rudderstack", "mode": "xhr", "user": "rs-retry"},
    ]);
    let browser = Browser::open(&serve.collector, pages, None);
    eventually(Duration::from_secs(60), "a 503 for each SDK", || {
        let records = browser.records.lock().expect("lock").clone();
        (0..2).all(|page| {
            records.iter().any(|record| record["kind"] == "response" && record["page"] == page && record["status"] == 503)
        })
    });
    lock.execute_batch("ROLLBACK").expect("unlock the queue");
    drop(lock);

    eventually(Duration::from_secs(90), "both orders in the sandbox after the retries", || {
        ["seg-retry", "rs-retry"].iter().all(|user| action(&actions(&sandbox, user), "Order Completed").is_some())
    });
    let records = browser.close();
    let retried = |page: usize, header: &str| {
        records.iter().any(|record| {
            record["kind"] == "request"
                && record["page"] == page
                && record["method"] == "POST"
                && record["headers"].get(header).is_some()
        })
    };
    assert!(retried(0, "x-retry-count"), "analytics.js never retried with X-Retry-Count");
    assert!(retried(1, "rsa-retry-attempt"), "RudderStack's SDK never retried with Rsa-Retry-Attempt");
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|record| record["kind"] == "failed" && record["url"].as_str().is_some_and(|url| url.starts_with(&serve.collector)))
        .collect();
    assert!(blocked.is_empty(), "requests blocked or failed: {blocked:?}");
    assert!(
        metrics(&http, &serve).lines().any(|line| line.starts_with(refused)),
        "the 503s were not counted"
    );
    assert!(serve.logs().contains("collector request refused"), "{}", serve.logs());
}

/// The Event Debugger page, driven by `debugger.mjs`: what it reported, line by line.
struct DebuggerPage {
    child: Child,
    records: Arc<Mutex<Vec<Value>>>,
}

impl DebuggerPage {
    fn open(admin: &str, screenshot: &Path) -> DebuggerPage {
        let kit = browser_kit();
        let settings =
            json!({"admin": admin, "mode": "check", "dropped": 2, "screenshot": screenshot.display().to_string()});
        let mut child = Command::new("node")
            .arg(kit.join("debugger.mjs"))
            .arg(settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs debugger.mjs");
        let records = common::json_lines(child.stdout.take().expect("stdout"));
        DebuggerPage { child, records }
    }

    fn wait_for(&self, kind: &str) -> Value {
        let mut found = None;
        eventually(Duration::from_secs(60), kind, || {
            let records = self.records.lock().expect("lock");
            if let Some(failed) = records.iter().find(|record| record["kind"] == "failed") {
                panic!("the page check failed: {failed}\n{records:?}");
            }
            found = records.iter().find(|record| record["kind"] == kind).cloned();
            found.is_some()
        });
        found.unwrap_or(Value::Null)
    }

    fn all(&self, kind: &str) -> Vec<Value> {
        self.records.lock().expect("lock").iter().filter(|record| record["kind"] == kind).cloned().collect()
    }
}

impl Drop for DebuggerPage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_event_debugger_page_shows_each_fate_live_with_its_detail() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("event-debugger.png");
    let page = DebuggerPage::open(&serve.admin, &screenshot);
    let ready = page.wait_for("ready");
    assert_eq!(ready["live"], "live", "the page follows the live stream");

    // The document's test step: trigger a mapped event, and one that is not in the blueprint.
    let http = Http::new();
    let order = json!({"type": "track", "event": "Order Completed", "user_id": "u_8842",
        "traits": {"email": "jane@example.com", "phone": "+447700900123"},
        "properties": {"order_id": "ORD-1001", "revenue": 89.99, "currency": "GBP", "coupon": "WELCOME10"}});
    let unmapped = json!({"type": "track", "event": "Wishlist Viewed", "user_id": "u_8842"});
    // Anyone can send an event: its name is shown as text, never run; its numbers as written.
    let hostile = r#"{"type":"track","event":"<img src=x onerror=alert(1)>","user_id":18446744073709551617}"#;
    for event in [order.to_string(), unmapped.to_string(), hostile.to_owned()] {
        let (status, answer) =
            http.post(&format!("{}/v1/track", serve.collector), Some(WRITE_KEY), &[], event.into_bytes());
        assert_eq!(status, 200, "{answer}");
    }

    let rows = page.wait_for("rows");
    let rows = rows["rows"].as_array().cloned().unwrap_or_default();
    let delivered = rows.iter().find(|row| row["state"] == "delivered").expect("a delivered row");
    let delivered_text = delivered["text"].as_str().unwrap_or_default();
    assert!(delivered_text.contains("Order Completed") && delivered_text.contains("200"), "{delivered}");
    let dropped = rows.iter().find(|row| row["text"].as_str().unwrap_or_default().contains("Wishlist Viewed")).expect("the unmapped row");
    assert_eq!(dropped["state"], "dropped");
    assert!(dropped["text"].as_str().unwrap_or_default().contains("not_in_blueprint"), "{dropped}");
    let hostile_row = rows.iter().find(|row| row["text"].as_str().unwrap_or_default().contains("<img src=x onerror=alert(1)>"));
    assert!(hostile_row.is_some(), "a hostile name is shown as text: {rows:?}");

    page.wait_for("filtered");
    let dom = page.wait_for("dom");
    assert_eq!((dom["images"].as_u64(), dom["alerts"].as_u64()), (Some(0), Some(0)), "nothing from an event ran");
    let details = page.all("detail");
    let hostile_detail = details
        .iter()
        .find(|detail| detail["payload"].as_str().unwrap_or_default().contains("onerror"))
        .expect("the hostile event's detail");
    assert!(
        hostile_detail["payload"].as_str().unwrap_or_default().contains("18446744073709551617"),
        "a user id beyond JavaScript's numbers is shown as written: {hostile_detail}"
    );
    let dropped_detail = details
        .iter()
        .find(|detail| detail["payload"].as_str().unwrap_or_default().contains("Wishlist Viewed"))
        .expect("the dropped detail");
    assert!(dropped_detail["hint"].as_str().unwrap_or_default().contains("no mapping in the blueprint"), "{dropped_detail}");
    let delivered_detail = details.iter().find(|detail| detail["state"] == "delivered").expect("the delivered detail");
    let body: Value = serde_json::from_str(delivered_detail["body"].as_str().unwrap_or_default()).expect("the body sent is JSON");
    assert_eq!(body["actions"][0]["action"], "Order Completed");
    assert_eq!(body["user_identifiers"]["u_em"], "jane@example.com");
    assert!(delivered_detail["answer"].as_str().unwrap_or_default().contains("success"), "MoEngage's answer");
    assert!(delivered_detail["attempts"].as_str().unwrap_or_default().contains("200"), "the attempt's status");
    assert!(delivered_detail["payload"].as_str().unwrap_or_default().contains("ORD-1001"), "the event as received");

    let filtered = page.wait_for("filtered");
    let filtered_rows = filtered["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(filtered_rows.len(), 2, "{filtered}");
    assert!(filtered["url"].as_str().unwrap_or_default().contains("state=dropped"), "the filter is in the address");
    assert!(filtered["asked"].as_str().unwrap_or_default().contains("state=dropped"), "and asked of the API");
    page.wait_for("done");
    let problems: Vec<Value> = page.all("console").into_iter().chain(page.all("pageerror")).collect();
    assert!(problems.is_empty(), "the page logged errors: {problems:?}");
    assert!(screenshot.exists(), "a screenshot to look at");
    for record in page.all("detail") {
        assert!(!record.to_string().contains(API_KEY) && !record.to_string().contains(WRITE_KEY), "a key on the page");
    }
}
