//! Promises of the documents about `signal serve`'s configuration that no other test holds to, each
//! run as an operator would meet it: `delivery.timeout`, the collector's size limits, `log.level`,
//! `$${` for a literal `${`, a pipeline with its own `blueprint:` file (and `transform: trim`),
//! `events_per_minute`, and every metric docs/reference/metrics.md lists. See tests/README.md for the
//! whole map.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually, metric};
use serde_json::{Value, json};

const API_KEY: &str = "promises-data-key";

/// `signal.yaml` in `dir`: one source `site` (key `write_key`), one integration at `endpoint`, one
/// pipeline with `pipeline` (e.g. `preset: retail`), and `extra` top-level settings.
fn config(dir: &Path, write_key: &str, endpoint: &str, pipeline: &str, extra: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        "storage:\n  sqlite: signal.db\n{extra}sources:\n  site:\n    write_key: \"{write_key}\"\n\
         integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: {API_KEY}\n    data_center: \"01\"\n    endpoint: {endpoint}\n\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    {pipeline}\n",
    );
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

fn events(http: &Http, serve: &ServeProcess, filter: &str) -> Vec<Value> {
    http.json(&format!("{}/api/events?limit=1000{filter}", serve.admin))["events"].as_array().cloned().unwrap_or_default()
}

fn post(http: &Http, serve: &ServeProcess, key: &str, path: &str, body: &str) -> (u16, Value) {
    http.post(&format!("{}{path}", serve.collector), Some(key), &[], body.as_bytes().to_vec())
}

#[test]
fn an_answer_slower_than_delivery_timeout_is_a_timeout_and_fails_when_the_window_closes() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}"), "--delay-ms", "3000"]);
    let dir = tempfile::tempdir().expect("dir");
    let file = config(dir.path(), "k1", &sandbox.base, "preset: retail", "delivery:\n  timeout: 1s\n  retry_window: 1s\n");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let (status, answer) = post(&http, &serve, "k1", "/v1/track", r#"{"type":"track","event":"Signed Up","user_id":"u_slow"}"#);
    assert_eq!(status, 200, "{answer}");
    eventually(Duration::from_secs(20), "the event failed with a timeout", || {
        events(&http, &serve, "&state=failed").len() == 1
    });
    let failed = &events(&http, &serve, "&state=failed")[0];
    assert_eq!(failed["code"], "timeout", "{failed}");
    let detail = http.json(&format!("{}/api/events/{}", serve.admin, failed["id"]));
    for attempt in detail["attempt_log"].as_array().expect("attempts") {
        assert!(attempt["status"].is_null(), "no answer within the timeout: {detail}");
        let latency = attempt["latency_ms"].as_u64().unwrap_or(0);
        assert!((900..2900).contains(&latency), "cut at about 1 s, not the 3 s answer: {detail}");
    }
    assert_eq!(metric(&http, &serve, "signal_events_failed_total{pipeline=\"site\",status=\"timeout\"}"), 1);
}

#[test]
fn the_collectors_size_limits_answer_413_with_the_limit() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let limits = "collector:\n  max_request_bytes: 2048\n  max_event_bytes: 512\n  max_batch_events: 3\n";
    let file = config(dir.path(), "k2", &sandbox.base, "preset: retail", limits);
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let big = format!(r#"{{"type":"track","event":"Signed Up","user_id":"u","properties":{{"note":"{}"}}}}"#, "x".repeat(600));
    let (status, answer) = post(&http, &serve, "k2", "/v1/track", &big);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.to_string().contains("at most 512 are accepted"), "{answer}");
    let four: Vec<Value> = (0..4).map(|n| json!({"type": "track", "event": "Signed Up", "user_id": format!("u{n}")})).collect();
    let (status, answer) = post(&http, &serve, "k2", "/v1/batch", &json!({"batch": four}).to_string());
    assert_eq!(status, 413, "{answer}");
    assert!(answer.to_string().contains("at most 3 are accepted"), "{answer}");
    let huge = format!(r#"{{"batch":[],"pad":"{}"}}"#, "y".repeat(3000));
    let (status, answer) = post(&http, &serve, "k2", "/v1/batch", &huge);
    assert_eq!(status, 413, "{answer}");
    let three: Vec<Value> = (0..3).map(|n| json!({"type": "track", "event": "Signed Up", "user_id": format!("u{n}")})).collect();
    let (status, answer) = post(&http, &serve, "k2", "/v1/batch", &json!({"batch": three}).to_string());
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(3)), "within every limit: {answer}");
}

#[test]
fn log_level_warn_leaves_out_information() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = config(dir.path(), "k3", &sandbox.base, "preset: retail", "log:\n  level: warn\n");
    let mut serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    // A refusal is a warning: it is logged.
    let (status, _) = post(&http, &serve, "not-the-key", "/v1/track", r#"{"type":"track","event":"x"}"#);
    assert_eq!(status, 401);
    common::terminate(serve.child.id());
    assert!(serve.wait(Duration::from_secs(30)).success());
    eventually(Duration::from_secs(5), "the warning logged", || serve.logs().contains("WARN"));
    let logs = serve.logs();
    assert!(!logs.contains(" INFO "), "no information at level warn: {logs}");
}

#[test]
fn a_literal_dollar_brace_and_a_pipelines_own_blueprint_file() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints/moengage");
    std::fs::copy(presets.join("base.yaml"), dir.path().join("base.yaml")).expect("copy");
    std::fs::write(
        dir.path().join("shop.yaml"),
        "extends: base.yaml\nevents:\n  Review Posted:\n    pass_through: false\n    attributes:\n      stars: $.properties.stars\n      title: {path: $.properties.title, transform: trim}\n",
    )
    .expect("write the blueprint");
    // `$${` is a literal `${`: this key is `key-${not-a-variable}`.
    let file = config(dir.path(), "key-$${not-a-variable}", &sandbox.base, "blueprint: shop.yaml", "");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let review = r#"{"type":"track","event":"Review Posted","user_id":"u_r","properties":{"stars":5,"title":"  Lovely  "}}"#;
    let (status, answer) = post(&http, &serve, "key-${not-a-variable}", "/v1/track", review);
    assert_eq!(status, 200, "the literal key: {answer}");
    eventually(Duration::from_secs(10), "the review delivered", || {
        events(&http, &serve, "&state=delivered").len() == 1
    });
    let actions = sandbox.get("/sandbox/workspaces/WS1/customers/u_r/actions");
    let review = &actions["actions"][0];
    assert_eq!(review["action"], "Review Posted", "{actions}");
    assert_eq!((review["attributes"]["stars"].as_u64(), review["attributes"]["title"].as_str()), (Some(5), Some("Lovely")));
}

#[test]
fn events_per_minute_spaces_an_integrations_requests() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = config(dir.path(), "k5", &sandbox.base, "preset: retail", "");
    let with_rate = std::fs::read_to_string(&file)
        .expect("read")
        .replace("    endpoint:", "    events_per_minute: 60\n    endpoint:");
    std::fs::write(&file, with_rate).expect("write");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let four: Vec<Value> = (0..4).map(|n| json!({"type": "track", "event": "Signed Up", "user_id": format!("u{n}")})).collect();
    let started = std::time::Instant::now();
    let (status, _) = post(&http, &serve, "k5", "/v1/batch", &json!({"batch": four}).to_string());
    assert_eq!(status, 200);
    eventually(Duration::from_secs(20), "four delivered", || events(&http, &serve, "&state=delivered").len() == 4);
    // One a second: the fourth goes about three seconds after the first.
    assert!(started.elapsed() >= Duration::from_millis(2_500), "spaced: {:?}", started.elapsed());
}

#[test]
fn every_metric_the_readme_lists_is_served_with_its_labels() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = config(dir.path(), "k6", &sandbox.base, "preset: retail", "");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let long_note = "n".repeat(513);
    let body = json!({"batch": [
        {"type": "track", "event": "Signed Up", "user_id": "u1", "message_id": "m-1", "properties": {"note": long_note}},
        {"type": "track", "event": "Signed Up", "user_id": "u1", "message_id": "m-1"},
        {"type": "track", "event": "Wishlist Viewed", "user_id": "u2"},
        {"type": "nonsense"},
    ]});
    let (status, answer) = post(&http, &serve, "k6", "/v1/batch", &body.to_string());
    assert_eq!((status, answer["accepted"].as_u64(), answer["duplicates"].as_u64()), (200, Some(3), Some(1)), "{answer}");
    let (status, _) = post(&http, &serve, "wrong", "/v1/track", "{}");
    assert_eq!(status, 401);
    eventually(Duration::from_secs(10), "delivered", || {
        metric(&http, &serve, "signal_events_delivered_total{pipeline=\"site\"}") == 1
    });
    for (line, value) in [
        ("signal_events_received_total{source=\"site\"}", 3),
        ("signal_events_duplicate_total{source=\"site\"}", 1),
        ("signal_events_invalid_total{source=\"site\"}", 1),
        ("signal_requests_rejected_total{path=\"events\",status=\"401\"}", 1),
        ("signal_events_dropped_total{pipeline=\"site\",code=\"not_in_blueprint\"}", 1),
        ("signal_events_dropped_total{pipeline=\"site\",code=\"invalid_event\"}", 1),
        ("signal_events_delivered_total{pipeline=\"site\"}", 1),
        ("signal_event_warnings_total{pipeline=\"site\",code=\"value_truncated\"}", 1),
    ] {
        assert_eq!(metric(&http, &serve, line), value, "{line}");
    }
    let (_, text) = http.get(&format!("{}/metrics", serve.admin));
    for name in [
        "signal_events_failed_total",
        "signal_delivery_retries_total",
        "signal_events_paused_total",
        "signal_queue_depth{state=\"pending\"}",
        "signal_delivery_latency_seconds_bucket",
        "signal_delivery_latency_seconds_count",
    ] {
        assert!(text.contains(name), "{name} is served:\n{text}");
    }
}

#[test]
fn a_queue_that_cannot_store_answers_503_stores_nothing_and_takes_the_retry() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = config(dir.path(), "k503", &sandbox.base, "preset: retail", "");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let order = r#"{"type":"track","event":"Order Completed","user_id":"u_503","messageId":"m-503","properties":{"order_id":"ORD-503"}}"#;

    // Another process holds the database's write lock: nothing can be committed.
    let lock = rusqlite::Connection::open(dir.path().join("signal.db")).expect("open the queue");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock the queue");
    let (status, answer) = post(&http, &serve, "k503", "/v1/track", order);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|error| error.contains("could not be stored")), "{answer}");
    assert_eq!(
        metric(&http, &serve, "signal_requests_rejected_total{path=\"events\",status=\"503\"}"),
        1,
        "the refusal is counted"
    );
    assert_eq!(metric(&http, &serve, "signal_events_received_total{source=\"site\"}"), 0, "nothing accepted");
    lock.execute_batch("ROLLBACK").expect("unlock the queue");
    drop(lock);

    // The sender's retry of the same request is taken and delivered once.
    let (status, answer) = post(&http, &serve, "k503", "/v1/track", order);
    assert_eq!((status, answer["accepted"].as_u64(), answer["duplicates"].as_u64()), (200, Some(1), Some(0)), "{answer}");
    eventually(Duration::from_secs(20), "the retried order delivered", || {
        events(&http, &serve, "&state=delivered").len() == 1
    });
    let kept = sandbox.get("/sandbox/workspaces/WS1/customers/u_503/actions");
    assert_eq!(kept["actions"].as_array().map(Vec::len), Some(1), "{kept}");
}

/// A small tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|status| status.success());
        assert!(mounted, "this test mounts a {size} tmpfs to fill it: run it as root, as tests/run does");
        SmallDisk { path: path.to_owned() }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while file.write_all(&byte).is_ok() {
            byte[0] = byte[0].wrapping_add(1);
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_turns_readyz_503_until_it_has_room_and_no_answered_event_is_sent_twice() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}"), "--delay-ms", "2000"]);
    let dir = tempfile::tempdir().expect("dir");
    let disk = SmallDisk::mount(&dir.path().join("disk"), "4m");
    let file = config(dir.path(), "kfull", &sandbox.base, "preset: retail", "");
    let text = std::fs::read_to_string(&file).expect("config").replace("sqlite: signal.db", "sqlite: disk/signal.db");
    std::fs::write(&file, text).expect("config");
    let mut serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let ready = |serve: &ServeProcess| http.get(&format!("{}/readyz", serve.admin));
    // Ready once started (the banner comes first).
    eventually(Duration::from_secs(10), "ready", || ready(&serve).0 == 200);

    // Five orders accepted; while MoEngage takes its time answering, the disk fills up.
    for n in 0..5 {
        let order = format!(r#"{{"type":"track","event":"Order Completed","user_id":"u_full_{n}","messageId":"m-full-{n}","properties":{{"order_id":"ORD-{n}"}}}}"#);
        let (status, answer) = post(&http, &serve, "kfull", "/v1/track", &order);
        assert_eq!(status, 200, "{answer}");
    }
    // The worker claims them at once and MoEngage answers after two seconds.
    std::thread::sleep(Duration::from_millis(800));
    let filler = disk.fill();
    let actions = |sandbox: &SandboxProcess| {
        (0..5)
            .map(|n| {
                let kept = sandbox.get(&format!("/sandbox/workspaces/WS1/customers/u_full_{n}/actions"));
                kept["actions"].as_array().map_or(0, Vec::len)
            })
            .sum::<usize>()
    };
    eventually(Duration::from_secs(20), "MoEngage answered the five orders", || actions(&sandbox) == 5);
    eventually(Duration::from_secs(10), "the outcomes could not be written", || {
        serve.logs().contains("could not record outcomes")
    });

    // Told truthfully: not ready, and intake refused, while the store cannot write.
    let (status, said) = ready(&serve);
    assert_eq!(status, 503, "{said}");
    assert!(said.contains("the store cannot write"), "{said}");
    let (status, answer) = post(&http, &serve, "kfull", "/v1/track", r#"{"type":"track","event":"Order Completed","user_id":"u_late"}"#);
    assert_eq!(status, 503, "{answer}");

    // Room again: ready without a restart, and the answers kept meanwhile are written.
    std::fs::remove_file(filler).expect("free the disk");
    eventually(Duration::from_secs(10), "ready again", || ready(&serve).0 == 200);
    eventually(Duration::from_secs(10), "the five outcomes written", || {
        events(&http, &serve, "&state=delivered").len() == 5
    });

    // A restart finds them delivered: MoEngage gets none of them a second time.
    common::terminate(serve.child.id());
    serve.wait(Duration::from_secs(20));
    let serve = ServeProcess::start(&["--config", &file], &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(events(&http, &serve, "&state=delivered").len(), 5);
    assert_eq!(actions(&sandbox), 5, "no order delivered twice");
    drop(disk);
}

#[test]
fn an_idle_service_on_a_full_disk_is_not_ready_and_is_again_once_there_is_room() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let disk = SmallDisk::mount(&dir.path().join("disk"), "4m");
    let file = config(dir.path(), "kidle", &sandbox.base, "preset: retail", "");
    let text = std::fs::read_to_string(&file).expect("config").replace("sqlite: signal.db", "sqlite: disk/signal.db");
    std::fs::write(&file, text).expect("config");
    let serve = ServeProcess::start(&["--config", &file], &[]);
    let http = Http::new();
    let ready = || http.get(&format!("{}/readyz", serve.admin));
    eventually(Duration::from_secs(10), "ready", || ready().0 == 200);

    // No event comes: `/readyz` itself finds that nothing can be written.
    let filler = disk.fill();
    eventually(Duration::from_secs(10), "not ready on a full disk", || {
        let (status, said) = ready();
        status == 503 && said.contains("the store cannot write")
    });
    std::fs::remove_file(filler).expect("free the disk");
    eventually(Duration::from_secs(10), "ready again", || ready().0 == 200);
    drop(disk);
}
