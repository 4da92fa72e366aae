//! Delivery workers: one per integration. A worker claims its pipelines' events from the queue, maps
//! each with the pipeline's compiled blueprint, delivers it with the shared sender, and records the
//! outcome. Memory stays bounded by the integration's concurrency, however long the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use blueprint::Mapper;
use config::Integration;
use moengage::MoEngageDestination;
use sender::{AttemptLog, Delivery, Ending, HttpSender, NoAnswer, Response};
use store::{AttemptRecord, Claimed, Outcome, Queue, State};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::Shared;

/// How long a stopping worker lets deliveries in flight finish before giving them back to the queue.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The largest claim: the queue is read in slices, never whole.
const CLAIM_SLICE: usize = 256;

/// A pipeline as a worker runs it.
pub struct PipelineWorker {
    /// Its name.
    pub name: String,
    /// Its blueprint with the pipeline's settings.
    pub mapper: Mapper,
}

/// One integration's worker.
pub struct IntegrationWorker {
    /// The integration's name.
    pub name: String,
    /// Where it delivers.
    pub destination: Arc<MoEngageDestination>,
    /// The pipelines that deliver to it.
    pub pipelines: Vec<PipelineWorker>,
    /// Woken by the collector when events are queued.
    pub wake: Arc<Notify>,
}

impl IntegrationWorker {
    /// A worker for `integration`, with its pipelines' mappers warmed up.
    pub fn new(integration: &Integration, config: &config::Config) -> Self {
        let pipelines = config
            .pipelines
            .iter()
            .filter(|pipeline| pipeline.integration == integration.name)
            .map(|pipeline| {
                let mut mapper =
                    Mapper::new(pipeline.blueprint.clone()).with_default_region(pipeline.default_region);
                if let Some(enabled) = &pipeline.enabled_events {
                    mapper = mapper.with_enabled(enabled.iter().cloned());
                }
                mapper.warm_up();
                PipelineWorker { name: pipeline.name.clone(), mapper }
            })
            .collect();
        IntegrationWorker {
            name: integration.name.clone(),
            destination: Arc::new(integration.destination.clone()),
            pipelines,
            wake: Arc::new(Notify::new()),
        }
    }
}

struct InFlight {
    claimed: Claimed,
    body: Vec<u8>,
    warnings: Option<String>,
}

/// Runs a worker until `stop` turns true; then lets deliveries in flight finish for up to
/// [`SHUTDOWN_GRACE`] and gives the rest back to the queue.
pub async fn run<Q: Queue>(
    worker: IntegrationWorker,
    shared: Arc<Shared<Q>>,
    sender: Arc<HttpSender>,
    mut stop: watch::Receiver<bool>,
) {
    let concurrency = shared.config.concurrency.max(1);
    let mut in_flight: JoinSet<(Delivery<Response>, AttemptLog)> = JoinSet::new();
    let mut events: HashMap<tokio::task::Id, InFlight> = HashMap::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut paused = false;
    let mut next_pipeline = 0usize;
    let (mut body, mut warnings) = (Vec::new(), Vec::new());
    loop {
        if *stop.borrow() {
            break;
        }
        if !paused && in_flight.len() < concurrency && !worker.pipelines.is_empty() {
            for offset in 0..worker.pipelines.len() {
                let room = concurrency.saturating_sub(in_flight.len()).min(CLAIM_SLICE);
                if room == 0 {
                    break;
                }
                let pipeline = &worker.pipelines[(next_pipeline + offset) % worker.pipelines.len()];
                let claimed = match shared.queue.claim(pipeline.name.clone(), room).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::error!(integration = %worker.name, %error, "cannot claim events; trying again shortly");
                        break;
                    }
                };
                for event in claimed {
                    let received_at = jiff::Timestamp::from_millisecond(event.received_at_ms)
                        .unwrap_or_else(|_| jiff::Timestamp::now());
                    warnings.clear();
                    match pipeline.mapper.map_into(&event.payload, received_at, &mut body, &mut warnings) {
                        Err(drop) => {
                            shared.metrics.dropped(&pipeline.name, drop.code.as_str());
                            tracing::debug!(pipeline = %pipeline.name, message_id = %event.message_id, code = drop.code.as_str(), "dropped");
                            outcomes.push(Outcome {
                                state: State::Dropped,
                                code: Some(drop.code.as_str().to_owned()),
                                detail: Some(drop.reason),
                                ..outcome_for(&event)
                            });
                        }
                        Ok(_) => {
                            let request = std::mem::take(&mut body);
                            let (sender, destination) = (sender.clone(), worker.destination.clone());
                            let sent = request.clone();
                            let handle =
                                in_flight.spawn(async move { sender.send_logged(&*destination, sent).await });
                            let warnings = (!warnings.is_empty()).then(|| {
                                warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                            });
                            events.insert(handle.id(), InFlight { claimed: event, body: request, warnings });
                        }
                    }
                }
            }
            next_pipeline = next_pipeline.wrapping_add(1);
        }
        if !outcomes.is_empty() {
            record(&shared, std::mem::take(&mut outcomes)).await;
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused));
                // Collect what else has finished, so that outcomes share a commit.
                while let Some(done) = in_flight.try_join_next_with_id() {
                    outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused));
                }
            }
            () = worker.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
    // Stopping: no new claims; what is in flight may finish, the rest goes back to the queue.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, in_flight.join_next_with_id()).await {
            Ok(Some(done)) => outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused)),
            Ok(None) => {}
            Err(_) => {
                in_flight.abort_all();
                break;
            }
        }
    }
    if !outcomes.is_empty() {
        record(&shared, outcomes).await;
    }
    let unfinished: Vec<i64> = events.values().map(|event| event.claimed.id).collect();
    if !unfinished.is_empty() {
        tracing::info!(integration = %worker.name, events = unfinished.len(), "stopping: events in flight go back to the queue");
        if let Err(error) = shared.queue.release(unfinished).await {
            tracing::error!(%error, "could not give events back to the queue; they are claimed again at the next start");
        }
    }
}

/// The outcome of a finished delivery task. A task that did not finish (aborted) leaves its event
/// among those given back to the queue.
fn finished<Q: Queue>(
    worker: &IntegrationWorker,
    shared: &Shared<Q>,
    events: &mut HashMap<tokio::task::Id, InFlight>,
    done: Result<(tokio::task::Id, (Delivery<Response>, AttemptLog)), tokio::task::JoinError>,
    paused: &mut bool,
) -> Option<Outcome> {
    let (id, (delivery, log)) = done.ok()?;
    let event = events.remove(&id)?;
    Some(settle(worker, shared, event, &delivery, &log, paused))
}

async fn record<Q: Queue>(shared: &Shared<Q>, outcomes: Vec<Outcome>) {
    let count = outcomes.len();
    if let Err(error) = shared.queue.finish(outcomes).await {
        // The events stay claimed: the next start makes them pending again, so they are retried.
        tracing::error!(%error, events = count, "could not record outcomes");
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn outcome_for(event: &Claimed) -> Outcome {
    Outcome {
        id: event.id,
        state: State::Pending,
        code: None,
        detail: None,
        attempts: 0,
        attempt_log: Vec::new(),
        http_status: None,
        response_body: None,
        body_sent: None,
        latency_ms: None,
        finished_at_ms: now_ms(),
    }
}

/// Turns a delivery into the outcome to record, and pauses the integration on a refused key.
fn settle<Q: Queue>(
    worker: &IntegrationWorker,
    shared: &Shared<Q>,
    event: InFlight,
    delivery: &Delivery<Response>,
    log: &[(Option<u16>, Duration)],
    paused: &mut bool,
) -> Outcome {
    let pipeline = &event.claimed.pipeline;
    let since_receipt = u64::try_from(now_ms().saturating_sub(event.claimed.received_at_ms)).unwrap_or(0);
    shared.metrics.retries(pipeline, u64::from(delivery.attempts.saturating_sub(1)));
    let mut outcome = Outcome {
        attempts: delivery.attempts,
        attempt_log: log
            .iter()
            .map(|(status, latency)| AttemptRecord {
                status: *status,
                latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
        body_sent: Some(event.body),
        latency_ms: Some(since_receipt),
        detail: event.warnings,
        ..outcome_for(&event.claimed)
    };
    let answer = delivery.last.as_ref().ok();
    outcome.http_status = answer.map(|answer| answer.status);
    outcome.response_body = answer.map(|answer| answer.body.clone());
    let classification = answer.map(|answer| moengage::classify(answer.status, &answer.body));
    match (delivery.ending, &delivery.last) {
        (Ending::Delivered, _) => {
            outcome.state = State::Delivered;
            outcome.code = outcome.http_status.map(|status| status.to_string());
            shared.metrics.delivered(pipeline, Duration::from_millis(since_receipt));
        }
        (_, Ok(answer)) if classification.as_ref().is_some_and(|c| c.pauses_integration) => {
            outcome.state = State::Paused;
            outcome.code = Some(answer.status.to_string());
            outcome.detail = classification.as_ref().and_then(|c| c.hint).map(str::to_owned);
            shared.metrics.paused(&worker.name);
            if !*paused {
                *paused = true;
                tracing::error!(
                    integration = %worker.name,
                    status = answer.status,
                    likely_cause = moengage::likely_cause(answer.status).unwrap_or_default(),
                    "MoEngage refused the credentials: delivery to this integration is paused; its events wait. Fix the configuration and restart to deliver them"
                );
            }
        }
        (ending, last) => {
            outcome.state = State::Failed;
            let retried = if ending == Ending::GaveUp { ", retry window closed" } else { "" };
            let (code, hint, said) = match last {
                Ok(answer) => (
                    answer.status.to_string(),
                    moengage::likely_cause(answer.status),
                    classification.and_then(|c| c.error).map(|error| error.message),
                ),
                Err(NoAnswer::Timeout) => (
                    "timeout".to_owned(),
                    Some("MoEngage did not answer in time; Signal retried with backoff."),
                    None,
                ),
                Err(NoAnswer::Connection(text)) => {
                    ("connection".to_owned(), Some(moengage::CONNECTION_ERROR_HINT), Some(text.clone()))
                }
                Err(NoAnswer::TooLarge { .. }) => ("413".to_owned(), moengage::likely_cause(413), None),
            };
            let detail =
                [said, hint.map(str::to_owned)].into_iter().flatten().collect::<Vec<_>>().join(" — ");
            outcome.detail = Some(format!("{detail}{retried}"));
            shared.metrics.failed(pipeline, &code);
            tracing::warn!(pipeline = %pipeline, message_id = %event.claimed.message_id, code = %code, attempts = delivery.attempts, "delivery failed");
            outcome.code = Some(code);
        }
    }
    outcome
}
