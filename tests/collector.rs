//! The collector as SDKs and browsers meet it, over real HTTP against `signal serve`: every path the
//! Segment and RudderStack SDKs post to, CORS preflights that allow their headers, the write key in
//! a beacon's query, event time corrected for the sender's clock, and refusals that an operator can
//! see in the metrics and the log without the log filling up.

use crate::common;

use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually, metric, one_pipeline_config};
use serde_json::{Value, json};

const WRITE_KEY: &str = "site-key";
const API_KEY: &str = "data-key";

fn start() -> (tempfile::TempDir, SandboxProcess, ServeProcess, Http) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    (dir, sandbox, serve, Http::new())
}

fn basic(key: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
}

fn sent_to(sandbox: &SandboxProcess, user: &str) -> Vec<Value> {
    sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{user}/actions"))["actions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn every_sdk_path_takes_its_calls() {
    let (_dir, sandbox, serve, http) = start();
    let auth = basic(WRITE_KEY);
    let call = |path: &str, body: Value| {
        let headers = [("authorization", auth.as_str()), ("content-type", "text/plain")];
        let (status, _, answer) =
            http.send("POST", &format!("{}{path}", serve.collector), &headers, body.to_string().into_bytes());
        assert_eq!(status, 200, "{path}: {answer}");
        let answer: Value = serde_json::from_str(&answer).expect("JSON answer");
        assert_eq!(answer["accepted"], 1, "{path}: {answer}");
    };
    let order = |user: &str| json!({"event": "Order Completed", "userId": user, "properties": {"revenue": 1}});
    // Each path gives an event without `type` its type; a track path needs `event`.
    for (path, user) in [("/v1/track", "p-track"), ("/v1/t", "p-t")] {
        call(path, order(user));
    }
    for (path, user) in [("/v1/page", "p-page"), ("/v1/p", "p-p")] {
        call(path, json!({"userId": user, "name": "Home"}));
    }
    for path in ["/v1/screen", "/v1/s", "/v1/identify", "/v1/i", "/v1/alias", "/v1/a", "/v1/group", "/v1/g"] {
        call(path, json!({"userId": "someone", "previousId": "before", "groupId": "acme"}));
    }
    for (path, user) in [("/v1/batch", "p-batch"), ("/v1/b", "p-b"), ("/v1/import", "p-import")] {
        call(path, json!({"batch": [order(user)]}));
    }
    let beacon = format!("{}/beacon/v1/batch?writeKey={WRITE_KEY}", serve.collector);
    let (status, _, answer) = http.send(
        "POST",
        &beacon,
        &[("content-type", "text/plain")],
        json!({"batch": [order("p-beacon")]}).to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    for user in ["p-track", "p-t", "p-batch", "p-b", "p-import", "p-beacon"] {
        eventually(Duration::from_secs(20), user, || {
            sent_to(&sandbox, user).iter().any(|action| action["action"] == "Order Completed")
        });
    }
    for user in ["p-page", "p-p"] {
        eventually(Duration::from_secs(20), user, || {
            sent_to(&sandbox, user).iter().any(|action| action["action"] == "Page Viewed")
        });
    }
    // Screens are Screen Viewed, identify a profile update, alias a merge, and group has no API.
    eventually(Duration::from_secs(20), "the other calls' fates", || {
        let stats = sandbox.get("/sandbox/stats");
        sent_to(&sandbox, "someone").iter().filter(|action| action["action"] == "Screen Viewed").count() == 2
            && stats["accepted_customer_updates"] == 2
            && stats["accepted_merges"] == 2
            && metric(&http, &serve, "signal_events_dropped_total{pipeline=\"site\",code=\"unsupported_type\"}")
                == 2
    });
    assert_eq!(metric(&http, &serve, "signal_events_dropped_total{pipeline=\"site\",code=\"not_in_blueprint\"}"), 0);

    // analytics.js's own metrics are answered and not kept; they carry no key.
    let (status, headers, _) =
        http.send("POST", &format!("{}/v1/m", serve.collector), &[], br#"{"series":[]}"#.to_vec());
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    // A wrong key in the query is refused like one in the header.
    let wrong = format!("{}/beacon/v1/batch?writeKey=guess", serve.collector);
    assert_eq!(http.send("POST", &wrong, &[], br#"{"batch":[]}"#.to_vec()).0, 401);
    // A type no SDK sends is refused, naming the field: in a batch, that event alone.
    let (status, _, answer) = http.send(
        "POST",
        &format!("{}/v1/batch", serve.collector),
        &[("authorization", &auth)],
        br#"{"batch":[{"type":"merge","userId":"u"}]}"#.to_vec(),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""rejected":[{"event_index":0,"field":"type""#), "{answer}");
    let (status, _, answer) = http.send(
        "POST",
        &format!("{}/v1/track", serve.collector),
        &[("authorization", &auth)],
        br#"{"type":"merge","userId":"u"}"#.to_vec(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains(r#""field":"type""#), "{answer}");
    assert_eq!(http.send("GET", &format!("{}/v1/track", serve.collector), &[], Vec::new()).0, 405);
}

#[test]
fn preflights_allow_the_headers_each_sdk_sends() {
    let (_dir, _sandbox, serve, http) = start();
    for (path, requested) in [
        ("/v1/t", "authorization,content-type,x-retry-count"),
        ("/v1/b", "authorization,content-type"),
        ("/v1/track", "anonymousid,authorization,content-type,sentat"),
        (
            "/v1/batch",
            "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-retry-reason,rsa-since-first-attempt,rsa-since-last-attempt,sentat",
        ),
        ("/beacon/v1/batch", "content-type"),
        ("/v1/m", "content-type"),
    ] {
        let (status, headers, _) = http.send(
            "OPTIONS",
            &format!("{}{path}", serve.collector),
            &[
                ("origin", "https://shop.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", requested),
            ],
            Vec::new(),
        );
        assert_eq!(status, 204, "{path}");
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(headers["access-control-allow-headers"], requested, "{path}");
        assert!(
            headers["access-control-allow-methods"].to_str().is_ok_and(|methods| methods.contains("POST")),
            "{path}"
        );
        assert!(headers.get("access-control-allow-credentials").is_none(), "{path}");
    }
    // Chromium's private network access check is answered.
    let (status, headers, _) = http.send(
        "OPTIONS",
        &format!("{}/v1/t", serve.collector),
        &[("access-control-request-method", "POST"), ("access-control-request-private-network", "true")],
        Vec::new(),
    );
    assert_eq!(status, 204);
    assert_eq!(headers["access-control-allow-private-network"], "true");
    // Answers let a page read `Retry-After`.
    let (_, headers, _) = http.send(
        "POST",
        &format!("{}/v1/t", serve.collector),
        &[("origin", "https://shop.example")],
        b"{}".to_vec(),
    );
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-expose-headers"], "retry-after");
}

#[test]
fn an_sdk_clock_that_is_an_hour_slow_is_corrected_and_its_own_time_kept() {
    let (dir, sandbox, serve, http) = start();
    let now = jiff::Timestamp::now();
    let slow = |seconds_ago: i64| {
        (now - jiff::SignedDuration::from_secs(3600 + seconds_ago)).to_string()
    };
    // RudderStack: originalTimestamp and sentAt on the event and in a header, by the slow clock.
    let rudderstack = json!({"type": "track", "event": "Order Completed", "userId": "rs-slow",
        "originalTimestamp": slow(30), "sentAt": slow(0), "properties": {"revenue": 1}});
    let (status, _, answer) = http.send(
        "POST",
        &format!("{}/v1/track", serve.collector),
        &[("authorization", &basic(WRITE_KEY)), ("sentat", &slow(0))],
        rudderstack.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    // Segment's batching mode: `timestamp` on each event, `sentAt` once for the batch.
    let segment = json!({"writeKey": WRITE_KEY, "sentAt": slow(0), "batch": [
        {"type": "track", "event": "Order Completed", "userId": "seg-slow", "timestamp": slow(60),
         "writeKey": WRITE_KEY, "properties": {"revenue": 1}}]});
    let (status, _, answer) =
        http.send("POST", &format!("{}/v1/b", serve.collector), &[], segment.to_string().into_bytes());
    assert_eq!(status, 200, "{answer}");
    // A replayed export carries both times: its `timestamp` stands.
    let export = json!({"type": "track", "event": "Order Completed", "userId": "export",
        "timestamp": "2026-01-05T10:00:00Z", "originalTimestamp": "2026-01-05T09:00:00Z",
        "sentAt": slow(0), "properties": {"revenue": 1}});
    let (status, _, _) = http.send(
        "POST",
        &format!("{}/v1/track", serve.collector),
        &[("authorization", &basic(WRITE_KEY))],
        export.to_string().into_bytes(),
    );
    assert_eq!(status, 200);

    let time_of = |user: &str| -> jiff::Timestamp {
        let mut sent = Vec::new();
        eventually(Duration::from_secs(20), user, || {
            sent = sent_to(&sandbox, user);
            !sent.is_empty()
        });
        sent[0]["current_time"].as_str().expect("current_time").parse().expect("RFC 3339")
    };
    let after = jiff::Timestamp::now();
    for (user, seconds_ago) in [("rs-slow", 30), ("seg-slow", 60)] {
        let expected = now - jiff::SignedDuration::from_secs(seconds_ago);
        let time = time_of(user);
        let late_by = time.duration_since(expected);
        let allowed = after.duration_since(now) + jiff::SignedDuration::from_secs(1);
        assert!(
            late_by >= jiff::SignedDuration::ZERO && late_by <= allowed,
            "{user}: sent {time}, happened {expected} by the server's clock"
        );
    }
    assert_eq!(time_of("export").to_string(), "2026-01-05T10:00:00Z");

    // What is kept is the SDK's own time, beside the corrected one, and no write key.
    let payload = common::stored_payloads(dir.path(), "WHERE payload LIKE '%seg-slow%'").pop().expect("stored event");
    let stored: Value = serde_json::from_str(&payload).expect("JSON");
    assert_eq!(stored["originalTimestamp"], slow(60), "{stored}");
    assert!(stored.get("writeKey").is_none(), "{stored}");
}

#[test]
fn refusals_are_counted_by_path_and_logged_without_flooding() {
    let (_dir, _sandbox, serve, http) = start();
    let typo = format!("{}/v1/trak?writeKey=secret-in-query", serve.collector);
    for _ in 0..5 {
        let (status, _, answer) = http.send("POST", &typo, &[("origin", "https://shop.example")], b"{}".to_vec());
        assert_eq!(status, 404, "{answer}");
        assert!(answer.contains("/v1/t"), "the answer lists the paths: {answer}");
    }
    let (status, _, _) = http.send(
        "OPTIONS",
        &format!("{}/v1/t", serve.collector),
        &[("origin", "https://shop.example"), ("access-control-request-method", "DELETE")],
        Vec::new(),
    );
    assert_eq!(status, 405);
    let (status, _, _) = http.send(
        "OPTIONS",
        &format!("{}/v2/t", serve.collector),
        &[("origin", "https://shop.example"), ("access-control-request-method", "POST")],
        Vec::new(),
    );
    assert_eq!(status, 404);
    assert_eq!(http.send("POST", &format!("{}/v1/t", serve.collector), &[], b"{}".to_vec()).0, 401);
    // A client's text quoted in a refusal cannot forge a log line.
    let auth = basic(WRITE_KEY);
    let forged = json!({"type": "x\nERROR forged line", "event": "A", "userId": "u"}).to_string();
    let headers = [("authorization", auth.as_str())];
    let (status, _, answer) =
        http.send("POST", &format!("{}/v1/track", serve.collector), &headers, forged.into_bytes());
    assert_eq!(status, 400, "{answer}");

    assert_eq!(metric(&http, &serve, "signal_requests_rejected_total{path=\"unknown\",status=\"404\"}"), 6);
    assert_eq!(metric(&http, &serve, "signal_requests_rejected_total{path=\"preflight\",status=\"405\"}"), 1);
    assert_eq!(metric(&http, &serve, "signal_requests_rejected_total{path=\"events\",status=\"401\"}"), 1);
    assert_eq!(metric(&http, &serve, "signal_requests_rejected_total{path=\"events\",status=\"400\"}"), 1);
    let mut logs = String::new();
    eventually(Duration::from_secs(5), "the refusals in the log", || {
        logs = serve.logs();
        logs.matches("collector request refused").count() >= 4
    });
    let lines: Vec<&str> = logs.lines().filter(|line| line.contains("collector request refused")).collect();
    assert_eq!(lines.len(), 4, "one line per kind of refusal in ten seconds:\n{logs}");
    assert!(!logs.lines().any(|line| line.starts_with("ERROR forged")), "a forged log line:\n{logs}");
    assert!(lines.iter().any(|line| line.contains("forged line")), "the refusal is logged, escaped:\n{logs}");
    assert!(lines.iter().any(|line| line.contains("/v1/trak") && line.contains("https://shop.example")), "{logs}");
    assert!(!logs.contains("secret-in-query"), "the query (and a key in it) is never logged:\n{logs}");
}

/// `signal map`'s reading of each line: the mapped body, or the drop code and reason.
fn signal_map(lines: &[String]) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["map", "--blueprint", "blueprints/moengage/retail.yaml", "--received-at", "2026-11-28T12:00:00Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("signal runs");
    let input = lines.iter().map(|line| format!("{line}\n")).collect::<String>();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write events");
    let output = child.wait_with_output().expect("signal finishes");
    let stdout = String::from_utf8(output.stdout).expect("utf8");
    stdout.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect()
}

#[test]
fn the_collector_reads_an_event_as_the_blueprint_does() {
    let (_dir, sandbox, serve, http) = start();
    let auth = basic(WRITE_KEY);
    let track = format!("{}/v1/track", serve.collector);
    let post = |body: &str| {
        let (status, _, answer) = http.send("POST", &track, &[("authorization", &auth)], body.as_bytes().to_vec());
        (status, serde_json::from_str::<Value>(&answer).expect("JSON answer"))
    };
    // Refused here, dropped there as `invalid_event`: with the same words, naming the field.
    let refused = [
        (r#"{"type":"track","event":"Signed Up","name":5}"#, "name"),
        (r#"{"type":"track","event":"Signed Up","userId":true}"#, "user_id"),
        (r#"{"type":"merge","userId":"u"}"#, "type"),
        (r#"{"type":"track","event":"","userId":"u"}"#, "event"),
        (r#"{"type":"track","event":"Signed Up","sentAt":"soon"}"#, "sent_at"),
        (r#"{"type":"track","event":"Signed Up","context":[]}"#, "context"),
    ];
    let lines: Vec<String> = refused.iter().map(|(line, _)| (*line).to_owned()).collect();
    let mapped = signal_map(&lines);
    for ((line, field), map) in refused.iter().zip(&mapped) {
        let (status, answer) = post(line);
        assert_eq!(status, 400, "{line}: {answer}");
        assert_eq!(answer["error"]["field"], *field, "{line}: {answer}");
        assert_eq!(map["dropped"]["code"], "invalid_event", "{line}: {map}");
        let reason = map["dropped"]["reason"].as_str().expect("a reason");
        assert_eq!(answer["error"]["message"], format!("event 0: {reason}"), "{line}");
    }

    // A 200 means the blueprint reads it: a group call has its own fate, not `invalid_event`.
    let (status, answer) = post(r#"{"type":"group","userId":"u","groupId":"acme"}"#);
    assert_eq!(status, 200, "{answer}");
    eventually(Duration::from_secs(20), "the group call's fate", || {
        metric(&http, &serve, "signal_events_dropped_total{pipeline=\"site\",code=\"unsupported_type\"}") == 1
    });
    assert_eq!(metric(&http, &serve, "signal_events_dropped_total{pipeline=\"site\",code=\"invalid_event\"}"), 0);

    // A `type` of null takes the endpoint's, and the stored event says so itself: the worker, which
    // does not know the endpoint, delivers it as a page view.
    let page = format!("{}/v1/page", serve.collector);
    let (status, _, answer) = http.send(
        "POST",
        &page,
        &[("authorization", &auth)],
        br#"{"type":null,"name":"Home","userId":"typed-null"}"#.to_vec(),
    );
    assert_eq!(status, 200, "{answer}");
    eventually(Duration::from_secs(20), "the page view with a null type", || {
        sent_to(&sandbox, "typed-null").iter().any(|action| action["action"] == "Page Viewed")
    });

    // A user id past 64 bits stays exact from the collector to MoEngage, as `signal map` keeps it,
    // and a write key inside the event is not passed on.
    let big = r#"{"type":"track","event":"Order Completed","userId":18446744073709551617,"writeKey":"site-key","properties":{"revenue":1.10}}"#;
    let map = &signal_map(&[big.to_owned()])[0];
    assert_eq!(map["customer_id"], "18446744073709551617", "{map}");
    assert_eq!(post(big).0, 200);
    eventually(Duration::from_secs(20), "the order of user 18446744073709551617", || {
        !sent_to(&sandbox, "18446744073709551617").is_empty()
    });
    let sent = sent_to(&sandbox, "18446744073709551617");
    assert_eq!(sent[0]["action"], "Order Completed", "{sent:?}");
}

#[test]
fn a_batch_is_judged_event_by_event_and_repeats_inside_it_are_duplicates() {
    let (dir, sandbox, serve, http) = start();
    let auth = basic(WRITE_KEY);
    let order = |user: &str, id: &str| {
        json!({"type": "track", "event": "Order Completed", "userId": user, "messageId": id, "properties": {"revenue": 1}})
    };
    let batch = json!({"batch": [
        order("b-good", "b-1"),
        {"type": "track", "event": "Order Completed", "userId": "b-bad", "timestamp": "yesterday", "writeKey": WRITE_KEY},
        order("b-good", "b-1"),
        {"type": "merge", "userId": "b-bad"},
        // Valid RFC 3339 times that a strict parser refuses.
        {"type": "track", "event": "Order Completed", "userId": "b-times", "messageId": "b-2", "timestamp": "2026-07-01T09:00:00.1234567891Z"},
        {"type": "track", "event": "Order Completed", "userId": "b-times", "messageId": "b-3", "timestamp": "9999-12-31T23:59:59Z"},
    ]});
    let (status, _, answer) = http.send(
        "POST",
        &format!("{}/v1/batch", serve.collector),
        &[("authorization", &auth)],
        batch.to_string().into_bytes(),
    );
    assert_eq!(status, 200, "one bad event does not cost the good ones: {answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!((answer["accepted"].clone(), answer["duplicates"].clone()), (json!(4), json!(1)), "{answer}");
    let rejected = answer["rejected"].as_array().cloned().unwrap_or_default();
    let places: Vec<(Value, Value)> =
        rejected.iter().map(|entry| (entry["event_index"].clone(), entry["field"].clone())).collect();
    assert_eq!(places, [(json!(1), json!("timestamp")), (json!(3), json!("type"))], "{answer}");
    assert!(rejected[0]["message"].as_str().is_some_and(|m| m.starts_with("`timestamp` is `yesterday`")), "{answer}");

    eventually(Duration::from_secs(20), "the good events delivered and the bad ones recorded", || {
        metric(&http, &serve, "signal_events_dropped_total{pipeline=\"site\",code=\"invalid_event\"}") == 2
            && sent_to(&sandbox, "b-times").len() == 2
    });
    assert_eq!(sent_to(&sandbox, "b-good").len(), 1, "a message_id repeated in one request is delivered once");
    assert!(sent_to(&sandbox, "b-bad").is_empty());
    assert_eq!(metric(&http, &serve, "signal_events_invalid_total{source=\"site\"}"), 2);
    assert_eq!(metric(&http, &serve, "signal_events_duplicate_total{source=\"site\"}"), 1);
    // What is kept — the refused event with the rest — never holds the write key.
    let payloads = common::stored_payloads(dir.path(), "");
    assert_eq!(payloads.len(), 5, "{payloads:?}");
    assert!(payloads.iter().any(|payload| payload.contains("yesterday")), "the refused event is kept: {payloads:?}");
    assert!(!payloads.iter().any(|payload| payload.contains(WRITE_KEY)), "{payloads:?}");

    // An event over the size limit is refused alone, the rest of its batch accepted.
    let huge = json!({"type": "track", "event": "Order Completed", "userId": "b-huge", "properties": {"notes": "x".repeat(200_000)}});
    let batch = json!({"batch": [huge, order("b-small", "b-4")]});
    let (status, _, answer) =
        http.send("POST", &format!("{}/v1/batch", serve.collector), &[("authorization", &auth)], batch.to_string().into_bytes());
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["event_index"], 0, "{answer}");
}

#[test]
fn events_moengage_could_never_read_are_refused_one_by_one_at_intake() {
    let (_dir, sandbox, serve, http) = start();
    let auth = basic(WRITE_KEY);
    // Written by hand: a JSON encoder would not produce the first three.
    let body = r#"{"batch": [
        {"type": "track", "event": "Order Completed", "userId": "s-good", "properties": {"smile": "\ud83d\ude00", "tiny": 1e-400}},
        {"type": "track", "event": "Order Completed", "userId": "s-surrogate", "properties": {"note": "a\ud800"}},
        {"type": "track", "event": "Order Completed", "userId": "s-huge", "properties": {"total": 1e400}},
        {"type": "track", "event": "Order Completed", "userId": "s-\u0000nul"}
    ]}"#;
    let (status, _, answer) =
        http.send("POST", &format!("{}/v1/batch", serve.collector), &[("authorization", &auth)], body.as_bytes().to_vec());
    assert_eq!(status, 200, "the readable one is kept: {answer}");
    let answer: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let rejected: Vec<(Value, Value)> = answer["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|entry| (entry["event_index"].clone(), entry["field"].clone()))
        .collect();
    assert_eq!(rejected, [(json!(1), Value::Null), (json!(2), Value::Null), (json!(3), json!("user_id"))], "{answer}");
    // A single call stands alone: refused with 400, not accepted to fail later.
    let (status, _, answer) = http.send(
        "POST",
        &format!("{}/v1/track", serve.collector),
        &[("authorization", &auth)],
        br#"{"event": "Order Completed", "userId": "s-single", "properties": {"note": "\udc00"}}"#.to_vec(),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("lone UTF-16 surrogate"), "{answer}");
    eventually(Duration::from_secs(20), "the readable order delivered", || !sent_to(&sandbox, "s-good").is_empty());
    for user in ["s-surrogate", "s-huge", "s-single"] {
        assert!(sent_to(&sandbox, user).is_empty(), "{user} was sent");
    }
}
