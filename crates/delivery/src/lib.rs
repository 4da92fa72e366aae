//! The delivery engine: one event's way from its JSON text to its fate. The pipeline's blueprint
//! maps it (or drops it, with a code); the shared sender delivers the request within the
//! destination's limits; the destination reads the last answer once, and that reading — delivered,
//! failed, or the integration paused, with a code, the likely cause and what the destination said —
//! becomes the [`Fate`] that `signal serve`'s workers record and `signal send` reports. Neither
//! caller classifies anything itself, so both speak of an event in the same words.

use std::time::Duration;

use blueprint::{Mapper, RequestKind, Warning};
use sender::{AttemptLog, Destination, Ending, HttpSender, Request, Sent};

/// The code of an event that failed inside Signal rather than at the destination.
pub const INTERNAL_ERROR: &str = "internal_error";

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The destination accepted it.
    Delivered,
    /// Not sent, on purpose: the blueprint or the pipeline drops it (see its code).
    Dropped,
    /// Refused for good, or still failing when the retry window closed.
    Failed,
    /// The destination refused the credentials or the account: the integration's events wait.
    Paused,
}

impl Settled {
    /// The state's name, as in records and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Delivered => "delivered",
            Settled::Dropped => "dropped",
            Settled::Failed => "failed",
            Settled::Paused => "paused",
        }
    }
}

/// An event's fate, with everything a record or a summary says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    /// What became of it.
    pub state: Settled,
    /// Its code: the drop code (`not_in_blueprint`, ...), the HTTP status (`"200"`, `"401"`), or
    /// `"timeout"` / `"connection"` when no answer came.
    pub code: String,
    /// The last answer's HTTP status, when there was one.
    pub status: Option<u16>,
    /// The destination's error type, e.g. `MissingAttributeError`.
    pub error_type: Option<String>,
    /// Why it was dropped, or what the destination (or the connection) said.
    pub said: Option<String>,
    /// The likely cause, from the destination's troubleshooting guide.
    pub hint: Option<String>,
    /// Whether it was still failing when the retry window closed.
    pub gave_up: bool,
    /// Requests made.
    pub attempts: u32,
    /// Each attempt's status (`None`: no answer) and latency.
    pub attempt_log: AttemptLog,
    /// The start of the last answer's body.
    pub response_body: Option<Vec<u8>>,
    /// From the first attempt to the end.
    pub elapsed: Duration,
}

impl Fate {
    /// An event dropped before sending.
    pub fn dropped(code: &str, reason: String) -> Fate {
        Fate {
            state: Settled::Dropped,
            code: code.to_owned(),
            status: None,
            error_type: None,
            said: Some(reason),
            hint: None,
            gave_up: false,
            attempts: 0,
            attempt_log: Vec::new(),
            response_body: None,
            elapsed: Duration::ZERO,
        }
    }

    /// An event Signal itself could not handle: failed, with the code `internal_error`.
    pub fn internal_error(what: &str) -> Fate {
        Fate { state: Settled::Failed, code: INTERNAL_ERROR.to_owned(), ..Fate::dropped("", what.to_owned()) }
    }

    /// The fate of a request the sender delivered, or tried to.
    pub fn of(sent: Sent) -> Fate {
        let Sent { delivery, attempt_log, classification } = sent;
        let answer = delivery.last.ok();
        let state = match delivery.ending {
            Ending::Delivered => Settled::Delivered,
            _ if classification.pause => Settled::Paused,
            _ => Settled::Failed,
        };
        Fate {
            state,
            code: classification.code,
            status: answer.as_ref().map(|answer| answer.status),
            error_type: classification.error_type,
            said: classification.said,
            hint: classification.hint,
            gave_up: delivery.ending == Ending::GaveUp,
            attempts: delivery.attempts,
            attempt_log,
            response_body: answer.map(|answer| answer.body),
            elapsed: delivery.elapsed,
        }
    }

    /// One line for a record: what was said, the likely cause, and whether the retry window
    /// closed — `customer_id is not found in the payload — Missing customer_id, or malformed
    /// attributes.`
    pub fn detail(&self) -> Option<String> {
        let said = said_and_hint(self.said.as_deref(), self.hint.as_deref());
        if !self.gave_up {
            return said;
        }
        Some(format!("{}, retry window closed", said.unwrap_or_default()))
    }
}

/// What was said and the likely cause, in one line: `customer_id is not found — Missing customer_id.`
fn said_and_hint(said: Option<&str>, hint: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [said, hint].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(" — "))
}

/// Maps one event for sending. `body` receives the request's body (cleared first) and `warnings`
/// what the blueprint noticed; the API the body is for comes back, or a dropped event's fate.
pub fn map(
    mapper: &Mapper,
    line: &str,
    received_at: jiff::Timestamp,
    body: &mut Vec<u8>,
    warnings: &mut Vec<Warning>,
) -> Result<RequestKind, Fate> {
    mapped_with(line, body, warnings, |body, warnings| {
        mapper.map_into(line, received_at, body, warnings).map(|written| written.kind)
    })
}

/// [`map`], also saying in `asks` what the call asks for once delivered (see
/// [`Mapper::map_asking`]).
pub fn map_asking(
    mapper: &Mapper,
    line: &str,
    received_at: jiff::Timestamp,
    body: &mut Vec<u8>,
    warnings: &mut Vec<Warning>,
    asks: &mut blueprint::Asks,
) -> Result<RequestKind, Fate> {
    *asks = blueprint::Asks::default();
    mapped_with(line, body, warnings, |body, warnings| {
        mapper.map_asking(line, received_at, body, warnings, Some(asks)).map(|written| written.kind)
    })
}

/// Maps the device registration that a delivered call (one [`Mapper::registers_device`] accepted)
/// asked for, as [`map`] maps a call.
pub fn map_device(mapper: &Mapper, line: &str, body: &mut Vec<u8>, warnings: &mut Vec<Warning>) -> Result<RequestKind, Fate> {
    mapped_with(line, body, warnings, |body, warnings| mapper.map_device_into(line, body, warnings))
}

/// Maps the merge a delivered login asked for (see [`Mapper::login_of`]), as [`map`] maps a call.
pub fn map_automatic_merge(mapper: &Mapper, line: &str, body: &mut Vec<u8>, warnings: &mut Vec<Warning>) -> Result<RequestKind, Fate> {
    mapped_with(line, body, warnings, |body, _| mapper.map_automatic_merge_into(line, body))
}

fn mapped_with(
    line: &str,
    body: &mut Vec<u8>,
    warnings: &mut Vec<Warning>,
    map: impl FnOnce(&mut Vec<u8>, &mut Vec<Warning>) -> Result<RequestKind, blueprint::Drop>,
) -> Result<RequestKind, Fate> {
    body.clear();
    warnings.clear();
    if line.trim().is_empty() {
        return Err(Fate::dropped(
            blueprint::DropCode::InvalidEvent.as_str(),
            "the line is empty; each line must be one JSON object".into(),
        ));
    }
    // A panic while mapping is a bug in Signal (or a library it uses) that one event's data
    // triggered: that event fails with a code saying so, and the worker goes on with the rest.
    let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map(body, warnings)));
    match mapped {
        Ok(Ok(kind)) => Ok(kind),
        Ok(Err(drop)) => Err(Fate::dropped(drop.code.as_str(), drop.reason)),
        Err(_) => {
            body.clear();
            Err(Fate::internal_error("mapping this event failed inside Signal (a bug: please report it with the event)"))
        }
    }
}

/// Sends a mapped request to `destination` — within its rate limit, retried while the destination
/// says an answer is worth retrying — and returns the event's fate.
pub async fn send(sender: &HttpSender, destination: &dyn Destination, request: Request) -> Fate {
    Fate::of(sender.deliver(destination, request).await)
}

/// What a failed attempt that will be tried again looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retrying {
    /// Attempts made so far.
    pub attempts: u32,
    /// The failure's code: the HTTP status, `timeout`, `connection`.
    pub code: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// What was said and the likely cause, as in [`Fate::detail`].
    pub detail: Option<String>,
}

/// [`send`], telling `on_retry` of each failed attempt that will be tried again, for records that
/// show an event retrying while it is.
pub async fn send_watched(
    sender: &HttpSender,
    destination: &dyn Destination,
    request: Request,
    on_retry: &(dyn Fn(Retrying) + Sync),
) -> Fate {
    let tell = |attempts: u32, classification: &sender::Classification| {
        on_retry(Retrying {
            attempts,
            code: classification.code.clone(),
            status: classification.code.parse().ok(),
            detail: said_and_hint(classification.said.as_deref(), classification.hint.as_deref()),
        });
    };
    Fate::of(sender.deliver_watched(destination, request, &tell).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retail() -> Mapper {
        let blueprint = blueprint::compile_preset("retail").expect("a preset").expect("compiles");
        Mapper::new(std::sync::Arc::new(blueprint))
    }

    #[test]
    fn mapping_gives_the_body_or_the_drop_with_its_code() {
        let mapper = retail();
        let (mut body, mut warnings) = (Vec::new(), Vec::new());
        let now = jiff::Timestamp::UNIX_EPOCH;
        let order = r#"{"type":"track","event":"Order Completed","userId":"u1","properties":{"revenue":5}}"#;
        assert_eq!(map(&mapper, order, now, &mut body, &mut warnings), Ok(RequestKind::Event));
        assert!(String::from_utf8_lossy(&body).contains(r#""customer_id":"u1""#));
        let profile = r#"{"type":"identify","userId":"u1","traits":{"email":"a@b.test"}}"#;
        assert_eq!(map(&mapper, profile, now, &mut body, &mut warnings), Ok(RequestKind::Customer));
        let alias = r#"{"type":"alias","userId":"u1","previousId":"anon-1"}"#;
        assert_eq!(map(&mapper, alias, now, &mut body, &mut warnings), Ok(RequestKind::Merge));

        for (line, code) in [("   ", "invalid_event"), ("{", "invalid_event"), (r#"{"type":"group","userId":"u"}"#, "unsupported_type")] {
            let fate = map(&mapper, line, now, &mut body, &mut warnings).expect_err("dropped");
            assert_eq!((fate.state, fate.code.as_str()), (Settled::Dropped, code), "{line}");
            assert!(body.is_empty(), "no body for a dropped event");
        }
    }

    #[test]
    fn a_failure_detail_joins_what_was_said_and_the_likely_cause() {
        let mut fate = Fate::dropped("400", "customer_id is not found".into());
        fate.hint = Some("Missing customer_id.".into());
        assert_eq!(fate.detail().as_deref(), Some("customer_id is not found — Missing customer_id."));
        fate.gave_up = true;
        assert!(fate.detail().is_some_and(|detail| detail.ends_with(", retry window closed")));
        let internal = Fate::internal_error("a bug");
        assert_eq!((internal.state, internal.code.as_str()), (Settled::Failed, INTERNAL_ERROR));
    }
}
