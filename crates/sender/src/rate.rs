//! A smooth rate limit: requests are spaced evenly (generic cell rate), so no burst can trip a
//! destination's per-minute window, and a 429 pushes the next slot back.

use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests at least `60 s / per_minute` apart, for one destination account.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    next_slot: Option<Instant>,
}

impl RateLimiter {
    /// At most `per_minute` requests in any minute; at least one per minute is allowed.
    pub fn per_minute(per_minute: u32) -> Self {
        RateLimiter { interval: Duration::from_secs(60) / per_minute.max(1), next_slot: None }
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
