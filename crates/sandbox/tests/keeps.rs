//! Whatever Signal sends, MoEngage keeps unchanged: over generated events — long strings and URLs,
//! long names, names with `.`, big and mixed arrays, nested objects, many attributes — the body the
//! interpreter writes is the body the sandbox, which applies MoEngage's data tracking policy on its
//! own, stores. With object data on and off.

use std::sync::Arc;

use blueprint::{Mapper, Outcome};
use proptest::prelude::*;
use serde_json::{Map, Value};

const EVERY_EVENT: &str = "identity:\n  customer_id: $.user_id\n  attributes:\n    plan: $.traits.plan\n    seats: $.traits.seats\nevents:\n  \"*\": {}\n  Order Completed:\n    rename: {revenue: value}\n    object_arrays:\n      products: {sku: product_sku, price: product_price}\n";

fn mapper(object_data: bool) -> Mapper {
    let compiled = blueprint::compile_str("every.yaml", EVERY_EVENT).expect("compiles");
    Mapper::new(Arc::new(compiled)).with_object_data(object_data)
}

/// Text near MoEngage's limits: around 512 characters, some of them URLs or multi-byte.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z .]{0,12}",
        (505usize..520, any::<bool>(), any::<bool>()).prop_map(|(length, url, wide)| {
            let filler = if wide { "é" } else { "a" };
            let start = if url { "https://shop.example/" } else { "" };
            format!("{start}{}", filler.repeat(length.saturating_sub(start.len())))
        }),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,8}",
        "[a-z]{1,4}\\.[a-z]{1,4}",
        (195usize..206).prop_map(|length| "n".repeat(length)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let arrays = prop_oneof![
        prop::collection::vec(any::<i32>().prop_map(Value::from), 45..56).prop_map(Value::Array),
        prop::collection::vec(text().prop_map(Value::String), 0..6).prop_map(Value::Array),
        prop::collection::vec(scalar(), 0..6).prop_map(Value::Array),
    ];
    let leaf = prop_oneof![4 => scalar(), 2 => arrays];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn properties() -> impl Strategy<Value = Value> {
    let products = prop::collection::vec(
        (text(), any::<i32>(), name()).prop_map(|(sku, price, extra)| {
            serde_json::json!({"sku": sku, "price": price, extra: "x"})
        }),
        0..4,
    );
    let members = prop_oneof![
        prop::collection::vec((name(), value()), 0..12).prop_map(|members| members.into_iter().collect::<Map<_, _>>()),
        // Over MoEngage's 100 attributes now and then.
        (95usize..110).prop_map(|count| (0..count).map(|n| (format!("a{n}"), Value::from(n))).collect::<Map<_, _>>()),
    ];
    (members, products).prop_map(|(mut members, products)| {
        if !products.is_empty() {
            members.insert("products".into(), Value::Array(products));
        }
        Value::Object(members)
    })
}

fn event() -> impl Strategy<Value = Value> {
    (prop_oneof![Just("Order Completed".to_owned()), name(), "[A-Z][a-z]{2,6}\\.[a-z]{2,6}"], properties(), value())
        .prop_map(|(event, properties, plan)| {
            serde_json::json!({"type": "track", "event": event, "user_id": "u1", "properties": properties,
                               "traits": {"plan": plan, "seats": [1, "two"]}})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn whatever_signal_sends_the_sandbox_keeps_unchanged(event in event(), object_data in any::<bool>()) {
        let received = "2026-11-28T12:00:00Z".parse::<jiff::Timestamp>().expect("time");
        // Compact and with white space, as SDKs and people write events.
        for line in [event.to_string(), serde_json::to_string_pretty(&event).expect("JSON")] {
            let Outcome::Mapped(mapped) = mapper(object_data).map(&line, received) else {
                // Only a body over 128 KB is dropped here, and the sandbox would refuse it whole.
                continue;
            };
            let sent: Value = serde_json::from_slice(&mapped.body).expect("JSON");
            let kept = sandbox::kept_body(&mapped.body, object_data).expect("a JSON object");
            prop_assert_eq!(&kept, &sent, "warnings: {:?}", mapped.warnings);
        }
    }
}

#[test]
fn the_sandbox_does_cut_what_signal_would_have_cut() {
    // The property above would pass if the sandbox kept everything: it does not.
    let long = "x".repeat(600);
    let body = serde_json::json!({"type": "event", "customer_id": "u1", "actions": [{
        "action": "Cart.Viewed", "platform": "web",
        "attributes": {"note": long, "url": format!("https://{long}"), "mixed": [1, "a"], "products": [{"sku": "A"}]}
    }]});
    let kept = sandbox::kept_body(body.to_string().as_bytes(), false).expect("kept");
    let action = &kept["actions"][0];
    assert_eq!(action["action"], "Cart Viewed");
    assert_eq!(action["attributes"], serde_json::json!({"note": "x".repeat(512)}));
    let with_objects = sandbox::kept_body(body.to_string().as_bytes(), true).expect("kept");
    assert_eq!(with_objects["actions"][0]["attributes"]["products"], serde_json::json!([{"sku": "A"}]));
}
