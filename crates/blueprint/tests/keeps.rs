//! What MoEngage keeps (its data tracking policy), applied before sending: objects flattened for
//! workspaces without object data, each limit at its edge, and the warning code of every change.

use std::path::Path;
use std::sync::Arc;

use blueprint::{Mapped, Mapper, Outcome, WarningCode};
use jiff::Timestamp;
use serde_json::{Value, json};

fn retail() -> Arc<blueprint::Blueprint> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage/retail.yaml");
    Arc::new(blueprint::compile_file(&path).expect("preset compiles"))
}

fn inline(yaml: &str) -> Mapper {
    Mapper::new(Arc::new(blueprint::compile_str("inline.yaml", yaml).expect("blueprint compiles")))
}

const EVERY_EVENT: &str = "identity:\n  customer_id: $.user_id\n  attributes:\n    plan: $.traits.plan\nevents:\n  \"*\": {}\n";

fn mapped(mapper: &Mapper, event: &Value) -> Mapped {
    match mapper.map(&event.to_string(), "2026-11-28T12:00:00Z".parse::<Timestamp>().expect("time")) {
        Outcome::Mapped(mapped) => mapped,
        Outcome::Dropped(drop) => panic!("dropped: {} {}", drop.code, drop.reason),
    }
}

fn track(event: &str, properties: Value) -> Value {
    json!({"type": "track", "event": event, "user_id": "u1", "properties": properties})
}

/// The action's attributes, and the warning codes, in order.
fn attributes(mapper: &Mapper, properties: Value) -> (Value, Vec<WarningCode>) {
    let mapped = mapped(mapper, &track("Noted", properties));
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    (body["actions"][0]["attributes"].clone(), mapped.warnings.iter().map(|warning| warning.code).collect())
}

fn order_with_products() -> Value {
    track(
        "Order Completed",
        json!({
            "order_id": "ORD-1", "revenue": 30.0,
            "products": [
                {"product_id": "P-1", "sku": "SKU-1", "name": "Tea", "price": 10.0, "quantity": 1, "colour": "green"},
                {"product_id": "P-2", "sku": "SKU-2", "name": "Cup", "price": 20.0, "quantity": 2}
            ]
        }),
    )
}

#[test]
fn without_object_data_an_orders_products_become_one_array_per_field_the_preset_names() {
    let mapped = mapped(&Mapper::new(retail()), &order_with_products());
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(
        body["actions"][0]["attributes"],
        json!({
            "order_id": "ORD-1", "value": 30.0,
            "product_id": ["P-1", "P-2"], "product_sku": ["SKU-1", "SKU-2"], "product_name": ["Tea", "Cup"],
            "product_price": [10.0, 20.0], "product_quantity": [1, 2]
        }),
        "fields the preset does not name (colour) are left out"
    );
    assert!(mapped.warnings.is_empty(), "{:?}", mapped.warnings);
}

#[test]
fn with_object_data_the_products_pass_as_they_are() {
    let mapped = mapped(&Mapper::new(retail()).with_object_data(true), &order_with_products());
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["actions"][0]["attributes"]["products"], order_with_products()["properties"]["products"]);
    assert!(body["actions"][0]["attributes"].get("product_sku").is_none());
}

#[test]
fn undeclared_objects_flatten_by_path_and_arrays_of_objects_by_field() {
    let (attributes, warnings) = attributes(
        &inline(EVERY_EVENT),
        json!({
            "address": {"city": "London", "geo": {"lat": 51.5, "lon": null}},
            "items": [{"sku": "A", "tags": ["x", "y"]}, {"sku": "B", "tags": ["z"]}, {"other": 1}],
            "empty": {},
            "tags": ["a", null, "b"]
        }),
    );
    assert_eq!(
        attributes,
        json!({
            "address_city": "London", "address_geo_lat": 51.5,
            "items_sku": ["A", "B"], "items_tags": ["x", "y", "z"], "items_other": [1],
            "tags": ["a", "b"]
        })
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn arrays_mixing_kinds_are_left_out_with_mixed_array() {
    let properties = json!({"kept": [1, 2.5], "mixed": [1, "1"], "nested": [[1], [2]], "objects_and_values": [{"a": 1}, 2]});
    // Without object data, arrays within arrays are flattened with the objects.
    let (attributes, warnings) = attributes(&inline(EVERY_EVENT), properties.clone());
    assert_eq!(attributes, json!({"kept": [1, 2.5], "nested": [1, 2]}));
    assert_eq!(warnings, [WarningCode::MixedArray; 2]);
    // With it, objects pass but MoEngage keeps no arrays of arrays.
    let (attributes, warnings) = self::attributes(&inline(EVERY_EVENT).with_object_data(true), properties);
    assert_eq!(attributes, json!({"kept": [1, 2.5]}));
    assert_eq!(warnings, [WarningCode::MixedArray; 3]);
}

#[test]
fn strings_are_cut_at_512_characters_and_longer_urls_left_out() {
    let mapper = inline(EVERY_EVENT);
    let at = "é".repeat(512);
    let over = "é".repeat(513);
    let url_at = format!("https://shop.example/{}", "a".repeat(512 - 21));
    let url_over = format!("{url_at}a");
    let (attributes, warnings) =
        attributes(&mapper, json!({"at": at, "over": over, "url_at": url_at, "url_over": url_over}));
    assert_eq!(attributes["at"], at.as_str(), "512 multi-byte characters are kept whole");
    assert_eq!(attributes["over"], at.as_str(), "513 are cut to 512");
    assert_eq!(attributes["url_at"], url_at.as_str());
    assert!(attributes.get("url_over").is_none(), "{attributes}");
    assert_eq!(warnings, [WarningCode::ValueTruncated, WarningCode::UrlTooLong]);
}

#[test]
fn arrays_keep_50_elements_of_at_most_512_characters() {
    let mapper = inline(EVERY_EVENT);
    let fifty: Vec<u32> = (0..50).collect();
    let fifty_one: Vec<u32> = (0..51).collect();
    let (attributes, warnings) = attributes(
        &mapper,
        json!({"fifty": fifty, "fifty_one": fifty_one, "long": ["short", "x".repeat(513)]}),
    );
    assert_eq!(attributes["fifty"], json!(fifty));
    assert_eq!(attributes["fifty_one"], json!(fifty), "the first 50");
    assert_eq!(attributes["long"], json!(["short", "x".repeat(512)]));
    assert_eq!(warnings, [WarningCode::ArrayTruncated, WarningCode::ValueTruncated]);
}

#[test]
fn names_are_cut_at_200_characters() {
    let at = "n".repeat(200);
    let over = "m".repeat(201);
    let mapper = inline(EVERY_EVENT);
    let (attributes, warnings) = attributes(&mapper, json!({at.clone(): 1, over.clone(): 2}));
    assert_eq!(attributes, json!({at.clone(): 1, "m".repeat(200): 2}));
    assert_eq!(warnings, [WarningCode::NameTruncated]);

    let long_action = format!("{}.", "a".repeat(200));
    let mapped = mapped(&mapper, &track(&long_action, json!({})));
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["actions"][0]["action"], "a".repeat(200), "the `.` became a space, then the name was cut");
    let codes: Vec<WarningCode> = mapped.warnings.iter().map(|warning| warning.code).collect();
    assert_eq!(codes, [WarningCode::PeriodInName, WarningCode::NameTruncated]);
    let mapped = self::mapped(&mapper, &track(&at, json!({})));
    assert!(mapped.warnings.is_empty(), "200 characters are kept: {:?}", mapped.warnings);
}

#[test]
fn an_event_keeps_its_first_100_attributes() {
    let mapper = inline(EVERY_EVENT);
    let hundred: serde_json::Map<String, Value> = (0..100).map(|n| (format!("a{n:03}"), json!(n))).collect();
    let (attributes, warnings) = attributes(&mapper, Value::Object(hundred.clone()));
    assert_eq!(attributes, Value::Object(hundred.clone()));
    assert!(warnings.is_empty());
    let mut hundred_and_one = hundred.clone();
    hundred_and_one.insert("a100".into(), json!(100));
    let mapped = mapped(&mapper, &track("Noted", Value::Object(hundred_and_one)));
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["actions"][0]["attributes"], Value::Object(hundred), "the 101st is left out");
    assert_eq!(mapped.warnings.len(), 1);
    assert_eq!(mapped.warnings[0].code, WarningCode::TooManyAttributes);
    assert!(mapped.warnings[0].message.contains("a100"), "{}", mapped.warnings[0]);
}

#[test]
fn a_period_in_an_event_name_is_sent_as_a_space_with_a_warning() {
    let mapped = mapped(&inline(EVERY_EVENT), &track("Cart.Viewed", json!({})));
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["actions"][0]["action"], "Cart Viewed");
    assert_eq!(mapped.warnings[0].code, WarningCode::PeriodInName);
    assert_eq!(mapped.warnings[0].message, "the action name `Cart.Viewed` has a `.`, which MoEngage turns into a space: sent as `Cart Viewed`");
}

#[test]
fn a_period_in_a_blueprints_action_name_is_a_compile_time_warning() {
    let yaml = "identity:\n  customer_id: $.user_id\nevents:\n  Cart.Viewed: {}\n  Checkout:\n    action: checkout.started\n";
    let compiled = blueprint::compile_str("shop.yaml", yaml).expect("a warning does not stop it");
    let shown: Vec<String> = compiled.warnings().iter().map(|warning| warning.headline()).collect();
    assert_eq!(
        shown,
        [
            "shop.yaml:4:3: warning[period_in_name]: the action name `Cart.Viewed` has a `.`, which MoEngage turns into a space: it is sent as `Cart Viewed`",
            "shop.yaml:6:13: warning[period_in_name]: the action name `checkout.started` has a `.`, which MoEngage turns into a space: it is sent as `checkout started`",
        ]
    );
}

#[test]
fn root_user_attributes_are_held_to_the_same_limits() {
    let mapped = mapped(
        &inline(EVERY_EVENT),
        &json!({"type": "track", "event": "Noted", "user_id": "u1", "traits": {"plan": "p".repeat(600)}}),
    );
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["attributes"]["plan"], "p".repeat(512));
    assert_eq!(mapped.warnings[0].code, WarningCode::ValueTruncated);
}

#[test]
fn root_user_attributes_are_flattened_too_and_flattened_names_keep_clear_of_moe() {
    let mapper = inline("identity:\n  customer_id: $.user_id\n  attributes:\n    address: $.traits.address\nevents:\n  \"*\": {}\n");
    let event = json!({"type": "track", "event": "Noted", "user_id": "u1",
                       "traits": {"address": {"city": "London", "zip": "N1"}},
                       "properties": {"moe": {"x": 1}, "ok": {"moe_y": 2}}});
    let mapped = mapped(&mapper, &event);
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["attributes"], json!({"address_city": "London", "address_zip": "N1"}));
    assert_eq!(body["actions"][0]["attributes"], json!({"ok_moe_y": 2}), "`moe_x` is reserved");
    assert_eq!(mapped.warnings.iter().map(|warning| warning.code).collect::<Vec<_>>(), [WarningCode::ReservedAttribute]);
}

#[test]
fn a_member_repeated_within_one_item_counts_once_and_arrays_of_nothing_are_left_out() {
    let mapper = inline(EVERY_EVENT);
    let line = r#"{"type":"track","event":"Noted","user_id":"u1","properties":{"items":[{"sku":"A","sku":"B"},{"sku":"C"}],"nothing":[null,null],"none":[]}}"#;
    let Outcome::Mapped(mapped) = mapper.map(line, "2026-11-28T12:00:00Z".parse::<Timestamp>().expect("time")) else {
        panic!("dropped")
    };
    let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
    assert_eq!(body["actions"][0]["attributes"], json!({"items_sku": ["B", "C"], "none": []}));
}

#[test]
fn urls_left_out_of_an_array_do_not_count_against_its_50() {
    let mut items = vec![json!("short"); 50];
    items.push(json!(format!("https://shop.example/{}", "a".repeat(600))));
    let (attributes, warnings) = attributes(&inline(EVERY_EVENT), json!({"links": items}));
    assert_eq!(attributes["links"].as_array().map(Vec::len), Some(50));
    assert_eq!(warnings, [WarningCode::UrlTooLong], "nothing was cut for the 50");
}

#[test]
fn the_documents_example_is_unchanged_with_either_setting() {
    let event = common_document_event();
    for object_data in [false, true] {
        let mapped = mapped(&Mapper::new(retail()).with_object_data(object_data), &event);
        let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
        assert_eq!(
            body,
            json!({"type": "event", "customer_id": "u_8842",
                   "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
                   "actions": [{"action": "Order Completed", "platform": "web",
                                "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}}]})
        );
        assert!(mapped.warnings.is_empty());
    }
}

fn common_document_event() -> Value {
    json!({"type": "track", "event": "Order Completed", "user_id": "u_8842",
           "traits": {"email": "jane@example.com", "phone": "+447700900123"},
           "properties": {"order_id": "ORD-1001", "revenue": 89.99, "currency": "GBP", "coupon": "WELCOME10"}})
}
