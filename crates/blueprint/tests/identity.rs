//! Identity as real SDKs send it: traits in either place, identify as a customer update, alias as
//! a merge, traits remembered from earlier events, and `extends` merging an event mapping key by key.

use std::path::Path;
use std::sync::Arc;

use blueprint::{DropCode, Mapper, Outcome, RunMemory};
use jiff::Timestamp;
use serde_json::{Value, json};

fn preset(name: &str) -> Mapper {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/moengage").join(name);
    Mapper::new(Arc::new(blueprint::compile_file(&path).expect("preset compiles")))
}

fn received() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().expect("timestamp")
}

fn outcome(mapper: &Mapper, event: &Value) -> Result<Value, (DropCode, String)> {
    match mapper.map(&event.to_string(), received()) {
        Outcome::Mapped(mapped) => Ok(serde_json::from_slice(&mapped.body).expect("body is JSON")),
        Outcome::Dropped(drop) => Err((drop.code, drop.reason)),
    }
}

fn body(mapper: &Mapper, event: &Value) -> Value {
    outcome(mapper, event).unwrap_or_else(|(code, reason)| panic!("dropped: {code} {reason}"))
}

fn dropped(mapper: &Mapper, event: &Value) -> DropCode {
    match outcome(mapper, event) {
        Ok(body) => panic!("mapped: {body}"),
        Err((code, _)) => code,
    }
}

/// Compiles `main` beside `base.yaml`, both written to a fresh directory.
fn extending(base: &str, main: &str) -> Result<Mapper, blueprint::Diagnostics> {
    let directory = tempfile::tempdir().expect("a directory");
    std::fs::write(directory.path().join("base.yaml"), base).expect("write base");
    let path = directory.path().join("main.yaml");
    std::fs::write(&path, main).expect("write main");
    blueprint::compile_file(&path).map(|compiled| Mapper::new(Arc::new(compiled)))
}

const RETAIL_LIKE: &str = "
identity:
  customer_id: $.user_id
  user_identifiers:
    u_em: $.traits.email
    u_mb: {path: $.traits.phone, transform: e164}
events:
  Order Completed:
    rename: {revenue: value, total: order_total}
    exclude: [internal]
    attributes:
      url: $.context.page.url
      channel: {value: web}
    object_arrays:
      products: {sku: product_sku}
";

fn order() -> Value {
    json!({
        "type": "track", "event": "Order Completed", "userId": "u1",
        "traits": {"email": "a@b.test", "phone": "+447700900123"},
        "context": {"page": {"url": "https://shop.example/done"}},
        "properties": {"revenue": 10, "total": 12, "tax": 2, "internal": 1, "secret": 9,
                       "products": [{"sku": "S1", "name": "Hat"}]},
    })
}

fn attributes(body: &Value) -> &Value {
    &body["actions"][0]["attributes"]
}

#[test]
fn an_event_declared_again_merges_with_the_base_key_by_key() {
    let mapper = extending(
        RETAIL_LIKE,
        "extends: base.yaml\nevents:\n  Order Completed:\n    rename: {tax: tax_amount}\n    exclude: [secret]\n",
    )
    .expect("compiles");
    let sent = body(&mapper, &order());
    assert_eq!(
        attributes(&sent),
        &json!({"value": 10, "order_total": 12, "tax_amount": 2, "url": "https://shop.example/done",
                "channel": "web", "product_sku": ["S1"]}),
        "the base's renames, exclusions, attributes and object arrays are kept beside the new ones"
    );
}

#[test]
fn null_removes_a_base_entry_and_replace_drops_the_base_mapping() {
    let mapper = extending(
        RETAIL_LIKE,
        "extends: base.yaml
identity:
  user_identifiers:
    u_mb: null
events:
  Order Completed:
    rename: {total: null}
    attributes: {channel: null}
    object_arrays: {products: null}
    action: Purchase
",
    )
    .expect("compiles");
    let sent = body(&mapper, &order());
    assert_eq!(sent["user_identifiers"], json!({"u_em": "a@b.test"}));
    assert_eq!(sent["actions"][0]["action"], "Purchase");
    let sent_attributes = attributes(&sent);
    assert_eq!(sent_attributes["total"], 12, "the rename removed, `total` passes through as itself");
    assert_eq!(sent_attributes["value"], 10);
    assert!(sent_attributes.get("channel").is_none(), "{sent_attributes}");
    assert_eq!(sent_attributes["products_sku"], json!(["S1"]), "flattened by field, as with no entry");
    assert!(sent_attributes.get("internal").is_none(), "the base's exclusion stays");

    let replaced = extending(RETAIL_LIKE, "extends: base.yaml\nevents:\n  Order Completed:\n    replace: true\n    pass_through: false\n")
        .expect("compiles");
    let sent = body(&replaced, &order());
    assert_eq!(attributes(&sent), &json!({}), "nothing of the base's mapping is left");
}

#[test]
fn identify_updates_the_customer_through_the_customer_api() {
    for preset_name in ["retail.yaml", "b2b-saas.yaml"] {
        let mapper = preset(preset_name);
        let sent = body(
            &mapper,
            &json!({"type": "identify", "userId": "u_8842", "context": {"locale": "en-GB"},
                    "traits": {"email": "jane@example.com", "phone": "07700 900123", "firstName": "Jane",
                               "last_name": "Doe", "plan": "pro", "moe_internal": 1}}),
        );
        assert_eq!(
            sent,
            json!({"type": "customer", "customer_id": "u_8842", "attributes": {
                "plan": "pro", "u_em": "jane@example.com", "u_mb": "+447700900123", "u_fn": "Jane", "u_ln": "Doe"}}),
            "{preset_name}: the standard attributes from their traits, other traits as they are, none twice"
        );
    }
}

#[test]
fn alias_merges_the_previous_user_into_the_user() {
    let mapper = preset("retail.yaml");
    let sent = body(&mapper, &json!({"type": "alias", "previousId": "anon-7", "userId": "u_8842"}));
    assert_eq!(sent, json!({"merge_data": [{"merged_user": "anon-7", "retained_user": "u_8842"}]}));
    assert_eq!(dropped(&mapper, &json!({"type": "alias", "userId": "u_8842"})), DropCode::InvalidEvent);
    assert_eq!(dropped(&mapper, &json!({"type": "alias", "previousId": "u1", "userId": "u1"})), DropCode::InvalidEvent);
    assert_eq!(dropped(&mapper, &json!({"type": "alias", "previousId": "anon-7"})), DropCode::MissingCustomerId);
}

#[test]
fn without_a_customer_section_or_merge_identify_and_alias_are_not_in_the_blueprint() {
    let mapper = Mapper::new(Arc::new(
        blueprint::compile_str("inline.yaml", "identity: {customer_id: $.user_id}\nevents: {Signed Up: {}}\n").expect("compiles"),
    ));
    assert_eq!(dropped(&mapper, &json!({"type": "identify", "userId": "u1", "traits": {"a": 1}})), DropCode::NotInBlueprint);
    assert_eq!(dropped(&mapper, &json!({"type": "alias", "previousId": "a", "userId": "u1"})), DropCode::NotInBlueprint);
    assert!(!mapper.blueprint().updates_customers() && !mapper.blueprint().merges_users());
}

#[test]
fn screen_is_matched_as_screen_and_group_has_no_api() {
    let mapper = preset("retail.yaml");
    let sent = body(&mapper, &json!({"type": "screen", "name": "Basket", "userId": "u1", "properties": {"items": 2}}));
    assert_eq!(sent["actions"][0]["action"], "Screen Viewed");
    assert_eq!(attributes(&sent), &json!({"items": 2, "screen_name": "Basket"}));
    assert_eq!(dropped(&mapper, &json!({"type": "group", "userId": "u1", "groupId": "g1"})), DropCode::UnsupportedType);
}

#[test]
fn identify_and_alias_obey_the_enabled_events() {
    let mapper = preset("retail.yaml").with_enabled(["Order Completed".to_owned()]);
    assert_eq!(dropped(&mapper, &json!({"type": "identify", "userId": "u1"})), DropCode::NotEnabled);
    assert_eq!(dropped(&mapper, &json!({"type": "alias", "previousId": "a", "userId": "u1"})), DropCode::NotEnabled);
    let mapper = preset("retail.yaml").with_enabled(["identify".to_owned(), "alias".to_owned()]);
    assert!(outcome(&mapper, &json!({"type": "identify", "userId": "u1"})).is_ok());
}

#[test]
fn an_empty_or_null_top_level_traits_hides_nothing_of_context_traits() {
    let mapper = preset("retail.yaml");
    for traits in [json!({}), Value::Null, json!({"email": null})] {
        let sent = body(
            &mapper,
            &json!({"type": "track", "event": "Product Viewed", "userId": "u1", "traits": traits,
                    "context": {"traits": {"email": "a@b.test", "firstName": "Ann"}}}),
        );
        assert_eq!(sent["user_identifiers"], json!({"u_em": "a@b.test"}), "traits: {traits}");
        assert_eq!(sent["attributes"], json!({"u_fn": "Ann"}), "traits: {traits}");
    }
    let sent = body(
        &mapper,
        &json!({"type": "track", "event": "Product Viewed", "userId": "u1", "traits": {"email": "new@b.test"},
                "context": {"traits": {"email": "old@b.test"}}}),
    );
    assert_eq!(sent["user_identifiers"], json!({"u_em": "new@b.test"}), "the top level wins name by name");
}

#[test]
fn traits_seen_once_fill_the_identity_of_later_events() {
    let memory = Arc::new(RunMemory::default());
    let mapper = preset("retail.yaml").with_memory(memory.clone());
    body(&mapper, &json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.test", "phone": "+447700900123", "first_name": "Ann"}}));
    body(&mapper, &json!({"type": "identify", "userId": "u1", "traits": {"last_name": "Lee"}}));
    let sent = body(&mapper, &json!({"type": "track", "event": "Product Viewed", "userId": "u1"}));
    assert_eq!(sent["user_identifiers"], json!({"u_em": "a@b.test", "u_mb": "+447700900123"}));
    assert_eq!(sent["attributes"], json!({"u_fn": "Ann", "u_ln": "Lee"}));

    let own = body(&mapper, &json!({"type": "track", "event": "Product Viewed", "userId": "u1", "traits": {"email": "new@b.test"}}));
    assert_eq!(own["user_identifiers"]["u_em"], "new@b.test", "an event's own trait wins");
    let later = body(&mapper, &json!({"type": "track", "event": "Product Viewed", "userId": "u1"}));
    assert_eq!(later["user_identifiers"]["u_em"], "new@b.test", "and is remembered");

    let other = body(&mapper, &json!({"type": "track", "event": "Product Viewed", "userId": "u2"}));
    assert!(other.get("user_identifiers").is_none(), "another user's traits are never used: {other}");

    // Traits of a dropped event are remembered too: it is the user who is known.
    dropped(&mapper, &json!({"type": "track", "event": "Not Mapped", "userId": "u3", "traits": {"email": "c@d.test"}}));
    body(&mapper, &json!({"type": "alias", "previousId": "u3", "userId": "u4"}));
    let merged = body(&mapper, &json!({"type": "track", "event": "Product Viewed", "userId": "u4"}));
    assert_eq!(merged["user_identifiers"], json!({"u_em": "c@d.test"}), "an alias moves the traits to the retained user");
    assert_eq!(memory.len(), 3);

    let forgetful = preset("retail.yaml");
    body(&forgetful, &json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.test"}}));
    let sent = body(&forgetful, &json!({"type": "track", "event": "Product Viewed", "userId": "u1"}));
    assert!(sent.get("user_identifiers").is_none(), "without a memory, nothing is remembered");
}

#[test]
fn traits_sent_again_as_remembered_change_nothing_and_any_difference_is_remembered() {
    use blueprint::TraitMemory as _;
    let memory = Arc::new(RunMemory::default());
    let mapper = preset("retail.yaml").with_memory(memory.clone());
    let track = |traits: Value, context: Value| {
        json!({"type": "track", "event": "Product Viewed", "userId": "u1", "traits": traits, "context": context})
    };
    let remembered = || memory.recall("u1").map(|text| serde_json::from_str::<Value>(&text).expect("JSON"));
    body(&mapper, &track(json!({"email": "a@b.test", "plan": "pro"}), json!({})));
    let first = memory.recall("u1");
    assert_eq!(first.as_deref(), Some(r#"{"email":"a@b.test","plan":"pro"}"#));
    // The very text remembered: nothing new, nothing written.
    body(&mapper, &track(json!({"email": "a@b.test", "plan": "pro"}), json!({})));
    assert!(memory.recall("u1").zip(first).is_some_and(|(now, then)| std::sync::Arc::ptr_eq(&now, &then)));
    // The same top-level text, and context.traits beside it: theirs are news.
    body(&mapper, &track(json!({"email": "a@b.test", "plan": "pro"}), json!({"traits": {"seats": 3}})));
    assert_eq!(remembered(), Some(json!({"email": "a@b.test", "plan": "pro", "seats": 3})));
    // A name sent in camelCase is remembered by its snake_case name.
    body(&mapper, &track(json!({"firstName": "Ann"}), json!({})));
    assert_eq!(remembered(), Some(json!({"email": "a@b.test", "plan": "pro", "seats": 3, "first_name": "Ann"})));
    body(&mapper, &track(json!({"email": "a@b.test", "plan": "team"}), json!({})));
    assert_eq!(remembered(), Some(json!({"email": "a@b.test", "plan": "team", "seats": 3, "first_name": "Ann"})));
}

#[test]
fn an_event_key_dedented_under_events_is_named_as_read_as_an_event() {
    let text = "identity: {customer_id: $.user_id}\nevents:\n  Order Completed: {}\n  attributes:\n    url: $.context.page.url\n";
    let errors = blueprint::compile_str("inline.yaml", text).expect_err("invalid");
    let said = errors.to_string();
    assert!(said.contains("inline.yaml:4:3") && said.contains("`attributes` is read as the name of an event"), "{said}");
    assert!(said.contains("indent `attributes:` under that event's name"), "{said}");
}

#[test]
fn extends_to_a_missing_file_names_the_closest_one() {
    let directory = tempfile::tempdir().expect("a directory");
    std::fs::write(directory.path().join("base.yaml"), "identity: {customer_id: $.user_id}\n").expect("write");
    let path = directory.path().join("main.yaml");
    std::fs::write(&path, "extends: bsae.yaml\n").expect("write");
    let said = blueprint::compile_file(&path).expect_err("missing").to_string();
    assert!(said.contains("did you mean `base.yaml`?"), "{said}");
}

#[test]
fn events_that_cannot_use_remembered_traits_are_told_apart_before_mapping() {
    let memory = Arc::new(RunMemory::default());
    let mapper = preset("retail.yaml").with_memory(memory.clone()).with_enabled(
        ["Product Viewed", "identify", "alias", "page"].map(str::to_owned),
    );
    body(&mapper, &json!({"type": "identify", "userId": "u1", "traits": {"email": "a@b.test"}}));
    let forgetful = preset("retail.yaml").with_enabled(["Product Viewed", "identify", "alias", "page"].map(str::to_owned));
    let cases = [
        (json!({"type": "track", "event": "Product Viewed", "userId": "u1"}), true),
        (json!({"type": "page", "name": "Home", "userId": "u1"}), true),
        (json!({"type": "identify", "userId": "u1"}), true),
        (json!({"type": "alias", "previousId": "a1", "userId": "u1"}), true),
        (json!({"type": "track", "event": "Wishlist Viewed", "userId": "u1", "traits": {"plan": "pro"}}), true),
        (json!({"type": "track", "event": "Wishlist Viewed", "userId": "u1"}), false),
        (json!({"type": "track", "event": "Order Completed", "userId": "u1"}), false),
        (json!({"type": "group", "groupId": "g1", "userId": "u1"}), false),
    ];
    for (event, expected) in cases {
        let line = event.to_string();
        let call = event["type"].as_str();
        let name = event["event"].as_str().or(call).map(|name| if call == Some("page") { "page" } else { name });
        assert_eq!(mapper.may_use_remembered(call, name, &line), expected, "{event}");
        if !expected {
            let before = memory.len();
            assert_eq!(mapper.map(&line, received()), forgetful.map(&line, received()), "{event}");
            assert_eq!(memory.len(), before, "{event}");
        }
    }
    assert!(!forgetful.may_use_remembered(Some("identify"), Some("identify"), "{}"), "no memory: nothing to read");
    assert!(mapper.may_use_remembered(None, None, "{}"), "what is not known may use them");
}
