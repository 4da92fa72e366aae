//! `signal send` as an integrator runs it, against a real `signal sandbox` process: the document's
//! example arrives under `u_8842`, a wrong key pauses sending and never shows, faults are retried,
//! and Ctrl-C stops cleanly, saying what was and was not sent.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::SandboxProcess;
use serde_json::json;

const KEY: &str = "s3cret-data-key-for-tests";
const RETAIL: &str = "blueprints/moengage/retail.yaml";

fn signal_send(base: &str, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_signal"));
    command
        .args(["send", "--blueprint", RETAIL, "--endpoint", base])
        .args(args)
        .env("MOENGAGE_WORKSPACE_ID", "WS123")
        .env("MOENGAGE_DATA_API_KEY", key)
        .env_remove("MOENGAGE_DATA_CENTER");
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `signal send` of `events`, keeping what is not delivered in `unsent`.
fn send_keeping_unsent(base: &str, key: &str, args: &[&str], events: &Path, unsent: &Path) -> Output {
    signal_send(base, key, args)
        .arg("--events")
        .arg(events)
        .arg("--unsent")
        .arg(unsent)
        .output()
        .expect("signal send runs")
}

/// `count` Order Completed events for `customer`, order ids 0..count.
fn orders_file(dir: &Path, customer: &str, count: usize) -> std::path::PathBuf {
    let path = dir.join("orders.ndjson");
    let lines: Vec<String> = (0..count)
        .map(|order| {
            json!({"type": "track", "event": "Order Completed", "user_id": customer,
                   "properties": {"order_id": order, "revenue": 10.0}})
            .to_string()
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write events");
    path
}

#[test]
fn sandbox_and_send_deliver_the_documents_example_under_u_8842() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let output = signal_send(&sandbox.base, KEY, &["--events", "examples/events.ndjson"])
        .output()
        .expect("signal send runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("3 of 5 events delivered to workspace WS123"), "{stdout}");
    assert!(stdout.contains("not_in_blueprint"), "{stdout}");
    assert!(stdout.contains("missing_customer_id"), "{stdout}");

    let listed = sandbox.get("/sandbox/workspaces/WS123/customers/u_8842/actions");
    let document_action = json!({"action": "Order Completed", "platform": "web",
        "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}});
    assert_eq!(listed["actions"][0], document_action, "{listed}");
    assert_eq!(listed["actions"][1]["action"], "Page Viewed");
    assert_eq!(
        sandbox.get("/sandbox/workspaces/WS123/customers/8842/actions")["actions"][0]["action"],
        "Signed Up"
    );
}

#[test]
fn a_wrong_key_pauses_sending_keeps_the_events_and_never_shows_the_key() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = orders_file(dir.path(), "u_pause", 300);
    let unsent = dir.path().join("unsent.ndjson");
    let wrong_key = "wrong-key-0123456789";
    let output = send_keeping_unsent(&sandbox.base, wrong_key, &["--concurrency", "2"], &events, &unsent);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("401 AuthenticationError"), "{stdout}");
    assert!(stdout.contains("likely cause: Wrong Workspace ID or Data API key"), "{stdout}");
    assert!(stdout.contains("sending paused after MoEngage answered 401"), "{stdout}");
    assert!(!stdout.contains(wrong_key) && !stderr.contains(wrong_key), "the key never shows");

    let requests = sandbox.get("/sandbox/stats")["requests"].as_u64().expect("requests");
    assert!(requests <= 4, "sending stopped at the first 401s instead of trying all 300: {requests}");
    let mut kept: Vec<String> =
        std::fs::read_to_string(&unsent).expect("unsent file").lines().map(str::to_owned).collect();
    let mut sent: Vec<String> =
        std::fs::read_to_string(&events).expect("events").lines().map(str::to_owned).collect();
    kept.sort();
    sent.sort();
    assert_eq!(kept, sent, "every event is kept, unchanged, to send again");

    // Fixing the key and sending the kept file delivers them all.
    let output = signal_send(&sandbox.base, KEY, &[]).arg("--events").arg(&unsent).output().expect("runs");
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    let listed = sandbox.get("/sandbox/workspaces/WS123/customers/u_pause/actions");
    assert_eq!(listed["actions"].as_array().map(Vec::len), Some(300));
}

#[test]
fn faults_are_retried_until_every_event_is_delivered() {
    let sandbox = SandboxProcess::start(&[
        "--workspace",
        &format!("WS123:{KEY}"),
        "--error-rate",
        "0.2",
        "--throttle-rate",
        "0.05",
        "--retry-after",
        "0",
        // Faults from a fixed seed, each body faulted at most three times: every event is
        // delivered within the window whatever order the requests arrive in, so the test cannot
        // fail by an unlucky run of draws.
        "--seed",
        "20261130",
        "--max-faults",
        "3",
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = orders_file(dir.path(), "u_retry", 200);
    let output = signal_send(&sandbox.base, KEY, &["--retry-window", "2m"])
        .arg("--events")
        .arg(&events)
        .output()
        .expect("signal send runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("200 of 200 events delivered"), "{stdout}");
    let stats = sandbox.get("/sandbox/stats");
    assert!(stats["by_status"]["500"].as_u64().unwrap_or(0) > 10, "faults were injected: {stats}");
    let listed = sandbox.get("/sandbox/workspaces/WS123/customers/u_retry/actions");
    let mut orders: Vec<u64> = listed["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|action| action["attributes"]["order_id"].as_u64())
        .collect();
    orders.sort_unstable();
    assert_eq!(orders, (0..200).collect::<Vec<u64>>(), "each event once");
}

#[test]
fn ctrl_c_stops_cleanly_and_says_what_was_and_was_not_sent() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}"), "--delay-ms", "50"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = orders_file(dir.path(), "u_stop", 2_000);
    let unsent = dir.path().join("unsent.ndjson");
    let mut child = signal_send(&sandbox.base, KEY, &["--concurrency", "4"])
        .arg("--events")
        .arg(&events)
        .arg("--unsent")
        .arg(&unsent)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("signal send starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut started = String::new();
    stderr.read_line(&mut started).expect("first line");
    assert!(started.starts_with("sending "), "{started}");
    let begun = Instant::now();
    while sandbox.get("/sandbox/stats")["accepted_actions"].as_u64().unwrap_or(0) < 20 {
        assert!(begun.elapsed() < Duration::from_secs(20), "nothing arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    common::interrupt(child.id());
    let output = child.wait_with_output().expect("signal send exits");
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("interrupted (Ctrl-C) before these were sent"), "{stdout}");

    let delivered: u64 = stdout
        .split(" of ")
        .next()
        .and_then(|count| count.replace(',', "").parse().ok())
        .expect("the summary starts with the count delivered");
    assert!((20..2_000).contains(&delivered), "{stdout}");
    let kept = std::fs::read_to_string(&unsent).expect("unsent file").lines().count() as u64;
    assert_eq!(delivered + kept, 2_000, "every event is either delivered or kept: {stdout}");
    // Wait for requests the sandbox was still answering when the sender stopped.
    std::thread::sleep(Duration::from_millis(300));
    let accepted = sandbox.get("/sandbox/workspaces/WS123/customers/u_stop/actions")["actions"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    let interrupted = stdout
        .lines()
        .find(|line| line.trim_start().starts_with("interrupted"))
        .and_then(|line| line.split_whitespace().nth(1))
        .map_or(0, |count| count.replace(',', "").parse::<u64>().unwrap_or(0));
    assert!(
        accepted >= delivered && accepted <= delivered + interrupted,
        "the sandbox holds what was reported delivered, plus at most those in flight: {accepted} vs {stdout}"
    );
}

#[test]
fn missing_or_wrong_settings_say_how_to_fix_them() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[], "no Workspace ID: set MOENGAGE_WORKSPACE_ID"),
        (&[("MOENGAGE_WORKSPACE_ID", "WS1"), ("MOENGAGE_DATA_API_KEY", "k")], "no data center"),
        (
            &[
                ("MOENGAGE_WORKSPACE_ID", "WS1"),
                ("MOENGAGE_DATA_API_KEY", "k"),
                ("MOENGAGE_DATA_CENTER", "07"),
            ],
            "use one of 01, 02, 03, 04, 05, 06, 101",
        ),
    ];
    for (env, message) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_signal"))
            .args(["send", "--blueprint", RETAIL, "--events", "examples/events.ndjson"])
            .env_remove("MOENGAGE_WORKSPACE_ID")
            .env_remove("MOENGAGE_DATA_API_KEY")
            .env_remove("MOENGAGE_DATA_CENTER")
            .envs(env.iter().copied())
            .output()
            .expect("signal runs");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains(message), "{stderr}");
    }
    let output = signal_send("ftp://example", KEY, &["--events", "examples/events.ndjson"])
        .output()
        .expect("signal runs");
    assert!(text(&output).1.contains("is not an http:// or https:// URL"), "{:?}", text(&output));
    let output = signal_send("http://127.0.0.1:9", KEY, &["--events", "no/such/file.ndjson"])
        .output()
        .expect("signal runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("cannot read events from no/such/file.ndjson"));
}

#[test]
fn an_unreachable_endpoint_fails_with_the_connection_hint_when_the_window_closes() {
    let closed = common::RefusingPort::new();
    let output = signal_send(&closed.url(), KEY, &["--retry-window", "2s"])
        .args(["--events", "examples/events.ndjson"])
        .output()
        .expect("signal runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("connection error, still failing when the retry window closed"), "{stdout}");
    // `--endpoint` was given, so the data center is not to blame: the hint names the endpoint.
    assert!(stdout.contains(&format!("likely cause: Nothing answers at the endpoint {}", closed.url())), "{stdout}");
    assert!(!stdout.contains("Wrong data center"), "{stdout}");
    assert!(stdout.starts_with("0 of 5 events delivered"), "{stdout}");
}

#[test]
fn after_a_pause_the_unsent_file_holds_only_what_the_blueprint_would_send() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("mixed.ndjson");
    let lines: Vec<String> = (0..200)
        .map(|n| {
            let event = if n % 2 == 0 { "Order Completed" } else { "Wishlist Shared" };
            json!({"type": "track", "event": event, "user_id": "u_mixed", "properties": {"order_id": n}}).to_string()
        })
        .collect();
    std::fs::write(&events, lines.join("\n") + "\n").expect("write events");
    let unsent = dir.path().join("unsent.ndjson");
    let output = send_keeping_unsent(&sandbox.base, "wrong-key", &["--concurrency", "1"], &events, &unsent);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let kept = std::fs::read_to_string(&unsent).expect("unsent file");
    assert_eq!(kept.lines().count(), 100, "only the orders: {stdout}");
    assert!(kept.lines().all(|line| line.contains("Order Completed")), "{kept}");
    assert!(stdout.contains("not_in_blueprint"), "the others are reported as dropped: {stdout}");
}

#[test]
fn lines_that_are_not_events_are_invalid_and_fail_the_run() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("broken.ndjson");
    let order = json!({"type": "track", "event": "Order Completed", "user_id": "u_ok"}).to_string();
    std::fs::write(&events, format!("{order}\nnot json at all\n{order}\n")).expect("write events");
    let output = signal_send(&sandbox.base, KEY, &[]).arg("--events").arg(&events).output().expect("runs");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "a file with broken lines needs fixing: {stdout}{stderr}");
    assert!(stdout.contains("invalid_event"), "{stdout}");
    assert!(stdout.contains("line 2"), "{stdout}");
}

#[test]
fn an_endpoint_where_nothing_answers_stops_early_and_says_why() {
    let closed = common::RefusingPort::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let unsent = dir.path().join("unsent.ndjson");
    let started = Instant::now();
    let events = Path::new("examples/events.ndjson");
    let output = send_keeping_unsent(&closed.url(), KEY, &[], events, &unsent);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "not the whole default hour: {:?}", started.elapsed());
    assert!(stdout.contains("stopped: nothing answered in 20 s"), "{stdout}");
    assert!(stdout.to_lowercase().contains("connection refused"), "the cause is named: {stdout}");
    assert!(
        stderr.contains("retrying: ") && stderr.to_lowercase().contains("connection refused"),
        "the progress line shows the retries and why: {stderr}"
    );
    // The three events the blueprint maps are kept; the two it drops are not.
    assert_eq!(std::fs::read_to_string(&unsent).expect("unsent").lines().count(), 3, "{stdout}");
}
