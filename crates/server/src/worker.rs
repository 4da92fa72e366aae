//! Delivery workers: one per integration. A worker claims its pipelines' events from the queue, maps
//! each with the pipeline's compiled blueprint, delivers it with the shared sender, and records the
//! outcome. Memory stays bounded by the integration's concurrency, however long the queue.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blueprint::Mapper;
use config::Integration;
use delivery::Fate;
use sender::{Destination, HttpSender};
use store::{AttemptRecord, Claimed, Labels, NewEvent, Settlement, Queue, RetryNote, State};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::Shared;
use crate::remembered::StoredTraits;

/// How long a stopping worker lets deliveries in flight finish before giving them back to the queue.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The largest claim: the queue is read in slices, never whole.
const CLAIM_SLICE: usize = 256;

/// The call type recorded for a device registration that a delivered call asked for: a row of its
/// own in the queue (and the Event Debugger), mapped by the blueprint's `device:` section.
pub const DEVICE_REGISTRATION: &str = "device";

/// The call type recorded for the merge a delivered login asked for (an anonymous customer into
/// the user it became): a row of its own, sent once that anonymous customer's events in flight are
/// settled.
pub const AUTOMATIC_MERGE: &str = "merge";

/// A pipeline as a worker runs it.
pub struct PipelineWorker {
    /// Its name.
    pub name: String,
    /// The source whose events it delivers.
    pub source: String,
    /// Its blueprint with the pipeline's settings.
    pub mapper: Mapper,
}

/// One integration's worker.
pub struct IntegrationWorker {
    /// The integration's name.
    pub name: String,
    /// Where it delivers.
    pub destination: Arc<dyn Destination>,
    /// The pipelines that deliver to it.
    pub pipelines: Vec<PipelineWorker>,
    /// Woken by the collector when events are queued.
    pub wake: Arc<Notify>,
    /// The traits remembered for the destination's users, shared by its pipelines.
    pub traits: Arc<StoredTraits>,
    /// What this worker has already asked the store about logins and anonymous customers.
    merges: Mutex<MergesAsked>,
}

/// Logins and anonymous customers the store was already asked about: asked once, not on every
/// delivered call of a logged-in user. Bounded: forgotten whole past [`MergesAsked::LIMIT`], and
/// asked again.
#[derive(Default)]
struct MergesAsked {
    logins: HashSet<(String, String)>,
    anonymous: HashSet<String>,
}

impl MergesAsked {
    const LIMIT: usize = 100_000;

    fn bounded(&mut self) {
        if self.logins.len() + self.anonymous.len() > Self::LIMIT {
            self.logins.clear();
            self.anonymous.clear();
        }
    }
}

impl IntegrationWorker {
    /// A worker for `integration`, with its pipelines' mappers warmed up, remembering traits in
    /// `traits` (its workspace's, shared with the other integrations that deliver there), woken by
    /// `wake` when events are queued.
    pub fn new(
        integration: &Integration,
        config: &config::Config,
        traits: Arc<StoredTraits>,
        wake: Arc<Notify>,
    ) -> Self {
        let pipelines = config
            .pipelines
            .iter()
            .filter(|pipeline| pipeline.integration == integration.name)
            .map(|pipeline| {
                let mut mapper = Mapper::new(pipeline.blueprint.clone())
                    .with_default_region(pipeline.default_region)
                    .with_object_data(integration.keeps_objects)
                    .with_memory(traits.clone());
                if let Some(enabled) = &pipeline.enabled_events {
                    mapper = mapper.with_enabled(enabled.iter().cloned());
                }
                mapper.warm_up();
                PipelineWorker { name: pipeline.name.clone(), source: pipeline.source.clone(), mapper }
            })
            .collect();
        IntegrationWorker {
            name: integration.name.clone(),
            destination: integration.destination.clone(),
            pipelines,
            wake,
            traits,
            merges: Mutex::default(),
        }
    }

    fn merges(&self) -> std::sync::MutexGuard<'_, MergesAsked> {
        self.merges.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct InFlight {
    claimed: Claimed,
    body: Vec<u8>,
    warnings: Option<String>,
    /// Once delivered, the device registration the call asks for, to queue.
    follow_up: Option<NewEvent>,
    /// Who the call is, when the pipeline merges anonymous customers at login.
    login: Option<blueprint::Login>,
}

/// What delivered calls asked for, queued once their outcomes are recorded.
#[derive(Default)]
struct FollowUps {
    /// Device registrations.
    registrations: Vec<NewEvent>,
    /// Anonymous ids delivered as customers, per workspace-wide store.
    anonymous: Vec<String>,
    /// Logins: (anonymous id, user id) and the merge row to queue if the store gives the pair.
    logins: Vec<((String, String), NewEvent)>,
}

impl FollowUps {
    fn is_empty(&self) -> bool {
        self.registrations.is_empty() && self.anonymous.is_empty() && self.logins.is_empty()
    }

    fn append(&mut self, other: FollowUps) {
        self.registrations.extend(other.registrations);
        self.anonymous.extend(other.anonymous);
        self.logins.extend(other.logins);
    }
}

/// Runs a worker until `stop` turns true; then lets deliveries in flight finish for up to
/// [`SHUTDOWN_GRACE`] and gives the rest back to the queue.
pub async fn run<Q: Queue>(
    worker: IntegrationWorker,
    shared: Arc<Shared<Q>>,
    sender: Arc<HttpSender>,
    mut stop: watch::Receiver<bool>,
) {
    let concurrency = shared.config().concurrency.max(1);
    // Failed attempts that will be tried again, from the deliveries in flight: recorded so that the
    // debugger shows those events retrying, and why.
    let (retry_notes, mut retries_noted) = mpsc::unbounded_channel::<RetryNote>();
    let mut in_flight: JoinSet<Fate> = JoinSet::new();
    let mut events: HashMap<tokio::task::Id, InFlight> = HashMap::new();
    let mut outcomes: Vec<Settlement> = Vec::new();
    let mut follow_ups = FollowUps::default();
    // Merges waiting for their anonymous customer's events in flight to settle: the anonymous id,
    // the row.
    let mut deferred: Vec<(String, Claimed)> = Vec::new();
    let mut paused = false;
    let mut next_pipeline = 0usize;
    let (mut body, mut warnings) = (Vec::new(), Vec::new());
    let mut asks = blueprint::Asks::default();
    loop {
        if *stop.borrow() {
            break;
        }
        // A merge whose anonymous customer's events have settled goes back to the queue, to be
        // claimed and sent.
        if !deferred.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut deferred).into_iter().partition(|(anonymous, _)| !in_flight_for(&events, anonymous));
            deferred = waiting;
            if !ready.is_empty()
                && let Err(error) = shared.queue.release(ready.iter().map(|(_, merge)| merge.id).collect()).await
            {
                tracing::warn!(%error, "could not give merges back to the queue; they are claimed again at the next start");
            }
        }
        // Events settled without a request (dropped by the blueprint) leave room to claim more at
        // once: waiting for a wake-up after each slice would drain a backlog of them slowly.
        let mut settled_at_once = 0usize;
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
                let needs = |event: &Claimed| {
                    pipeline.mapper.may_use_remembered(event.call_type.as_deref(), event.event.as_deref(), &event.payload)
                };
                if let Err(error) = worker.traits.prefetch(&shared.queue, &claimed, needs).await {
                    tracing::warn!(integration = %worker.name, %error, "cannot read remembered traits; these events are mapped with their own");
                }
                for event in claimed {
                    let received_at = jiff::Timestamp::from_millisecond(event.received_at_ms)
                        .unwrap_or_else(|_| jiff::Timestamp::now());
                    warnings.clear();
                    let registration = event.call_type.as_deref() == Some(DEVICE_REGISTRATION);
                    let merge = event.call_type.as_deref() == Some(AUTOMATIC_MERGE);
                    if merge
                        && let Some(anonymous) = pipeline.mapper.login_of(&event.payload).map(|login| login.anonymous_id)
                        && in_flight_for(&events, &anonymous)
                    {
                        deferred.push((anonymous, event));
                        continue;
                    }
                    let mapped = if registration {
                        delivery::map_device(&pipeline.mapper, &event.payload, &mut body, &mut warnings)
                    } else if merge {
                        delivery::map_automatic_merge(&pipeline.mapper, &event.payload, &mut body, &mut warnings)
                    } else {
                        delivery::map_asking(&pipeline.mapper, &event.payload, received_at, &mut body, &mut warnings, &mut asks)
                    };
                    match mapped {
                        Err(fate) => {
                            settled_at_once += 1;
                            let state = if fate.state == delivery::Settled::Dropped {
                                shared.metrics.dropped(&pipeline.name, &fate.code, 1);
                                tracing::debug!(pipeline = %pipeline.name, message_id = %event.message_id, code = %fate.code, "dropped");
                                State::Dropped
                            } else {
                                shared.metrics.failed(&pipeline.name, &fate.code);
                                tracing::error!(pipeline = %pipeline.name, message_id = %event.message_id, code = %fate.code, "an event could not be mapped: {}", fate.said.as_deref().unwrap_or_default());
                                State::Failed
                            };
                            outcomes.push(Settlement {
                                state,
                                detail: fate.said,
                                code: Some(fate.code),
                                ..outcome_for(&event)
                            });
                        }
                        Ok(kind) => {
                            let request = std::mem::take(&mut body);
                            let (sender, destination) = (sender.clone(), worker.destination.clone());
                            let sent = kind.request(request.clone());
                            let (notes, id) = (retry_notes.clone(), event.id);
                            let handle = in_flight.spawn(async move {
                                let note = |retrying: delivery::Retrying| {
                                    // The worker outlives its deliveries; a note after it stopped is moot.
                                    let _ = notes.send(RetryNote {
                                        id,
                                        attempts: retrying.attempts,
                                        code: retrying.code,
                                        status: retrying.status,
                                        hint: retrying.detail,
                                    });
                                };
                                delivery::send_watched(&sender, &*destination, sent, &note).await
                            });
                            for warning in &warnings {
                                shared.metrics.warned(&pipeline.name, warning.code.as_str());
                            }
                            let warnings = (!warnings.is_empty()).then(|| {
                                warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                            });
                            let derived = registration || merge;
                            let follow_up = (!derived && asks.registers_device).then(|| {
                                follow_up_row(&event, &pipeline.source, DEVICE_REGISTRATION, "device registration")
                            });
                            let login = if derived { None } else { asks.login.take() };
                            events.insert(handle.id(), InFlight { claimed: event, body: request, warnings, follow_up, login });
                        }
                    }
                }
            }
            next_pipeline = next_pipeline.wrapping_add(1);
            if let Err(error) = worker.traits.flush(&shared.queue).await {
                tracing::warn!(integration = %worker.name, %error, "cannot store remembered traits");
            }
        }
        while let Some(done) = in_flight.try_join_next_with_id() {
            outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused, &mut follow_ups));
        }
        note_retries(&shared, None, &mut retries_noted).await;
        if !outcomes.is_empty()
            && let Some((kept, kept_follow_ups)) =
                record(&worker, &shared, std::mem::take(&mut outcomes), std::mem::take(&mut follow_ups)).await
        {
            // Written at the next turn (within a second): their events stay claimed meanwhile, so
            // none whose answer is known is delivered again.
            outcomes = kept;
            follow_ups.append(kept_follow_ups);
        }
        if settled_at_once > 0 {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused, &mut follow_ups));
                // Collect what else has finished, so that outcomes share a commit.
                while let Some(done) = in_flight.try_join_next_with_id() {
                    outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused, &mut follow_ups));
                }
            }
            Some(note) = retries_noted.recv() => note_retries(&shared, Some(note), &mut retries_noted).await,
            () = worker.wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
    // Stopping: no new claims; what is in flight may finish, the rest goes back to the queue.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, in_flight.join_next_with_id()).await {
            Ok(Some(done)) => outcomes.extend(finished(&worker, &shared, &mut events, done, &mut paused, &mut follow_ups)),
            Ok(None) => {}
            Err(_) => {
                in_flight.abort_all();
                break;
            }
        }
    }
    note_retries(&shared, None, &mut retries_noted).await;
    if !outcomes.is_empty()
        && let Some((kept, _)) = record(&worker, &shared, outcomes, follow_ups).await
    {
        tracing::error!(integration = %worker.name, events = kept.len(), "stopping with outcomes the store could not write: these events are delivered again at the next start");
    }
    let unfinished: Vec<i64> =
        events.values().map(|event| event.claimed.id).chain(deferred.iter().map(|(_, merge)| merge.id)).collect();
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
    done: Result<(tokio::task::Id, Fate), tokio::task::JoinError>,
    paused: &mut bool,
    follow_ups: &mut FollowUps,
) -> Option<Settlement> {
    let (id, fate) = done.ok()?;
    let mut event = events.remove(&id)?;
    let follow_up = event.follow_up.take();
    let login = event.login.take();
    // The merge row is made only for a login the store was not asked about yet.
    let merge_row = match &login {
        Some(blueprint::Login { anonymous_id, user_id: Some(user) })
            if !worker.merges().logins.contains(&(anonymous_id.clone(), user.clone())) =>
        {
            let source = worker.pipelines.iter().find(|pipeline| pipeline.name == event.claimed.pipeline);
            source.map(|pipeline| {
                let row = follow_up_row(&event.claimed, &pipeline.source, AUTOMATIC_MERGE, "automatic merge");
                ((anonymous_id.clone(), user.clone()), row)
            })
        }
        _ => None,
    };
    let outcome = settle(worker, shared, event, fate, paused);
    if outcome.state == State::Delivered {
        follow_ups.registrations.extend(follow_up);
        match (login, merge_row) {
            (_, Some(merge)) => follow_ups.logins.push(merge),
            (Some(blueprint::Login { anonymous_id, user_id: None }), None)
                if !worker.merges().anonymous.contains(&anonymous_id) =>
            {
                follow_ups.anonymous.push(anonymous_id);
            }
            _ => {}
        }
    }
    Some(outcome)
}

/// Whether events delivered under the anonymous id `anonymous` are in flight (or being retried)
/// here: its merge waits for them, since MoEngage merges only what it already has.
fn in_flight_for(events: &HashMap<tokio::task::Id, InFlight>, anonymous: &str) -> bool {
    events.values().any(|event| {
        event.login.as_ref().is_some_and(|login| login.user_id.is_none() && login.anonymous_id == anonymous)
    })
}

/// What a delivered call asked for, as a queue row of its own: the call's payload, recorded with
/// `call_type` (which says how to map it) and the debugger's event name `label`, under a
/// `message_id` of its own so that a call delivered twice asks once.
fn follow_up_row(call: &Claimed, source: &str, call_type: &str, label: &str) -> NewEvent {
    NewEvent {
        source: source.to_owned(),
        pipeline: call.pipeline.clone(),
        message_id: format!("{}:{call_type}", call.message_id),
        received_at_ms: now_ms(),
        payload: call.payload.clone(),
        labels: Labels {
            call_type: Some(call_type.to_owned()),
            event: Some(label.to_owned()),
            customer_id: call.user_id.clone(),
        },
        dropped: None,
    }
}

/// Records the retries noted so far: before the outcomes that follow them, so that a later retry
/// note never hides a settled fate.
async fn note_retries<Q: Queue>(
    shared: &Shared<Q>,
    first: Option<RetryNote>,
    noted: &mut mpsc::UnboundedReceiver<RetryNote>,
) {
    let mut notes: Vec<RetryNote> = first.into_iter().collect();
    while let Ok(note) = noted.try_recv() {
        notes.push(note);
    }
    if !notes.is_empty()
        && let Err(error) = shared.queue.note_retrying(notes).await
    {
        tracing::warn!(%error, "could not record that events are being retried");
    }
}

/// Records outcomes, then queues what the delivered ones asked for: device registrations, and the
/// merges of logins whose anonymous customer the store knows and never merged. Gives the outcomes
/// and follow-ups back when the store could not write them (a full disk), to be written later.
async fn record<Q: Queue>(
    worker: &IntegrationWorker,
    shared: &Shared<Q>,
    outcomes: Vec<Settlement>,
    follow_ups: FollowUps,
) -> Option<(Vec<Settlement>, FollowUps)> {
    let count = outcomes.len();
    let finished = shared.queue.finish(outcomes.clone()).await;
    shared.store_wrote(&finished);
    if let Err(error) = finished {
        tracing::error!(%error, events = count, "could not record outcomes; kept, and written again within a second");
        return Some((outcomes, follow_ups));
    }
    if follow_ups.is_empty() {
        return None;
    }
    let FollowUps { registrations, anonymous, logins } = follow_ups;
    let workspace = worker.traits.workspace().to_owned();
    let pairs: Vec<(String, String)> = logins.iter().map(|(pair, _)| pair.clone()).collect();
    let mut merges = Vec::new();
    match shared.queue.take_merges(workspace.clone(), anonymous.clone(), pairs.clone()).await {
        Ok(taken) => {
            {
                let mut asked = worker.merges();
                asked.bounded();
                asked.anonymous.extend(anonymous);
                asked.logins.extend(pairs);
            }
            merges.extend(logins.into_iter().filter(|(pair, _)| taken.contains(pair)));
        }
        // The pair is asked about again at the user's next call.
        Err(error) => tracing::warn!(%error, "could not check logins for automatic merges"),
    }
    let window = shared.config().dedupe_window;
    if !registrations.is_empty() {
        let queued = registrations.len();
        match shared.queue.enqueue(registrations, window).await {
            Ok(_) => shared.wake_workers(),
            // A registration is asked for again by the device's next call that carries its token.
            Err(error) => tracing::warn!(%error, registrations = queued, "could not queue device registrations"),
        }
    }
    if merges.is_empty() {
        return None;
    }
    let (taken, rows): (Vec<(String, String)>, Vec<NewEvent>) = merges.into_iter().unzip();
    let pipelines: Vec<String> = rows.iter().map(|row| row.pipeline.clone()).collect();
    match shared.queue.enqueue(rows, window).await {
        Ok(_) => {
            pipelines.iter().for_each(|pipeline| shared.metrics.automatic_merge(pipeline));
            shared.wake_workers();
        }
        Err(error) => {
            // Given back, so that the user's next call takes the merge again.
            tracing::warn!(%error, merges = taken.len(), "could not queue automatic merges");
            {
                let mut asked = worker.merges();
                taken.iter().for_each(|pair| {
                    asked.logins.remove(pair);
                });
            }
            if let Err(error) = shared.queue.forget_merges(workspace, taken).await {
                tracing::error!(%error, "could not give automatic merges back: these logins' anonymous customers stay unmerged until an alias call merges them");
            }
        }
    }
    None
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn outcome_for(event: &Claimed) -> Settlement {
    Settlement {
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

/// Turns a fate into the outcome to record, and pauses the integration on refused credentials.
fn settle<Q: Queue>(
    worker: &IntegrationWorker,
    shared: &Shared<Q>,
    event: InFlight,
    fate: Fate,
    paused: &mut bool,
) -> Settlement {
    let pipeline = &event.claimed.pipeline;
    let since_receipt = u64::try_from(now_ms().saturating_sub(event.claimed.received_at_ms)).unwrap_or(0);
    shared.metrics.retries(pipeline, u64::from(fate.attempts.saturating_sub(1)));
    let mut outcome = Settlement {
        attempts: fate.attempts,
        attempt_log: fate
            .attempt_log
            .iter()
            .map(|(status, latency)| AttemptRecord {
                status: *status,
                latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            })
            .collect(),
        body_sent: Some(event.body),
        latency_ms: Some(since_receipt),
        detail: event.warnings,
        http_status: fate.status,
        response_body: fate.response_body.clone(),
        code: Some(fate.code.clone()),
        ..outcome_for(&event.claimed)
    };
    match fate.state {
        delivery::Settled::Delivered => {
            outcome.state = State::Delivered;
            shared.metrics.delivered(pipeline, Duration::from_millis(since_receipt));
        }
        delivery::Settled::Paused => {
            outcome.state = State::Paused;
            outcome.detail = fate.hint.clone();
            shared.metrics.paused(&worker.name);
            if !*paused {
                *paused = true;
                tracing::error!(
                    integration = %worker.name,
                    code = %fate.code,
                    likely_cause = fate.hint.as_deref().unwrap_or_default(),
                    "the destination refused the credentials: delivery to this integration is paused; its events wait. Fix the key in the configuration and reload it (SIGHUP, or POST /api/reload on the admin listener) to deliver them"
                );
            }
        }
        delivery::Settled::Dropped => {
            // The engine drops events only before sending; kept apart so a record never mislabels one.
            outcome.state = State::Dropped;
            outcome.detail = fate.said.clone();
            shared.metrics.dropped(pipeline, &fate.code, 1);
        }
        delivery::Settled::Failed => {
            outcome.state = State::Failed;
            outcome.detail = fate.detail();
            shared.metrics.failed(pipeline, &fate.code);
            tracing::warn!(pipeline = %pipeline, message_id = %event.claimed.message_id, code = %fate.code, attempts = fate.attempts, "delivery failed");
        }
    }
    outcome
}
