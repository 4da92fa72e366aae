//! Anonymous visitors and apps: a value source written as a list of paths (the first present gives
//! the value, `customer_id: [$.user_id, $.anonymous_id]`), MoEngage's platform from the device that
//! sent a call, and an app's version and device on its actions — through both presets.

use std::path::Path;
use std::sync::Arc;

use blueprint::{DropCode, Mapper, Outcome};
use jiff::Timestamp;
use serde_json::{Value, json};

fn received() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().expect("timestamp")
}

fn presets() -> [(&'static str, Mapper); 2] {
    ["retail.yaml", "b2b-saas.yaml"].map(|name| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage").join(name);
        (name, Mapper::new(Arc::new(blueprint::compile_file(&path).expect("preset compiles"))))
    })
}

fn outcome(mapper: &Mapper, event: &Value) -> Result<Value, DropCode> {
    match mapper.map(&event.to_string(), received()) {
        Outcome::Mapped(mapped) => Ok(serde_json::from_slice(&mapped.body).expect("body is JSON")),
        Outcome::Dropped(drop) => Err(drop.code),
    }
}

/// Compiles `main` extending the shipped Retail preset (copied beside it).
fn extending_retail(main: &str) -> Result<Mapper, blueprint::Diagnostics> {
    let directory = tempfile::tempdir().expect("a directory");
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage");
    for file in ["base.yaml", "retail.yaml"] {
        std::fs::copy(presets.join(file), directory.path().join(file)).expect("copy a preset");
    }
    let path = directory.path().join("shop.yaml");
    std::fs::write(&path, main).expect("write the blueprint");
    blueprint::compile_file(&path).map(|compiled| Mapper::new(Arc::new(compiled)))
}

#[test]
fn the_presets_keep_user_id_alone_and_drop_an_anonymous_visit() {
    for (name, mapper) in presets() {
        let visit = json!({"type": "page", "anonymous_id": "anon-7", "name": "Home"});
        assert_eq!(outcome(&mapper, &visit), Err(DropCode::MissingCustomerId), "{name}");
    }
}

#[test]
fn a_list_of_paths_gives_the_first_present_as_customer_id() {
    let mapper = extending_retail("extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymous_id]\n")
        .expect("compiles");
    let anonymous = outcome(&mapper, &json!({"type": "track", "event": "Product Viewed", "anonymous_id": "anon-7"}));
    assert_eq!(anonymous.expect("mapped")["customer_id"], "anon-7");
    let known = json!({"type": "track", "event": "Product Viewed", "userId": 8842, "anonymousId": "anon-7"});
    assert_eq!(outcome(&mapper, &known).expect("mapped")["customer_id"], "8842", "user_id comes first");
    // `null` is absent: the next path is tried.
    let null_user = json!({"type": "track", "event": "Product Viewed", "user_id": null, "anonymous_id": "anon-7"});
    assert_eq!(outcome(&mapper, &null_user).expect("mapped")["customer_id"], "anon-7");
    let neither = json!({"type": "track", "event": "Product Viewed"});
    assert_eq!(outcome(&mapper, &neither), Err(DropCode::MissingCustomerId));
}

#[test]
fn every_path_of_a_list_is_checked_with_its_own_place() {
    let Err(diagnostics) = extending_retail(
        "extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymus_id, x]\n  attributes:\n    plan: {path: [$.traits.plan, $.properties.plan], default: free}\n",
    ) else {
        panic!("compiled");
    };
    let text = diagnostics.to_string();
    assert!(text.contains("shop.yaml:3:28: error[invalid_path]") && text.contains("did you mean `anonymous_id`?"), "{text}");
    assert!(text.contains("shop.yaml:3:43: error[invalid_path]"), "{text}");
    assert_eq!(diagnostics.len(), 2, "{text}");
}

#[test]
fn the_long_form_takes_a_list_of_paths_with_a_transform_and_a_default() {
    let mapper = extending_retail(
        "extends: retail.yaml\nidentity:\n  user_identifiers:\n    u_mb: {path: [$.traits.mobile, $.traits.phone], transform: e164}\n  attributes:\n    plan: {path: [$.traits.plan, $.properties.plan], default: free}\n",
    )
    .expect("compiles");
    let event = json!({"type": "track", "event": "Product Viewed", "user_id": "u1",
                       "traits": {"phone": "07700 900123"}, "context": {"locale": "en-GB"}});
    let body = outcome(&mapper, &event).expect("mapped");
    assert_eq!(body["user_identifiers"]["u_mb"], "+447700900123");
    assert_eq!(body["attributes"]["plan"], "free");
}

#[test]
fn the_platform_comes_from_the_device_and_apps_add_their_version_and_device() {
    let cases = [
        (json!({"type": "android"}), json!(null), "ANDROID"),
        (json!({"type": "Android"}), json!(null), "ANDROID"),
        (json!({"type": "ios"}), json!(null), "iOS"),
        (json!({"type": "iPadOS"}), json!(null), "iOS"),
        (json!({"type": "tvos"}), json!(null), "iOS"),
        (json!({"type": "watchos"}), json!(null), "iOS"),
        (json!({"type": "windows"}), json!(null), "web"),
        (json!(null), json!("android-sdk"), "ANDROID"),
        (json!(null), json!("web"), "web"),
        (json!(null), json!(null), "web"),
    ];
    for (name, mapper) in presets() {
        for (device, channel, platform) in &cases {
            let mut context = json!({"app": {"version": "3.1.4", "build": "77"}});
            if !device.is_null() {
                let mut device = device.clone();
                device["id"] = json!("device-9");
                context["device"] = device;
            }
            let mut event = json!({"type": "screen", "name": "Cart", "user_id": "u1", "context": context});
            if !channel.is_null() {
                event["channel"] = channel.clone();
            }
            let body = outcome(&mapper, &event).unwrap_or_else(|code| panic!("{name}: dropped {code}"));
            let action = &body["actions"][0];
            assert_eq!(action["platform"], *platform, "{name}: {event}");
            if *platform == "web" {
                // A web page's `context.app` is its SDK's: not sent as an app's version.
                assert!(action.get("app_version").is_none() && body.get("device_id").is_none(), "{name}: {body}");
            } else {
                assert_eq!(action["app_version"], "3.1.4", "{name}: {body}");
                let device_id = if device.is_null() { json!(null) } else { json!("device-9") };
                assert_eq!(body.get("device_id").cloned().unwrap_or(json!(null)), device_id, "{name}: {body}");
            }
        }
    }
}

#[test]
fn a_platform_written_as_a_name_is_sent_as_it_is() {
    let mapper = extending_retail("extends: retail.yaml\nplatform: iOS\nevents:\n  Product Viewed:\n    platform: web\n")
        .expect("compiles");
    let event = |name: &str| json!({"type": "track", "event": name, "user_id": "u1", "context": {"device": {"type": "android"}}});
    assert_eq!(outcome(&mapper, &event("Product Added")).expect("mapped")["actions"][0]["platform"], "iOS");
    assert_eq!(outcome(&mapper, &event("Product Viewed")).expect("mapped")["actions"][0]["platform"], "web");
}

#[test]
fn a_call_with_a_push_token_registers_its_device_through_the_device_api() {
    let identify = json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.test"},
        "context": {"device": {"id": "d-1", "type": "ios", "token": "apns-9", "model": "iPhone15,2"},
                    "os": {"name": "iOS", "version": "17.1"}, "app": {"version": "2.3.1"}}});
    for (name, mapper) in presets() {
        let line = identify.to_string();
        assert!(mapper.registers_device(&line), "{name}");
        let (mut body, mut warnings) = (Vec::new(), Vec::new());
        mapper.map_device_into(&line, &mut body, &mut warnings).expect("mapped");
        let registration: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            registration,
            json!({"type": "device", "customer_id": "u1", "device_id": "d-1",
                   "attributes": {"app_version": "2.3.1", "model": "iPhone15,2", "os_version": "17.1",
                                  "platform": "iOS", "push_id": "apns-9"}}),
            "{name}"
        );
        // Not on every call, and not without both the token and the device type.
        let mut viewed = identify.clone();
        viewed["type"] = json!("track");
        viewed["event"] = json!("Product Viewed");
        assert!(!mapper.registers_device(&viewed.to_string()), "{name}: Product Viewed is not in `on`");
        let mut opened = viewed.clone();
        opened["event"] = json!("Application Opened");
        assert!(mapper.registers_device(&opened.to_string()), "{name}");
        let mut no_type = identify.clone();
        no_type["context"]["device"]["type"] = Value::Null;
        assert!(!mapper.registers_device(&no_type.to_string()), "{name}");
        // Without a device id, the token names the device (MoEngage would create one per call).
        let mut no_id = identify.clone();
        no_id["context"]["device"]["id"] = Value::Null;
        mapper.map_device_into(&no_id.to_string(), &mut body, &mut warnings).expect("mapped");
        assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON")["device_id"], "apns-9", "{name}");
    }
}

#[test]
fn an_extending_file_changes_the_device_section_key_by_key() {
    let mapper = extending_retail(
        "extends: retail.yaml\ndevice:\n  on: [Logged In]\n  attributes:\n    model: null\n    push_preference: {value: true}\n",
    )
    .expect("compiles");
    let call = json!({"type": "track", "event": "Logged In", "user_id": "u1",
        "context": {"device": {"type": "android", "token": "fcm-1", "model": "Pixel"}}});
    assert!(mapper.registers_device(&call.to_string()));
    let (mut body, mut warnings) = (Vec::new(), Vec::new());
    mapper.map_device_into(&call.to_string(), &mut body, &mut warnings).expect("mapped");
    let body: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["attributes"], json!({"platform": "ANDROID", "push_id": "fcm-1", "push_preference": true}));
    let mut identify = call.clone();
    identify["type"] = json!("identify");
    assert!(!mapper.registers_device(&identify.to_string()), "`on` replaced the base's list");
}

#[test]
fn a_login_is_known_only_where_anonymous_customers_are_merged() {
    let login = json!({"type": "identify", "userId": "u1", "anonymousId": "anon-1"}).to_string();
    for (name, mapper) in presets() {
        assert!(!mapper.blueprint().merges_anonymous(), "{name}: the presets keep user_id alone");
        assert_eq!(mapper.login_of(&login), None, "{name}");
    }
    let fallback = extending_retail("extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymous_id]\n").expect("compiles");
    assert!(fallback.blueprint().merges_anonymous());
    assert_eq!(
        fallback.login_of(&login),
        Some(blueprint::Login { anonymous_id: "anon-1".into(), user_id: Some("u1".into()) })
    );
    let visit = json!({"type": "page", "anonymous_id": "anon-1"}).to_string();
    assert_eq!(fallback.login_of(&visit), Some(blueprint::Login { anonymous_id: "anon-1".into(), user_id: None }));
    let mut body = Vec::new();
    fallback.map_automatic_merge_into(&login, &mut body).expect("a merge");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        json!({"merge_data": [{"merged_user": "anon-1", "retained_user": "u1"}]})
    );
    assert!(fallback.map_automatic_merge_into(&visit, &mut body).is_err(), "a visit is no login");
    let off = extending_retail("extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymous_id]\nmerge_anonymous: false\n")
        .expect("compiles");
    assert_eq!(off.login_of(&login), None);
}
