//! A smooth rate limit: requests are spaced evenly (generic cell rate), so no burst can trip a
//! destination's per-minute window, and a 429 pushes the next slot back.

use std::time::Duration;

use tokio::time::Instant;

/// A destination account's limit: at most `requests` in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many requests the destination accepts in one window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl RateLimit {
    /// `requests` per minute.
    pub fn per_minute(requests: u32) -> Self {
        RateLimit { requests, per: Duration::from_secs(60) }
    }

    /// The spacing between requests. It is 1/200 wider than `per / requests`: requests reach the
    /// destination a little earlier or later than they leave, and a destination that counts fixed
    /// windows would see one request too many in a window whenever a late request is followed by a
    /// prompt one. The headroom (300 ms a minute at 30,000/min) absorbs that jitter.
    pub fn interval(&self) -> Duration {
        let nanos = self.per.as_nanos().saturating_mul(200) / (u128::from(self.requests.max(1)) * 199);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Spaces requests [`RateLimit::interval`] apart, for one destination account.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    next_slot: Option<Instant>,
}

impl RateLimiter {
    /// Never more than `limit` allows; at least one request per window is allowed.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter { interval: limit.interval(), next_slot: None }
    }

    /// At most `per_minute` requests in any minute.
    pub fn per_minute(per_minute: u32) -> Self {
        RateLimiter::new(RateLimit::per_minute(per_minute))
    }

    /// The spacing between requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Reserves the next slot and says how long to wait for it from `now`.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let slot = self.next_slot.map_or(now, |next| next.max(now));
        self.next_slot = Some(slot + self.interval);
        slot.saturating_duration_since(now)
    }

    /// Waits for the next slot.
    pub async fn acquire(&mut self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// After the destination said "too many" (429): nothing is sent before `now + pause`.
    pub fn slow_down(&mut self, now: Instant, pause: Duration) {
        let resume = now + pause;
        self.next_slot = Some(self.next_slot.map_or(resume, |next| next.max(resume)));
    }
}
