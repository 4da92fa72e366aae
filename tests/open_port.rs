//! The collector on an open port, tried as an attacker and a careless client would, over raw
//! sockets against `signal serve`: half-sent headers and stalled bodies are cut off, idle
//! connections do not starve others, the connection limit holds, unauthenticated bodies are read
//! only as far as a beacon's, and SIGTERM ends the process whatever the clients do.

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Http, SandboxProcess, ServeProcess, eventually, terminate};

const WRITE_KEY: &str = "site-key";

/// `signal serve` with the given `collector:` settings (YAML lines, indented by two spaces).
fn start(collector: &str) -> (tempfile::TempDir, SandboxProcess, ServeProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox = SandboxProcess::start(&["--workspace", "WS1:data-key"]);
    let path = dir.path().join("signal.yaml");
    let text = format!(
        "storage:\n  sqlite: signal.db\ncollector:\n{collector}sources:\n  site:\n    write_key: {WRITE_KEY}\n\
         integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: data-key\n    data_center: \"01\"\n    endpoint: {}\n\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n",
        sandbox.base
    );
    std::fs::write(&path, text).expect("write the configuration");
    let serve = ServeProcess::start(&["--config", &path.display().to_string()], &[]);
    (dir, sandbox, serve)
}

fn connect(serve: &ServeProcess) -> TcpStream {
    let address = serve.collector.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream
}

/// Everything the server sends until it closes the connection (or 20 s pass).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// One whole answer on a kept-alive connection: its head and `Content-Length` bytes of body.
fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).expect("an answer");
        assert!(read > 0, "closed before answering: {text}");
        received.extend_from_slice(&chunk[..read]);
    }
}

/// The head of an authorized `POST /v1/track` whose body will be `length` bytes.
fn authorized_head(length: usize) -> String {
    format!("POST /v1/track HTTP/1.1\r\nHost: signal\r\nAuthorization: {}\r\nContent-Length: {length}\r\n\r\n", basic())
}

fn basic() -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:")))
}

#[test]
fn half_sent_headers_and_stalled_bodies_are_cut_off() {
    let (_dir, _sandbox, serve) = start("  header_timeout: 1s\n  body_timeout: 1s\n");
    // Half the headers, then nothing: the connection is closed once the header timeout passes.
    let mut slow_headers = connect(&serve);
    slow_headers.write_all(b"POST /v1/track HTTP/1.1\r\nHost: signal\r\n").expect("write");
    let started = Instant::now();
    let answer = read_to_close(&mut slow_headers);
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}: {answer}", started.elapsed());

    // The headers and half the body, then nothing: 408, and the connection is closed.
    let mut slow_body = connect(&serve);
    slow_body.write_all(format!("{}{{\"event\":", authorized_head(200)).as_bytes()).expect("write");
    let started = Instant::now();
    let answer = read_to_close(&mut slow_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_lowercase().contains("connection: close"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());

    // A body trickled a byte at a time is cut off too: the limit is for the whole body.
    let mut trickle = connect(&serve);
    trickle.write_all(authorized_head(200).as_bytes()).expect("write");
    let started = Instant::now();
    let mut cut = false;
    for _ in 0..40 {
        if trickle.write_all(b" ").is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let answer = read_to_close(&mut trickle);
    assert!(cut || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "cut after {:?}", started.elapsed());

    // Meanwhile the collector serves everyone else.
    let http = Http::new();
    assert_eq!(http.get(&format!("{}/healthz", serve.admin)).0, 200);
}

#[test]
fn an_idle_connection_has_its_own_limit_apart_from_the_headers() {
    let (_dir, _sandbox, serve) = start("  header_timeout: 1s\n  idle_timeout: 3s\n");
    // A first request, then idle past the header limit, then another: still served.
    let mut kept = connect(&serve);
    let request = b"GET /v1/nothing HTTP/1.1\r\nHost: signal\r\nContent-Length: 0\r\n\r\n";
    kept.write_all(request).expect("write");
    let answer = read_response(&mut kept);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    std::thread::sleep(Duration::from_millis(1_600));
    kept.write_all(request).expect("write");
    let answer = read_response(&mut kept);
    assert!(answer.starts_with("HTTP/1.1 404"), "served after 1.6 s idle: {answer}");
    let answered = Instant::now();
    // A connection opened and never used gets the header limit, not the idle one.
    let mut silent = connect(&serve);
    let started = Instant::now();
    let _ = read_to_close(&mut silent);
    assert!(started.elapsed() < Duration::from_millis(2_800), "closed after {:?}", started.elapsed());
    // The kept-alive one, idle again since its answer: closed once the idle limit passes.
    let _ = read_to_close(&mut kept);
    let waited = answered.elapsed();
    assert!(waited > Duration::from_millis(2_000) && waited < Duration::from_secs(8), "closed after {waited:?}");
}

#[test]
fn idle_connections_at_the_limit_make_new_ones_wait_not_fail() {
    let (_dir, _sandbox, serve) = start("  header_timeout: 30s\n  max_connections: 3\n");
    let idle: Vec<TcpStream> = (0..3).map(|_| connect(&serve)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // A fourth connection is accepted by the kernel but not served while three are open.
    let mut waiting = connect(&serve);
    waiting.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
    waiting
        .write_all(b"GET /v1/nothing HTTP/1.1\r\nHost: signal\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 12];
    assert!(waiting.read(&mut first).is_err(), "served beyond max_connections");
    drop(idle);
    waiting.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let answer = read_to_close(&mut waiting);
    assert!(answer.starts_with("HTTP/1.1 404"), "served once a connection closed: {answer}");
    assert!(serve.logs().contains("as many connections open as it takes"), "{}", serve.logs());
}

#[test]
fn a_body_without_a_key_is_read_only_as_far_as_a_beacon() {
    let (_dir, _sandbox, serve) = start("  max_request_bytes: 8388608\n");
    let mut flood = connect(&serve);
    let length = 4 * 1024 * 1024;
    let head = format!("POST /v1/batch HTTP/1.1\r\nHost: signal\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n");
    flood.write_all(head.as_bytes()).expect("write");
    // The client keeps sending; the server stops reading after 64 KB, answers 401 and closes (the
    // answer itself may be lost to the reset of a connection with unread data, so the metric says).
    let started = Instant::now();
    let _ = flood.write_all(&vec![b' '; 256 * 1024]);
    let answer = read_to_close(&mut flood);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused after {:?}", started.elapsed());
    let http = Http::new();
    eventually(Duration::from_secs(5), "the refusal counted", || {
        common::metric(&http, &serve, "signal_requests_rejected_total{path=\"events\",status=\"401\"}") == 1
    });
    // A beacon-sized body with its key inside is still read.
    let beacon = serde_json::json!({"writeKey": WRITE_KEY, "batch": [{"event": "Logged In", "userId": "u"}]});
    let (status, _) = http.post(&format!("{}/v1/batch", serve.collector), None, &[], beacon.to_string().into_bytes());
    assert_eq!(status, 200);
}

#[test]
fn sigterm_ends_the_process_whatever_the_clients_do() {
    let (_dir, _sandbox, mut serve) = start("  header_timeout: 30s\n  body_timeout: 30s\n  shutdown_grace: 2s\n");
    let http = Http::new();
    // One client idle, one stuck half way through its headers, one stuck in its body.
    let _idle = connect(&serve);
    let mut half_headers = connect(&serve);
    half_headers.write_all(b"POST /v1/track HTTP/1.1\r\nHost: signal\r\n").expect("write");
    let mut stuck_body = connect(&serve);
    stuck_body.write_all(format!("{}{{", authorized_head(100)).as_bytes()).expect("write");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http.get(&format!("{}/readyz", serve.admin)).0, 200);

    let started = Instant::now();
    terminate(serve.child.id());
    eventually(Duration::from_secs(2), "/readyz to say 503 at once", || {
        http.get(&format!("{}/readyz", serve.admin)).0 != 200
    });
    let status = serve.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}: {}", serve.logs());
    assert!(started.elapsed() < Duration::from_secs(10), "stopped after {:?}", started.elapsed());
    assert!(serve.logs().contains("stopped cleanly"), "{}", serve.logs());
}

#[test]
fn a_second_instance_on_the_same_queue_file_stops_before_touching_it() {
    let (dir, _sandbox, serve) = start("");
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_signal"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("signal.yaml"))
        .env_remove("SIGNAL_WRITE_KEY")
        .output()
        .expect("signal runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another `signal serve`"), "{stderr}");
    assert!(!stderr.contains("queued again"), "it recovered nothing: {stderr}");
    let http = Http::new();
    assert_eq!(http.get(&format!("{}/readyz", serve.admin)).0, 200, "the first one serves on");
}

#[test]
fn health_checks_are_answered_while_idle_connections_fill_the_admin_listener() {
    let (_dir, _sandbox, serve) = start("");
    let admin = serve.admin.trim_start_matches("http://").to_owned();
    let ask = |path: &str| {
        let mut stream = TcpStream::connect(&admin).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").expect("ask");
        read_to_close(&mut stream)
    };
    // An operator's page, kept alive and following the live feed, is busy: no flood closes it.
    let mut following = TcpStream::connect(&admin).expect("connect");
    following.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(following, "GET /api/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("follow");
    let mut head = [0u8; 12];
    following.read_exact(&mut head).expect("the stream's head");
    assert_eq!(&head, b"HTTP/1.1 200");

    // More idle connections than the admin listener serves (256), held open, and every one the
    // listener closes opened again at once, as a flood would.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flood = {
        let (admin, flooding) = (admin.clone(), flooding.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let mut opened = 0usize;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                // A closed connection reads as the end of its stream.
                held.retain(|stream| {
                    stream.set_nonblocking(true).ok();
                    !matches!((&*stream).read(&mut [0u8; 1]), Ok(0))
                });
                while held.len() < 300 {
                    let Ok(stream) = TcpStream::connect(&admin) else { break };
                    held.push(stream);
                    opened += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            opened
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for round in 0..30 {
        let healthz = ask("/healthz");
        assert!(healthz.starts_with("HTTP/1.1 200") && healthz.ends_with("ok\n"), "round {round}: {healthz:?}");
        let readyz = ask("/readyz");
        assert!(readyz.starts_with("HTTP/1.1 200"), "round {round}: {readyz:?}");
    }
    // The debugger's API too: a newcomer that asks takes the place of an idle connection.
    let events = ask("/api/events");
    assert!(events.starts_with("HTTP/1.1 200") && events.contains("\"events\""), "{events:?}");
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let opened = flood.join().expect("the flood");
    assert!(opened > 300, "the listener closed idle connections to make room ({opened} opened)");
    // The operator sees it: counted, and said once in the log.
    let http = Http::new();
    let evicted = common::metric(&http, &serve, "signal_admin_connections_shed_total{reason=\"evicted\"}");
    assert!(evicted >= 40, "{evicted} evictions counted");
    assert_eq!(serve.logs().matches("the admin listener is full").count(), 1, "{}", serve.logs());

    // The live feed was never closed: an event sent now reaches it.
    let (status, _) = http.post(
        &format!("{}/v1/track", serve.collector),
        Some(WRITE_KEY),
        &[("Content-Type", "application/json")],
        br#"{"type":"track","event":"Order Completed","userId":"u_followed","properties":{"order_id":"F-1"}}"#.to_vec(),
    );
    assert_eq!(status, 200);
    let mut streamed = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&streamed).contains("u_followed") && Instant::now() < deadline {
        match following.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => streamed.extend_from_slice(&chunk[..read]),
            Err(_) => {}
        }
    }
    assert!(String::from_utf8_lossy(&streamed).contains("u_followed"), "{}", String::from_utf8_lossy(&streamed));
}
