//! `signal serve` benchmarks against real processes on loopback (see BENCHMARKS.md).
//!
//! `cargo bench --bench serve -- ingest [SECONDS]`: acknowledged (committed) events per second,
//! batches of 100, several clients at once.
//! `cargo bench --bench serve -- steady [SECONDS]`: 2,000 events/s, one event per request, spread over
//! five workspaces (MoEngage allows 500/s each): acknowledgement latency, and receipt-to-200 latency
//! from the outcome records.
//! `cargo bench --bench serve -- backlog [EVENTS]`: the resident memory of `signal serve` holding a
//! backlog of 1,000,000 events it cannot deliver.
//! `cargo bench --bench serve -- floor [SECONDS]`: the same batches committed to SQLite by a bare
//! loop with the same durability (the limit), then `ingest`, and the ratio of the two.
//! `cargo bench --bench serve -- idle [CONNECTIONS]`: 5,000 idle or half-sent connections held open
//! while a normal client sends 1,000 requests/s: its acknowledgement latency, and the memory.
//! `cargo bench --bench serve -- flood [BODIES]`: 64 concurrent 4 MB bodies without a write key,
//! again and again for 5 s: the memory they cost, and a normal client's latency meanwhile.
//! `cargo bench --bench serve -- debugger [EVENTS]`: the Event Debugger's API over 1,000,000 stored
//! events — p50 and p99 of each kind of listing and filter, and of one event in full.
//! `cargo bench --bench serve -- page [EVENTS]`: the `/debugger` page in headless Chromium over
//! 10,000 stored events: time to first render, loading them all by scrolling, and the frame times
//! of a scroll through them (needs Chromium and `npm ci` in `tests/browser`).
//! `cargo bench --bench serve -- retention [SECONDS]`: `ingest` with retention keeping the newest
//! 1,000 events (pruning all along), against `ingest` with nothing to prune, three times each,
//! alternated, in the same run.
//! `cargo bench --bench serve -- traits [USERS]`: a service whose store remembers the traits of
//! 1,000,000 users against one whose store remembers nobody, fed the same events from users spread
//! over the million, alternated: durable ingest of both, in two cases — events the blueprint maps
//! (each user's traits read from the store, past the cache, for the identity the events lack),
//! sent at MoEngage's limit, and events it drops, mapped as fast as the CPU allows — and the
//! resident memory of the first once every event has been mapped.
//! `cargo bench --bench serve -- postgres [SECONDS]`: `ingest` on the SQLite engine and on the
//! PostgreSQL engine, alternated, twice each, and the ratio (needs `SIGNAL_BENCH_POSTGRES`, a
//! server URL without a database: `bench/postgres.sh` starts a throwaway one).
//! `cargo bench --bench serve -- nodes [SECONDS]`: three nodes on one PostgreSQL delivering to one
//! workspace limited to 6,000 events a minute, fed more than that over their three collectors:
//! the delivered rate over SECONDS (after a warm-up) against the limit, and the sandbox's 429s.

#![allow(missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEY: &str = "bench-key";
const WORKSPACES: usize = 5;

struct Process {
    child: Child,
    lines: Vec<String>,
}

impl Process {
    fn start(args: &[&str], until: &str) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
            .args(args)
            .env_remove("MOENGAGE_WORKSPACE_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("signal starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).expect("read") > 0, "exited: {lines:?}");
            let done = line.trim_start().starts_with(until);
            lines.push(line);
            if done {
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Process { child, lines }
    }

    fn url(&self, label: &str) -> String {
        let line = self.lines.iter().find(|line| line.trim_start().starts_with(label)).expect("label");
        let url = line.split_whitespace().find(|word| word.starts_with("http")).expect("url");
        url.trim_end_matches("/healthz,").to_owned()
    }

    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration with one source, integration and pipeline per workspace.
fn config(dir: &std::path::Path, endpoint: &str) -> String {
    config_with(dir, endpoint, "")
}

/// [`config`], with more `storage` settings.
fn config_with(dir: &std::path::Path, endpoint: &str, storage: &str) -> String {
    let engine = if storage.starts_with("  postgres:") { "" } else { "  sqlite: signal.db\n" };
    let mut text = format!("storage:\n{engine}{storage}sources:\n");
    for n in 0..WORKSPACES {
        text.push_str(&format!("  s{n}:\n    write_key: key-{n}\n"));
    }
    text.push_str("integrations:\n");
    for n in 0..WORKSPACES {
        text.push_str(&format!(
            "  i{n}:\n    workspace_id: WS{n}\n    data_api_key: {KEY}\n    data_center: \"01\"\n    endpoint: {endpoint}\n"
        ));
    }
    text.push_str("pipelines:\n");
    for n in 0..WORKSPACES {
        text.push_str(&format!("  p{n}:\n    source: s{n}\n    integration: i{n}\n    preset: retail\n"));
    }
    let path = dir.join("signal.yaml");
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

fn start(dir: &std::path::Path, endpoint: &str) -> Process {
    start_with(dir, endpoint, "")
}

fn start_with(dir: &std::path::Path, endpoint: &str, storage: &str) -> Process {
    let config = config_with(dir, endpoint, storage);
    Process::start(
        &["serve", "--config", &config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        "admin",
    )
}

fn sandbox() -> Process {
    let mut args = vec!["sandbox".to_owned(), "--listen".into(), "127.0.0.1:0".into()];
    for n in 0..WORKSPACES {
        args.push("--workspace".into());
        args.push(format!("WS{n}:{KEY}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(&args, "limit")
}

fn event(n: u64) -> serde_json::Value {
    serde_json::json!({"type": "track", "event": "Order Completed", "user_id": format!("u_{}", n % 1000),
        "message_id": format!("m-{n}"),
        "traits": {"email": "jane@example.com", "phone": "07700 900123"}, "context": {"locale": "en-GB"},
        "properties": {"order_id": format!("ORD-{n}"), "revenue": 89.99, "currency": "GBP"}})
}

fn batch(start: u64, size: u64) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (start..start + size).map(event).collect();
    serde_json::json!({"batch": events}).to_string().into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    sender::install_crypto_provider();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match args.first().map(String::as_str) {
        Some("ingest") => {
            runtime.block_on(ingest(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10)));
        }
        Some("steady") => runtime.block_on(steady(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30))),
        Some("backlog") => {
            runtime.block_on(backlog(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000)))
        }
        Some("floor") => {
            let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            let floor = floor(seconds);
            let signal = runtime.block_on(ingest(seconds));
            println!("floor ratio: Signal's durable ingest / the bare loop's = {:.2}", signal / floor);
        }
        Some("idle") => runtime.block_on(idle(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5_000))),
        Some("flood") => runtime.block_on(flood(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64))),
        Some("debugger") => {
            runtime.block_on(debugger(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000)))
        }
        Some("page") => page(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000)),
        Some("traits") => runtime.block_on(traits(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000))),
        Some("retention") => {
            let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            // Alternated, so that the machine's drift falls on both alike.
            let (mut without, mut with) = (0.0, 0.0);
            for _ in 0..3 {
                without += runtime.block_on(ingest_with(seconds, ""));
                with += runtime.block_on(ingest_with(seconds, "  retention:\n    max_events: 1000\n"));
            }
            println!("retention ratio: ingest while pruning / ingest with nothing to prune = {:.3}", with / without);
        }
        Some("postgres") => {
            let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
            let (mut sqlite, mut postgres) = (Vec::new(), Vec::new());
            for _ in 0..2 {
                sqlite.push(runtime.block_on(ingest_with(seconds, "")));
                let storage = format!("  postgres:\n    url: {}\n", bench_database());
                postgres.push(runtime.block_on(ingest_with(seconds, &storage)));
            }
            let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
            println!(
                "postgres ratio: durable ingest on PostgreSQL / on SQLite = {:.2} ({:.0} vs {:.0} events/s; rounds {:?} vs {:?})",
                mean(&postgres) / mean(&sqlite),
                mean(&postgres),
                mean(&sqlite),
                postgres.iter().map(|rate| rate.round()).collect::<Vec<_>>(),
                sqlite.iter().map(|rate| rate.round()).collect::<Vec<_>>()
            );
        }
        Some("nodes") => runtime.block_on(nodes(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(120))),
        _ => {
            eprintln!(
                "usage: cargo bench --bench serve -- ingest [SECONDS] | steady [SECONDS] | backlog [EVENTS] | floor [SECONDS] | idle [CONNECTIONS] | flood [BODIES] | debugger [EVENTS] | page [EVENTS] | retention [SECONDS] | traits [USERS] | postgres [SECONDS] | nodes [SECONDS]"
            );
            std::process::exit(2);
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: Vec<u8>) -> bool {
    match client.post(url).basic_auth(key, Some("")).body(body).send().await {
        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// The limit: batches of 100 of the same events, each batch committed to SQLite (WAL, synchronous
/// FULL, Signal's own tables, the `message_id` remembered as Signal does) by one bare loop.
fn floor(seconds: u64) -> f64 {
    let dir = tempfile::tempdir().expect("dir");
    let mut connection = rusqlite::Connection::open(dir.path().join("floor.db")).expect("open");
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    connection.execute_batch(store::sql::SQLITE_SCHEMA).expect("schema");
    connection.execute_batch(store::sql::SQLITE_INDEXES).expect("indexes");
    let started = Instant::now();
    let mut events = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let transaction = connection.transaction().expect("begin");
        {
            let mut remember = transaction
                .prepare_cached("INSERT INTO seen (source, message_id, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT (source, message_id) DO UPDATE SET seen_at = excluded.seen_at")
                .expect("prepare");
            let mut insert = transaction
                .prepare_cached("INSERT INTO events (source, pipeline, message_id, received_at, payload, call_type, event, customer_id) VALUES (?1, ?2, ?3, ?4, ?5, 'track', 'Order Completed', ?6)")
                .expect("prepare");
            for n in events..events + 100 {
                let id = format!("m-{n}");
                remember.execute(rusqlite::params!["s0", id, 0]).expect("remember");
                let customer = format!("u_{}", n % 1000);
                insert.execute(rusqlite::params!["s0", "p0", id, 0, event(n).to_string(), customer]).expect("insert");
            }
        }
        transaction.commit().expect("commit");
        events += 100;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    println!("floor: a bare loop committing batches of 100 to SQLite: {rate:.0} events/s");
    rate
}

/// Batches of 100 from 16 clients for `seconds`; returns the events acknowledged per second.
async fn ingest(seconds: u64) -> f64 {
    ingest_with(seconds, "").await
}

/// [`ingest`], with more `storage` settings.
async fn ingest_with(seconds: u64, storage: &str) -> f64 {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("dir");
    let serve = start_with(dir.path(), &sandbox.url("MoEngage"), storage);
    let url = format!("{}/v1/batch", serve.url("collector"));
    let client = reqwest::Client::new();
    let acked = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, url, acked, next, stop) =
            (client.clone(), url.clone(), acked.clone(), next.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = next.fetch_add(100, Ordering::Relaxed);
                let key = format!("key-{}", (start / 100) as usize % WORKSPACES);
                let body = batch(start, 100);
                let sent = Instant::now();
                if post(&client, &url, &key, body).await {
                    acked.fetch_add(100, Ordering::Relaxed);
                    latencies.push(sent.elapsed());
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let events = acked.load(Ordering::Relaxed);
    let rows: i64 = rusqlite::Connection::open(dir.path().join("signal.db"))
        .and_then(|db| db.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0)))
        .unwrap_or(-1);
    let kept = if storage.is_empty() {
        String::new()
    } else if storage.starts_with("  postgres:") {
        ", PostgreSQL".to_owned()
    } else {
        format!(", {rows} events kept at the end")
    };
    println!("ingest: batches of 100, 16 clients, {:.1} s{kept}", elapsed.as_secs_f64());
    println!(
        "  acknowledged         {events} events ({:.0} events/s)",
        events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  request latency      p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    events as f64 / elapsed.as_secs_f64()
}

/// One event per request at `per_second` for `seconds`: the acknowledgement latencies (sorted) and
/// how many failed.
async fn normal_client(url: String, per_second: u64, seconds: u64) -> (Vec<Duration>, u64) {
    let client = reqwest::Client::new();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..per_second * seconds {
        ticks.tick().await;
        let (client, url) = (client.clone(), url.clone());
        let key = format!("key-{}", n as usize % WORKSPACES);
        let body = event(10_000_000 + n).to_string().into_bytes();
        requests.spawn(async move {
            let sent = Instant::now();
            (post(&client, &url, &key, body).await, sent.elapsed())
        });
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    while let Some(done) = requests.join_next().await {
        match done.expect("request") {
            (true, latency) => latencies.push(latency),
            (false, _) => failed += 1,
        }
    }
    latencies.sort_unstable();
    (latencies, failed)
}

/// `connections` held open — half idle, half stuck half way through their headers — while a normal
/// client sends 1,000 requests/s for 8 s (within the 10 s header timeout, so all stay held).
async fn idle(connections: usize) {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("dir");
    let serve = start(dir.path(), &sandbox.url("MoEngage"));
    let (before, _) = serve.memory();
    let address = serve.url("collector").trim_start_matches("http://").to_owned();
    let mut held = Vec::with_capacity(connections);
    for n in 0..connections {
        use tokio::io::AsyncWriteExt as _;
        let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else { break };
        if n % 2 == 1 {
            let _ = stream.write_all(b"POST /v1/track HTTP/1.1\r\nHost: signal\r\n").await;
        }
        held.push(stream);
    }
    let url = format!("{}/v1/track", serve.url("collector"));
    let (latencies, failed) = normal_client(url, 1_000, 8).await;
    let (rss, peak) = serve.memory();
    println!("idle: {} connections held open (half idle, half with half-sent headers)", held.len());
    println!(
        "  normal client        1,000 requests/s for 8 s: p50 {:.1} ms, p99 {:.1} ms, {failed} failed",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "  resident memory      {:.1} MB before, {:.1} MB with them, peak {:.1} MB",
        before as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// `bodies` concurrent 4 MB bodies without a write key, sent again and again for 5 s, beside a
/// normal client at 200 requests/s.
async fn flood(bodies: usize) {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("dir");
    let serve = start(dir.path(), &sandbox.url("MoEngage"));
    let (before, _) = serve.memory();
    let url = format!("{}/v1/batch", serve.url("collector"));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for _ in 0..bodies {
        let (url, stop, refused) = (url.clone(), stop.clone(), refused.clone());
        flooders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let body = vec![b' '; 4 * 1024 * 1024];
            while !stop.load(Ordering::Relaxed) {
                // The answer, or a reset once the server has read enough: either is a refusal.
                let _ = client.post(&url).header("content-type", "text/plain").body(body.clone()).send().await;
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let normal = format!("{}/v1/track", serve.url("collector"));
    let (latencies, failed) = normal_client(normal, 200, 5).await;
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        let _ = flooder.await;
    }
    let (rss, peak) = serve.memory();
    println!(
        "flood: {bodies} concurrent 4 MB bodies without a key for 5 s ({} sent)",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  resident memory      {:.1} MB before, {:.1} MB after, peak {:.1} MB (+{:.1} MB)",
        before as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0
    );
    println!(
        "  normal client        200 requests/s: p50 {:.1} ms, p99 {:.1} ms, {failed} failed",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
}

/// 2,000 single-event requests per second for `seconds`, then the outcome records.
async fn steady(seconds: u64) {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("dir");
    let serve = start(dir.path(), &sandbox.url("MoEngage"));
    let url = format!("{}/v1/track", serve.url("collector"));
    let client = reqwest::Client::new();
    let total = 2_000 * seconds;
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let mut record = |done: Result<(bool, Duration), tokio::task::JoinError>| match done.expect("request") {
        (true, latency) => latencies.push(latency),
        (false, _) => failed += 1,
    };
    let started = Instant::now();
    let mut n = 0u64;
    while n < total {
        ticks.tick().await;
        for _ in 0..2 {
            let (client, url) = (client.clone(), url.clone());
            let key = format!("key-{}", n as usize % WORKSPACES);
            let body = event(n).to_string().into_bytes();
            requests.spawn(async move {
                let sent = Instant::now();
                let ok = post(&client, &url, &key, body).await;
                (ok, sent.elapsed())
            });
            n += 1;
        }
        // Every answer counts, not only those still outstanding when sending ends.
        while let Some(done) = requests.try_join_next() {
            record(done);
        }
    }
    while let Some(done) = requests.join_next().await {
        record(done);
    }
    let sending = started.elapsed();
    // Let the last events be delivered, then read the outcome records.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let database = rusqlite::Connection::open(dir.path().join("signal.db")).expect("open");
    let mut delivered: Vec<Duration> = database
        .prepare("SELECT latency_ms FROM events WHERE state = 'delivered'")
        .expect("query")
        .query_map([], |row| row.get::<_, i64>(0))
        .expect("rows")
        .filter_map(Result::ok)
        .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        .collect();
    delivered.sort_unstable();
    latencies.sort_unstable();
    let rate = total as f64 / sending.as_secs_f64();
    println!(
        "steady: {total} single-event requests at {rate:.0}/s over {WORKSPACES} workspaces ({failed} failed)"
    );
    println!(
        "  acknowledgement      p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "  receipt to 200       p50 {:.0} ms, p99 {:.0} ms ({} delivered)",
        percentile(&delivered, 0.5).as_secs_f64() * 1e3,
        percentile(&delivered, 0.99).as_secs_f64() * 1e3,
        delivered.len()
    );
}

/// `events` queued for an integration that cannot be reached: the backlog only grows.
async fn backlog(events: u64) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let dir = tempfile::tempdir().expect("dir");
    let serve = start(dir.path(), &format!("http://{closed}"));
    let (idle_rss, _) = serve.memory();
    let url = format!("{}/v1/batch", serve.url("collector"));
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(100, Ordering::Relaxed);
                if start >= events {
                    return;
                }
                let key = format!("key-{}", (start / 100) as usize % WORKSPACES);
                assert!(post(&client, &url, &key, batch(start, 100)).await, "acknowledged");
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, peak) = serve.memory();
    let size = std::fs::metadata(dir.path().join("signal.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("signal.db-wal")).map_or(0, |m| m.len());
    println!(
        "backlog: {events} events queued in {:.1} s for integrations that cannot be reached",
        elapsed.as_secs_f64()
    );
    println!(
        "  resident memory      {:.1} MB at start, {:.1} MB with the backlog, peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!("  queue file           {:.0} MB", size as f64 / 1e6);
}

/// The debugger's API over a queue file of `events` events (see [`fill`]).
async fn debugger(events: u64) {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().expect("dir");
    let filled = Instant::now();
    fill(&dir.path().join("signal.db"), events);
    println!("debugger: {events} events stored in {:.0} s", filled.elapsed().as_secs_f64());
    let config = config(dir.path(), &sandbox.url("MoEngage"));
    // Delivery paused by a wrong key would change the file under the measurement: no pipeline
    // delivers to a reachable destination here.
    let config_text = std::fs::read_to_string(&config).expect("config").replace(&sandbox.url("MoEngage"), "http://127.0.0.1:9");
    std::fs::write(&config, config_text).expect("config");
    let serve = Process::start(
        &["serve", "--config", &config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        "admin",
    );
    let admin = serve.url("admin");
    let client = reqwest::Client::new();
    let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let start_ms = jiff::Timestamp::now().as_millisecond() - events as i64 * 10;
    let old = jiff::Timestamp::from_millisecond(start_ms + (events as i64 / 10) * 10).expect("time");
    let middle = events / 2;
    let cases: Vec<(&str, String)> = vec![
        ("newest 100", String::new()),
        ("newest 1,000", "?limit=1000".into()),
        ("state=failed", "?state=failed".into()),
        ("state=dropped", "?state=dropped".into()),
        ("state=pending", "?state=pending".into()),
        ("event=Checkout Started", "?event=Checkout%20Started".into()),
        ("customer_id=u_123", "?customer_id=u_123".into()),
        ("pipeline=p3", "?pipeline=p3".into()),
        ("since an hour ago", format!("?since={hour_ago}")),
        ("until a tenth in", format!("?until={old}")),
        ("cursor half way", format!("?cursor={middle}")),
        ("failed + event", "?state=failed&event=Order%20Completed".into()),
        ("customer + event", "?customer_id=u_120&event=Order%20Completed".into()),
        ("since a minute ago", format!("?since={}", jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1))),
        ("one event in full", format!("/{middle}")),
    ];
    println!("  {:<24} {:>9} {:>9} {:>7}", "request", "p50 ms", "p99 ms", "events");
    for (label, query) in cases {
        let url = format!("{admin}/api/events{query}");
        let mut latencies = Vec::new();
        let mut count = 0;
        for _ in 0..200 {
            let sent = Instant::now();
            let answer: serde_json::Value =
                client.get(&url).send().await.expect("answer").json().await.expect("json");
            latencies.push(sent.elapsed());
            count = answer["events"].as_array().map_or(1, Vec::len);
        }
        latencies.sort_unstable();
        println!(
            "  {label:<24} {:>9.2} {:>9.2} {count:>7}",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// Writes `events` settled and waiting events into a new queue file, as `signal serve` would have
/// left them: ten event names, 1,000 customers, five pipelines, one received every 10 ms up to now.
fn fill(file: &std::path::Path, events: u64) {
    let names = ["Order Completed", "Product Viewed", "page", "Product Added", "Checkout Started",
        "Signed Up", "Logged In", "Products Searched", "identify", "Wishlist Viewed"];
    let start_ms = jiff::Timestamp::now().as_millisecond() - events as i64 * 10;
    {
        let mut db = fresh_store(file);
        let transaction = db.transaction().expect("begin");
        {
            let mut insert = transaction
                .prepare("INSERT INTO events (source, pipeline, message_id, received_at, payload, call_type, event, customer_id,
                              state, code, detail, attempts, attempt_log, http_status, response_body, body_sent, latency_ms, finished_at)
                          VALUES (?1, ?2, ?3, ?4, ?5, 'track', ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 40, ?16)")
                .expect("prepare");
            for n in 0..events {
                let received = start_ms + n as i64 * 10;
                let name = names[(n % 10) as usize];
                // 3% failed, 5% dropped, 1% paused, the newest 1,000 pending, the rest delivered.
                let (state, code, status, detail) = if n >= events.saturating_sub(1000) {
                    ("pending", None, None, None)
                } else if n % 100 < 3 {
                    ("failed", Some("400"), Some(400), Some("customer_id is not found in the payload — Missing customer_id, or malformed attributes."))
                } else if name == "Wishlist Viewed" {
                    ("dropped", Some("not_in_blueprint"), None, Some("`Wishlist Viewed` has no mapping in the blueprint"))
                } else if n % 100 == 3 {
                    ("paused", Some("401"), Some(401), Some("Wrong Workspace ID or Data API key"))
                } else {
                    ("delivered", Some("200"), Some(200), None)
                };
                let body = event(n).to_string();
                insert
                    .execute(rusqlite::params![
                        format!("s{}", n % 5), format!("p{}", n % 5), format!("m-{n}"), received, body, name,
                        format!("u_{}", n % 1000), state, code, detail, status.map_or(0, |_| 1),
                        status.map(|s| format!("{s}:35")), status, status.map(|_| r#"{"status":"success"}"#),
                        status.map(|_| r#"{"type":"event"}"#), (state != "pending").then_some(received + 40)
                    ])
                    .expect("insert");
            }
        }
        // As recording each fate does.
        transaction
            .execute("UPDATE events SET customer_key = customer_id WHERE state <> 'pending'", [])
            .expect("customer keys");
        transaction.commit().expect("commit");
    }
}

/// The page over `events` stored events, measured by `tests/browser/debugger.mjs`.
fn page(events: u64) {
    let dir = tempfile::tempdir().expect("dir");
    fill(&dir.path().join("signal.db"), events);
    let config = config(dir.path(), "http://127.0.0.1:9");
    let serve = Process::start(
        &["serve", "--config", &config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        "admin",
    );
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let settings = serde_json::json!({"admin": serve.url("admin"), "mode": "measure",
        "screenshot": dir.path().join("page.png").display().to_string()});
    // Three runs: the first pays for starting Chromium's caches.
    println!("page: /debugger over {events} stored events, headless Chromium, 1440x900");
    for run in 1..=3 {
        let output = Command::new("node")
            .arg(kit.join("debugger.mjs"))
            .arg(settings.to_string())
            .output()
            .expect("node runs debugger.mjs (npm ci in tests/browser first)");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let of = |kind: &str| lines.iter().find(|line| line["kind"] == kind).cloned().unwrap_or_default();
        let (loaded, scrolled, frames) = (of("loaded"), of("scrolled_to_load"), of("frames"));
        if let Some(failed) = lines.iter().find(|line| line["kind"] == "failed") {
            println!("  run {run}: failed: {failed}");
            continue;
        }
        println!(
            "  run {run}: first render {} ms ({} rows); {} rows loaded by scrolling in {} ms; scroll frames p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms, {} row elements in the page",
            loaded["ms"], loaded["rows"], scrolled["rows"], scrolled["ms"],
            frames["p50"].as_f64().unwrap_or(0.0), frames["p95"].as_f64().unwrap_or(0.0),
            frames["max"].as_f64().unwrap_or(0.0), frames["rendered"]
        );
    }
}

/// A store file with Signal's tables, as a start of `signal serve` would leave it.
fn fresh_store(file: &std::path::Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(file).expect("open");
    db.execute_batch("PRAGMA journal_mode = WAL;").expect("wal");
    db.execute_batch(store::sql::SQLITE_SCHEMA).expect("schema");
    db.execute_batch(store::sql::SQLITE_INDEXES).expect("indexes");
    db.pragma_update(None, "user_version", store::sql::SQLITE_VERSION).expect("version");
    db
}

/// The store of `file` remembering the traits of `users` users, spread over the workspaces.
fn remember_users(file: &std::path::Path, users: u64) {
    let mut db = fresh_store(file);
    let transaction = db.transaction().expect("begin");
    {
        let mut insert = transaction
            .prepare("INSERT INTO traits (workspace, user_id, traits, updated_at) VALUES (?1, ?2, ?3, 0)")
            .expect("prepare");
        for n in 0..users {
            let traits = format!(
                r#"{{"email":"customer{n}@example.com","phone":"+447700{n:06}","first_name":"Jane","last_name":"Doe"}}"#
            );
            insert
                .execute(rusqlite::params![format!("WS{}", n % WORKSPACES as u64), format!("r_{n}"), traits])
                .expect("insert");
        }
    }
    transaction.commit().expect("commit");
}

/// How the events of one case of the traits benchmark are written.
#[derive(Clone, Copy)]
struct UsersCase {
    label: &'static str,
    name: &'static str,
    /// Whether each event carries a trait (to remember).
    traits: bool,
    /// Whether the case waits until every event is mapped.
    drain: bool,
}

/// `seconds` of batches of 100 events of `case` from 16 clients, user `n` of each event chosen by
/// [`spread_user`]; the events acknowledged per second.
async fn ingest_users(serve: &Process, file: &std::path::Path, seconds: u64, first: u64, case: UsersCase) -> f64 {
    let url = format!("{}/v1/batch", serve.url("collector"));
    let client = reqwest::Client::new();
    let (acked, next, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(first)), Arc::new(AtomicBool::new(false)));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, url, acked, next, stop) = (client.clone(), url.clone(), acked.clone(), next.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let start = next.fetch_add(100, Ordering::Relaxed);
                let key = format!("key-{}", (start / 100) as usize % WORKSPACES);
                let events: Vec<serde_json::Value> = (start..start + 100)
                    .map(|n| {
                        let mut event = serde_json::json!({"type": "track", "event": case.name, "user_id": spread_user(n),
                            "message_id": format!("m-{n}"), "properties": {"product_id": format!("P-{}", n % 50)}});
                        if case.traits {
                            event["traits"] = serde_json::json!({"plan": if n % 2 == 0 { "pro" } else { "free" }});
                        }
                        event
                    })
                    .collect();
                if post(&client, &url, &key, serde_json::json!({"batch": events}).to_string().into_bytes()).await {
                    acked.fetch_add(100, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }
    let rate = acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    if !case.drain {
        return rate;
    }
    let db = rusqlite::Connection::open(file).expect("open");
    let waiting = || -> i64 {
        db.query_row("SELECT COUNT(*) FROM events WHERE state IN ('pending', 'claimed')", [], |row| row.get(0)).unwrap_or(-1)
    };
    while waiting() != 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rate
}

async fn traits(users: u64) {
    let sandbox = sandbox();
    // Two services fed the same events: one whose store remembers `users` users (each event's user
    // among them, so every lookup finds traits), one whose store remembers nobody.
    let (remembering, forgetting) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let (full, empty) = (remembering.path().join("signal.db"), forgetting.path().join("signal.db"));
    let filling = Instant::now();
    remember_users(&full, users);
    println!("traits: {users} users remembered in the store ({:.1} s to write them)", filling.elapsed().as_secs_f64());
    let with_users = start(remembering.path(), &sandbox.url("MoEngage"));
    let without_users = start(forgetting.path(), &sandbox.url("MoEngage"));
    let (idle_rss, _) = with_users.memory();
    let mut first = 0u64;
    // Wishlist Viewed is not in the Retail preset: dropped without a request, mapped as fast as
    // the CPU allows; without traits its users are not read, with a trait each is read and the
    // news stored. Product Viewed is: sent, with the identity read from the store, at MoEngage's
    // limit while a backlog grows, so that case runs last.
    let cases = [
        UsersCase { label: "dropped, no traits", name: "Wishlist Viewed", traits: false, drain: true },
        UsersCase { label: "dropped, a trait each", name: "Wishlist Viewed", traits: true, drain: true },
        UsersCase { label: "sent at the limit, no traits", name: "Product Viewed", traits: false, drain: false },
    ];
    for case in cases {
        let (mut remembered, mut none) = (0.0, 0.0);
        // Alternated, so that the machine's drift falls on both alike.
        for _ in 0..3 {
            remembered += ingest_users(&with_users, &full, 10, first, case).await;
            none += ingest_users(&without_users, &empty, 10, first, case).await;
            first += 10_000_000;
        }
        let label = case.label;
        println!("  {label}: ingest, {users} users remembered {:.0} events/s (mean of 3 × 10 s)", remembered / 3.0);
        println!("  {label}: ingest, no user remembered {:.0} events/s (mean of 3 × 10 s)", none / 3.0);
        println!("  {label}: ratio (remembered / none) {:.3}", remembered / none);
        if case.traits {
            let (rss, peak) = with_users.memory();
            println!(
                "  resident memory, {users} remembered {:.1} MB at start, {:.1} MB after, peak {:.1} MB",
                idle_rss as f64 / 1024.0,
                rss as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
    }
}

/// The user of event `n`: spread over the million remembered users, and among those of the
/// workspace its batch goes to (see [`remember_users`]).
fn spread_user(n: u64) -> String {
    let workspace = (n / 100) % WORKSPACES as u64;
    let k = n.wrapping_mul(7_919) % (1_000_000 / WORKSPACES as u64);
    format!("r_{}", k * WORKSPACES as u64 + workspace)
}

/// A fresh database on the benchmark's PostgreSQL server (`SIGNAL_BENCH_POSTGRES`): its URL.
fn bench_database() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let server = std::env::var("SIGNAL_BENCH_POSTGRES")
        .expect("SIGNAL_BENCH_POSTGRES names a PostgreSQL server (postgres://USER@HOST:PORT); bench/postgres.sh starts one");
    let name = format!("bench_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let created = Command::new("psql")
        .args([&format!("{server}/postgres"), "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(created.success(), "CREATE DATABASE {name}");
    format!("{server}/{name}")
}

/// Three nodes on one PostgreSQL, one workspace at 6,000 events a minute, fed 150 events a second
/// (more than the limit) spread over the three collectors: the rate MoEngage's stand-in accepted
/// over `seconds`, after a warm-up, and its 429s.
async fn nodes(seconds: u64) {
    const LIMIT: u64 = 6_000;
    let sandbox = Process::start(
        &["sandbox", "--listen", "127.0.0.1:0", "--workspace", &format!("WS0:{KEY}"), "--per-minute", &LIMIT.to_string()],
        "limit",
    );
    let endpoint = sandbox.url("MoEngage");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("signal.yaml");
    std::fs::write(
        &path,
        format!(
            "storage:\n  postgres:\n    url: {}\nsources:\n  s0:\n    write_key: key-0\nintegrations:\n  i0:\n    workspace_id: WS0\n    data_api_key: {KEY}\n    data_center: \"01\"\n    endpoint: {endpoint}\n    events_per_minute: {LIMIT}\npipelines:\n  p0:\n    source: s0\n    integration: i0\n    preset: retail\n",
            bench_database()
        ),
    )
    .expect("config");
    let config = path.display().to_string();
    let nodes: Vec<Process> = (0..3)
        .map(|_| {
            Process::start(
                &["serve", "--config", &config, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
                "admin",
            )
        })
        .collect();
    let collectors: Vec<String> = nodes.iter().map(|node| format!("{}/v1/batch", node.url("collector"))).collect();
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let url = &collectors[(next / 15) as usize % collectors.len()];
                assert!(post(&client, url, "key-0", batch(next, 15)).await, "acknowledged");
                next += 15;
            }
            next
        })
    };
    let stats = async || -> serde_json::Value {
        let answer = client.get(format!("{endpoint}/sandbox/stats")).send().await.expect("stats");
        answer.json().await.expect("json")
    };
    let accepted = |stats: &serde_json::Value| stats["accepted_actions"].as_u64().unwrap_or(0);
    // The warm-up: a node takes the workspace's lease, and a backlog builds.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (first, started) = (stats().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (last, elapsed) = (stats().await, started.elapsed());
    stop.store(true, Ordering::Relaxed);
    let sent = feeder.await.expect("feeder");
    let per_minute = (accepted(&last) - accepted(&first)) as f64 * 60.0 / elapsed.as_secs_f64();
    println!("nodes: 3 on one PostgreSQL, one workspace at {LIMIT}/min, fed 9,000/min over the three collectors");
    println!("  sent                 {sent} events, every one acknowledged");
    println!(
        "  delivered            {:.0} events/min over {:.0} s ({:.2}% of the limit)",
        per_minute,
        elapsed.as_secs_f64(),
        per_minute / LIMIT as f64 * 100.0
    );
    println!("  sandbox answers      {}", last["by_status"]);
}
