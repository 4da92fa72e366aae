//! Refused collector requests: the answer ([`Refusal`]), and each refusal counted by path class and
//! status and logged at most once per class and status every ten seconds, with a count of those
//! not logged: a site sending to a wrong path or with a wrong key shows up at once without one log
//! line per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::metrics::Metrics;

/// A refused request: its status and the JSON error body.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
    event_index: Option<usize>,
    field: Option<&'static str>,
    /// The connection is closed after the answer: the rest of the body is not worth reading.
    close: bool,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), event_index: None, field: None, close: false }
    }

    pub(crate) fn at(status: StatusCode, index: usize, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Refusal { status, message: message.into(), event_index: Some(index), field, close: false }
    }

    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What it says to the client.
    pub fn message(&self) -> &str {
        &self.message
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
        let mut response = (self.status, axum::Json(json!({"success": false, "error": error}))).into_response();
        if self.close {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// How often one kind of refusal is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Which kind of path a refused request was for: the `path` label of
/// `signal_requests_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathClass {
    /// An event endpoint (`/v1/track`, `/v1/t`, `/v1/batch`, `/beacon/v1/batch`, ...).
    Events,
    /// A CORS preflight to an event endpoint that is refused (a method other than POST).
    Preflight,
    /// A path that takes nothing, or a method an endpoint does not take.
    Unknown,
}

impl PathClass {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            PathClass::Events => "events",
            PathClass::Preflight => "preflight",
            PathClass::Unknown => "unknown",
        }
    }
}

/// When each kind of refusal was last logged, and how many were not logged since.
#[derive(Debug, Default)]
pub struct Refusals {
    logged: Mutex<HashMap<(PathClass, u16), (Instant, u64)>>,
}

/// A request's method, path (never its query, which may hold a write key) and `Origin`.
pub fn describe(request: &Request) -> (Method, String, Option<String>) {
    let path: String = request.uri().path().chars().take(200).collect();
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(|origin| origin.chars().take(200).collect());
    (request.method().clone(), path, origin)
}

impl Refusals {
    /// Counts and maybe logs a refusal of `request`.
    pub fn record(&self, metrics: &Metrics, class: PathClass, request: &Request, refusal: &Refusal) {
        let (method, path, origin) = describe(request);
        self.record_parts(metrics, class, &method, &path, origin.as_deref(), refusal);
    }

    /// Counts and maybe logs a refusal of a request described by [`describe`].
    pub fn record_parts(
        &self,
        metrics: &Metrics,
        class: PathClass,
        method: &Method,
        path: &str,
        origin: Option<&str>,
        refusal: &Refusal,
    ) {
        let status = refusal.status().as_u16();
        metrics.rejected(class.label(), status);
        let now = Instant::now();
        let suppressed = {
            let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match logged.get_mut(&(class, status)) {
                Some((last, suppressed)) if now.duration_since(*last) < LOG_EVERY => {
                    *suppressed += 1;
                    return;
                }
                Some((last, suppressed)) => {
                    *last = now;
                    std::mem::take(suppressed)
                }
                None => {
                    logged.insert((class, status), (now, 0));
                    0
                }
            }
        };
        tracing::warn!(
            status,
            path_class = class.label(),
            %method,
            path = ?path,
            origin = origin.unwrap_or("-"),
            // A field, not part of the message: it can quote the client's text (an unknown `type`),
            // and fields are written escaped, so a newline in it cannot forge a log line.
            reason = refusal.message(),
            similar_not_logged = suppressed,
            "collector request refused"
        );
    }
}
