//! Signal's own tag, `signal.js`, served by the collector so that a site with no analytics SDK
//! sends its events with one `<script>` line; and `/signal/id`, where the tag reads back the
//! anonymous id that a source's first-party cookie keeps (the cookie is HttpOnly: no script sees it).
//!
//! The tag is the readable file `tag/signal.js`, built into the binary. It is served at
//! `/signal.js` (revalidated hourly by its ETag) and at a versioned URL, `/signal-<hash>.js`, that
//! never changes and is cached for a year.

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use store::Queue;

use crate::Shared;
use crate::write_key::{no_write_key, query_write_key, source_of};
use crate::refusals::Refusal;
use crate::refusals::PathClass;

/// The tag's source, as it is in the repository.
pub const SOURCE: &str = include_str!("../../../tag/signal.js");

/// Where the tag is served, revalidated by its ETag.
pub const PATH: &str = "/signal.js";

/// Where a page's tag reads the anonymous id kept in the source's cookie.
pub const ID_PATH: &str = "/signal/id";

/// The tag, prepared once: its hash, and its gzipped bytes.
struct Prepared {
    hash: String,
    gzipped: Vec<u8>,
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to memory cannot fail; an empty result only means the tag is sent uncompressed.
        let gzipped = encoder.write_all(SOURCE.as_bytes()).and_then(|()| encoder.finish()).unwrap_or_default();
        Prepared { hash: format!("{:016x}", fnv1a(SOURCE.as_bytes())), gzipped }
    })
}

/// FNV-1a, 64 bits: a stable name for this build's tag, not a defence against anyone.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The versioned URL path of this build's tag: `/signal-<hash>.js`.
pub fn versioned_path() -> String {
    format!("/signal-{}.js", prepared().hash)
}

/// Serves the tag at [`PATH`]: cached for an hour, then revalidated.
pub async fn serve_tag(request: Request) -> Response {
    respond(request.headers(), "public, max-age=3600")
}

/// Serves the tag at [`versioned_path`]: its content never changes there.
pub async fn serve_versioned_tag(request: Request) -> Response {
    respond(request.headers(), "public, max-age=31536000, immutable")
}

fn respond(headers: &HeaderMap, cache_control: &'static str) -> Response {
    let prepared = prepared();
    let etag = format!("\"{}\"", prepared.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let gzip = !prepared.gzipped.is_empty()
        && headers.get(header::ACCEPT_ENCODING).and_then(|value| value.to_str().ok()).is_some_and(accepts_gzip);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        prepared.gzipped.clone().into_response()
    } else {
        SOURCE.into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("<{}>; rel=\"canonical\"", versioned_path())) {
        out.insert(header::LINK, value);
    }
    if gzip && !fresh {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether an `Accept-Encoding` value takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(accepted: &str) -> bool {
    accepted.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            parameter.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Whether `text` may be kept as an anonymous id in a cookie: what tags mint (UUIDs and the like),
/// nothing a cookie header could be broken by.
pub fn cookie_safe_id(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// The anonymous id in the request's `signal_aid` cookie.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == config::ANONYMOUS_ID_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| cookie_safe_id(value))
}

/// Answers the tag's question "does this source keep my anonymous id in a cookie, and which is it?":
/// `{"cookie":true,"anonymous_id":…}` (the cookie refreshed) to a page the source allows, else
/// `{"cookie":false}`. It is answered with credentials to any origin, since it tells the others
/// nothing: that is how their tag learns not to ask again for a day.
pub async fn anonymous_id<Q: Queue>(State(shared): State<Arc<Shared<Q>>>, request: Request) -> Response {
    let mut answer = match read_id(&shared, &request) {
        Ok(response) => response,
        Err(refusal) => {
            shared.refusals.record(&shared.metrics, PathClass::Events, &request, &refusal);
            refusal.into_response()
        }
    };
    let out = answer.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(header::VARY, HeaderValue::from_static("origin"));
    }
    answer
}

fn read_id<Q: Queue>(shared: &Shared<Q>, request: &Request) -> Result<Response, Refusal> {
    if request.method() != Method::GET {
        return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "the anonymous id is read with GET"));
    }
    let config = shared.config();
    let key = query_write_key(request.uri()).ok_or_else(no_write_key)?;
    let source = source_of(&config, &key)?;
    let origin = request.headers().get(header::ORIGIN).and_then(|value| value.to_str().ok());
    let global_privacy_control = request.headers().get("sec-gpc").is_some_and(|value| value.as_bytes() == b"1");
    let allowed = origin.is_none_or(|origin| source.allows_origin(origin));
    let Some(cookie) = source.cookie.as_ref().filter(|_| allowed && !(source.honor_gpc && global_privacy_control))
    else {
        return Ok(axum::Json(json!({"cookie": false})).into_response());
    };
    let id = cookie_id(request.headers());
    let mut response = axum::Json(json!({"cookie": true, "anonymous_id": id})).into_response();
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&cookie.set_cookie(&id))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("identity"));
    }

    #[test]
    fn only_plain_ids_are_read_from_a_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; signal_aid=7d1f-42ab_x.y; b=2"));
        assert_eq!(cookie_id(&headers).as_deref(), Some("7d1f-42ab_x.y"));
        headers.insert(header::COOKIE, HeaderValue::from_static("signal_aid=<script>"));
        assert_eq!(cookie_id(&headers), None);
        assert!(!cookie_safe_id(&"x".repeat(129)));
    }
}
