//! `signal serve`: the collector takes events over HTTP and commits them to the durable queue; one
//! worker per integration delivers them through each pipeline's blueprint with the shared sender;
//! an admin listener serves `/healthz`, `/readyz` and `/metrics`.

pub mod collector;
mod connection;
pub mod metrics;
pub mod refusals;
pub mod worker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use tokio::sync::{Notify, watch};

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
    /// The configuration.
    pub config: Config,
    /// The queue.
    pub queue: Q,
    /// The metrics.
    pub metrics: Metrics,
    /// Refused requests, for rate-limited logging.
    pub refusals: Refusals,
    wakes: Vec<Arc<Notify>>,
    ready: AtomicBool,
}

impl<Q> Shared<Q> {
    /// Tells every worker that events were queued.
    pub fn wake_workers(&self) {
        for wake in &self.wakes {
            wake.notify_one();
        }
    }
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
            TcpListener::bind(address).await.map_err(|error| ServerError {
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

/// Runs the service until `shutdown` completes: then stops taking events (requests in progress
/// finish and are committed), lets deliveries in flight finish or gives them back to the queue, and
/// returns.
pub async fn run<Q: Queue + Clone>(
    config: Config,
    queue: Q,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let sender = Arc::new(HttpSender::new(config.retry, config.timeout).map_err(|error| ServerError {
        kind: ServerErrorKind::Client,
        message: format!("cannot build the HTTP client that delivers events: {error}"),
    })?);
    let workers: Vec<worker::IntegrationWorker> = config
        .integrations
        .iter()
        .map(|integration| worker::IntegrationWorker::new(integration, &config))
        .collect();
    let shared = Arc::new(Shared {
        wakes: workers.iter().map(|worker| worker.wake.clone()).collect(),
        config,
        queue,
        metrics: Metrics::default(),
        refusals: Refusals::default(),
        ready: AtomicBool::new(false),
    });
    let (stop_workers, stopping) = watch::channel(false);
    let mut worker_tasks = Vec::new();
    for worker in workers {
        worker_tasks.push(tokio::spawn(worker::run(
            worker,
            shared.clone(),
            sender.clone(),
            stopping.clone(),
        )));
    }

    let mut collector = Router::new();
    for &(path, endpoint) in collector::EVENT_PATHS {
        collector = collector.route(path, any(move |state, request| collector::ingest(endpoint, state, request)));
    }
    let collector = collector
        .route(collector::TELEMETRY_PATH, any(collector::telemetry::<Q>))
        .fallback(collector::not_found::<Q>)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), collector::cors::<Q>))
        // The collector enforces its own, configured, limit and answers with a JSON 413.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared.clone());
    let admin = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<Q>))
        .route("/metrics", get(metrics::<Q>))
        .with_state(shared.clone());

    let depth_refresh = tokio::spawn(refresh_depth(shared.clone()));
    let (stop_admin, admin_stopping) = watch::channel(false);
    let admin_server = tokio::spawn(async move {
        let mut admin_stopping = admin_stopping;
        axum::serve(listeners.admin, admin)
            .with_graceful_shutdown(async move {
                let _ = admin_stopping.wait_for(|stop| *stop).await;
            })
            .await
    });
    shared.ready.store(true, Ordering::Relaxed);
    serve_collector(listeners.collector, collector, &shared, shutdown).await;
    tracing::info!("no longer taking events; finishing deliveries in flight");
    let _ = stop_workers.send(true);
    for task in worker_tasks {
        let _ = task.await;
    }
    depth_refresh.abort();
    let _ = stop_admin.send(true);
    // The admin listener has no client worth waiting for once stopping: a bounded wait, then cut.
    let admin_abort = admin_server.abort_handle();
    if tokio::time::timeout(shared.config.shutdown_grace, admin_server).await.is_err() {
        admin_abort.abort();
    }
    Ok(())
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
    let config = &shared.config;
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

async fn refresh_depth<Q: Queue>(shared: Arc<Shared<Q>>) {
    loop {
        if let Ok(depth) = shared.queue.depth().await {
            shared.metrics.queue_depth(depth);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn readyz<Q: Queue>(State(shared): State<Arc<Shared<Q>>>) -> Response {
    if !shared.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping\n").into_response();
    }
    match shared.queue.depth().await {
        Ok(_) => "ready\n".into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}

async fn metrics<Q: Queue>(State(shared): State<Arc<Shared<Q>>>) -> Response {
    if let Ok(depth) = shared.queue.depth().await {
        shared.metrics.queue_depth(depth);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
        .into_response()
}
