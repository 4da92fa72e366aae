//! The interpreter against the integration document and DESIGN.md's rules, event by event.

use std::path::Path;
use std::sync::Arc;

use blueprint::{DropCode, MAX_BODY_BYTES, Mapper, Outcome, PhoneRegion, WarningCode};
use jiff::Timestamp;
use serde_json::{Value, json};

fn preset(name: &str) -> Mapper {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage").join(name);
    Mapper::new(Arc::new(blueprint::compile_file(&path).expect("preset compiles")))
}

fn inline(yaml: &str) -> Mapper {
    Mapper::new(Arc::new(blueprint::compile_str("inline.yaml", yaml).expect("blueprint compiles")))
}

fn inline_with_object_data(yaml: &str) -> Mapper {
    inline(yaml).with_object_data(true)
}

fn received() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().expect("timestamp")
}

fn body(mapper: &Mapper, event: &Value) -> Value {
    match mapper.map(&event.to_string(), received()) {
        Outcome::Mapped(mapped) => serde_json::from_slice(&mapped.body).expect("body is JSON"),
        Outcome::Dropped(drop) => panic!("dropped: {} {}", drop.code, drop.reason),
    }
}

fn dropped(mapper: &Mapper, line: &str) -> DropCode {
    match mapper.map(line, received()) {
        Outcome::Mapped(mapped) => panic!("mapped: {}", String::from_utf8_lossy(&mapped.body)),
        Outcome::Dropped(drop) => drop.code,
    }
}

/// The integration document's example, character for character.
#[test]
fn documents_order_completed_example_is_reproduced_exactly() {
    let event = r#"{"type":"track","event":"Order Completed","user_id":"u_8842","traits":{"email":"jane@example.com","phone":"+447700900123"},"properties":{"order_id":"ORD-1001","revenue":89.99,"currency":"GBP","coupon":"WELCOME10"}}"#;
    let expected = json!({
      "type": "event",
      "customer_id": "u_8842",
      "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
      "actions": [{
          "action": "Order Completed",
          "platform": "web",
          "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}
      }]
    });
    let Outcome::Mapped(mapped) = preset("retail.yaml").map(event, received()) else { panic!("dropped") };
    let actual: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(actual, expected);
    assert_eq!(
        String::from_utf8(mapped.body).expect("utf8"),
        r#"{"type":"event","customer_id":"u_8842","user_identifiers":{"u_em":"jane@example.com","u_mb":"+447700900123"},"actions":[{"action":"Order Completed","platform":"web","attributes":{"order_id":"ORD-1001","value":89.99,"currency":"GBP","coupon":"WELCOME10"}}]}"#
    );
    assert!(mapped.warnings.is_empty());
}

#[test]
fn numeric_user_id_becomes_a_string_customer_id() {
    let out = body(&preset("retail.yaml"), &json!({"type": "track", "event": "Signed Up", "user_id": 8842}));
    assert_eq!(out["customer_id"], "8842");
}

#[test]
fn identity_groups_are_omitted_when_empty_and_names_go_to_root_attributes() {
    let mapper = preset("b2b-saas.yaml");
    let out = body(&mapper, &json!({"type": "track", "event": "Logged In", "user_id": "u1"}));
    assert!(out.get("user_identifiers").is_none(), "{out}");
    assert!(out.get("attributes").is_none(), "{out}");
    let out = body(
        &mapper,
        &json!({
            "type": "track", "event": "Subscription Started", "user_id": "u1",
            "traits": {"first_name": "Jane", "last_name": "Doe"}, "properties": {"plan": "team"}
        }),
    );
    assert_eq!(out["attributes"], json!({"u_fn": "Jane", "u_ln": "Doe"}));
    assert_eq!(out["actions"][0]["attributes"], json!({"plan": "team"}));
}

#[test]
fn camel_case_sdk_payloads_map_like_snake_case_ones() {
    let mapper = preset("retail.yaml");
    let snake = body(
        &mapper,
        &json!({
            "type": "track", "event": "Signed Up", "user_id": "u1",
            "traits": {"email": "a@b.test", "first_name": "Ann"}
        }),
    );
    let camel = body(
        &mapper,
        &json!({
            "type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m-1",
            "context": {"traits": {"email": "a@b.test", "firstName": "Ann"}}
        }),
    );
    assert_eq!(snake, camel);
}

#[test]
fn page_calls_become_page_viewed_with_page_fields() {
    let out = body(
        &preset("retail.yaml"),
        &json!({
            "type": "page", "name": "Pricing", "user_id": "u1",
            "context": {"page": {"url": "https://shop.test/pricing", "path": "/pricing", "title": "Pricing", "referrer": "https://search.test/"}}
        }),
    );
    assert_eq!(out["actions"][0]["action"], "Page Viewed");
    assert_eq!(
        out["actions"][0]["attributes"],
        json!({"page_name": "Pricing", "path": "/pricing", "referrer": "https://search.test/", "title": "Pricing", "url": "https://shop.test/pricing"})
    );
}

#[test]
fn phone_region_comes_from_plus_cc_then_locale_then_default() {
    let mapper = preset("retail.yaml").with_default_region(PhoneRegion::parse("US"));
    let phone = |phone: &str, locale: Option<&str>| {
        let mut event =
            json!({"type": "track", "event": "Signed Up", "user_id": "u1", "traits": {"phone": phone}});
        if let Some(locale) = locale {
            event["context"] = json!({"locale": locale});
        }
        body(&mapper, &event)["user_identifiers"]["u_mb"].clone()
    };
    assert_eq!(phone("+44 7700 900123", Some("en-US")), "+447700900123");
    assert_eq!(phone("07700 900123", Some("en-GB")), "+447700900123");
    assert_eq!(phone("(415) 555-2671", None), "+14155552671");
    assert_eq!(phone("(415) 555-2671", Some("en")), "+14155552671");
}

#[test]
fn a_phone_that_cannot_be_normalised_is_left_out_with_a_warning() {
    let event = json!({"type": "track", "event": "Signed Up", "user_id": "u1", "traits": {"phone": "12", "email": "a@b.test"}});
    let Outcome::Mapped(mapped) = preset("retail.yaml").map(&event.to_string(), received()) else {
        panic!("dropped")
    };
    let out: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(out["user_identifiers"], json!({"u_em": "a@b.test"}));
    assert_eq!(mapped.warnings.len(), 1);
    assert_eq!(mapped.warnings[0].code, WarningCode::InvalidPhone);
}

#[test]
fn moe_attributes_are_removed_with_a_warning_and_the_event_goes() {
    let event = json!({"type": "track", "event": "Product Viewed", "user_id": "u1", "properties": {"moe_source": "x", "sku": "A1"}});
    let Outcome::Mapped(mapped) = preset("retail.yaml").map(&event.to_string(), received()) else {
        panic!("dropped")
    };
    let out: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(out["actions"][0]["attributes"], json!({"sku": "A1"}));
    assert_eq!(mapped.warnings[0].code, WarningCode::ReservedAttribute);
}

#[test]
fn timestamps_become_current_time_in_utc_and_future_ones_are_clamped() {
    let mapper = preset("retail.yaml");
    let out = body(
        &mapper,
        &json!({"type": "track", "event": "Signed Up", "user_id": "u1", "timestamp": "2026-11-28T09:30:00.250+01:00"}),
    );
    assert_eq!(out["actions"][0]["current_time"], "2026-11-28T08:30:00.25Z");
    let out = body(
        &mapper,
        &json!({"type": "track", "event": "Signed Up", "user_id": "u1", "timestamp": "2027-01-01T00:00:00Z"}),
    );
    assert_eq!(out["actions"][0]["current_time"], "2026-11-28T12:00:00Z");
    let out = body(&mapper, &json!({"type": "track", "event": "Signed Up", "user_id": "u1"}));
    assert!(out["actions"][0].get("current_time").is_none());
}

#[test]
fn timezone_offset_follows_daylight_saving_at_the_events_time() {
    let mapper = preset("retail.yaml");
    let offset = |timestamp: &str, zone: &str| {
        body(&mapper, &json!({"type": "track", "event": "Signed Up", "user_id": "u1", "timestamp": timestamp, "context": {"timezone": zone}}))
            ["actions"][0]["user_timezone_offset"]
            .clone()
    };
    assert_eq!(offset("2026-01-15T12:00:00Z", "Europe/London"), 0);
    assert_eq!(offset("2026-07-15T12:00:00Z", "Europe/London"), 3600);
    assert_eq!(offset("2026-01-15T12:00:00Z", "America/New_York"), -18000);
    assert_eq!(offset("2026-07-15T12:00:00Z", "America/New_York"), -14400);
    assert_eq!(offset("2026-07-15T12:00:00Z", "Asia/Kolkata"), 19800);
    // The clocks go forward at 01:00 UTC on 29 March 2026 in London.
    assert_eq!(offset("2026-03-29T00:59:59Z", "Europe/London"), 0);
    assert_eq!(offset("2026-03-29T01:00:00Z", "Europe/London"), 3600);
}

#[test]
fn an_unknown_timezone_is_a_warning_not_a_drop() {
    let event = json!({"type": "track", "event": "Signed Up", "user_id": "u1", "context": {"timezone": "Mars/Olympus"}});
    let Outcome::Mapped(mapped) = preset("retail.yaml").map(&event.to_string(), received()) else {
        panic!("dropped")
    };
    assert_eq!(mapped.warnings[0].code, WarningCode::InvalidTimezone);
}

#[test]
fn each_drop_rule_gives_its_code() {
    let retail = preset("retail.yaml");
    assert_eq!(
        dropped(&retail, r#"{"type":"track","event":"Wishlist Shared","user_id":"u1"}"#),
        DropCode::NotInBlueprint
    );
    let no_customer = inline("identity: {customer_id: $.user_id}\nevents: {Signed Up: {}}\n");
    assert_eq!(
        dropped(&no_customer, r#"{"type":"identify","user_id":"u1","traits":{"email":"a@b.test"}}"#),
        DropCode::NotInBlueprint
    );
    let enabled = preset("retail.yaml").with_enabled(["Order Completed".to_owned()]);
    assert_eq!(
        dropped(&enabled, r#"{"type":"track","event":"Signed Up","user_id":"u1"}"#),
        DropCode::NotEnabled
    );
    assert_eq!(
        dropped(&retail, r#"{"type":"track","event":"Signed Up","anonymous_id":"a1"}"#),
        DropCode::MissingCustomerId
    );
    assert_eq!(
        dropped(&retail, r#"{"type":"track","event":"Signed Up","user_id":""}"#),
        DropCode::MissingCustomerId
    );
    assert_eq!(
        dropped(&retail, r#"{"type":"track","event":"Signed Up","user_id":null}"#),
        DropCode::MissingCustomerId
    );
    let catch_all = inline("identity: {customer_id: $.user_id}\nevents: {'*': {}}\n");
    assert_eq!(
        dropped(&catch_all, r#"{"type":"track","event":"moe_internal","user_id":"u1"}"#),
        DropCode::ReservedPrefix
    );
    // Within every one of MoEngage's limits (arrays of 50 strings of 500 characters), yet too large.
    let blobs: serde_json::Map<String, Value> =
        (0..6).map(|n| (format!("blob_{n}"), json!(vec!["x".repeat(500); 50]))).collect();
    let line = json!({"type": "track", "event": "Signed Up", "user_id": "u1", "properties": blobs})
        .to_string();
    assert_eq!(dropped(&retail, &line), DropCode::PayloadTooLarge);
    for line in [
        "",
        "[]",
        "42",
        "{",
        r#"{"type":"track"}"#,
        r#"{"type":"merge","user_id":"u1"}"#,
        r#"{"type":"alias","user_id":"u1","previous_id":["u0"]}"#,
        r#"{"type":"track","event":"Signed Up","user_id":{"id":1}}"#,
        r#"{"type":"track","event":"Signed Up","user_id":"u1","traits":"x"}"#,
        r#"{"type":"track","event":"Signed Up","user_id":"u1","timestamp":"last tuesday"}"#,
        r#"{"type":"track","event":"Signed Up","user_id":"u1","originalTimestamp":"soon"}"#,
        r#"{"type":"track","event":"Signed Up","user_id":"u1","sentAt":7}"#,
    ] {
        assert_eq!(dropped(&retail, line), DropCode::InvalidEvent, "{line}");
    }
}

#[test]
fn every_sdk_call_type_has_a_defined_fate() {
    let retail = preset("retail.yaml");
    assert_eq!(
        dropped(&retail, r#"{"type":"group","groupId":"acme","user_id":"u1","traits":{"name":"Acme"}}"#),
        DropCode::UnsupportedType
    );
    let sent = body(&retail, &json!({"type":"alias","userId":"u1","previousId":"anon-1"}));
    assert_eq!(sent, json!({"merge_data": [{"merged_user": "anon-1", "retained_user": "u1"}]}));
    let sent = body(&retail, &json!({"type":"identify","userId":"u1","traits":{"email":"a@b.test"}}));
    assert_eq!(sent, json!({"type": "customer", "customer_id": "u1", "attributes": {"u_em": "a@b.test"}}));
    let sent = body(&retail, &json!({"type":"screen","name":"Home","user_id":"u1"}));
    assert_eq!(sent["actions"][0]["action"], "Screen Viewed");
    let bare = inline("identity: {customer_id: $.user_id}\nevents: {Signed Up: {}}\n");
    assert_eq!(dropped(&bare, r#"{"type":"screen","name":"Home","user_id":"u1"}"#), DropCode::NotInBlueprint);
    assert_eq!(dropped(&bare, r#"{"type":"alias","userId":"u1","previousId":"anon-1"}"#), DropCode::NotInBlueprint);
    let screens = inline("identity: {customer_id: $.user_id}\nevents: {screen: {action: Screen Viewed}}\n");
    let sent = body(&screens, &json!({"type":"screen","name":"Home","user_id":"u1","properties":{"name":"Home"}}));
    assert_eq!(sent["actions"][0]["action"], "Screen Viewed");
    assert_eq!(sent["actions"][0]["attributes"]["name"], "Home");
}

#[test]
fn an_sdk_original_timestamp_is_the_event_time() {
    let retail = preset("retail.yaml");
    let rudderstack = json!({"type":"track","event":"Signed Up","userId":"u1",
        "originalTimestamp":"2026-07-01T09:00:00.250Z","sentAt":"2026-07-01T09:00:01Z"});
    assert_eq!(body(&retail, &rudderstack)["actions"][0]["current_time"], "2026-07-01T09:00:00.25Z");
    let both = json!({"type":"track","event":"Signed Up","userId":"u1",
        "timestamp":"2026-07-01T10:00:00Z","originalTimestamp":"2026-07-01T09:00:00Z"});
    assert_eq!(body(&retail, &both)["actions"][0]["current_time"], "2026-07-01T10:00:00Z");
}

#[test]
fn gmt_offsets_as_rudderstack_sends_them_are_time_zones() {
    let retail = preset("retail.yaml");
    for (zone, offset) in [
        ("GMT+0000", 0),
        ("GMT-0530", -19800),
        ("GMT+0545", 20700),
        ("UTC+05:30", 19800),
        ("GMT+1", 3600),
        ("GMT", 0),
        ("Asia/Kolkata", 19800),
    ] {
        let line = json!({"type": "track", "event": "Signed Up", "user_id": "u1",
                          "timestamp": "2026-07-01T09:00:00Z", "context": {"timezone": zone}});
        assert_eq!(body(&retail, &line)["actions"][0]["user_timezone_offset"], offset, "{zone}");
    }
    for zone in ["GMT+", "GMT+123", "GMT+15", "GMT+0560", "GMT*0100", "Mars/Olympus"] {
        let line = json!({"type": "track", "event": "Signed Up", "user_id": "u1",
                          "context": {"timezone": zone}});
        let sent = body(&retail, &line);
        assert!(sent["actions"][0].get("user_timezone_offset").is_none(), "{zone}: {sent}");
    }
}

#[test]
fn the_largest_body_that_fits_is_sent() {
    // With object data, an object passes whole: one big string inside it reaches the 128 KB line.
    let retail = preset("retail.yaml").with_object_data(true);
    let envelope = body(
        &retail,
        &json!({"type": "track", "event": "Signed Up", "user_id": "u1", "properties": {"blob": {"s": ""}}}),
    );
    let envelope_len = envelope.to_string().len();
    let fits = "x".repeat(MAX_BODY_BYTES - envelope_len);
    let line = json!({"type": "track", "event": "Signed Up", "user_id": "u1", "properties": {"blob": {"s": fits}}})
        .to_string();
    let Outcome::Mapped(mapped) = retail.map(&line, received()) else { panic!("dropped") };
    assert_eq!(mapped.body.len(), MAX_BODY_BYTES);
    let line = json!({"type": "track", "event": "Signed Up", "user_id": "u1", "properties": {"blob": {"s": format!("{fits}x")}}}).to_string();
    assert_eq!(dropped(&retail, &line), DropCode::PayloadTooLarge);
}

#[test]
fn rename_exclude_pass_through_and_declared_attributes_compose() {
    // With object data, so that the nested property passes as it is.
    let mapper = inline_with_object_data(
        "identity: {customer_id: $.user_id}\n\
         events:\n\
         \x20 Checkout Started:\n\
         \x20   action: Checkout\n\
         \x20   platform: ios\n\
         \x20   rename: {revenue: value}\n\
         \x20   exclude: [card_number]\n\
         \x20   attributes:\n\
         \x20     channel: {value: app}\n\
         \x20     currency: {path: $.properties.currency, transform: lowercase}\n\
         \x20     coupon: {path: $.properties.coupon, default: none}\n\
         \x20 Quiet:\n\
         \x20   pass_through: false\n\
         \x20   rename: {a: b}\n",
    );
    let out = body(
        &mapper,
        &json!({
            "type": "track", "event": "Checkout Started", "user_id": "u1",
            "properties": {"revenue": 10, "value": 99, "currency": "GBP", "card_number": "4111", "nested": {"k": [1, {"x": null}]}}
        }),
    );
    assert_eq!(out["actions"][0]["action"], "Checkout");
    assert_eq!(out["actions"][0]["platform"], "ios");
    assert_eq!(
        out["actions"][0]["attributes"],
        json!({"value": 10, "currency": "gbp", "nested": {"k": [1, {"x": null}]}, "channel": "app", "coupon": "none"})
    );
    let out = body(
        &mapper,
        &json!({"type": "track", "event": "Quiet", "user_id": "u1", "properties": {"a": 1, "c": 2}}),
    );
    assert_eq!(out["actions"][0]["attributes"], json!({"b": 1}));
}

#[test]
fn rich_jsonpath_yields_lists_and_direct_paths_index_arrays() {
    let mapper = inline(
        "identity: {customer_id: {path: $.user_id, transform: string}}\n\
         events:\n\
         \x20 Order Completed:\n\
         \x20   pass_through: false\n\
         \x20   attributes:\n\
         \x20     skus: $.properties.products[*].sku\n\
         \x20     pricey: $.properties.products[?@.price > 20].sku\n\
         \x20     first: $.properties.products[0].sku\n\
         \x20     last: $.properties.products[-1].sku\n\
         \x20     missing: $.properties.products[7].sku\n\
         \x20     email: $..email\n",
    );
    let out = body(
        &mapper,
        &json!({
            "type": "track", "event": "Order Completed", "userId": 7,
            "context": {"traits": {"email": "a@b.test"}},
            "properties": {"products": [{"sku": "A", "price": 10}, {"sku": "B", "price": 30}, {"sku": "C", "price": 25}]}
        }),
    );
    assert_eq!(out["customer_id"], "7");
    assert_eq!(
        out["actions"][0]["attributes"],
        json!({"email": ["a@b.test"], "first": "A", "last": "C", "pricey": ["B", "C"], "skus": ["A", "B", "C"]})
    );
}

#[test]
fn duplicate_input_keys_keep_the_last_like_json_parsers_do() {
    let mapper = preset("retail.yaml");
    let line =
        r#"{"type":"track","event":"Product Viewed","user_id":"u1","properties":{"sku":"old","sku":"new"}}"#;
    let Outcome::Mapped(mapped) = mapper.map(line, received()) else { panic!("dropped") };
    let text = String::from_utf8(mapped.body).expect("utf8");
    assert!(text.contains(r#""attributes":{"sku":"new"}"#), "{text}");
}

#[test]
fn escaped_and_unicode_text_passes_through_intact() {
    let mapper = preset("retail.yaml");
    let event = json!({"type": "track", "event": "Product Viewed", "user_id": "ü\"8842", "properties": {"name": "Café ☕ \n \u{1}"}});
    let out = body(&mapper, &event);
    assert_eq!(out["customer_id"], "ü\"8842");
    assert_eq!(out["actions"][0]["attributes"]["name"], "Café ☕ \n \u{1}");
}

#[test]
fn deeply_nested_input_is_refused_not_a_crash() {
    let mapper = preset("retail.yaml");
    let deep = format!(
        r#"{{"type":"track","event":"Signed Up","user_id":"u1","properties":{{"x":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(dropped(&mapper, &deep), DropCode::InvalidEvent);
}
