//! Signal's configuration (`signal.yaml`): sources with write keys, integrations (destinations of
//! the kinds the `destinations` registry lists), pipelines between them. Loading checks everything at once — YAML, the JSON Schema (the same one
//! editors use), `${NAME}` environment variables, names that refer to nothing, values that cannot
//! be used, and each pipeline's blueprint — and reports every error as `FILE:LINE:COL` with a hint.

pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diagnostics::schema_check::{FileContext, SchemaCheck, Vocabulary};
use diagnostics::yaml::{self, Position, SpanIndex, escape_pointer_segment};
use diagnostics::{Diagnostic, DiagnosticKind, Diagnostics, did_you_mean};
use blueprint::files::FileAccess;
use blueprint::{Blueprint, PhoneRegion};
use sender::RetryPolicy;
use serde_json::Value;

pub use model::{ConfigFile, LogFormat, LogLevel, config_schema};

/// A source's write key. It is only ever shown redacted.
pub type WriteKey = secret::Secret;

/// A source of events.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name in the configuration.
    pub name: String,
    /// What it sends as the Basic auth username.
    pub write_key: WriteKey,
    /// Origins answered with credentialed CORS (their own origin, never `*`).
    pub allowed_origins: Vec<String>,
    /// The anonymous-id cookie the collector keeps for this source's visitors.
    pub cookie: Option<AnonymousCookie>,
    /// Whether a request carrying `Sec-GPC: 1` has its events left unkept.
    pub honor_gpc: bool,
}

impl Source {
    /// A source known by its write key alone, as the built-in defaults make one.
    pub fn new(name: impl Into<String>, write_key: WriteKey) -> Source {
        Source { name: name.into(), write_key, allowed_origins: Vec::new(), cookie: None, honor_gpc: false }
    }

    /// Whether pages at `origin` may send with credentials.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }
}

/// The name of the cookie that keeps a visitor's anonymous id.
pub const ANONYMOUS_ID_COOKIE: &str = "signal_aid";

/// How a source's anonymous-id cookie is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonymousCookie {
    /// `Domain`, when not the collector's host alone.
    pub domain: Option<String>,
    /// `Max-Age`.
    pub max_age: Duration,
    /// Whether `Secure` is set.
    pub secure: bool,
}

impl AnonymousCookie {
    /// The `Set-Cookie` value that keeps `anonymous_id`.
    pub fn set_cookie(&self, anonymous_id: &str) -> String {
        let mut value = format!(
            "{ANONYMOUS_ID_COOKIE}={anonymous_id}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
            self.max_age.as_secs()
        );
        if let Some(domain) = &self.domain {
            value.push_str("; Domain=");
            value.push_str(domain);
        }
        if self.secure {
            value.push_str("; Secure");
        }
        value
    }
}

/// A destination to deliver to.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Its name in the configuration.
    pub name: String,
    /// Where and how to send.
    pub destination: Arc<dyn sender::Destination>,
    /// Whether the destination keeps object values (MoEngage's `object_data`): the mapping flattens
    /// them when it does not.
    pub keeps_objects: bool,
}

/// A source's events, through a blueprint, to an integration.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name in the configuration.
    pub name: String,
    /// The source's name.
    pub source: String,
    /// The integration's name.
    pub integration: String,
    /// The compiled blueprint.
    pub blueprint: Arc<Blueprint>,
    /// Where the blueprint came from: `preset retail` or a file.
    pub blueprint_name: String,
    /// The events delivered; `None` for every event the blueprint maps.
    pub enabled_events: Option<Vec<String>>,
    /// The region for national phone numbers.
    pub default_region: Option<PhoneRegion>,
}

/// A checked configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The collector's address.
    pub listen: SocketAddr,
    /// The admin address (health, metrics).
    pub admin_listen: SocketAddr,
    /// The token the admin API requires, if any.
    pub admin_token: Option<secret::Secret>,
    /// Where accepted events are kept.
    pub storage: store::Storage,
    /// How long settled events are kept.
    pub retention: store::Retention,
    /// How long a `message_id` is remembered per source.
    pub dedupe_window: Duration,
    /// The largest request body, decompressed.
    pub max_request_bytes: usize,
    /// The largest single event.
    pub max_event_bytes: usize,
    /// The most events in one batch.
    pub max_batch_events: usize,
    /// How long a request's headers may take.
    pub header_timeout: Duration,
    /// How long a connection may stay idle.
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The most collector connections open at once.
    pub max_connections: usize,
    /// How long requests in progress may take to finish once stopping.
    pub shutdown_grace: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight per integration.
    pub concurrency: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level.
    pub log_level: LogLevel,
    /// Sources.
    pub sources: Vec<Source>,
    /// Integrations.
    pub integrations: Vec<Integration>,
    /// Pipelines.
    pub pipelines: Vec<Pipeline>,
}

/// The shortest `admin_token` accepted: a guessable token guards nothing.
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// Defaults, shared by files that leave a setting out and by `signal serve` without a file.
pub mod defaults {
    use std::time::Duration;

    /// The collector's address.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// The admin address.
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9090";
    /// The SQLite file.
    pub const SQLITE: &str = "./data/signal.db";
    /// The most connections a node opens to PostgreSQL.
    pub const POSTGRES_CONNECTIONS: usize = 16;
    /// How long settled events are kept.
    pub const RETENTION_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
    /// How many events are kept.
    pub const RETENTION_MAX_EVENTS: u64 = 1_000_000;
    /// How long a `message_id` is remembered.
    pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// How long the anonymous-id cookie lasts after the last event: 400 days, the most browsers keep.
    pub const COOKIE_MAX_AGE: Duration = Duration::from_secs(400 * 24 * 3600);
    /// The largest request body.
    pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
    /// The largest event.
    pub const MAX_EVENT_BYTES: usize = 131_072;
    /// The most events in a batch.
    pub const MAX_BATCH_EVENTS: usize = 1000;
    /// How long a request's headers may take.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a request body may take to arrive.
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long a connection may stay idle.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The most collector connections at once.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// How long requests in progress may take once stopping.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// How long an event is retried.
    pub const RETRY_WINDOW: Duration = Duration::from_secs(6 * 3600);
    /// Per-request timeout.
    pub const TIMEOUT: Duration = Duration::from_secs(30);
    /// Requests in flight per integration.
    pub const CONCURRENCY: usize = 64;
}

static WORDS: Vocabulary = Vocabulary {
    whole: "the configuration",
    reference: "see docs/reference/configuration.md",
    place: describe_place,
    type_hint: |_, _, _| None,
    pattern: |_| None,
    choice: |field| match field {
        "preset" => Some((DiagnosticKind::Schema, "preset")),
        "format" => Some((DiagnosticKind::Schema, "log format")),
        "level" => Some((DiagnosticKind::Schema, "log level")),
        "type" => Some((DiagnosticKind::Schema, "destination type")),
        _ => None,
    },
};

fn describe_place(schema_pointer: &str) -> String {
    match schema_pointer.rsplit('/').next().unwrap_or_default() {
        "" => "the configuration".into(),
        "StorageConfig" => "`storage`".into(),
        "RetentionConfig" => "`storage.retention`".into(),
        "CollectorConfig" => "`collector`".into(),
        "DeliveryConfig" => "`delivery`".into(),
        "LogConfig" => "`log`".into(),
        "SourceConfig" => "a source".into(),
        "IntegrationConfig" => "an integration".into(),
        "PipelineConfig" => "a pipeline".into(),
        other => format!("`{other}`"),
    }
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(config_schema)
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // Generated from our own types: a failure is a bug in this crate, caught by every test.
        #[allow(clippy::expect_used)]
        jsonschema::draft202012::new(schema()).expect("the generated configuration schema is valid")
    })
}

/// Whether YAML text looks like a configuration rather than a blueprint: its top level has
/// `sources`, `integrations` or `pipelines`.
pub fn looks_like_config(text: &str) -> bool {
    yaml::parse(text).is_ok_and(|document| {
        ["sources", "integrations", "pipelines"].iter().any(|key| document.value.get(key).is_some())
    })
}

/// `origin` as browsers send it in `Origin` (`scheme://host[:port]`, lower case), or `None` when it
/// is not one (a path, a query, no scheme).
fn canonical_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, rest) = origin.split_once("://")?;
    let valid_scheme = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    let valid_rest = !rest.is_empty()
        && rest.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b':' | b'[' | b']'));
    (valid_scheme && valid_rest).then(|| origin.to_ascii_lowercase())
}

/// Loads and checks the configuration at `path`, reading `${NAME}`s from the process environment.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let environment: HashMap<String, String> = std::env::vars().collect();
    load_with(path, &|name| environment.get(name).cloned())
}

/// Loads and checks the configuration at `path`, with `lookup` for environment variables.
pub fn load_with(path: &Path, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, Diagnostics> {
    load_within(path, lookup, &FileAccess::anywhere())
}

/// Loads and checks the configuration at `path`, reading it and the blueprints it names only where
/// `access` allows (`signal validate` on a file it did not write).
pub fn load_within(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    access: &FileAccess,
) -> Result<Config, Diagnostics> {
    let name = path.display().to_string();
    match access.read(path) {
        Ok(text) => check_within(&name, &text, path.parent().unwrap_or(Path::new("")), lookup, access),
        Err(refusal) => Err(Diagnostics(vec![refusal.diagnostic(
            name,
            "configuration",
            "check the path, or run `signal serve` without --config for the built-in defaults",
        )])),
    }
}

/// Checks configuration text named `name`; blueprint paths are relative to `base_dir`.
pub fn check(
    name: &str,
    text: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    check_within(name, text, base_dir, lookup, &FileAccess::anywhere())
}

fn check_within(
    name: &str,
    text: &str,
    base_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    access: &FileAccess,
) -> Result<Config, Diagnostics> {
    let mut checker = Checker {
        diagnostics: Vec::new(),
        unresolved: Vec::new(),
        refused: Vec::new(),
        declared: Default::default(),
        access: access.clone(),
    };
    let config = checker.check(name, text, base_dir, lookup);
    let mut diagnostics = checker.diagnostics;
    match config {
        Some(config) if diagnostics.is_empty() => Ok(config),
        _ => {
            diagnostics.sort_by(|a, b| {
                (a.file != name, &a.file, a.position, a.kind).cmp(&(
                    b.file != name,
                    &b.file,
                    b.position,
                    b.kind,
                ))
            });
            diagnostics
                .dedup_by(|a, b| a.file == b.file && a.position == b.position && a.message == b.message);
            Err(Diagnostics(diagnostics))
        }
    }
}

struct Checker {
    diagnostics: Vec<Diagnostic>,
    /// Values whose `${NAME}` could not be replaced: already reported, not checked again.
    unresolved: Vec<String>,
    /// Values the schema refused (already reported) and removed, so that the rest is still checked.
    refused: Vec<String>,
    /// The sources and integrations the file names, refused or not: what pipelines may refer to.
    declared: [Vec<String>; 2],
    /// Which blueprint files may be read.
    access: FileAccess,
}

impl Checker {
    fn check(
        &mut self,
        name: &str,
        text: &str,
        base_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Config> {
        let document = match yaml::parse(text) {
            Ok(document) => document,
            Err(problem) => {
                let context = FileContext { name, text, spans: &SpanIndex::default() };
                self.diagnostics.push(context.at(
                    problem.position,
                    DiagnosticKind::YamlSyntax,
                    problem.message,
                    problem.hint,
                ));
                return None;
            }
        };
        let context = FileContext { name, text, spans: &document.spans };
        for (_, problem) in &document.duplicates {
            self.diagnostics.push(context.at(
                problem.position,
                DiagnosticKind::DuplicateKey,
                problem.message.clone(),
                problem.hint.clone(),
            ));
        }
        let mut value = match document.value {
            Value::Null => Value::Object(Default::default()),
            value => value,
        };
        self.interpolate(&context, &mut value, String::new(), lookup);

        let check = SchemaCheck { schema: schema(), vocabulary: &WORDS };
        let mut refused = Vec::new();
        for error in validator().iter_errors(&value) {
            refused.extend(check.translate(&context, &error, &mut self.diagnostics));
        }
        // Every error at once: what the schema refused is taken out, and the rest is still checked —
        // a pipeline naming an integration that does not exist is reported beside a typo elsewhere.
        self.declared = ["sources", "integrations"].map(|section| {
            value.get(section).and_then(Value::as_object).map(|names| names.keys().cloned().collect()).unwrap_or_default()
        });
        let prunable = diagnostics::schema_check::prune(&mut value, refused.clone());
        self.refused = refused;
        prunable?;
        let file: ConfigFile = match serde_json::from_value(value) {
            Ok(file) => file,
            // A required value the schema refused is reported already.
            Err(_) if !self.refused.is_empty() => return None,
            Err(error) => {
                self.diagnostics.push(context.at(
                    Position { line: 1, column: 1, len: 1 },
                    DiagnosticKind::Schema,
                    format!("the configuration cannot be read: {error}"),
                    Some(WORDS.reference.into()),
                ));
                return None;
            }
        };
        self.resolve(&context, &file, base_dir)
    }

    /// Replaces `${NAME}` in every text value; `$${` stays a literal `${`.
    fn interpolate(
        &mut self,
        context: &FileContext<'_>,
        value: &mut Value,
        pointer: String,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) {
        match value {
            Value::String(text) if text.contains("${") => match substitute(text, lookup) {
                Ok(replaced) => *text = replaced,
                Err(missing) => {
                    self.unresolved.push(pointer.clone());
                    self.report_missing(context, &pointer, missing);
                }
            },
            Value::Array(items) => {
                for (index, item) in items.iter_mut().enumerate() {
                    self.interpolate(context, item, format!("{pointer}/{index}"), lookup);
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let child = format!("{pointer}/{}", escape_pointer_segment(key));
                    self.interpolate(context, item, child, lookup);
                }
            }
            _ => {}
        }
    }

    fn report_missing(&mut self, context: &FileContext<'_>, pointer: &str, missing: Missing) {
        let (kind, message, hint) = match missing {
            Missing::Variable(variable) => (
                DiagnosticKind::EnvVarMissing,
                format!("the environment variable `{variable}` is not set"),
                format!("set it before starting Signal, e.g. `export {variable}=...`"),
            ),
            Missing::Unclosed => (
                DiagnosticKind::InvalidValue,
                "`${` is not closed by `}`".to_owned(),
                "write `${NAME}` for an environment variable, or `$${` for a literal `${`".to_owned(),
            ),
        };
        self.diagnostics.push(context.value(pointer, kind, message, Some(hint)));
    }

    /// `wanted` is none of `names`: the closest one, if any, and the list.
    fn unknown_name(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        message: String,
        (wanted, names): (&str, &[&str]),
        listed_as: &str,
    ) {
        let suggestion = did_you_mean(wanted, names.iter().copied())
            .map(|close| format!("did you mean `{close}`? "))
            .unwrap_or_default();
        let hint = if names.is_empty() {
            format!("{listed_as}: none yet")
        } else {
            format!("{suggestion}{listed_as}: {}", names.join(", "))
        };
        self.diagnostics.push(context.value(pointer, DiagnosticKind::UnknownName, message, Some(hint)));
    }

    /// Whether the schema refused the value at `pointer` or something inside it.
    fn was_refused(&self, pointer: &str) -> bool {
        self.refused.iter().any(|refused| {
            refused == pointer || refused.strip_prefix(pointer).is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn invalid(&mut self, context: &FileContext<'_>, pointer: &str, message: String, hint: &str) {
        if self.unresolved.iter().any(|unresolved| unresolved == pointer) {
            return;
        }
        self.diagnostics.push(context.value(
            pointer,
            DiagnosticKind::InvalidValue,
            message,
            Some(hint.into()),
        ));
    }

    fn address(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        text: Option<&str>,
        default: &str,
    ) -> SocketAddr {
        let text = text.unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.invalid(
                context,
                pointer,
                format!("`{text}` is not an address to listen on"),
                "write HOST:PORT with an IP address, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    fn duration(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(text) = text else { return default };
        match parse_duration(text) {
            Some(duration) => duration,
            None => {
                self.invalid(
                    context,
                    pointer,
                    format!("`{text}` is not a duration"),
                    "write e.g. 30s, 10m, 6h or 1h 30m",
                );
                default
            }
        }
    }

    fn resolve(&mut self, context: &FileContext<'_>, file: &ConfigFile, base_dir: &Path) -> Option<Config> {
        let listen = self.address(context, "/listen", file.listen.as_deref(), defaults::LISTEN);
        let admin_listen =
            self.address(context, "/admin_listen", file.admin_listen.as_deref(), defaults::ADMIN_LISTEN);
        let (storage_engine, dedupe_window, retention) = self.storage(context, file, base_dir);
        let admin_token = self.admin_token(context, file, admin_listen);
        let collector = file.collector.clone().unwrap_or_default();
        let [header_timeout, idle_timeout, body_timeout, shutdown_grace] = [
            ("header_timeout", &collector.header_timeout, defaults::HEADER_TIMEOUT),
            ("idle_timeout", &collector.idle_timeout, defaults::IDLE_TIMEOUT),
            ("body_timeout", &collector.body_timeout, defaults::BODY_TIMEOUT),
            ("shutdown_grace", &collector.shutdown_grace, defaults::SHUTDOWN_GRACE),
        ]
        .map(|(name, text, default)| self.duration(context, &format!("/collector/{name}"), text.as_deref(), default));
        let delivery = file.delivery.clone().unwrap_or_default();
        let retry_window = self.duration(
            context,
            "/delivery/retry_window",
            delivery.retry_window.as_deref(),
            defaults::RETRY_WINDOW,
        );
        let timeout =
            self.duration(context, "/delivery/timeout", delivery.timeout.as_deref(), defaults::TIMEOUT);
        let log = file.log.clone().unwrap_or_default();

        let sources = self.sources(context, file);

        let mut integrations = Vec::new();
        for (name, integration) in &file.integrations {
            let pointer = format!("/integrations/{}", escape_pointer_segment(name));
            if self.was_refused(&pointer) {
                continue;
            }
            if let Some(built) = self.integration(context, &pointer, integration) {
                integrations.push(Integration {
                    name: name.clone(),
                    destination: built.destination,
                    keeps_objects: built.keeps_objects,
                });
            }
        }

        let mut pipelines = Vec::new();
        if file.pipelines.is_empty() {
            self.diagnostics.push(context.key(
                "/pipelines",
                DiagnosticKind::Schema,
                "no pipelines: events would be accepted and never delivered".into(),
                Some("add one, e.g. `pipelines: {web: {source: web, integration: NAME, preset: retail}}` with NAME a key of `integrations`".into()),
            ));
        }
        for (name, pipeline) in &file.pipelines {
            let pointer = format!("/pipelines/{}", escape_pointer_segment(name));
            if let Some(resolved) = self.pipeline(context, &pointer, name, pipeline, base_dir) {
                pipelines.push(resolved);
            }
        }

        Some(Config {
            listen,
            admin_listen,
            admin_token,
            storage: storage_engine,
            retention,
            dedupe_window,
            max_request_bytes: to_usize(collector.max_request_bytes, defaults::MAX_REQUEST_BYTES),
            max_event_bytes: to_usize(collector.max_event_bytes, defaults::MAX_EVENT_BYTES),
            max_batch_events: to_usize(collector.max_batch_events, defaults::MAX_BATCH_EVENTS),
            header_timeout,
            idle_timeout,
            body_timeout,
            max_connections: to_usize(collector.max_connections, defaults::MAX_CONNECTIONS),
            shutdown_grace,
            retry: RetryPolicy { window: retry_window, ..RetryPolicy::default() },
            timeout,
            concurrency: delivery.concurrency.map_or(defaults::CONCURRENCY, |n| n as usize),
            log_format: log.format.unwrap_or(LogFormat::Text),
            log_level: log.level.unwrap_or(LogLevel::Info),
            sources,
            integrations,
            pipelines,
        })
    }

    /// Where events are kept, how long a `message_id` is remembered, and how long records are.
    fn storage(
        &mut self,
        context: &FileContext<'_>,
        file: &ConfigFile,
        base_dir: &Path,
    ) -> (store::Storage, Duration, store::Retention) {
        let storage = file.storage.clone().unwrap_or_default();
        let sqlite_path = base_dir.join(storage.sqlite.as_deref().unwrap_or(defaults::SQLITE));
        let storage_engine = match &storage.postgres {
            None => store::Storage::Sqlite(sqlite_path),
            Some(postgres) => {
                if storage.sqlite.is_some() {
                    self.invalid(
                        context,
                        "/storage/postgres",
                        "`storage` names both an SQLite file and a PostgreSQL database".to_owned(),
                        "keep one: `sqlite` for one node, `postgres` for several",
                    );
                }
                if !postgres.url.starts_with("postgres://") && !postgres.url.starts_with("postgresql://") {
                    self.invalid(
                        context,
                        "/storage/postgres/url",
                        "the PostgreSQL URL does not start with `postgres://`".to_owned(),
                        "write postgres://USER:PASSWORD@HOST:PORT/DATABASE, or `${DATABASE_URL}` to take it from the environment",
                    );
                }
                store::Storage::Postgres {
                    url: secret::Secret::new(postgres.url.clone()),
                    max_connections: postgres.max_connections.map_or(defaults::POSTGRES_CONNECTIONS, |n| n as usize),
                }
            }
        };
        let dedupe_window = self.duration(
            context,
            "/storage/dedupe_window",
            storage.dedupe_window.as_deref(),
            defaults::DEDUPE_WINDOW,
        );
        let retention = storage.retention.clone().unwrap_or_default();
        let retention = store::Retention {
            max_age: Some(self.duration(
                context,
                "/storage/retention/max_age",
                retention.max_age.as_deref(),
                defaults::RETENTION_MAX_AGE,
            )),
            max_events: Some(retention.max_events.unwrap_or(defaults::RETENTION_MAX_EVENTS)),
        };
        (storage_engine, dedupe_window, retention)
    }

    /// The admin token, checked: long enough, and present when the admin listener is not on loopback.
    fn admin_token(
        &mut self,
        context: &FileContext<'_>,
        file: &ConfigFile,
        admin_listen: std::net::SocketAddr,
    ) -> Option<secret::Secret> {
        if let Some(token) = &file.admin_token
            && token.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            self.invalid(
                context,
                "/admin_token",
                format!(
                    "`admin_token` is {} characters long; it needs at least {MIN_ADMIN_TOKEN_CHARS}",
                    token.chars().count()
                ),
                "use a long random token, e.g. from `openssl rand -hex 16`, kept in the environment: `admin_token: ${SIGNAL_ADMIN_TOKEN}`",
            );
        }
        let admin_token = file.admin_token.clone().map(secret::Secret::new);
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            self.invalid(
                context,
                "/admin_listen",
                format!("`admin_listen` is {admin_listen}, not a loopback address, and there is no `admin_token`"),
                "the Event Debugger shows events with emails and phone numbers: set `admin_token: ${SIGNAL_ADMIN_TOKEN}` (at least 16 characters), or listen on 127.0.0.1",
            );
        }
        admin_token
    }

    /// The sources: each write key its own, origins and cookie domains checked.
    fn sources(&mut self, context: &FileContext<'_>, file: &ConfigFile) -> Vec<Source> {
        let mut sources = Vec::new();
        let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, source) in &file.sources {
            let pointer = format!("/sources/{}/write_key", escape_pointer_segment(name));
            if let Some(other) = keys.insert(source.write_key.as_str(), name) {
                self.invalid(
                    context,
                    &pointer,
                    format!("source `{name}` has the same write key as source `{other}`"),
                    "give each source its own write key, so that events are attributed to the right one",
                );
            }
            let at = format!("/sources/{}", escape_pointer_segment(name));
            let mut allowed_origins = Vec::new();
            for (index, origin) in source.allowed_origins.iter().flatten().enumerate() {
                match canonical_origin(origin) {
                    Some(origin) => allowed_origins.push(origin),
                    None => self.invalid(
                        context,
                        &format!("{at}/allowed_origins/{index}"),
                        // The value may come from the environment: its place is named, not its text.
                        "this is not an origin".into(),
                        "write a page's origin as the browser sends it: scheme, host and port only, e.g. https://www.shop.example",
                    ),
                }
            }
            let cookie = source.cookie.as_ref().map(|cookie| AnonymousCookie {
                domain: cookie.domain.clone().filter(|domain| {
                    let valid = !domain.is_empty()
                        && domain.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-'));
                    if !valid {
                        self.invalid(
                            context,
                            &format!("{at}/cookie/domain"),
                            "this is not a domain".into(),
                            "write the site's domain, e.g. shop.example, or leave `domain` out for the collector's host alone",
                        );
                    }
                    valid
                }),
                max_age: self.duration(context, &format!("{at}/cookie/max_age"), cookie.max_age.as_deref(), defaults::COOKIE_MAX_AGE),
                secure: cookie.secure.unwrap_or(true),
            });
            sources.push(Source {
                name: name.clone(),
                write_key: WriteKey::new(source.write_key.clone()),
                allowed_origins,
                cookie,
                honor_gpc: source.honor_gpc.unwrap_or(false),
            });
        }
        sources
    }

    fn integration(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        integration: &model::IntegrationConfig,
    ) -> Option<sender::Built> {
        let mut settings = integration.0.clone();
        // The schema allows only the registry's names in `type`.
        let kind = match settings.remove("type") {
            None => Some(destinations::default_kind()),
            Some(Value::String(name)) => destinations::kind(&name),
            Some(_) => None,
        };
        // The schema refuses any other `type` first; this only keeps the two in step.
        let Some(kind) = kind else {
            let names = destinations::names().join(", ");
            self.invalid(context, &format!("{pointer}/type"), "unknown destination type".into(), &format!("use one of: {names}"));
            return None;
        };
        match kind.build(&Value::Object(settings)) {
            Ok(built) => Some(built),
            Err(errors) => {
                for error in errors {
                    let at = if error.field.is_empty() {
                        pointer.to_owned()
                    } else {
                        format!("{pointer}/{}", escape_pointer_segment(error.field))
                    };
                    self.invalid(context, &at, error.message, &error.hint);
                }
                None
            }
        }
    }

    fn pipeline(
        &mut self,
        context: &FileContext<'_>,
        pointer: &str,
        name: &str,
        pipeline: &model::PipelineConfig,
        base_dir: &Path,
    ) -> Option<Pipeline> {
        let [declared_sources, declared_integrations] = self.declared.clone();
        let source_names: Vec<&str> = declared_sources.iter().map(String::as_str).collect();
        let integration_names: Vec<&str> = declared_integrations.iter().map(String::as_str).collect();
        for (field, wanted, names) in [
            ("source", &pipeline.source, source_names),
            ("integration", &pipeline.integration, integration_names),
        ] {
            if !names.contains(&wanted.as_str()) {
                self.unknown_name(
                    context,
                    &format!("{pointer}/{field}"),
                    format!("pipeline `{name}`: there is no {field} `{wanted}`"),
                    (wanted, &names),
                    &format!("the {field}s are"),
                );
            }
        }
        // The rest of a pipeline the schema refused in part would only report what follows from it.
        if self.was_refused(pointer) {
            return None;
        }
        let (compiled, blueprint_name) = match (&pipeline.preset, &pipeline.blueprint) {
            (Some(preset), None) => {
                (blueprint::compile_preset(preset.name())?, format!("preset {}", preset.name()))
            }
            (None, Some(path)) => {
                let full = base_dir.join(path);
                if !full.is_file() {
                    self.invalid(
                        context,
                        &format!("{pointer}/blueprint"),
                        format!("the blueprint `{path}` does not exist"),
                        "the path is relative to this configuration file; or use `preset: retail` or `preset: b2b-saas`",
                    );
                    return None;
                }
                (blueprint::compile_file_within(&full, &self.access), full.display().to_string())
            }
            (Some(_), Some(_)) | (None, None) => {
                self.diagnostics.push(context.key(
                    pointer,
                    DiagnosticKind::Schema,
                    format!("pipeline `{name}` needs exactly one of `preset` and `blueprint`"),
                    Some("write `preset: retail` (or `b2b-saas`), or `blueprint: path/to/file.yaml`".into()),
                ));
                return None;
            }
        };
        let blueprint = match compiled {
            Ok(blueprint) => blueprint,
            Err(diagnostics) => {
                self.diagnostics.extend(diagnostics.0);
                return None;
            }
        };
        for (index, event) in pipeline.enabled_events.iter().flatten().enumerate() {
            if !blueprint.maps(event) {
                let names: Vec<&str> = blueprint.event_names().collect();
                self.unknown_name(
                    context,
                    &format!("{pointer}/enabled_events/{index}"),
                    format!("`{event}` is not mapped by {blueprint_name}, so enabling it sends nothing"),
                    (event, &names),
                    "the blueprint maps",
                );
            }
        }
        let default_region = match pipeline.default_region.as_deref() {
            None => None,
            Some(code) => match PhoneRegion::parse(code) {
                Some(region) => Some(region),
                None => {
                    self.invalid(
                        context,
                        &format!("{pointer}/default_region"),
                        format!("`{code}` is not a region code"),
                        "use an ISO 3166 two-letter code such as GB or US",
                    );
                    None
                }
            },
        };
        Some(Pipeline {
            name: name.to_owned(),
            source: pipeline.source.clone(),
            integration: pipeline.integration.clone(),
            blueprint: Arc::new(blueprint),
            blueprint_name,
            enabled_events: pipeline.enabled_events.clone(),
            default_region,
        })
    }
}

fn to_usize(value: Option<u64>, default: usize) -> usize {
    value.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

enum Missing {
    Variable(String),
    Unclosed,
}

/// `${NAME}` → the variable's value; `$${` → `${`.
fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Missing> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(open) = after.strip_prefix("${") {
            let end = open.find('}').ok_or(Missing::Unclosed)?;
            let variable = &open[..end];
            out.push_str(&lookup(variable).ok_or_else(|| Missing::Variable(variable.to_owned()))?);
            rest = &open[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `30s`, `10m`, `6h`, `1h 30m` (or ISO 8601) → a positive duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let signed: jiff::SignedDuration = match text.parse() {
        Ok(signed) => signed,
        // Days (`7d`) are a calendar unit to jiff; here a day is 24 hours.
        Err(_) => text
            .parse::<jiff::Span>()
            .ok()?
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .ok()?,
    };
    Duration::try_from(signed).ok().filter(|duration| !duration.is_zero())
}

/// The configuration `signal serve` runs on without a file: one source with `write_key`, one
/// integration delivering to `destination`, and a pipeline with the Retail preset, everything else
/// at its default.
pub fn embedded(write_key: WriteKey, integration_name: &str, destination: Arc<dyn sender::Destination>) -> Config {
    // The preset is compiled from the copy built into the binary: it cannot fail unless the binary
    // itself is broken, which every test would show.
    #[allow(clippy::expect_used)]
    let blueprint = blueprint::compile_preset("retail")
        .expect("retail is a preset")
        .expect("the built-in retail preset compiles");
    #[allow(clippy::expect_used)]
    let address = |text: &str| text.parse::<SocketAddr>().expect("the default addresses parse");
    Config {
        listen: address(defaults::LISTEN),
        admin_listen: address(defaults::ADMIN_LISTEN),
        admin_token: None,
        storage: store::Storage::Sqlite(PathBuf::from(defaults::SQLITE)),
        retention: store::Retention {
            max_age: Some(defaults::RETENTION_MAX_AGE),
            max_events: Some(defaults::RETENTION_MAX_EVENTS),
        },
        dedupe_window: defaults::DEDUPE_WINDOW,
        max_request_bytes: defaults::MAX_REQUEST_BYTES,
        max_event_bytes: defaults::MAX_EVENT_BYTES,
        max_batch_events: defaults::MAX_BATCH_EVENTS,
        header_timeout: defaults::HEADER_TIMEOUT,
        idle_timeout: defaults::IDLE_TIMEOUT,
        body_timeout: defaults::BODY_TIMEOUT,
        max_connections: defaults::MAX_CONNECTIONS,
        shutdown_grace: defaults::SHUTDOWN_GRACE,
        retry: RetryPolicy { window: defaults::RETRY_WINDOW, ..RetryPolicy::default() },
        timeout: defaults::TIMEOUT,
        concurrency: defaults::CONCURRENCY,
        log_format: LogFormat::Text,
        log_level: LogLevel::Info,
        sources: vec![Source::new("default", write_key)],
        // The MoEngage variables name no object data type: flattened, as on most accounts.
        integrations: vec![Integration { name: integration_name.to_owned(), destination, keeps_objects: false }],
        pipelines: vec![Pipeline {
            name: "default".into(),
            source: "default".into(),
            integration: integration_name.to_owned(),
            blueprint: Arc::new(blueprint),
            blueprint_name: "preset retail".into(),
            enabled_events: None,
            default_region: None,
        }],
    }
}
