//! A MoEngage emulator for integrators and tests: the paths of the Track Event, customer and merge
//! APIs, Basic auth, answers, bodies and limits of the real API (one limit per workspace over all
//! three), faults on demand (500s, 429s with `Retry-After`, slow answers,
//! dropped connections), the last request bodies it accepted, and read-back endpoints that show,
//! for each `customer_id`, the profile and the actions as MoEngage keeps them — the document's
//! "confirm the action appears under the user's activity" without a MoEngage account. What is
//! kept follows MoEngage's data tracking policy (see [`kept_attributes`]), so a test can compare
//! what was sent (`/requests`) with what was kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use moengage::{
    ApiKey, EVENTS_PER_MINUTE, MAX_ARRAY_ITEMS, MAX_ATTRIBUTES, MAX_BODY_BYTES, MAX_NAME_CHARS, MAX_VALUE_CHARS,
    is_url,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How many accepted request bodies are kept per workspace for `/sandbox/workspaces/{id}/requests`.
pub const KEPT_REQUESTS: usize = 10_000;

/// Faults to inject, each a probability from 0 to 1 per request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer 500.
    pub error_rate: f64,
    /// Answer 429 with `Retry-After`.
    pub throttle_rate: f64,
    /// The `Retry-After` of injected 429s, in seconds.
    pub retry_after_secs: u64,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Drop the connection without a complete answer: half of these before the request is
    /// accepted, half after it was stored — the case where a sender cannot know, retries, and the
    /// event arrives twice.
    pub drop_rate: f64,
    /// Draw the faults from this seed, the same sequence every run; `None`: a new one each run.
    pub seed: Option<u64>,
    /// Fault the same request body at most this many times; after that it goes through. Models
    /// faults that pass, so that a test of retries cannot fail by an unlucky run of draws.
    pub max_faults_per_body: Option<u32>,
}

/// What the sandbox accepts.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Workspaces and their Data API keys.
    pub workspaces: Vec<(String, ApiKey)>,
    /// Workspaces whose account is suspended: their requests, correctly signed, get 403.
    pub suspended: Vec<String>,
    /// Workspaces with MoEngage's object data type: they keep object and array-of-objects
    /// attributes, which the others ignore.
    pub object_data: Vec<String>,
    /// Events accepted per workspace per `window` before 429.
    pub per_window: u32,
    /// The window `per_window` counts in: a minute, as MoEngage's; shorter to test limits quickly.
    pub window: Duration,
    /// Faults to inject.
    pub faults: Faults,
}

impl Default for SandboxConfig {
    /// One workspace, `sandbox`, with the key `sandbox-key`, at MoEngage's own limit.
    fn default() -> Self {
        SandboxConfig {
            workspaces: vec![("sandbox".into(), ApiKey::new("sandbox-key"))],
            suspended: Vec::new(),
            object_data: Vec::new(),
            per_window: EVENTS_PER_MINUTE,
            window: Duration::from_secs(60),
            faults: Faults::default(),
        }
    }
}

/// A customer as MoEngage keeps them.
#[derive(Default)]
struct Profile {
    user_identifiers: serde_json::Map<String, Value>,
    attributes: serde_json::Map<String, Value>,
    actions: Vec<Value>,
    /// The users merged into this one, oldest first.
    merged_users: Vec<String>,
    /// Devices registered through the device API, as sent (`device_id` and `attributes`).
    devices: Vec<Value>,
}

/// The APIs the sandbox answers, as MoEngage does; one limit per workspace covers them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Event,
    Customer,
    Merge,
    Device,
}

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    events: u32,
}

struct Shared {
    config: SandboxConfig,
    /// (workspace, customer_id) → the profile and the actions, as kept.
    store: Mutex<HashMap<(String, String), Profile>>,
    windows: Mutex<HashMap<String, Window>>,
    /// workspace → the last accepted request bodies, oldest first, at most [`KEPT_REQUESTS`].
    bodies: Mutex<HashMap<String, std::collections::VecDeque<Value>>>,
    jitter: Mutex<sender::Jitter>,
    /// How many times each request body (by hash) was faulted, for `max_faults_per_body`.
    faulted: std::sync::Mutex<HashMap<u64, u32>>,
    requests: AtomicU64,
    accepted: AtomicU64,
    accepted_customers: AtomicU64,
    accepted_merges: AtomicU64,
    accepted_devices: AtomicU64,
    dropped_before_accept: AtomicU64,
    dropped_after_accept: AtomicU64,
    by_status: Mutex<HashMap<u16, u64>>,
}

impl Shared {
    /// Whether this body may be faulted once more (and counts it if so).
    fn may_fault(&self, body: &[u8]) -> bool {
        let Some(most) = self.config.faults.max_faults_per_body else { return true };
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        let mut faulted = self.faulted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A test tool's memory: a million bodies' counts, then a fresh start.
        if faulted.len() > 1_000_000 {
            faulted.clear();
        }
        let count = faulted.entry(hasher.finish()).or_insert(0);
        if *count >= most {
            return false;
        }
        *count += 1;
        true
    }
}

/// The sandbox's HTTP routes, ready to serve.
pub fn router(config: SandboxConfig) -> Router {
    let shared = Arc::new(Shared {
        jitter: Mutex::new(config.faults.seed.map_or_else(sender::Jitter::from_entropy, sender::Jitter::seeded)),
        config,
        store: Mutex::default(),
        windows: Mutex::default(),
        bodies: Mutex::default(),
        faulted: std::sync::Mutex::default(),
        requests: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        accepted_customers: AtomicU64::new(0),
        accepted_merges: AtomicU64::new(0),
        accepted_devices: AtomicU64::new(0),
        dropped_before_accept: AtomicU64::new(0),
        dropped_after_accept: AtomicU64::new(0),
        by_status: Mutex::default(),
    });
    Router::new()
        .route("/v1/event/{workspace_id}", post(track))
        .route("/v1/customer/merge", post(merge))
        .route("/v1/customer/{workspace_id}", post(customer_update))
        .route("/v1/device/{workspace_id}", post(device_update))
        .route("/sandbox/workspaces/{workspace_id}/merges", get(merges))
        .route("/sandbox/workspaces/{workspace_id}/customers/{customer_id}", get(customer))
        .route("/sandbox/workspaces/{workspace_id}/customers/{customer_id}/actions", get(actions))
        .route("/sandbox/workspaces/{workspace_id}/requests", get(requests))
        .route("/sandbox/stats", get(stats))
        .fallback(not_found)
        // Bodies over 128 KB get MoEngage's own 413; this bound only keeps memory in check.
        .layer(DefaultBodyLimit::max(8 * 1024 * 1024))
        .with_state(shared)
}

/// Serves the sandbox on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: SandboxConfig) -> std::io::Result<()> {
    axum::serve(listener, router(config)).await
}

/// Starts the sandbox on a free loopback port in the background and returns its base URL, e.g.
/// `http://127.0.0.1:41234`: the quickest way to test against it.
pub async fn spawn_on_loopback(config: SandboxConfig) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve(listener, config));
    Ok(format!("http://{address}"))
}

/// Serves the sandbox on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    config: SandboxConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(config)).with_graceful_shutdown(shutdown).await
}

fn fail(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({
        "status": "fail",
        "error": {"message": message, "type": kind, "request_id": request_id()},
    });
    (status, axum::Json(body)).into_response()
}

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("sandbox-{:08}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn not_found() -> Response {
    fail(StatusCode::NOT_FOUND, "NotFound", "The requested resource was not found.")
}

async fn track(
    State(shared): State<Arc<Shared>>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    counted(&shared, Api::Event, &workspace_id, &headers, &body).await
}

async fn customer_update(
    State(shared): State<Arc<Shared>>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    counted(&shared, Api::Customer, &workspace_id, &headers, &body).await
}

async fn device_update(
    State(shared): State<Arc<Shared>>,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    counted(&shared, Api::Device, &workspace_id, &headers, &body).await
}

#[derive(Deserialize)]
struct MergeQuery {
    app_id: Option<String>,
}

async fn merge(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<MergeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // MoEngage names the workspace in `app_id` here; without it no key can match.
    let workspace_id = query.app_id.unwrap_or_default();
    counted(&shared, Api::Merge, &workspace_id, &headers, &body).await
}

/// Answers one request, counted in `/sandbox/stats`.
async fn counted(shared: &Shared, api: Api, workspace_id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let response = answer(shared, api, workspace_id, headers, body).await;
    if response.extensions().get::<Dropped>().is_none() {
        *shared.by_status.lock().await.entry(response.status().as_u16()).or_default() += 1;
    }
    response
}

/// Marks a response whose connection is dropped instead of answered.
#[derive(Clone, Copy)]
struct Dropped;

/// A response whose body fails at once, so the server abandons the connection: the client gets no
/// complete answer.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped (injected)"))
    });
    let mut response = Response::new(axum::body::Body::from_stream(failing));
    response.extensions_mut().insert(Dropped);
    response
}

async fn answer(shared: &Shared, api: Api, workspace_id: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let faults = &shared.config.faults;
    if !faults.delay.is_zero() {
        tokio::time::sleep(faults.delay).await;
    }
    if !authorised(&shared.config, workspace_id, headers) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "App Secret key mismatch. Please check the Workspace ID and Data API key.",
        );
    }
    if shared.config.suspended.iter().any(|id| id == workspace_id) {
        return fail(StatusCode::FORBIDDEN, "Forbidden", "This account is suspended or blocked.");
    }
    let json_content =
        headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
            value.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_content {
        return fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    if body.len() > MAX_BODY_BYTES {
        return fail(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", "Payload size exceeds 128 KB");
    }
    let drop_after_accept = {
        let mut jitter = shared.jitter.lock().await;
        let (dropped, after_accept) = (jitter.fraction() < faults.drop_rate, jitter.fraction() < 0.5);
        let (throttle, error) = (jitter.fraction() < faults.throttle_rate, jitter.fraction() < faults.error_rate);
        drop(jitter);
        let may_fault = (dropped || throttle || error) && shared.may_fault(body);
        if may_fault && dropped && !after_accept {
            shared.dropped_before_accept.fetch_add(1, Ordering::Relaxed);
            return dropped_connection();
        }
        if may_fault && throttle {
            return throttled(faults.retry_after_secs);
        }
        if may_fault && error {
            return fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Internal server error (injected).",
            );
        }
        may_fault && dropped && after_accept
    };
    let payload: Value = match serde_json::from_slice(body) {
        Ok(payload) => payload,
        Err(error) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                &format!("Invalid JSON payload: {error}"),
            );
        }
    };
    let accepted = match api {
        Api::Event => accept_event(shared, workspace_id, body, payload).await,
        Api::Customer => accept_customer(shared, workspace_id, body, payload).await,
        Api::Merge => accept_merge(shared, workspace_id, payload).await,
        Api::Device => accept_device(shared, workspace_id, payload).await,
    };
    if let Err(refused) = accepted {
        return refused;
    }
    if drop_after_accept {
        shared.dropped_after_accept.fetch_add(1, Ordering::Relaxed);
        return dropped_connection();
    }
    let body = json!({
        "status": "success",
        "message": "Your request has been accepted and will be processed soon.",
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Keeps an accepted request body for `/sandbox/workspaces/{id}/requests`.
async fn keep_body(shared: &Shared, workspace_id: &str, payload: Value) {
    let mut bodies = shared.bodies.lock().await;
    let kept = bodies.entry(workspace_id.to_owned()).or_default();
    if kept.len() == KEPT_REQUESTS {
        kept.pop_front();
    }
    kept.push_back(payload);
}

/// A non-empty string member, or MoEngage's 400 naming it.
fn required_text(payload: &Value, name: &str) -> Result<String, Response> {
    match payload.get(name).and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Ok(text.to_owned()),
        _ => Err(fail(StatusCode::BAD_REQUEST, "MissingAttributeError", &format!("{name} is not found in the payload"))),
    }
}

/// The 429 of a workspace over its limit, counting `requests` more.
async fn within_limit(shared: &Shared, workspace_id: &str, requests: usize) -> Result<(), Response> {
    match over_limit(shared, workspace_id, requests).await {
        Some(wait) => Err(throttled((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))),
        None => Ok(()),
    }
}

/// The customer API: `{"type":"customer","customer_id":...,"attributes":{...}}` sets the profile's
/// attributes, held to the data tracking policy as an event's are.
async fn accept_customer(shared: &Shared, workspace_id: &str, body: &[u8], payload: Value) -> Result<(), Response> {
    if payload.get("type").and_then(Value::as_str) != Some("customer") {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "type must be `customer` for the customer API"));
    }
    let customer_id = required_text(&payload, "customer_id")?;
    if payload.get("attributes").is_some_and(|attributes| !attributes.is_object()) {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "attributes must be an object"));
    }
    within_limit(shared, workspace_id, 1).await?;
    shared.accepted_customers.fetch_add(1, Ordering::Relaxed);
    let object_data = shared.config.object_data.iter().any(|id| id == workspace_id);
    let kept = kept_request(body, &payload, object_data);
    {
        let mut store = shared.store.lock().await;
        let profile = store.entry((workspace_id.to_owned(), customer_id)).or_default();
        profile.attributes.extend(kept.attributes);
    }
    keep_body(shared, workspace_id, payload).await;
    Ok(())
}

/// The merge API: `{"merge_data":[{"merged_user":...,"retained_user":...}]}` moves each merged
/// user's actions and the attributes the retained user lacks to the retained user, and removes the
/// merged one.
async fn accept_merge(shared: &Shared, workspace_id: &str, payload: Value) -> Result<(), Response> {
    let pairs = match payload.get("merge_data").and_then(Value::as_array) {
        Some(pairs) if !pairs.is_empty() => pairs,
        _ => return Err(fail(StatusCode::BAD_REQUEST, "MissingAttributeError", "merge_data is not found in the payload")),
    };
    let mut merges = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let merged = required_text(pair, "merged_user")?;
        let retained = required_text(pair, "retained_user")?;
        if merged == retained {
            return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "merged_user and retained_user are the same user"));
        }
        merges.push((merged, retained));
    }
    within_limit(shared, workspace_id, merges.len()).await?;
    shared.accepted_merges.fetch_add(merges.len() as u64, Ordering::Relaxed);
    {
        let mut store = shared.store.lock().await;
        for (merged, retained) in merges {
            let old = store.remove(&(workspace_id.to_owned(), merged.clone())).unwrap_or_default();
            let profile = store.entry((workspace_id.to_owned(), retained)).or_default();
            for (name, value) in old.user_identifiers {
                profile.user_identifiers.entry(name).or_insert(value);
            }
            for (name, value) in old.attributes {
                profile.attributes.entry(name).or_insert(value);
            }
            profile.actions.extend(old.actions);
            profile.merged_users.extend(old.merged_users);
            profile.merged_users.push(merged);
        }
    }
    keep_body(shared, workspace_id, payload).await;
    Ok(())
}

/// The device API: `{"type":"device","customer_id":...,"device_id":...,"attributes":{"platform":...,
/// "push_id":...}}` adds or updates a device of an existing customer (MoEngage creates devices for
/// existing users only); a device with the same `device_id` is updated, one without is new.
async fn accept_device(shared: &Shared, workspace_id: &str, payload: Value) -> Result<(), Response> {
    if payload.get("type").and_then(Value::as_str) != Some("device") {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "type must be `device` for the device API"));
    }
    let customer_id = required_text(&payload, "customer_id")?;
    let Some(attributes) = payload.get("attributes").and_then(Value::as_object) else {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "attributes must be an object"));
    };
    let platform = attributes.get("platform").and_then(Value::as_str).unwrap_or_default();
    if !["ANDROID", "iOS", "web"].contains(&platform) {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "attributes.platform must be ANDROID, iOS or web"));
    }
    if attributes.get("push_id").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(fail(StatusCode::BAD_REQUEST, "MissingAttributeError", "push_id is not found in the payload"));
    }
    within_limit(shared, workspace_id, 1).await?;
    {
        let mut store = shared.store.lock().await;
        let Some(profile) = store.get_mut(&(workspace_id.to_owned(), customer_id)) else {
            return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "devices can be created for existing users only"));
        };
        let device = json!({"device_id": payload.get("device_id").cloned().unwrap_or(Value::Null), "attributes": attributes});
        let same = |kept: &Value| !device["device_id"].is_null() && kept["device_id"] == device["device_id"];
        match profile.devices.iter_mut().find(|kept| same(kept)) {
            Some(kept) => *kept = device,
            None => profile.devices.push(device),
        }
    }
    shared.accepted_devices.fetch_add(1, Ordering::Relaxed);
    keep_body(shared, workspace_id, payload).await;
    Ok(())
}

/// The Track Event API.
async fn accept_event(shared: &Shared, workspace_id: &str, body: &[u8], payload: Value) -> Result<(), Response> {
    let customer_id = required_text(&payload, "customer_id")?;
    let actions = match payload.get("actions").and_then(Value::as_array) {
        Some(actions) if !actions.is_empty() => actions.clone(),
        _ => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "MissingAttributeError",
                "actions is not found in the payload",
            ));
        }
    };
    if actions.iter().any(|action| action.get("action").and_then(Value::as_str).is_none_or(str::is_empty)) {
        return Err(fail(StatusCode::BAD_REQUEST, "ValidationError", "every action needs an `action` name"));
    }
    within_limit(shared, workspace_id, actions.len()).await?;
    shared.accepted.fetch_add(actions.len() as u64, Ordering::Relaxed);
    let object_data = shared.config.object_data.iter().any(|id| id == workspace_id);
    let kept = kept_request(body, &payload, object_data);
    {
        let mut store = shared.store.lock().await;
        let profile = store.entry((workspace_id.to_owned(), customer_id)).or_default();
        profile.user_identifiers.extend(kept.user_identifiers);
        profile.attributes.extend(kept.attributes);
        profile.actions.extend(kept.actions);
    }
    keep_body(shared, workspace_id, payload).await;
    Ok(())
}

fn throttled(retry_after_secs: u64) -> Response {
    let mut response = fail(
        StatusCode::TOO_MANY_REQUESTS,
        "RateLimitExceeded",
        "Rate limits for customers exceeded. Please Try After Some Time",
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts `events` against the workspace's window; the wait until the window ends when over.
async fn over_limit(shared: &Shared, workspace_id: &str, events: usize) -> Option<Duration> {
    let now = Instant::now();
    let mut windows = shared.windows.lock().await;
    let window = windows.entry(workspace_id.to_owned()).or_default();
    let length = shared.config.window;
    let started = match window.started {
        Some(started) if now.duration_since(started) < length => started,
        _ => {
            window.events = 0;
            now
        }
    };
    window.started = Some(started);
    let events = u32::try_from(events).unwrap_or(u32::MAX);
    if window.events.saturating_add(events) > shared.config.per_window {
        return Some(length.saturating_sub(now.duration_since(started)));
    }
    window.events += events;
    None
}

fn authorised(config: &SandboxConfig, workspace_id: &str, headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(pair) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, key)) = pair.split_once(':') else {
        return false;
    };
    user == workspace_id && config.workspaces.iter().any(|(id, known)| id == user && known.expose() == key)
}

async fn actions(
    State(shared): State<Arc<Shared>>,
    Path((workspace_id, customer_id)): Path<(String, String)>,
) -> Response {
    let store = shared.store.lock().await;
    let actions = store
        .get(&(workspace_id.clone(), customer_id.clone()))
        .map(|profile| profile.actions.clone())
        .unwrap_or_default();
    axum::Json(json!({"workspace_id": workspace_id, "customer_id": customer_id, "actions": actions}))
        .into_response()
}

async fn customer(
    State(shared): State<Arc<Shared>>,
    Path((workspace_id, customer_id)): Path<(String, String)>,
) -> Response {
    let store = shared.store.lock().await;
    let Some(profile) = store.get(&(workspace_id.clone(), customer_id.clone())) else {
        return fail(StatusCode::NOT_FOUND, "NotFound", "No such customer in this workspace.");
    };
    axum::Json(json!({
        "workspace_id": workspace_id,
        "customer_id": customer_id,
        "user_identifiers": profile.user_identifiers,
        "attributes": profile.attributes,
        "actions": profile.actions,
        "merged_users": profile.merged_users,
        "devices": profile.devices,
    }))
    .into_response()
}

async fn merges(State(shared): State<Arc<Shared>>, Path(workspace_id): Path<String>) -> Response {
    let store = shared.store.lock().await;
    let mut merges: Vec<Value> = store
        .iter()
        .filter(|((workspace, _), profile)| *workspace == workspace_id && !profile.merged_users.is_empty())
        .map(|((_, customer_id), profile)| json!({"retained_user": customer_id, "merged_users": profile.merged_users}))
        .collect();
    merges.sort_by(|a, b| a["retained_user"].as_str().cmp(&b["retained_user"].as_str()));
    axum::Json(json!({"workspace_id": workspace_id, "merges": merges})).into_response()
}

/// An object's members in the order they were written: what MoEngage keeps of an event's
/// attributes depends on it (the first 100).
#[derive(Debug, Default)]
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[derive(Deserialize, Default)]
struct OrderedRequest {
    #[serde(default)]
    attributes: Option<Ordered>,
    #[serde(default)]
    actions: Vec<OrderedAction>,
}

#[derive(Deserialize, Default)]
struct OrderedAction {
    #[serde(default)]
    attributes: Option<Ordered>,
}

/// What MoEngage keeps of one accepted request.
struct Kept {
    user_identifiers: serde_json::Map<String, Value>,
    attributes: serde_json::Map<String, Value>,
    actions: Vec<Value>,
}

fn kept_request(body: &[u8], payload: &Value, object_data: bool) -> Kept {
    let ordered: OrderedRequest = serde_json::from_slice(body).unwrap_or_default();
    let user_identifiers = payload.get("user_identifiers").and_then(Value::as_object).cloned().unwrap_or_default();
    let attributes = ordered.attributes.map(|members| kept_attributes(&members.0, object_data)).unwrap_or_default();
    let actions = payload
        .get("actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, action)| {
            let mut kept = action.clone();
            if let Some(object) = kept.as_object_mut() {
                if let Some(name) = object.get("action").and_then(Value::as_str) {
                    let name = cut(&name.replace('.', " "), MAX_NAME_CHARS);
                    object.insert("action".into(), Value::String(name));
                }
                let members = ordered.actions.get(index).and_then(|action| action.attributes.as_ref());
                if let Some(members) = members {
                    object.insert("attributes".into(), Value::Object(kept_attributes(&members.0, object_data)));
                }
            }
            kept
        })
        .collect();
    Kept { user_identifiers, attributes, actions }
}

/// A request body as MoEngage keeps it: its root `attributes` and each action's name and
/// attributes held to MoEngage's data tracking policy, the rest as sent. `None` when the body is not
/// a JSON object.
pub fn kept_body(body: &[u8], object_data: bool) -> Option<Value> {
    let mut payload: Value = serde_json::from_slice(body).ok()?;
    let kept = kept_request(body, &payload, object_data);
    let object = payload.as_object_mut()?;
    if object.contains_key("attributes") {
        object.insert("attributes".into(), Value::Object(kept.attributes));
    }
    object.insert("actions".into(), Value::Array(kept.actions));
    Some(payload)
}

fn cut(text: &str, characters: usize) -> String {
    text.chars().take(characters).collect()
}

/// What MoEngage keeps of attributes written in this order (its data tracking policy): the first
/// 100 names, each cut to 200 characters; strings cut to 512 characters, but a URL over 512
/// ignored; arrays of one kind of value only, cut to 50 elements; objects and arrays of objects
/// only with `object_data` (dictionary values are otherwise rejected).
pub fn kept_attributes(members: &[(String, Value)], object_data: bool) -> serde_json::Map<String, Value> {
    let mut kept = serde_json::Map::new();
    for (name, value) in members {
        let name = cut(name, MAX_NAME_CHARS);
        if kept.len() >= MAX_ATTRIBUTES && !kept.contains_key(&name) {
            continue;
        }
        if let Some(value) = kept_value(value, object_data) {
            kept.insert(name, value);
        }
    }
    kept
}

fn kept_string(text: &str) -> Option<Value> {
    if text.chars().count() <= MAX_VALUE_CHARS {
        return Some(Value::String(text.to_owned()));
    }
    (!is_url(text)).then(|| Value::String(cut(text, MAX_VALUE_CHARS)))
}

fn kept_value(value: &Value, object_data: bool) -> Option<Value> {
    match value {
        Value::String(text) => kept_string(text),
        Value::Object(_) => object_data.then(|| value.clone()),
        Value::Array(items) => {
            let kind = |item: &Value| std::mem::discriminant(item);
            let Some(first) = items.first() else { return Some(value.clone()) };
            if items.iter().any(|item| kind(item) != kind(first)) || first.is_array() || first.is_null() {
                return None;
            }
            if first.is_object() && !object_data {
                return None;
            }
            let kept = items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => kept_string(text),
                    other => Some(other.clone()),
                })
                .take(MAX_ARRAY_ITEMS)
                .collect();
            Some(Value::Array(kept))
        }
        _ => Some(value.clone()),
    }
}

async fn requests(State(shared): State<Arc<Shared>>, Path(workspace_id): Path<String>) -> Response {
    let bodies = shared.bodies.lock().await;
    let kept: Vec<&Value> = bodies.get(&workspace_id).map(|kept| kept.iter().collect()).unwrap_or_default();
    axum::Json(json!({"workspace_id": workspace_id, "requests": kept})).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let by_status: HashMap<String, u64> =
        shared.by_status.lock().await.iter().map(|(status, count)| (status.to_string(), *count)).collect();
    axum::Json(json!({
        "requests": shared.requests.load(Ordering::Relaxed),
        "accepted_actions": shared.accepted.load(Ordering::Relaxed),
        "accepted_customer_updates": shared.accepted_customers.load(Ordering::Relaxed),
        "accepted_merges": shared.accepted_merges.load(Ordering::Relaxed),
        "accepted_devices": shared.accepted_devices.load(Ordering::Relaxed),
        "dropped_before_accept": shared.dropped_before_accept.load(Ordering::Relaxed),
        "dropped_after_accept": shared.dropped_after_accept.load(Ordering::Relaxed),
        "by_status": by_status,
    }))
    .into_response()
}
