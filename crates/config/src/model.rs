//! The configuration file as operators write it. These types are the single source of the JSON
//! Schema (`signal schema config`): their doc comments become the descriptions editors show.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Signal's configuration: where it listens, where it keeps events, the sources that send events,
/// the destinations they go to (MoEngage workspaces), and the pipelines between them.
///
/// Any text value may name environment variables as `${NAME}` (write `$${` for a literal `${`), so
/// that secrets such as the Data API key never need to sit in the file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Signal configuration")]
pub struct ConfigFile {
    /// Where the collector listens for events, as `HOST:PORT`. Default `127.0.0.1:8080`; use
    /// `0.0.0.0:8080` to accept events from other machines.
    pub listen: Option<String>,

    /// Where the Event Debugger (`/debugger` and its API under `/api/`), `/healthz`, `/readyz` and
    /// `/metrics` are served, as `HOST:PORT`. Default `127.0.0.1:9090`: loopback, so that only this
    /// machine can read them.
    pub admin_listen: Option<String>,

    /// The token the Event Debugger's API and `/metrics` require as `Authorization: Bearer TOKEN`.
    /// Required when `admin_listen` is not a loopback address (events hold emails and phone
    /// numbers). At least 16 characters; use `${NAME}` to take it from the environment.
    pub admin_token: Option<String>,

    /// Where accepted events are kept until they are delivered.
    pub storage: Option<StorageConfig>,

    /// Limits on what the collector accepts.
    pub collector: Option<CollectorConfig>,

    /// How events are delivered: retries and timeouts.
    pub delivery: Option<DeliveryConfig>,

    /// Logging.
    pub log: Option<LogConfig>,

    /// The sites and backends that send events, by name. Each has its own write key.
    pub sources: BTreeMap<String, SourceConfig>,

    /// The destinations events are delivered to, by name: each a MoEngage workspace (`type:
    /// moengage`, the default).
    pub integrations: BTreeMap<String, IntegrationConfig>,

    /// Which source's events go to which integration, through which blueprint, by name.
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

/// Where accepted events are kept.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite database file; created with its directory when missing. Default
    /// `./data/signal.db`. For one node; set `postgres` instead for several.
    pub sqlite: Option<String>,

    /// A PostgreSQL database that several `signal serve` nodes share, instead of an SQLite file.
    pub postgres: Option<PostgresConfig>,

    /// How long a `message_id` is remembered per source: an event that arrives again within this
    /// time is accepted but not delivered twice. A duration such as `24h` or `30m`. Default `24h`.
    pub dedupe_window: Option<String>,

    /// How long settled events (delivered, dropped, failed) are kept for the Event Debugger.
    /// Events still waiting (pending, retrying, paused) are never pruned.
    pub retention: Option<RetentionConfig>,
}

/// A PostgreSQL database for several nodes. The tables are created, and brought up to date, at
/// start-up.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`. Keep the password out of the file:
    /// `url: ${DATABASE_URL}`.
    pub url: String,

    /// The most connections this node opens to the database. Default 16.
    pub max_connections: Option<u32>,
}

/// How long settled events are kept. Pruning runs in small steps in the background.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Settled events (failed ones too) received longer ago than this are deleted. A duration
    /// such as `7d` or `36h`. Default `7d`.
    pub max_age: Option<String>,

    /// Past this many events, the oldest delivered and dropped ones are deleted (failed ones wait
    /// for a replay, until `max_age`). Default 1,000,000 (about 1 GB of SQLite file).
    #[schemars(range(min = 1000))]
    pub max_events: Option<u64>,
}

/// Limits on requests to the collector. Requests over a limit get 413.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The largest request body, in bytes, after gzip decompression. Default 4,194,304 (4 MiB).
    #[schemars(range(min = 1024))]
    pub max_request_bytes: Option<u64>,

    /// The largest single event, in bytes. Default 131,072 (MoEngage's 128 KB request limit).
    #[schemars(range(min = 256))]
    pub max_event_bytes: Option<u64>,

    /// The most events in one `/v1/batch` request. Default 1,000.
    #[schemars(range(min = 1))]
    pub max_batch_events: Option<u64>,

    /// How long a client may take over a request's headers — from their first byte, or from
    /// connecting for its first request — before the connection is closed. Default `10s`.
    pub header_timeout: Option<String>,

    /// How long a connection kept alive after an answer may wait idle for its next request before
    /// it is closed. Default `60s`.
    pub idle_timeout: Option<String>,

    /// How long a request body may take to arrive in whole, from the end of its headers, before
    /// the request is answered 408 and the connection closed. Default `30s`.
    pub body_timeout: Option<String>,

    /// The most connections open at once; past it, new ones wait to be accepted. Default 10,000
    /// (the process's open-file limit must allow it: `ulimit -n`).
    #[schemars(range(min = 1))]
    pub max_connections: Option<u64>,

    /// On SIGTERM or Ctrl-C, how long requests in progress may take to finish before their
    /// connections are cut (idle connections are closed at once). Default `10s`.
    pub shutdown_grace: Option<String>,
}

/// How events are delivered.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long an event is retried after its first attempt (429, 5xx, timeouts, connection
    /// errors) before it is kept as failed. Default `6h`.
    pub retry_window: Option<String>,

    /// How long to wait for each answer. Default `30s`.
    pub timeout: Option<String>,

    /// Requests in flight at once, per integration. Default 64.
    #[schemars(range(min = 1, max = 4096))]
    pub concurrency: Option<u32>,
}

/// Logging.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people (the default), `json` for log collectors.
    pub format: Option<LogFormat>,

    /// The least severe level logged: `error`, `warn`, `info` (the default), `debug` or `trace`.
    pub level: Option<LogLevel>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per record.
    Text,
    /// One JSON object per record.
    Json,
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// What an operator follows (the default).
    Info,
    /// Detail for finding faults.
    Debug,
    /// Everything.
    Trace,
}

/// A site or backend that sends events.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The write key the source sends as the HTTP Basic username (as Segment- and RudderStack-style
    /// SDKs do). Use `${NAME}` to take it from the environment.
    #[schemars(length(min = 1))]
    pub write_key: String,
    /// Origins (`https://www.shop.example`, scheme, host and port only) whose pages may send to
    /// this source with credentials, so that the anonymous-id cookie travels with their events.
    /// They are answered with their own origin and `Access-Control-Allow-Credentials: true`; every
    /// other origin keeps the plain `*` answer, which sends no cookie.
    pub allowed_origins: Option<Vec<String>>,
    /// Keep each visitor's anonymous id in a first-party, HttpOnly cookie set by the collector, for
    /// a collector served on the site's own domain (`collect.shop.example`): it outlasts browsers
    /// that wipe script-written storage after 7 days. Signal's tag (`/signal.js`) reads it back.
    pub cookie: Option<CookieConfig>,
    /// Honour Global Privacy Control: a request with `Sec-GPC: 1` is answered 200 and its events
    /// are not kept. Default `false`.
    pub honor_gpc: Option<bool>,
}

/// The anonymous-id cookie a source's collector sets (`signal_aid`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// The cookie's `Domain`: the site's registrable domain (`shop.example`) so that the
    /// collector's subdomain and the site share it. Default: the collector's host alone.
    pub domain: Option<String>,
    /// How long the cookie lasts after the visitor's last event, e.g. `400d` (the default, the
    /// most browsers keep a cookie).
    pub max_age: Option<String>,
    /// Send the cookie over HTTPS only. Default `true`; `false` only for a collector tried on
    /// plain HTTP.
    pub secure: Option<bool>,
}

/// An integration: a destination that pipelines deliver to. `type` names the kind of destination
/// (the first of the registry's kinds when left out); the other keys are that kind's settings, and
/// the schema of each kind's settings comes from the destination's own crate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct IntegrationConfig(pub serde_json::Map<String, Value>);

impl JsonSchema for IntegrationConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntegrationConfig".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        integration_schema(destinations::KINDS, generator)
    }
}

/// The schema of an integration when `kinds` are the destinations (the first the default): with one
/// kind, its settings and `type`; with several, each kind's settings where `type` names it.
fn integration_schema(
    kinds: &[&dyn sender::DestinationKind],
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    {
        let names: Vec<&str> = kinds.iter().map(|kind| kind.name()).collect();
        let default = names.first().copied().unwrap_or_default();
        let kind_schema = serde_json::json!({
            "description": format!(
                "The kind of destination: {}. Default `{default}`.",
                names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
            "oneOf": names.iter().map(|name| serde_json::json!({"const": name})).collect::<Vec<_>>(),
            "default": default,
        });
        let mut branches = Vec::new();
        let mut only = None;
        for kind in kinds {
            let mut settings = kind.settings_schema();
            let Some(object) = settings.as_object_mut() else { continue };
            if let Some(Value::Object(definitions)) = object.remove("$defs") {
                generator.definitions_mut().extend(definitions);
            }
            object.remove("$schema");
            let title = object.remove("title").and_then(|title| title.as_str().map(str::to_owned));
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                properties.insert("type".into(), kind_schema.clone());
            }
            if kinds.len() == 1 {
                only = Some(settings);
                continue;
            }
            // Several kinds: each one's settings apply when `type` names it (the default's also
            // when `type` is left out).
            let name = title.unwrap_or_else(|| kind.name().to_owned());
            let mut condition = serde_json::json!({"properties": {"type": {"const": kind.name()}}});
            if kind.name() != default {
                condition["required"] = serde_json::json!(["type"]);
            }
            generator.definitions_mut().insert(name.clone(), settings);
            branches.push(serde_json::json!({"if": condition, "then": {"$ref": format!("#/$defs/{name}")}}));
        }
        let schema = only.unwrap_or_else(|| {
            serde_json::json!({
                "description": "An integration: `type` names the kind of destination; the other keys are its settings.",
                "type": "object",
                "properties": {"type": kind_schema},
                "allOf": branches,
            })
        });
        schemars::Schema::try_from(schema).unwrap_or_default()
    }
}

/// Events from one source, through a blueprint, to one integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The source whose events this pipeline takes (a key of `sources`).
    pub source: String,

    /// The integration it delivers to (a key of `integrations`).
    pub integration: String,

    /// A shipped preset: `retail` or `b2b-saas`. Give this or `blueprint`.
    pub preset: Option<Preset>,

    /// A blueprint file, relative to this configuration file. Give this or `preset`.
    pub blueprint: Option<String>,

    /// The events delivered, by Signal event name (`page` for page calls). Others that the
    /// blueprint maps are dropped with `not_enabled`. Default: every event the blueprint maps.
    pub enabled_events: Option<Vec<String>>,

    /// The region for national-format phone numbers when an event's `context.locale` has no
    /// country, as an ISO 3166 code such as `GB`.
    pub default_region: Option<String>,
}

/// The shipped presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Preset {
    /// Page views, sign-ups, logins, searches, product views, carts, checkouts and orders.
    #[serde(rename = "retail")]
    Retail,
    /// Page views, sign-ups, logins and subscriptions.
    #[serde(rename = "b2b-saas")]
    B2bSaas,
}

impl Preset {
    /// The preset's name, as written.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Retail => "retail",
            Preset::B2bSaas => "b2b-saas",
        }
    }
}

/// The JSON Schema of the configuration file.
pub fn config_schema() -> Value {
    schemars::schema_for!(ConfigFile).to_value()
}

#[cfg(test)]
mod tests {

    use sender::{DestinationKind, SettingError};
    use serde_json::json;

    use super::*;

    /// A second kind of destination, to see the schema take several.
    struct Webhook;

    impl DestinationKind for Webhook {
        fn name(&self) -> &'static str {
            "webhook"
        }

        fn settings_schema(&self) -> Value {
            json!({"title": "WebhookSettings", "type": "object", "additionalProperties": false,
                   "properties": {"url": {"type": "string"}}, "required": ["url"]})
        }

        fn build(&self, _: &Value) -> Result<sender::Built, Vec<SettingError>> {
            Err(Vec::new())
        }
    }

    #[test]
    fn several_kinds_each_check_their_own_settings() {
        let mut generator = schemars::SchemaGenerator::default();
        let kinds: [&dyn DestinationKind; 2] = [destinations::default_kind(), &Webhook];
        let mut schema = integration_schema(&kinds, &mut generator).to_value();
        schema["$defs"] = Value::Object(generator.definitions().clone());
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        // The default kind's settings, with and without its `type`.
        let untyped = json!({"workspace_id": "WS", "data_api_key": "k", "data_center": "01"});
        let mut typed = untyped.clone();
        typed["type"] = json!(destinations::default_kind().name());
        for valid in [untyped, typed, json!({"type": "webhook", "url": "https://example.com"})] {
            assert!(validator.is_valid(&valid), "{valid}");
        }
        for invalid in [
            json!({"type": "webhook", "workspace_id": "WS"}),
            json!({"url": "https://example.com"}),
            json!({"type": "other", "url": "https://example.com"}),
        ] {
            assert!(!validator.is_valid(&invalid), "{invalid}");
        }
    }
}
