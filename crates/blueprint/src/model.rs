//! The blueprint file as integrators write it. These types are the single source of the JSON Schema
//! (`signal schema blueprint`): their doc comments become the descriptions that editors show on hover.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

/// A Signal blueprint for MoEngage: which events are sent to MoEngage's Track Event API, under which
/// action names, with which attributes and identity fields.
///
/// A blueprint may `extends` another (for example the shared identity mapping in `base.yaml`); its
/// keys then add to or replace the base's.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Signal MoEngage blueprint")]
pub struct BlueprintFile {
    /// Path of the blueprint this one builds on, relative to this file (e.g. `base.yaml`).
    ///
    /// The base's identity mapping, `customer`, `merge`, `platform` and events apply unless this
    /// file sets its own: an identity field replaces the base's entry of the same name, and an
    /// event or `customer` declared here merges with the base's key by key.
    pub extends: Option<String>,

    /// What this blueprint is for, in a sentence. Shown by tools; not sent anywhere.
    pub description: Option<String>,

    /// MoEngage `platform` sent with every action, unless an event sets its own: a name (`web`,
    /// `ANDROID`, `iOS`), or a value source, e.g. `{path: [$.context.device.type, $.channel],
    /// transform: platform, default: web}` for apps' calls. Default: `web`.
    pub platform: Option<PlatformSource>,

    /// What a call from an app adds to its action (only when its `platform` is `ANDROID` or `iOS`:
    /// a web page's `context.app` is often its SDK's own version, not an app's).
    pub app: Option<AppMapping>,

    /// How the user is identified in MoEngage: `customer_id` (required, usually `$.user_id`), the
    /// reserved `user_identifiers` (`u_em`, `u_mb`) and root user `attributes` (`u_fn`, `u_ln`).
    pub identity: Option<IdentityMapping>,

    /// The events sent to MoEngage, keyed by Signal event name (`page` for page calls, `screen`
    /// for screen calls). Events that are not listed here are dropped with `not_in_blueprint`. The
    /// key `"*"` maps every event not listed, under its own name. An event declared again in a
    /// file that `extends` another merges with the base's mapping key by key.
    pub events: Option<BTreeMap<String, EventMapping>>,

    /// How an `identify` call updates the user's MoEngage profile, through MoEngage's customer
    /// API (`POST /v1/customer/{workspace_id}`). Without it, identify calls are dropped with
    /// `not_in_blueprint`.
    pub customer: Option<CustomerMapping>,

    /// How a call from an app registers the device it came from (its push token) through
    /// MoEngage's device API (`POST /v1/device/{workspace_id}`), besides what the call itself
    /// sends. Only calls named in `on` that carry `context.device.token` and
    /// `context.device.type` register it. An extending file's section merges with the base's key
    /// by key.
    pub device: Option<DeviceMapping>,

    /// Whether a login — a call that brings a `user_id` together with an `anonymous_id` that was
    /// delivered as a `customer_id` before — merges that anonymous customer into the user, once per
    /// pair, through MoEngage's merge API. Default: `true` when `customer_id` can fall back to
    /// `$.anonymous_id` (`customer_id: [$.user_id, $.anonymous_id]`), else `false`.
    pub merge_anonymous: Option<bool>,

    /// Whether an `alias` call merges the user it names in `previous_id` into its `user_id`,
    /// through MoEngage's merge API (`POST /v1/customer/merge`). Default: `false`, and alias calls
    /// are dropped with `not_in_blueprint`.
    pub merge: Option<bool>,
}

/// How an identify call becomes a MoEngage customer update:
/// `{"type":"customer","customer_id":...,"attributes":{...}}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerMapping {
    /// Profile attributes, each from a field path or a constant: MoEngage's standard ones are
    /// `u_em` (email), `u_mb` (mobile, in E.164), `u_fn` (first name) and `u_ln` (last name).
    /// `null` removes an attribute the base declares.
    pub attributes: Option<BTreeMap<String, AttributeSource>>,

    /// Whether the call's other traits are sent as profile attributes under their own names.
    /// Traits read by `attributes` (`$.traits.email` for `u_em`) are not sent twice. Default:
    /// `true`.
    pub pass_through: Option<bool>,

    /// Traits never passed through, e.g. `[password_hint]`.
    pub exclude: Option<Vec<String>>,
}

/// How a call registers its device: `{"type":"device","customer_id":...,"device_id":...,
/// "attributes":{"platform":...,"push_id":...}}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceMapping {
    /// The calls that register the device, by the name blueprints match them on: `identify`,
    /// `screen`, or a track call's event name such as `Application Opened`.
    pub on: Option<Vec<String>>,

    /// The device's id in MoEngage, e.g. `[$.context.device.id, $.context.device.token]`. Without
    /// one, MoEngage creates a new device each time.
    pub device_id: Option<ValueSource>,

    /// Device attributes: MoEngage requires `platform` (`ANDROID`, `iOS` or `web`) and `push_id`
    /// (the push token), and keeps `model`, `os_version`, `app_version`, `push_preference` and
    /// others. `null` removes an attribute the base declares.
    pub attributes: Option<BTreeMap<String, AttributeSource>>,
}

/// What an app's call adds to its MoEngage request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppMapping {
    /// The action's `app_version`, e.g. `$.context.app.version`. `null` removes the base's.
    pub app_version: Option<AttributeSource>,

    /// The request's `device_id`, e.g. `$.context.device.id`. `null` removes the base's.
    pub device_id: Option<AttributeSource>,
}

/// A MoEngage platform: a name sent as it is (`web`), or a value source (a mapping) read from the
/// event.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PlatformSource {
    /// `web`, `ANDROID` or `iOS`, as MoEngage names them.
    Name(String),
    /// Read from the event, e.g. `{path: $.context.device.type, transform: platform}`.
    Source(SourceSpec),
}

/// Identity fields at the root of every MoEngage request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityMapping {
    /// Where MoEngage's `customer_id` comes from (usually `$.user_id`). Always sent as a string
    /// (`8842` becomes `"8842"`); an event without one is dropped with `missing_customer_id`.
    pub customer_id: Option<ValueSource>,

    /// MoEngage's reserved identifiers, sent in `user_identifiers`: `u_em` (email) and `u_mb`
    /// (mobile, normalise it with `transform: e164`). Omitted from the request when empty. `null`
    /// removes an identifier the base declares.
    pub user_identifiers: Option<BTreeMap<String, AttributeSource>>,

    /// User attributes sent in the request's root `attributes`: `u_fn` (first name), `u_ln` (last
    /// name) and any others. Omitted from the request when empty. `null` removes an attribute the
    /// base declares.
    pub attributes: Option<BTreeMap<String, AttributeSource>>,
}

/// How one Signal event becomes one MoEngage action.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMapping {
    /// Whether this mapping replaces the mapping of the same event in the blueprint this one
    /// `extends`, instead of merging with it key by key. Default: `false`.
    pub replace: Option<bool>,

    /// The MoEngage action name. Default: the Signal event name. Must not begin with `moe_`.
    #[schemars(length(min = 1))]
    pub action: Option<String>,

    /// MoEngage `platform` for this action, instead of the blueprint's: a name or a value source.
    pub platform: Option<PlatformSource>,

    /// Whether event properties not renamed or excluded are sent as action attributes under their
    /// own names. Default: `true`.
    pub pass_through: Option<bool>,

    /// Properties sent under another attribute name: `{revenue: value}` sends `properties.revenue`
    /// as `value`. Applies whether or not `pass_through` is on. `null` removes a rename the base
    /// declares.
    pub rename: Option<BTreeMap<String, Option<String>>>,

    /// Properties never sent, even when `pass_through` is on. Adds to the base's list.
    pub exclude: Option<Vec<String>>,

    /// Further action attributes, each from a field path or a constant, e.g.
    /// `url: $.context.page.url`. They win over a passed-through property of the same name.
    /// `null` removes an attribute the base declares.
    pub attributes: Option<BTreeMap<String, AttributeSource>>,

    /// How an array of objects is sent to a workspace without MoEngage's object data type (the
    /// integration's `object_data: false`, the default, where MoEngage rejects object values).
    /// Keyed by the attribute holding the array (its name as sent, after `rename`): the fields
    /// taken from its elements, each sent as one array under the name given —
    /// `products: {sku: product_sku}` sends `product_sku: ["SKU-1", "SKU-2"]`, so a segment can
    /// ask for "bought SKU-1". Fields not listed are left out. An array of objects not listed here
    /// is sent as one array per field, named `ATTRIBUTE_FIELD`. With `object_data: true` the array
    /// is sent as it is.
    /// `null` removes an entry the base declares.
    pub object_arrays: Option<BTreeMap<String, Option<BTreeMap<String, String>>>>,
}

/// A value source, or `null` to remove the entry of this name that the base blueprint declares.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct AttributeSource(pub Option<ValueSource>);

/// Where a value comes from: a JSONPath into the event, written as a string (`$.traits.email`), or a
/// mapping with `path` or `value` and optional `transform` and `default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ValueSource {
    /// A JSONPath such as `$.properties.order_id`.
    Path(String),
    /// JSONPaths tried in order, the first that finds a value giving it:
    /// `[$.user_id, $.anonymous_id]`.
    FirstOf(Vec<String>),
    /// The long form.
    Spec(SourceSpec),
}

/// A `path`: one JSONPath, or a list tried in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PathList {
    /// One path.
    One(String),
    /// Paths tried in order; the first that finds a value gives it.
    Many(Vec<String>),
}

impl PathList {
    /// The paths, in order.
    pub fn paths(&self) -> &[String] {
        match self {
            PathList::One(path) => std::slice::from_ref(path),
            PathList::Many(paths) => paths,
        }
    }
}

impl JsonSchema for PathList {
    fn schema_name() -> Cow<'static, str> {
        "PathList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "JSONPath into the event, from its root: `$.properties.order_id`, \
                `$.context.page.url`, `$.properties.products[*].sku` (a path with wildcards or filters \
                yields a list). A list of paths is tried in order: the first that finds a value gives it.",
            "type": ["string", "array"],
            "pattern": r"^\$",
            "items": {"type": "string", "pattern": r"^\$"},
            "minItems": 1,
        })
    }
}

/// The long form of a value source.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// JSONPath into the event, from its root: `$.properties.order_id`, `$.context.page.url`,
    /// `$.properties.products[*].sku` (a path with wildcards or filters yields a list); or a list
    /// of them, tried in order: `[$.context.device.type, $.channel]`.
    pub path: Option<PathList>,

    /// A constant sent as is, instead of a `path`.
    pub value: Option<Value>,

    /// A change applied to the value found: `e164` (phone numbers), `string`, `lowercase`, `trim`.
    pub transform: Option<Transform>,

    /// Sent when the path finds nothing (or `null`).
    pub default: Option<Value>,
}

/// A change applied to a value before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Normalise a phone number to E.164 (`+447700900123`). The region for national numbers is the
    /// number's own `+CC`, else the country of `context.locale`, else the pipeline's
    /// `default_region`. A number that cannot be normalised is left out, with a warning.
    E164,
    /// Send numbers and booleans as strings.
    String,
    /// Lower-case a string (e.g. emails).
    Lowercase,
    /// Remove white space around a string.
    Trim,
    /// Name a device type (or an SDK's `channel`) as MoEngage names platforms: `android` →
    /// `ANDROID`; `ios`, `ipados`, `tvos`, `watchos` → `iOS`; anything else → `web`.
    Platform,
}

impl Transform {
    /// The names integrators write, in schema order.
    pub const NAMES: [&'static str; 5] = ["e164", "string", "lowercase", "trim", "platform"];
}

impl JsonSchema for ValueSource {
    fn schema_name() -> Cow<'static, str> {
        "ValueSource".into()
    }

    // One schema that accepts a string or an object, rather than `anyOf`, so that a mistake in either
    // form gets a specific error instead of "matches none of the alternatives". `pattern` only
    // constrains strings and `properties` only objects, which is what makes this work.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = SourceSpec::json_schema(generator);
        let object = schema.ensure_object();
        object.insert("type".into(), serde_json::json!(["string", "array", "object"]));
        object.insert("pattern".into(), Value::String(r"^\$".into()));
        // `items` only constrains lists of paths, as `pattern` only strings.
        object.insert("items".into(), serde_json::json!({"type": "string", "pattern": r"^\$"}));
        object.insert("minItems".into(), serde_json::json!(1));
        object.insert(
            "description".into(),
            Value::String(
                "Where a value comes from: a JSONPath into the event, written as a string \
                 (`$.traits.email`); a list of paths, the first that finds a value giving it \
                 (`[$.user_id, $.anonymous_id]`); or a mapping with `path` or `value` and optional \
                 `transform` and `default`."
                    .into(),
            ),
        );
        object.remove("title");
        schema
    }
}

impl JsonSchema for PlatformSource {
    fn schema_name() -> Cow<'static, str> {
        "PlatformSource".into()
    }

    // As for a value source: one schema for the name (a string) and the mapping.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = SourceSpec::json_schema(generator);
        let object = schema.ensure_object();
        object.insert("type".into(), serde_json::json!(["string", "object"]));
        object.insert("minLength".into(), serde_json::json!(1));
        object.insert(
            "description".into(),
            Value::String(
                "A MoEngage platform: a name sent as it is (`web`, `ANDROID`, `iOS`), or a mapping \
                 with `path` (or `value`) and optional `transform` and `default`, e.g. \
                 `{path: [$.context.device.type, $.channel], transform: platform, default: web}`."
                    .into(),
            ),
        );
        object.remove("title");
        schema
    }
}

impl JsonSchema for AttributeSource {
    fn schema_name() -> Cow<'static, str> {
        "AttributeSource".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = ValueSource::json_schema(generator);
        let object = schema.ensure_object();
        object.insert("type".into(), serde_json::json!(["string", "array", "object", "null"]));
        object.insert(
            "description".into(),
            Value::String(
                "Where a value comes from: a JSONPath into the event, written as a string \
                 (`$.traits.email`), or a mapping with `path` or `value` and optional `transform` \
                 and `default`; `null` removes the entry of this name that the base blueprint \
                 declares."
                    .into(),
            ),
        );
        schema
    }
}

/// The blueprint JSON Schema, as `signal schema blueprint` prints it.
pub fn blueprint_schema() -> Value {
    let mut schema = schemars::schema_for!(BlueprintFile).to_value();
    for_editors(&mut schema);
    schema
}

/// The pattern of a name MoEngage does not reserve: one that does not begin with `moe_`.
pub const UNRESERVED_NAME: &str = "^(?!moe_)";

/// What the schema's own rules say in an editor, where a schema error has no place for a hint.
const RESERVED_NAME_MESSAGE: &str =
    "MoEngage reserves names that begin with `moe_`: choose a name without that prefix.";
const PATH_MESSAGE: &str =
    "A path begins with `$`, from the event's root: `$.properties.total`, `$.traits.email`.";
const BOTH_MESSAGE: &str = "A value source takes `path` (read the event) or `value` (a constant), not both; \
     use `default` for a fallback when the path finds nothing.";
const NEITHER_MESSAGE: &str = "A value source needs `path` or `value`, e.g. \
     `{path: $.traits.phone, transform: e164}` or `{value: web}`.";
const RESERVED_EVENT_MESSAGE: &str = "An event whose name begins with `moe_` needs an `action` \
     without that prefix, because MoEngage reserves such names.";

/// Titles in words: editors name an expected object by its title (`Expected "Event mapping"`),
/// and by the Rust type's name without one.
const TITLES: [(&str, &str); 10] = [
    ("AppMapping", "App mapping (calls from apps)"),
    ("DeviceMapping", "Device mapping (push tokens)"),
    ("AttributeSource", "Value source, or null to remove the base's entry"),
    ("PathList", "A path, or paths tried in order"),
    ("PlatformSource", "Platform: a name or a value source"),
    ("CustomerMapping", "Customer mapping (identify calls)"),
    ("EventMapping", "Event mapping"),
    ("IdentityMapping", "Identity mapping"),
    ("Transform", "Value transform"),
    ("ValueSource", "Value source"),
];

/// What serde's types cannot say, added to the generated schema so that editors check it as the
/// compiler does: the `moe_` prefix, a value source's `path` or `value`, and messages and titles
/// in words rather than type names and regular expressions.
fn for_editors(schema: &mut Value) {
    use serde_json::json;
    let reserved_name = json!({"$ref": "#/$defs/SentName"});
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.insert(
            "SentName".into(),
            json!({
                "title": "Name sent to MoEngage",
                "description": "A name MoEngage shows: it must not begin with `moe_`.",
                "pattern": UNRESERVED_NAME,
                "patternErrorMessage": RESERVED_NAME_MESSAGE,
                "errorMessage": RESERVED_NAME_MESSAGE,
            }),
        );
        for (name, title) in TITLES {
            if let Some(def) = defs.get_mut(name).and_then(Value::as_object_mut) {
                def.insert("title".into(), title.into());
            }
        }
        for paths in ["PathList", "ValueSource", "AttributeSource"] {
            let Some(def) = defs.get_mut(paths).and_then(Value::as_object_mut) else { continue };
            def.insert("patternErrorMessage".into(), PATH_MESSAGE.into());
            if let Some(items) = def.get_mut("items").and_then(Value::as_object_mut) {
                items.insert("patternErrorMessage".into(), PATH_MESSAGE.into());
            }
        }
        for source in ["ValueSource", "AttributeSource"] {
            let Some(def) = defs.get_mut(source).and_then(Value::as_object_mut) else { continue };
            if let Some(path) =
                def.get_mut("properties").and_then(|p| p.get_mut("path")).and_then(Value::as_object_mut)
            {
                path.insert("patternErrorMessage".into(), PATH_MESSAGE.into());
            }
            // `if` holds only for mappings: a path written as a string has neither key.
            def.insert(
                "allOf".into(),
                json!([
                    {
                        "if": {"required": ["path"]},
                        "then": {"properties": {"value": {"type": "null", "errorMessage": BOTH_MESSAGE}}},
                    },
                    {
                        "if": {"type": "object", "not": {"required": ["value"]}},
                        "then": {"required": ["path"], "errorMessage": NEITHER_MESSAGE},
                    },
                ]),
            );
        }
        if let Some(event) = defs.get_mut("EventMapping") {
            for pointer in [
                "/properties/action",
                "/properties/rename/additionalProperties",
                "/properties/object_arrays/additionalProperties/additionalProperties",
            ] {
                if let Some(name) = event.pointer_mut(pointer).and_then(Value::as_object_mut) {
                    name.insert("$ref".into(), "#/$defs/SentName".into());
                }
            }
        }
        for (def, pointer) in [
            ("EventMapping", "/properties/attributes"),
            ("IdentityMapping", "/properties/attributes"),
            ("IdentityMapping", "/properties/user_identifiers"),
            ("CustomerMapping", "/properties/attributes"),
            ("DeviceMapping", "/properties/attributes"),
        ] {
            if let Some(names) = defs.get_mut(def).and_then(|d| d.pointer_mut(pointer)).and_then(Value::as_object_mut)
            {
                names.insert("propertyNames".into(), reserved_name.clone());
            }
        }
    }
    if let Some(events) = schema.pointer_mut("/properties/events").and_then(Value::as_object_mut) {
        events.insert(
            "patternProperties".into(),
            json!({"^moe_": {"required": ["action"], "errorMessage": RESERVED_EVENT_MESSAGE}}),
        );
    }
    add_markdown_descriptions(schema);
}

/// Editors render `markdownDescription` on hover; the descriptions are written in Markdown.
fn add_markdown_descriptions(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::String(description)) = object.get("description") {
                let markdown = Value::String(description.clone());
                object.insert("markdownDescription".into(), markdown);
            }
            object.values_mut().for_each(add_markdown_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(add_markdown_descriptions),
        _ => {}
    }
}
