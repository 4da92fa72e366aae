//! `signal serve`: the collector takes events over HTTP and commits them to the durable queue; one
//! worker per integration delivers them through each pipeline's blueprint with the shared sender;
//! an admin listener serves `/healthz`, `/readyz` and `/metrics`.

pub mod collector;
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
    /// The collector's listener failed while serving.
    Serve,
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
    let served = axum::serve(listeners.collector, collector).with_graceful_shutdown(shutdown).await;
    shared.ready.store(false, Ordering::Relaxed);
    tracing::info!("no longer taking events; finishing deliveries in flight");
    let _ = stop_workers.send(true);
    for task in worker_tasks {
        let _ = task.await;
    }
    depth_refresh.abort();
    let _ = stop_admin.send(true);
    let _ = admin_server.await;
    served.map_err(|error| ServerError { kind: ServerErrorKind::Serve, message: format!("the collector stopped: {error}") })
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
