//! The shared engine: PostgreSQL, for several Signal nodes over one database. A pool of
//! connections serves every operation; each is one transaction, so an event is acknowledged only
//! after its commit, and concurrent collectors' commits share the server's WAL flushes.
//!
//! What one node at a time may do is held by a lease (a row of `leases`, timed by the database's
//! clock): the server delivers to a workspace only while it holds the workspace's lease, so the
//! workspace's rate limit is kept by one node's limiter, and a node that dies stops renewing its
//! leases, which others then take with the events it had claimed.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::tls;

use crate::common::{
    FEED_CAPACITY, FEED_PER_COMMIT, PURGE_EVERY, SUMMARY_COLUMNS, TIME_SLACK_MS, decode_attempts, encode_attempts,
    now_ms,
};
use crate::{
    Change, Claimed, Depth, Detail, Enqueued, EventRecord, Held, Labels, Listing, NewEvent, Settlement, Pruned, Queue,
    Recovered, Requeue, Requeued, Retention, RetryNote, State, StoreError, Summary, TraitChange, TraitOverlay, sql,
};

/// How often the live feed looks for changes while someone watches it.
const FEED_POLL: Duration = Duration::from_millis(250);

/// Changes numbered at most this far below the newest one told are read again: a transaction that
/// took its number earlier may commit later.
const FEED_SLACK: i64 = 1024;

/// The newest change and the newest event: where the live feed starts.
const NEWEST: &str = "SELECT COALESCE(MAX(changed), 0), COALESCE(MAX(id), 0) FROM events";

/// The advisory lock under which a node runs the migrations.
const MIGRATION_LOCK: i64 = 0x5349_474e_414c; // "SIGNAL"

/// The queue in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresQueue {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// This node's name in `claimed_by` and `leases`: unique to this process.
    node: String,
    feed: broadcast::Sender<Change>,
    /// Told when any node queued events (PostgreSQL's NOTIFY, heard on a connection of its own).
    queued: broadcast::Sender<()>,
    /// Told when this node queued events: [`announce_queued`] NOTIFYs the others.
    announce: Arc<tokio::sync::Notify>,
    /// The longest dedupe window asked for, in ms: `seen` entries older than it can go.
    longest_window_ms: AtomicI64,
    enqueues: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the announcing task see that the queue is gone, and end.
        self.announce.notify_one();
    }
}

type Parameter = Box<dyn ToSql + Sync + Send>;

fn failed(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| StoreError { doing, cause: describe(&error) }
}

/// The server's own words when it sent them (`tokio_postgres` says only "db error"), else the
/// error with its causes ("error connecting to server: Connection refused").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => with_causes(error),
    }
}

fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}

/// A pool's failure to hand out a connection, in the words of its cause.
fn pool_failure(doing: &'static str, error: &deadpool_postgres::PoolError) -> StoreError {
    let cause = match error {
        deadpool_postgres::PoolError::Backend(error) => describe(error),
        other => with_causes(other),
    };
    StoreError { doing, cause }
}

/// The URL's `user:password@host` part, when it holds more than one `@`: a password with an
/// unescaped `@`, which a URL parser splits in the wrong place (and would show the rest of).
fn unescaped_at(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    (authority.matches('@').count() > 1).then_some(authority)
}

/// Where a URL points, without its password: `signal@db.internal:5432/signal`.
pub(crate) fn describe_url(url: &str) -> String {
    if let Some(authority) = unescaped_at(url) {
        // Everything before the last `@` but the user's name may be password.
        let user = authority.split([':', '@']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or("", |(_, host)| host);
        return format!("{user}@{host} (a password with an unescaped `@`)");
    }
    let Ok((url, _)) = tls::split_url(url) else { return "an unreadable URL".into() };
    let Ok(config) = url.parse::<tokio_postgres::Config>() else { return "an unreadable URL".into() };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    let database = config.get_dbname().unwrap_or("");
    format!("{user}{}/{database}", hosts.join(","))
}

impl PostgresQueue {
    /// Connects to the database at `url` with a pool of at most `max_connections`, and brings its
    /// tables up to this version. Nothing is recovered here: other nodes may be delivering; a
    /// node's events return to the queue when another takes the lease it held.
    pub async fn open(url: &str, max_connections: usize) -> Result<(PostgresQueue, Recovered), StoreError> {
        if unescaped_at(url).is_some() {
            return Err(StoreError {
                doing: "reading `storage.postgres.url`",
                cause: format!(
                    "{}: percent-encode `@` in the password as `%40` (and `:` as `%3A`, `/` as `%2F`)",
                    describe_url(url)
                ),
            });
        }
        let (plain, settings) =
            tls::split_url(url).map_err(|cause| StoreError { doing: "reading `storage.postgres.url`", cause })?;
        let mut config: tokio_postgres::Config = plain.parse().map_err(|error: tokio_postgres::Error| StoreError {
            doing: "reading `storage.postgres.url`",
            cause: format!("{error}; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
        })?;
        config.ssl_mode(settings.verify.ssl_mode());
        let connector = tls::connector(&settings)
            .map_err(|cause| StoreError { doing: "setting up TLS for PostgreSQL", cause })?;
        let (listening, listening_connector) = (config.clone(), connector.clone());
        let manager = Manager::from_config(config, connector, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|error| StoreError { doing: "setting up the PostgreSQL pool", cause: error.to_string() })?;
        let mut client = pool.get().await.map_err(|error| {
            let failure = pool_failure("connecting to PostgreSQL", &error);
            StoreError {
                doing: failure.doing,
                cause: format!("{}: {}; check `storage.postgres.url` and that the server is up", describe_url(url), failure.cause),
            }
        })?;
        migrate(&mut client).await?;
        // The live feed starts from here: every change after opening is told.
        let newest: (i64, i64) = client
            .query_one(NEWEST, &[])
            .await
            .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .map_err(failed("reading the newest change"))?;
        drop(client);
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let (queued, _) = broadcast::channel(16);
        let inner = Arc::new(Inner {
            pool,
            node: node_name(),
            feed,
            queued,
            announce: Arc::new(tokio::sync::Notify::new()),
            longest_window_ms: AtomicI64::new(0),
            enqueues: AtomicU64::new(0),
        });
        tokio::spawn(watch_changes(Arc::downgrade(&inner), newest));
        tokio::spawn(listen_for_queued(Arc::downgrade(&inner), listening, listening_connector));
        tokio::spawn(announce_queued(Arc::downgrade(&inner), inner.announce.clone()));
        Ok((PostgresQueue { inner }, Recovered { made_private: Vec::new(), claimed: 0, paused: 0 }))
    }

    /// This node's name, as it appears in `claimed_by` and `leases`.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    async fn client(&self, doing: &'static str) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|error| pool_failure(doing, &error))
    }
}

/// A name no other process has: the host, the process, and the moment it started.
fn node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() % 1_000_000_000_000);
    format!("{host}-{}-{started:x}", std::process::id())
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let fail = failed("bringing the PostgreSQL tables up to this version");
    let transaction = client.transaction().await.map_err(&fail)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(&fail)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS signal_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(&fail)?;
    let applied: HashSet<i32> = transaction
        .query("SELECT version FROM signal_migrations", &[])
        .await
        .map_err(&fail)?
        .iter()
        .filter_map(|row| row.try_get(0).ok())
        .collect();
    let newest_known = sql::POSTGRES_MIGRATIONS.iter().map(|(version, _)| *version).max().unwrap_or(0);
    if let Some(newer) = applied.iter().copied().filter(|version| *version > newest_known).max() {
        return Err(StoreError {
            doing: "bringing the PostgreSQL tables up to this version",
            cause: format!(
                "the database is at version {newer}, made by a newer Signal than this one (which knows up to {newest_known}): run the newer version"
            ),
        });
    }
    for (version, migration) in sql::POSTGRES_MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        transaction.batch_execute(migration).await.map_err(&fail)?;
        transaction
            .execute("INSERT INTO signal_migrations (version, applied_at) VALUES ($1, $2)", &[version, &now_ms()])
            .await
            .map_err(&fail)?;
    }
    transaction.commit().await.map_err(&fail)
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, tokio_postgres::Error> {
    row.try_get(index)
}

fn unsigned(value: Option<i32>) -> Option<u16> {
    value.and_then(|value| u16::try_from(value).ok())
}

fn summary_of(row: &Row, offset: usize) -> Result<Summary, tokio_postgres::Error> {
    let at = |index: usize| offset + index;
    Ok(Summary {
        id: column(row, at(0))?,
        received_at_ms: column(row, at(1))?,
        source: column(row, at(2))?,
        pipeline: column(row, at(3))?,
        message_id: column(row, at(4))?,
        labels: Labels {
            call_type: column(row, at(5))?,
            event: column(row, at(6))?,
            customer_id: column(row, at(7))?,
        },
        state: State::parse(&column::<String>(row, at(8))?).unwrap_or(State::Pending),
        code: column(row, at(9))?,
        status: unsigned(column(row, at(10))?),
        attempts: u32::try_from(column::<i32>(row, at(11))?).unwrap_or(0),
        hint: column(row, at(12))?,
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn count(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The `WHERE` of a listing or a replay, with its parameters.
#[derive(Default)]
struct Conditions {
    terms: Vec<String>,
    values: Vec<Parameter>,
}

impl Conditions {
    fn add(&mut self, term: &str, value: Parameter) {
        self.values.push(value);
        self.terms.push(term.replace('?', &format!("${}", self.values.len())));
    }

    fn states(&mut self, states: &[&str]) {
        let states: Vec<String> = states.iter().map(|state| (*state).to_owned()).collect();
        self.add("state = ANY(?)", Box::new(states));
    }

    fn sql(&self) -> String {
        if self.terms.is_empty() { String::new() } else { format!("WHERE {}", self.terms.join(" AND ")) }
    }

    fn next(&self) -> usize {
        self.values.len() + 1
    }

    fn parameters(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values.iter().map(|value| &**value as &(dyn ToSql + Sync)).collect()
    }
}

impl Queue for PostgresQueue {
    async fn enqueue(&self, events: Vec<NewEvent>, dedupe_window: Duration) -> Result<Enqueued, StoreError> {
        let fail = failed("queuing events");
        let now = now_ms();
        let window_ms = millis(dedupe_window);
        self.inner.longest_window_ms.fetch_max(window_ms, Ordering::Relaxed);
        // One row per event and pipeline, one `seen` entry per event. Sorted, so that two requests
        // with some ids in common lock their `seen` rows in the same order, never in a deadlock.
        let keys: BTreeSet<(&str, &str)> = events
            .iter()
            .filter(|event| event.dropped.is_none())
            .map(|event| (event.source.as_str(), event.message_id.as_str()))
            .collect();
        let (key_sources, key_ids): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
        let mut columns = EventColumns::default();
        for event in &events {
            columns.push(event);
        }
        let client = self.client("queuing events").await?;
        let statement = client.prepare_cached(sql::POSTGRES_ENQUEUE).await.map_err(&fail)?;
        // One statement, so one transaction and one round trip, however many events.
        let row = client
            .query_one(
                &statement,
                &[
                    &columns.source,
                    &columns.pipeline,
                    &columns.message_id,
                    &columns.received_at,
                    &columns.payload,
                    &columns.call_type,
                    &columns.event,
                    &columns.customer_id,
                    &columns.drop_code,
                    &columns.drop_detail,
                    &now,
                    &key_sources,
                    &key_ids,
                    &now.saturating_sub(window_ms),
                ],
            )
            .await
            .map_err(&fail)?;
        let counted = |index: usize| -> Result<usize, StoreError> {
            Ok(usize::try_from(column::<i64>(&row, index).map_err(&fail)?).unwrap_or(0))
        };
        let (queued, recorded) = (counted(0)?, counted(1)?);
        let waiting = events.iter().filter(|event| event.dropped.is_none()).count();
        if self.inner.enqueues.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            let longest = self.inner.longest_window_ms.load(Ordering::Relaxed);
            // Entries older than the longest window in use can no longer match; a failure here
            // leaves them for the next purge.
            let _ = client.execute("DELETE FROM seen WHERE seen_at < $1", &[&now.saturating_sub(longest)]).await;
        }
        if queued > 0 {
            self.inner.announce.notify_one();
        }
        Ok(Enqueued { queued, duplicates: waiting.saturating_sub(queued), recorded })
    }

    async fn claim(&self, pipeline: String, limit: usize) -> Result<Vec<Claimed>, StoreError> {
        let fail = failed("claiming events");
        let client = self.client("claiming events").await?;
        let rows = client
            .query(&client.prepare_cached(sql::POSTGRES_CLAIM).await.map_err(&fail)?, &[
                &pipeline,
                &count(limit),
                &self.inner.node,
            ])
            .await
            .map_err(&fail)?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    id: column(row, 0)?,
                    pipeline: column(row, 1)?,
                    message_id: column(row, 2)?,
                    received_at_ms: column(row, 3)?,
                    payload: column(row, 4)?,
                    user_id: column(row, 5)?,
                    call_type: column(row, 6)?,
                    event: column(row, 7)?,
                })
            })
            .collect::<Result<Vec<Claimed>, tokio_postgres::Error>>()
            .map_err(&fail)?;
        claimed.sort_by_key(|event| event.id);
        Ok(claimed)
    }

    async fn finish(&self, outcomes: Vec<Settlement>) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // Fenced by `claimed_by`: a node whose lease was taken while it delivered may still finish,
        // and the events are then another node's to record (it delivers them again, as MoEngage's
        // answer to this node was never written).
        let fail = failed("recording outcomes");
        let mut ids = Vec::new();
        let mut states = Vec::new();
        let mut codes = Vec::new();
        let mut details = Vec::new();
        let mut attempts = Vec::new();
        let mut statuses = Vec::new();
        let mut responses = Vec::new();
        let mut bodies = Vec::new();
        let mut latencies = Vec::new();
        let mut finished = Vec::new();
        let mut logs = Vec::new();
        for outcome in outcomes {
            ids.push(outcome.id);
            states.push(outcome.state.as_str());
            codes.push(outcome.code);
            details.push(outcome.detail);
            attempts.push(i32::try_from(outcome.attempts).unwrap_or(i32::MAX));
            statuses.push(outcome.http_status.map(i32::from));
            responses.push(outcome.response_body);
            bodies.push(outcome.body_sent);
            latencies.push(outcome.latency_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)));
            finished.push(outcome.finished_at_ms);
            logs.push(encode_attempts(&outcome.attempt_log));
        }
        let client = self.client("recording outcomes").await?;
        client
            .execute(
                &client.prepare_cached("UPDATE events AS e SET state = o.state, code = o.code, detail = o.detail, attempts = o.attempts,
                     http_status = o.http_status, response_body = o.response_body, body_sent = o.body_sent,
                     latency_ms = o.latency_ms, finished_at = o.finished_at, attempt_log = o.attempt_log,
                     customer_key = e.customer_id, changed = nextval('events_changes')
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bytea[],
                             $8::bytea[], $9::bigint[], $10::bigint[], $11::text[])
                     AS o(id, state, code, detail, attempts, http_status, response_body, body_sent, latency_ms,
                          finished_at, attempt_log)
                 WHERE e.id = o.id AND e.claimed_by = $12 AND e.state IN ('claimed', 'retrying')").await.map_err(&fail)?,
                &[
                    &ids, &states, &codes, &details, &attempts, &statuses, &responses, &bodies, &latencies, &finished,
                    &logs, &self.inner.node,
                ],
            )
            .await
            .map_err(&fail)?;
        Ok(())
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        let client = self.client("checking the database").await?;
        client.simple_query("SELECT 1").await.map_err(failed("checking the database"))?;
        Ok(())
    }

    async fn release(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        let client = self.client("releasing events").await?;
        client
            .execute(
                "UPDATE events SET state = 'pending', claimed_by = NULL, changed = nextval('events_changes')
                 WHERE id = ANY($1) AND claimed_by = $2 AND state IN ('claimed', 'retrying')",
                &[&ids, &self.inner.node],
            )
            .await
            .map_err(failed("releasing events"))?;
        Ok(())
    }

    async fn depth(&self) -> Result<Depth, StoreError> {
        let fail = failed("counting waiting events");
        let client = self.client("counting waiting events").await?;
        let rows = client
            .query(
                "SELECT state, COUNT(*) FROM events WHERE state IN ('pending', 'claimed', 'retrying', 'paused')
                 GROUP BY state",
                &[],
            )
            .await
            .map_err(&fail)?;
        let mut depth = Depth::default();
        for row in rows {
            let state: String = column(&row, 0).map_err(&fail)?;
            depth.add(&state, u64::try_from(column::<i64>(&row, 1).map_err(&fail)?).unwrap_or(0));
        }
        Ok(depth)
    }

    async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let fail = failed("reading recent events");
        let client = self.client("reading recent events").await?;
        let rows = client
            .query(
                "SELECT id, source, pipeline, message_id, state, code, detail, attempts, http_status,
                        response_body, body_sent, latency_ms, finished_at, attempt_log
                 FROM events ORDER BY id DESC LIMIT $1",
                &[&count(limit)],
            )
            .await
            .map_err(&fail)?;
        rows.iter()
            .map(|row| {
                let id: i64 = column(row, 0)?;
                let state = State::parse(&column::<String>(row, 4)?).unwrap_or(State::Pending);
                let outcome = match column::<Option<i64>>(row, 12)? {
                    Some(finished_at_ms) => Some(Settlement {
                        id,
                        state,
                        code: column(row, 5)?,
                        detail: column(row, 6)?,
                        attempts: u32::try_from(column::<i32>(row, 7)?).unwrap_or(0),
                        attempt_log: decode_attempts(column::<Option<String>>(row, 13)?.as_deref().unwrap_or_default()),
                        http_status: unsigned(column(row, 8)?),
                        response_body: column(row, 9)?,
                        body_sent: column(row, 10)?,
                        latency_ms: column::<Option<i64>>(row, 11)?.map(|ms| u64::try_from(ms).unwrap_or(0)),
                        finished_at_ms,
                    }),
                    None => None,
                };
                Ok(EventRecord {
                    id,
                    source: column(row, 1)?,
                    pipeline: column(row, 2)?,
                    message_id: column(row, 3)?,
                    state,
                    outcome,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(&fail)
    }

    async fn note_retrying(&self, notes: Vec<RetryNote>) -> Result<(), StoreError> {
        if notes.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = notes.iter().map(|note| note.id).collect();
        let attempts: Vec<i32> = notes.iter().map(|note| i32::try_from(note.attempts).unwrap_or(i32::MAX)).collect();
        let codes: Vec<&str> = notes.iter().map(|note| note.code.as_str()).collect();
        let statuses: Vec<Option<i32>> = notes.iter().map(|note| note.status.map(i32::from)).collect();
        let hints: Vec<Option<&str>> = notes.iter().map(|note| note.hint.as_deref()).collect();
        let client = self.client("recording retries").await?;
        client
            .execute(
                &client.prepare_cached("UPDATE events AS e SET state = 'retrying', attempts = n.attempts, code = n.code,
                     http_status = n.http_status, detail = n.hint, changed = nextval('events_changes')
                 FROM unnest($1::bigint[], $2::int[], $3::text[], $4::int[], $5::text[])
                     AS n(id, attempts, code, http_status, hint)
                 WHERE e.id = n.id AND e.claimed_by = $6 AND e.state IN ('claimed', 'retrying')").await.map_err(failed("recording retries"))?,
                &[&ids, &attempts, &codes, &statuses, &hints, &self.inner.node],
            )
            .await
            .map_err(failed("recording retries"))?;
        Ok(())
    }

    async fn list(&self, listing: Listing) -> Result<Vec<Summary>, StoreError> {
        let fail = failed("listing events");
        let mut client = self.client("listing events").await?;
        // One snapshot for every query of a listing: an event settled between two of them is in one.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(&fail)?;
        let lines = match &listing.customer_id {
            None => list_where(&transaction, &listing, None).await.map_err(&fail)?,
            Some(customer_id) => {
                // Settled events by the customer index; waiting ones, not yet in it, by state.
                let mut lines =
                    list_where(&transaction, &listing, Some(("customer_key = ?", customer_id, false))).await.map_err(&fail)?;
                lines.extend(
                    list_where(&transaction, &listing, Some(("customer_key IS NULL AND customer_id = ?", customer_id, true)))
                        .await
                        .map_err(&fail)?,
                );
                lines.sort_by_key(|line| std::cmp::Reverse(line.id));
                lines.truncate(listing.limit);
                lines
            }
        };
        transaction.commit().await.map_err(&fail)?;
        Ok(lines)
    }

    async fn detail(&self, id: i64) -> Result<Option<Detail>, StoreError> {
        let fail = failed("reading an event");
        let client = self.client("reading an event").await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, payload, body_sent, attempt_log, response_body, finished_at, latency_ms
                     FROM events WHERE id = $1"
                ),
                &[&id],
            )
            .await
            .map_err(&fail)?;
        let Some(row) = row else { return Ok(None) };
        let detail = (|| -> Result<Detail, tokio_postgres::Error> {
            Ok(Detail {
                summary: summary_of(&row, 0)?,
                payload: column(&row, 13)?,
                body_sent: column(&row, 14)?,
                attempt_log: decode_attempts(column::<Option<String>>(&row, 15)?.as_deref().unwrap_or_default()),
                response_body: column(&row, 16)?,
                finished_at_ms: column(&row, 17)?,
                latency_ms: column::<Option<i64>>(&row, 18)?.map(|ms| u64::try_from(ms).unwrap_or(0)),
            })
        })()
        .map_err(&fail)?;
        Ok(Some(detail))
    }

    async fn requeue(&self, requeue: Requeue) -> Result<Requeued, StoreError> {
        let fail = failed("queuing events again");
        let conditions = requeue_conditions(&requeue);
        // The earlier fate is cleared: the next one is recorded afresh.
        let statement = format!(
            "UPDATE events SET state = 'pending', code = NULL, detail = NULL, http_status = NULL, attempts = 0,
                 attempt_log = NULL, response_body = NULL, body_sent = NULL, latency_ms = NULL, finished_at = NULL,
                 claimed_by = NULL, changed = nextval('events_changes')
             WHERE id IN (SELECT id FROM events {} ORDER BY id LIMIT ${} FOR UPDATE SKIP LOCKED) RETURNING id",
            conditions.sql(),
            conditions.next()
        );
        let limit = count(requeue.limit);
        let mut parameters = conditions.parameters();
        parameters.push(&limit);
        let client = self.client("queuing events again").await?;
        let rows = client.query(&statement, &parameters).await.map_err(&fail)?;
        let ids: Vec<i64> = rows.iter().map(|row| column(row, 0)).collect::<Result<_, _>>().map_err(&fail)?;
        Ok(Requeued { requeued: ids.len() as u64, last_id: ids.iter().copied().max() })
    }

    async fn count_requeue(&self, requeue: Requeue) -> Result<u64, StoreError> {
        let fail = failed("counting events to replay");
        let conditions = requeue_conditions(&requeue);
        let client = self.client("counting events to replay").await?;
        let row = client
            .query_one(&format!("SELECT COUNT(*) FROM events {}", conditions.sql()), &conditions.parameters())
            .await
            .map_err(&fail)?;
        Ok(u64::try_from(column::<i64>(&row, 0).map_err(&fail)?).unwrap_or(0))
    }

    async fn resume_paused(&self, pipelines: Vec<String>) -> Result<u64, StoreError> {
        let client = self.client("resuming paused events").await?;
        let resumed = client
            .execute(
                "UPDATE events SET state = 'pending', claimed_by = NULL, changed = nextval('events_changes')
                 WHERE state = 'paused' AND pipeline = ANY($1)",
                &[&pipelines],
            )
            .await
            .map_err(failed("resuming paused events"))?;
        Ok(resumed)
    }

    async fn prune(&self, retention: Retention, step: usize) -> Result<Pruned, StoreError> {
        let fail = failed("pruning old events");
        let client = self.client("pruning old events").await?;
        let newest: Option<i64> =
            column(&client.query_one("SELECT MAX(id) FROM events", &[]).await.map_err(&fail)?, 0).map_err(&fail)?;
        let Some(newest) = newest else { return Ok(Pruned::default()) };
        let by_age = match retention.age_cutoff_ms(now_ms()) {
            // None: every event is older than the cutoff.
            Some(cutoff) => Some(
                first_received_since(&**client, cutoff).await.map_err(&fail)?.unwrap_or(newest.saturating_add(1)),
            ),
            None => None,
        };
        let mut pruned = Pruned::default();
        for (state, below) in retention.prunable(newest, by_age) {
            let room = step.saturating_sub(pruned.total as usize);
            let Some(below) = below else { continue };
            if room == 0 {
                break;
            }
            let deleted = client
                .execute(
                    "DELETE FROM events WHERE id IN (
                         SELECT id FROM events WHERE state = $1 AND id < $2 ORDER BY id LIMIT $3)",
                    &[&state, &below, &count(room)],
                )
                .await
                .map_err(&fail)?;
            pruned.total += deleted;
            if state == "failed" {
                pruned.failed += deleted;
            }
        }
        Ok(pruned)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.feed.subscribe()
    }

    fn queued_anywhere(&self) -> Option<broadcast::Receiver<()>> {
        Some(self.inner.queued.subscribe())
    }

    async fn recall_traits(&self, workspace: String, users: Vec<String>) -> Result<Vec<(String, String)>, StoreError> {
        let fail = failed("reading remembered traits");
        let client = self.client("reading remembered traits").await?;
        let rows = client
            .query("SELECT user_id, traits FROM traits WHERE workspace = $1 AND user_id = ANY($2)", &[&workspace, &users])
            .await
            .map_err(&fail)?;
        rows.iter()
            .map(|row| Ok((column(row, 0)?, column(row, 1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(&fail)
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
        let fail = failed("taking automatic merges");
        let now = now_ms();
        let mut client = self.client("taking automatic merges").await?;
        let transaction = client.transaction().await.map_err(&fail)?;
        let note = transaction.prepare(crate::sql::NOTE_ANONYMOUS).await.map_err(&fail)?;
        for id in &anonymous {
            transaction.execute(&note, &[&workspace, id, &now]).await.map_err(&fail)?;
        }
        // The primary key decides between nodes taking the same login: one insert wins.
        let take = transaction.prepare(crate::sql::TAKE_MERGE).await.map_err(&fail)?;
        let mut taken = Vec::new();
        for (merged, retained) in logins {
            if transaction.query_opt(&take, &[&workspace, &merged, &retained, &now]).await.map_err(&fail)?.is_some() {
                taken.push((merged, retained));
            }
        }
        transaction.commit().await.map_err(&fail)?;
        Ok(taken)
    }

    async fn forget_merges(&self, workspace: String, logins: Vec<(String, String)>) -> Result<(), StoreError> {
        if logins.is_empty() {
            return Ok(());
        }
        let fail = failed("giving merges back");
        let client = self.client("giving merges back").await?;
        let forget = client.prepare(crate::sql::FORGET_MERGE).await.map_err(&fail)?;
        for (merged, retained) in &logins {
            client.execute(&forget, &[&workspace, merged, retained]).await.map_err(&fail)?;
        }
        Ok(())
    }

    async fn remember_traits(&self, workspace: String, changes: Vec<TraitChange>, overlay: TraitOverlay) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let fail = failed("remembering traits");
        let now = now_ms();
        let mut client = self.client("remembering traits").await?;
        let transaction = client.transaction().await.map_err(&fail)?;
        let read = transaction
            .prepare("SELECT traits FROM traits WHERE workspace = $1 AND user_id = $2 FOR UPDATE")
            .await
            .map_err(&fail)?;
        let write = transaction
            .prepare(
                "INSERT INTO traits (workspace, user_id, traits, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (workspace, user_id) DO UPDATE SET traits = excluded.traits, updated_at = excluded.updated_at",
            )
            .await
            .map_err(&fail)?;
        for change in &changes {
            let stored = async |user: &str| -> Result<Option<String>, tokio_postgres::Error> {
                match transaction.query_opt(&read, &[&workspace, &user]).await? {
                    Some(row) => column(&row, 0),
                    None => Ok(None),
                }
            };
            // Laid on what is stored, name by name, as the SQLite engine does.
            let (user, traits) = match change {
                TraitChange::Set { user, traits } => match stored(user).await.map_err(&fail)? {
                    Some(old) => (user, overlay(&old, traits)),
                    None => (user, traits.clone()),
                },
                TraitChange::Merge { merged, retained } => {
                    let Some(moved) = stored(merged).await.map_err(&fail)? else { continue };
                    match stored(retained).await.map_err(&fail)? {
                        Some(own) => (retained, overlay(&moved, &own)),
                        None => (retained, moved),
                    }
                }
            };
            transaction.execute(&write, &[&workspace, user, &traits, &now]).await.map_err(&fail)?;
        }
        transaction.commit().await.map_err(&fail)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn hold_lease(&self, name: String, pipelines: Vec<String>, ttl: Duration) -> Result<Option<Held>, StoreError> {
        let fail = failed("holding a lease");
        let node = &self.inner.node;
        let mut client = self.client("holding a lease").await?;
        let transaction = client.transaction().await.map_err(&fail)?;
        transaction
            .execute("INSERT INTO leases (name, holder, until_ms) VALUES ($1, '', 0) ON CONFLICT DO NOTHING", &[&name])
            .await
            .map_err(&fail)?;
        let row = transaction
            .query_one(
                &format!("SELECT holder, until_ms, {} FROM leases WHERE name = $1 FOR UPDATE", sql::POSTGRES_NOW),
                &[&name],
            )
            .await
            .map_err(&fail)?;
        let (holder, until, now): (String, i64, i64) =
            (column(&row, 0).map_err(&fail)?, column(&row, 1).map_err(&fail)?, column(&row, 2).map_err(&fail)?);
        let mine = holder == *node;
        if !mine && until >= now {
            return Ok(None);
        }
        transaction
            .execute("UPDATE leases SET holder = $2, until_ms = $3 WHERE name = $1", &[&name, node, &now.saturating_add(millis(ttl))])
            .await
            .map_err(&fail)?;
        let mut held = Held { taken: !mine, claimed: 0, paused: 0 };
        // Whoever claimed these events before, no worker of this lease has them now.
        if !pipelines.is_empty() {
            held.claimed = transaction
                .execute(
                    "UPDATE events SET state = 'pending', claimed_by = NULL, changed = nextval('events_changes')
                     WHERE state IN ('claimed', 'retrying') AND pipeline = ANY($1)",
                    &[&pipelines],
                )
                .await
                .map_err(&fail)?;
            held.paused = transaction
                .execute(
                    "UPDATE events SET state = 'pending', claimed_by = NULL, changed = nextval('events_changes')
                     WHERE state = 'paused' AND pipeline = ANY($1)",
                    &[&pipelines],
                )
                .await
                .map_err(&fail)?;
        }
        transaction.commit().await.map_err(&fail)?;
        Ok(Some(held))
    }

    async fn give_up_lease(&self, name: String) -> Result<(), StoreError> {
        let client = self.client("giving up a lease").await?;
        client
            .execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &self.inner.node])
            .await
            .map_err(failed("giving up a lease"))?;
        Ok(())
    }

    async fn live_nodes(&self) -> Result<u64, StoreError> {
        let fail = failed("counting the nodes");
        let client = self.client("counting the nodes").await?;
        let row = client
            .query_one(
                &format!("SELECT COUNT(*) FROM leases WHERE name LIKE 'node:%' AND until_ms >= {}", sql::POSTGRES_NOW),
                &[],
            )
            .await
            .map_err(&fail)?;
        Ok(u64::try_from(column::<i64>(&row, 0).map_err(&fail)?).unwrap_or(0))
    }
}

/// The columns of the events one enqueue inserts, as arrays for one `unnest`.
#[derive(Default)]
struct EventColumns<'a> {
    source: Vec<&'a str>,
    pipeline: Vec<&'a str>,
    message_id: Vec<&'a str>,
    received_at: Vec<i64>,
    payload: Vec<&'a str>,
    call_type: Vec<Option<&'a str>>,
    event: Vec<Option<&'a str>>,
    customer_id: Vec<Option<&'a str>>,
    drop_code: Vec<Option<&'a str>>,
    drop_detail: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    fn push(&mut self, event: &'a NewEvent) {
        self.source.push(&event.source);
        self.pipeline.push(&event.pipeline);
        self.message_id.push(&event.message_id);
        self.received_at.push(event.received_at_ms);
        self.payload.push(&event.payload);
        self.call_type.push(event.labels.call_type.as_deref());
        self.event.push(event.labels.event.as_deref());
        self.customer_id.push(event.labels.customer_id.as_deref());
        self.drop_code.push(event.dropped.as_ref().map(|dropped| dropped.code.as_str()));
        self.drop_detail.push(event.dropped.as_ref().map(|dropped| dropped.detail.as_str()));
    }
}

/// A listing, with the customer filter given as `(term, customer, waiting events only)`.
async fn list_where(
    client: &tokio_postgres::Transaction<'_>,
    listing: &Listing,
    customer: Option<(&str, &String, bool)>,
) -> Result<Vec<Summary>, tokio_postgres::Error> {
    let mut conditions = Conditions::default();
    if let Some(state) = listing.state {
        conditions.states(state.stored());
    }
    if let Some((term, customer_id, waiting_only)) = customer {
        conditions.add(term, Box::new(customer_id.clone()));
        if waiting_only {
            conditions.states(&["pending", "claimed", "retrying"]);
        }
    }
    if let Some(event) = &listing.event {
        conditions.add("event = ?", Box::new(event.clone()));
    }
    if let Some(pipeline) = &listing.pipeline {
        conditions.add("pipeline = ?", Box::new(pipeline.clone()));
    }
    if let Some(since) = listing.since_ms {
        conditions.add("received_at >= ?", Box::new(since));
        // No index on the time: ids grow with it, so it becomes a range of ids the scan keeps to.
        match first_received_since(client, since.saturating_sub(TIME_SLACK_MS)).await? {
            Some(first) => conditions.add("id >= ?", Box::new(first)),
            None => return Ok(Vec::new()),
        }
    }
    if let Some(until) = listing.until_ms {
        conditions.add("received_at < ?", Box::new(until));
        if let Some(past) = first_received_since(client, until.saturating_add(TIME_SLACK_MS)).await? {
            conditions.add("id < ?", Box::new(past));
        }
    }
    if let Some(before) = listing.before_id {
        conditions.add("id < ?", Box::new(before));
    }
    let statement =
        format!("SELECT {SUMMARY_COLUMNS} FROM events {} ORDER BY id DESC LIMIT ${}", conditions.sql(), conditions.next());
    let limit = count(listing.limit);
    let mut parameters = conditions.parameters();
    parameters.push(&limit);
    let rows = client.query(&statement, &parameters).await?;
    rows.iter().map(|row| summary_of(row, 0)).collect()
}

/// The first id received at or after `time_ms`, found by bisecting the ids (receipt times grow with
/// them, give or take [`TIME_SLACK_MS`], on every node whose clock is kept).
async fn first_received_since(
    client: &impl tokio_postgres::GenericClient,
    time_ms: i64,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let at_or_after = client.prepare("SELECT id, received_at FROM events WHERE id >= $1 ORDER BY id LIMIT 1").await?;
    let probe = async |id: i64| -> Result<Option<(i64, i64)>, tokio_postgres::Error> {
        match client.query_opt(&at_or_after, &[&id]).await? {
            Some(row) => Ok(Some((column(&row, 0)?, column(&row, 1)?))),
            None => Ok(None),
        }
    };
    let newest: Option<i64> = column(&client.query_one("SELECT MAX(id) FROM events", &[]).await?, 0)?;
    let Some(newest) = newest else { return Ok(None) };
    let (mut low, mut high) = (0i64, newest.saturating_add(1));
    while low < high {
        let middle = low + (high - low) / 2;
        match probe(middle).await? {
            Some((_, received)) if received >= time_ms => high = middle,
            Some((id, _)) => low = id.saturating_add(1),
            None => high = middle,
        }
    }
    Ok(probe(low).await?.map(|(id, _)| id))
}

/// The `WHERE` of a replay.
fn requeue_conditions(requeue: &Requeue) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.states(&[requeue.state.as_str()]);
    if let Some(pipeline) = &requeue.pipeline {
        conditions.add("pipeline = ?", Box::new(pipeline.clone()));
    }
    if let Some(since) = requeue.since_ms {
        conditions.add("received_at >= ?", Box::new(since));
    }
    if let Some(until) = requeue.until_ms {
        conditions.add("received_at < ?", Box::new(until));
    }
    if let Some(after) = requeue.after_id {
        conditions.add("id > ?", Box::new(after));
    }
    conditions
}

/// Tells the live feed every change any node makes, while someone watches: changes are numbered
/// by a sequence, and read in order of their numbers.
/// NOTIFYs the nodes (this one included) that events were queued, in a statement of its own: a
/// NOTIFY inside the queuing transaction would hold PostgreSQL's notification lock through its
/// commit and so commit the nodes' requests one at a time. Requests queued while one is sent are
/// told by the next, one for all.
async fn announce_queued(inner: Weak<Inner>, announce: Arc<tokio::sync::Notify>) {
    loop {
        announce.notified().await;
        let Some(strong) = inner.upgrade() else { return };
        // Without it, the workers of other nodes find the events at their next poll (a second).
        if let Ok(client) = strong.pool.get().await {
            let _ = client.batch_execute("NOTIFY signal_queued").await;
        }
    }
}

/// Holds a connection of its own that LISTENs for `signal_queued` (a pooled one is shared, and its
/// session with it), telling `queued` each time; connects again a second after losing it, while
/// the workers' one-second poll covers the gap.
async fn listen_for_queued(inner: Weak<Inner>, config: tokio_postgres::Config, connector: tls::RustlsConnect) {
    use futures_util::StreamExt as _;
    loop {
        if let Ok((client, mut connection)) = config.connect(connector.clone()).await {
            let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |context| connection.poll_message(context));
                while let Some(Ok(message)) = messages.next().await {
                    if matches!(message, tokio_postgres::AsyncMessage::Notification(_)) && heard.send(()).is_err() {
                        return;
                    }
                }
            });
            if client.batch_execute("LISTEN signal_queued").await.is_ok() {
                while hearing.recv().await.is_some() {
                    let Some(inner) = inner.upgrade() else {
                        driver.abort();
                        return;
                    };
                    let _ = inner.queued.send(());
                }
            }
            driver.abort();
        }
        if inner.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn watch_changes(inner: Weak<Inner>, (newest_change, newest_event): (i64, i64)) {
    let mut newest_told = Some(newest_change);
    // The newest change when watching began: what came before is in the listings, not the feed.
    let mut began = newest_change;
    // Events above it are new to the feed: told as queued first, whatever they became since.
    let mut newest_event_told = newest_event;
    let mut told: BTreeSet<i64> = BTreeSet::new();
    loop {
        tokio::time::sleep(FEED_POLL).await;
        let Some(inner) = inner.upgrade() else { return };
        let Ok(client) = inner.pool.get().await else { continue };
        let watched = inner.feed.receiver_count() > 0;
        let (Some(since), true) = (newest_told, watched) else {
            // Kept current while no one watches (one lookup in an index), so that a watcher who
            // comes is told what happens from then on, from the first change.
            if let Ok(row) = client.query_one(NEWEST, &[]).await
                && let (Ok(newest), Ok(event)) = (column::<i64>(&row, 0), column::<i64>(&row, 1))
            {
                newest_told = Some(newest);
                began = newest;
                newest_event_told = event;
                told.clear();
            }
            continue;
        };
        let floor = since.saturating_sub(FEED_SLACK).max(began);
        let Ok(rows) = client
            .query(
                &format!("SELECT changed, {SUMMARY_COLUMNS} FROM events WHERE changed > $1 ORDER BY changed LIMIT $2"),
                &[&floor, &count(FEED_PER_COMMIT + FEED_SLACK as usize)],
            )
            .await
        else {
            continue;
        };
        let mut lines = 0usize;
        let mut untold = 0u64;
        let mut newest = since;
        for row in &rows {
            let Ok(changed) = column::<i64>(row, 0) else { continue };
            newest = newest.max(changed);
            if !told.insert(changed) {
                continue;
            }
            if lines < FEED_PER_COMMIT {
                if let Ok(summary) = summary_of(row, 1) {
                    // Changes are read four times a second, and a row holds only its last state:
                    // an event queued and settled between two reads is told as it was queued,
                    // then as it is, as the SQLite engine tells it. (Events refused at the door
                    // were never queued.)
                    if summary.id > newest_event_told {
                        newest_event_told = summary.id;
                        if !matches!(summary.state, State::Pending | State::Claimed | State::Dropped) {
                            let queued = Summary {
                                state: State::Pending,
                                code: None,
                                status: None,
                                attempts: 0,
                                hint: None,
                                ..summary.clone()
                            };
                            let _ = inner.feed.send(Change::Line(queued));
                        }
                    }
                    // No watcher left is no error.
                    let _ = inner.feed.send(Change::Line(summary));
                    lines += 1;
                }
            } else {
                untold += 1;
            }
        }
        if untold > 0 || rows.len() >= FEED_PER_COMMIT + FEED_SLACK as usize {
            // Too much to tell: say so, and go on from the newest change.
            if let Ok(row) = client.query_one("SELECT COALESCE(MAX(changed), 0) FROM events", &[]).await
                && let Ok(latest) = column::<i64>(&row, 0)
            {
                let _ = inner.feed.send(Change::Untold(untold.max(1)));
                newest = newest.max(latest);
                began = newest;
                told.clear();
            }
        }
        newest_told = Some(newest);
        told = told.split_off(&newest.saturating_sub(FEED_SLACK));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_described_without_its_password_even_with_an_unescaped_at() {
        assert_eq!(describe_url("postgres://sig:s3cret@db.internal:5433/signal"), "sig@db.internal:5433/signal");
        let shown = describe_url("postgres://sig:pz@zq@qx@db.internal:5432/signal?sslmode=disable");
        assert_eq!(shown, "sig@db.internal:5432 (a password with an unescaped `@`)");
        assert!(!shown.contains("zq") && !shown.contains("qx"), "{shown}");
    }
}
