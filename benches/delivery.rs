//! Delivery benchmarks against a `signal sandbox` process on loopback (see BENCHMARKS.md).
//!
//! `cargo bench --bench delivery -- sustained [SECONDS]`: one workspace at MoEngage's 30,000
//! events/minute, against a sandbox enforcing the same limit: the rate achieved and the 429s.
//!
//! `cargo bench --bench delivery -- throughput [REQUESTS]`: 50 workspaces, a sandbox without a
//! practical limit. The shared sender is measured against a baseline in the same run: a bare
//! `reqwest` loop (same client settings, same concurrency) with no rate limiting, retries or
//! classification. Requests per second and CPU per request for both, and the ratio.

#![allow(missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use moengage::{ApiKey, Credentials, MoEngageDestination, RequestKind};
use sender::{Destination as _, Ending, HttpSender, RetryPolicy};

const KEY: &str = "bench-key";
const CONCURRENCY: usize = 256;

/// The document's "Order Completed" request body.
const BODY: &str = r#"{"type":"event","customer_id":"u_8842","user_identifiers":{"u_em":"jane@example.com","u_mb":"+447700900123"},"actions":[{"action":"Order Completed","platform":"web","attributes":{"order_id":"ORD-1001","value":89.99,"currency":"GBP","coupon":"WELCOME10"}}]}"#;

struct Sandbox {
    child: Child,
    base: String,
}

impl Sandbox {
    fn start(workspaces: &[String], per_minute: u32) -> Sandbox {
        let mut command = Command::new(env!("CARGO_BIN_EXE_signal"));
        command.args(["sandbox", "--listen", "127.0.0.1:0", "--per-minute", &per_minute.to_string()]);
        for workspace in workspaces {
            command.args(["--workspace", &format!("{workspace}:{KEY}")]);
        }
        let mut child = command.stdout(Stdio::piped()).spawn().expect("signal sandbox starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("banner");
        let base = banner.trim().rsplit(' ').next().expect("address").to_owned();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Sandbox { child, base }
    }

    fn cpu(&self) -> Duration {
        cpu_time(&format!("/proc/{}/stat", self.child.id()))
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/sandbox/stats", self.base)).await.expect("stats").json().await.expect("json")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of a process, from `/proc/PID/stat` (Linux).
fn cpu_time(stat_path: &str) -> Duration {
    let ticks_per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().ok())
        .unwrap_or(100);
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&index| fields.get(index)?.parse::<u64>().ok()).sum();
    Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64)
}

fn destination(base: &str, workspace: &str) -> MoEngageDestination {
    let credentials =
        Credentials::new(workspace, ApiKey::new(KEY), "01".parse().expect("dc")).expect("credentials");
    MoEngageDestination::new(credentials, Some(base), moengage::EVENTS_PER_MINUTE)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    sender::install_crypto_provider();
    match args.first().map(String::as_str) {
        Some("sustained") => sustained(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(120)),
        Some("throughput") => throughput(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000)),
        _ => {
            eprintln!("usage: cargo bench --bench delivery -- sustained [SECONDS] | throughput [REQUESTS]");
            std::process::exit(2);
        }
    }
}

/// Sends `seconds` worth of MoEngage's limit as one burst and reports the rate reached.
fn sustained(seconds: u64) {
    let limit = moengage::EVENTS_PER_MINUTE;
    let events = (u64::from(limit) * seconds / 60) as usize;
    let sandbox = Sandbox::start(&["WS1".to_owned()], limit);
    let runtime = runtime();
    runtime.block_on(async {
        let sender =
            Arc::new(HttpSender::new(RetryPolicy::default(), Duration::from_secs(30)).expect("client"));
        let destination = Arc::new(destination(&sandbox.base, "WS1"));
        let attempts = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let counted = attempts.clone();
        let delivered = spread(events, move |_| {
            let (sender, destination, attempts) = (sender.clone(), destination.clone(), counted.clone());
            async move {
                let delivery = sender.send(&*destination, RequestKind::Event.request(BODY.as_bytes().to_vec())).await;
                attempts.fetch_add(delivery.attempts as usize, Ordering::Relaxed);
                delivery.ending == Ending::Delivered
            }
        })
        .await;
        let attempts = attempts.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        let stats = sandbox.stats().await;
        let per_minute = delivered as f64 / elapsed.as_secs_f64() * 60.0;
        println!("sustained: {events} events to one workspace, limit {limit}/min in sender and sandbox");
        println!("  elapsed              {:.1} s", elapsed.as_secs_f64());
        println!("  delivered            {delivered} ({attempts} attempts)");
        println!("  rate                 {per_minute:.0} events/min");
        println!("  rate / limit         {:.4}", per_minute / f64::from(limit));
        println!("  429s from sandbox    {}", stats["by_status"]["429"].as_u64().unwrap_or(0));
        println!("  sandbox stats        {stats}");
    });
}

/// 50 workspaces, `requests` requests: the shared sender against a bare client in the same run.
fn throughput(requests: usize) {
    let workspaces: Vec<String> = (0..50).map(|n| format!("WS{n:02}")).collect();
    // High enough that the sandbox never limits: this measures sending, not waiting.
    let sandbox = Sandbox::start(&workspaces, 100_000_000);
    let runtime = runtime();
    let destinations: Arc<Vec<MoEngageDestination>> =
        Arc::new(workspaces.iter().map(|workspace| destination(&sandbox.base, workspace)).collect());
    // Warm up both paths: connections opened, allocators and caches primed.
    runtime.block_on(bare_run(destinations.clone(), 5_000));
    runtime.block_on(sender_run(destinations.clone(), 5_000));
    let mut rows = Vec::new();
    for round in 1..=3 {
        for (name, is_sender) in [("bare reqwest loop (baseline)", false), ("shared sender", true)] {
            let (own_before, sandbox_before) = (cpu_time("/proc/self/stat"), sandbox.cpu());
            let started = Instant::now();
            let delivered = if is_sender {
                runtime.block_on(sender_run(destinations.clone(), requests))
            } else {
                runtime.block_on(bare_run(destinations.clone(), requests))
            };
            let elapsed = started.elapsed();
            let own = cpu_time("/proc/self/stat").saturating_sub(own_before);
            let sandbox_cpu = sandbox.cpu().saturating_sub(sandbox_before);
            assert_eq!(delivered, requests, "every request delivered");
            let rate = requests as f64 / elapsed.as_secs_f64();
            let per_request = own.as_secs_f64() * 1e6 / requests as f64;
            let sandbox_per_request = sandbox_cpu.as_secs_f64() * 1e6 / requests as f64;
            println!(
                "round {round}: {name:<30} {rate:>8.0} req/s  sender CPU {per_request:>5.1} µs/req  sandbox CPU {sandbox_per_request:>5.1} µs/req"
            );
            rows.push((is_sender, rate, per_request));
        }
    }
    let median = |is_sender: bool, pick: fn(&(bool, f64, f64)) -> f64| {
        let mut values: Vec<f64> = rows.iter().filter(|row| row.0 == is_sender).map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (bare_rate, sender_rate) = (median(false, |r| r.1), median(true, |r| r.1));
    let (bare_cpu, sender_cpu) = (median(false, |r| r.2), median(true, |r| r.2));
    println!(
        "throughput: {requests} requests per round across 50 workspaces, {CONCURRENCY} in flight (medians of 3)"
    );
    println!("  shared sender        {sender_rate:.0} req/s, {sender_cpu:.1} µs CPU per request");
    println!("  bare reqwest loop    {bare_rate:.0} req/s, {bare_cpu:.1} µs CPU per request");
    println!(
        "  sender / bare        rate {:.2}, CPU per request {:.2}",
        sender_rate / bare_rate,
        sender_cpu / bare_cpu
    );
}

/// Sends `requests` requests, `CONCURRENCY` at a time, with `send(index)`; how many succeeded.
async fn spread<F, Fut>(requests: usize, send: F) -> usize
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, send) = (next.clone(), send.clone());
        workers.push(tokio::spawn(async move {
            let mut succeeded = 0;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests {
                    return succeeded;
                }
                succeeded += usize::from(send(index).await);
            }
        }));
    }
    let mut succeeded = 0;
    for worker in workers {
        succeeded += worker.await.expect("worker");
    }
    succeeded
}

async fn sender_run(destinations: Arc<Vec<MoEngageDestination>>, requests: usize) -> usize {
    let sender = Arc::new(HttpSender::new(RetryPolicy::default(), Duration::from_secs(30)).expect("client"));
    spread(requests, move |index| {
        let (sender, destinations) = (sender.clone(), destinations.clone());
        async move {
            let destination = &destinations[index % destinations.len()];
            sender.send(destination, RequestKind::Event.request(BODY.as_bytes().to_vec())).await.ending == Ending::Delivered
        }
    })
    .await
}

async fn bare_run(destinations: Arc<Vec<MoEngageDestination>>, requests: usize) -> usize {
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(60))
        .build()
        .expect("client");
    spread(requests, move |index| {
        let (client, destinations) = (client.clone(), destinations.clone());
        async move {
            let destination = &destinations[index % destinations.len()];
            let body = bytes::Bytes::from(BODY.as_bytes().to_vec());
            let Ok(response) = destination.request(&client, RequestKind::Event.api(), body).send().await else { return false };
            let ok = response.status().is_success();
            response.bytes().await.is_ok() && ok
        }
    })
    .await
}
