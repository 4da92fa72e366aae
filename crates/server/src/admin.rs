//! The admin listener's Event Debugger: `/debugger` (a page built into the binary), its API under
//! `/api/` — listings, one event in full, a live stream, replay and reload — and `/metrics`.
//!
//! Events hold emails and phone numbers. With `admin_token` set, the API and `/metrics` require it
//! as `Authorization: Bearer`; without one (loopback only, which the service enforces at start and
//! at every reload), requests must come from this machine and name it as their `Host`, so that a
//! web page cannot reach the API through DNS rebinding, and changes must be JSON, which a page on
//! another origin cannot send unasked.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use store::{Change, Detail, Listing, Queue, Requeue, Shown, State as Stored, Summary};
use tokio::sync::broadcast;

use crate::Shared;

/// The page, served as it is: no build step, no other file.
const PAGE: &str = include_str!("debugger.html");

/// The most events one listing returns.
pub const MAX_LIMIT: usize = 1000;

/// The most live streams open at once (debugger pages, `signal events --follow`): each turns every
/// change into a line of its own, so a crowd of them would slow intake.
pub const MAX_STREAMS: usize = 32;

/// Events queued again per step of a replay: each step is its own short commit.
const REPLAY_STEP: usize = 1000;

/// The debugger's routes, for the admin router.
pub fn router<Q: Queue + Clone>(shared: Arc<Shared<Q>>) -> Router<Arc<Shared<Q>>> {
    let guarded = Router::new()
        .route("/api/events", get(list::<Q>))
        .route("/api/events/stream", get(stream::<Q>))
        .route("/api/events/{id}", get(detail::<Q>))
        .route("/api/replay", post(replay::<Q>))
        .route("/api/reload", post(reload::<Q>))
        .route("/metrics", get(crate::metrics::<Q>))
        .layer(axum::middleware::from_fn_with_state(shared, guard::<Q>));
    Router::new().route("/debugger", get(page)).route("/debugger/", get(page)).merge(guarded)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // The page loads nothing from elsewhere and may not be framed by another site.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Checks the token, or — without one — that the request names this machine.
async fn guard<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, request: Request, next: Next) -> Response {
    let config = shared.config();
    match &config.admin_token {
        Some(token) => {
            let offered = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                // The scheme's name is case-insensitive (RFC 9110).
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token);
            if !offered.is_some_and(|offered| token.matches(offered.trim())) {
                let mut refused = error(
                    StatusCode::UNAUTHORIZED,
                    "the admin API needs `Authorization: Bearer TOKEN`, with the `admin_token` of Signal's configuration",
                );
                refused.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                return refused;
            }
        }
        None => {
            let from_here = request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .is_some_and(|peer| peer.0.ip().is_loopback());
            if !from_here || !names_this_machine(request.uri(), request.headers()) {
                return error(
                    StatusCode::FORBIDDEN,
                    "without an `admin_token`, the admin API answers only requests from this machine addressed to it (Host: localhost or a loopback address such as 127.0.0.1 or [::1])",
                );
            }
        }
    }
    if request.method() == axum::http::Method::POST && !is_json(request.headers()) {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send `Content-Type: application/json`");
    }
    next.run(request).await
}

/// Whether a request is addressed to this machine: one `Host` that names it, and, when the
/// request line names a host (`GET http://other/api/events`), that one names it too. A page
/// elsewhere that a DNS rebinding points at 127.0.0.1 names its own host, and is refused.
fn names_this_machine(uri: &axum::http::Uri, headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next().and_then(|value| value.to_str().ok()), hosts.next()) else {
        // None (HTTP/1.0 without a Host), or several: nothing to trust.
        return false;
    };
    is_local_name(host) && uri.authority().is_none_or(|authority| is_local_name(authority.as_str()))
}

fn is_local_name(host: &str) -> bool {
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json"))
}

/// A line of the listing, as the API and the stream give it.
pub fn summary_json(summary: &Summary) -> Value {
    json!({
        "id": summary.id,
        "received_at": time_text(summary.received_at_ms),
        "source": summary.source,
        "pipeline": summary.pipeline,
        "message_id": summary.message_id,
        "type": summary.labels.call_type,
        "event": summary.labels.event,
        "customer_id": summary.labels.customer_id,
        "state": Shown::of(summary.state).as_str(),
        "code": summary.code,
        "status": summary.status,
        "attempts": summary.attempts,
        "hint": summary.hint,
    })
}

/// One event in full. The event, the body and the answer are given as they were written — member
/// order kept — when they are JSON, else as text.
fn detail_json(detail: &Detail) -> Result<String, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct Full {
        #[serde(flatten)]
        summary: Value,
        payload: Written,
        body_sent: Option<Written>,
        attempt_log: Vec<Value>,
        response_body: Option<Written>,
        finished_at: Option<String>,
        latency_ms: Option<u64>,
    }
    let full = Full {
        summary: summary_json(&detail.summary),
        payload: Written::of(detail.payload.as_bytes()),
        body_sent: detail.body_sent.as_deref().map(Written::of),
        attempt_log: detail
            .attempt_log
            .iter()
            .map(|attempt| json!({"status": attempt.status, "latency_ms": attempt.latency_ms}))
            .collect(),
        response_body: detail.response_body.as_deref().map(Written::of),
        finished_at: detail.finished_at_ms.map(time_text),
        latency_ms: detail.latency_ms,
    };
    serde_json::to_string(&full)
}

/// JSON exactly as written, or text when it is not JSON (an answer cut short, a proxy's page).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Written {
    Json(Box<serde_json::value::RawValue>),
    Text(String),
}

impl Written {
    fn of(bytes: &[u8]) -> Written {
        let text = String::from_utf8_lossy(bytes).into_owned();
        match serde_json::from_str::<Box<serde_json::value::RawValue>>(&text) {
            Ok(raw) => Written::Json(raw),
            Err(_) => Written::Text(text),
        }
    }
}

fn time_text(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |time| format!("{:.3}", time),
    )
}

fn parse_time_param(name: &str, text: &str) -> Result<i64, Response> {
    blueprint::event::parse_time(text).map(|time| time.as_millisecond()).ok_or_else(|| {
        error(StatusCode::BAD_REQUEST, format!("`{name}` is `{text}`, not an RFC 3339 time such as 2026-11-28T10:15:00Z"))
    })
}

const LIST_PARAMETERS: [&str; 8] = ["state", "event", "customer_id", "pipeline", "since", "until", "limit", "cursor"];

/// Reads a listing's filters from the query; every mistake is named.
fn listing(parameters: &[(String, String)]) -> Result<Listing, Response> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in parameters {
        if !LIST_PARAMETERS.contains(&name.as_str()) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("unknown parameter `{name}`; the filters are {}", LIST_PARAMETERS.join(", ")),
            ));
        }
        if seen.contains(&name.as_str()) {
            return Err(error(StatusCode::BAD_REQUEST, format!("`{name}` is given twice; give each filter once")));
        }
        seen.push(name);
    }
    // Values are taken as written (a customer id may have spaces); empty is absent.
    let given = |name: &str| {
        parameters.iter().find(|(given, _)| given == name).map(|(_, value)| value.as_str()).filter(|value| !value.is_empty())
    };
    let state = given("state")
        .map(|text| {
            Shown::parse(text).ok_or_else(|| {
                let names: Vec<&str> = Shown::ALL.iter().map(|shown| shown.as_str()).collect();
                error(StatusCode::BAD_REQUEST, format!("`state` is `{text}`; it is one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let number = |name: &str| -> Result<Option<i64>, Response> {
        given(name)
            .map(|text| {
                text.trim().parse::<i64>().map_err(|_| {
                    error(StatusCode::BAD_REQUEST, format!("`{name}` is `{text}`, not a whole number"))
                })
            })
            .transpose()
    };
    let limit = match number("limit")? {
        None => 100,
        Some(limit) if limit < 1 || limit > MAX_LIMIT as i64 => {
            return Err(error(StatusCode::BAD_REQUEST, format!("`limit` is {limit}; it is 1 to {MAX_LIMIT}")));
        }
        Some(limit) => usize::try_from(limit).unwrap_or(MAX_LIMIT),
    };
    let since_ms = given("since").map(|text| parse_time_param("since", text)).transpose()?;
    let until_ms = given("until").map(|text| parse_time_param("until", text)).transpose()?;
    backwards(since_ms, until_ms)?;
    Ok(Listing {
        state,
        event: given("event").map(str::to_owned),
        customer_id: given("customer_id").map(str::to_owned),
        pipeline: given("pipeline").map(str::to_owned),
        since_ms,
        until_ms,
        before_id: number("cursor")?,
        limit,
    })
}

/// A `since` after its `until` matches nothing, surely by mistake.
fn backwards(since_ms: Option<i64>, until_ms: Option<i64>) -> Result<(), Response> {
    match (since_ms, until_ms) {
        (Some(since), Some(until)) if since >= until => Err(error(
            StatusCode::BAD_REQUEST,
            "`since` is not before `until`: no event could match (since is the earlier time)",
        )),
        _ => Ok(()),
    }
}

async fn list<Q: Queue>(
    State(shared): State<Arc<Shared<Q>>>,
    Query(parameters): Query<Vec<(String, String)>>,
) -> Response {
    let mut listing = match listing(&parameters) {
        Ok(listing) => listing,
        Err(refused) => return refused,
    };
    let limit = listing.limit;
    // One more than asked: whether there is a next page, without an empty one at the end.
    listing.limit += 1;
    match shared.queue.list(listing).await {
        Ok(mut lines) => {
            let more = lines.len() > limit;
            lines.truncate(limit);
            let next_cursor = more.then(|| lines.last().map(|line| line.id.to_string())).flatten();
            let events: Vec<Value> = lines.iter().map(summary_json).collect();
            axum::Json(json!({"events": events, "next_cursor": next_cursor})).into_response()
        }
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string()),
    }
}

async fn detail<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, format!("`{id}` is not an event id (a whole number)"));
    };
    match shared.queue.detail(id).await {
        Ok(Some(detail)) => match detail_json(&detail) {
            Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
            Err(failure) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("the event could not be written as JSON: {failure}")),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no event {id}: it never was, or retention has pruned it")),
        Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string()),
    }
}

/// Whether a stream line passes the listing's filters (the stream takes the same ones, but for
/// times and cursor).
fn passes(listing: &Listing, summary: &Summary) -> bool {
    listing.state.is_none_or(|state| Shown::of(summary.state) == state)
        && listing.event.as_ref().is_none_or(|event| summary.labels.event.as_ref() == Some(event))
        && listing.customer_id.as_ref().is_none_or(|customer| summary.labels.customer_id.as_ref() == Some(customer))
        && listing.pipeline.as_ref().is_none_or(|pipeline| &summary.pipeline == pipeline)
}

async fn stream<Q: Queue>(
    State(shared): State<Arc<Shared<Q>>>,
    Query(parameters): Query<Vec<(String, String)>>,
) -> Response {
    let listing = match listing(&parameters) {
        Ok(listing) => listing,
        Err(refused) => return refused,
    };
    let Ok(permit) = shared.streams.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} live streams are open already (each debugger page and `signal events --follow` holds one): close one, or list without following"),
        );
    };
    let receiver = shared.queue.subscribe();
    let stopping = shared.stopping.clone();
    let lines = futures_util::stream::unfold((receiver, listing, stopping, permit), |(mut receiver, listing, mut stopping, permit)| async move {
        loop {
            // A stream never ends by itself: it ends when the service stops.
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = stopping.wait_for(|stop| *stop) => return None,
            };
            let line = match received {
                Ok(Change::Line(summary)) if passes(&listing, &summary) => {
                    SseEvent::default().event("record").data(summary_json(&summary).to_string())
                }
                Ok(Change::Line(_)) => continue,
                Ok(Change::Untold(missed)) => {
                    SseEvent::default().event("lagged").data(json!({"missed": missed}).to_string())
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    SseEvent::default().event("lagged").data(json!({"missed": missed}).to_string())
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, Infallible>(line), (receiver, listing, stopping, permit)));
        }
    });
    let mut response = Sse::new(lines)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive"))
        .into_response();
    // Proxies such as nginx would otherwise hold the lines back.
    response.headers_mut().insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    response
}

/// `POST /api/replay`: `{"state": "failed" | "paused", "pipeline", "since", "until", "limit",
/// "after"}`. With `limit`, one step of at most that many; `after` (from the previous step's answer)
/// continues the same replay, so an event that fails again meanwhile is not queued twice.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    state: String,
    pipeline: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u64>,
    after: Option<i64>,
}

/// The largest replay request read, and how long it may take to arrive.
const REPLAY_BODY_BYTES: usize = 16 * 1024;
const REPLAY_BODY_TIME: Duration = Duration::from_secs(10);

async fn replay<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, request: Request) -> Response {
    let body = match tokio::time::timeout(REPLAY_BODY_TIME, axum::body::to_bytes(request.into_body(), REPLAY_BODY_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, format!("a replay request is at most {REPLAY_BODY_BYTES} bytes"));
        }
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "the replay request did not arrive in whole within 10 s"),
    };
    let request: ReplayRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the replay request is not `{{\"state\": \"failed\"}}` (with optional pipeline, since, until, limit, after): {problem}"),
            );
        }
    };
    let state = match request.state.as_str() {
        "failed" => Stored::Failed,
        "paused" => Stored::Paused,
        other => {
            return error(StatusCode::BAD_REQUEST, format!("`state` is `{other}`; replay takes `failed` or `paused`"));
        }
    };
    let times = (
        request.since.as_deref().map(|text| parse_time_param("since", text)).transpose(),
        request.until.as_deref().map(|text| parse_time_param("until", text)).transpose(),
    );
    let (since_ms, until_ms) = match times {
        (Ok(since), Ok(until)) => (since, until),
        (Err(refused), _) | (_, Err(refused)) => return refused,
    };
    if let Err(refused) = backwards(since_ms, until_ms) {
        return refused;
    }
    let at_most = match request.limit {
        Some(limit) if limit < 1 || limit > MAX_LIMIT as u64 => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("`limit` is {limit}; it is 1 to {MAX_LIMIT}, or left out to replay every matching event"),
            );
        }
        limit => limit.map(|limit| usize::try_from(limit).unwrap_or(MAX_LIMIT)),
    };
    let mut requeue =
        Requeue { state, pipeline: request.pipeline.clone(), since_ms, until_ms, after_id: request.after, limit: 0 };
    let matching = match shared.queue.count_requeue(requeue.clone()).await {
        Ok(matching) => matching,
        Err(failure) => return error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string()),
    };
    let mut total = 0u64;
    loop {
        requeue.limit = at_most.map_or(REPLAY_STEP, |at_most| at_most.saturating_sub(total as usize).min(REPLAY_STEP));
        if requeue.limit == 0 {
            break;
        }
        match shared.queue.requeue(requeue.clone()).await {
            Ok(done) => {
                total += done.requeued;
                if done.requeued == 0 {
                    break;
                }
                shared.wake_workers();
                requeue.after_id = done.last_id.or(requeue.after_id);
            }
            Err(failure) => return error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string()),
        }
    }
    if total > 0 {
        tracing::info!(state = %request.state, requeued = total, "events queued again by a replay");
    }
    let remaining = matching.saturating_sub(total);
    axum::Json(json!({"requeued": total, "remaining": remaining, "after": requeue.after_id})).into_response()
}

async fn reload<Q: Queue>(State(shared): State<Arc<Shared<Q>>>) -> Response {
    match shared.reload().await {
        Ok(said) => axum::Json(json!({"reloaded": true, "message": said})).into_response(),
        Err(diagnostics) => error(StatusCode::UNPROCESSABLE_ENTITY, diagnostics),
    }
}
