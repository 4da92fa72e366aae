//! How long to wait before trying again: exponential backoff with full jitter, at least what the
//! destination asked for with `Retry-After`, and never past the retry window.

use std::time::Duration;

/// When to retry, and when to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first wait; each retry doubles it.
    pub first_delay: Duration,
    /// The largest ceiling, however many retries.
    pub max_delay: Duration,
    /// How long after the first attempt retries may continue; then the event is kept as failed.
    pub window: Duration,
}

impl Default for RetryPolicy {
    /// 1 s, doubling to at most 5 minutes, for up to 6 hours.
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            window: Duration::from_secs(6 * 3600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    Wait(Duration),
    /// The window closes before another attempt could start.
    GiveUp,
}

impl RetryPolicy {
    /// The ceiling of the wait after `attempts` failed attempts: `first_delay × 2^(attempts−1)`,
    /// capped at `max_delay`.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(62);
        self.first_delay.saturating_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX)).min(self.max_delay)
    }

    /// The decision after `attempts` failed attempts, `elapsed` after the first began.
    pub fn next(
        &self,
        attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: &mut Jitter,
    ) -> Next {
        let mut delay = jitter.up_to(self.ceiling(attempts));
        if let Some(asked) = retry_after {
            delay = delay.max(asked);
        }
        if elapsed.saturating_add(delay) > self.window { Next::GiveUp } else { Next::Wait(delay) }
    }
}

/// A small, fast random source for jitter (xorshift64*). It never panics, and a seed makes it
/// repeatable in tests.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// Repeatable jitter.
    pub fn seeded(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        Jitter { state: seed | 1 }
    }

    /// Jitter seeded from the clock and this value's address, different in every process.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let address = std::ptr::addr_of!(local) as u64;
        Jitter::seeded(nanos ^ address.rotate_left(32))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniformly random number in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniformly random duration from zero to `ceiling` (full jitter).
    pub fn up_to(&mut self, ceiling: Duration) -> Duration {
        let nanos = ceiling.as_nanos();
        let scaled = (nanos.saturating_mul(u128::from(self.next_u64() >> 11))) >> 53;
        Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}
