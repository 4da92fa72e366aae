//! Apps through `signal serve`: the batches that Segment's analytics-kotlin and analytics-swift and
//! RudderStack's Android and iOS SDKs post to `/v1/batch` (tests/fixtures/mobile, in the shapes their
//! SDKs send) reach the sandbox with MoEngage's platform names, the app's version and device, and
//! each push token registered as a device of its customer through the device API — once the call
//! that carried it was delivered.

use crate::common;

use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, eventually, one_pipeline_config};
use serde_json::{Value, json};

const WRITE_KEY: &str = "app-write-key";
const API_KEY: &str = "sandbox-data-key";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mobile").join(name))
        .expect("a mobile fixture")
}

fn customer(sandbox: &SandboxProcess, id: &str) -> Value {
    sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{id}"))
}

#[test]
fn mobile_sdk_batches_arrive_with_their_platform_app_and_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    let cases = [
        ("segment-kotlin.json", "seg-android", "ANDROID", "a1f9c0de-android-8", "fcm:APA91bH-seg-android", "Pixel 8"),
        ("segment-swift.json", "seg-ios", "iOS", "6E2B9A4C-IOS-15", "7f3c2a9b8e1d0f6a5c4b3e2d1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a", "iPhone15,2"),
        ("rudderstack-android.json", "rs-android", "ANDROID", "b7e6d5c4-rs-android", "fcm:APA91bH-rs-android", "SM-S911B"),
        ("rudderstack-ios.json", "rs-ios", "iOS", "b7e6d5c4-rs-ios", "4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c", "iPhone16,1"),
    ];
    for (file, ..) in &cases {
        let (status, answer) =
            http.post(&format!("{}/v1/batch", serve.collector), Some(WRITE_KEY), &[("content-type", "application/json")], fixture(file));
        assert_eq!(status, 200, "{file}: {answer}");
        assert_eq!(answer["accepted"], 3, "{file}: {answer}");
        assert_eq!(answer["rejected"], json!([]), "{file}: {answer}");
    }
    for (file, user, platform, device_id, token, model) in cases {
        eventually(Duration::from_secs(30), &format!("{file}: the device registered"), || {
            customer(&sandbox, user)["devices"].as_array().is_some_and(|devices| !devices.is_empty())
        });
        let profile = customer(&sandbox, user);
        // identify and Application Opened both carried the token: one device, updated.
        let devices = profile["devices"].as_array().expect("devices");
        assert_eq!(devices.len(), 1, "{file}: {profile}");
        assert_eq!(devices[0]["device_id"], device_id, "{file}");
        let attributes = &devices[0]["attributes"];
        assert_eq!(attributes["platform"], platform, "{file}");
        assert_eq!(attributes["push_id"], token, "{file}");
        assert_eq!(attributes["model"], model, "{file}");
        assert_eq!(attributes["app_version"], "2.3.1", "{file}");
        assert!(attributes["os_version"].is_string(), "{file}: {attributes}");
        // The app's calls carry its platform and version; the identify updated the profile.
        let actions = profile["actions"].as_array().expect("actions");
        assert!(!actions.is_empty(), "{file}: {profile}");
        for action in actions {
            assert_eq!(action["platform"], platform, "{file}: {action}");
            assert_eq!(action["app_version"], "2.3.1", "{file}: {action}");
        }
        assert!(actions.iter().any(|action| action["action"] == "Application Opened"), "{file}: {actions:?}");
        assert!(profile["attributes"]["u_em"].is_string(), "{file}: {profile}");
    }
    // Each registration is a record of its own in the Event Debugger.
    let listed = http.json(&format!("{}/api/events?event=device%20registration&limit=100", serve.admin));
    let registrations = listed["events"].as_array().expect("events");
    assert_eq!(registrations.len(), 8, "an identify and an Application Opened per app: {listed}");
    assert!(registrations.iter().all(|record| record["state"] == "delivered" && record["type"] == "device"), "{listed}");
    let stats = sandbox.get("/sandbox/stats");
    assert_eq!(stats["accepted_devices"], 8, "{stats}");
}

#[test]
fn a_web_identify_registers_no_device_and_a_token_without_a_type_neither() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
    let config = one_pipeline_config(dir.path(), WRITE_KEY, &sandbox.base, API_KEY);
    let serve = ServeProcess::start(&["--config", &config], &[]);
    let http = Http::new();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "web-user", "traits": {"email": "w@example.com"}},
        {"type": "identify", "userId": "half-app", "traits": {"email": "h@example.com"}, "context": {"device": {"token": "tok-1"}}},
        {"type": "track", "event": "Product Viewed", "userId": "web-user", "context": {"app": {"name": "analytics.js", "version": "1.84.3"}}},
    ]});
    let (status, _) = http.post(&format!("{}/v1/batch", serve.collector), Some(WRITE_KEY), &[], batch.to_string().into_bytes());
    assert_eq!(status, 200);
    eventually(Duration::from_secs(30), "the view delivered", || {
        customer(&sandbox, "web-user")["actions"].as_array().is_some_and(|actions| !actions.is_empty())
    });
    std::thread::sleep(Duration::from_secs(1));
    for user in ["web-user", "half-app"] {
        assert_eq!(customer(&sandbox, user)["devices"], json!([]), "{user}");
    }
    let view = &customer(&sandbox, "web-user")["actions"][0];
    assert_eq!(view["platform"], "web");
    assert!(view.get("app_version").is_none(), "a web SDK's own version is not an app's: {view}");
    assert_eq!(sandbox.get("/sandbox/stats")["accepted_devices"], 0);
}
