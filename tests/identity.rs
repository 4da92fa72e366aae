//! Identity end to end, as real SDKs send it: identify updates the MoEngage profile through the
//! customer API, later events without traits carry the ones remembered (across a restart of
//! `signal serve`), alias merges users through the merge API, and group calls are dropped — checked
//! on the sandbox's read-back endpoints. The official Segment and RudderStack Python SDKs (from PyPI,
//! pinned in tests/sdk/requirements.txt, installed into a virtual environment by this file) are the
//! clients of the last test.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually, one_pipeline_config, python_with, terminate};
use serde_json::{Value, json};

const WRITE_KEY: &str = "site-write-key";
const API_KEY: &str = "sandbox-data-key";

fn post(http: &Http, serve: &ServeProcess, path: &str, event: Value) {
    let (status, answer) = http.post(&format!("{}{path}", serve.collector), Some(WRITE_KEY), &[], event.to_string().into_bytes());
    assert_eq!(status, 200, "{path}: {answer}");
}

fn customer(sandbox: &SandboxProcess, user: &str) -> Option<Value> {
    let (status, text) = Http::new().get(&format!("{}/sandbox/workspaces/WS1/customers/{user}", sandbox.base));
    (status == 200).then(|| serde_json::from_str(&text).expect("json"))
}

fn action<'a>(profile: &'a Value, name: &str) -> Option<&'a Value> {
    profile["actions"].as_array()?.iter().find(|action| action["action"] == name)
}

fn requests(sandbox: &SandboxProcess) -> Vec<Value> {
    sandbox.get("/sandbox/workspaces/WS1/requests")["requests"].as_array().cloned().unwrap_or_default()
}

#[test]
fn identify_then_a_track_without_traits_then_alias_reach_the_profile_the_event_and_the_merge() {
    let dir = tempfile::tempdir().expect("dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let mut serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();

    post(&http, &serve, "/v1/identify", json!({"userId": "u_8842", "messageId": "m1",
        "traits": {"email": "jane@example.com", "phone": "+447700900123", "firstName": "Jane", "lastName": "Doe", "plan": "pro"}}));
    eventually(Duration::from_secs(20), "the customer update", || customer(&sandbox, "u_8842").is_some());
    post(&http, &serve, "/v1/track", json!({"userId": "u_8842", "messageId": "m2", "event": "Product Viewed",
        "properties": {"product_id": "P-1"}}));
    post(&http, &serve, "/v1/track", json!({"userId": "anon-1", "messageId": "m3", "event": "Products Searched",
        "properties": {"query": "hats"}}));
    // A merge moves what MoEngage has: the anonymous user's search is delivered first.
    eventually(Duration::from_secs(20), "the anonymous search", || {
        customer(&sandbox, "anon-1").is_some_and(|profile| action(&profile, "Products Searched").is_some())
    });
    post(&http, &serve, "/v1/alias", json!({"userId": "u_8842", "previousId": "anon-1", "messageId": "m4"}));
    post(&http, &serve, "/v1/group", json!({"userId": "u_8842", "groupId": "org-7", "messageId": "m5"}));

    eventually(Duration::from_secs(20), "the merge", || {
        customer(&sandbox, "u_8842").is_some_and(|profile| profile["merged_users"] == json!(["anon-1"]))
    });
    let profile = customer(&sandbox, "u_8842").expect("the customer");
    assert_eq!(
        profile["attributes"],
        json!({"plan": "pro", "u_em": "jane@example.com", "u_mb": "+447700900123", "u_fn": "Jane", "u_ln": "Doe"}),
        "the customer API set the profile's attributes"
    );
    assert_eq!(
        profile["user_identifiers"],
        json!({"u_em": "jane@example.com", "u_mb": "+447700900123"}),
        "the track call carried the remembered traits"
    );
    assert!(action(&profile, "Product Viewed").is_some(), "{profile}");
    assert!(action(&profile, "Products Searched").is_some(), "the merged user's action moved over: {profile}");
    assert!(customer(&sandbox, "anon-1").is_none(), "the merged user is gone");
    assert_eq!(
        sandbox.get("/sandbox/workspaces/WS1/merges")["merges"],
        json!([{"retained_user": "u_8842", "merged_users": ["anon-1"]}])
    );
    let track = requests(&sandbox)
        .into_iter()
        .find(|request| request["actions"][0]["action"] == "Product Viewed")
        .expect("the track request");
    assert_eq!(track["attributes"], json!({"u_fn": "Jane", "u_ln": "Doe"}));
    let group = http.json(&format!("{}/api/events?event=group", serve.admin));
    assert_eq!(group["events"][0]["code"], "unsupported_type", "{group}");

    // Remembered traits are in the store: they outlive the process.
    terminate(serve.child.id());
    assert!(serve.wait(Duration::from_secs(30)).success());
    let serve = ServeProcess::start(&["--config", &config], &[]);
    post(&http, &serve, "/v1/track", json!({"userId": "u_8842", "messageId": "m6", "event": "Logged In"}));
    eventually(Duration::from_secs(20), "the login after the restart", || {
        customer(&sandbox, "u_8842").is_some_and(|profile| action(&profile, "Logged In").is_some())
    });
    let login = requests(&sandbox)
        .into_iter()
        .find(|request| request["actions"][0]["action"] == "Logged In")
        .expect("the login request");
    assert_eq!(login["user_identifiers"], json!({"u_em": "jane@example.com", "u_mb": "+447700900123"}), "{login}");
}

#[test]
fn integrations_that_deliver_to_one_workspace_share_its_users_traits() {
    let dir = tempfile::tempdir().expect("dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let integration = |name: &str| {
        format!(
            "  {name}:\n    workspace_id: WS1\n    data_api_key: {API_KEY}\n    data_center: \"01\"\n    endpoint: {}\n",
            sandbox.base
        )
    };
    let text = format!(
        "storage:\n  sqlite: signal.db\nsources:\n  site:\n    write_key: {WRITE_KEY}\n  app:\n    write_key: app-write-key\n\
         integrations:\n{}{}pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n\
         \x20 app:\n    source: app\n    integration: mobile\n    preset: retail\n",
        integration("shop"),
        integration("mobile")
    );
    let config = dir.path().join("signal.yaml");
    std::fs::write(&config, text).expect("config");
    let serve = ServeProcess::start(&["--config", config.to_str().expect("utf-8")], &[]);
    let http = Http::new();
    let send = |key: &str, path: &str, event: Value| {
        let (status, answer) =
            http.post(&format!("{}{path}", serve.collector), Some(key), &[], event.to_string().into_bytes());
        assert_eq!(status, 200, "{path}: {answer}");
    };
    let delivered = |message_id: &str| {
        let (status, text) = Http::new().get(&format!("{}/api/events?state=delivered&limit=100", serve.admin));
        status == 200 && text.contains(&format!("\"{message_id}\""))
    };
    send(WRITE_KEY, "/v1/identify", json!({"userId": "u1", "messageId": "m1", "traits": {"email": "old@example.com"}}));
    eventually(Duration::from_secs(20), "the first identify", || delivered("m1"));
    send(WRITE_KEY, "/v1/track", json!({"userId": "u1", "messageId": "m2", "event": "Product Viewed"}));
    eventually(Duration::from_secs(20), "the site's track", || delivered("m2"));
    // The app's integration learns a new email; the site's, delivering to the same workspace,
    // sends it with its next event.
    send("app-write-key", "/v1/identify", json!({"userId": "u1", "messageId": "m3", "traits": {"email": "new@example.com"}}));
    eventually(Duration::from_secs(20), "the app's identify", || delivered("m3"));
    send(WRITE_KEY, "/v1/track", json!({"userId": "u1", "messageId": "m4", "event": "Logged In"}));
    eventually(Duration::from_secs(20), "the site's login", || delivered("m4"));
    let login = requests(&sandbox)
        .into_iter()
        .find(|request| request["actions"][0]["action"] == "Logged In")
        .expect("the login request");
    assert_eq!(login["user_identifiers"], json!({"u_em": "new@example.com"}), "{login}");
}

/// A Python with the SDKs of tests/sdk/requirements.txt, installed on first use.
fn sdk_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| python_with("sdk-venv", "tests/sdk/requirements.txt"))
}

#[test]
fn the_official_python_sdks_identify_track_page_alias_and_group_through_signal_serve() {
    let python = sdk_python();
    let dir = tempfile::tempdir().expect("dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/send.py");
    let http = Http::new();
    for sdk in ["segment", "rudderstack"] {
        let mut child = Command::new(python)
            .arg(&script)
            .args([sdk, &serve.collector, WRITE_KEY, sdk])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the SDK script runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the script's first line");
        assert!(line.contains("calls before the alias"), "{sdk}: {line}");
        eventually(Duration::from_secs(30), "the anonymous user's search", || {
            customer(&sandbox, &format!("{sdk}-anon")).is_some_and(|profile| action(&profile, "Products Searched").is_some())
        });
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("tell the script to go on");
        drop(stdin);
        let mut last = String::new();
        stdout.read_to_string(&mut last).expect("the script's report");
        let output = child.wait_with_output().expect("the script ends");
        assert!(output.status.success(), "{sdk}: {last}{}", String::from_utf8_lossy(&output.stderr));
        let report: Value = serde_json::from_str(last.trim()).expect("the script's report");
        assert_eq!(report["failures"], json!([]), "{sdk}: {report}");

        let user = format!("{sdk}-1");
        eventually(Duration::from_secs(30), "the profile, its events and the merge", || {
            customer(&sandbox, &user).is_some_and(|profile| {
                profile["merged_users"] == json!([format!("{sdk}-anon")])
                    && ["Product Viewed", "Page Viewed", "Products Searched"].iter().all(|name| action(&profile, name).is_some())
            })
        });
        let profile = customer(&sandbox, &user).expect("the profile");
        assert_eq!(profile["attributes"]["u_em"], format!("{sdk}@example.com"), "{sdk}: {profile}");
        assert_eq!(profile["attributes"]["u_mb"], "+447700900123", "{sdk}: {profile}");
        assert_eq!(profile["attributes"]["u_fn"], "Jane", "{sdk}: {profile}");
        assert_eq!(profile["attributes"]["u_ln"], "Doe", "{sdk}: {profile}");
        assert_eq!(profile["attributes"]["plan"], "pro", "{sdk}: {profile}");
        let viewed = action(&profile, "Product Viewed").expect("the track call");
        assert_eq!(viewed["attributes"]["product_id"], "P-1", "{sdk}: {viewed}");
        let page = action(&profile, "Page Viewed").expect("the page call");
        assert_eq!(page["attributes"]["page_name"], "Getting started", "{sdk}: {page}");
        assert_eq!(profile["user_identifiers"]["u_em"], format!("{sdk}@example.com"), "{sdk}: the track carried the remembered email");
    }
    let groups = http.json(&format!("{}/api/events?event=group", serve.admin));
    let codes: Vec<&Value> = groups["events"].as_array().expect("events").iter().map(|event| &event["code"]).collect();
    assert_eq!(codes, [&json!("unsupported_type"), &json!("unsupported_type")], "{groups}");
}

#[test]
fn the_readme_example_shows_the_customer_the_event_carrying_its_traits_and_the_merge() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/guides/sites-and-apps.md"))
        .expect("docs/guides/sites-and-apps.md");
    let block = guide
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains(r#""type": "alias""#))
        .expect("the guide's identity example");
    let batch = block.split("--data '").nth(1).and_then(|rest| rest.split('\'').next()).expect("the batch");
    let batch: Value = serde_json::from_str(batch).expect("the guide's batch is JSON");
    let dir = tempfile::tempdir().expect("dir");
    let database = dir.path().join("signal.db");
    let serve = ServeProcess::start(&["--database", &database.display().to_string()], &[]);
    let sandbox = serve
        .banner
        .lines()
        .find(|line| line.trim_start().starts_with("sandbox"))
        .and_then(|line| line.split_whitespace().nth(1))
        .expect("the built-in sandbox's address")
        .to_owned();
    assert!(block.contains("-u dev-write-key:") && block.contains("/v1/batch"), "{block}");
    let http = Http::new();
    let (status, answer) = http.post(&format!("{}/v1/batch", serve.collector), Some("dev-write-key"), &[], batch.to_string().into_bytes());
    assert_eq!((status, &answer["accepted"]), (200, &json!(3)), "{answer}");
    let path = block.lines().last().and_then(|line| line.split("$SANDBOX").nth(1)).expect("the read-back path");
    let url = format!("{sandbox}{}", path.trim());
    eventually(Duration::from_secs(20), "the customer, the event and the merge", || {
        let (status, text) = http.get(&url);
        let profile: Value = serde_json::from_str(&text).unwrap_or_default();
        status == 200 && profile["merged_users"] == json!(["anon-1"]) && action(&profile, "Product Viewed").is_some()
            && profile["attributes"]["u_fn"] == "Jane"
    });
    let profile = http.json(&url);
    assert_eq!(
        profile["attributes"],
        json!({"u_em": "jane@example.com", "u_mb": "+447700900123", "u_fn": "Jane", "u_ln": "Doe"}),
        "{profile}"
    );
    assert_eq!(profile["user_identifiers"], json!({"u_em": "jane@example.com", "u_mb": "+447700900123"}), "{profile}");
}
