//! `Retry-After`: delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`).

use std::time::Duration;

/// The wait a `Retry-After` value asks for, measured from `now`; a date in the past asks for none.
/// `None` when the value is neither form.
pub fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = when.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}
