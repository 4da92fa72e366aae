//! Signal's own tag, `/signal.js`, as a site without an analytics SDK uses it: a shop page on one
//! loopback origin loads it from `signal serve` on another, in headless Chromium (driven by
//! `tests/browser/tag.mjs`), and the sandbox must receive the integration document's payload — even
//! though the page navigates away right after the call. Then what makes the tag worth having: one
//! anonymous id across page loads (and, in cookie mode, across wiped storage), events kept through
//! offline spells and a 503, consent, calls made before it loads, a strict CSP, two tabs, and its
//! size and caching.
//!
//! Needs Chromium and Node.js, as tests/browser.rs does.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Http, SandboxProcess, ServeProcess, browser_kit, eventually};
use serde_json::{Value, json};

const WRITE_KEY: &str = "shop-write-key";
const API_KEY: &str = "sandbox-data-key";

/// Headless Chromium with the shop site, taking commands; what it saw, as JSON records.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    records: Arc<Mutex<Vec<Value>>>,
    next_id: u64,
    /// The shop site's origin, e.g. `http://127.0.0.1:41234`.
    origin: String,
}

impl Browser {
    fn start() -> Browser {
        let kit = browser_kit();
        let mut child = Command::new("node")
            .arg(kit.join("tag.mjs"))
            .arg(json!({"key": WRITE_KEY}).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs tag.mjs");
        let stdin = child.stdin.take().expect("stdin");
        let records = Arc::new(Mutex::new(Vec::new()));
        let collected = records.clone();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let record = serde_json::from_str(&line).unwrap_or_else(|_| json!({"kind": "text", "text": line}));
                collected.lock().expect("lock").push(record);
            }
        });
        let mut browser = Browser { child, stdin, records, next_id: 0, origin: String::new() };
        eventually(Duration::from_secs(60), "the browser to start", || !browser.of_kind("ready").is_empty());
        browser.origin = browser.of_kind("ready")[0]["origin"].as_str().expect("origin").to_owned();
        browser
    }

    /// Runs one command and returns its result; a command that failed fails the test.
    fn run(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        writeln!(self.stdin, "{command}").expect("write a command");
        let mut done = None;
        eventually(Duration::from_secs(60), &format!("command {command}"), || {
            done = self.of_kind("done").into_iter().find(|record| record["id"] == id);
            done.is_some()
        });
        let done = done.unwrap_or_default();
        assert!(done.get("error").is_none(), "{command} failed: {done}\n{}", self.console());
        done["result"].clone()
    }

    fn eval(&mut self, tab: usize, js: &str) -> Value {
        self.run(json!({"do": "eval", "tab": tab, "js": js}))
    }

    fn open(&mut self, tab: usize, path: &str) {
        self.run(json!({"do": "open", "tab": tab, "path": path}));
        // The tag has loaded once the page's own script sees it.
        let global = path.split("global=").nth(1).map_or("signal", |rest| rest.split('&').next().unwrap_or("signal"));
        let js = format!("new Promise((ready) => {{ const look = () => window.{global} && window.{global}.VERSION ? ready(true) : setTimeout(look, 20); look(); }})");
        self.eval(tab, &js);
    }

    fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.records.lock().expect("lock").iter().filter(|record| record["kind"] == kind).cloned().collect()
    }

    /// Every event the tag posted to the collector, in the order sent (a beacon's too).
    fn sent_events(&self) -> Vec<Value> {
        self.of_kind("request")
            .iter()
            .filter(|request| request["method"] == "POST" && request["url"].as_str().is_some_and(|url| url.contains("/v1/batch")))
            .filter_map(|request| serde_json::from_str::<Value>(request["body"].as_str()?).ok())
            .flat_map(|body| body["batch"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn console(&self) -> String {
        let records = self.records.lock().expect("lock");
        records
            .iter()
            .filter(|record| record["kind"] == "console" || record["kind"] == "pageerror" || record["kind"] == "failed")
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"do": "close"}));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandbox, and `signal serve` delivering the source `shop` to it through Retail; `source_extra`
/// is added to the source's keys (YAML, indented under it).
struct Shop {
    sandbox: SandboxProcess,
    serve: ServeProcess,
    dir: tempfile::TempDir,
}

impl Shop {
    fn start(source_extra: &str) -> Shop {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = SandboxProcess::start(&["--workspace", &format!("WS1:{API_KEY}")]);
        let config = dir.path().join("signal.yaml");
        std::fs::write(
            &config,
            format!(
                "storage:\n  sqlite: signal.db\nsources:\n  shop:\n    write_key: {WRITE_KEY}\n{source_extra}\
                 integrations:\n  moengage:\n    workspace_id: WS1\n    data_api_key: {API_KEY}\n    data_center: \"01\"\n    endpoint: {}\n\
                 pipelines:\n  shop:\n    source: shop\n    integration: moengage\n    preset: retail\n",
                sandbox.base
            ),
        )
        .expect("write the configuration");
        let serve = ServeProcess::start(&["--config", &config.display().to_string()], &[]);
        Shop { sandbox, serve, dir }
    }

    fn actions(&self, user: &str) -> Vec<Value> {
        self.sandbox.get(&format!("/sandbox/workspaces/WS1/customers/{user}/actions"))["actions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn requests(&self) -> Vec<Value> {
        self.sandbox.get("/sandbox/workspaces/WS1/requests")["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Opens the browser with the collector set.
    fn browser(&self, browser: &mut Browser) {
        browser.run(json!({"do": "collector", "url": self.serve.collector}));
    }
}

/// The action without what the document's example (an event with no time) has not: the event's
/// time and the visitor's time zone offset, which the tag always sends.
fn undated(mut body: Value) -> Value {
    if let Some(actions) = body["actions"].as_array_mut() {
        for action in actions {
            if let Some(action) = action.as_object_mut() {
                action.remove("current_time");
                action.remove("user_timezone_offset");
            }
        }
    }
    body
}

/// The newest stored event named `name`, as the collector kept it (the Event Debugger's detail).
fn stored_event(shop: &Shop, name: &str) -> Value {
    let http = Http::new();
    let listed = http.json(&format!("{}/api/events?event={}&limit=1", shop.serve.admin, name.replace(' ', "%20")));
    let id = listed["events"][0]["id"].clone();
    let detail = http.json(&format!("{}/api/events/{id}", shop.serve.admin));
    let payload = &detail["payload"];
    match payload {
        Value::String(text) => serde_json::from_str(text).expect("a stored event is JSON"),
        other => other.clone(),
    }
}

fn count_of(actions: &[Value], name: &str) -> usize {
    actions.iter().filter(|action| action["action"] == name).count()
}

#[test]
fn the_documents_example_arrives_though_the_page_navigates_away_at_once() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html?global=datafly");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tag-shop.png");
    browser.run(json!({"do": "screenshot", "tab": 0, "file": shot.display().to_string()}));
    // The shop's button runs the document's example, then sets location.href at once.
    browser.run(json!({"do": "click", "tab": 0, "selector": "#order"}));
    browser.run(json!({"do": "wait_navigation", "tab": 0, "path": "/thanks.html"}));

    eventually(Duration::from_secs(30), "the order in the sandbox", || count_of(&shop.actions("u_8842"), "Order Completed") == 1);
    let requests = shop.requests();
    let order = requests
        .iter()
        .find(|body| body["type"] == "event" && body["actions"][0]["action"] == "Order Completed")
        .expect("the order's request");
    assert_eq!(undated(order.clone()), common::document_payload(), "what MoEngage received");
    // The event kept its time and the visitor's time zone (the page runs in Europe/London).
    assert!(order["actions"][0]["current_time"].as_str().is_some_and(|time| time.ends_with('Z')), "{order}");
    // identify went to the customer API with the traits.
    let customer = requests.iter().find(|body| body["type"] == "customer").expect("the identify's customer update");
    assert_eq!(customer["customer_id"], "u_8842");
    assert_eq!(customer["attributes"]["u_em"], "jane@example.com");
    // The event as the collector stored it (it left the page as it unloaded, by beacon).
    let order_event = stored_event(&shop, "Order Completed");
    for field in ["message_id", "anonymous_id", "timestamp", "sent_at"] {
        assert!(order_event[field].is_string(), "{field}: {order_event}");
    }
    assert_eq!(order_event["user_id"], "u_8842");
    assert_eq!(order_event["context"]["library"]["name"], "signal.js");
    assert_eq!(order_event["context"]["timezone"], "Europe/London");
    assert_eq!(order_event["context"]["locale"], "en-GB");
    assert_eq!(order_event["context"]["page"]["path"], "/shop.html");
    assert!(std::fs::metadata(&shot).is_ok_and(|meta| meta.len() > 1000), "no screenshot at {}", shot.display());
    assert!(browser.of_kind("pageerror").is_empty(), "{}", browser.console());
}

#[test]
fn an_anonymous_visitor_keeps_one_id_across_loads_and_a_wiped_storage_in_cookie_mode() {
    let mut browser = Browser::start();
    let extra = format!(
        "    allowed_origins: [{}]\n    cookie: {{max_age: 30d, secure: false}}\n",
        browser.origin
    );
    let shop = Shop::start(&extra);
    shop.browser(&mut browser);
    let id_of = |browser: &mut Browser| browser.eval(0, "localStorage.getItem(Object.keys(localStorage).find((k) => k.endsWith(':aid')))");

    browser.open(0, "/shop.html?utm_source=news&utm_campaign=winter");
    browser.eval(0, "signal.page('Home').then(() => signal.flush())");
    let first = id_of(&mut browser);
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.track('Product Viewed', {product_id: 'P-1'}).then(() => signal.flush())");
    assert_eq!(id_of(&mut browser), first, "a reload keeps the anonymous id");
    eventually(Duration::from_secs(20), "both events sent", || browser.sent_events().len() >= 2);

    // The browser wipes what scripts stored; the collector's HttpOnly cookie still has the id.
    browser.eval(0, "localStorage.clear()");
    assert!(!browser.eval(0, "document.cookie").as_str().unwrap_or_default().contains("signal_aid"), "the cookie is HttpOnly");
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.track('Product Viewed', {product_id: 'P-2'}).then(() => signal.flush())");
    eventually(Duration::from_secs(20), "the third event sent", || browser.sent_events().len() >= 3);
    let sent = browser.sent_events();
    let ids: Vec<&Value> = sent.iter().map(|event| &event["anonymous_id"]).collect();
    assert!(ids.iter().all(|id| **id == first), "one anonymous id for the visit: {ids:?} (first {first})");
    assert_eq!(sent[0]["context"]["campaign"], json!({"source": "news", "name": "winter"}), "{}", sent[0]);
    // Each answer to the page named it, with credentials: never `*`.
    let credentialed = browser.of_kind("request").iter().any(|request| request["url"].as_str().is_some_and(|url| url.contains("/signal/id")));
    assert!(credentialed, "the tag asked for its cookie's id");

    // The Retail preset keeps `user_id` alone: the anonymous visit is dropped as before.
    let events = common::Http::new().json(&format!("{}/api/events?limit=10", shop.serve.admin));
    let codes: Vec<&Value> = events["events"].as_array().expect("events").iter().map(|event| &event["code"]).collect();
    assert!(codes.iter().all(|code| *code == "missing_customer_id"), "{codes:?}");
}

#[test]
fn in_cookie_mode_a_page_left_at_once_after_a_wiped_storage_keeps_the_visitors_id() {
    let mut browser = Browser::start();
    let extra = format!("    allowed_origins: [{}]\n    cookie: {{max_age: 30d, secure: false}}\n", browser.origin);
    let shop = Shop::start(&extra);
    shop.browser(&mut browser);
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.track('Product Viewed', {product_id: 'P-1'}).then(() => signal.flush())");
    eventually(Duration::from_secs(20), "the first event sent", || !browser.sent_events().is_empty());
    let first = browser.sent_events()[0]["anonymous_id"].clone();
    // Storage wiped; the next page tracks and is left at once, before anything else can happen.
    browser.eval(0, "localStorage.clear()");
    browser.open(0, "/shop.html");
    browser.run(json!({"do": "eval", "tab": 0, "js": "signal.track('Product Added', {product_id: 'P-1'}); location.href = '/thanks.html'; true"}));
    browser.run(json!({"do": "wait_navigation", "tab": 0, "path": "/thanks.html"}));
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.track('Checkout Started').then(() => signal.flush())");
    eventually(Duration::from_secs(20), "the third page's event sent", || {
        browser.sent_events().iter().any(|event| event["event"] == "Checkout Started")
    });
    let last = browser.sent_events().into_iter().rev().find(|event| event["event"] == "Checkout Started").expect("sent");
    assert_eq!(last["anonymous_id"], first, "the cookie kept the visitor's id: {last}");
}

#[test]
fn events_tracked_offline_arrive_once_when_the_network_returns() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.identify('u-offline').then(() => signal.flush())");
    browser.run(json!({"do": "offline", "value": true}));
    browser.eval(0, "Promise.all([1, 2, 3].map((n) => signal.track('Product Viewed', {product_id: 'P-' + n})))");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count_of(&shop.actions("u-offline"), "Product Viewed"), 0, "nothing can arrive offline");
    // A reload while offline: the queue is in localStorage, not in the page.
    browser.run(json!({"do": "offline", "value": false}));
    eventually(Duration::from_secs(60), "the three views after the network returned", || {
        count_of(&shop.actions("u-offline"), "Product Viewed") == 3
    });
    std::thread::sleep(Duration::from_secs(3));
    let actions = shop.actions("u-offline");
    assert_eq!(count_of(&actions, "Product Viewed"), 3, "each exactly once: {actions:?}");
}

#[test]
fn a_queue_that_answers_503_is_retried_and_the_event_delivered_once() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html");
    // Another process holds the database's write lock: the collector cannot store and answers 503.
    let lock = rusqlite::Connection::open(shop.dir.path().join("signal.db")).expect("open the queue");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock the queue");
    browser.eval(0, "signal.identify('u-retry'); signal.track('Checkout Started', {cart_id: 'C-1'}); signal.flush()");
    eventually(Duration::from_secs(30), "a 503", || browser.of_kind("response").iter().any(|response| response["status"] == 503));
    lock.execute_batch("ROLLBACK").expect("unlock the queue");
    drop(lock);
    eventually(Duration::from_secs(90), "the checkout after the retry", || count_of(&shop.actions("u-retry"), "Checkout Started") == 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count_of(&shop.actions("u-retry"), "Checkout Started"), 1);
    let failed: Vec<Value> = browser.of_kind("failed");
    assert!(failed.is_empty(), "requests blocked (CORS?) or failed: {failed:?}");
}

#[test]
fn consent_refused_sends_nothing_at_all() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html");
    browser.eval(
        0,
        "signal.consent(false).then(() => Promise.all([signal.identify('u-no'), signal.track('Product Viewed'), signal.page()])).then(() => signal.flush())",
    );
    std::thread::sleep(Duration::from_secs(3));
    browser.open(0, "/shop.html");
    browser.eval(0, "signal.track('Product Viewed').then(() => signal.flush())");
    std::thread::sleep(Duration::from_secs(2));
    let sent: Vec<Value> =
        browser.of_kind("request").into_iter().filter(|request| request["method"] != "GET" || !request["url"].as_str().unwrap_or_default().ends_with("/signal.js")).collect();
    assert!(sent.is_empty(), "requests after consent(false): {sent:?}");
    let stored = browser.eval(0, "Object.keys(localStorage).filter((k) => k.includes(':q:') || k.endsWith(':aid') || k.endsWith(':uid')).length");
    assert_eq!(stored, 0, "queue and ids deleted");
    assert!(shop.requests().is_empty());
}

#[test]
fn calls_made_before_the_tag_loads_are_replayed_in_order() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.run(json!({"do": "delay_tag", "ms": 1500}));
    browser.run(json!({"do": "open", "tab": 0, "path": "/shop.html?async=1", "wait": "domcontentloaded"}));
    let early = browser.eval(
        0,
        "const loaded = !!window.signal.VERSION; signal.identify('u-early'); \
         for (const n of [1, 2, 3]) signal.track('Product Added', {step: n}); loaded",
    );
    assert_eq!(early, false, "the calls were made before the tag had loaded");
    eventually(Duration::from_secs(30), "three additions in the sandbox", || count_of(&shop.actions("u-early"), "Product Added") == 3);
    let steps: Vec<Value> = browser
        .sent_events()
        .iter()
        .filter(|event| event["event"] == "Product Added")
        .map(|event| event["properties"]["step"].clone())
        .collect();
    assert_eq!(steps, [json!(1), json!(2), json!(3)]);
    let types: Vec<Value> = browser.sent_events().iter().map(|event| event["type"].clone()).collect();
    assert_eq!(types.first(), Some(&json!("identify")), "{types:?}");
}

#[test]
fn a_page_with_a_strict_content_security_policy_works() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html?csp=1&global=datafly");
    browser.run(json!({"do": "click", "tab": 0, "selector": "#order"}));
    eventually(Duration::from_secs(30), "the order in the sandbox", || count_of(&shop.actions("u_8842"), "Order Completed") == 1);
    let console = browser.console();
    assert!(!console.contains("CSP violation") && !console.contains("Content Security Policy"), "{console}");
}

#[test]
fn two_tabs_never_send_the_same_event_twice() {
    let shop = Shop::start("");
    let mut browser = Browser::start();
    shop.browser(&mut browser);
    browser.open(0, "/shop.html");
    browser.open(1, "/shop.html");
    browser.eval(0, "signal.identify('u-tabs')");
    let burst = "Promise.all(Array.from({length: 15}, (_, n) => signal.track('Product Viewed', {n})))";
    browser.eval(0, burst);
    browser.eval(1, burst);
    eventually(Duration::from_secs(60), "thirty views in the sandbox", || count_of(&shop.actions("u-tabs"), "Product Viewed") == 30);
    std::thread::sleep(Duration::from_secs(3));
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for event in browser.sent_events() {
        *sent.entry(event["message_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let twice: Vec<(&String, &usize)> = sent.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(sent.len(), 31, "identify and thirty views");
    assert_eq!(count_of(&shop.actions("u-tabs"), "Product Viewed"), 30);
}

#[test]
fn the_tag_is_small_gzipped_cached_and_versioned() {
    let shop = Shop::start("");
    let http = Http::new();
    let url = format!("{}/signal.js", shop.serve.collector);
    let (status, headers, gzipped) = http.send_bytes("GET", &url, &[("accept-encoding", "gzip, br")], Vec::new());
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    assert!(gzipped.len() <= 6 * 1024, "the tag is {} bytes gzipped; the budget is 6 KB", gzipped.len());
    let mut source = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut source).expect("gunzip");
    let repository = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tag/signal.js")).expect("tag");
    assert!(source == repository, "the binary serves the repository's tag ({} bytes, not {})", source.len(), repository.len());
    for banned in ["eval(", "new Function"] {
        assert!(!repository.contains(banned), "the tag must run under a strict CSP: it has {banned}");
    }

    // Revalidated by its ETag; without gzip, the text itself.
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let (status, _, _) = http.send("GET", &url, &[("if-none-match", &etag)], Vec::new());
    assert_eq!(status, 304);
    let (_, plain_headers, plain) = http.send("GET", &url, &[], Vec::new());
    assert!(plain_headers.get("content-encoding").is_none());
    assert!(plain == repository, "the tag's text");

    // The versioned URL the Link header names never changes, so it is cached for a year.
    let link = headers["link"].to_str().expect("link").to_owned();
    let versioned = link.trim_start_matches('<').split('>').next().expect("a URL").to_owned();
    assert!(versioned.starts_with("/signal-") && versioned.ends_with(".js"), "{link}");
    let (status, pinned_headers, pinned) = http.send("GET", &format!("{}{versioned}", shop.serve.collector), &[], Vec::new());
    assert_eq!(status, 200);
    assert_eq!(pinned_headers["cache-control"], "public, max-age=31536000, immutable");
    assert!(pinned == repository, "the versioned tag's text");
    let (status, _, _) = http.send("GET", &format!("{}/signal-0000000000000000.js", shop.serve.collector), &[], Vec::new());
    assert_eq!(status, 404, "another version is not served as this one");
}

#[test]
fn credentials_and_the_cookie_only_for_allowed_origins_and_nothing_kept_under_gpc() {
    let shop = Shop::start(
        "    allowed_origins: [https://www.shop.example]\n    cookie: {domain: shop.example, max_age: 30d}\n    honor_gpc: true\n",
    );
    let http = Http::new();
    let batch = format!("{}/v1/batch?writeKey={WRITE_KEY}", shop.serve.collector);
    let body = json!({"batch": [{"type": "track", "event": "Product Viewed", "anonymous_id": "a1b2-c3", "properties": {}}]})
        .to_string()
        .into_bytes();
    let post = |headers: &[(&str, &str)]| {
        let mut all = vec![("content-type", "text/plain")];
        all.extend_from_slice(headers);
        http.send("POST", &batch, &all, body.clone())
    };

    let (status, headers, _) = post(&[("origin", "https://www.shop.example")]);
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "https://www.shop.example");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let cookie = headers["set-cookie"].to_str().expect("cookie");
    for part in ["signal_aid=a1b2-c3", "Max-Age=2592000", "HttpOnly", "Secure", "SameSite=Lax", "Domain=shop.example"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }

    let (status, headers, _) = post(&[("origin", "https://evil.example")]);
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers.get("access-control-allow-credentials").is_none());
    assert!(headers.get("set-cookie").is_none(), "no cookie for a page the source does not list");

    // The tag reads the cookie's id back.
    let id = format!("{}/signal/id?writeKey={WRITE_KEY}", shop.serve.collector);
    let read = |origin: &str| {
        let (status, headers, text) = http.send("GET", &id, &[("origin", origin), ("cookie", "signal_aid=a1b2-c3")], Vec::new());
        assert_eq!(status, 200, "{text}");
        assert_eq!(headers["access-control-allow-origin"], origin);
        serde_json::from_str::<Value>(&text).expect("json")
    };
    assert_eq!(read("https://www.shop.example"), json!({"cookie": true, "anonymous_id": "a1b2-c3"}));
    assert_eq!(read("https://evil.example"), json!({"cookie": false}), "another origin learns nothing");
    let (status, _, _) = http.send("GET", &format!("{}/signal/id?writeKey=wrong", shop.serve.collector), &[], Vec::new());
    assert_eq!(status, 401);

    // Global Privacy Control: answered 200 (nothing to retry), nothing kept.
    let listed = || http.json(&format!("{}/api/events?limit=100", shop.serve.admin))["events"].as_array().map_or(0, Vec::len);
    let before = listed();
    let (status, _, text) = post(&[("sec-gpc", "1")]);
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&text).expect("json")["accepted"], 0);
    assert_eq!(listed(), before, "an event was kept under GPC");
}

#[test]
fn the_type_declarations_describe_the_readmes_calls() {
    let kit = browser_kit();
    let output = Command::new(kit.join("node_modules/.bin/tsc"))
        .args(["--noEmit", "--strict", "--lib", "es2020,dom", "tag-usage.ts"])
        .current_dir(kit)
        .output()
        .expect("tsc runs");
    assert!(
        output.status.success(),
        "tag/signal.d.ts does not type the calls in tests/browser/tag-usage.ts:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
