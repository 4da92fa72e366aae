//! Several `signal serve` nodes sharing one PostgreSQL database, as an operator runs them: events
//! spread over every node's collector, one node killed with `kill -9` mid-run, a node started
//! later taking a share, the workspace's limit held over all of them, and any node's Event
//! Debugger showing every event. The database is a fresh one on the test server.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Http, SandboxProcess, ServeProcess, eventually, kill_9, metric, postgres_database};
use serde_json::{Value, json};

const KEY: &str = "nodes-data-key";

/// A configuration for every node: the sandbox's workspaces, each with its own source and
/// pipeline, delivering at `per_minute`.
fn shared_config(dir: &std::path::Path, sandbox: &str, workspaces: &[&str], per_minute: u32) -> String {
    let mut text = String::from("storage:\n  postgres:\n    url: ${DATABASE_URL}\n    max_connections: 8\nsources:\n");
    for workspace in workspaces {
        text.push_str(&format!("  site-{workspace}:\n    write_key: key-{workspace}\n"));
    }
    text.push_str("integrations:\n");
    for workspace in workspaces {
        text.push_str(&format!(
            "  shop-{workspace}:\n    workspace_id: {workspace}\n    data_api_key: {KEY}\n    data_center: \"01\"\n    endpoint: {sandbox}\n    events_per_minute: {per_minute}\n"
        ));
    }
    text.push_str("pipelines:\n");
    for workspace in workspaces {
        text.push_str(&format!(
            "  web-{workspace}:\n    source: site-{workspace}\n    integration: shop-{workspace}\n    preset: retail\n"
        ));
    }
    let path = dir.join("signal.yaml");
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

fn node(config: &str, database: &str) -> ServeProcess {
    ServeProcess::start(&["--config", config], &[("DATABASE_URL", database)])
}

/// A batch of `Signed Up` events numbered `from..to`, each with its own `message_id`.
fn batch(from: usize, to: usize) -> String {
    let events: Vec<Value> = (from..to)
        .map(|n| json!({"type": "track", "event": "Signed Up", "user_id": format!("u{n}"), "message_id": format!("m-{n}")}))
        .collect();
    json!({"batch": events}).to_string()
}

fn send(http: &Http, serve: &ServeProcess, write_key: &str, from: usize, to: usize) {
    let (status, answer) =
        http.post(&format!("{}/v1/batch", serve.collector), Some(write_key), &[], batch(from, to).into_bytes());
    assert_eq!(status, 200, "acknowledged: {answer}");
}

/// How many times each user's event reached the sandbox's workspace.
fn arrivals(sandbox: &SandboxProcess, workspace: &str) -> HashMap<String, usize> {
    let requests = sandbox.get(&format!("/sandbox/workspaces/{workspace}/requests"))["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut seen = HashMap::new();
    for request in requests {
        if let Some(customer) = request["customer_id"].as_str() {
            *seen.entry(customer.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

fn delivered_by(http: &Http, serve: &ServeProcess, pipeline: &str) -> u64 {
    metric(http, serve, &format!("signal_events_delivered_total{{pipeline=\"{pipeline}\"}}"))
}

#[test]
fn three_nodes_lose_one_to_kill_9_and_deliver_every_acknowledged_event_within_the_limit() {
    // The workspace takes 500 events in any 10 seconds; Signal is told 3,000 a minute, the same.
    let sandbox = SandboxProcess::start(&[
        "--workspace",
        &format!("WS1:{KEY}"),
        "--per-minute",
        "500",
        "--window-secs",
        "10",
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let database = postgres_database();
    let config = shared_config(dir.path(), &sandbox.base, &["WS1"], 3_000);
    let mut nodes: Vec<Option<ServeProcess>> = (0..3).map(|_| Some(node(&config, &database))).collect();
    let http = Http::new();

    // Events spread over the three collectors, 50 at a time.
    let total = 1_500;
    let mut next = 0;
    let mut killed = None;
    while next < total {
        let alive: Vec<&ServeProcess> = nodes.iter().flatten().collect();
        let serve = alive[(next / 50) % alive.len()];
        send(&http, serve, "key-WS1", next, next + 50);
        next += 50;
        if next == 600 && killed.is_none() {
            // The node delivering for the workspace dies mid-run, deliveries in flight.
            eventually(Duration::from_secs(20), "a node delivering", || {
                nodes.iter().flatten().any(|serve| delivered_by(&http, serve, "web-WS1") > 0)
            });
            let holder = nodes
                .iter()
                .position(|serve| serve.as_ref().is_some_and(|serve| delivered_by(&http, serve, "web-WS1") > 0))
                .expect("the delivering node");
            let mut serve = nodes[holder].take().expect("alive");
            kill_9(serve.child.id());
            let _ = serve.wait(Duration::from_secs(10));
            killed = Some((holder, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (holder, killed_at) = killed.expect("a node was killed");

    // Another node takes the workspace over within seconds, and every acknowledged event arrives.
    let survivors: Vec<&ServeProcess> = nodes.iter().flatten().collect();
    eventually(Duration::from_secs(20), "another node delivering", || {
        survivors.iter().any(|serve| delivered_by(&http, serve, "web-WS1") > 0)
    });
    let handed_on = killed_at.elapsed();
    eventually(Duration::from_secs(90), "every acknowledged event in the sandbox", || {
        arrivals(&sandbox, "WS1").len() == total
    });
    let arrived = arrivals(&sandbox, "WS1");
    assert!((0..total).all(|n| arrived.contains_key(&format!("u{n}"))), "nothing lost");
    let duplicates: usize = arrived.values().map(|times| times - 1).sum();
    // Only what the killed node had in flight can arrive twice: at most its concurrency.
    assert!(duplicates <= 64, "{duplicates} events arrived twice");
    let stats = sandbox.get("/sandbox/stats");
    assert_eq!(stats["by_status"].get("429"), None, "the sandbox never answered 429: {stats}");
    println!(
        "node {holder} killed; handed on within {handed_on:?}; {total} delivered, {duplicates} twice; sandbox: {stats}"
    );

    // Any node's debugger shows every event, whichever node took it in or delivered it.
    let reader = survivors[0];
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page = http.json(&format!("{}/api/events?limit=500&state=delivered{cursor}", reader.admin));
        listed += page["events"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(listed >= total, "a surviving node's debugger lists every delivered event: {listed} of {total}");
}

#[test]
fn a_node_started_later_takes_a_workspace_over_and_reloads_on_its_own() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{KEY}"), "--workspace", &format!("WS2:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let database = postgres_database();
    let config = shared_config(dir.path(), &sandbox.base, &["WS1", "WS2"], 30_000);
    let first = node(&config, &database);
    let http = Http::new();
    send(&http, &first, "key-WS1", 0, 20);
    send(&http, &first, "key-WS2", 1_000, 1_020);
    eventually(Duration::from_secs(20), "the only node delivers for both workspaces", || {
        delivered_by(&http, &first, "web-WS1") == 20 && delivered_by(&http, &first, "web-WS2") == 20
    });

    let second = node(&config, &database);
    // Two nodes, two workspaces: the first hands one over, and the second delivers for it.
    let mut round = 0;
    eventually(Duration::from_secs(30), "the second node delivering for a workspace", || {
        round += 1;
        send(&http, &first, "key-WS1", 2_000 + round * 10, 2_010 + round * 10);
        send(&http, &second, "key-WS2", 5_000 + round * 10, 5_010 + round * 10);
        std::thread::sleep(Duration::from_millis(300));
        delivered_by(&http, &second, "web-WS1") + delivered_by(&http, &second, "web-WS2") > 0
    });
    assert!(second.logs().contains("this node now delivers for the workspace"), "{}", second.logs());
    assert!(first.logs().contains("handing the workspace to another node"), "{}", first.logs());

    // A reload (SIGHUP) is one node's: it goes on delivering, and the other is untouched.
    let status = std::process::Command::new("kill").args(["-HUP", &second.child.id().to_string()]).status();
    assert!(status.expect("kill runs").success());
    eventually(Duration::from_secs(10), "the reload logged", || second.logs().contains("configuration reloaded"));
    assert!(!first.logs().contains("configuration reloaded"));
    let before: u64 = ["web-WS1", "web-WS2"].iter().map(|pipeline| delivered_by(&http, &second, pipeline)).sum();
    send(&http, &first, "key-WS1", 9_000, 9_010);
    send(&http, &first, "key-WS2", 9_500, 9_510);
    eventually(Duration::from_secs(20), "the reloaded node delivering again", || {
        ["web-WS1", "web-WS2"].iter().map(|pipeline| delivered_by(&http, &second, pipeline)).sum::<u64>() >= before + 10
    });
    eventually(Duration::from_secs(20), "every event in the sandbox", || {
        let sent = 20 + round * 10 + 10;
        arrivals(&sandbox, "WS1").len() == sent && arrivals(&sandbox, "WS2").len() == sent
    });
}

#[test]
fn a_login_seen_by_two_nodes_merges_the_anonymous_customer_once() {
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let presets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints/moengage");
    for file in ["base.yaml", "retail.yaml"] {
        std::fs::copy(presets.join(file), dir.path().join(file)).expect("copy a preset");
    }
    std::fs::write(dir.path().join("shop.yaml"), "extends: retail.yaml\nidentity:\n  customer_id: [$.user_id, $.anonymous_id]\n")
        .expect("write the blueprint");
    let config = dir.path().join("signal.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  postgres:\n    url: ${{DATABASE_URL}}\nsources:\n  site:\n    write_key: key-WS1\n\
             integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: {KEY}\n    data_center: \"01\"\n    endpoint: {}\n\
             pipelines:\n  web:\n    source: site\n    integration: shop\n    blueprint: shop.yaml\n",
            sandbox.base
        ),
    )
    .expect("write the configuration");
    let config = config.display().to_string();
    let database = postgres_database();
    let (first, second) = (node(&config, &database), node(&config, &database));
    let http = Http::new();
    let post = |serve: &ServeProcess, events: Value| {
        let (status, answer) =
            http.post(&format!("{}/v1/batch", serve.collector), Some("key-WS1"), &[], json!({"batch": events}).to_string().into_bytes());
        assert_eq!(status, 200, "{answer}");
    };
    post(&first, json!([{"type": "track", "event": "Product Viewed", "anonymousId": "anon-n", "properties": {"product_id": "P-1"}}]));
    eventually(Duration::from_secs(30), "the anonymous visit", || {
        sandbox.get("/sandbox/workspaces/WS1/customers/anon-n")["actions"].as_array().is_some_and(|actions| !actions.is_empty())
    });
    // The login reaches one node and a later call with both ids the other.
    post(&first, json!([{"type": "identify", "userId": "u-n", "anonymousId": "anon-n", "traits": {"email": "n@example.com"}}]));
    post(&second, json!([{"type": "track", "event": "Logged In", "userId": "u-n", "anonymousId": "anon-n"}]));
    eventually(Duration::from_secs(30), "the merge", || {
        sandbox.get("/sandbox/workspaces/WS1/customers/u-n")["merged_users"] == json!(["anon-n"])
    });
    std::thread::sleep(Duration::from_secs(3));
    let merges = sandbox.get("/sandbox/workspaces/WS1/requests")["requests"]
        .as_array()
        .map_or(0, |requests| requests.iter().filter(|body| body.get("merge_data").is_some()).count());
    assert_eq!(merges, 1, "one merge, not two");
    let total: u64 = [&first, &second].iter().map(|serve| metric(&http, serve, "signal_automatic_merges_total{pipeline=\"web\"}")).sum();
    assert_eq!(total, 1);
}

/// A PostgreSQL that takes TLS connections only, with a certificate for `localhost` signed by a CA
/// made for the test; stopped when dropped.
struct TlsPostgres {
    dir: tempfile::TempDir,
    /// `postgres://signal@localhost:PORT`
    server: String,
    ca: String,
}

impl TlsPostgres {
    fn start() -> TlsPostgres {
        let dir = tempfile::tempdir().expect("dir");
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl runs");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=Signal test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        std::fs::write(dir.path().join("server.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").expect("extensions");
        openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
            "-days", "2", "-extfile", "server.ext"]);
        let cluster = dir.path().join("cluster");
        std::fs::create_dir(&cluster).expect("cluster dir");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres");
        let output = std::process::Command::new("bash")
            .arg(&script)
            .args(["start"])
            .arg(&cluster)
            .arg("--ssl")
            .args([dir.path().join("server.crt"), dir.path().join("server.key")])
            .output()
            .expect("tests/postgres runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let url = String::from_utf8_lossy(&output.stdout).trim().replace("127.0.0.1", "localhost");
        let ca = dir.path().join("ca.crt").display().to_string();
        TlsPostgres { dir, server: url, ca }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres");
        let _ = std::process::Command::new("bash").arg(script).arg("stop").arg(self.dir.path().join("cluster")).status();
    }
}

#[test]
fn postgres_over_tls_is_checked_as_each_sslmode_says() {
    let tls = TlsPostgres::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let open = |url: String| runtime.block_on(async move { store::PostgresQueue::open(&url, 2).await.map(|_| ()) });
    let at_ip = tls.server.replace("localhost", "127.0.0.1");
    let ca = &tls.ca;

    // The certificate names the host and is signed by the CA named: verify-full connects.
    open(format!("{}/postgres?sslmode=verify-full&sslrootcert={ca}", tls.server)).expect("verify-full");
    // The same server by its address, which the certificate does not name: verify-full refuses,
    // verify-ca (the chain alone) connects.
    let refused = open(format!("{at_ip}/postgres?sslmode=verify-full&sslrootcert={ca}")).expect_err("wrong name");
    assert!(refused.to_string().contains("not valid for name"), "{refused}");
    open(format!("{at_ip}/postgres?sslmode=verify-ca&sslrootcert={ca}")).expect("verify-ca");
    // The system's roots do not know the test's CA.
    let refused = open(format!("{}/postgres?sslmode=verify-full", tls.server)).expect_err("unknown issuer");
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    // require and prefer (the default) encrypt without checking, as libpq does.
    open(format!("{}/postgres?sslmode=require", tls.server)).expect("require");
    open(format!("{}/postgres", tls.server)).expect("prefer");
    // The server takes nothing else.
    let refused = open(format!("{}/postgres?sslmode=disable", tls.server)).expect_err("no TLS");
    assert!(refused.to_string().contains("no encryption"), "{refused}");
    let refused = open(format!("{}/postgres?sslmode=verify-full&sslrootcert=/nowhere/ca.pem", tls.server)).expect_err("no file");
    assert!(refused.to_string().contains("cannot read `sslrootcert` /nowhere/ca.pem"), "{refused}");
}

#[test]
fn signal_serve_on_a_postgres_that_requires_tls_delivers_the_readme_example() {
    let tls = TlsPostgres::start();
    let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{KEY}")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = shared_config(dir.path(), &sandbox.base, &["WS1"], 6000);
    let url = format!("{}/postgres?sslmode=verify-full&sslrootcert={}", tls.server, tls.ca);
    let serve = node(&config, &url);
    let http = Http::new();
    let (status, answer) = http.post(
        &format!("{}/v1/track", serve.collector),
        Some("key-WS1"),
        &[],
        common::document_event().to_string().into_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    eventually(Duration::from_secs(20), "the document's example delivered", || {
        arrivals(&sandbox, "WS1").get("u_8842") == Some(&1)
    });
    let requests = sandbox.get("/sandbox/workspaces/WS1/requests");
    let sent = requests["requests"].as_array().and_then(|all| all.first()).cloned().unwrap_or_default();
    assert_eq!(sent, common::document_payload(), "the document's payload, exactly");
    assert!(serve.banner.contains("PostgreSQL"), "{}", serve.banner);
}
