//! Which engine holds the queue: the configuration names one ([`Storage`]), [`open`] opens it, and
//! [`AnyQueue`] is the queue of whichever it is, as one type. Adding an engine is its module, a
//! variant of each enum here, and an arm in each match.

use std::path::PathBuf;
use std::time::Duration;

use secret::Secret;

use crate::{
    Claimed, Depth, Detail, Enqueued, EventRecord, Held, Listing, NewEvent, Settlement, PostgresQueue, Pruned, Queue,
    Recovered, Requeue, Requeued, Retention, RetryNote, SqliteQueue, StoreError, Summary, TraitChange, TraitOverlay,
};

/// Where accepted events are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An SQLite file on this machine (created with its directory when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database that several Signal nodes may share.
    Postgres {
        /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`: a secret, for the password in it.
        url: Secret,
        /// The most connections this node opens.
        max_connections: usize,
    },
}

impl Storage {
    /// The engine and the place, for people: `SQLite file ./data/signal.db`.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite(path) => format!("SQLite file {}", path.display()),
            Storage::Postgres { url, .. } => {
                format!("PostgreSQL {}", crate::postgres::describe_url(url.expose()))
            }
        }
    }
}

/// The queue of whichever engine [`open`] opened.
#[derive(Clone)]
pub enum AnyQueue {
    /// An SQLite file.
    Sqlite(SqliteQueue),
    /// A PostgreSQL database.
    Postgres(PostgresQueue),
}

/// Opens the queue `storage` names. In an SQLite file, what a previous run left claimed or paused
/// is pending again; in PostgreSQL, that is done by the node that next takes the workspace's lease.
pub async fn open(storage: &Storage) -> Result<(AnyQueue, Recovered), StoreError> {
    match storage {
        Storage::Sqlite(path) => SqliteQueue::open(path).map(|(queue, recovered)| (AnyQueue::Sqlite(queue), recovered)),
        Storage::Postgres { url, max_connections } => PostgresQueue::open(url.expose(), *max_connections)
            .await
            .map(|(queue, recovered)| (AnyQueue::Postgres(queue), recovered)),
    }
}

impl AnyQueue {
    /// What a clean stop does to the store: SQLite's write-ahead log is copied into the file and
    /// emptied; PostgreSQL needs nothing.
    pub async fn close(&self) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.checkpoint().await,
            AnyQueue::Postgres(_) => Ok(()),
        }
    }
}

impl Queue for AnyQueue {
    async fn enqueue(&self, events: Vec<NewEvent>, dedupe_window: Duration) -> Result<Enqueued, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.enqueue(events, dedupe_window).await,
            AnyQueue::Postgres(queue) => queue.enqueue(events, dedupe_window).await,
        }
    }

    async fn claim(&self, pipeline: String, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.claim(pipeline, limit).await,
            AnyQueue::Postgres(queue) => queue.claim(pipeline, limit).await,
        }
    }

    async fn finish(&self, outcomes: Vec<Settlement>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.finish(outcomes).await,
            AnyQueue::Postgres(queue) => queue.finish(outcomes).await,
        }
    }

    async fn release(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.release(ids).await,
            AnyQueue::Postgres(queue) => queue.release(ids).await,
        }
    }

    async fn depth(&self) -> Result<Depth, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.depth().await,
            AnyQueue::Postgres(queue) => queue.depth().await,
        }
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.probe_write().await,
            AnyQueue::Postgres(queue) => queue.probe_write().await,
        }
    }

    async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.recent(limit).await,
            AnyQueue::Postgres(queue) => queue.recent(limit).await,
        }
    }

    async fn note_retrying(&self, notes: Vec<RetryNote>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.note_retrying(notes).await,
            AnyQueue::Postgres(queue) => queue.note_retrying(notes).await,
        }
    }

    async fn list(&self, listing: Listing) -> Result<Vec<Summary>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.list(listing).await,
            AnyQueue::Postgres(queue) => queue.list(listing).await,
        }
    }

    async fn detail(&self, id: i64) -> Result<Option<Detail>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.detail(id).await,
            AnyQueue::Postgres(queue) => queue.detail(id).await,
        }
    }

    async fn requeue(&self, requeue: Requeue) -> Result<Requeued, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.requeue(requeue).await,
            AnyQueue::Postgres(queue) => queue.requeue(requeue).await,
        }
    }

    async fn count_requeue(&self, requeue: Requeue) -> Result<u64, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.count_requeue(requeue).await,
            AnyQueue::Postgres(queue) => queue.count_requeue(requeue).await,
        }
    }

    async fn resume_paused(&self, pipelines: Vec<String>) -> Result<u64, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.resume_paused(pipelines).await,
            AnyQueue::Postgres(queue) => queue.resume_paused(pipelines).await,
        }
    }

    async fn prune(&self, retention: Retention, step: usize) -> Result<Pruned, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.prune(retention, step).await,
            AnyQueue::Postgres(queue) => queue.prune(retention, step).await,
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::Change> {
        match self {
            AnyQueue::Sqlite(queue) => queue.subscribe(),
            AnyQueue::Postgres(queue) => queue.subscribe(),
        }
    }

    fn queued_anywhere(&self) -> Option<tokio::sync::broadcast::Receiver<()>> {
        match self {
            AnyQueue::Sqlite(queue) => queue.queued_anywhere(),
            AnyQueue::Postgres(queue) => queue.queued_anywhere(),
        }
    }

    async fn recall_traits(&self, workspace: String, users: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.recall_traits(workspace, users).await,
            AnyQueue::Postgres(queue) => queue.recall_traits(workspace, users).await,
        }
    }

    async fn take_merges(
        &self,
        workspace: String,
        anonymous: Vec<String>,
        logins: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.take_merges(workspace, anonymous, logins).await,
            AnyQueue::Postgres(queue) => queue.take_merges(workspace, anonymous, logins).await,
        }
    }

    async fn forget_merges(&self, workspace: String, logins: Vec<(String, String)>) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.forget_merges(workspace, logins).await,
            AnyQueue::Postgres(queue) => queue.forget_merges(workspace, logins).await,
        }
    }

    async fn remember_traits(&self, workspace: String, changes: Vec<TraitChange>, overlay: TraitOverlay) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.remember_traits(workspace, changes, overlay).await,
            AnyQueue::Postgres(queue) => queue.remember_traits(workspace, changes, overlay).await,
        }
    }

    fn is_shared(&self) -> bool {
        match self {
            AnyQueue::Sqlite(queue) => queue.is_shared(),
            AnyQueue::Postgres(queue) => queue.is_shared(),
        }
    }

    async fn hold_lease(&self, name: String, pipelines: Vec<String>, ttl: Duration) -> Result<Option<Held>, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.hold_lease(name, pipelines, ttl).await,
            AnyQueue::Postgres(queue) => queue.hold_lease(name, pipelines, ttl).await,
        }
    }

    async fn give_up_lease(&self, name: String) -> Result<(), StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.give_up_lease(name).await,
            AnyQueue::Postgres(queue) => queue.give_up_lease(name).await,
        }
    }

    async fn live_nodes(&self) -> Result<u64, StoreError> {
        match self {
            AnyQueue::Sqlite(queue) => queue.live_nodes().await,
            AnyQueue::Postgres(queue) => queue.live_nodes().await,
        }
    }
}
