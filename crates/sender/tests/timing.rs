//! Backoff, jitter bounds, `Retry-After`, the retry window and the rate limit, on a paused tokio
//! clock: hours of retries run in milliseconds, and every wait is exact.

use std::time::Duration;

use sender::{
    Attempt, Ending, Jitter, Next, RateLimit, RateLimiter, RetryPolicy, deliver, parse_retry_after,
};
use tokio::time::Instant;

fn policy() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        window: Duration::from_secs(3600),
    }
}

#[test]
fn full_jitter_stays_within_the_doubling_ceiling() {
    let policy = policy();
    let mut jitter = Jitter::seeded(42);
    for attempts in 1..=12u32 {
        let ceiling = policy.ceiling(attempts);
        let expected = Duration::from_secs(1 << (attempts - 1).min(6)).min(Duration::from_secs(60));
        assert_eq!(ceiling, expected, "attempt {attempts}");
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..2000 {
            let Next::Wait(delay) = policy.next(attempts, Duration::ZERO, None, &mut jitter) else {
                panic!("gave up inside the window")
            };
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            seen_low |= delay < ceiling / 4;
            seen_high |= delay > ceiling * 3 / 4;
        }
        assert!(seen_low && seen_high, "jitter spreads over the whole range at attempt {attempts}");
    }
}

#[test]
fn jitter_never_panics_at_the_extremes() {
    let mut jitter = Jitter::seeded(0);
    assert_eq!(jitter.up_to(Duration::ZERO), Duration::ZERO);
    assert!(jitter.up_to(Duration::MAX) <= Duration::MAX);
    let policy = RetryPolicy { first_delay: Duration::MAX, max_delay: Duration::MAX, window: Duration::MAX };
    assert!(matches!(
        policy.next(u32::MAX, Duration::MAX, Some(Duration::MAX), &mut jitter),
        Next::GiveUp | Next::Wait(_)
    ));
    let _ = Jitter::from_entropy().up_to(Duration::from_secs(1));
}

#[test]
fn retry_after_is_a_floor_and_the_window_a_ceiling() {
    let policy = policy();
    let mut jitter = Jitter::seeded(7);
    for _ in 0..100 {
        let Next::Wait(delay) = policy.next(1, Duration::ZERO, Some(Duration::from_secs(30)), &mut jitter)
        else {
            panic!("gave up")
        };
        assert!(delay >= Duration::from_secs(30));
    }
    assert_eq!(
        policy.next(1, Duration::from_secs(3590), Some(Duration::from_secs(30)), &mut jitter),
        Next::GiveUp,
        "a wait that would end after the window gives up instead"
    );
}

#[test]
fn retry_after_headers_are_read_in_both_forms() {
    let now: jiff::Timestamp = "2026-10-21T07:27:00Z".parse().expect("time");
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", now), Some(Duration::from_secs(60)));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("99999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
}

#[tokio::test(start_paused = true)]
async fn retries_until_delivered_honouring_retry_after() {
    let started = Instant::now();
    let mut times = Vec::new();
    let delivery = deliver(&policy(), &mut Jitter::seeded(1), |attempt| {
        times.push(started.elapsed());
        async move {
            match attempt {
                1 => Attempt::Retry { outcome: 503, retry_after: None },
                2 => Attempt::Retry { outcome: 429, retry_after: Some(Duration::from_secs(20)) },
                _ => Attempt::Delivered(200),
            }
        }
    })
    .await;
    assert_eq!((delivery.ending, delivery.last, delivery.attempts), (Ending::Delivered, 200, 3));
    assert!(times[1] <= Duration::from_secs(1), "first retry within the first ceiling: {times:?}");
    assert!(times[2] - times[1] >= Duration::from_secs(20), "Retry-After honoured: {times:?}");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_answer_is_never_retried() {
    let mut calls = 0;
    let delivery = deliver(&policy(), &mut Jitter::seeded(2), |_| {
        calls += 1;
        async { Attempt::Permanent(401) }
    })
    .await;
    assert_eq!((delivery.ending, delivery.attempts, calls), (Ending::Permanent, 1, 1));
    assert_eq!(delivery.elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_window_closes_and_the_failure_is_kept() {
    let policy = policy();
    let started = Instant::now();
    let delivery = deliver(&policy, &mut Jitter::seeded(3), |_| async {
        Attempt::Retry { outcome: 500, retry_after: None }
    })
    .await;
    assert_eq!((delivery.ending, delivery.last), (Ending::GaveUp, 500));
    assert!(started.elapsed() <= policy.window, "{:?}", started.elapsed());
    // With a 60 s ceiling the mean wait is 30 s, so an hour holds well over 60 attempts.
    assert!(delivery.attempts > 60, "{} attempts", delivery.attempts);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_is_smooth_and_a_burst_never_exceeds_it_in_any_minute() {
    let per_minute = 600;
    let mut limiter = RateLimiter::per_minute(per_minute);
    let started = Instant::now();
    let mut sent = Vec::new();
    for _ in 0..(per_minute * 3) {
        limiter.acquire().await;
        sent.push(started.elapsed());
    }
    // 100 ms, widened by the 1/200 headroom.
    assert_eq!(limiter.interval(), Duration::from_nanos(100_502_512));
    // Even a window 0.3 s longer than a minute — arrival jitter — holds no more than the limit.
    let jittered_minute = Duration::from_millis(60_299);
    for (index, at) in sent.iter().enumerate() {
        let in_minute = sent[index..].iter().take_while(|later| **later < *at + jittered_minute).count();
        assert!(in_minute <= per_minute as usize, "{in_minute} requests in the minute from {at:?}");
    }
    // ...and the limit is used: 1,800 requests take 1% longer than 180 s at most.
    let total = started.elapsed();
    assert!(total >= Duration::from_secs(180) && total < Duration::from_millis(181_800), "{total:?}");
}

#[tokio::test(start_paused = true)]
async fn a_limit_over_any_window_scales_the_spacing() {
    let limit = RateLimit { requests: 50, per: Duration::from_secs(2) };
    assert_eq!(limit.interval(), Duration::from_nanos(40_201_005));
    assert_eq!(RateLimit::per_minute(30_000).interval(), Duration::from_nanos(2_010_050));
    assert_eq!(
        RateLimit { requests: 0, per: Duration::from_secs(1) }.interval(),
        Duration::from_nanos(1_005_025_125)
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_pushes_the_next_slot_back() {
    let mut limiter = RateLimiter::per_minute(60);
    limiter.acquire().await;
    let now = Instant::now();
    limiter.slow_down(now, Duration::from_secs(30));
    limiter.acquire().await;
    assert!(now.elapsed() >= Duration::from_secs(30));
}
