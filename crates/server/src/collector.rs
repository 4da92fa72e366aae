//! The collector: the event endpoints of Signal and of the browser and server SDKs that sites already
//! use — Segment's (`/v1/track` … and analytics.js's short `/v1/t` …) and RudderStack's (`/v1/…` and
//! `/beacon/v1/batch`). The write key is the HTTP Basic username, a `writeKey` query parameter, or
//! `writeKey` in the body. Every refusal is a JSON error that says which event and which field, and
//! is counted and logged; a 200 is sent only once the events are committed to the queue.

use std::collections::HashSet;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use blueprint::event::{CallType, Event};
use blueprint::scan::{self, Document, Raw};
use serde_json::{Value, json};
use store::{NewEvent, Queue};

use crate::Shared;
use crate::refusals::{PathClass, Refusal};
use crate::write_key::{header_write_key, no_write_key, query_write_key, source_of};

/// Which endpoint a request came to: it gives events without a `type` their type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/track`, `/v1/t`
    Track,
    /// `/v1/page`, `/v1/p`
    Page,
    /// `/v1/screen`, `/v1/s`
    Screen,
    /// `/v1/identify`, `/v1/i`
    Identify,
    /// `/v1/alias`, `/v1/a`
    Alias,
    /// `/v1/group`, `/v1/g`
    Group,
    /// `/v1/batch`, `/v1/b`, `/v1/import`, `/beacon/v1/batch`: `{"batch": [...]}` or a JSON array.
    Batch,
}

impl Endpoint {
    fn implied_type(self) -> Option<CallType> {
        match self {
            Endpoint::Track => Some(CallType::Track),
            Endpoint::Page => Some(CallType::Page),
            Endpoint::Screen => Some(CallType::Screen),
            Endpoint::Identify => Some(CallType::Identify),
            Endpoint::Alias => Some(CallType::Alias),
            Endpoint::Group => Some(CallType::Group),
            Endpoint::Batch => None,
        }
    }
}

/// Every path that takes events, and what it takes. Segment's analytics.js posts each call to the
/// first letter of its type (`/v1/t`) and batches to `/v1/b`; RudderStack's JavaScript SDK posts to
/// `/v1/{type}` and `/v1/batch`, and `navigator.sendBeacon` to `/beacon/v1/batch?writeKey=…`.
pub const EVENT_PATHS: &[(&str, Endpoint)] = &[
    ("/v1/track", Endpoint::Track),
    ("/v1/t", Endpoint::Track),
    ("/v1/page", Endpoint::Page),
    ("/v1/p", Endpoint::Page),
    ("/v1/screen", Endpoint::Screen),
    ("/v1/s", Endpoint::Screen),
    ("/v1/identify", Endpoint::Identify),
    ("/v1/i", Endpoint::Identify),
    ("/v1/alias", Endpoint::Alias),
    ("/v1/a", Endpoint::Alias),
    ("/v1/group", Endpoint::Group),
    ("/v1/g", Endpoint::Group),
    ("/v1/batch", Endpoint::Batch),
    ("/v1/b", Endpoint::Batch),
    ("/v1/import", Endpoint::Batch),
    ("/beacon/v1/batch", Endpoint::Batch),
];

/// analytics.js posts its own delivery metrics here; they are answered and not kept.
pub const TELEMETRY_PATH: &str = "/v1/m";

/// The headers a preflight allows when the browser names none.
const DEFAULT_ALLOWED_HEADERS: &str = "authorization, content-type, content-encoding";

/// CORS for tags on any site. A preflight to an event path is allowed with the headers the SDK asks
/// for — Segment's `X-Retry-Count`, RudderStack's `AnonymousId`, `SentAt` and `Rsa-*` — and every
/// answer carries `Access-Control-Allow-Origin: *` with `Retry-After` readable. No credentials are
/// needed: the write key is not a cookie.
pub async fn cors<Q: Queue>(
    State(shared): State<Arc<Shared<Q>>>,
    request: Request,
    next: Next,
) -> Response {
    let credentialed = credentialed_origin(&shared, &request);
    let mut response = if request.method() != Method::OPTIONS {
        let mut response = next.run(request).await;
        response.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
        response
    } else {
        match preflight(&request) {
            Ok(response) => response,
            Err((class, refusal)) => {
                shared.refusals.record(&shared.metrics, class, &request, &refusal);
                refusal.into_response()
            }
        }
    };
    let headers = response.headers_mut();
    // A handler that answered with credentials itself (the tag's id) keeps its answer.
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        match credentialed {
            Some(origin) => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
                headers.append(header::VARY, HeaderValue::from_static("origin"));
            }
            None => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
        }
    }
    response
}

/// The request's `Origin` when the source its write key names lists it in `allowed_origins`: such a
/// page may send with credentials (the anonymous-id cookie), and is answered with its own origin,
/// never `*`. Only a key outside the body counts: a body is not read for CORS.
fn credentialed_origin<Q: Queue>(shared: &Shared<Q>, request: &Request) -> Option<HeaderValue> {
    let origin = request.headers().get(header::ORIGIN)?;
    let origin_text = origin.to_str().ok()?;
    let key = match header_write_key(request.headers()) {
        Ok(Some(key)) => key,
        _ => query_write_key(request.uri())?,
    };
    let config = shared.config();
    let source = config.sources.iter().find(|source| source.write_key.matches(&key))?;
    source.allows_origin(origin_text).then(|| origin.clone())
}

/// Answers an `OPTIONS` request, or says why it is refused.
fn preflight(request: &Request) -> Result<Response, (PathClass, Refusal)> {
    let path = request.uri().path();
    if endpoint_of(path).is_none() && path != TELEMETRY_PATH && path != crate::tag::ID_PATH {
        return Err((PathClass::Unknown, unknown_path()));
    }
    let headers = request.headers();
    if let Some(method) = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)
        && method.as_bytes() != b"POST"
    {
        return Err((
            PathClass::Preflight,
            Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("events are sent with POST, not {}", String::from_utf8_lossy(method.as_bytes())),
            ),
        ));
    }
    let allowed = match headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        None => HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS),
        Some(requested) if requested.len() <= 1024 => requested.clone(),
        Some(_) => {
            return Err((
                PathClass::Preflight,
                Refusal::new(StatusCode::BAD_REQUEST, "the preflight asks for over 1 KB of headers"),
            ));
        }
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    out.insert(header::VARY, HeaderValue::from_static("access-control-request-headers"));
    // Chromium asks before a public page may call a collector on a private network.
    if headers.contains_key("access-control-request-private-network") {
        out.insert("access-control-allow-private-network", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The endpoint at `path`, if it takes events.
pub fn endpoint_of(path: &str) -> Option<Endpoint> {
    EVENT_PATHS.iter().find(|(known, _)| *known == path).map(|(_, endpoint)| *endpoint)
}

/// Handles one collector request.
pub async fn ingest<Q: Queue>(
    endpoint: Endpoint,
    State(shared): State<Arc<Shared<Q>>>,
    request: Request,
) -> Response {
    let (method, path, origin) = crate::refusals::describe(&request);
    match accept(endpoint, &shared, request).await {
        Ok(response) => response,
        Err(refusal) => {
            shared.refusals.record_parts(&shared.metrics, PathClass::Events, &method, &path, origin.as_deref(), &refusal);
            refusal.into_response()
        }
    }
}

/// Answers analytics.js's own delivery metrics (`/v1/m`) without keeping them, so its reports
/// neither fail nor fill the logs.
pub async fn telemetry<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, request: Request) -> Response {
    if request.method() != Method::POST {
        let refusal = Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "telemetry is sent with POST");
        shared.refusals.record(&shared.metrics, PathClass::Unknown, &request, &refusal);
        return refusal.into_response();
    }
    (StatusCode::OK, axum::Json(json!({"success": true}))).into_response()
}

async fn accept<Q: Queue>(
    endpoint: Endpoint,
    shared: &Shared<Q>,
    request: Request,
) -> Result<Response, Refusal> {
    if request.method() != Method::POST {
        return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "events are sent with POST"));
    }
    // One configuration for the whole request, even if a reload swaps it meanwhile.
    let config = shared.config();
    let (parts, body) = request.into_parts();
    let outside = outside_the_body(&config, &parts)?;
    let text = read_text(body, &config, &outside).await?;
    let text = std::str::from_utf8(&text).map_err(|error| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: it is not UTF-8 text ({error})"))
    })?;
    let document = scan::document(text).map_err(|error| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {error}"))
    })?;
    let members = match &document {
        Document::Object(members) => members.as_slice(),
        _ => &[],
    };
    let member = |names: &[&str]| members.iter().rev().find(|(name, _)| names.contains(&name.as_ref()));
    // Browsers sending with `navigator.sendBeacon` cannot set headers: the key may be in the body.
    let body_key = member(&["writeKey", "write_key"]).map(|(_, value)| value.as_str());
    let source = match (outside.key_source, body_key) {
        (Some(source), _) => source,
        (None, Some(Some(key))) => source_of(&config, &key)?,
        (None, _) => return Err(no_write_key()),
    };
    if source.honor_gpc && outside.global_privacy_control {
        // The visitor asked not to be tracked: nothing is kept, and the sender has nothing to retry.
        let body = json!({"success": true, "accepted": 0, "duplicates": 0, "rejected": [], "kept": false});
        return Ok((StatusCode::OK, axum::Json(body)).into_response());
    }
    // The anonymous id of the request's last event goes into the source's cookie, for pages it
    // allows (or its own: a request without an `Origin`).
    let cookie =
        source.cookie.as_ref().filter(|_| outside.origin.as_deref().is_none_or(|origin| source.allows_origin(origin)));
    let source = source.name.as_str();
    let events = events_of(endpoint, &document, text, member(&["batch"]), config.max_batch_events)?;
    let intake = Intake {
        endpoint,
        received_at: jiff::Timestamp::now(),
        // A batch's `sentAt` (Segment, RudderStack) or RudderStack's `SentAt` header dates every event.
        sent_at: member(&["sentAt", "sent_at"])
            .and_then(|(_, value)| value.as_str())
            .and_then(|text| blueprint::event::parse_time(&text))
            .or(outside.header_sent_at),
        max_event_bytes: config.max_event_bytes,
        wants_anonymous_id: cookie.is_some(),
    };
    let pipelines: Vec<&str> = config
        .pipelines
        .iter()
        .filter(|pipeline| pipeline.source == source)
        .map(|pipeline| pipeline.name.as_str())
        .collect();
    let count = events.len();
    let judged = judge(events, &intake, source, &pipelines)?;
    let enqueued = shared.queue.enqueue(judged.queued, config.dedupe_window).await;
    shared.store_wrote(&enqueued);
    let enqueued = enqueued.map_err(|error| {
        tracing::error!(%error, "events could not be stored; the sender should retry");
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "the events could not be stored; try again")
    })?;
    // Counted once they are committed: a 503 records nothing. One row per event and pipeline.
    let recorded_per_pipeline = (enqueued.recorded / pipelines.len().max(1)) as u64;
    for pipeline in &pipelines {
        shared.metrics.dropped(pipeline, blueprint::DropCode::InvalidEvent.as_str(), recorded_per_pipeline);
    }
    // The queue counts rows, one per event and pipeline.
    let duplicates = enqueued.duplicates / pipelines.len().max(1) + judged.repeated_in_request;
    let accepted = count - judged.rejected.len();
    shared.metrics.received(source, accepted as u64);
    shared.metrics.duplicates(source, duplicates as u64);
    shared.metrics.invalid(source, judged.rejected.len() as u64);
    if enqueued.queued > 0 {
        shared.wake_workers();
    }
    let body = json!({"success": true, "accepted": accepted, "duplicates": duplicates, "rejected": judged.rejected});
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let (Some(cookie), Some(id)) = (cookie, judged.last_anonymous_id)
        && let Ok(value) = HeaderValue::from_str(&cookie.set_cookie(&id))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// What a request says outside its body.
struct Outside<'c> {
    /// The source a write key in a header or the query names: a wrong one is refused before the
    /// body is read.
    key_source: Option<&'c config::Source>,
    origin: Option<String>,
    /// `Sec-GPC: 1`: the visitor asks not to be tracked.
    global_privacy_control: bool,
    /// RudderStack's `SentAt` header.
    header_sent_at: Option<jiff::Timestamp>,
    gzip: bool,
}

fn outside_the_body<'c>(config: &'c config::Config, parts: &axum::http::request::Parts) -> Result<Outside<'c>, Refusal> {
    let headers = &parts.headers;
    let query_key = query_write_key(&parts.uri);
    let outside_key = header_write_key(headers)?.or(query_key);
    Ok(Outside {
        key_source: outside_key.map(|key| source_of(config, &key)).transpose()?,
        origin: headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()).map(str::to_owned),
        global_privacy_control: headers.get("sec-gpc").is_some_and(|value| value.as_bytes() == b"1"),
        header_sent_at: headers
            .get("sentat")
            .and_then(|value| value.to_str().ok())
            .and_then(blueprint::event::parse_time),
        gzip: content_encoding(headers)?,
    })
}

/// The body, inflated when it is gzip: at most `max_request_bytes`, or, without a key outside the
/// body, only a beacon's worth looking for one (an unauthenticated flood costs little memory).
async fn read_text(body: axum::body::Body, config: &config::Config, outside: &Outside<'_>) -> Result<Vec<u8>, Refusal> {
    let limit = config.max_request_bytes;
    let reading = Reading {
        limit,
        stall: config.body_timeout,
        keyless_limit: (outside.key_source.is_none()).then_some(KEYLESS_BODY_BYTES.min(limit)),
    };
    let body = read_body(body, &reading).await?;
    match (outside.gzip, reading.keyless_limit) {
        (false, _) => Ok(body.to_vec()),
        (true, None) => gunzip(&body, limit),
        // Without a key outside the body, the key must be in its first 64 KB once inflated too.
        (true, Some(keyless)) => gunzip(&body, keyless).map_err(|refusal| {
            if refusal.status() == StatusCode::PAYLOAD_TOO_LARGE { keyless_refusal(keyless) } else { refusal }
        }),
    }
}

/// The events a request holds: a batch's list (`{"batch": [...]}` or a bare array) for the batch
/// endpoint, else the body as one event. `batch` is the body's `batch` member, if any.
fn events_of<'t>(
    endpoint: Endpoint,
    document: &Document<'t>,
    text: &'t str,
    batch: Option<&(std::borrow::Cow<'t, str>, Raw<'t>)>,
    max_batch_events: usize,
) -> Result<Vec<Raw<'t>>, Refusal> {
    let not_a_batch = || Refusal::new(StatusCode::BAD_REQUEST, "a batch is `{\"batch\": [event, ...]}`");
    let events: Vec<Raw<'t>> = match (endpoint, document) {
        (Endpoint::Batch, Document::Object(_)) => match batch {
            Some((_, list)) if list.kind() == scan::JsonKind::Array => list.items().map_err(|error| {
                Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {error}"))
            })?,
            Some(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "`batch` must be a list of events")),
            None => return Err(not_a_batch()),
        },
        (Endpoint::Batch, Document::Array(events)) => events.clone(),
        (Endpoint::Batch, Document::Other(_)) => return Err(not_a_batch()),
        (_, _) => vec![Raw::trusted(text.trim())],
    };
    if events.len() > max_batch_events {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} events in one batch; at most {max_batch_events} are accepted", events.len()),
        ));
    }
    Ok(events)
}

/// A request's events judged: what to queue, for each of the source's pipelines, and what was
/// refused.
struct Judged {
    queued: Vec<NewEvent>,
    /// The batch's events refused one by one, as the answer lists them.
    rejected: Vec<Value>,
    /// Events whose `message_id` came earlier in the same request.
    repeated_in_request: usize,
    /// The anonymous id of the last event that had one (for the source's cookie).
    last_anonymous_id: Option<String>,
}

/// Reads each event: a batch is judged event by event (SDKs do not retry a 400, so one bad event
/// must not cost the good ones); a single call stands or falls alone.
fn judge(events: Vec<Raw<'_>>, intake: &Intake, source: &str, pipelines: &[&str]) -> Result<Judged, Refusal> {
    let judged_one_by_one = intake.endpoint == Endpoint::Batch;
    let mut judged = Judged {
        queued: Vec::with_capacity(events.len() * pipelines.len().max(1)),
        rejected: Vec::new(),
        repeated_in_request: 0,
        last_anonymous_id: None,
    };
    let mut seen_in_request: HashSet<String> = HashSet::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let (message_id, payload, labels, dropped) = match check_event(index, event.get(), intake) {
            Ok(Checked { message_id, payload, labels, anonymous_id }) => {
                judged.last_anonymous_id = anonymous_id.or(judged.last_anonymous_id);
                (message_id, payload, labels, None)
            }
            // An event over the size limit is refused alone too, and not kept: it is too large.
            Err(refusal) if judged_one_by_one => {
                let message = refusal.reason;
                judged.rejected.push(json!({"event_index": index, "field": refusal.field, "message": message}));
                // Recorded (without its write key) as dropped with `invalid_event` and the reader's
                // words, beside the others' fates — never queued, so a flood of them delays nothing.
                let payload = without_write_key(event);
                if payload.len() > intake.max_event_bytes {
                    continue;
                }
                let code = blueprint::DropCode::InvalidEvent.as_str().to_owned();
                let dropped = store::Dropped { code, detail: message };
                (generated_message_id(), payload, store::Labels::default(), Some(dropped))
            }
            Err(refusal) => return Err(Refusal::at(refusal.status, index, refusal.field, refusal.answer)),
        };
        if !seen_in_request.insert(message_id.clone()) {
            judged.repeated_in_request += 1;
            continue;
        }
        for pipeline in pipelines {
            judged.queued.push(NewEvent {
                source: source.to_owned(),
                pipeline: (*pipeline).to_owned(),
                message_id: message_id.clone(),
                received_at_ms: intake.received_at.as_millisecond(),
                payload: payload.clone(),
                labels: labels.clone(),
                dropped: dropped.clone(),
            });
        }
    }
    Ok(judged)
}

/// An event the reader refused, as it is kept for the record: its members without a write key
/// (as written otherwise), or the value itself when it is not an object.
fn without_write_key(event: Raw<'_>) -> String {
    let Ok(members) = event.members() else { return event.get().to_owned() };
    let mut out = Vec::with_capacity(event.get().len());
    out.push(b'{');
    for (name, value) in members.iter().filter(|(name, _)| !matches!(name.as_ref(), "writeKey" | "write_key")) {
        if out.len() > 1 {
            out.push(b',');
        }
        blueprint::event::write_str(&mut out, name);
        out.push(b':');
        value.write_compact(&mut out);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// What every event of one request shares.
struct Intake {
    endpoint: Endpoint,
    received_at: jiff::Timestamp,
    /// When the SDK sent the request, by its own clock.
    sent_at: Option<jiff::Timestamp>,
    max_event_bytes: usize,
    /// Whether each event's anonymous id is wanted (for the source's cookie).
    wants_anonymous_id: bool,
}

/// An event the reader accepted, ready to queue.
struct Checked {
    message_id: String,
    payload: String,
    labels: store::Labels,
    /// Its anonymous id, when it is wanted and fit for a cookie.
    anonymous_id: Option<String>,
}

/// How much of a body to read, and how long it may stall.
struct Reading {
    /// The most bytes of a body.
    limit: usize,
    /// The longest the whole body may take to arrive.
    stall: Duration,
    /// The most bytes read when the write key can only be in the body.
    keyless_limit: Option<usize>,
}

/// At most this much of a body is read when no write key came in a header or the query.
pub const KEYLESS_BODY_BYTES: usize = 64 * 1024;

/// Reads the body, at most `limit` bytes. Past the limit the rest is read and thrown away — up to a
/// bound — so that the client, still sending, receives the 413 instead of a broken connection. A
/// body not in whole within its time is answered 408, and one without a key past its smaller limit
/// 401; both close the connection instead of reading on.
async fn read_body(body: axum::body::Body, reading: &Reading) -> Result<Bytes, Refusal> {
    use futures_util::StreamExt as _;
    let limit = reading.keyless_limit.unwrap_or(reading.limit);
    let drain_bound = limit.saturating_mul(4).max(16 * 1024 * 1024);
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    // A deadline for the whole body, not a gap between reads: a client trickling a byte now and
    // then would otherwise hold its connection for as long as it likes.
    let now = tokio::time::Instant::now();
    let deadline = now.checked_add(reading.stall).unwrap_or(now + Duration::from_secs(86_400 * 365));
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {} s", reading.stall.as_secs()),
                )
                .closing());
            }
        };
        let chunk = chunk.map_err(|error| {
            Refusal::new(StatusCode::BAD_REQUEST, format!("the request body could not be read: {error}"))
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if reading.keyless_limit.is_some() {
            return Err(keyless_refusal(limit));
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

/// A body without a key outside it, too long to look through for one.
fn keyless_refusal(limit: usize) -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "no write key in the Authorization header or the query, and none in the first {limit} bytes of the body: send the key as the HTTP Basic username"
        ),
    )
    .closing()
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

/// Reads one event with the interpreter's own reader — so what is answered 200 here is what the
/// blueprint reads, by the same rules — dates it, and returns its `message_id` and the JSON to
/// queue: the event as written (numbers exact, camelCase kept), without its write key, with the
/// `type`, `message_id` and times the collector supplies.
fn check_event(index: usize, text: &str, intake: &Intake) -> Result<Checked, EventRefusal> {
    let event = Event::read(text, intake.endpoint.implied_type()).map_err(|invalid| EventRefusal {
        status: StatusCode::BAD_REQUEST,
        field: invalid.field,
        answer: format!("event {index}: {}", invalid.message),
        reason: invalid.message,
    })?;
    // The write key is never stored.
    let mut leave_out = vec!["writeKey", "write_key"];
    let mut added: Vec<(&str, String)> = Vec::new();
    // A `type` that is absent or `null` took the endpoint's: the stored event says so itself, as
    // the worker reads it without knowing the endpoint.
    if event.field("type").and_then(|raw| raw.as_str()).is_none() {
        leave_out.push("type");
        added.push(("type", json_text(event.call.as_str())));
    }
    let message_id = match event.field("message_id").and_then(|raw| raw.as_str()) {
        Some(id) if !id.is_empty() => id.into_owned(),
        _ => {
            let id = generated_message_id();
            leave_out.push("message_id");
            added.push(("message_id", json_text(&id)));
            id
        }
    };
    if let Some((timestamp, original)) = dated(&event, intake) {
        leave_out.push("timestamp");
        added.push(("timestamp", json_text(&timestamp.to_string())));
        if let Some(original) = original {
            leave_out.push("original_timestamp");
            added.push(("originalTimestamp", json_text(&original.to_string())));
        }
    }
    let added: Vec<(&str, &str)> = added.iter().map(|(name, json)| (*name, json.as_str())).collect();
    let mut payload = Vec::with_capacity(text.len() + 64);
    event.write(&leave_out, &added, &mut payload);
    if payload.len() > intake.max_event_bytes {
        let size = format!("{} bytes; at most {} are accepted", payload.len(), intake.max_event_bytes);
        return Err(EventRefusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            field: None,
            answer: format!("event {index} is {size}"),
            reason: format!("the event is {size}"),
        });
    }
    // The reader checked every string and `write` escapes what it adds: the text is UTF-8.
    let payload = String::from_utf8(payload).map_err(|_| EventRefusal {
        status: StatusCode::BAD_REQUEST,
        field: None,
        answer: format!("event {index} is not UTF-8 text"),
        reason: "the event is not UTF-8 text".into(),
    })?;
    let labels = store::Labels {
        call_type: Some(event.call.as_str().to_owned()),
        // What blueprints match on: a track call's name, else its type (`page`, `identify`).
        event: Some(event.name.clone().into_owned()),
        customer_id: event.field("user_id").and_then(blueprint::user_text),
    };
    let anonymous_id = intake
        .wants_anonymous_id
        .then(|| event.field("anonymous_id").and_then(|raw| raw.as_str()))
        .flatten()
        .filter(|id| crate::tag::cookie_safe_id(id))
        .map(std::borrow::Cow::into_owned);
    Ok(Checked { message_id, payload, labels, anonymous_id })
}

/// Why one event is refused: a whole request's answer when it stands alone, or a line of a batch's
/// `rejected` list.
struct EventRefusal {
    status: StatusCode,
    field: Option<&'static str>,
    /// The answer's message, which names the event (`event 3: …`).
    answer: String,
    /// What is wrong, in the reader's words, for the `rejected` list (which gives the index apart).
    reason: String,
}

fn json_text(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 2);
    blueprint::event::write_str(&mut out, text);
    String::from_utf8(out).unwrap_or_default()
}

/// Corrects the time an SDK stamped for the sender's clock, as Segment's and RudderStack's servers
/// do: when the event's time (`timestamp` or `originalTimestamp`, not both) comes with the time the
/// SDK sent it (`sentAt` on the event, else on the batch, else RudderStack's `SentAt` header),
/// `timestamp` becomes `received − (sentAt − time)` and the SDK's own time is kept as
/// `originalTimestamp` (returned when it is to be added). An event with both times was dated
/// already and is left as it is.
fn dated(event: &Event<'_>, intake: &Intake) -> Option<(jiff::Timestamp, Option<jiff::Timestamp>)> {
    let stamped = event.stamped;
    let sent_at = stamped.sent_at.or(intake.sent_at)?;
    let client_time = match (stamped.timestamp, stamped.original_timestamp) {
        (Some(time), None) | (None, Some(time)) => time,
        _ => return None,
    };
    let corrected = intake.received_at.checked_add(client_time.duration_since(sent_at)).ok()?;
    Some((corrected, stamped.original_timestamp.is_none().then_some(client_time)))
}

fn unknown_path() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; events go to POST /v1/track, /v1/page, /v1/screen, /v1/identify, /v1/alias, /v1/group or /v1/batch (or Segment's /v1/t, /v1/p, ... and RudderStack's /beacon/v1/batch)",
    )
}

/// Answers every other path with a JSON 404, counted and logged so a misconfigured site is seen.
pub async fn not_found<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, request: Request) -> Response {
    let refusal = unknown_path();
    shared.refusals.record(&shared.metrics, PathClass::Unknown, &request, &refusal);
    refusal.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_event_is_kept_without_its_write_key() {
        let scanned = scan::document(r#"[{"writeKey":"k","userId":18446744073709551617,"write_key":"k","x":[1, 2]}, 5]"#)
            .expect("valid JSON");
        let Document::Array(events) = scanned else { panic!("an array") };
        assert_eq!(without_write_key(events[0]), r#"{"userId":18446744073709551617,"x":[1,2]}"#);
        assert_eq!(without_write_key(events[1]), "5");
    }
}
