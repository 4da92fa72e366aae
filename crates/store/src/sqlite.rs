//! The embedded engine: one SQLite file in WAL mode, one connection on its own thread, group commit.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::common::{
    FEED_CAPACITY, FEED_PER_COMMIT, PURGE_EVERY, SUMMARY_COLUMNS, TIME_SLACK_MS, decode_attempts, encode_attempts,
    now_ms,
};
use crate::permissions;
use crate::{
    Change, Claimed, Depth, Detail, Enqueued, EventRecord, Labels, Listing, NewEvent, Settlement, Pruned, Queue,
    Requeue, Requeued, Retention, RetryNote, State, StoreError, Summary, TraitChange, TraitOverlay, sql,
};

/// At most this many users' remembered traits are read by one statement.
const TRAITS_PER_READ: usize = 256;

/// At most this many requests share one commit.
const GROUP_LIMIT: usize = 1024;

enum Request {
    Enqueue { events: Vec<NewEvent>, window: Duration, reply: oneshot::Sender<Result<Enqueued, String>> },
    Claim { pipeline: String, limit: usize, reply: oneshot::Sender<Result<Vec<Claimed>, String>> },
    Finish { outcomes: Vec<Settlement>, reply: oneshot::Sender<Result<(), String>> },
    Release { ids: Vec<i64>, reply: oneshot::Sender<Result<(), String>> },
    Depth { reply: oneshot::Sender<Result<Depth, String>> },
    ProbeWrite { reply: oneshot::Sender<Result<(), String>> },
    Recent { limit: usize, reply: oneshot::Sender<Result<Vec<EventRecord>, String>> },
    NoteRetrying { notes: Vec<RetryNote>, reply: oneshot::Sender<Result<(), String>> },
    Requeue { requeue: Requeue, reply: oneshot::Sender<Result<Requeued, String>> },
    ResumePaused { pipelines: Vec<String>, reply: oneshot::Sender<Result<u64, String>> },
    Prune { retention: Retention, step: usize, reply: oneshot::Sender<Result<Pruned, String>> },
    RememberTraits {
        workspace: String,
        changes: Vec<TraitChange>,
        overlay: TraitOverlay,
        reply: oneshot::Sender<Result<(), String>>,
    },
    TakeMerges {
        workspace: String,
        anonymous: Vec<String>,
        logins: Vec<(String, String)>,
        reply: oneshot::Sender<Result<Vec<(String, String)>, String>>,
    },
    ForgetMerges { workspace: String, logins: Vec<(String, String)>, reply: oneshot::Sender<Result<(), String>> },
    /// Outside any transaction: copies the write-ahead log into the file and empties it.
    Checkpoint { reply: oneshot::Sender<Result<(), String>> },
}

/// A read for the debugger, run on the reading connection.
type Read = Box<dyn FnOnce(&Connection) + Send>;

/// The queue in an SQLite file.
#[derive(Clone)]
pub struct SqliteQueue {
    requests: mpsc::UnboundedSender<Request>,
    reads: mpsc::UnboundedSender<Read>,
    feed: broadcast::Sender<Change>,
}

/// What opening the queue found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Files and directories that others could read, made private to this user: each path and
    /// its mode before, e.g. `("./data/signal.db", 0o644)`.
    pub made_private: Vec<(String, u32)>,
    /// Events a previous run had claimed but not finished (it stopped or crashed): pending again.
    pub claimed: u64,
    /// Events waiting for an integration that was paused: pending again, to be tried with the
    /// configuration as it is now.
    pub paused: u64,
}

impl SqliteQueue {
    /// Opens (creating when missing, with its directory) the queue in `path`. What a previous run
    /// left claimed or paused is made pending again.
    pub fn open(path: &Path) -> Result<(SqliteQueue, Recovered), StoreError> {
        let failed = |doing: &'static str| {
            move |error: rusqlite::Error| StoreError { doing, cause: error.to_string() }
        };
        let made_private = permissions::prepare(path)?;
        let lock = lock_exclusively(path)?;
        let connection = Connection::open(path).map_err(|error| StoreError {
            doing: "opening the database",
            cause: format!("{}: {error}", path.display()),
        })?;
        // FULL: a commit is on disk before the collector acknowledges the events in it. Group
        // commit spreads the cost over every request that shares the commit.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(failed("setting up the database"))?;
        migrate(&connection).map_err(failed("creating the tables"))?;
        let claimed = connection
            .execute("UPDATE events SET state = 'pending' WHERE state IN ('claimed', 'retrying')", [])
            .map_err(failed("recovering claimed events"))? as u64;
        let paused = connection
            .execute("UPDATE events SET state = 'pending' WHERE state = 'paused'", [])
            .map_err(failed("resuming paused events"))? as u64;
        // The debugger reads on a connection of its own: in WAL mode a long listing never waits
        // for, nor holds up, the commits of intake and delivery.
        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(failed("opening the database for reading"))?;
        reader.execute_batch("PRAGMA busy_timeout = 5000;").map_err(failed("setting up the database"))?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let (reads, read_receiver) = mpsc::unbounded_channel::<Read>();
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let writer_feed = feed.clone();
        let writer_reads = reads.clone();
        let start = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map(drop)
                .map_err(|error| StoreError { doing: "starting the storage thread", cause: error.to_string() })
        };
        start(
            "signal-sqlite",
            Box::new(move || {
                // Held while the queue is served: the lock is released when the process ends, however.
                let _lock = lock;
                serve(connection, receiver, &writer_feed, &writer_reads);
            }),
        )?;
        start(
            "signal-sqlite-read",
            Box::new(move || {
                let mut read_receiver = read_receiver;
                while let Some(read) = read_receiver.blocking_recv() {
                    read(&reader);
                }
            }),
        )?;
        Ok((SqliteQueue { requests, reads, feed }, Recovered { claimed, paused, made_private }))
    }

    async fn read<T: Send + 'static>(
        &self,
        doing: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError { doing, cause: "the storage thread has stopped".into() };
        let read: Read = Box::new(move |connection| {
            let _ = reply.send(work(connection).map_err(|error| error.to_string()));
        });
        self.reads.send(read).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(|cause| StoreError { doing, cause })
    }

    async fn ask<T>(
        &self,
        doing: &'static str,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError { doing, cause: "the storage thread has stopped".into() };
        self.requests.send(request(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(|cause| StoreError { doing, cause })
    }
}

impl SqliteQueue {
    /// Copies the write-ahead log into the database file and empties it, as a clean stop should
    /// leave the file: whole, with nothing beside it to replay.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.ask("checkpointing the database", |reply| Request::Checkpoint { reply }).await
    }
}

impl Queue for SqliteQueue {
    async fn enqueue(&self, events: Vec<NewEvent>, dedupe_window: Duration) -> Result<Enqueued, StoreError> {
        self.ask("queuing events", |reply| Request::Enqueue { events, window: dedupe_window, reply }).await
    }

    async fn claim(&self, pipeline: String, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        self.ask("claiming events", |reply| Request::Claim { pipeline, limit, reply }).await
    }

    async fn finish(&self, outcomes: Vec<Settlement>) -> Result<(), StoreError> {
        self.ask("recording outcomes", |reply| Request::Finish { outcomes, reply }).await
    }

    async fn recall_traits(&self, workspace: String, users: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        self.read("reading remembered traits", move |connection| {
            let mut found = Vec::new();
            // One statement per slice of users rather than one per user: a claimed slice's users
            // are read at once.
            for chunk in users.chunks(TRAITS_PER_READ) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT user_id, traits FROM traits WHERE workspace = ? AND user_id IN ({marks})"
                ))?;
                let values = std::iter::once(&workspace).chain(chunk.iter());
                let rows = statement.query_map(params_from_iter(values), |row| Ok((row.get(0)?, row.get(1)?)))?;
                for row in rows {
                    found.push(row?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn forget_merges(&self, workspace: String, logins: Vec<(String, String)>) -> Result<(), StoreError> {
        if logins.is_empty() {
            return Ok(());
        }
        self.ask("giving merges back", |reply| Request::ForgetMerges { workspace, logins, reply }).await
    }

    async fn remember_traits(&self, workspace: String, changes: Vec<TraitChange>, overlay: TraitOverlay) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.ask("remembering traits", |reply| Request::RememberTraits { workspace, changes, overlay, reply }).await
    }

    async fn take_merges(
        &self,
        workspace: String,
        anonymous: Vec<String>,
        logins: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if anonymous.is_empty() && logins.is_empty() {
            return Ok(Vec::new());
        }
        self.ask("taking automatic merges", |reply| Request::TakeMerges { workspace, anonymous, logins, reply }).await
    }

    async fn release(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.ask("releasing events", |reply| Request::Release { ids, reply }).await
    }

    async fn depth(&self) -> Result<Depth, StoreError> {
        self.ask("counting waiting events", |reply| Request::Depth { reply }).await
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.ask("writing to the queue file", |reply| Request::ProbeWrite { reply }).await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.ask("reading recent events", |reply| Request::Recent { limit, reply }).await
    }

    async fn note_retrying(&self, notes: Vec<RetryNote>) -> Result<(), StoreError> {
        self.ask("recording retries", |reply| Request::NoteRetrying { notes, reply }).await
    }

    async fn list(&self, listing: Listing) -> Result<Vec<Summary>, StoreError> {
        self.read("listing events", move |connection| list(connection, &listing)).await
    }

    async fn detail(&self, id: i64) -> Result<Option<Detail>, StoreError> {
        self.read("reading an event", move |connection| detail(connection, id)).await
    }

    async fn requeue(&self, requeue: Requeue) -> Result<Requeued, StoreError> {
        self.ask("queuing events again", |reply| Request::Requeue { requeue, reply }).await
    }

    async fn count_requeue(&self, requeue: Requeue) -> Result<u64, StoreError> {
        self.read("counting events to replay", move |connection| count_requeue(connection, &requeue)).await
    }

    async fn resume_paused(&self, pipelines: Vec<String>) -> Result<u64, StoreError> {
        self.ask("resuming paused events", |reply| Request::ResumePaused { pipelines, reply }).await
    }

    async fn prune(&self, retention: Retention, step: usize) -> Result<Pruned, StoreError> {
        self.ask("pruning old events", |reply| Request::Prune { retention, step, reply }).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    fn queued_anywhere(&self) -> Option<broadcast::Receiver<()>> {
        None
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn hold_lease(&self, _: String, _: Vec<String>, _: Duration) -> Result<Option<crate::Held>, StoreError> {
        // The file is locked to this process: there is no one to share with.
        Ok(Some(crate::Held::default()))
    }

    async fn give_up_lease(&self, _: String) -> Result<(), StoreError> {
        Ok(())
    }

    async fn live_nodes(&self) -> Result<u64, StoreError> {
        Ok(1)
    }
}

/// Creates the tables, or brings a file written by an earlier version up to this one.
fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(sql::SQLITE_SCHEMA)?;
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version < sql::SQLITE_VERSION {
        let mut statement = connection.prepare("SELECT name FROM pragma_table_info('events')")?;
        let columns: Vec<String> = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        for added in sql::SQLITE_ADDED_COLUMNS {
            if !columns.iter().any(|column| column == added) {
                connection.execute_batch(&format!("ALTER TABLE events ADD COLUMN {added} TEXT"))?;
            }
        }
        connection.execute_batch(sql::SQLITE_INDEXES)?;
        connection.pragma_update(None, "user_version", sql::SQLITE_VERSION)?;
    }
    Ok(())
}

/// Locks the queue to this process: two processes serving one SQLite file would each make the
/// other's claimed events pending again, and deliver them twice. The lock is on a file beside the
/// database and is released by the system when the process ends, even by `kill -9`.
fn lock_exclusively(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock_path)
        .map_err(|error| StoreError { doing: "locking the database", cause: format!("{}: {error}", lock_path.display()) })?;
    // A moment's patience: the queue may have just been closed (its thread still ending), or a
    // previous run still be stopping.
    let patience = std::time::Instant::now() + Duration::from_secs(2);
    let mut locked = file.try_lock();
    while matches!(locked, Err(std::fs::TryLockError::WouldBlock)) && std::time::Instant::now() < patience {
        std::thread::sleep(Duration::from_millis(20));
        locked = file.try_lock();
    }
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError {
            doing: "locking the database",
            cause: format!(
                "{} is in use by another `signal serve`: stop it, or give this one its own `storage.sqlite`",
                path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(StoreError { doing: "locking the database", cause: format!("{}: {error}", lock_path.display()) })
        }
    }
}

/// A reply, sent only after the commit that made it true.
enum Reply {
    Enqueue(oneshot::Sender<Result<Enqueued, String>>, Result<Enqueued, String>),
    Claim(oneshot::Sender<Result<Vec<Claimed>, String>>, Result<Vec<Claimed>, String>),
    Unit(oneshot::Sender<Result<(), String>>, Result<(), String>),
    Depth(oneshot::Sender<Result<Depth, String>>, Result<Depth, String>),
    Recent(oneshot::Sender<Result<Vec<EventRecord>, String>>, Result<Vec<EventRecord>, String>),
    Requeue(oneshot::Sender<Result<Requeued, String>>, Result<Requeued, String>),
    Count(oneshot::Sender<Result<u64, String>>, Result<u64, String>),
    Pruned(oneshot::Sender<Result<Pruned, String>>, Result<Pruned, String>),
    Merges(oneshot::Sender<Result<Vec<(String, String)>, String>>, Result<Vec<(String, String)>, String>),
}

impl Reply {
    fn fail(self, error: &str) -> Reply {
        let error = error.to_owned();
        match self {
            Reply::Enqueue(to, _) => Reply::Enqueue(to, Err(error)),
            Reply::Claim(to, _) => Reply::Claim(to, Err(error)),
            Reply::Unit(to, _) => Reply::Unit(to, Err(error)),
            Reply::Depth(to, _) => Reply::Depth(to, Err(error)),
            Reply::Recent(to, _) => Reply::Recent(to, Err(error)),
            Reply::Requeue(to, _) => Reply::Requeue(to, Err(error)),
            Reply::Count(to, _) => Reply::Count(to, Err(error)),
            Reply::Pruned(to, _) => Reply::Pruned(to, Err(error)),
            Reply::Merges(to, _) => Reply::Merges(to, Err(error)),
        }
    }

    fn send(self) {
        // A requester that went away no longer needs the answer.
        let _ = match self {
            Reply::Enqueue(to, result) => to.send(result).map_err(drop),
            Reply::Claim(to, result) => to.send(result).map_err(drop),
            Reply::Unit(to, result) => to.send(result).map_err(drop),
            Reply::Depth(to, result) => to.send(result).map_err(drop),
            Reply::Recent(to, result) => to.send(result).map_err(drop),
            Reply::Requeue(to, result) => to.send(result).map_err(drop),
            Reply::Count(to, result) => to.send(result).map_err(drop),
            Reply::Pruned(to, result) => to.send(result).map_err(drop),
            Reply::Merges(to, result) => to.send(result).map_err(drop),
        };
    }
}

fn serve(
    mut connection: Connection,
    mut requests: mpsc::UnboundedReceiver<Request>,
    feed: &broadcast::Sender<Change>,
    reads: &mpsc::UnboundedSender<Read>,
) {
    let mut commits = 0u64;
    // The longest dedupe window asked for: `seen` entries older than it can go.
    let mut longest_window = Duration::ZERO;
    let mut next: Option<Request> = None;
    loop {
        let first = match next.take() {
            Some(request) => request,
            None => match requests.blocking_recv() {
                Some(request) => request,
                None => break,
            },
        };
        if let Request::Checkpoint { reply } = first {
            // The first column says whether a reader kept the checkpoint from finishing.
            let done = connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get::<_, i64>(0))
                .map_err(|error| error.to_string())
                .and_then(|busy| if busy == 0 { Ok(()) } else { Err("a reader held the log open".into()) });
            let _ = reply.send(done);
            continue;
        }
        if let Request::Enqueue { window, .. } = &first {
            longest_window = longest_window.max(*window);
        }
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match requests.try_recv() {
                Ok(request @ Request::Checkpoint { .. }) => {
                    next = Some(request);
                    break;
                }
                Ok(request) => {
                    if let Request::Enqueue { window, .. } = &request {
                        longest_window = longest_window.max(*window);
                    }
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        // Only worth gathering while someone watches the feed.
        let mut changed = (feed.receiver_count() > 0).then(Vec::new);
        let replies = match connection.transaction() {
            Ok(mut transaction) => {
                let replies: Vec<Reply> =
                    group.into_iter().map(|request| run(&mut transaction, request, changed.as_mut())).collect();
                match transaction.commit() {
                    Ok(()) => replies,
                    Err(error) => {
                        changed = None;
                        replies.into_iter().map(|reply| reply.fail(&error.to_string())).collect()
                    }
                }
            }
            Err(error) => {
                group.into_iter().map(|request| unanswered(request).fail(&error.to_string())).collect()
            }
        };
        replies.into_iter().for_each(Reply::send);
        if let Some(changed) = changed.filter(|changed| !changed.is_empty()) {
            // Read on the reading connection: watchers never delay the next commit.
            let feed = feed.clone();
            let _ = reads.send(Box::new(move |reader| tell(reader, &feed, &changed)));
        }
        commits += 1;
        if commits.is_multiple_of(PURGE_EVERY) && !longest_window.is_zero() {
            // Dedupe entries older than the longest window in use can no longer match.
            let window_ms = i64::try_from(longest_window.as_millis()).unwrap_or(i64::MAX);
            let _ = connection
                .execute("DELETE FROM seen WHERE seen_at < ?1", params![now_ms().saturating_sub(window_ms)]);
        }
    }
}

fn unanswered(request: Request) -> Reply {
    match request {
        Request::Enqueue { reply, .. } => Reply::Enqueue(reply, Err(String::new())),
        Request::Claim { reply, .. } => Reply::Claim(reply, Err(String::new())),
        Request::Finish { reply, .. }
        | Request::Release { reply, .. }
        | Request::RememberTraits { reply, .. }
        | Request::Checkpoint { reply }
        | Request::ProbeWrite { reply }
        | Request::ForgetMerges { reply, .. } => Reply::Unit(reply, Err(String::new())),
        Request::Depth { reply } => Reply::Depth(reply, Err(String::new())),
        Request::TakeMerges { reply, .. } => Reply::Merges(reply, Err(String::new())),
        Request::Recent { reply, .. } => Reply::Recent(reply, Err(String::new())),
        Request::NoteRetrying { reply, .. } => Reply::Unit(reply, Err(String::new())),
        Request::Requeue { reply, .. } => Reply::Requeue(reply, Err(String::new())),
        Request::ResumePaused { reply, .. } => Reply::Count(reply, Err(String::new())),
        Request::Prune { reply, .. } => Reply::Pruned(reply, Err(String::new())),
    }
}

/// Tells the live feed what a commit changed: a line per event, as it is now; past
/// [`FEED_PER_COMMIT`], how many more changed, so that watchers read the newest again.
fn tell(connection: &Connection, feed: &broadcast::Sender<Change>, changed: &[i64]) {
    let Ok(mut statement) =
        connection.prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE id = ?1"))
    else {
        return;
    };
    for id in changed.iter().take(FEED_PER_COMMIT) {
        if let Ok(Some(summary)) = statement.query_row(params![id], summary_of).optional() {
            // No watcher left is no error.
            let _ = feed.send(Change::Line(summary));
        }
    }
    if changed.len() > FEED_PER_COMMIT {
        let _ = feed.send(Change::Untold((changed.len() - FEED_PER_COMMIT) as u64));
    }
}

/// Runs one request in its own savepoint, so that one failing request does not undo the others in
/// the group.
fn run(transaction: &mut rusqlite::Transaction<'_>, request: Request, changed: Option<&mut Vec<i64>>) -> Reply {
    fn isolated<T>(
        transaction: &mut rusqlite::Transaction<'_>,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let savepoint = transaction.savepoint().map_err(|e| e.to_string())?;
        let result = work(&savepoint).map_err(|e| e.to_string())?;
        savepoint.commit().map_err(|e| e.to_string())?;
        Ok(result)
    }
    let mut changed = changed;
    // What a request changed, for the live feed: only when it committed, and only gathered while
    // someone watches.
    let mut note = |committed: bool, ids: &mut dyn Iterator<Item = i64>| {
        if let Some(changed) = changed.as_mut().filter(|_| committed) {
            changed.extend(ids);
        }
    };
    match request {
        Request::Enqueue { events, window, reply } => {
            let mut inserted = Vec::new();
            let result = isolated(transaction, |c| enqueue(c, &events, window, &mut inserted));
            note(result.is_ok(), &mut inserted.into_iter());
            Reply::Enqueue(reply, result)
        }
        Request::Claim { pipeline, limit, reply } => {
            Reply::Claim(reply, isolated(transaction, |c| claim(c, &pipeline, limit)))
        }
        Request::Finish { outcomes, reply } => {
            let result = isolated(transaction, |c| finish(c, &outcomes));
            note(result.is_ok(), &mut outcomes.iter().map(|outcome| outcome.id));
            Reply::Unit(reply, result)
        }
        Request::NoteRetrying { notes, reply } => {
            let result = isolated(transaction, |c| note_retrying(c, &notes));
            note(result.is_ok(), &mut notes.iter().map(|note| note.id));
            Reply::Unit(reply, result)
        }
        Request::Requeue { requeue, reply } => {
            let mut requeued_ids = Vec::new();
            let result = isolated(transaction, |c| requeue_step(c, &requeue, &mut requeued_ids));
            note(result.is_ok(), &mut requeued_ids.into_iter());
            Reply::Requeue(reply, result)
        }
        Request::ResumePaused { pipelines, reply } => {
            let mut resumed = Vec::new();
            let result = isolated(transaction, |c| resume_paused(c, &pipelines, &mut resumed));
            note(result.is_ok(), &mut resumed.into_iter());
            Reply::Count(reply, result)
        }
        Request::Prune { retention, step, reply } => {
            Reply::Pruned(reply, isolated(transaction, |c| prune(c, retention, step)))
        }
        Request::Release { ids, reply } => {
            let result = isolated(transaction, |c| release(c, &ids));
            note(result.is_ok(), &mut ids.iter().copied());
            Reply::Unit(reply, result)
        }
        Request::RememberTraits { workspace, changes, overlay, reply } => {
            Reply::Unit(reply, isolated(transaction, |c| remember_traits(c, &workspace, &changes, overlay)))
        }
        Request::Depth { reply } => Reply::Depth(reply, isolated(transaction, depth)),
        // A page's worth, so that a file that cannot grow says so.
        Request::ProbeWrite { reply } => Reply::Unit(
            reply,
            isolated(transaction, |c| {
                c.execute(
                    "INSERT INTO write_probe (id, written_at, page) VALUES (1, ?1, zeroblob(4096))
                     ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, page = excluded.page",
                    params![now_ms()],
                )
                .map(|_| ())
            }),
        ),
        Request::ForgetMerges { workspace, logins, reply } => Reply::Unit(
            reply,
            isolated(transaction, |c| {
                let mut forget = c.prepare_cached(sql::FORGET_MERGE)?;
                for (merged, retained) in &logins {
                    forget.execute(params![workspace, merged, retained])?;
                }
                Ok(())
            }),
        ),
        Request::TakeMerges { workspace, anonymous, logins, reply } => {
            Reply::Merges(reply, isolated(transaction, |c| take_merges(c, &workspace, &anonymous, &logins)))
        }
        // The writer runs it outside transactions; never grouped into one.
        Request::Checkpoint { reply } => Reply::Unit(reply, Err("a checkpoint cannot run inside a transaction".into())),
        Request::Recent { limit, reply } => Reply::Recent(reply, isolated(transaction, |c| recent(c, limit))),
    }
}

fn take_merges(
    connection: &Connection,
    workspace: &str,
    anonymous: &[String],
    logins: &[(String, String)],
) -> rusqlite::Result<Vec<(String, String)>> {
    let now = now_ms();
    let mut note = connection.prepare_cached(sql::NOTE_ANONYMOUS)?;
    for id in anonymous {
        note.execute(params![workspace, id, now])?;
    }
    let mut take = connection.prepare_cached(sql::TAKE_MERGE)?;
    let mut taken = Vec::new();
    for (merged, retained) in logins {
        if take.query_row(params![workspace, merged, retained, now], |_| Ok(())).optional()?.is_some() {
            taken.push((merged.clone(), retained.clone()));
        }
    }
    Ok(taken)
}

fn remember_traits(
    connection: &Connection,
    workspace: &str,
    changes: &[TraitChange],
    overlay: TraitOverlay,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let mut read = connection.prepare_cached("SELECT traits FROM traits WHERE workspace = ?1 AND user_id = ?2")?;
    let mut write = connection.prepare_cached(
        "INSERT INTO traits (workspace, user_id, traits, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (workspace, user_id) DO UPDATE SET traits = excluded.traits, updated_at = excluded.updated_at",
    )?;
    let mut stored = |user: &str| -> rusqlite::Result<Option<String>> {
        read.query_row(params![workspace, user], |row| row.get(0)).optional()
    };
    for change in changes {
        // Laid on what is stored rather than replacing it: a node whose cache did not know the
        // user (evicted, merged by the store, a read that failed) never loses traits it did not see.
        let (user, traits) = match change {
            TraitChange::Set { user, traits } => match stored(user)? {
                Some(old) => (user, overlay(&old, traits)),
                None => (user, traits.clone()),
            },
            TraitChange::Merge { merged, retained } => {
                let Some(moved) = stored(merged)? else { continue };
                match stored(retained)? {
                    Some(own) => (retained, overlay(&moved, &own)),
                    None => (retained, moved),
                }
            }
        };
        write.execute(params![workspace, user, traits, now])?;
    }
    Ok(())
}

fn enqueue(
    connection: &Connection,
    events: &[NewEvent],
    window: Duration,
    inserted: &mut Vec<i64>,
) -> rusqlite::Result<Enqueued> {
    let now = now_ms();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut seen =
        connection.prepare_cached("SELECT seen_at FROM seen WHERE source = ?1 AND message_id = ?2")?;
    let mut remember = connection.prepare_cached(
        "INSERT INTO seen (source, message_id, seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source, message_id) DO UPDATE SET seen_at = excluded.seen_at",
    )?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO events (source, pipeline, message_id, received_at, payload, call_type, event, customer_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut record_dropped = connection.prepare_cached(
        "INSERT INTO events (source, pipeline, message_id, received_at, payload, call_type, event, customer_id,
                             customer_key, state, code, detail, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, 'dropped', ?9, ?10, ?11)",
    )?;
    let mut report = Enqueued::default();
    // An event bound for several pipelines is one row per pipeline, but one `seen` entry.
    let mut admitted: Vec<(&str, &str)> = Vec::new();
    for event in events {
        if let Some(dropped) = &event.dropped {
            // Its fate is known: kept for the record, never claimed, never a duplicate of anything.
            record_dropped.execute(params![
                event.source,
                event.pipeline,
                event.message_id,
                event.received_at_ms,
                event.payload,
                event.labels.call_type,
                event.labels.event,
                event.labels.customer_id,
                dropped.code,
                dropped.detail,
                now
            ])?;
            inserted.push(connection.last_insert_rowid());
            report.recorded += 1;
            continue;
        }
        let key = (event.source.as_str(), event.message_id.as_str());
        if !admitted.contains(&key) {
            let last: Option<i64> =
                seen.query_row(params![event.source, event.message_id], |row| row.get(0)).optional()?;
            if last.is_some_and(|at| now.saturating_sub(at) < window_ms) {
                report.duplicates += 1;
                continue;
            }
            remember.execute(params![event.source, event.message_id, now])?;
            admitted.push(key);
        }
        insert.execute(params![
            event.source,
            event.pipeline,
            event.message_id,
            event.received_at_ms,
            event.payload,
            event.labels.call_type,
            event.labels.event,
            event.labels.customer_id
        ])?;
        inserted.push(connection.last_insert_rowid());
        report.queued += 1;
    }
    Ok(report)
}

fn claim(connection: &Connection, pipeline: &str, limit: usize) -> rusqlite::Result<Vec<Claimed>> {
    let mut statement = connection.prepare_cached(sql::SQLITE_CLAIM)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![pipeline, limit], |row| {
        Ok(Claimed {
            id: row.get(0)?,
            pipeline: row.get(1)?,
            message_id: row.get(2)?,
            received_at_ms: row.get(3)?,
            payload: row.get(4)?,
            user_id: row.get(5)?,
            call_type: row.get(6)?,
            event: row.get(7)?,
        })
    })?;
    let mut claimed: Vec<Claimed> = rows.collect::<rusqlite::Result<_>>()?;
    claimed.sort_by_key(|event| event.id);
    Ok(claimed)
}

fn finish(connection: &Connection, outcomes: &[Settlement]) -> rusqlite::Result<()> {
    let mut update = connection.prepare_cached(
        "UPDATE events SET state = ?2, code = ?3, detail = ?4, attempts = ?5, http_status = ?6,
             response_body = ?7, body_sent = ?8, latency_ms = ?9, finished_at = ?10, attempt_log = ?11,
             customer_key = customer_id
         WHERE id = ?1",
    )?;
    for outcome in outcomes {
        update.execute(params![
            outcome.id,
            outcome.state.as_str(),
            outcome.code,
            outcome.detail,
            outcome.attempts,
            outcome.http_status,
            outcome.response_body,
            outcome.body_sent,
            outcome.latency_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            outcome.finished_at_ms,
            encode_attempts(&outcome.attempt_log),
        ])?;
    }
    Ok(())
}

fn release(connection: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut update = connection
        .prepare_cached("UPDATE events SET state = 'pending' WHERE id = ?1 AND state IN ('claimed', 'retrying')")?;
    for id in ids {
        update.execute(params![id])?;
    }
    Ok(())
}

fn depth(connection: &Connection) -> rusqlite::Result<Depth> {
    let mut statement = connection.prepare_cached(
        "SELECT state, COUNT(*) FROM events WHERE state IN ('pending', 'claimed', 'retrying', 'paused') GROUP BY state",
    )?;
    let mut depth = Depth::default();
    let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, count) = row?;
        depth.add(&state, u64::try_from(count).unwrap_or(0));
    }
    Ok(depth)
}

fn recent(connection: &Connection, limit: usize) -> rusqlite::Result<Vec<EventRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, source, pipeline, message_id, state, code, detail, attempts, http_status,
                response_body, body_sent, latency_ms, finished_at, attempt_log
         FROM events ORDER BY id DESC LIMIT ?1",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![limit], |row| {
        let id: i64 = row.get(0)?;
        let state = State::parse(&row.get::<_, String>(4)?).unwrap_or(State::Pending);
        let finished_at: Option<i64> = row.get(12)?;
        let outcome = finished_at.map(|finished_at_ms| -> rusqlite::Result<Settlement> {
            Ok(Settlement {
                id,
                state,
                code: row.get(5)?,
                detail: row.get(6)?,
                attempts: row.get(7)?,
                attempt_log: decode_attempts(
                    row.get::<_, Option<String>>(13)?.as_deref().unwrap_or_default(),
                ),
                http_status: row.get(8)?,
                response_body: row.get(9)?,
                body_sent: row.get(10)?,
                latency_ms: row.get::<_, Option<i64>>(11)?.map(|ms| u64::try_from(ms).unwrap_or(0)),
                finished_at_ms,
            })
        });
        Ok(EventRecord {
            id,
            source: row.get(1)?,
            pipeline: row.get(2)?,
            message_id: row.get(3)?,
            state,
            outcome: outcome.transpose()?,
        })
    })?;
    rows.collect()
}

fn note_retrying(connection: &Connection, notes: &[RetryNote]) -> rusqlite::Result<()> {
    let mut update = connection.prepare_cached(
        "UPDATE events SET state = 'retrying', attempts = ?2, code = ?3, http_status = ?4, detail = ?5
         WHERE id = ?1 AND state IN ('claimed', 'retrying')",
    )?;
    for note in notes {
        update.execute(params![note.id, note.attempts, note.code, note.status, note.hint])?;
    }
    Ok(())
}

fn summary_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: row.get(0)?,
        received_at_ms: row.get(1)?,
        source: row.get(2)?,
        pipeline: row.get(3)?,
        message_id: row.get(4)?,
        labels: Labels { call_type: row.get(5)?, event: row.get(6)?, customer_id: row.get(7)? },
        state: State::parse(&row.get::<_, String>(8)?).unwrap_or(State::Pending),
        code: row.get(9)?,
        status: row.get(10)?,
        attempts: row.get(11)?,
        hint: row.get(12)?,
    })
}

/// The `WHERE` of a listing (or of a requeue), with its parameters.
#[derive(Default)]
struct Conditions {
    terms: Vec<String>,
    values: Vec<rusqlite::types::Value>,
}

impl Conditions {
    fn add(&mut self, term: &str, value: impl Into<rusqlite::types::Value>) {
        self.values.push(value.into());
        self.terms.push(term.replace('?', &format!("?{}", self.values.len())));
    }

    fn states(&mut self, states: &[&str]) {
        let mut marks = Vec::new();
        for state in states {
            self.values.push((*state).to_owned().into());
            marks.push(format!("?{}", self.values.len()));
        }
        self.terms.push(format!("state IN ({})", marks.join(", ")));
    }

    fn sql(&self) -> String {
        if self.terms.is_empty() { String::new() } else { format!("WHERE {}", self.terms.join(" AND ")) }
    }
}

fn list(connection: &Connection, listing: &Listing) -> rusqlite::Result<Vec<Summary>> {
    // One snapshot for every query of a listing: an event settled between two of them is in one.
    let snapshot = connection.unchecked_transaction()?;
    let connection: &Connection = &snapshot;
    let Some(customer_id) = &listing.customer_id else { return list_where(connection, listing, None) };
    // Settled events by the customer index; waiting ones, not yet in it, by state.
    let mut lines = list_where(connection, listing, Some(("customer_key = ?", customer_id, false)))?;
    lines.extend(list_where(connection, listing, Some(("customer_key IS NULL AND customer_id = ?", customer_id, true)))?);
    lines.sort_by_key(|line| std::cmp::Reverse(line.id));
    lines.truncate(listing.limit);
    Ok(lines)
}

/// A listing, with the customer filter given as `(term, customer, waiting events only)`.
fn list_where(
    connection: &Connection,
    listing: &Listing,
    customer: Option<(&str, &String, bool)>,
) -> rusqlite::Result<Vec<Summary>> {
    let mut conditions = Conditions::default();
    if let Some(state) = listing.state {
        conditions.states(state.stored());
    }
    if let Some((term, customer_id, waiting_only)) = customer {
        conditions.add(term, customer_id.clone());
        if waiting_only {
            conditions.states(&["pending", "claimed", "retrying"]);
        }
    }
    if let Some(event) = &listing.event {
        conditions.add("event = ?", event.clone());
    }
    if let Some(pipeline) = &listing.pipeline {
        conditions.add("pipeline = ?", pipeline.clone());
    }
    if let Some(since) = listing.since_ms {
        conditions.add("received_at >= ?", since);
        // No index on the time: ids grow with it, so it becomes a range of ids the scan keeps to.
        match first_received_since(connection, since.saturating_sub(TIME_SLACK_MS))? {
            Some(first) => conditions.add("id >= ?", first),
            None => return Ok(Vec::new()),
        }
    }
    if let Some(until) = listing.until_ms {
        conditions.add("received_at < ?", until);
        if let Some(past) = first_received_since(connection, until.saturating_add(TIME_SLACK_MS))? {
            conditions.add("id < ?", past);
        }
    }
    if let Some(before) = listing.before_id {
        conditions.add("id < ?", before);
    }
    let limit = i64::try_from(listing.limit).unwrap_or(i64::MAX);
    conditions.values.push(limit.into());
    // Waiting events are few; left to itself the planner may walk a popular event name instead.
    let from = if customer.is_some_and(|(_, _, waiting_only)| waiting_only) {
        "events INDEXED BY events_state"
    } else {
        "events"
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM {from} {} ORDER BY id DESC LIMIT ?{}",
        conditions.sql(),
        conditions.values.len()
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(conditions.values.iter()), summary_of)?;
    rows.collect()
}

/// The first id received at or after `time_ms`, found by bisecting the ids (receipt times grow with
/// them, give or take [`TIME_SLACK_MS`]): some twenty lookups by id, however many events there are.
fn first_received_since(connection: &Connection, time_ms: i64) -> rusqlite::Result<Option<i64>> {
    let mut at_or_after =
        connection.prepare_cached("SELECT id, received_at FROM events WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    let mut probe = |id: i64| -> rusqlite::Result<Option<(i64, i64)>> {
        at_or_after.query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?))).optional()
    };
    let newest: Option<i64> = connection.query_row("SELECT MAX(id) FROM events", [], |row| row.get(0))?;
    let Some(newest) = newest else { return Ok(None) };
    let (mut low, mut high) = (0i64, newest.saturating_add(1));
    while low < high {
        let middle = low + (high - low) / 2;
        match probe(middle)? {
            Some((_, received)) if received >= time_ms => high = middle,
            Some((id, _)) => low = id.saturating_add(1),
            None => high = middle,
        }
    }
    Ok(probe(low)?.map(|(id, _)| id))
}

fn detail(connection: &Connection, id: i64) -> rusqlite::Result<Option<Detail>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS}, payload, body_sent, attempt_log, response_body, finished_at, latency_ms
         FROM events WHERE id = ?1"
    ))?;
    statement
        .query_row(params![id], |row| {
            Ok(Detail {
                summary: summary_of(row)?,
                payload: row.get(13)?,
                body_sent: row.get(14)?,
                attempt_log: decode_attempts(row.get::<_, Option<String>>(15)?.as_deref().unwrap_or_default()),
                response_body: row.get(16)?,
                finished_at_ms: row.get(17)?,
                latency_ms: row.get::<_, Option<i64>>(18)?.map(|ms| u64::try_from(ms).unwrap_or(0)),
            })
        })
        .optional()
}

/// The `WHERE` of a replay.
fn requeue_conditions(requeue: &Requeue) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.states(&[requeue.state.as_str()]);
    if let Some(pipeline) = &requeue.pipeline {
        conditions.add("pipeline = ?", pipeline.clone());
    }
    if let Some(since) = requeue.since_ms {
        conditions.add("received_at >= ?", since);
    }
    if let Some(until) = requeue.until_ms {
        conditions.add("received_at < ?", until);
    }
    if let Some(after) = requeue.after_id {
        conditions.add("id > ?", after);
    }
    conditions
}

fn requeue_step(connection: &Connection, requeue: &Requeue, ids: &mut Vec<i64>) -> rusqlite::Result<Requeued> {
    let conditions = requeue_conditions(requeue);
    let filter = conditions.sql();
    let limit = i64::try_from(requeue.limit).unwrap_or(i64::MAX);
    let mut values = conditions.values;
    values.push(limit.into());
    // The earlier fate is cleared: the next one is recorded afresh.
    let sql = format!(
        "UPDATE events SET state = 'pending', code = NULL, detail = NULL, http_status = NULL, attempts = 0,
             attempt_log = NULL, response_body = NULL, body_sent = NULL, latency_ms = NULL, finished_at = NULL
         WHERE id IN (SELECT id FROM events {filter} ORDER BY id LIMIT ?{}) RETURNING id",
        values.len()
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let done: Vec<i64> =
        statement.query_map(params_from_iter(values.iter()), |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    let requeued = Requeued { requeued: done.len() as u64, last_id: done.iter().copied().max() };
    ids.extend(done);
    Ok(requeued)
}

fn count_requeue(connection: &Connection, requeue: &Requeue) -> rusqlite::Result<u64> {
    let conditions = requeue_conditions(requeue);
    let count: i64 = connection
        .prepare_cached(&format!("SELECT COUNT(*) FROM events {}", conditions.sql()))?
        .query_row(params_from_iter(conditions.values.iter()), |row| row.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

fn resume_paused(connection: &Connection, pipelines: &[String], resumed: &mut Vec<i64>) -> rusqlite::Result<u64> {
    let mut update = connection
        .prepare_cached("UPDATE events SET state = 'pending' WHERE state = 'paused' AND pipeline = ?1 RETURNING id")?;
    let before = resumed.len();
    for pipeline in pipelines {
        for id in update.query_map(params![pipeline], |row| row.get(0))? {
            resumed.push(id?);
        }
    }
    Ok((resumed.len() - before) as u64)
}

/// Deletes up to `step` settled events past the retention. Ids grow with receipt, so each limit is
/// turned into an id below which events may go, and each settled state is read from its own index:
/// a prune never scans the events that wait, however many there are. Failed events wait for a
/// replay: only age removes them, never the count.
fn prune(connection: &Connection, retention: Retention, step: usize) -> rusqlite::Result<Pruned> {
    let newest: Option<i64> = connection.query_row("SELECT MAX(id) FROM events", [], |row| row.get(0))?;
    let Some(newest) = newest else { return Ok(Pruned::default()) };
    let by_age = match retention.age_cutoff_ms(now_ms()) {
        // None: every event is older than the cutoff.
        Some(cutoff) => Some(first_received_since(connection, cutoff)?.unwrap_or(newest.saturating_add(1))),
        None => None,
    };
    let mut delete = connection.prepare_cached(
        "DELETE FROM events WHERE id IN (
             SELECT id FROM events WHERE state = ?1 AND id < ?2 ORDER BY id LIMIT ?3)",
    )?;
    let mut pruned = Pruned::default();
    for (state, below) in retention.prunable(newest, by_age) {
        let room = step.saturating_sub(pruned.total as usize);
        let Some(below) = below else { continue };
        if room == 0 {
            break;
        }
        let deleted = delete.execute(params![state, below, i64::try_from(room).unwrap_or(i64::MAX)])? as u64;
        pruned.total += deleted;
        if state == "failed" {
            pruned.failed += deleted;
        }
    }
    Ok(pruned)
}
