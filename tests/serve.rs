//! `signal serve` as operators run it: real processes, real HTTP, a real SQLite file. The document's
//! example reaches the sandbox as the document's payload; an unmapped event is dropped with its
//! code; a wrong key is recorded with its hint and the events behind it wait; bad input gets a JSON
//! error and the server keeps serving; a replayed `message_id` is delivered once; a clean stop
//! loses nothing.

use crate::common;

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{document_event, document_payload, Http, SandboxProcess, ServeProcess, eventually, metric};
use serde_json::{Value, json};

const KEY: &str = "data-key-kept-in-the-environment";

/// A configuration with a `web` source delivering to the sandbox with the right key, and an `app`
/// source delivering to it with a wrong one.
fn write_config(dir: &Path, sandbox: &str, extra: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        r#"storage:
  sqlite: signal.db
delivery:
  concurrency: 8
{extra}sources:
  web:
    write_key: web-key
  app:
    write_key: app-key
integrations:
  good:
    workspace_id: WS123
    data_api_key: ${{TEST_DATA_API_KEY}}
    data_center: "01"
    endpoint: {sandbox}
  bad:
    workspace_id: WS123
    data_api_key: not-the-key
    data_center: "01"
    endpoint: {sandbox}
pipelines:
  web:
    source: web
    integration: good
    preset: retail
  app:
    source: app
    integration: bad
    preset: retail
"#
    );
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

#[test]
fn events_go_through_the_blueprint_to_the_sandbox_and_a_wrong_key_pauses_its_integration() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, "");
    let serve = ServeProcess::start(&["--config", &config], &[("TEST_DATA_API_KEY", KEY)]);
    let http = Http::new();
    let track = format!("{}/v1/track", serve.collector);

    let (status, answer) = http.post(&track, Some("web-key"), &[], document_event().to_string().into_bytes());
    assert_eq!((status, &answer["success"]), (200, &json!(true)), "{answer}");
    eventually(Duration::from_secs(20), "the document's event in the sandbox", || {
        http.json(&format!("{}/sandbox/workspaces/WS123/requests", sandbox.base))["requests"]
            .as_array()
            .is_some_and(|requests| !requests.is_empty())
    });
    let requests = http.json(&format!("{}/sandbox/workspaces/WS123/requests", sandbox.base));
    assert_eq!(requests["requests"][0], document_payload(), "exactly the document's payload");

    let unmapped = json!({"type": "track", "event": "Wishlist Shared", "user_id": "u_8842"});
    assert_eq!(http.post(&track, Some("web-key"), &[], unmapped.to_string().into_bytes()).0, 200);
    eventually(Duration::from_secs(20), "the drop in the metrics", || {
        metric(&http, &serve, "signal_events_dropped_total{pipeline=\"web\",code=\"not_in_blueprint\"}") == 1
    });

    // The app source's integration has a wrong key: the first answer pauses it, the rest wait.
    let batch: Vec<Value> =
        (0..5).map(|n| json!({"type": "track", "event": "Signed Up", "user_id": format!("u_{n}")})).collect();
    let (status, _) = http.post(
        &format!("{}/v1/batch", serve.collector),
        Some("app-key"),
        &[],
        json!({"batch": batch}).to_string().into_bytes(),
    );
    assert_eq!(status, 200);
    eventually(Duration::from_secs(20), "the integration to pause", || {
        metric(&http, &serve, "signal_events_paused_total{integration=\"bad\"}") >= 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let rows: Vec<(String, Option<String>, Option<String>)> =
        common::stored_rows(dir.path(), "SELECT state, code, detail FROM events WHERE pipeline = 'app' ORDER BY id", 3)
            .into_iter()
            .map(|row| (row[0].clone().unwrap_or_default(), row[1].clone(), row[2].clone()))
            .collect();
    assert_eq!(rows.len(), 5);
    let paused: Vec<_> = rows.iter().filter(|row| row.0 == "paused").collect();
    assert!(!paused.is_empty(), "{rows:?}");
    for (_, code, detail) in &paused {
        assert_eq!(code.as_deref(), Some("401"));
        assert!(
            detail.as_deref().is_some_and(|d| d.contains("Wrong Workspace ID or Data API key")),
            "{detail:?}"
        );
    }
    assert!(
        rows.iter().all(|row| row.0 == "paused" || row.0 == "pending"),
        "none failed, none delivered: {rows:?}"
    );
    assert!(serve.logs().contains("delivery to this integration is paused"), "{}", serve.logs());
    let logs = serve.logs();
    assert!(!logs.contains(KEY) && !logs.contains("not-the-key"), "keys never appear in logs: {logs}");
}

#[test]
fn bad_input_gets_its_status_and_a_json_error_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("signal.db").display().to_string();
    let serve = ServeProcess::start(&["--database", &database], &[]);
    let http = Http::new();
    let track = format!("{}/v1/track", serve.collector);
    let batch = format!("{}/v1/batch", serve.collector);
    let key = Some("dev-write-key");

    let deep = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let mut gzip_bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip_bomb.write_all(&vec![b' '; 64 * 1024 * 1024]).expect("compress");
    let gzip_bomb = gzip_bomb.finish().expect("gzip");
    assert!(gzip_bomb.len() < 1024 * 1024, "a small body: {}", gzip_bomb.len());
    let huge_property = json!({"type": "track", "event": "Order Completed", "user_id": "u", "properties": {"notes": "x".repeat(200_000)}});
    let many: Vec<Value> =
        (0..1_001).map(|_| json!({"type": "track", "event": "Logged In", "user_id": "u"})).collect();

    type Case<'a> =
        (&'a str, &'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, Vec<u8>, u16, Option<(usize, &'a str)>);
    let cases: Vec<Case> = vec![
        ("malformed JSON", &track, key, vec![], b"{\"type\": \"track\",".to_vec(), 400, None),
        ("user_id of the wrong type", &track, key, vec![], br#"{"event":"Signed Up","user_id":{"id":1}}"#.to_vec(), 400, Some((0, "user_id"))),
        ("a bad timestamp in a single call", &track, key, vec![], br#"{"event":"Logged In","user_id":"u","timestamp":"yesterday"}"#.to_vec(), 400, Some((0, "timestamp"))),
        ("properties that are not an object", &track, key, vec![], br#"{"event":"Signed Up","properties":[1]}"#.to_vec(), 400, Some((0, "properties"))),
        ("a track call without an event", &track, key, vec![], br#"{"user_id":"u"}"#.to_vec(), 400, Some((0, "event"))),
        ("not an object", &track, key, vec![], b"[1,2,3]".to_vec(), 400, Some((0, ""))),
        ("a body over 4 MiB", &track, key, vec![], vec![b' '; 5 * 1024 * 1024], 413, None),
        ("an event over 128 KB", &track, key, vec![], huge_property.to_string().into_bytes(), 413, Some((0, ""))),
        ("1,001 events in a batch", &batch, key, vec![], json!({"batch": many}).to_string().into_bytes(), 413, None),
        ("deep nesting", &track, key, vec![], deep.into_bytes(), 400, None),
        ("invalid UTF-8", &track, key, vec![], b"{\"event\":\"\xff\xfe\"}".to_vec(), 400, None),
        ("a gzip bomb", &track, key, vec![("content-encoding", "gzip")], gzip_bomb, 413, None),
        ("a body that is not gzip", &track, key, vec![("content-encoding", "gzip")], b"plain".to_vec(), 400, None),
        ("an unsupported encoding", &track, key, vec![("content-encoding", "br")], b"{}".to_vec(), 415, None),
        ("no write key", &track, None, vec![], br#"{"event":"Signed Up"}"#.to_vec(), 401, None),
        ("a wrong write key", &track, Some("guess"), vec![], br#"{"event":"Signed Up"}"#.to_vec(), 401, None),
    ];
    for (what, url, write_key, headers, body, status, place) in cases {
        let (got, answer) = http.post(url, write_key, &headers, body);
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["success"], json!(false), "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {answer}");
        if let Some((index, field)) = place {
            assert_eq!(answer["error"]["event_index"], json!(index), "{what}: {answer}");
            if !field.is_empty() {
                assert_eq!(answer["error"]["field"], json!(field), "{what}: {answer}");
            }
        }
    }
    let beacon = json!({"writeKey": "dev-write-key", "batch": [{"event": "Logged In", "user_id": "u"}]});
    assert_eq!(
        http.post(&batch, None, &[], beacon.to_string().into_bytes()).0,
        200,
        "a write key in the body"
    );
    let beacon = json!({"writeKey": "guess", "event": "Logged In", "user_id": "u"});
    assert_eq!(http.post(&track, None, &[], beacon.to_string().into_bytes()).0, 401);
    let (status, answer) = http.post(&format!("{}/v1/nothing", serve.collector), key, &[], b"{}".to_vec());
    assert_eq!((status, answer["success"].clone()), (404, json!(false)));

    assert_eq!(http.get(&format!("{}/healthz", serve.admin)).0, 200, "still serving");
    let (status, _) = http.post(&track, key, &[], document_event().to_string().into_bytes());
    assert_eq!(status, 200, "and still taking events");
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzipped.write_all(document_event().to_string().as_bytes()).expect("compress");
    let (status, _) =
        http.post(&track, key, &[("content-encoding", "gzip")], gzipped.finish().expect("gzip"));
    assert_eq!(status, 200, "gzip bodies are accepted");
    for (path, status, count) in
        [("events", 400, 9), ("events", 401, 3), ("events", 413, 4), ("events", 415, 1), ("unknown", 404, 1)]
    {
        let line = format!("signal_requests_rejected_total{{path=\"{path}\",status=\"{status}\"}}");
        assert_eq!(metric(&http, &serve, &line), count, "{line}");
    }
}

#[test]
fn a_clean_stop_loses_nothing_and_a_replayed_message_id_is_delivered_once() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}"), "--delay-ms", "20"]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, "");
    let env = [("TEST_DATA_API_KEY", KEY)];
    let mut serve = ServeProcess::start(&["--config", &config], &env);
    let http = Http::new();
    let batch_url = format!("{}/v1/batch", serve.collector);
    let events = |range: std::ops::Range<usize>| -> Vec<u8> {
        let batch: Vec<Value> = range
            .map(|n| json!({"type": "track", "event": "Order Completed", "userId": "u_stop", "messageId": format!("m-{n}"),
                            "properties": {"order_id": n}}))
            .collect();
        json!({"batch": batch}).to_string().into_bytes()
    };
    for start in [0, 100, 200] {
        let (status, answer) = http.post(&batch_url, Some("web-key"), &[], events(start..start + 100));
        assert_eq!((status, answer["duplicates"].clone()), (200, json!(0)), "{answer}");
    }
    let (status, answer) = http.post(&batch_url, Some("web-key"), &[], events(0..100));
    assert_eq!(
        (status, answer["duplicates"].clone()),
        (200, json!(100)),
        "a replay is accepted, not queued: {answer}"
    );

    eventually(Duration::from_secs(20), "deliveries to start", || {
        http.json(&format!("{}/sandbox/stats", sandbox.base))["accepted_actions"].as_u64().unwrap_or(0) > 20
    });
    common::terminate(serve.child.id());
    let status = serve.wait(Duration::from_secs(30));
    assert!(status.success(), "a clean stop: {status:?}\n{}", serve.logs());
    assert!(serve.logs().contains("stopped cleanly"), "{}", serve.logs());
    if !common::on_postgres() {
        // Checkpointed: the file is whole, with nothing beside it to replay.
        let wal = std::fs::metadata(dir.path().join("signal.db-wal")).map_or(0, |meta| meta.len());
        assert_eq!(wal, 0, "a clean stop leaves SQLite's write-ahead log empty");
    }

    let serve = ServeProcess::start(&["--config", &config], &env);
    let (_, answer) =
        http.post(&format!("{}/v1/batch", serve.collector), Some("web-key"), &[], events(299..300));
    assert_eq!(answer["duplicates"], json!(1), "the dedupe window outlives a restart");
    let actions = |http: &Http| -> Vec<u64> {
        let listed =
            http.json(&format!("{}/sandbox/workspaces/WS123/customers/u_stop/actions", sandbox.base));
        listed["actions"].as_array().map_or_else(Vec::new, |actions| {
            actions.iter().filter_map(|action| action["attributes"]["order_id"].as_u64()).collect()
        })
    };
    eventually(Duration::from_secs(60), "all 300 events after the restart", || actions(&http).len() >= 300);
    std::thread::sleep(Duration::from_millis(500));
    let mut orders = actions(&http);
    orders.sort_unstable();
    assert_eq!(orders, (0..300).collect::<Vec<u64>>(), "each event once: none lost, none twice");
}

#[test]
fn without_a_configuration_it_says_where_events_go_and_how_to_switch() {
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("signal.db").display().to_string();
    let sandboxed = ServeProcess::start(&["--database", &database], &[]);
    assert!(sandboxed.banner.contains("built-in defaults"), "{}", sandboxed.banner);
    assert!(sandboxed.banner.contains("write key  dev-write-key"), "{}", sandboxed.banner);
    assert!(sandboxed.banner.contains("the built-in MoEngage sandbox"), "{}", sandboxed.banner);
    assert!(
        sandboxed
            .banner
            .contains("set MOENGAGE_WORKSPACE_ID, MOENGAGE_DATA_API_KEY and MOENGAGE_DATA_CENTER")
    );
    let http = Http::new();
    // Ready once the workers have warmed up their blueprints, moments after the banner.
    eventually(Duration::from_secs(20), "readiness", || {
        http.get(&format!("{}/readyz", sandboxed.admin)).0 == 200
    });
    // Browser tags ask first.
    let preflight = http.options(&format!("{}/v1/track", sandboxed.collector));
    assert_eq!(preflight.0, 204);
    assert_eq!(preflight.1.as_deref(), Some("*"), "Access-Control-Allow-Origin");
    drop(sandboxed);

    let other = tempfile::tempdir().expect("dir");
    let database = other.path().join("signal.db").display().to_string();
    let moengage = ServeProcess::start(
        &["--database", &database],
        &[
            ("MOENGAGE_WORKSPACE_ID", "WS777"),
            ("MOENGAGE_DATA_API_KEY", "k-777-secret"),
            ("MOENGAGE_DATA_CENTER", "02"),
        ],
    );
    assert!(moengage.banner.contains("https://api-02.moengage.com/v1/event/WS777"), "{}", moengage.banner);
    assert!(!moengage.banner.contains("k-777-secret"));
    drop(moengage);

    let partial = std::process::Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["serve", "--database", &database])
        .env_remove("MOENGAGE_DATA_API_KEY")
        .env_remove("MOENGAGE_DATA_CENTER")
        .env("MOENGAGE_WORKSPACE_ID", "WS777")
        .output()
        .expect("signal runs");
    assert_eq!(partial.status.code(), Some(2));
    let message = String::from_utf8_lossy(&partial.stderr);
    assert!(message.contains("MOENGAGE_DATA_API_KEY, MOENGAGE_DATA_CENTER not set"), "{message}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS123:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &sandbox.base, "log:\n  format: json\n");
    let mut serve = ServeProcess::start(&["--config", &config], &[("TEST_DATA_API_KEY", KEY)]);
    common::terminate(serve.child.id());
    assert!(serve.wait(Duration::from_secs(30)).success());
    let logs = serve.logs();
    assert!(logs.lines().count() >= 2, "{logs}");
    for line in logs.lines() {
        let record: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(record["level"].is_string() && record["fields"]["message"].is_string(), "{record}");
    }
}
