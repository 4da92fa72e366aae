//! `signal serve`: the collector takes events over HTTP and commits them to the durable queue; one
//! worker per integration delivers them through each pipeline's blueprint with the shared sender;
//! an admin listener serves the Event Debugger, `/healthz`, `/readyz` and `/metrics`. A reload
//! (SIGHUP, `POST /api/reload`) swaps in a new configuration without dropping a connection.

pub mod admin;
pub mod collector;
mod connection;
pub mod metrics;
pub mod leases;
pub mod refusals;
pub mod tag;
pub mod remembered;
pub mod worker;
mod write_key;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use config::Config;
use sender::HttpSender;
use store::Queue;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::metrics::Metrics;
use crate::refusals::Refusals;

/// Why the service could not start, or stopped with an error: a kind to act on, and a message that
/// says what and how to fix it.
#[derive(Debug)]
pub struct ServerError {
    kind: ServerErrorKind,
    message: String,
}

/// The kinds of [`ServerError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerErrorKind {
    /// An address could not be listened on (in use, not this machine's, a privileged port).
    Listen,
    /// The HTTP client that delivers events could not be built (its TLS set-up failed).
    Client,
    /// The admin listener is reachable from other machines and there is no `admin_token` to guard
    /// the Event Debugger's events (emails, phone numbers).
    AdminUnguarded,
}

impl ServerError {
    /// What kind of failure it is.
    pub fn kind(&self) -> ServerErrorKind {
        self.kind
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerError {}

/// What the collector, the workers and the admin endpoints share.
pub struct Shared<Q> {
    config: RwLock<Arc<Config>>,
    /// The queue.
    pub queue: Q,
    /// The metrics.
    pub metrics: Metrics,
    /// Refused requests, for rate-limited logging.
    pub refusals: Refusals,
    wakes: RwLock<Vec<Arc<Notify>>>,
    ready: AtomicBool,
    reloads: mpsc::UnboundedSender<ReloadRequest>,
    /// Where the admin listener is bound: the address a reload cannot change.
    admin_address: std::net::SocketAddr,
    /// Turns true when the service stops: the debugger's live streams end then.
    pub(crate) stopping: watch::Receiver<bool>,
    /// One permit per live stream the debugger may have open: each costs work per event.
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
    /// Why the store's last write failed, until one succeeds: `/readyz` answers 503 meanwhile.
    store_failing: std::sync::Mutex<Option<String>>,
    /// When `/readyz` last found the store taking writes: it asks again at most once a second.
    store_probed: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl<Q> Shared<Q> {
    /// Notes how a write to the store went: a failure makes `/readyz` answer 503 until a write
    /// (or `/readyz`'s own probe) succeeds.
    pub(crate) fn store_wrote<T>(&self, result: &Result<T, store::StoreError>) {
        let mut failing = self.store_failing.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => *failing = None,
            Err(error) => *failing = Some(error.to_string()),
        }
    }

    fn store_failing(&self) -> bool {
        self.store_failing.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// The configuration in force: a request holds one for its whole life, whatever reloads do.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Tells every worker that events were queued.
    pub fn wake_workers(&self) {
        for wake in self.wakes.read().unwrap_or_else(PoisonError::into_inner).iter() {
            wake.notify_one();
        }
    }

    /// Asks for the configuration to be loaded again; the answer says what changed, or why the new
    /// one was refused (the running one is kept).
    pub async fn reload(&self) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.reloads
            .send(ReloadRequest { reply: Some(reply) })
            .map_err(|_| "the service is stopping".to_owned())?;
        answer.await.map_err(|_| "the service is stopping".to_owned())?
    }
}

/// Loads the configuration again, from where it came: the diagnostics when it does not validate.
pub type Reloader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// How a running service is given a new configuration.
pub struct Reloading {
    /// Loads it.
    pub load: Reloader,
    /// One message per SIGHUP.
    pub hangups: mpsc::UnboundedReceiver<()>,
}

struct ReloadRequest {
    reply: Option<oneshot::Sender<Result<String, String>>>,
}

/// The listeners, bound before anything runs so that a port in use is reported at once.
pub struct Listeners {
    /// The collector's.
    pub collector: TcpListener,
    /// The admin endpoints'.
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both addresses of `config`.
    pub async fn bind(config: &Config) -> Result<Listeners, ServerError> {
        let bind = |address, what: &'static str, option: &'static str| async move {
            listen(address).map_err(|error| ServerError {
                kind: ServerErrorKind::Listen,
                message: format!(
                    "cannot listen on {address} for {what}: {error}; set `{option}` in the configuration"
                ),
            })
        };
        Ok(Listeners {
            collector: bind(config.listen, "events", "listen").await?,
            admin: bind(config.admin_listen, "health and metrics", "admin_listen").await?,
        })
    }
}

/// Connections the kernel completes for a listener before it accepts them: a burst of senders (or a
/// flood the admin listener sheds) must not overflow the queue, which would leave a client waiting
/// a second for its handshake to be tried again. The system's `somaxconn` caps it.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restart binds while the last run's connections wait out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs the service until `shutdown` completes: then stops taking events (requests in progress
/// finish and are committed), lets deliveries in flight finish or gives them back to the queue, and
/// returns. With `reloading`, SIGHUP and `POST /api/reload` swap in a new configuration.
pub async fn run<Q: Queue + Clone>(
    config: Config,
    queue: Q,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
    reloading: Option<Reloading>,
) -> Result<(), ServerError> {
    let sender = build_sender(&config)?;
    let admin_address = listeners.admin.local_addr().unwrap_or(config.admin_listen);
    if let Some(refusal) = unguarded(admin_address, &config) {
        return Err(ServerError { kind: ServerErrorKind::AdminUnguarded, message: refusal });
    }
    let (reloads, reload_requests) = mpsc::unbounded_channel();
    let (stop_admin, admin_stopping) = watch::channel(false);
    let shared = Arc::new(Shared {
        config: RwLock::new(Arc::new(config)),
        queue,
        metrics: Metrics::default(),
        refusals: Refusals::default(),
        wakes: RwLock::new(Vec::new()),
        ready: AtomicBool::new(false),
        reloads: reloads.clone(),
        admin_address,
        stopping: admin_stopping.clone(),
        store_probed: tokio::sync::Mutex::new(None),
        streams: Arc::new(tokio::sync::Semaphore::new(admin::MAX_STREAMS)),
        store_failing: std::sync::Mutex::new(None),
    });
    let (load, hangups) = match reloading {
        Some(Reloading { load, hangups }) => (Some(load), Some(hangups)),
        None => (None, None),
    };
    if let Some(mut hangups) = hangups {
        let reloads = reloads.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                if reloads.send(ReloadRequest { reply: None }).is_err() {
                    break;
                }
            }
        });
    }
    drop(reloads);
    let (stop_workers, stopping) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(shared.clone(), sender, load, reload_requests, stopping));

    let mut collector = Router::new();
    for &(path, endpoint) in collector::EVENT_PATHS {
        collector = collector.route(path, any(move |state, request| collector::ingest(endpoint, state, request)));
    }
    let collector = collector
        .route(collector::TELEMETRY_PATH, any(collector::telemetry::<Q>))
        .route(tag::PATH, get(tag::serve_tag))
        .route(&tag::versioned_path(), get(tag::serve_versioned_tag))
        .route(tag::ID_PATH, any(tag::anonymous_id::<Q>))
        .fallback(collector::not_found::<Q>)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), collector::cors::<Q>))
        // The collector enforces its own, configured, limit and answers with a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared.clone());
    let admin = admin::router(shared.clone())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<Q>))
        .with_state(shared.clone());
    // What a connection past the admin listener's limit is served: health, for orchestrators.
    let health_only = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<Q>))
        .fallback(|| async {
            (StatusCode::SERVICE_UNAVAILABLE, "the admin listener is at its connection limit; only /healthz and /readyz are answered\n")
        })
        .with_state(shared.clone());

    let depth_refresh = tokio::spawn(refresh_depth(shared.clone()));
    let waking = shared.queue.queued_anywhere().map(|queued| tokio::spawn(wake_on_queued(shared.clone(), queued)));
    let pruning = tokio::spawn(prune(shared.clone()));
    let admin_server = tokio::spawn(serve_admin(shared.clone(), listeners.admin, admin, health_only, admin_stopping));
    shared.ready.store(true, Ordering::Relaxed);
    serve_collector(listeners.collector, collector, &shared, shutdown).await;
    tracing::info!("no longer taking events; finishing deliveries in flight");
    let _ = stop_workers.send(true);
    let _ = supervisor.await;
    depth_refresh.abort();
    if let Some(waking) = waking {
        waking.abort();
    }
    pruning.abort();
    let _ = stop_admin.send(true);
    // Live streams end when told; a client still sending a request gets the same bounded wait.
    let admin_abort = admin_server.abort_handle();
    if tokio::time::timeout(shared.config().shutdown_grace, admin_server).await.is_err() {
        admin_abort.abort();
    }
    Ok(())
}

/// The most admin connections open at once: an operator's few tabs and scripts, never enough to
/// take the file descriptors the collector needs.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// How long an admin client may take over a request's headers, or stay idle between requests.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections kept for health checks once every admin connection is busy with a request.
const HEALTH_RESERVE: usize = 32;

/// How long a health check past the limit may take over its headers.
const HEALTH_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves the admin listener until `stopping` turns true. Each request knows its peer's address
/// (without a token only this machine is answered), headers must arrive within
/// [`ADMIN_HEADER_TIMEOUT`], and past [`ADMIN_MAX_CONNECTIONS`] a new connection takes the place
/// of the one at rest the longest; when every one is busy, a small reserve answers health only.
async fn serve_admin<Q: Queue>(
    shared: Arc<Shared<Q>>,
    listener: TcpListener,
    router: Router,
    health_only: Router,
    mut stopping: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Some(ADMIN_HEADER_TIMEOUT)).keep_alive(true);
    // Past the limit: one request each, quickly, and only health.
    let mut health_http = hyper::server::conn::http1::Builder::new();
    health_http.timer(TokioTimer::new()).header_read_timeout(Some(HEALTH_HEADER_TIMEOUT)).keep_alive(false);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(connection::Evictable::default());
    let health_permits = Arc::new(tokio::sync::Semaphore::new(HEALTH_RESERVE));
    let mut connections = tokio::task::JoinSet::new();
    let mut shed_since_warning = 0u64;
    let mut warned_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "the admin listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let activity = Arc::new(connection::Activity::new());
        let admitted = open.admit(activity.clone(), ADMIN_MAX_CONNECTIONS);
        // Every connection is busy with a request (or not yet read): a small reserve answers
        // health checks, and nothing else, with a short time limit; past it a connection is
        // closed unanswered.
        let reserved = match &admitted {
            Some(_) => None,
            None => health_permits.clone().try_acquire_owned().ok(),
        };
        let shed = match (&admitted, &reserved) {
            (Some(admitted), _) => admitted.evicted.then_some("evicted"),
            (None, Some(_)) => None,
            (None, None) => Some("refused"),
        };
        if let Some(reason) = shed {
            shared.metrics.admin_shed(reason);
            shed_since_warning += 1;
            // Once a minute at most: a flood must not flood the log too.
            if warned_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                tracing::warn!(
                    connections = ADMIN_MAX_CONNECTIONS,
                    shed = shed_since_warning,
                    "the admin listener is full: connections at rest are closed for newcomers (see signal_admin_connections_shed_total); a client is holding many connections open"
                );
                warned_at = Some(tokio::time::Instant::now());
                shed_since_warning = 0;
            }
        }
        // What the connection holds while it lasts: its place among the open ones, or a permit of
        // the reserve.
        let (held, builder, routes) = match (admitted, reserved) {
            (Some(admitted), _) => {
                let closer = admitted.place.closer();
                (Held::Place(admitted.place, closer), &http, &router)
            }
            (None, Some(permit)) => (Held::Reserve(permit), &health_http, &health_only),
            (None, None) => {
                drop(stream);
                continue;
            }
        };
        let service = connection::WatchedToTheEnd::service(
            routes.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            activity.clone(),
        );
        let io = TokioIo::new(connection::Watched::stream(stream, activity));
        let served = graceful.watch(builder.serve_connection(io, service));
        match held {
            Held::Place(place, closer) => {
                let task = connections.spawn(async move {
                    let _ = served.await;
                    drop(place);
                });
                closer.served_by(task);
            }
            Held::Reserve(permit) => {
                connections.spawn(async move {
                    let _ = served.await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What an admin connection holds while it lasts.
enum Held {
    /// A place among the open connections, and what closes it for a newcomer.
    Place(connection::Place, connection::Closer),
    /// One of the reserve's permits: health only.
    Reserve(tokio::sync::OwnedSemaphorePermit),
}

/// Why the admin listener at `address` may not run as `config` has it: reachable from other
/// machines with no token.
fn unguarded(address: std::net::SocketAddr, config: &Config) -> Option<String> {
    (!address.ip().is_loopback() && config.admin_token.is_none()).then(|| {
        format!(
            "the admin listener is on {address}, which other machines can reach, and there is no `admin_token`: the Event Debugger shows events with emails and phone numbers. Set `admin_token` in the configuration, or listen on 127.0.0.1"
        )
    })
}

fn build_sender(config: &Config) -> Result<Arc<HttpSender>, ServerError> {
    let sender = HttpSender::new(config.retry, config.timeout).map_err(|error| ServerError {
        kind: ServerErrorKind::Client,
        message: format!("cannot build the HTTP client that delivers events: {error}"),
    })?;
    Ok(Arc::new(sender))
}

/// Runs one generation of workers for the configuration in force; on a reload that validates, stops
/// them (what is in flight finishes or goes back to the queue), swaps the configuration in, makes
/// paused events pending again, and starts the next generation. A configuration that does not
/// validate is refused and the running one kept.
async fn supervise<Q: Queue + Clone>(
    shared: Arc<Shared<Q>>,
    mut sender: Arc<HttpSender>,
    load: Option<Reloader>,
    mut requests: mpsc::UnboundedReceiver<ReloadRequest>,
    mut stopping: watch::Receiver<bool>,
) {
    let node = leases::node_lease();
    loop {
        let config = shared.config();
        // Integrations that deliver to the same MoEngage workspace share its users' traits, and
        // its lease: one node at a time delivers for them.
        let mut workspaces: Vec<leases::Workspace> = Vec::new();
        for integration in &config.integrations {
            let account = integration.destination.account();
            let index = match workspaces.iter().position(|workspace| workspace.account == account) {
                Some(index) => index,
                None => {
                    workspaces.push(leases::Workspace {
                        account: account.to_owned(),
                        integrations: Vec::new(),
                        pipelines: Vec::new(),
                        traits: Arc::new(remembered::StoredTraits::new(account, remembered::CACHED_USERS)),
                        wakes: Vec::new(),
                    });
                    workspaces.len() - 1
                }
            };
            let workspace = &mut workspaces[index];
            workspace.integrations.push(integration.name.clone());
            workspace.wakes.push(Arc::new(Notify::new()));
            workspace.pipelines.extend(
                config
                    .pipelines
                    .iter()
                    .filter(|pipeline| pipeline.integration == integration.name)
                    .map(|pipeline| pipeline.name.clone()),
            );
        }
        *shared.wakes.write().unwrap_or_else(PoisonError::into_inner) =
            workspaces.iter().flat_map(|workspace| workspace.wakes.iter().cloned()).collect();
        let (stop_generation, generation_stopping) = watch::channel(false);
        let delivering = tokio::spawn(leases::deliver(
            shared.clone(),
            sender.clone(),
            config.clone(),
            workspaces,
            node.clone(),
            generation_stopping,
            stopping.clone(),
        ));
        let mut asking = true;
        let next = loop {
            tokio::select! {
                request = requests.recv(), if asking => {
                    let Some(ReloadRequest { reply }) = request else {
                        // No one can ask any more: run until stopped.
                        asking = false;
                        continue;
                    };
                    let answer = match &load {
                        None => Err("this service runs on its built-in defaults: there is no configuration file to load again (start it with --config FILE)".to_owned()),
                        Some(load) => load(),
                    };
                    let answer = answer.and_then(|next| match unguarded(shared.admin_address, &next) {
                        Some(refusal) => Err(refusal),
                        None => Ok(next),
                    });
                    match answer {
                        Ok(next) => break Some((next, reply)),
                        Err(diagnostics) => {
                            tracing::error!("the configuration was not reloaded; the running one is kept:\n{diagnostics}");
                            if let Some(reply) = reply {
                                let _ = reply.send(Err(diagnostics));
                            }
                        }
                    }
                }
                _ = stopping.wait_for(|stop| *stop) => break None,
            }
        };
        let _ = stop_generation.send(true);
        let _ = delivering.await;
        let Some((next, reply)) = next else { return };
        // Requests that came meanwhile are answered by this reload: the file was read after them.
        let mut replies = vec![reply];
        while let Ok(ReloadRequest { reply }) = requests.try_recv() {
            replies.push(reply);
        }
        let mut changes = Vec::new();
        if next.listen != config.listen || next.admin_listen != config.admin_listen || next.storage != config.storage {
            changes.push("`listen`, `admin_listen` and `storage` take effect at the next start".to_owned());
        }
        if next.retry != config.retry || next.timeout != config.timeout {
            match build_sender(&next) {
                Ok(rebuilt) => sender = rebuilt,
                Err(error) => tracing::error!(%error, "the delivery settings were not changed"),
            }
        }
        let pipelines: Vec<String> = next.pipelines.iter().map(|pipeline| pipeline.name.clone()).collect();
        *shared.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        let resumed = match shared.queue.resume_paused(pipelines).await {
            Ok(resumed) => resumed,
            Err(error) => {
                tracing::error!(%error, "paused events could not be resumed; they are at the next start");
                0
            }
        };
        let mut said = format!("configuration reloaded; {resumed} paused events are queued again");
        for change in changes {
            said.push_str("; ");
            said.push_str(&change);
        }
        tracing::info!("{said}");
        for reply in replies.into_iter().flatten() {
            let _ = reply.send(Ok(said.clone()));
        }
    }
}

/// Settled events past the retention go in small steps, each its own short commit, so that intake
/// and delivery never wait long behind a prune.
async fn prune<Q: Queue>(shared: Arc<Shared<Q>>) {
    const STEP: usize = 500;
    loop {
        let retention = shared.config().retention;
        match shared.queue.prune(retention, STEP).await {
            Ok(pruned) => {
                if pruned.failed > 0 {
                    tracing::warn!(events = pruned.failed, max_age = ?retention.max_age, "failed events older than the retention's max_age were deleted without a replay");
                }
                let pause = if pruned.total as usize >= STEP { Duration::from_millis(20) } else { Duration::from_secs(5) };
                tokio::time::sleep(pause).await;
            }
            Err(error) => {
                tracing::warn!(%error, "old events could not be pruned; trying again in a minute");
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}

/// Serves the collector on `listener` until `shutdown` completes. Every connection must send its
/// request headers within `header_timeout` (also the most a kept-alive connection waits idle), and at
/// most `max_connections` are open at once. Then readiness goes off at once, no connection is
/// accepted, idle ones are closed, and requests in progress have `shutdown_grace` to finish before
/// their connections are cut: stopping ends, whatever clients do.
async fn serve_collector<Q: Queue>(
    listener: TcpListener,
    router: Router,
    shared: &Shared<Q>,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::TokioIo;
    // Listening settings take effect at start: a reload does not change them.
    let config = &*shared.config();
    let mut http = hyper::server::conn::http1::Builder::new();
    // Header and idle time limits are kept by each connection's watch (see `connection`): hyper's
    // own header timer would also cut idle kept-alive connections at the header limit.
    http.header_read_timeout(None).keep_alive(true);
    let limits = connection::Limits { header: config.header_timeout, idle: config.idle_timeout };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Clamped: a semaphore holds at most `Semaphore::MAX_PERMITS`, and the open-file limit is far lower.
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.clamp(1, 1 << 24)));
    let mut connections = tokio::task::JoinSet::new();
    let mut at_limit_logged = false;
    tokio::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !std::mem::replace(&mut at_limit_logged, true) {
                    tracing::warn!(max_connections = config.max_connections, "the collector has as many connections open as it takes; new ones wait");
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was accepted: a
                    // short pause, not a stop.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(connection::Activity::new());
        let service = connection::Watched::service(router.clone(), activity.clone());
        let io = TokioIo::new(connection::Watched::stream(stream, activity.clone()));
        let served = graceful.watch(http.serve_connection(io, service));
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            // A client that vanishes ends its own connection; one that overstays is dropped here,
            // which closes the socket. Neither is worth a log line.
            connection::watch(served, &activity, limits).await;
            drop(permit);
        });
    }
    shared.ready.store(false, Ordering::Relaxed);
    drop(listener);
    let open = graceful.count();
    tracing::info!(connections = open, grace = ?config.shutdown_grace, "stopping: no new connections; idle ones closed, requests in progress may finish");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        connections.abort_all();
        tracing::warn!(grace = ?config.shutdown_grace, "requests still in progress when the grace ran out were cut; their clients were not answered and will send again");
    }
}

/// Wakes the workers when any node queued events, so that the node holding their workspace's lease
/// claims them at once rather than at its next poll.
async fn wake_on_queued<Q: Queue>(shared: Arc<Shared<Q>>, mut queued: tokio::sync::broadcast::Receiver<()>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match queued.recv().await {
            Ok(()) | Err(RecvError::Lagged(_)) => shared.wake_workers(),
            Err(RecvError::Closed) => return,
        }
    }
}

async fn refresh_depth<Q: Queue>(shared: Arc<Shared<Q>>) {
    loop {
        if let Ok(depth) = shared.queue.depth().await {
            shared.metrics.queue_depth(depth);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// How long `/readyz` trusts a write that succeeded: probes cost a small commit each.
const STORE_PROBE_PERIOD: Duration = Duration::from_secs(1);

async fn readyz<Q: Queue>(State(shared): State<Arc<Shared<Q>>>) -> Response {
    if !shared.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n").into_response();
    }
    // An idle service learns of a full disk here, not at the next event it would refuse.
    let mut probed_at = shared.store_probed.lock().await;
    let fresh = probed_at.is_some_and(|at| at.elapsed() < STORE_PROBE_PERIOD);
    if shared.store_failing() || !fresh {
        let probed = shared.queue.probe_write().await;
        shared.store_wrote(&probed);
        *probed_at = probed.is_ok().then(tokio::time::Instant::now);
        if let Err(error) = probed {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("the store cannot write: {error}\n")).into_response();
        }
    }
    drop(probed_at);
    match shared.queue.depth().await {
        Ok(_) => "ready\n".into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}

pub(crate) async fn metrics<Q: Queue>(State(shared): State<Arc<Shared<Q>>>) -> Response {
    if let Ok(depth) = shared.queue.depth().await {
        shared.metrics.queue_depth(depth);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
        .into_response()
}
