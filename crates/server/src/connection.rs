//! The time limits of one collector connection. A client must send a request's headers within the
//! header limit once it has begun them (or once it connected, for its first request), and a
//! kept-alive connection may wait idle for its next request up to the idle limit: two clocks, told apart by watching the bytes the connection reads
//! and the requests its service handles.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a connection may take over a request's headers, and stay idle between requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the first byte of a request to its last header.
    pub header: Duration,
    /// From the end of one request (or the connection's start) to the first byte of the next.
    pub idle: Duration,
}

/// What one connection is doing, in milliseconds since it was accepted.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// A request is being handled (its body read, its answer made): the body has its own limit.
    in_request: AtomicBool,
    /// When the connection last came to rest: accepted, or a request answered.
    rested_at: AtomicU64,
    /// Whether it has had a request: until then, waiting is waiting for headers.
    served: AtomicBool,
    /// When the first byte after that rest arrived; `u64::MAX` while none has.
    head_started_at: AtomicU64,
    /// Whether its socket has been read at all: until then, whether it is idle is not known.
    read_at_all: AtomicBool,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Self {
        Activity {
            started: Instant::now(),
            in_request: AtomicBool::new(false),
            rested_at: AtomicU64::new(0),
            served: AtomicBool::new(false),
            head_started_at: AtomicU64::new(u64::MAX),
            read_at_all: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn bytes_read(&self) {
        if !self.in_request.load(Ordering::Relaxed) && self.head_started_at.load(Ordering::Relaxed) == u64::MAX {
            self.head_started_at.store(self.now(), Ordering::Relaxed);
        }
    }

    fn request_began(&self) {
        self.in_request.store(true, Ordering::Relaxed);
    }

    fn request_ended(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.rested_at.store(self.now(), Ordering::Relaxed);
        self.head_started_at.store(u64::MAX, Ordering::Relaxed);
        self.in_request.store(false, Ordering::Relaxed);
    }

    /// When the connection came to rest, while it is at rest: no request is being handled (or its
    /// answer still streamed), whether or not the next request's headers have begun.
    ///
    /// A connection whose socket has not yet been read is not known to be at rest: a health check
    /// accepted in a flood has sent its request already, and waits only for its turn to be read.
    fn resting_since(&self) -> Option<Instant> {
        if self.in_request.load(Ordering::Relaxed) || !self.read_at_all.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.started + Duration::from_millis(self.rested_at.load(Ordering::Relaxed)))
    }

    /// Whether the connection has overstayed a limit.
    fn overstayed(&self, limits: Limits) -> bool {
        if self.in_request.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.now();
        let limit_ms = |limit: Duration| u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        match self.head_started_at.load(Ordering::Relaxed) {
            // A connection opened and silent is a client that has not begun its headers: it gets
            // the header limit, so that holding a slot costs a connection every few seconds.
            u64::MAX if !self.served.load(Ordering::Relaxed) => {
                now.saturating_sub(self.rested_at.load(Ordering::Relaxed)) > limit_ms(limits.header)
            }
            u64::MAX => now.saturating_sub(self.rested_at.load(Ordering::Relaxed)) > limit_ms(limits.idle),
            began => now.saturating_sub(began) > limit_ms(limits.header),
        }
    }
}

/// Serves `connection` until it ends, or until it overstays a limit: then it is dropped, which
/// closes the socket.
pub async fn watch(connection: impl Future, activity: &Activity, limits: Limits) {
    let period = limits.header.min(limits.idle).min(Duration::from_secs(1)).max(Duration::from_millis(50));
    let mut checks = tokio::time::interval(period);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(connection);
    loop {
        tokio::select! {
            _ = &mut connection => return,
            _ = checks.tick() => {
                if activity.overstayed(limits) {
                    return;
                }
            }
        }
    }
}

/// A connection's socket or service, reporting what happens on it to its [`Activity`].
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl Watched<TcpStream> {
    /// The socket, noting when bytes arrive.
    pub fn stream(stream: TcpStream, activity: Arc<Activity>) -> Self {
        Watched { inner: stream, activity }
    }
}

impl Watched<hyper_util::service::TowerToHyperService<Router>> {
    /// The router, noting when each request begins and ends.
    pub fn service(router: Router, activity: Arc<Activity>) -> Self {
        Watched { inner: hyper_util::service::TowerToHyperService::new(router), activity }
    }
}

impl<R> hyper::service::Service<R> for Watched<hyper_util::service::TowerToHyperService<Router>>
where
    hyper_util::service::TowerToHyperService<Router>: hyper::service::Service<R>,
    <hyper_util::service::TowerToHyperService<Router> as hyper::service::Service<R>>::Future: Send + 'static,
{
    type Response = <hyper_util::service::TowerToHyperService<Router> as hyper::service::Service<R>>::Response;
    type Error = <hyper_util::service::TowerToHyperService<Router> as hyper::service::Service<R>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        self.activity.request_began();
        let answered = self.inner.call(request);
        let activity = self.activity.clone();
        Box::pin(async move {
            let answer = answered.await;
            activity.request_ended();
            answer
        })
    }
}

/// The admin router, holding each request as in progress until its answer's body is done: a live
/// stream is busy for as long as it streams, and is never taken for an idle connection.
pub struct WatchedToTheEnd {
    inner: hyper_util::service::TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl WatchedToTheEnd {
    /// The router, noting when each request begins and when its answer has been sent.
    pub fn service(router: Router, activity: Arc<Activity>) -> Self {
        WatchedToTheEnd { inner: hyper_util::service::TowerToHyperService::new(router), activity }
    }
}

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for WatchedToTheEnd {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        self.activity.request_began();
        let ended = RequestEnds(self.activity.clone());
        let answered = self.inner.call(request);
        Box::pin(async move {
            let answer = answered.await?;
            Ok(answer.map(|body| axum::body::Body::new(UntilSent { body, _ended: ended })))
        })
    }
}

/// Ends its connection's request when dropped: with the answer's body once sent, or with the
/// request if the connection goes first.
struct RequestEnds(Arc<Activity>);

impl Drop for RequestEnds {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// An answer's body, with what ends its request when it is done.
struct UntilSent {
    body: axum::body::Body,
    _ended: RequestEnds,
}

impl hyper::body::Body for UntilSent {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The admin listener's open connections, so that a new one can take the place of the one at rest
/// the longest when all are taken: a flood of idle or half-sent connections then costs nothing
/// but its own connections, and a health check, which asks at once, is answered.
#[derive(Default)]
pub struct Evictable {
    open: std::sync::Mutex<Vec<Open>>,
    next_id: AtomicU64,
}

struct Open {
    id: u64,
    activity: Arc<Activity>,
    /// Set once its task is spawned.
    abort: Option<tokio::task::AbortHandle>,
}

/// A connection let in, and whether another was closed to make room.
pub struct Admitted {
    /// Its place.
    pub place: Place,
    /// Whether the connection at rest the longest was closed for it.
    pub evicted: bool,
}

/// One connection's place among the open ones, given up when dropped.
pub struct Place {
    id: u64,
    connections: Arc<Evictable>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.connections.lock().retain(|open| open.id != self.id);
    }
}

impl Place {
    /// What lets the place be taken back, once the task serving it is spawned (the place itself
    /// moves into that task).
    pub fn closer(&self) -> Closer {
        Closer { id: self.id, connections: self.connections.clone() }
    }
}

/// Names the task serving a [`Place`], so that it can be closed for a newcomer.
pub struct Closer {
    id: u64,
    connections: Arc<Evictable>,
}

impl Closer {
    /// The place is served by `task`; a task that has ended already has given its place up.
    pub fn served_by(self, task: tokio::task::AbortHandle) {
        if let Some(open) = self.connections.lock().iter_mut().find(|open| open.id == self.id) {
            open.abort = Some(task);
        }
    }
}

impl Evictable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Open>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place for a new connection among at most `limit`: a free one, or the place of the
    /// connection at rest the longest, which is closed (then `evicted` is true). `None` when every
    /// connection is busy.
    pub fn admit(self: &Arc<Self>, activity: Arc<Activity>, limit: usize) -> Option<Admitted> {
        let mut open = self.lock();
        let evicted = open.len() >= limit;
        if evicted {
            let longest_at_rest = open
                .iter()
                .enumerate()
                .filter(|(_, connection)| connection.abort.is_some())
                .filter_map(|(index, connection)| connection.activity.resting_since().map(|since| (since, index)))
                .min()?
                .1;
            let evicted = open.swap_remove(longest_at_rest);
            if let Some(task) = evicted.abort {
                task.abort();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.push(Open { id, activity, abort: None });
        Some(Admitted { place: Place { id, connections: self.clone() }, evicted })
    }
}

impl AsyncRead for Watched<TcpStream> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.activity.read_at_all.store(true, Ordering::Relaxed);
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched<TcpStream> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_closes_the_connection_at_rest_the_longest_never_a_busy_one() {
        let connections = Arc::new(Evictable::default());
        let mut tasks = tokio::task::JoinSet::new();
        let mut admit = |activity: &Arc<Activity>| {
            let place = connections.admit(activity.clone(), 4)?.place;
            let task = tasks.spawn(std::future::pending::<()>());
            place.closer().served_by(task.clone());
            Some((place, task))
        };
        let at_rest = |activity: Activity| {
            activity.read_at_all.store(true, Ordering::Relaxed);
            Arc::new(activity)
        };
        let busy = at_rest(Activity::new());
        busy.request_began();
        let (_busy_place, busy_task) = admit(&busy).expect("a free place");
        tokio::time::advance(Duration::from_secs(1)).await;
        let oldest = at_rest(Activity::new());
        let (_oldest_place, oldest_task) = admit(&oldest).expect("a free place");
        tokio::time::advance(Duration::from_secs(1)).await;
        // Accepted, never read: not known to be idle, so not closed for a newcomer.
        let unread = Arc::new(Activity::new());
        let (_unread_place, unread_task) = admit(&unread).expect("a free place");
        let newer = at_rest(Activity::new());
        let (_newer_place, newer_task) = admit(&newer).expect("a free place");

        let newest = Arc::new(Activity::new());
        let (newest_place, _) = admit(&newest).expect("the oldest at rest makes room");
        tokio::task::yield_now().await;
        assert!(oldest_task.is_finished(), "the connection at rest the longest was closed");
        assert!(!busy_task.is_finished() && !newer_task.is_finished() && !unread_task.is_finished());

        // Every place is busy (or not yet read): nothing is closed, and the newcomer is told so.
        newer.request_began();
        newest.request_began();
        assert!(admit(&Arc::new(Activity::new())).is_none());
        // A place given up is free again.
        drop(newest_place);
        assert!(admit(&Arc::new(Activity::new())).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn headers_and_idleness_have_their_own_clocks() {
        let limits = Limits { header: Duration::from_secs(10), idle: Duration::from_secs(60) };
        let activity = Activity::new();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(!activity.overstayed(limits), "opened 9 s ago, nothing sent");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(activity.overstayed(limits), "opened 11 s ago and still silent");

        let activity = Activity::new();
        activity.bytes_read();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(activity.overstayed(limits), "11 s into a request's headers");

        let activity = Activity::new();
        activity.bytes_read();
        activity.request_began();
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(!activity.overstayed(limits), "a request in progress is the body's business");
        activity.request_ended();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!activity.overstayed(limits), "idle for 59 s after an answer");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(activity.overstayed(limits), "idle for 61 s");
    }
}
