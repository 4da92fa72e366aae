//! The embedded engine: one SQLite file in WAL mode, one connection on its own thread, group commit.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::private;
use crate::{
    AttemptRecord, Claimed, Depth, Enqueued, EventRecord, NewEvent, Outcome, Queue, State, StoreError, sql,
};

/// Dedupe entries past every window are purged once every this many commits.
const PURGE_EVERY: u64 = 1000;

/// At most this many requests share one commit.
const GROUP_LIMIT: usize = 1024;

enum Request {
    Enqueue { events: Vec<NewEvent>, window: Duration, reply: oneshot::Sender<Result<Enqueued, String>> },
    Claim { pipeline: String, limit: usize, reply: oneshot::Sender<Result<Vec<Claimed>, String>> },
    Finish { outcomes: Vec<Outcome>, reply: oneshot::Sender<Result<(), String>> },
    Release { ids: Vec<i64>, reply: oneshot::Sender<Result<(), String>> },
    Depth { reply: oneshot::Sender<Result<Depth, String>> },
    Recent { limit: usize, reply: oneshot::Sender<Result<Vec<EventRecord>, String>> },
}

/// The queue in an SQLite file.
#[derive(Clone)]
pub struct SqliteQueue {
    requests: mpsc::UnboundedSender<Request>,
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
        let made_private = private::prepare(path)?;
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
        connection.execute_batch(sql::SQLITE_SCHEMA).map_err(failed("creating the tables"))?;
        let claimed = connection
            .execute("UPDATE events SET state = 'pending' WHERE state = 'claimed'", [])
            .map_err(failed("recovering claimed events"))? as u64;
        let paused = connection
            .execute("UPDATE events SET state = 'pending' WHERE state = 'paused'", [])
            .map_err(failed("resuming paused events"))? as u64;
        let (requests, receiver) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("signal-sqlite".into())
            .spawn(move || {
                // Held while the queue is served: the lock is released when the process ends, however.
                let _lock = lock;
                serve(connection, receiver);
            })
            .map_err(|error| StoreError { doing: "starting the storage thread", cause: error.to_string() })?;
        Ok((SqliteQueue { requests }, Recovered { claimed, paused, made_private }))
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

impl Queue for SqliteQueue {
    async fn enqueue(&self, events: Vec<NewEvent>, dedupe_window: Duration) -> Result<Enqueued, StoreError> {
        self.ask("queuing events", |reply| Request::Enqueue { events, window: dedupe_window, reply }).await
    }

    async fn claim(&self, pipeline: String, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        self.ask("claiming events", |reply| Request::Claim { pipeline, limit, reply }).await
    }

    async fn finish(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        self.ask("recording outcomes", |reply| Request::Finish { outcomes, reply }).await
    }

    async fn release(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.ask("releasing events", |reply| Request::Release { ids, reply }).await
    }

    async fn depth(&self) -> Result<Depth, StoreError> {
        self.ask("counting waiting events", |reply| Request::Depth { reply }).await
    }

    async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.ask("reading recent events", |reply| Request::Recent { limit, reply }).await
    }
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// A reply, sent only after the commit that made it true.
enum Reply {
    Enqueue(oneshot::Sender<Result<Enqueued, String>>, Result<Enqueued, String>),
    Claim(oneshot::Sender<Result<Vec<Claimed>, String>>, Result<Vec<Claimed>, String>),
    Unit(oneshot::Sender<Result<(), String>>, Result<(), String>),
    Depth(oneshot::Sender<Result<Depth, String>>, Result<Depth, String>),
    Recent(oneshot::Sender<Result<Vec<EventRecord>, String>>, Result<Vec<EventRecord>, String>),
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
        };
    }
}

fn serve(mut connection: Connection, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut commits = 0u64;
    // The longest dedupe window asked for: `seen` entries older than it can go.
    let mut longest_window = Duration::ZERO;
    while let Some(first) = requests.blocking_recv() {
        if let Request::Enqueue { window, .. } = &first {
            longest_window = longest_window.max(*window);
        }
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match requests.try_recv() {
                Ok(request) => {
                    if let Request::Enqueue { window, .. } = &request {
                        longest_window = longest_window.max(*window);
                    }
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        let replies = match connection.transaction() {
            Ok(mut transaction) => {
                let replies: Vec<Reply> =
                    group.into_iter().map(|request| run(&mut transaction, request)).collect();
                match transaction.commit() {
                    Ok(()) => replies,
                    Err(error) => replies.into_iter().map(|reply| reply.fail(&error.to_string())).collect(),
                }
            }
            Err(error) => {
                group.into_iter().map(|request| unanswered(request).fail(&error.to_string())).collect()
            }
        };
        replies.into_iter().for_each(Reply::send);
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
        Request::Finish { reply, .. } | Request::Release { reply, .. } => {
            Reply::Unit(reply, Err(String::new()))
        }
        Request::Depth { reply } => Reply::Depth(reply, Err(String::new())),
        Request::Recent { reply, .. } => Reply::Recent(reply, Err(String::new())),
    }
}

/// Runs one request in its own savepoint, so that one failing request does not undo the others in
/// the group.
fn run(transaction: &mut rusqlite::Transaction<'_>, request: Request) -> Reply {
    fn isolated<T>(
        transaction: &mut rusqlite::Transaction<'_>,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, String> {
        let savepoint = transaction.savepoint().map_err(|e| e.to_string())?;
        let result = work(&savepoint).map_err(|e| e.to_string())?;
        savepoint.commit().map_err(|e| e.to_string())?;
        Ok(result)
    }
    match request {
        Request::Enqueue { events, window, reply } => {
            Reply::Enqueue(reply, isolated(transaction, |c| enqueue(c, &events, window)))
        }
        Request::Claim { pipeline, limit, reply } => {
            Reply::Claim(reply, isolated(transaction, |c| claim(c, &pipeline, limit)))
        }
        Request::Finish { outcomes, reply } => {
            Reply::Unit(reply, isolated(transaction, |c| finish(c, &outcomes)))
        }
        Request::Release { ids, reply } => Reply::Unit(reply, isolated(transaction, |c| release(c, &ids))),
        Request::Depth { reply } => Reply::Depth(reply, isolated(transaction, depth)),
        Request::Recent { limit, reply } => Reply::Recent(reply, isolated(transaction, |c| recent(c, limit))),
    }
}

fn enqueue(connection: &Connection, events: &[NewEvent], window: Duration) -> rusqlite::Result<Enqueued> {
    let now = now_ms();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut seen =
        connection.prepare_cached("SELECT seen_at FROM seen WHERE source = ?1 AND message_id = ?2")?;
    let mut remember = connection.prepare_cached(
        "INSERT INTO seen (source, message_id, seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source, message_id) DO UPDATE SET seen_at = excluded.seen_at",
    )?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO events (source, pipeline, message_id, received_at, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut record_dropped = connection.prepare_cached(
        "INSERT INTO events (source, pipeline, message_id, received_at, payload, state, code, detail, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'dropped', ?6, ?7, ?8)",
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
                dropped.code,
                dropped.detail,
                now
            ])?;
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
            event.payload
        ])?;
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
        })
    })?;
    let mut claimed: Vec<Claimed> = rows.collect::<rusqlite::Result<_>>()?;
    claimed.sort_by_key(|event| event.id);
    Ok(claimed)
}

fn finish(connection: &Connection, outcomes: &[Outcome]) -> rusqlite::Result<()> {
    let mut update = connection.prepare_cached(
        "UPDATE events SET state = ?2, code = ?3, detail = ?4, attempts = ?5, http_status = ?6,
             response_body = ?7, body_sent = ?8, latency_ms = ?9, finished_at = ?10, attempt_log = ?11
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

/// `200:12 500:31 -:5000`: status (or `-` for no answer) and milliseconds, per attempt.
fn encode_attempts(attempts: &[AttemptRecord]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .map(|attempt| {
            let status = attempt.status.map_or_else(|| "-".to_owned(), |status| status.to_string());
            format!("{status}:{}", attempt.latency_ms)
        })
        .collect();
    parts.join(" ")
}

fn decode_attempts(text: &str) -> Vec<AttemptRecord> {
    text.split_whitespace()
        .filter_map(|part| {
            let (status, latency) = part.split_once(':')?;
            Some(AttemptRecord { status: status.parse().ok(), latency_ms: latency.parse().ok()? })
        })
        .collect()
}

fn release(connection: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
    let mut update = connection
        .prepare_cached("UPDATE events SET state = 'pending' WHERE id = ?1 AND state = 'claimed'")?;
    for id in ids {
        update.execute(params![id])?;
    }
    Ok(())
}

fn depth(connection: &Connection) -> rusqlite::Result<Depth> {
    let mut statement = connection.prepare_cached(
        "SELECT state, COUNT(*) FROM events WHERE state IN ('pending', 'claimed', 'paused') GROUP BY state",
    )?;
    let mut depth = Depth::default();
    let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
    for row in rows {
        let (state, count) = row?;
        let count = u64::try_from(count).unwrap_or(0);
        match State::parse(&state) {
            Some(State::Pending) => depth.pending = count,
            Some(State::Claimed) => depth.claimed = count,
            Some(State::Paused) => depth.paused = count,
            _ => {}
        }
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
        let outcome = finished_at.map(|finished_at_ms| -> rusqlite::Result<Outcome> {
            Ok(Outcome {
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
