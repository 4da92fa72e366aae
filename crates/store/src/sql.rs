//! The tables, in both engines' dialects. The queue is one `events` table: a row per event and
//! pipeline, its state, and — once it has one — its outcome, which the Event Debugger reads.
//! `seen` remembers `message_id`s per source for the dedupe window.

/// SQLite: the schema, applied at every start (idempotent).
pub const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT    NOT NULL,
    pipeline      TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    payload       TEXT    NOT NULL,
    call_type     TEXT,
    event         TEXT,
    customer_id   TEXT,
    customer_key  TEXT,
    state         TEXT    NOT NULL DEFAULT 'pending',
    code          TEXT,
    detail        TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    attempt_log   TEXT,
    http_status   INTEGER,
    response_body BLOB,
    body_sent     BLOB,
    latency_ms    INTEGER,
    finished_at   INTEGER
);
CREATE TABLE IF NOT EXISTS write_probe (
    id         INTEGER PRIMARY KEY,
    written_at INTEGER NOT NULL,
    page       BLOB
);
CREATE TABLE IF NOT EXISTS seen (
    source     TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (source, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS traits (
    workspace  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    traits     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anonymous_customers (
    workspace   TEXT    NOT NULL,
    customer_id TEXT    NOT NULL,
    first_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace, customer_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS automatic_merges (
    workspace     TEXT    NOT NULL,
    merged_user   TEXT    NOT NULL,
    retained_user TEXT    NOT NULL,
    merged_at     INTEGER NOT NULL,
    PRIMARY KEY (workspace, merged_user, retained_user)
) WITHOUT ROWID;
";

// The statements both engines run are written with PostgreSQL's `$N`. SQLite reads `$N` as a named
// parameter and numbers names by their first appearance, so each `$N` must first appear in order.

/// Both engines: an anonymous id delivered as a customer_id to a workspace (the table the
/// automatic merge at login asks), once.
pub const NOTE_ANONYMOUS: &str =
    "INSERT INTO anonymous_customers (workspace, customer_id, first_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// Both engines: gives a taken merge back (its row could not be queued), for the next login to take.
pub const FORGET_MERGE: &str =
    "DELETE FROM automatic_merges WHERE workspace = $1 AND merged_user = $2 AND retained_user = $3";

/// Both engines: takes a login's merge when its anonymous id was delivered as a customer to the
/// workspace and the pair was never merged; a row comes back only for the one caller that took it.
pub const TAKE_MERGE: &str = "
INSERT INTO automatic_merges (workspace, merged_user, retained_user, merged_at)
SELECT $1, $2, $3, $4
WHERE EXISTS (SELECT 1 FROM anonymous_customers WHERE workspace = $1 AND customer_id = $2)
ON CONFLICT DO NOTHING
RETURNING merged_user";

/// SQLite: columns added since the first release, for files written before them.
pub const SQLITE_ADDED_COLUMNS: &[&str] = &["call_type", "event", "customer_id", "customer_key"];

/// SQLite: the indexes, created once the columns exist. The debugger lists newest first by state,
/// event name or customer; the workers claim by pipeline.
///
/// Customers are indexed by `customer_key`, a copy of `customer_id` made when an event's fate is
/// recorded, not when it is queued: an index on a key as scattered as a user id dirties a page of
/// its own per event, which would halve the collector's durable intake in a burst, while fates
/// are recorded no faster than the destination takes events. Waiting events are found by state:
/// `customer_id` rides along in the state index (it never changes, and entries are placed by
/// state and id, so it costs no scattered writes), and a customer's waiting events are read there
/// without visiting the table.
pub const SQLITE_INDEXES: &str = "
DROP INDEX IF EXISTS events_waiting;
CREATE INDEX IF NOT EXISTS events_pending ON events (pipeline, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_state ON events (state, id, customer_id);
CREATE INDEX IF NOT EXISTS events_event ON events (event, id) WHERE event IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_customer ON events (customer_key, id) WHERE customer_key IS NOT NULL;
";

/// SQLite: the schema version [`SQLITE_SCHEMA`] and [`SQLITE_INDEXES`] make.
pub const SQLITE_VERSION: i64 = 2;

/// SQLite: claims the oldest pending events of one pipeline.
pub const SQLITE_CLAIM: &str = "
UPDATE events SET state = 'claimed'
WHERE id IN (SELECT id FROM events WHERE state = 'pending' AND pipeline = ?1 ORDER BY id LIMIT ?2)
RETURNING id, pipeline, message_id, received_at, payload, customer_id, call_type, event";

/// PostgreSQL: the migrations, in order. Each runs once, in the transaction that records it in
/// `signal_migrations`; nodes starting together take turns by an advisory lock.
///
/// The tables are SQLite's, and three things only several nodes need: `claimed_by` says which node
/// has an event; `changed`, from a sequence, orders every change so that any node's live feed can
/// read what others did; `leases` says which node delivers for a workspace, and which nodes live.
pub const POSTGRES_MIGRATIONS: &[(i32, &str)] = &[
    (
    1,
    "
CREATE SEQUENCE events_changes;
CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    source        TEXT      NOT NULL,
    pipeline      TEXT      NOT NULL,
    message_id    TEXT      NOT NULL,
    received_at   BIGINT    NOT NULL,
    payload       TEXT      NOT NULL,
    call_type     TEXT,
    event         TEXT,
    customer_id   TEXT,
    customer_key  TEXT,
    state         TEXT      NOT NULL DEFAULT 'pending',
    code          TEXT,
    detail        TEXT,
    attempts      INTEGER   NOT NULL DEFAULT 0,
    attempt_log   TEXT,
    http_status   INTEGER,
    response_body BYTEA,
    body_sent     BYTEA,
    latency_ms    BIGINT,
    finished_at   BIGINT,
    claimed_by    TEXT,
    changed       BIGINT    NOT NULL DEFAULT nextval('events_changes')
);
CREATE INDEX events_pending ON events (pipeline, id) WHERE state = 'pending';
CREATE INDEX events_state ON events (state, id) INCLUDE (customer_id);
CREATE INDEX events_event ON events (event, id) WHERE event IS NOT NULL;
CREATE INDEX events_customer ON events (customer_key, id) WHERE customer_key IS NOT NULL;
CREATE INDEX events_changed ON events (changed);
CREATE TABLE seen (
    source     TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (source, message_id)
);
CREATE TABLE traits (
    workspace  TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    traits     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace, user_id)
);
CREATE TABLE leases (
    name     TEXT   PRIMARY KEY,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
",
    ),
    (
        2,
        "
CREATE TABLE anonymous_customers (
    workspace   TEXT   NOT NULL,
    customer_id TEXT   NOT NULL,
    first_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace, customer_id)
);
CREATE TABLE automatic_merges (
    workspace     TEXT   NOT NULL,
    merged_user   TEXT   NOT NULL,
    retained_user TEXT   NOT NULL,
    merged_at     BIGINT NOT NULL,
    PRIMARY KEY (workspace, merged_user, retained_user)
);
",
    ),
];

/// PostgreSQL: the database's clock, in milliseconds since the epoch. Leases are timed by it, not
/// by the nodes' clocks, which may disagree.
pub const POSTGRES_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// PostgreSQL: queues a request's events in one statement. Events whose fate is known
/// (`drop_code`) are recorded as dropped; the others are queued when their `message_id` is new to
/// `seen`, or was last seen before the window ($14): admitted atomically with any other node
/// admitting the same id. Answers how many were queued and how many recorded.
pub const POSTGRES_ENQUEUE: &str = "
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::text[])
        WITH ORDINALITY AS e(source, pipeline, message_id, received_at, payload, call_type, event,
                             customer_id, drop_code, drop_detail, position)
), admitted AS (
    INSERT INTO seen (source, message_id, seen_at)
    SELECT source, message_id, $11 FROM unnest($12::text[], $13::text[]) AS k(source, message_id)
    ON CONFLICT (source, message_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at <= $14
    RETURNING source, message_id
), inserted AS (
    INSERT INTO events (source, pipeline, message_id, received_at, payload, call_type, event, customer_id,
                        customer_key, state, code, detail, finished_at)
    SELECT source, pipeline, message_id, received_at, payload, call_type, event, customer_id,
           CASE WHEN drop_code IS NULL THEN NULL ELSE customer_id END,
           CASE WHEN drop_code IS NULL THEN 'pending' ELSE 'dropped' END,
           drop_code, drop_detail,
           CASE WHEN drop_code IS NULL THEN NULL ELSE $11 END
    FROM incoming AS i
    WHERE i.drop_code IS NOT NULL
       OR EXISTS (SELECT 1 FROM admitted AS a WHERE a.source = i.source AND a.message_id = i.message_id)
    ORDER BY i.position
    RETURNING state
)
SELECT COUNT(*) FILTER (WHERE state = 'pending'), COUNT(*) FILTER (WHERE state = 'dropped') FROM inserted";

/// PostgreSQL: claims the oldest pending events of one pipeline. `SKIP LOCKED`: rows another
/// transaction is claiming are passed over, not waited for.
pub const POSTGRES_CLAIM: &str = "
UPDATE events SET state = 'claimed', claimed_by = $3
WHERE id IN (
    SELECT id FROM events WHERE state = 'pending' AND pipeline = $1
    ORDER BY id LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, pipeline, message_id, received_at, payload, customer_id, call_type, event";
