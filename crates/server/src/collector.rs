//! The collector: `POST /v1/track`, `/v1/page`, `/v1/identify` and `/v1/batch`, in the event format
//! of Signal and of Segment- and RudderStack-style SDKs. The write key is the HTTP Basic username.
//! Every refusal is a JSON error that says which event and which field; a 200 is sent only once the
//! events are committed to the queue.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use store::{NewEvent, Queue};

use crate::Shared;

/// Which endpoint a request came to: it gives events without a `type` their type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/track`
    Track,
    /// `/v1/page`
    Page,
    /// `/v1/identify`
    Identify,
    /// `/v1/batch`: `{"batch": [...]}` or a JSON array.
    Batch,
}

impl Endpoint {
    fn implied_type(self) -> Option<&'static str> {
        match self {
            Endpoint::Track => Some("track"),
            Endpoint::Page => Some("page"),
            Endpoint::Identify => Some("identify"),
            Endpoint::Batch => None,
        }
    }
}

/// A refused request: its status and the JSON error body.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
    event_index: Option<usize>,
    field: Option<&'static str>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), event_index: None, field: None }
    }

    fn at(status: StatusCode, index: usize, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), event_index: Some(index), field }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(self.message));
        if let Some(index) = self.event_index {
            error.insert("event_index".into(), json!(index));
        }
        if let Some(field) = self.field {
            error.insert("field".into(), json!(field));
        }
        (self.status, axum::Json(json!({"success": false, "error": error}))).into_response()
    }
}

/// Allows browser tags on any site to send events: preflights are answered, answers carry
/// `Access-Control-Allow-Origin`.
pub async fn cors(request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let mut response =
        if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(request).await };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, content-encoding"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

/// Handles one collector request.
pub async fn ingest<Q: Queue>(
    endpoint: Endpoint,
    State(shared): State<Arc<Shared<Q>>>,
    request: Request,
) -> Response {
    match accept(endpoint, &shared, request).await {
        Ok(response) => response,
        Err(refusal) => {
            shared.metrics.rejected(refusal.status.as_u16());
            refusal.into_response()
        }
    }
}

async fn accept<Q: Queue>(
    endpoint: Endpoint,
    shared: &Shared<Q>,
    request: Request,
) -> Result<Response, Refusal> {
    // A wrong key in the header is refused before the body is read.
    let header_source =
        header_write_key(request.headers())?.map(|key| source_of(shared, &key)).transpose()?;
    let gzip = content_encoding(request.headers())?;
    let limit = shared.config.max_request_bytes;
    let body = read_body(request.into_body(), limit).await?;
    let text = if gzip { gunzip(&body, limit)? } else { body.to_vec() };
    let mut document: Value = serde_json::from_slice(&text).map_err(|error| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {error}"))
    })?;
    // Browsers sending with `navigator.sendBeacon` cannot set headers: the key may be in the body.
    let body_key = document
        .as_object_mut()
        .and_then(|object| object.remove("writeKey").or_else(|| object.remove("write_key")));
    let source = match (header_source, body_key) {
        (Some(source), _) => source,
        (None, Some(Value::String(key))) => source_of(shared, &key)?,
        (None, _) => return Err(no_write_key()),
    };
    let events = match (endpoint, document) {
        (Endpoint::Batch, Value::Object(mut object)) => match object.remove("batch") {
            Some(Value::Array(events)) => events,
            Some(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "`batch` must be a list of events")),
            None => {
                return Err(Refusal::new(StatusCode::BAD_REQUEST, "a batch is `{\"batch\": [event, ...]}`"));
            }
        },
        (Endpoint::Batch, Value::Array(events)) => events,
        (Endpoint::Batch, _) => {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, "a batch is `{\"batch\": [event, ...]}`"));
        }
        (_, single) => vec![single],
    };
    if events.len() > shared.config.max_batch_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} events in one batch; at most {} are accepted",
                events.len(),
                shared.config.max_batch_events
            ),
        ));
    }
    let received_at_ms = jiff::Timestamp::now().as_millisecond();
    let pipelines: Vec<&str> = shared
        .config
        .pipelines
        .iter()
        .filter(|pipeline| pipeline.source == source)
        .map(|pipeline| pipeline.name.as_str())
        .collect();
    let mut queued = Vec::with_capacity(events.len() * pipelines.len().max(1));
    let count = events.len();
    for (index, event) in events.into_iter().enumerate() {
        let (message_id, payload) = check_event(index, event, endpoint, shared.config.max_event_bytes)?;
        for pipeline in &pipelines {
            queued.push(NewEvent {
                source: source.to_owned(),
                pipeline: (*pipeline).to_owned(),
                message_id: message_id.clone(),
                received_at_ms,
                payload: payload.clone(),
            });
        }
    }
    let enqueued = shared.queue.enqueue(queued, shared.config.dedupe_window).await.map_err(|error| {
        tracing::error!(%error, "events could not be stored; the sender should retry");
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the events could not be stored; try again")
    })?;
    // The queue counts rows, one per event and pipeline.
    let duplicates = enqueued.duplicates / pipelines.len().max(1);
    shared.metrics.received(source, count as u64);
    shared.metrics.duplicates(source, duplicates as u64);
    if enqueued.queued > 0 {
        shared.wake_workers();
    }
    let body = json!({"success": true, "accepted": count, "duplicates": duplicates});
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// Reads the body, at most `limit` bytes. Past the limit the rest is read and thrown away — up to a
/// bound — so that the client, still sending, receives the 413 instead of a broken connection.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, Refusal> {
    use futures_util::StreamExt as _;
    let drain_bound = limit.saturating_mul(4).max(16 * 1024 * 1024);
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            Refusal::new(StatusCode::BAD_REQUEST, format!("the request body could not be read: {error}"))
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > drain_bound {
            break;
        }
    }
    if total > limit {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {limit} bytes"),
        ));
    }
    Ok(Bytes::from(kept))
}

fn no_write_key() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "no write key: send it as the HTTP Basic username (Authorization: Basic base64(WRITE_KEY:)), or as `writeKey` in the body",
    )
}

/// The Basic username, when there is an `Authorization` header.
fn header_write_key(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let encoded =
        value.to_str().ok().and_then(|value| value.strip_prefix("Basic ")).ok_or_else(no_write_key)?;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| no_write_key())?;
    let decoded = String::from_utf8(decoded).map_err(|_| no_write_key())?;
    Ok(Some(decoded.split_once(':').map_or(decoded.as_str(), |(user, _)| user).to_owned()))
}

/// The source whose write key this is.
fn source_of<'a, Q: Queue>(shared: &'a Shared<Q>, key: &str) -> Result<&'a str, Refusal> {
    shared
        .config
        .sources
        .iter()
        .find(|source| source.write_key.expose() == key)
        .map(|source| source.name.as_str())
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unknown write key: check the source's write key in Signal's configuration",
            )
        })
}

fn content_encoding(headers: &HeaderMap) -> Result<bool, Refusal> {
    match headers.get(header::CONTENT_ENCODING).map(|value| value.to_str().map(str::trim)) {
        None => Ok(false),
        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("gzip") => Ok(true),
        Some(Ok(encoding)) if encoding.eq_ignore_ascii_case("identity") || encoding.is_empty() => Ok(false),
        Some(_) => {
            Err(Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Encoding must be gzip or absent"))
        }
    }
}

/// Decompresses at most `limit` bytes: a small body that inflates without end (a gzip bomb) is
/// refused once it passes the limit, never held whole.
fn gunzip(body: &Bytes, limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|error| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("the gzip body cannot be decompressed: {error}"))
    })?;
    if out.len() > limit {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {limit} bytes once decompressed"),
        ));
    }
    Ok(out)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn generated_message_id() -> String {
    let now = jiff::Timestamp::now().as_nanosecond();
    format!("signal-{now:x}-{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Checks one event's fields and returns its `message_id` and the JSON to queue.
fn check_event(
    index: usize,
    event: Value,
    endpoint: Endpoint,
    max_event_bytes: usize,
) -> Result<(String, String), Refusal> {
    let bad = |field: &'static str, message: String| {
        Refusal::at(StatusCode::BAD_REQUEST, index, Some(field), message)
    };
    let Value::Object(mut event) = event else {
        return Err(Refusal::at(
            StatusCode::BAD_REQUEST,
            index,
            None,
            format!("event {index} is not a JSON object"),
        ));
    };
    match (event.get("type"), endpoint.implied_type()) {
        (Some(Value::String(_)), _) => {}
        (None, Some(implied)) => {
            event.insert("type".into(), Value::String(implied.into()));
        }
        (None, None) if event.contains_key("event") => {
            event.insert("type".into(), Value::String("track".into()));
        }
        (None, None) => {
            return Err(bad("type", format!("event {index} has no `type` (track, page or identify)")));
        }
        (Some(_), _) => return Err(bad("type", format!("event {index}: `type` must be text"))),
    }
    if event.get("type").and_then(Value::as_str) == Some("track") {
        match event.get("event") {
            Some(Value::String(name)) if !name.is_empty() => {}
            Some(Value::String(_)) | None => {
                return Err(bad("event", format!("event {index} is a track call without an `event` name")));
            }
            Some(_) => return Err(bad("event", format!("event {index}: `event` must be text"))),
        }
    }
    for (field, alias) in [("user_id", "userId"), ("anonymous_id", "anonymousId")] {
        for name in [field, alias] {
            if let Some(value) = event.get(name)
                && !(value.is_string() || value.is_number() || value.is_null())
            {
                return Err(bad(field, format!("event {index}: `{name}` must be text or a number")));
            }
        }
    }
    for field in ["properties", "traits", "context"] {
        if let Some(value) = event.get(field)
            && !(value.is_object() || value.is_null())
        {
            return Err(bad(field, format!("event {index}: `{field}` must be an object")));
        }
    }
    if let Some(value) = event.get("timestamp") {
        let valid = value.as_str().is_some_and(|text| text.parse::<jiff::Timestamp>().is_ok());
        if !valid {
            return Err(bad(
                "timestamp",
                format!("event {index}: `timestamp` must be an RFC 3339 time, e.g. 2026-07-01T09:00:00Z"),
            ));
        }
    }
    let message_id = match event.get("message_id").or_else(|| event.get("messageId")) {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            let id = generated_message_id();
            event.insert("message_id".into(), Value::String(id.clone()));
            id
        }
        Some(_) => return Err(bad("message_id", format!("event {index}: `message_id` must be text"))),
    };
    let payload = Value::Object(event).to_string();
    if payload.len() > max_event_bytes {
        return Err(Refusal::at(
            StatusCode::PAYLOAD_TOO_LARGE,
            index,
            None,
            format!("event {index} is {} bytes; at most {max_event_bytes} are accepted", payload.len()),
        ));
    }
    Ok((message_id, payload))
}

/// Answers every other path with a JSON 404.
pub async fn not_found() -> Response {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; events go to POST /v1/track, /v1/page, /v1/identify or /v1/batch",
    )
    .into_response()
}
