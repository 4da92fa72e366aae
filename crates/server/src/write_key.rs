//! Which source a request comes from: the write key, from the `Authorization` header (HTTP Basic
//! username), the `writeKey` query parameter, or the body, named by a source of the configuration.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;

use crate::refusals::Refusal;

/// The `writeKey` query parameter, where beacons and Signal's tag put the key.
pub(crate) fn query_write_key(uri: &axum::http::Uri) -> Option<String> {
    axum::extract::Query::<KeyQuery>::try_from_uri(uri).ok().and_then(|query| query.0.write_key)
}

/// Where the write key can be, besides the `Authorization` header: RudderStack's beacons put it in
/// the query, since `navigator.sendBeacon` cannot set headers.
#[derive(Debug, serde::Deserialize)]
struct KeyQuery {
    #[serde(rename = "writeKey")]
    write_key: Option<String>,
}

/// The refusal of a request that names no write key.
pub(crate) fn no_write_key() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "no write key: send it as the HTTP Basic username (Authorization: Basic base64(WRITE_KEY:)), or as `writeKey` in the body",
    )
}

/// The Basic username, when there is an `Authorization` header.
pub(crate) fn header_write_key(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let encoded =
        value.to_str().ok().and_then(|value| value.strip_prefix("Basic ")).ok_or_else(no_write_key)?;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| no_write_key())?;
    let decoded = String::from_utf8(decoded).map_err(|_| no_write_key())?;
    Ok(Some(decoded.split_once(':').map_or(decoded.as_str(), |(user, _)| user).to_owned()))
}

/// The source whose write key this is.
pub(crate) fn source_of<'a>(config: &'a config::Config, key: &str) -> Result<&'a config::Source, Refusal> {
    config
        .sources
        .iter()
        .find(|source| source.write_key.matches(key))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unknown write key: check the source's write key in Signal's configuration",
            )
        })
}
