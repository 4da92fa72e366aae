//! What both engines share: how attempts and times are stored, the columns of a listing, and the
//! live feed's and dedupe purge's limits. Each engine keeps its own I/O.

use crate::AttemptRecord;

/// Dedupe entries past every window are purged once every this many commits.
pub(crate) const PURGE_EVERY: u64 = 1000;

/// Lines the live feed holds for a watcher that is slow to read them.
pub(crate) const FEED_CAPACITY: usize = 4096;

/// At most this many changed events of one commit are told to the live feed: a replay of a million
/// is news, not a million lines.
pub(crate) const FEED_PER_COMMIT: usize = 2048;

/// Columns of a [`Summary`](crate::Summary), in the order each engine's `summary_of` reads them.
pub(crate) const SUMMARY_COLUMNS: &str = "id, received_at, source, pipeline, message_id, call_type, event, customer_id, \
     state, code, http_status, attempts, detail";

/// Milliseconds since the Unix epoch, as each engine stores times.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// `200:12 500:31 -:5000`: status (or `-` for no answer) and milliseconds, per attempt.
pub(crate) fn encode_attempts(attempts: &[AttemptRecord]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .map(|attempt| {
            let status = attempt.status.map_or_else(|| "-".to_owned(), |status| status.to_string());
            format!("{status}:{}", attempt.latency_ms)
        })
        .collect();
    parts.join(" ")
}

/// Reads what [`encode_attempts`] wrote.
pub(crate) fn decode_attempts(text: &str) -> Vec<AttemptRecord> {
    text.split_whitespace()
        .filter_map(|part| {
            let (status, latency) = part.split_once(':')?;
            Some(AttemptRecord { status: status.parse().ok(), latency_ms: latency.parse().ok()? })
        })
        .collect()
}

/// How far out of order two events' receipt times can be: they are stamped on receipt and queued
/// moments later, so a later id was received at most this much earlier.
pub(crate) const TIME_SLACK_MS: i64 = 60_000;
