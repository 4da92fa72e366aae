//! Sending over HTTP: one pooled keep-alive client, a timeout per request, a smooth rate limit per
//! destination account, and the retry rules of [`deliver`](crate::deliver).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::{
    Attempt, Delivery, Ending, Jitter, RateLimit, RateLimiter, RetryPolicy, deliver, parse_retry_after,
};

/// How much of an answer's body is kept, for the debugger and error messages.
pub const KEPT_BODY_BYTES: usize = 2048;

/// What a destination answered, reduced to what delivery and the debugger need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` it asked for.
    pub retry_after: Option<Duration>,
    /// The start of the body, at most [`KEPT_BODY_BYTES`].
    pub body: Vec<u8>,
    /// From sending the request to the end of the answer.
    pub latency: Duration,
}

/// A request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within the per-request timeout.
    Timeout,
    /// The connection could not be made or was dropped: the text says how.
    Connection(String),
    /// Not sent: the body is larger than the destination accepts.
    TooLarge {
        /// The body's size.
        bytes: usize,
        /// The destination's limit.
        limit: usize,
    },
}

/// Each attempt's HTTP status (`None`: no answer) and how long it took, in order.
pub type AttemptLog = Vec<(Option<u16>, Duration)>;

/// The outcome of one attempt: an answer, or none.
pub type Response = Result<Answer, NoAnswer>;

/// Whether an answer is delivered, worth retrying, or permanent: the destination's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted.
    Delivered,
    /// Try again later.
    Retry,
    /// Will fail again.
    Permanent,
}

/// Everything a destination decides about one attempt's outcome, decided once: whether to try
/// again, whether the integration itself is refused, what to call the outcome, its likely cause and
/// what the destination said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Delivered, retry or permanent.
    pub disposition: Disposition,
    /// The credentials or the account are refused (a wrong key, a suspended account): the
    /// integration's other events would be refused too, so they should wait instead.
    pub pause: bool,
    /// The outcome's short name, as in metrics and records: the HTTP status (`"401"`, and `"413"`
    /// for a body refused by the size guard before sending), or `"timeout"`, `"connection"`.
    pub code: String,
    /// The likely cause, from the destination's troubleshooting guide.
    pub hint: Option<String>,
    /// The destination's own error type, e.g. `MissingAttributeError`.
    pub error_type: Option<String>,
    /// What the destination (or the connection) said, e.g. `customer_id is not found in the payload`.
    pub said: Option<String>,
}

/// Which of a destination's APIs a request is for, by the name the destination gives it (MoEngage's:
/// `event`, `customer`, `merge`, `device`). Chosen by whoever built the body, never read back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Api(&'static str);

impl Api {
    /// The API named `name`.
    pub const fn named(name: &'static str) -> Api {
        Api(name)
    }
}

/// One request for a destination: the API it is for, and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The destination's API.
    pub api: Api,
    /// The body, as sent.
    pub body: Vec<u8>,
}

/// What the sender needs to know of a destination.
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// The account a request counts against for rate limiting (e.g. a workspace id).
    fn account(&self) -> &str;
    /// The account's limit.
    fn rate_limit(&self) -> RateLimit;
    /// The largest body the destination accepts; larger ones are refused without a request.
    fn max_body_bytes(&self) -> usize {
        usize::MAX
    }
    /// Where requests go, for people: progress lines, summaries, logs. Never holds a secret.
    fn shown_as(&self) -> String;
    /// The HTTP request carrying `body` to the destination's API `api`.
    fn request(&self, client: &reqwest::Client, api: Api, body: bytes::Bytes) -> reqwest::RequestBuilder;
    /// What an attempt's outcome — an answer, or none — means.
    fn classify(&self, response: &Response) -> Classification;
}

/// One body's delivery: how it ended, each attempt's status and latency, and the destination's
/// reading of the last attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    /// How it ended, and the last attempt's outcome.
    pub delivery: Delivery<Response>,
    /// Each attempt's status (`None`: no answer) and latency, in order.
    pub attempt_log: AttemptLog,
    /// The last attempt's classification.
    pub classification: Classification,
}

/// Delivers request bodies to destinations. Cheap to share: clone the `Arc`.
pub struct HttpSender {
    client: reqwest::Client,
    policy: RetryPolicy,
    timeout: Duration,
    limiters: Mutex<HashMap<String, Arc<Mutex<RateLimiter>>>>,
    watch: Watch,
}

/// How deliveries in progress fare, for people watching: how many bodies are waiting to be tried
/// again, why the latest attempt failed, and whether any answer has come at all.
#[derive(Debug, Default)]
struct Watch {
    retrying: AtomicU64,
    latest_failure: Mutex<Option<String>>,
    answered: AtomicBool,
}

/// Counts one body in [`Watch::retrying`] while its last attempt failed; dropped — delivered, given
/// up, or cancelled — it is counted no longer.
struct RetryMark<'a> {
    watch: &'a Watch,
    marked: AtomicBool,
}

impl RetryMark<'_> {
    fn mark(&self, retrying: bool) {
        if self.marked.swap(retrying, Ordering::Relaxed) != retrying {
            if retrying {
                self.watch.retrying.fetch_add(1, Ordering::Relaxed);
            } else {
                self.watch.retrying.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for RetryMark<'_> {
    fn drop(&mut self) {
        self.mark(false);
    }
}

/// A snapshot of the deliveries in progress (see [`HttpSender::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    /// Bodies whose last attempt failed and that wait to be tried again.
    pub retrying: u64,
    /// Why the latest failed attempt failed: `connection refused at http://127.0.0.1:9`, `503`.
    pub latest_failure: Option<String>,
    /// Whether any attempt has had an HTTP answer (of any status) since the sender was made.
    pub answered: bool,
}

impl HttpSender {
    /// A sender with a pooled client, `timeout` per request and `policy` for retries.
    pub fn new(policy: RetryPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(60))
            .build()?;
        Ok(HttpSender { client, policy, timeout, limiters: Mutex::default(), watch: Watch::default() })
    }

    /// How the deliveries in progress fare: for a progress line that says "12 retrying: connection
    /// refused at …", and to notice a destination that has never answered.
    pub fn progress(&self) -> InProgress {
        InProgress {
            retrying: self.watch.retrying.load(Ordering::Relaxed),
            latest_failure: self.watch.latest_failure.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            answered: self.watch.answered.load(Ordering::Relaxed),
        }
    }

    // Plain mutexes: they are held for a map lookup or a slot reservation, never across an await.
    fn limiter(&self, destination: &dyn Destination) -> Arc<Mutex<RateLimiter>> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(limiter) = limiters.get(destination.account()) {
            return limiter.clone();
        }
        let limiter = Arc::new(Mutex::new(RateLimiter::new(destination.rate_limit())));
        limiters.insert(destination.account().to_owned(), limiter.clone());
        limiter
    }

    /// Sends `request` until it is delivered, refused for good, or the retry window closes. A body
    /// over the destination's size limit is refused at once, with no attempt.
    pub async fn send(&self, destination: &dyn Destination, request: Request) -> Delivery<Response> {
        self.deliver(destination, request).await.delivery
    }

    /// [`send`](Self::send), with every attempt's status and latency and the destination's reading
    /// of the last one.
    pub async fn deliver(&self, destination: &dyn Destination, request: Request) -> Sent {
        self.deliver_watched(destination, request, &|_, _| {}).await
    }

    /// [`deliver`](Self::deliver), telling `on_retry` of each failed attempt worth trying again:
    /// the attempts made so far and the destination's reading of the last one. (The last of them
    /// is told too when the retry window closes after it: the fate that follows says so.)
    pub async fn deliver_watched(
        &self,
        destination: &dyn Destination,
        request: Request,
        on_retry: &(dyn Fn(u32, &Classification) + Sync),
    ) -> Sent {
        let Request { api, body } = request;
        let limit = destination.max_body_bytes();
        if body.len() > limit {
            // Sending would only earn a 413 and spend a slot of the account's rate limit.
            let last = Err(NoAnswer::TooLarge { bytes: body.len(), limit });
            let classification = destination.classify(&last);
            let delivery = Delivery { ending: Ending::Permanent, last, attempts: 0, elapsed: Duration::ZERO };
            return Sent { delivery, attempt_log: Vec::new(), classification };
        }
        let limiter = self.limiter(destination);
        // Shared, so that each attempt hands the client the same bytes without copying them.
        let body = bytes::Bytes::from(body);
        let mut jitter = Jitter::from_entropy();
        let log = Mutex::new(Vec::new());
        let last_classification = Mutex::new(None);
        let retrying = RetryMark { watch: &self.watch, marked: AtomicBool::new(false) };
        let delivery = deliver(&self.policy, &mut jitter, |_| {
            let body = body.clone();
            let limiter = limiter.clone();
            let (log, last_classification, retrying) = (&log, &last_classification, &retrying);
            async move {
                // Reserve under the lock, wait outside it: others queue for their own slots meanwhile.
                let wait = limiter.lock().unwrap_or_else(PoisonError::into_inner).reserve(Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let started = Instant::now();
                let response = self.attempt(destination, api, body).await;
                let status = response.as_ref().ok().map(|answer| answer.status);
                let attempts = {
                    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                    log.push((status, started.elapsed()));
                    u32::try_from(log.len()).unwrap_or(u32::MAX)
                };
                let classification = destination.classify(&response);
                let verdict = classification.disposition;
                if status.is_some() {
                    self.watch.answered.store(true, Ordering::Relaxed);
                }
                retrying.mark(verdict == Disposition::Retry);
                if verdict == Disposition::Retry {
                    // The innermost cause of a failed connection says the most in the fewest words.
                    let why = match (&classification.said, status) {
                        (Some(said), None) => {
                            format!("{} — {}", said.rsplit(": ").next().unwrap_or(said), destination.shown_as())
                        }
                        _ => format!("{} — {}", classification.code, destination.shown_as()),
                    };
                    *self.watch.latest_failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
                    on_retry(attempts, &classification);
                }
                *last_classification.lock().unwrap_or_else(PoisonError::into_inner) = Some(classification);
                let retry_after = response.as_ref().ok().and_then(|answer| answer.retry_after);
                if status == Some(429) && verdict == Disposition::Retry {
                    let pause = retry_after.unwrap_or(Duration::from_secs(1));
                    limiter.lock().unwrap_or_else(PoisonError::into_inner).slow_down(Instant::now(), pause);
                }
                match verdict {
                    Disposition::Delivered => Attempt::Delivered(response),
                    Disposition::Permanent => Attempt::Permanent(response),
                    Disposition::Retry => Attempt::Retry { outcome: response, retry_after },
                }
            }
        })
        .await;
        drop(retrying);
        let classification = last_classification
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(|| destination.classify(&delivery.last));
        Sent { delivery, attempt_log: log.into_inner().unwrap_or_else(PoisonError::into_inner), classification }
    }

    async fn attempt(&self, destination: &dyn Destination, api: Api, body: bytes::Bytes) -> Response {
        let started = Instant::now();
        let exchange = async {
            let mut response = destination.request(&self.client, api, body).send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, jiff::Timestamp::now()));
            let mut kept = Vec::new();
            // Read the whole body so the connection can be reused, keeping only its start.
            while let Some(chunk) = response.chunk().await? {
                let room = KEPT_BODY_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok::<_, reqwest::Error>((status, retry_after, kept))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(NoAnswer::Timeout),
            Ok(Err(error)) if error.is_timeout() => Err(NoAnswer::Timeout),
            Ok(Err(error)) => Err(NoAnswer::Connection(describe(error))),
            Ok(Ok((status, retry_after, body))) => {
                Ok(Answer { status, retry_after, body, latency: started.elapsed() })
            }
        }
    }
}

/// The error and its causes in one line, without the URL's query (which may carry secrets).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
