//! A test file as integrators write it. These types are the single source of its JSON Schema
//! (`signal schema tests`): their doc comments become the descriptions editors show.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Mapping tests for one blueprint: `shop.yaml`'s cases live beside it in `shop.tests.yaml`. Each
/// case is an event (or a file of events) and what the blueprint must make of it: the request
/// body, part of it, or a drop code. `signal test` runs them; `signal test --update` writes the
/// expectation of a case that has none (or no longer matches).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Signal blueprint tests")]
pub struct CaseFile {
    /// The blueprint the cases run through, relative to this file. Default: this file's name
    /// without `.tests` (`shop.tests.yaml` tests `shop.yaml`).
    pub blueprint: Option<String>,

    /// When every event is taken to have been received, as RFC 3339: it stamps events without a
    /// `timestamp` and clamps future ones, so results never depend on the day the tests run.
    /// Default `2030-01-01T00:00:00Z`.
    pub received_at: Option<String>,

    /// The region for national-format phone numbers when an event's `context.locale` has no
    /// country, as an ISO 3166 code such as `GB` (as a pipeline's `default_region`).
    pub default_region: Option<String>,

    /// Whether the cases run for a workspace with MoEngage's object data type (as an integration's
    /// `object_data`): objects and arrays of objects are then sent as they are. Default `false`:
    /// they are flattened, as on most accounts.
    pub object_data: Option<bool>,

    /// The events a pipeline would deliver (as a pipeline's `enabled_events`); others the
    /// blueprint maps are dropped with `not_enabled`. Default: every event the blueprint maps.
    pub enabled_events: Option<Vec<String>>,

    /// The cases, run in order.
    #[schemars(length(min = 1))]
    pub cases: Vec<Case>,
}

/// One case: an input and what must come out of it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in a few words: it names the case in reports.
    #[schemars(length(min = 1))]
    pub name: String,

    /// The input: one Signal event, written in YAML or JSON. Give this or `events`.
    pub event: Option<Value>,

    /// The input: an NDJSON file of events, relative to this file, one event per line; `expect`
    /// then has `each`, one result per line. Give this or `event`.
    pub events: Option<String>,

    /// Parts of the body left out of the comparison, as paths such as `actions[0].current_time`
    /// (`*` for any member or element: `actions[*].attributes.session_id`).
    pub ignore: Option<Vec<String>>,

    /// What must come out. Leave it out and run `signal test --update` to have the current
    /// result written here, for review.
    pub expect: Option<Expectation>,
}

/// What a case must produce: give exactly one of `body`, `contains`, `dropped` or `each`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The MoEngage request body, exactly (as JSON values: key order and number spelling do not
    /// matter).
    pub body: Option<Value>,

    /// Members the body must have, with these values; others may be there too. Arrays must have
    /// the same length, each element matching the same way.
    pub contains: Option<Value>,

    /// The event is dropped with this code, e.g. `not_in_blueprint`.
    pub dropped: Option<String>,

    /// For `events`: one result per line of the file, each `{body: ...}` or `{dropped: CODE}`.
    pub each: Option<Vec<LineExpectation>>,
}

/// What one line of an `events` file must produce: give `body` or `dropped`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineExpectation {
    /// The request body, exactly.
    pub body: Option<Value>,

    /// The drop code.
    pub dropped: Option<String>,
}

/// The JSON Schema of test files (`schemas/blueprint-tests.schema.json`).
pub fn tests_schema() -> Value {
    let schema = schemars::schema_for!(CaseFile);
    // Serialising a schema built from our own types cannot fail.
    serde_json::to_value(schema).unwrap_or(Value::Null)
}
