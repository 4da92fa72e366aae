//! Properties over generated input: the interpreter never panics and never yields a body over 128 KB,
//! whatever the JSON; the compiler never panics, whatever the text.

use std::path::Path;
use std::sync::Arc;

use blueprint::{DropCode, MAX_BODY_BYTES, Mapper, Outcome};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn retail() -> &'static Mapper {
    static MAPPER: std::sync::OnceLock<Mapper> = std::sync::OnceLock::new();
    MAPPER.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage/retail.yaml");
        let mapper = Mapper::new(Arc::new(blueprint::compile_file(&path).expect("preset compiles")))
            .with_default_region(blueprint::PhoneRegion::parse("GB"));
        mapper.warm_up();
        mapper
    })
}

/// The Retail preset for a workspace with MoEngage's object data type: objects pass as they are.
fn retail_with_objects() -> &'static Mapper {
    static MAPPER: std::sync::OnceLock<Mapper> = std::sync::OnceLock::new();
    MAPPER.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage/retail.yaml");
        Mapper::new(Arc::new(blueprint::compile_file(&path).expect("preset compiles"))).with_object_data(true)
    })
}

fn received() -> jiff::Timestamp {
    "2026-11-28T12:00:00Z".parse().expect("timestamp")
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Big strings, to cross the 128 KB line now and then.
        (0usize..70_000).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,3}|moe_[a-z]{1,3}|.{0,8}", inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Events that look like Signal events, with each field sometimes the wrong type.
fn event_like() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just(json!("Order Completed")),
        Just(json!("Product Viewed")),
        Just(json!("Signed Up")),
        Just(json!("Unmapped")),
        json_value(),
    ];
    let types = prop_oneof![
        Just(json!("track")),
        Just(json!("page")),
        Just(json!("identify")),
        Just(json!("screen")),
        Just(json!("alias")),
        Just(json!("group")),
        json_value()
    ];
    let user_ids = prop_oneof![Just(json!("u_8842")), Just(json!(8842)), Just(json!("")), json_value()];
    let phones = prop_oneof![
        Just(json!("+447700900123")),
        Just(json!("07700 900123")),
        ".{0,16}".prop_map(Value::String),
        json_value()
    ];
    let timestamps =
        prop_oneof![Just(json!("2026-07-01T10:00:00Z")), Just(json!("2099-01-01T00:00:00Z")), json_value()];
    let zones = prop_oneof![Just(json!("Europe/London")), Just(json!("Nowhere/City")), json_value()];
    (types, names, user_ids, phones, timestamps, zones, json_value(), json_value(), prop::bool::weighted(0.2))
        .prop_map(|(kind, name, user_id, phone, timestamp, zone, properties, extra, camel)| {
            let mut event = json!({
                "type": kind, "event": name, "timestamp": timestamp,
                "traits": {"email": "a@b.test", "phone": phone},
                "context": {"timezone": zone, "locale": "en-GB"},
                "properties": properties, "extra": extra, "previousId": "anon-1",
            });
            event[if camel { "userId" } else { "user_id" }] = user_id;
            event
        })
}

fn check(line: &str) -> Result<(), TestCaseError> {
    match retail().map(line, received()) {
        Outcome::Mapped(mapped) => {
            prop_assert!(mapped.body.len() <= MAX_BODY_BYTES, "body of {} bytes", mapped.body.len());
            let body: Value = serde_json::from_slice(&mapped.body)
                .map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
            if let Some(merges) = body.get("merge_data") {
                // An alias call: one merge of two different users.
                let merge = &merges[0];
                prop_assert!(merge["merged_user"].as_str().is_some() && merge["retained_user"].as_str().is_some());
                prop_assert_ne!(&merge["merged_user"], &merge["retained_user"]);
                return Ok(());
            }
            prop_assert!(body["customer_id"].as_str().is_some_and(|id| !id.is_empty()));
            let attributes = if body["type"] == "customer" {
                // An identify call: a profile update, its attributes at the root.
                body["attributes"].as_object().cloned().unwrap_or_default()
            } else {
                prop_assert_eq!(&body["type"], "event");
                prop_assert_eq!(body["actions"].as_array().map(Vec::len), Some(1));
                body["actions"][0]["attributes"].as_object().cloned().unwrap_or_default()
            };
            prop_assert!(attributes.keys().all(|key| !key.starts_with("moe_")));
        }
        Outcome::Dropped(drop) => {
            prop_assert!(DropCode::ALL.contains(&drop.code));
            prop_assert!(!drop.reason.is_empty());
            let printed: Value = serde_json::from_str(&drop.to_json())
                .map_err(|e| TestCaseError::fail(format!("drop line is not JSON: {e}")))?;
            prop_assert_eq!(&printed["dropped"]["code"], drop.code.as_str());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_nor_exceeds_128_kb(value in json_value()) {
        check(&value.to_string())?;
    }

    #[test]
    fn event_shaped_json_never_panics_nor_exceeds_128_kb(event in event_like()) {
        check(&event.to_string())?;
        check(&serde_json::to_string_pretty(&event).expect("json"))?;
    }

    #[test]
    fn arbitrary_text_never_panics_the_interpreter(text in ".{0,200}") {
        check(&text)?;
    }

    #[test]
    fn passed_through_properties_arrive_unchanged(properties in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..6)) {
        let event = json!({"type": "track", "event": "Product Viewed", "user_id": "u1", "properties": properties});
        // With object data, properties under plain names are passed on as they are, unless the request
        // would be too large or a warning says what was cut to MoEngage's limits; only nulls inside
        // arrays, which say nothing, are left out unannounced.
        let line = event.to_string();
        let mapped = match retail_with_objects().map(&line, received()) {
            Outcome::Mapped(mapped) => mapped,
            Outcome::Dropped(drop) if drop.code == DropCode::PayloadTooLarge && line.len() + 1024 > MAX_BODY_BYTES => {
                return Ok(());
            }
            Outcome::Dropped(drop) => return Err(TestCaseError::fail(format!("dropped: {drop:?}"))),
        };
        if !mapped.warnings.is_empty() {
            return Ok(());
        }
        let mut expected = event["properties"].clone();
        if let Some(members) = expected.as_object_mut() {
            // An array of nothing but nulls is not sent at all.
            members.retain(|_, value| !matches!(value, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_null)));
            for value in members.values_mut() {
                if let Value::Array(items) = value {
                    items.retain(|item| !item.is_null());
                }
            }
        }
        let body: Value = serde_json::from_slice(&mapped.body).expect("JSON");
        prop_assert_eq!(&body["actions"][0]["attributes"], &expected);
    }

    #[test]
    fn arbitrary_text_never_panics_the_compiler(text in "\\PC{0,300}") {
        if let Err(diagnostics) = blueprint::compile_str("fuzz.yaml", &text) {
            let lines = text.lines().count().max(1);
            for diagnostic in diagnostics.iter() {
                prop_assert!(diagnostic.position.line >= 1 && diagnostic.position.line <= lines + 1, "{}", diagnostic);
                prop_assert!(diagnostic.position.column >= 1);
                let _ = diagnostic.to_string();
            }
        }
    }

    #[test]
    fn damaged_presets_never_panic_the_compiler(position in 0usize..2000, insert in "[ \\t:{}\\[\\],\\-&*!|>'\"#$.a-z\\n]{1,6}") {
        let base = include_str!("../../../blueprints/moengage/base.yaml");
        let cut = base.char_indices().map(|(i, _)| i).nth(position % base.chars().count()).unwrap_or(0);
        let damaged = format!("{}{}{}", &base[..cut], insert, &base[cut..]);
        if let Err(diagnostics) = blueprint::compile_str("damaged.yaml", &damaged) {
            prop_assert!(!diagnostics.is_empty());
            let _ = diagnostics.to_string();
        }
    }
}

/// JSON-ish text: valid JSON, then sometimes damaged by inserting, deleting or replacing bytes.
fn jsonish_text() -> impl Strategy<Value = String> {
    let damage = prop_oneof![
        Just(None),
        (any::<prop::sample::Index>(), "[\\[\\]{}:,\"\\\\ a0-9.eE+\\-tfnul\\x00-\\x1f]{0,3}").prop_map(Some),
    ];
    (json_value(), any::<bool>(), damage, 0usize..3).prop_map(
        |(value, pretty, damage, removed)| {
            let mut text =
                if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }
                    .unwrap_or_default();
            text = format!("{{\"type\":\"track\",\"event\":\"Signed Up\",\"user_id\":\"u1\",\"properties\":{{\"x\":{text}}}}}");
            if let Some((index, insert)) = damage {
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
                let at = boundaries[index.index(boundaries.len())];
                let end = boundaries.iter().copied().find(|&b| b >= at + removed).unwrap_or(text.len());
                text.replace_range(at..end.max(at), &insert);
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The event scanner accepts exactly what `serde_json` accepts (within the depth limit), so
    /// nothing invalid is passed through to MoEngage and nothing valid is refused.
    #[test]
    fn the_scanner_agrees_with_serde_json(text in jsonish_text()) {
        let ours = blueprint::scan::top_level(&text, ["properties"]);
        let theirs = serde_json::from_str::<&serde_json::value::RawValue>(&text);
        let is_object = text.trim_start().starts_with('{');
        match (&ours, &theirs) {
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
            (Err(error), Ok(_)) => prop_assert!(!is_object, "refused valid JSON: {error}: {text:?}"),
            (Ok(_), Err(error)) => prop_assert!(false, "accepted invalid JSON ({error}): {text:?}"),
        }
        if let Ok(scanned) = ours {
            for (_, raw) in &scanned.members {
                let mut out = Vec::new();
                raw.write_compact(&mut out);
                let compacted: Value = serde_json::from_slice(&out).expect("compact copy is JSON");
                prop_assert_eq!(compacted, serde_json::from_str::<Value>(raw.get()).expect("span is JSON"));
                prop_assert!(!out.contains(&b'\n'));
            }
        }
    }
}
