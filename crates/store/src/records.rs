//! What the Event Debugger reads and does: listings of events with their fates, one event in full,
//! the live feed of changes, replays, and retention.

use std::time::Duration;

use crate::{AttemptRecord, State};

/// What an event is, read once by the collector so that listings can filter on it without
/// reading every payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    /// `track`, `page`, `identify`, ...; `None` when the event could not be read.
    pub call_type: Option<String>,
    /// A track call's event name.
    pub event: Option<String>,
    /// The `user_id`, as text.
    pub customer_id: Option<String>,
}

/// A state as the debugger shows and filters it: an event a worker holds is still `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Waiting, or with a worker before any failed attempt.
    Pending,
    /// An attempt failed and another is coming.
    Retrying,
    /// Delivered.
    Delivered,
    /// Dropped on purpose, with a drop code.
    Dropped,
    /// Refused for good, or still failing when the retry window closed.
    Failed,
    /// Waiting for its paused integration.
    Paused,
}

impl Shown {
    /// Every shown state, in the order a person reads an event's life.
    pub const ALL: [Shown; 6] =
        [Shown::Pending, Shown::Retrying, Shown::Delivered, Shown::Dropped, Shown::Failed, Shown::Paused];

    /// Its name in the API and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Pending => "pending",
            Shown::Retrying => "retrying",
            Shown::Delivered => "delivered",
            Shown::Dropped => "dropped",
            Shown::Failed => "failed",
            Shown::Paused => "paused",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Option<Shown> {
        Shown::ALL.into_iter().find(|shown| shown.as_str() == text)
    }

    /// How a stored state is shown.
    pub fn of(state: State) -> Shown {
        match state {
            State::Pending | State::Claimed => Shown::Pending,
            State::Retrying => Shown::Retrying,
            State::Delivered => Shown::Delivered,
            State::Dropped => Shown::Dropped,
            State::Failed => Shown::Failed,
            State::Paused => Shown::Paused,
        }
    }

    /// The stored states it stands for.
    pub(crate) fn stored(self) -> &'static [&'static str] {
        match self {
            Shown::Pending => &["pending", "claimed"],
            Shown::Retrying => &["retrying"],
            Shown::Delivered => &["delivered"],
            Shown::Dropped => &["dropped"],
            Shown::Failed => &["failed"],
            Shown::Paused => &["paused"],
        }
    }
}

/// Which events to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Only events in this state.
    pub state: Option<Shown>,
    /// Only events of this name (a track call's `event`).
    pub event: Option<String>,
    /// Only events of this `user_id`.
    pub customer_id: Option<String>,
    /// Only events of this pipeline.
    pub pipeline: Option<String>,
    /// Only events received at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events received before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only events older than this id: the cursor of the previous page.
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl Default for Listing {
    fn default() -> Self {
        Listing {
            state: None,
            event: None,
            customer_id: None,
            pipeline: None,
            since_ms: None,
            until_ms: None,
            before_id: None,
            limit: 100,
        }
    }
}

/// One event's line in the debugger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The queue's id.
    pub id: i64,
    /// When Signal received it (ms since the epoch).
    pub received_at_ms: i64,
    /// Its source.
    pub source: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its `message_id`.
    pub message_id: String,
    /// What it is.
    pub labels: Labels,
    /// Where it is.
    pub state: State,
    /// The drop code, or the last attempt's status or failure kind.
    pub code: Option<String>,
    /// The last HTTP status.
    pub status: Option<u16>,
    /// HTTP attempts made.
    pub attempts: u32,
    /// The likely cause, the drop's reason, or warnings.
    pub hint: Option<String>,
}

/// One event in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Its line.
    pub summary: Summary,
    /// The event as stored (the write key removed).
    pub payload: String,
    /// The request body sent to the destination.
    pub body_sent: Option<Vec<u8>>,
    /// Each attempt's status and latency.
    pub attempt_log: Vec<AttemptRecord>,
    /// The start of the destination's last answer.
    pub response_body: Option<Vec<u8>>,
    /// When its fate was settled (ms since the epoch).
    pub finished_at_ms: Option<i64>,
    /// From receipt to its fate, in milliseconds.
    pub latency_ms: Option<u64>,
}

/// Which settled events to queue again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requeue {
    /// `Failed` or `Paused`.
    pub state: State,
    /// Only this pipeline's.
    pub pipeline: Option<String>,
    /// Only events received at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only events received before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only events after this id: where the previous step of the same replay ended, so that an
    /// event that fails again meanwhile is not queued twice by one replay.
    pub after_id: Option<i64>,
    /// At most this many in one step.
    pub limit: usize,
}

/// What a replay step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Events made pending.
    pub requeued: u64,
    /// The highest id made pending: the next step's `after_id`.
    pub last_id: Option<i64>,
}

/// How long settled events are kept for the debugger. Events that wait (pending, retrying,
/// paused) are never pruned, and failed ones (which wait for a replay) only by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Settled events received longer ago than this go.
    pub max_age: Option<Duration>,
    /// Past this many events, the oldest settled ones go.
    pub max_events: Option<u64>,
}

impl Retention {
    /// The receipt time before which settled events are too old to keep, if there is a `max_age`.
    pub(crate) fn age_cutoff_ms(&self, now_ms: i64) -> Option<i64> {
        self.max_age
            .map(|max_age| now_ms.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Each settled state, with the id below which its events may go: given the newest id, and
    /// the first id received after [`Retention::age_cutoff_ms`] (when there is a `max_age`).
    /// Delivered and dropped events go by age or count; failed ones wait for a replay, and go by
    /// age alone.
    pub(crate) fn prunable(&self, newest: i64, by_age: Option<i64>) -> [(&'static str, Option<i64>); 3] {
        let by_count = self.max_events.map(|max_events| {
            newest.saturating_sub(i64::try_from(max_events).unwrap_or(i64::MAX)).saturating_add(1)
        });
        let settled_below = by_age.max(by_count);
        [("delivered", settled_below), ("dropped", settled_below), ("failed", by_age)]
    }
}

/// A line of the live feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An event is new, or its state changed: how it is now.
    Line(Summary),
    /// This many more changed in one go (a large replay) and are not told one by one: read the
    /// newest again.
    Untold(u64),
}

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted.
    pub total: u64,
    /// Of which failed (past `max_age`, never replayed).
    pub failed: u64,
}

/// An attempt failed and the event will be tried again: recorded so the debugger shows it
/// retrying, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryNote {
    /// The queue's id.
    pub id: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// The last attempt's status or failure kind.
    pub code: String,
    /// Its HTTP status.
    pub status: Option<u16>,
    /// The likely cause.
    pub hint: Option<String>,
}
