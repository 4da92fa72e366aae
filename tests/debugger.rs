//! The Event Debugger as operators use it, on real processes: the document's test step ("confirm the
//! event delivered with a 200 response") in the API and in `signal events`; a paused integration
//! recovered with a key fix and SIGHUP alone, every waiting event delivered once; failed events
//! replayed with `signal replay` once the destination is back; retention under load; the admin
//! token; and the keys absent from the API, the page and the database.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{document_event, document_payload, Http, SandboxProcess, ServeProcess, eventually};
use serde_json::{Value, json};

const WRITE_KEY: &str = "site-write-key-4471";
const API_KEY: &str = "moengage-data-key-9c1f";

/// `signal.yaml` in `dir`: one source, one MoEngage integration at `endpoint` with `api_key`, the
/// Retail preset, and `extra` top-level settings.
fn write_config(dir: &Path, endpoint: &str, api_key: &str, extra: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        "storage:\n  sqlite: signal.db\n{extra}sources:\n  site:\n    write_key: {WRITE_KEY}\n\
         integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: {api_key}\n    data_center: \"01\"\n    endpoint: {endpoint}\n\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n"
    );
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

fn signal(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(args)
        .env_remove("SIGNAL_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("signal runs")
}

fn track(http: &Http, serve: &ServeProcess, event: Value) {
    track_with(http, serve, WRITE_KEY, event);
}

/// Sends one event with `key` and checks it was accepted.
fn track_with(http: &Http, serve: &ServeProcess, key: &str, event: Value) {
    let (status, answer) =
        http.post(&format!("{}/v1/track", serve.collector), Some(key), &[], event.to_string().into_bytes());
    assert_eq!(status, 200, "{answer}");
}

fn batch(http: &Http, serve: &ServeProcess, events: Vec<Value>) {
    let body = json!({"batch": events}).to_string().into_bytes();
    let (status, answer) = http.post(&format!("{}/v1/batch", serve.collector), Some(WRITE_KEY), &[], body);
    assert_eq!(status, 200, "{answer}");
}

fn order(n: usize) -> Value {
    json!({"type": "track", "event": "Order Completed", "user_id": format!("u_{n}"), "message_id": format!("order-{n}"),
           "properties": {"order_id": format!("ORD-{n}"), "revenue": 10.0}})
}

/// Every event listed, newest first, following the cursor.
fn all_events(http: &Http, serve: &ServeProcess, filter: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = http.json(&format!("{}/api/events?limit=1000{filter}{cursor}", serve.admin));
        events.extend(page["events"].as_array().cloned().expect("events"));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return events,
        }
    }
}

fn states(events: &[Value]) -> Vec<&str> {
    events.iter().map(|event| event["state"].as_str().expect("state")).collect()
}

fn hangup(serve: &ServeProcess) {
    let status = Command::new("kill").args(["-HUP", &serve.child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
}

#[test]
fn the_documents_test_step_in_the_api_and_the_terminal_and_no_key_anywhere() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, API_KEY, "");
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    track(&http, &serve, document_event());
    track(&http, &serve, json!({"type": "track", "event": "Wishlist Viewed", "user_id": "u_8842"}));
    let mut events = Vec::new();
    eventually(Duration::from_secs(10), "both events settled", || {
        events = all_events(&http, &serve, "");
        events.len() == 2 && !states(&events).contains(&"pending")
    });

    // Newest first: the dropped one, then the order.
    let (dropped, delivered) = (&events[0], &events[1]);
    assert_eq!(delivered["state"], "delivered");
    assert_eq!((delivered["status"].as_u64(), delivered["code"].as_str()), (Some(200), Some("200")));
    assert_eq!((delivered["event"].as_str(), delivered["customer_id"].as_str()), (Some("Order Completed"), Some("u_8842")));
    assert_eq!((delivered["type"].as_str(), delivered["source"].as_str(), delivered["pipeline"].as_str()), (Some("track"), Some("site"), Some("site")));
    assert_eq!(delivered["attempts"], 1);
    assert_eq!((dropped["state"].as_str(), dropped["code"].as_str()), (Some("dropped"), Some("not_in_blueprint")));
    assert!(dropped["hint"].as_str().is_some_and(|hint| hint.contains("no mapping")), "{dropped}");

    let detail = http.json(&format!("{}/api/events/{}", serve.admin, delivered["id"]));
    assert_eq!(detail["body_sent"], document_payload(), "the body sent is the document's example");
    assert_eq!(detail["response_body"]["status"], "success");
    assert_eq!(detail["attempt_log"][0]["status"], 200);
    assert!(detail["attempt_log"][0]["latency_ms"].is_u64());
    assert_eq!(detail["payload"]["properties"]["order_id"], "ORD-1001");
    assert!(detail["finished_at"].is_string() && detail["latency_ms"].is_u64(), "{detail}");
    let (status, missing) = http.get(&format!("{}/api/events/999999", serve.admin));
    assert_eq!(status, 404, "{missing}");

    // Filters and their mistakes.
    let only_dropped = all_events(&http, &serve, "&state=dropped");
    assert_eq!(only_dropped.len(), 1);
    assert_eq!(all_events(&http, &serve, "&customer_id=u_8842").len(), 2);
    assert_eq!(all_events(&http, &serve, "&event=Order%20Completed").len(), 1);
    let (status, body) = http.get(&format!("{}/api/events?state=lost", serve.admin));
    assert_eq!(status, 400);
    assert!(body.contains("pending, retrying, delivered, dropped, failed, paused"), "{body}");
    let (status, body) = http.get(&format!("{}/api/events?since=yesterday", serve.admin));
    assert_eq!(status, 400);
    assert!(body.contains("RFC 3339"), "{body}");

    // The same in the terminal.
    let listed = signal(&["events", "--admin", &serve.admin], &[]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let order_line = table.lines().find(|line| line.contains("Order Completed")).expect("the order's line");
    assert!(order_line.contains("delivered") && order_line.contains("200") && order_line.contains("u_8842"), "{table}");
    let dropped_line = table.lines().find(|line| line.contains("Wishlist Viewed")).expect("the dropped line");
    assert!(dropped_line.contains("dropped") && dropped_line.contains("not_in_blueprint"), "{table}");
    let as_json = signal(&["events", "--admin", &serve.admin, "--json", "--state", "delivered"], &[]);
    let lines: Vec<Value> = String::from_utf8_lossy(&as_json.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0]["event"].as_str(), lines[0]["status"].as_u64()), (Some("Order Completed"), Some(200)));
    let mistaken = signal(&["events", "--admin", &serve.admin, "--state", "lost"], &[]);
    assert_eq!(mistaken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mistaken.stderr).contains("`state` is `lost`"));
    let unreachable = signal(&["events", "--admin", "http://127.0.0.1:9"], &[]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("Is `signal serve` running?"));

    // Neither key is in an answer, the page or the database.
    let (_, page) = http.get(&format!("{}/debugger", serve.admin));
    let (_, listing) = http.get(&format!("{}/api/events", serve.admin));
    let (_, one) = http.get(&format!("{}/api/events/{}", serve.admin, delivered["id"]));
    assert!(one.contains(r#""body_sent":{"type":"event","customer_id":"u_8842","#), "as sent, in its order: {one}");
    assert!(one.contains(r#""payload":{"event":"Order Completed","#), "as received: {one}");
    for (what, text) in [("the page", &page), ("the listing", &listing), ("the detail", &one), ("the terminal", &table.to_string())] {
        assert!(!text.contains(API_KEY) && !text.contains(WRITE_KEY), "a key in {what}");
    }
    let stored = common::stored_bytes(dir.path());
    assert!(stored.len() > 4096, "the database was read");
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("ORD-1001"), "events are stored");
    assert!(!stored.contains(API_KEY) && !stored.contains(WRITE_KEY), "a key in the database");
}

#[test]
fn a_paused_integration_recovers_with_a_key_fix_and_sighup_alone() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, "a-wrong-key", "delivery:\n  concurrency: 4\n");
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    batch(&http, &serve, (0..40).map(order).collect());
    eventually(Duration::from_secs(10), "the integration paused", || {
        serve.logs().contains("delivery to this integration is paused")
            && all_events(&http, &serve, "&state=paused").len() >= 1
    });
    let paused = all_events(&http, &serve, "&state=paused");
    assert!(paused.iter().all(|event| event["code"] == "401" && event["status"] == 401), "{paused:?}");
    assert!(paused[0]["hint"].as_str().is_some_and(|hint| hint.contains("Workspace ID or Data API key")));
    assert_eq!(sandbox.get("/sandbox/stats")["accepted_actions"], 0);

    // A broken configuration is refused; the running one is kept, and still takes events. Its
    // diagnostics name places, not the file's text: here a mistyped key that holds the key.
    let good = std::fs::read_to_string(&config).expect("read the configuration");
    std::fs::write(&config, good.replacen("data_api_key:", "data_api_key=topsecret-typo:", 1)).expect("break the configuration");
    hangup(&serve);
    eventually(Duration::from_secs(5), "the broken configuration refused", || {
        serve.logs().contains("the configuration was not reloaded; the running one is kept")
    });
    assert!(serve.logs().contains("signal.yaml:"), "its diagnostics are logged: {}", serve.logs());
    assert!(serve.logs().contains("error[unknown_key]"), "{}", serve.logs());
    assert!(!serve.logs().contains("topsecret"), "the file's text in the log: {}", serve.logs());
    track(&http, &serve, order(40));

    // The key fixed, a SIGHUP: everything that waited is delivered, once.
    write_config(dir.path(), &sandbox.base, API_KEY, "delivery:\n  concurrency: 4\n");
    hangup(&serve);
    eventually(Duration::from_secs(15), "all 41 orders delivered", || {
        all_events(&http, &serve, "&state=delivered").len() == 41
    });
    assert!(serve.logs().contains("configuration reloaded"), "{}", serve.logs());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sandbox.get("/sandbox/stats")["accepted_actions"], 41, "each order once");
    let everything = all_events(&http, &serve, "");
    assert_eq!(everything.len(), 41);
    assert!(states(&everything).iter().all(|state| *state == "delivered"));
}

#[test]
fn failed_events_are_replayed_once_the_destination_is_back() {
    // A port with nothing on it, held for the sandbox: the destination is down.
    let down = common::RefusingPort::new();
    let (port, endpoint) = (down.address.port(), down.url());
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &endpoint, API_KEY, "delivery:\n  retry_window: 2s\n");
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    batch(&http, &serve, (0..5).map(order).collect());
    eventually(Duration::from_secs(20), "the orders failed when the retry window closed", || {
        all_events(&http, &serve, "&state=failed").len() == 5
    });
    let failed = all_events(&http, &serve, "&state=failed");
    assert!(failed.iter().all(|event| event["code"] == "connection"), "{failed:?}");
    assert!(failed.iter().all(|event| event["attempts"].as_u64().is_some_and(|n| n >= 1)));

    let nothing = signal(&["replay", "--admin", &serve.admin, "--state", "paused"], &[]);
    assert!(String::from_utf8_lossy(&nothing.stdout).contains("no paused events to replay"));

    // The destination is back on its port.
    let mut sandbox = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}"), "--workspace", &format!("WS1:{API_KEY}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the sandbox starts");
    let stats = format!("{endpoint}/sandbox/stats");
    eventually(Duration::from_secs(10), "the sandbox listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let replayed = signal(&["replay", "--admin", &serve.admin, "--state", "failed"], &[]);
    let said = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success(), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(said.contains("5 failed events queued again"), "{said}");
    eventually(Duration::from_secs(10), "the replayed orders delivered", || {
        all_events(&http, &serve, "&state=delivered").len() == 5
    });
    assert_eq!(http.json(&stats)["accepted_actions"], 5);
    let _ = sandbox.kill();
    let _ = sandbox.wait();
}

#[test]
fn retention_keeps_the_newest_settled_events_and_loses_none_in_flight() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, API_KEY, "");
    let with_retention = std::fs::read_to_string(&config)
        .expect("read")
        .replace("storage:\n  sqlite: signal.db\n", "storage:\n  sqlite: signal.db\n  retention:\n    max_events: 1000\n");
    std::fs::write(&config, with_retention).expect("write");
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    for start in (0..2500).step_by(250) {
        batch(&http, &serve, (start..start + 250).map(order).collect());
    }
    eventually(Duration::from_secs(30), "all 2,500 orders delivered", || {
        sandbox.get("/sandbox/stats")["accepted_actions"] == 2500
    });
    eventually(Duration::from_secs(20), "the oldest settled events pruned", || {
        all_events(&http, &serve, "").len() <= 1000
    });
    let kept = all_events(&http, &serve, "");
    assert!(kept.len() >= 990, "the newest are kept: {}", kept.len());
    assert_eq!(kept[0]["message_id"], "order-2499", "the newest first");
    let (status, _) = http.get(&format!("{}/api/events/1", serve.admin));
    assert_eq!(status, 404, "the first event is gone");
}

#[test]
fn the_admin_token_guards_the_api_and_metrics_but_not_the_page() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let token = "admin-token-0123456789";
    let config = write_config(dir.path(), &sandbox.base, API_KEY, &format!("admin_token: {token}\n"));
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    track(&http, &serve, document_event());
    let events = format!("{}/api/events", serve.admin);
    let (status, headers, body) = http.send("GET", &events, &[], Vec::new());
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert!(body.contains("admin_token"), "{body}");
    let (status, _, _) = http.send("GET", &events, &[("authorization", "Bearer not-the-token")], Vec::new());
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http.send("GET", &events, &[("authorization", &bearer)], Vec::new());
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = http.send("GET", &format!("{}/metrics", serve.admin), &[], Vec::new());
    assert_eq!(status, 401, "metrics need the token too");
    assert_eq!(http.get(&format!("{}/debugger", serve.admin)).0, 200, "the page holds no data");
    assert_eq!(http.get(&format!("{}/healthz", serve.admin)).0, 200);

    let refused = signal(&["events", "--admin", &serve.admin], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --token, or set SIGNAL_ADMIN_TOKEN"));
    let by_variable = signal(&["events", "--admin", &serve.admin], &[("SIGNAL_ADMIN_TOKEN", token)]);
    assert!(by_variable.status.success(), "{}", String::from_utf8_lossy(&by_variable.stderr));
    assert!(String::from_utf8_lossy(&by_variable.stdout).contains("Order Completed"));

    // Off loopback, a token is required.
    let open = write_config(dir.path(), &sandbox.base, API_KEY, "admin_listen: 0.0.0.0:9090\n");
    let checked = signal(&["validate", &open], &[]);
    assert_eq!(checked.status.code(), Some(1));
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(said.contains("signal.yaml:3:15") && said.contains("admin_token"), "{said}");
}

#[test]
fn the_live_stream_tells_each_new_event_and_its_fate() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, API_KEY, "");
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let mut follow = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["events", "--admin", &serve.admin, "--follow", "--json", "--customer-id", "u_8842"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("signal events --follow starts");
    let stdout = follow.stdout.take().expect("stdout");
    let (lines, seen) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(record) = serde_json::from_str(&line) {
                let _ = lines.send(record);
            }
        }
    });
    let http = Http::new();
    // Once a first event of the customer is seen delivered, the stream is surely being followed.
    eventually(Duration::from_secs(20), "the follower to see a first login delivered", || {
        track(&http, &serve, json!({"type": "track", "event": "Logged In", "user_id": "u_8842"}));
        std::iter::from_fn(|| seen.recv_timeout(Duration::from_millis(500)).ok())
            .any(|record| record["event"] == "Logged In" && record["state"] == "delivered")
    });
    track(&http, &serve, json!({"type": "track", "event": "Logged In", "user_id": "someone_else"}));
    track(&http, &serve, document_event());
    let mut told = Vec::new();
    while let Ok(record) = seen.recv_timeout(Duration::from_secs(10)) {
        let done = record["event"] == "Order Completed" && record["state"] == "delivered";
        told.push(record);
        if done {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(told.iter().all(|record| record["customer_id"] == "u_8842"), "the filter holds: {told:?}");
    // Logins sent while waiting for the follower may still be told; the order is told twice.
    let order: Vec<Value> = told.into_iter().filter(|record| record["event"] == "Order Completed").collect();
    assert_eq!(states(&order), ["pending", "delivered"], "{order:?}");
    assert_eq!(order[1]["status"], 200);
}

#[test]
fn on_the_built_in_defaults_a_new_user_sees_the_order_delivered_with_200() {
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("data/signal.db").display().to_string();
    let serve = ServeProcess::start(&["--database", &database], &[]);
    assert!(serve.banner.contains("/debugger"), "the banner says where the debugger is: {}", serve.banner);
    let http = Http::new();
    track_with(&http, &serve, "dev-write-key", document_event());
    eventually(Duration::from_secs(10), "the order delivered", || {
        all_events(&http, &serve, "&state=delivered").len() == 1
    });
    let listed = signal(&["events", "--admin", &serve.admin], &[]);
    let table = String::from_utf8_lossy(&listed.stdout);
    let line = table.lines().find(|line| line.contains("Order Completed")).expect("the order in signal events");
    assert!(line.contains("delivered") && line.contains(" 200 "), "{table}");
    let (status, page) = http.get(&format!("{}/debugger", serve.admin));
    assert_eq!(status, 200);
    assert!(page.contains("Event Debugger"), "the page is served by the binary itself");

    // Without a configuration file there is nothing to reload: said, and the service goes on.
    let (status, _, body) =
        http.send("POST", &format!("{}/api/reload", serve.admin), &[("content-type", "application/json")], Vec::new());
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("built-in defaults"), "{body}");
    hangup(&serve);
    eventually(Duration::from_secs(5), "the SIGHUP answered in the log", || {
        serve.logs().contains("there is no configuration file to load again")
    });
    // A SIGHUP does not end the service.
    track_with(&http, &serve, "dev-write-key", document_event());
}

#[test]
fn without_a_token_the_admin_api_answers_only_this_machine_and_only_json_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("signal.db").display().to_string();
    let serve = ServeProcess::start(&["--database", &database], &[]);
    let http = Http::new();
    let events = format!("{}/api/events", serve.admin);
    // A page that reaches the port through a DNS name pointing at 127.0.0.1 sends its own name.
    for host in ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example:9090"] {
        let (status, _, body) = http.send("GET", &events, &[("host", host)], Vec::new());
        assert_eq!(status, 403, "Host: {host}: {body}");
    }
    for host in ["localhost", "127.0.0.1:9090", "[::1]:9090"] {
        let (status, _, body) = http.send("GET", &events, &[("host", host)], Vec::new());
        assert_eq!(status, 200, "Host: {host}: {body}");
    }
    // Written by hand: no Host (HTTP/1.0), two of them, or a request line naming another host.
    let address = serve.admin.trim_start_matches("http://").to_owned();
    for request in [
        "GET /api/events HTTP/1.0\r\n\r\n".to_owned(),
        "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".to_owned(),
        format!("GET http://evil.example/api/events HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
    ] {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        assert!(status == "403" || status == "400", "{request:?} was answered {answer:?}");
        assert!(!answer.contains("\"events\""), "{request:?} was listed: {answer}");
    }
    // Another site's page can send text/plain without asking first: changes must be JSON.
    let replay = format!("{}/api/replay", serve.admin);
    let (status, _, body) = http.send("POST", &replay, &[("content-type", "text/plain")], br#"{"state":"failed"}"#.to_vec());
    assert_eq!(status, 415, "{body}");
    let (status, _, body) =
        http.send("POST", &replay, &[("content-type", "application/json")], br#"{"state":"failed"}"#.to_vec());
    assert_eq!(status, 200, "{body}");
    let (status, _, body) =
        http.send("POST", &replay, &[("content-type", "application/json")], br#"{"state":"lost"}"#.to_vec());
    assert_eq!(status, 400);
    assert!(body.contains("`failed` or `paused`"), "{body}");
    // A step's `limit` is 1 to 1,000, as a listing's is.
    for limit in [0, 1001, 5000] {
        let request = format!(r#"{{"state":"failed","limit":{limit}}}"#);
        let (status, _, body) = http.send("POST", &replay, &[("content-type", "application/json")], request.into_bytes());
        assert_eq!(status, 400, "{limit}: {body}");
        assert!(body.contains("it is 1 to 1000"), "{body}");
    }
}

#[test]
fn an_admin_listener_other_machines_can_reach_needs_a_token_from_the_flag_or_a_reload() {
    // Built-in defaults have no token: listening beyond loopback is refused at start.
    let dir = tempfile::tempdir().expect("dir");
    let refused = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .args(["--database", &dir.path().join("signal.db").display().to_string()])
        .env_remove("MOENGAGE_WORKSPACE_ID")
        .output()
        .expect("signal serve runs");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("other machines can reach") && said.contains("admin_token"), "{said}");

    // With a token in the file it starts; a reload that drops the token is refused.
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let token = "admin-token-0123456789";
    let config = write_config(dir.path(), &sandbox.base, API_KEY, &format!("admin_token: {token}\n"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["serve", "--config", &config, "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("signal serve starts");
    let mut banner = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut port = None;
    while port.is_none() {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut banner, &mut line).expect("banner") > 0, "it stopped");
        if line.trim_start().starts_with("admin") {
            port = line.split("0.0.0.0:").nth(1).and_then(|rest| rest.split('/').next()).map(str::to_owned);
        }
    }
    let admin = format!("http://127.0.0.1:{}", port.expect("the admin port"));
    let http = Http::new();
    let reload = format!("{admin}/api/reload");
    let bearer = format!("Bearer {token}");
    write_config(dir.path(), &sandbox.base, API_KEY, "");
    let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let (status, _, body) = http.send("POST", &reload, &headers, Vec::new());
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("admin_token"), "{body}");
    let (status, _, _) = http.send("GET", &format!("{admin}/api/events"), &[], Vec::new());
    assert_eq!(status, 401, "the token still guards the API");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_admin_listener_holds_up_to_careless_clients_and_keeps_the_collector_free() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("signal.db").display().to_string();
    let serve = ServeProcess::start(&["--database", &database], &[]);
    let http = Http::new();
    let address = serve.admin.trim_start_matches("http://").to_owned();

    // Filters are given once each, a limit is 1 to 1,000, and times run forwards.
    for (query, said) in [
        ("state=delivered&state=dropped", "given twice"),
        ("limit=0", "1 to 1000"),
        // Above the bound is refused as below it is, not cut silently.
        ("limit=1001", "1 to 1000"),
        ("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "`since` is not before `until`"),
    ] {
        let (status, body) = http.get(&format!("{}/api/events?{query}", serve.admin));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(said), "{query}: {body}");
    }
    // A full last page says there is no next one.
    for n in 0..3 {
        track_with(&http, &serve, "dev-write-key", json!({"type": "track", "event": "Signed Up", "user_id": format!("u_{n}")}));
    }
    eventually(Duration::from_secs(5), "three events listed", || all_events(&http, &serve, "").len() == 3);
    let page = http.json(&format!("{}/api/events?limit=3", serve.admin));
    assert_eq!((page["events"].as_array().map(Vec::len), &page["next_cursor"]), (Some(3), &Value::Null));

    // Live streams are bounded: the 33rd is refused with a reason.
    let streams: Vec<std::net::TcpStream> = (0..32)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&address).expect("connect");
            write!(stream, "GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("ask");
            let mut head = [0u8; 12];
            stream.read_exact(&mut head).expect("an answer");
            assert_eq!(&head, b"HTTP/1.1 200", "a stream opens");
            stream
        })
        .collect();
    let (status, _, body) = http.send("GET", &format!("{}/api/events/stream", serve.admin), &[], Vec::new());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("live streams are open already"), "{body}");
    drop(streams);

    // A client that starts a request and never finishes its headers is cut off.
    let mut slow = std::net::TcpStream::connect(&address).expect("connect");
    slow.write_all(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n").expect("half a request");
    slow.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(15), "closed after the header limit, not held");

    // A crowd of connections to the admin listener is turned away, and the collector still takes events.
    let crowd: Vec<std::net::TcpStream> =
        (0..300).filter_map(|_| std::net::TcpStream::connect(&address).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    track_with(&http, &serve, "dev-write-key", document_event());
    drop(crowd);
    // Until it has seen the crowd go, a new connection may still be turned away: ask until answered.
    eventually(Duration::from_secs(10), "the admin listener answering again", || {
        let Ok(mut stream) = std::net::TcpStream::connect(&address) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = String::new();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    });
}
