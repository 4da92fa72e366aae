//! Destination-agnostic delivery. A destination says how to build a request and what an answer
//! means; this crate decides when to try again and how long to wait, and never sends faster than a
//! destination's limit. "Is this retryable?" (the destination's [`Attempt`]) is kept apart from "how
//! long to wait" ([`RetryPolicy`]), and time is `tokio`'s, so every rule here is tested on a paused
//! clock.

mod backoff;
mod http;
mod kind;
mod rate;
mod retry_after;

use std::future::Future;
use std::time::Duration;

pub use backoff::{Jitter, Next, RetryPolicy};
pub use http::{
    Answer, Api, AttemptLog, Classification, Destination, Disposition, HttpSender, InProgress, KEPT_BODY_BYTES, NoAnswer,
    Request, Response, Sent,
};
pub use kind::{Built, DestinationKind, SettingError};
pub use rate::{RateLimit, RateLimiter};
pub use retry_after::parse_retry_after;

/// Selects the TLS cryptography (ring) for every HTTPS client in the process; idempotent. Called by
/// [`HttpSender::new`]; call it before building any other `reqwest` client.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What one attempt came to, as the destination reads the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Accepted.
    Delivered(T),
    /// Worth trying again (429, 5xx, a timeout, a dropped connection), after at least `retry_after`
    /// when the destination said so.
    Retry {
        /// The answer, kept in case it is the last.
        outcome: T,
        /// The destination's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Will fail again whatever happens (400, 401, 413, ...): not retried.
    Permanent(T),
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Accepted.
    Delivered,
    /// Refused for good after one attempt.
    Permanent,
    /// Still failing when the retry window closed; the event is kept as failed, not lost.
    GaveUp,
}

/// The result of delivering one request, retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<T> {
    /// How it ended.
    pub ending: Ending,
    /// The last attempt's outcome.
    pub last: T,
    /// How many attempts were made.
    pub attempts: u32,
    /// From the first attempt to the end.
    pub elapsed: Duration,
}

/// Makes attempts (`attempt` is given the attempt number, from 1) until one is delivered or
/// permanent, or the policy's retry window closes.
pub async fn deliver<T, F, Fut>(policy: &RetryPolicy, jitter: &mut Jitter, mut attempt: F) -> Delivery<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let started = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts = attempts.saturating_add(1);
        let (ending, last, retry_after) = match attempt(attempts).await {
            Attempt::Delivered(outcome) => (Some(Ending::Delivered), outcome, None),
            Attempt::Permanent(outcome) => (Some(Ending::Permanent), outcome, None),
            Attempt::Retry { outcome, retry_after } => (None, outcome, retry_after),
        };
        let elapsed = started.elapsed();
        if let Some(ending) = ending {
            return Delivery { ending, last, attempts, elapsed };
        }
        match policy.next(attempts, elapsed, retry_after, jitter) {
            Next::Wait(delay) => tokio::time::sleep(delay).await,
            Next::GiveUp => return Delivery { ending: Ending::GaveUp, last, attempts, elapsed },
        }
    }
}
