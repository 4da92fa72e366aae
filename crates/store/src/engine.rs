//! Which engine holds the queue: the configuration names one ([`Storage`]), [`open`] opens it, and
//! [`AnyQueue`] is the queue of whichever it is, as one type. Adding an engine is its module, a
//! variant of each enum here, and an arm in each match.

use std::path::PathBuf;
use std::time::Duration;

use crate::{
    Claimed, Depth, Detail, Enqueued, EventRecord, Listing, NewEvent, Outcome, Pruned, Queue, Recovered, Requeue, Requeued,
    Retention, RetryNote, SqliteQueue, StoreError, Summary, TraitChange,
};

/// Where accepted events are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An SQLite file on this machine (created with its directory when missing).
    Sqlite(PathBuf),
}

impl Storage {
    /// The engine and the place, for people: `SQLite file ./data/signal.db`.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite(path) => format!("SQLite file {}", path.display()),
        }
    }
}

/// The queue of whichever engine [`open`] opened.
#[derive(Clone)]
pub enum AnyQueue {
    /// An SQLite file.
    Sqlite(SqliteQueue),
}

/// Opens the queue `storage` names. What a previous run left claimed or paused is pending again.
pub fn open(storage: &Storage) -> Result<(AnyQueue, Recovered), StoreError> {
    match storage {
        Storage::Sqlite(path) => SqliteQueue::open(path).map(|(queue, recovered)| (AnyQueue::Sqlite(queue), recovered)),
    }
}

impl Queue for AnyQueue {
    async fn enqueue(&self, events: Vec<NewEvent>, dedupe_window: Duration) -> Result<Enqueued, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.enqueue(events, dedupe_window).await,
        }
    }

    async fn claim(&self, pipeline: String, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.claim(pipeline, limit).await,
        }
    }

    async fn finish(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.finish(outcomes).await,
        }
    }

    async fn release(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.release(ids).await,
        }
    }

    async fn depth(&self) -> Result<Depth, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.depth().await,
        }
    }

    async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.recent(limit).await,
        }
    }

    async fn note_retrying(&self, notes: Vec<RetryNote>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.note_retrying(notes).await,
        }
    }

    async fn list(&self, listing: Listing) -> Result<Vec<Summary>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.list(listing).await,
        }
    }

    async fn detail(&self, id: i64) -> Result<Option<Detail>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.detail(id).await,
        }
    }

    async fn requeue(&self, requeue: Requeue) -> Result<Requeued, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.requeue(requeue).await,
        }
    }

    async fn count_requeue(&self, requeue: Requeue) -> Result<u64, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.count_requeue(requeue).await,
        }
    }

    async fn resume_paused(&self, pipelines: Vec<String>) -> Result<u64, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.resume_paused(pipelines).await,
        }
    }

    async fn prune(&self, retention: Retention, step: usize) -> Result<Pruned, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.prune(retention, step).await,
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::Change> {
        match self {
            AnyQueue::Sqlite(queue) => queue.subscribe(),
        }
    }

    async fn recall_traits(&self, workspace: String, users: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.recall_traits(workspace, users).await,
        }
    }

    async fn remember_traits(&self, workspace: String, changes: Vec<TraitChange>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.remember_traits(workspace, changes).await,
        }
    }
}
