//! The configuration file as operators write it. These types are the single source of the JSON
//! Schema (`signal schema config`): their doc comments become the descriptions editors show.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Signal's configuration: where it listens, where it keeps events, the sources that send events,
/// the MoEngage workspaces they go to, and the pipelines between them.
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

    /// Where `/healthz`, `/readyz` and `/metrics` are served, as `HOST:PORT`. Default
    /// `127.0.0.1:9090`: loopback, so that only this machine can read them.
    pub admin_listen: Option<String>,

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

    /// The MoEngage workspaces events are delivered to, by name.
    pub integrations: BTreeMap<String, IntegrationConfig>,

    /// Which source's events go to which integration, through which blueprint, by name.
    pub pipelines: BTreeMap<String, PipelineConfig>,
}

/// Where accepted events are kept.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The SQLite database file; created with its directory when missing. Default
    /// `./data/signal.db`.
    pub sqlite: Option<String>,

    /// How long a `message_id` is remembered per source: an event that arrives again within this
    /// time is accepted but not delivered twice. A duration such as `24h` or `30m`. Default `24h`.
    pub dedupe_window: Option<String>,
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
}

/// A MoEngage workspace: the three values of the document's "Configure in Signal".
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// The Workspace ID (MoEngage: Settings → Account → APIs).
    #[schemars(length(min = 1))]
    pub workspace_id: String,

    /// The Data API key, from the Data tile. Write `${MOENGAGE_DATA_API_KEY}` and set the variable:
    /// the key then never sits in the file.
    #[schemars(length(min = 1))]
    pub data_api_key: String,

    /// The data center: `01`–`06` or `101`, the number in your dashboard URL.
    pub data_center: DataCenterValue,

    /// Events per minute for this workspace, at most MoEngage's 30,000 (the default). Lower it to
    /// leave room for other senders to the same workspace.
    #[schemars(range(min = 1, max = 30000))]
    pub events_per_minute: Option<u32>,

    /// Send to this base URL instead of MoEngage, e.g. `http://127.0.0.1:8088` for a
    /// `signal sandbox`.
    pub endpoint: Option<String>,
}

/// A data center as written: text (`"01"`) or a number (`1`, `101`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum DataCenterValue {
    /// As text, e.g. `"01"`.
    Text(String),
    /// As a number, e.g. `1`.
    Number(u32),
}

impl DataCenterValue {
    /// The value as text, as MoEngage writes it.
    pub fn as_text(&self) -> String {
        match self {
            DataCenterValue::Text(text) => text.clone(),
            DataCenterValue::Number(number) => number.to_string(),
        }
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
