//! Signal's durable queue: accepted events wait here until a worker has delivered them, and each
//! one's fate is kept for the Event Debugger.
//!
//! One design, two engines. This crate holds the interface ([`Queue`]), the embedded SQLite
//! engine, and the PostgreSQL engine, which implements the same operations over the same tables so
//! that several nodes can share one database. There, what one node at a time may do — deliver to a
//! workspace within its rate limit — is held by a lease ([`Queue::hold_lease`]) that a node which
//! dies stops renewing, and another takes.
//!
//! The SQLite engine has one connection on one thread. Requests queue for it, and everything waiting
//! when it is free is done in one transaction (group commit): concurrent collectors share a commit
//! instead of each paying for one. An event is acknowledged only after its commit.

mod common;
mod engine;
mod postgres;
mod permissions;
mod records;
pub mod sql;
mod sqlite;
mod tls;

use std::fmt;
use std::time::Duration;

pub use engine::{AnyQueue, Storage, open};
pub use records::{Change, Detail, Labels, Listing, Pruned, Requeue, Requeued, Retention, RetryNote, Shown, Summary};
pub use postgres::PostgresQueue;
pub use sqlite::{Recovered, SqliteQueue};

/// An event to queue for one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The source it came from.
    pub source: String,
    /// The pipeline that will deliver it.
    pub pipeline: String,
    /// Its `message_id`, the dedupe key.
    pub message_id: String,
    /// When Signal received it, in milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The event as JSON.
    pub payload: String,
    /// What it is, for the debugger's filters.
    pub labels: Labels,
    /// Set when its fate is known already (the collector refused it): recorded as dropped with
    /// this code and detail instead of queued.
    pub dropped: Option<Dropped>,
}

/// An event's fate, decided before it was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The drop code, e.g. `invalid_event`.
    pub code: String,
    /// Why.
    pub detail: String,
}

/// What queuing a request's events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Events queued.
    pub queued: usize,
    /// Events whose `message_id` was already seen from the source within the dedupe window: accepted,
    /// not queued again.
    pub duplicates: usize,
    /// Events recorded with the fate they came with ([`NewEvent::dropped`]).
    pub recorded: usize,
}

/// An event a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The queue's id for it.
    pub id: i64,
    /// Its pipeline.
    pub pipeline: String,
    /// Its `message_id`.
    pub message_id: String,
    /// When Signal received it (ms since the epoch).
    pub received_at_ms: i64,
    /// The event as JSON.
    pub payload: String,
    /// Its `user_id`, as text, when it has one: whose remembered traits it may need.
    pub user_id: Option<String>,
    /// Its call type (`track`, `identify`, ...), as recorded at intake.
    pub call_type: Option<String>,
    /// What blueprints match it on (a track call's name, else its type), as recorded at intake.
    pub event: Option<String>,
}

/// How one user's remembered traits are laid on another's: `(under, over)`, both compact JSON
/// objects, to the traits remembered after. The rule is the interpreter's
/// (`blueprint::memory::overlaid_text`), handed to the store with each change so that what a node
/// remembers and what the store keeps are laid on by one rule; the store only reads and writes.
pub type TraitOverlay = fn(under: &str, over: &str) -> String;

/// A change to the traits remembered for a workspace's users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraitChange {
    /// `user` is now known by these traits (a compact JSON object).
    Set {
        /// The `user_id`.
        user: String,
        /// The traits.
        traits: String,
    },
    /// `merged` is now `retained` (an alias call): `merged`'s traits are laid under `retained`'s.
    Merge {
        /// The `previous_id` of the alias call.
        merged: String,
        /// Its `user_id`.
        retained: String,
    },
}

/// A lease this node holds (see [`Queue::hold_lease`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// True when this call took it (from no one, or from a holder that stopped renewing it); false
    /// when this node held it already.
    pub taken: bool,
    /// When taken: events the previous holder had claimed and not finished, pending again.
    pub claimed: u64,
    /// When taken: events that waited for a paused integration, pending again, to be tried with
    /// this node's configuration.
    pub paused: u64,
}

/// Where an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a worker.
    Pending,
    /// A worker has it.
    Claimed,
    /// A worker has it, and an attempt failed: another is coming.
    Retrying,
    /// Its destination accepted it.
    Delivered,
    /// Not delivered, on purpose: a drop code says why.
    Dropped,
    /// Not delivered: refused for good, or still failing when the retry window closed.
    Failed,
    /// Waiting because its integration is paused (the destination refused the credentials).
    Paused,
}

impl State {
    /// Every state.
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Claimed,
        State::Retrying,
        State::Delivered,
        State::Dropped,
        State::Failed,
        State::Paused,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Claimed => "claimed",
            State::Retrying => "retrying",
            State::Delivered => "delivered",
            State::Dropped => "dropped",
            State::Failed => "failed",
            State::Paused => "paused",
        }
    }

    fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// One HTTP attempt, for the debugger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The HTTP status, or `None` when there was no answer.
    pub status: Option<u16>,
    /// Milliseconds the attempt took.
    pub latency_ms: u64,
}

/// The fate of one claimed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The queue's id.
    pub id: i64,
    /// Delivered, dropped, failed or paused.
    pub state: State,
    /// The drop code, or the failure's status or kind (`401`, `timeout`, ...).
    pub code: Option<String>,
    /// The likely cause or the drop's reason.
    pub detail: Option<String>,
    /// The attempts made.
    pub attempts: u32,
    /// Each attempt's status and latency, in order.
    pub attempt_log: Vec<AttemptRecord>,
    /// The last HTTP status.
    pub http_status: Option<u16>,
    /// The start of the last answer's body.
    pub response_body: Option<Vec<u8>>,
    /// The request body sent to the destination.
    pub body_sent: Option<Vec<u8>>,
    /// From receipt to the end, in milliseconds.
    pub latency_ms: Option<u64>,
    /// When it ended (ms since the epoch).
    pub finished_at_ms: i64,
}

/// A stored outcome, as the debugger reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The queue's id.
    pub id: i64,
    /// Its source.
    pub source: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its `message_id`.
    pub message_id: String,
    /// Where it is.
    pub state: State,
    /// The outcome, once there is one.
    pub outcome: Option<Settlement>,
}

/// Counts of events by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting for a worker.
    pub pending: u64,
    /// With a worker.
    pub claimed: u64,
    /// Waiting for a paused integration.
    pub paused: u64,
}

impl Depth {
    /// Counts `count` events stored in `state`.
    pub(crate) fn add(&mut self, state: &str, count: u64) {
        match State::parse(state) {
            Some(State::Pending) => self.pending = count,
            Some(State::Claimed | State::Retrying) => self.claimed += count,
            Some(State::Paused) => self.paused = count,
            _ => {}
        }
    }
}

/// A storage failure.
#[derive(Debug)]
pub struct StoreError {
    /// What was being done.
    pub doing: &'static str,
    /// The cause.
    pub cause: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage: {}: {}", self.doing, self.cause)
    }
}

impl std::error::Error for StoreError {}

/// The queue's operations, whatever the engine.
pub trait Queue: Send + Sync + 'static {
    /// Queues events (skipping `message_id`s seen from the same source within `dedupe_window`),
    /// and returns once they are committed.
    fn enqueue(
        &self,
        events: Vec<NewEvent>,
        dedupe_window: Duration,
    ) -> impl Future<Output = Result<Enqueued, StoreError>> + Send;

    /// Claims up to `limit` pending events of a pipeline, oldest first.
    fn claim(
        &self,
        pipeline: String,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Records the fates of claimed events.
    fn finish(&self, outcomes: Vec<Settlement>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives claimed events back, to be claimed again (a clean shutdown, a paused integration that
    /// resumes).
    fn release(&self, ids: Vec<i64>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many events wait.
    fn depth(&self) -> impl Future<Output = Result<Depth, StoreError>> + Send;

    /// Whether the store takes writes now: SQLite writes a page and commits it (after a write
    /// failed, say on a full disk, this says when it can again); PostgreSQL, which reports its own
    /// disk in each write's error, is asked for a connection.
    fn probe_write(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The most recent events, newest first, with their outcomes.
    fn recent(&self, limit: usize) -> impl Future<Output = Result<Vec<EventRecord>, StoreError>> + Send;

    /// Records that events' attempts failed and that they will be tried again.
    fn note_retrying(&self, notes: Vec<RetryNote>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events matching `listing`, newest first.
    fn list(&self, listing: Listing) -> impl Future<Output = Result<Vec<Summary>, StoreError>> + Send;

    /// One event in full, if it is still kept.
    fn detail(&self, id: i64) -> impl Future<Output = Result<Option<Detail>, StoreError>> + Send;

    /// Makes up to `requeue.limit` failed or paused events pending again, oldest first.
    fn requeue(&self, requeue: Requeue) -> impl Future<Output = Result<Requeued, StoreError>> + Send;

    /// How many failed or paused events a replay with these filters would queue again.
    fn count_requeue(&self, requeue: Requeue) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Makes the paused events of these pipelines pending again (their integration resumed).
    fn resume_paused(&self, pipelines: Vec<String>) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes up to `step` settled events past `retention`, oldest first; says how many went.
    fn prune(&self, retention: Retention, step: usize) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// Every new event and change of state from now on, as the debugger shows it. A receiver that
    /// falls behind misses lines (and is told so), and never slows the queue.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;

    /// Told when any node sharing the store queued events, for workers to claim them at once;
    /// `None` where only this process queues (SQLite: its collector wakes the workers itself).
    fn queued_anywhere(&self) -> Option<tokio::sync::broadcast::Receiver<()>>;

    /// The traits remembered for those of `users` that `workspace` knows: (user, traits).
    fn recall_traits(
        &self,
        workspace: String,
        users: Vec<String>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Applies changes to the traits remembered for `workspace`'s users, in order, in one commit:
    /// each laid with `overlay` on what is stored, never replacing it.
    fn remember_traits(
        &self,
        workspace: String,
        changes: Vec<TraitChange>,
        overlay: TraitOverlay,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// For the automatic merge at login: records `anonymous` ids as delivered customers of
    /// `workspace`, then takes each `(anonymous id, user id)` login whose anonymous id is such a
    /// customer and that was never merged. Returns the logins taken: each pair is taken once, by
    /// one caller, whatever the nodes.
    fn take_merges(
        &self,
        workspace: String,
        anonymous: Vec<String>,
        logins: Vec<(String, String)>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Gives back merges [`Queue::take_merges`] took whose merge could not be queued, so that the
    /// user's next login takes them again.
    fn forget_merges(
        &self,
        workspace: String,
        logins: Vec<(String, String)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// True when other nodes may use the queue too: then what one node at a time may do is done
    /// under a lease. False for an engine only one process opens (SQLite): every lease is its own.
    fn is_shared(&self) -> bool;

    /// Takes or renews, for `ttl`, the lease called `name`: `None` while another node holds it.
    /// With `pipelines` (given when this node is about to start the lease's work, not when it
    /// renews it), the events of those pipelines left claimed or paused — by a previous holder, or
    /// by this node's own workers before they stopped — are pending again.
    fn hold_lease(
        &self,
        name: String,
        pipelines: Vec<String>,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Held>, StoreError>> + Send;

    /// Gives up the lease called `name` at once, if this node holds it, for another to take.
    fn give_up_lease(&self, name: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many nodes hold an unexpired lease called `node:...` (each node holds its own): the
    /// nodes alive.
    fn live_nodes(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
