//! Helpers shared by the tests that run `signal` as a user would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `signal sandbox` process on a free loopback port; stopped when dropped.
pub struct SandboxProcess {
    pub child: Child,
    /// e.g. `http://127.0.0.1:41234`
    pub base: String,
}

impl SandboxProcess {
    pub fn start(args: &[&str]) -> SandboxProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_signal"))
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signal sandbox starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("banner");
        let base = banner.trim().rsplit(' ').next().expect("address").to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{banner}");
        // Keep reading so the sandbox never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        SandboxProcess { child, base }
    }

    /// GETs a sandbox URL path and parses the JSON answer.
    pub fn get(&self, path: &str) -> serde_json::Value {
        Http::new().json(&format!("{}{path}", self.base))
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        interrupt(self.child.id());
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGINT to a process, as Ctrl-C does.
pub fn interrupt(pid: u32) {
    let status = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// A `signal serve` process on free loopback ports; killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    /// e.g. `http://127.0.0.1:41234`
    pub collector: String,
    /// e.g. `http://127.0.0.1:41235`
    pub admin: String,
    /// What it printed at start.
    pub banner: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Reads its standard error until the process closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `signal serve` with `args` (plus free ports) and `env`, without the MoEngage variables
    /// of the environment running the tests.
    ///
    /// With `SIGNAL_TEST_ENGINE=postgres` (the second pass of `tests/run`), its queue is a
    /// PostgreSQL database instead, whatever storage the test named: one per configuration file
    /// or SQLite path, so that a test restarting the service finds its events again.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        let mut args: Vec<&str> = args.to_vec();
        let mut postgres = None;
        if on_postgres() {
            let place = args
                .windows(2)
                .find(|pair| pair[0] == "--config" || pair[0] == "--database")
                .map(|pair| pair[1].to_owned());
            if let Some(at) = args.iter().position(|arg| *arg == "--database") {
                args.drain(at..at + 2);
            }
            postgres = Some(postgres_database_for(place.as_deref()));
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_signal"));
        command.env_remove("SIGNAL_POSTGRES_URL");
        if let Some(url) = &postgres {
            command.env("SIGNAL_POSTGRES_URL", url);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("MOENGAGE_WORKSPACE_ID")
            .env_remove("MOENGAGE_DATA_API_KEY")
            .env_remove("MOENGAGE_DATA_CENTER")
            .env_remove("SIGNAL_WRITE_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("signal serve starts");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut errors = BufReader::new(child.stderr.take().expect("stderr"));
        let collected = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut line = String::new();
            while errors.read_line(&mut line).is_ok_and(|n| n > 0) {
                collected.lock().expect("lock").push_str(&line);
                line.clear();
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        let (mut collector, mut admin) = (None, None);
        while admin.is_none() {
            let mut line = String::new();
            if stdout.read_line(&mut line).expect("banner") == 0 {
                panic!("signal serve exited: {banner}{}", stderr.lock().expect("lock"));
            }
            let url = line.split_whitespace().nth(1).unwrap_or_default();
            if line.trim_start().starts_with("collector") {
                collector = Some(url.to_owned());
            }
            if line.trim_start().starts_with("admin") {
                admin = Some(url.trim_end_matches("/healthz,").to_owned());
            }
            banner.push_str(&line);
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let admin = admin.expect("admin address");
        ServeProcess {
            child,
            collector: collector.expect("collector address"),
            admin,
            banner,
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// What it has logged so far.
    pub fn logs(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits for it to exit, at most `limit`, and for everything it logged to be read: after it,
    /// [`ServeProcess::logs`] holds its last line.
    pub fn wait(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                if let Some(reader) = self.stderr_reader.take() {
                    reader.join().expect("the stderr reader ends when the process closes its stderr");
                }
                return status;
            }
            assert!(started.elapsed() < limit, "signal serve did not stop within {limit:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocking HTTP for tests: one runtime, one client.
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        sender::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        // Idle connections are dropped before the service closes them (10 s on the admin listener):
        // a request on a connection the server is closing would fail for the test's sake alone.
        let client = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(4))
            .build()
            .expect("an HTTP client");
        Http { runtime, client }
    }

    /// POSTs `body` with the write key as Basic username; the status and the JSON answer.
    pub fn post(
        &self,
        url: &str,
        write_key: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        self.runtime.block_on(async {
            let mut request = self.client.post(url).body(body);
            if let Some(key) = write_key {
                request = request.basic_auth(key, Some(""));
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("answer");
            let status = response.status().as_u16();
            let bytes = response.bytes().await.expect("body");
            (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
        })
    }

    /// GETs a URL: the status and the body as text.
    pub fn get(&self, url: &str) -> (u16, String) {
        self.runtime.block_on(async {
            let response = self.client.get(url).send().await.expect("answer");
            (response.status().as_u16(), response.text().await.expect("text"))
        })
    }

    /// An OPTIONS request, as a browser's preflight: the status and `Access-Control-Allow-Origin`.
    pub fn options(&self, url: &str) -> (u16, Option<String>) {
        self.runtime.block_on(async {
            let response = self
                .client
                .request(reqwest::Method::OPTIONS, url)
                .header("origin", "https://shop.example")
                .header("access-control-request-method", "POST")
                .send()
                .await
                .expect("answer");
            let origin = response
                .headers()
                .get("access-control-allow-origin")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            (response.status().as_u16(), origin)
        })
    }

    /// Any request: the status, the answer's headers and its body as text.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let (status, headers, body) = self.send_bytes(method, url, headers, body);
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// Any request: the status, the answer's headers and its body as bytes (as sent: not inflated).
    pub fn send_bytes(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        self.runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut request = self.client.request(method, url).body(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("answer");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.bytes().await.expect("body").to_vec())
        })
    }

    /// GETs a URL and parses JSON.
    pub fn json(&self, url: &str) -> serde_json::Value {
        serde_json::from_str(&self.get(url).1).expect("json")
    }
}

/// Polls `check` every 50 ms until it is true or `limit` passes.
pub fn eventually(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A loopback port where connections are refused, held for as long as the value lives: its socket
/// is bound but never listens, so no other process can take the port meanwhile (as one could after a
/// listener was bound and dropped). A server that reuses addresses may still bind it and listen.
pub struct RefusingPort {
    _socket: socket2::Socket,
    /// e.g. `127.0.0.1:41234`
    pub address: std::net::SocketAddr,
}

impl RefusingPort {
    pub fn new() -> RefusingPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
        socket.bind(&any_port.into()).expect("bind a loopback port");
        let address = socket.local_addr().expect("its address").as_socket().expect("an IP address");
        RefusingPort { _socket: socket, address }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Sends SIGTERM, as service managers do to stop a service.
pub fn terminate(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// Writes `signal.yaml` in `dir`: one source with `write_key`, delivering through the Retail preset
/// to workspace `WS1` of the sandbox at `sandbox` with `api_key`. Returns its path.
pub fn one_pipeline_config(dir: &std::path::Path, write_key: &str, sandbox: &str, api_key: &str) -> String {
    let path = dir.join("signal.yaml");
    let text = format!(
        "storage:\n  sqlite: signal.db\nsources:\n  site:\n    write_key: {write_key}\n\
         integrations:\n  shop:\n    workspace_id: WS1\n    data_api_key: {api_key}\n    data_center: \"01\"\n    endpoint: {sandbox}\n\
         pipelines:\n  site:\n    source: site\n    integration: shop\n    preset: retail\n"
    );
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

/// The value of the first `/metrics` line that starts with `line_start`, or 0.
pub fn metric(http: &Http, serve: &ServeProcess, line_start: &str) -> u64 {
    let (_, text) = http.get(&format!("{}/metrics", serve.admin));
    text.lines()
        .find(|line| line.starts_with(line_start))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// The integration document's "Order Completed" event, as a site sends it.
pub fn document_event() -> serde_json::Value {
    serde_json::json!({"type": "track", "event": "Order Completed", "user_id": "u_8842",
           "traits": {"email": "jane@example.com", "phone": "+447700900123"},
           "properties": {"order_id": "ORD-1001", "revenue": 89.99, "currency": "GBP", "coupon": "WELCOME10"}})
}

/// The document's payload for that event: what MoEngage must receive.
pub fn document_payload() -> serde_json::Value {
    serde_json::json!({"type": "event", "customer_id": "u_8842",
           "user_identifiers": {"u_em": "jane@example.com", "u_mb": "+447700900123"},
           "actions": [{"action": "Order Completed", "platform": "web",
                        "attributes": {"order_id": "ORD-1001", "value": 89.99, "currency": "GBP", "coupon": "WELCOME10"}}]})
}

/// Collects a child's standard output, one JSON record per line (a line that is not JSON becomes
/// `{"kind": "text", "text": LINE}`), on a thread of its own.
pub fn json_lines(stdout: std::process::ChildStdout) -> std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> {
    let records = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = records.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let record = serde_json::from_str(&line)
                .unwrap_or_else(|_| serde_json::json!({"kind": "text", "text": line}));
            collected.lock().expect("lock").push(record);
        }
    });
    records
}

/// The `python` of a virtual environment under the test target's folder, named `name`, with the
/// packages pinned in `requirements` (relative to the repository) installed from PyPI. It is made
/// again only when the requirements change.
pub fn python_with(name: &str, requirements: &str) -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    let requirements = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(requirements);
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).expect("the requirements file");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let made = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).status().expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .expect("pip runs");
        assert!(installed.success(), "pip install -r {} failed", requirements.display());
        std::fs::write(&stamp, wanted).expect("write the stamp");
    }
    python
}

/// True in the pass of the service's tests that runs them on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("SIGNAL_TEST_ENGINE").is_ok_and(|engine| engine == "postgres")
}

/// A database of its own on the PostgreSQL server the tests run with (`SIGNAL_TEST_POSTGRES`,
/// set by `tests/run`, which starts a throwaway cluster): its URL.
pub fn postgres_database() -> String {
    postgres_database_for(None)
}

/// The database for `place` (a configuration file or an SQLite path: the same place, the same
/// database, created the first time), or a new one.
fn postgres_database_for(place: Option<&str>) -> String {
    use std::hash::{Hash as _, Hasher as _};
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let server = std::env::var("SIGNAL_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("SIGNAL_TEST_POSTGRES is not set: run the tests with `bash tests/run`, which starts a throwaway PostgreSQL")
    });
    let name = match place {
        Some(place) => {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::path::Path::new(place).parent().unwrap_or(std::path::Path::new(place)).hash(&mut hasher);
            format!("signal_at_{:016x}", hasher.finish())
        }
        None => format!("signal_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    };
    let psql = |sql: &str| {
        let output = Command::new("psql")
            .args([&format!("{server}/postgres"), "-qtA", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    if psql(&format!("SELECT 1 FROM pg_database WHERE datname = '{name}'")) != "1" {
        psql(&format!("CREATE DATABASE {name}"));
    }
    format!("{server}/{name}")
}

/// Sends SIGKILL: the process ends at once, as in a crash.
pub fn kill_9(pid: u32) {
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success());
}

/// The database a service whose configuration (or SQLite file) is in `dir` keeps its queue in, on
/// the PostgreSQL pass.
fn postgres_database_at(dir: &std::path::Path) -> String {
    postgres_database_for(Some(&dir.join("signal.yaml").display().to_string()))
}

/// Rows of `sql` (text columns) on the queue of the service in `dir`, whichever engine it is on.
pub fn stored_rows(dir: &std::path::Path, sql: &str, columns: usize) -> Vec<Vec<Option<String>>> {
    const NULL: &str = "\u{1}null";
    if on_postgres() {
        let output = Command::new("psql")
            .args([&postgres_database_at(dir), "-qtA", "-F", "\u{1f}", "-P", &format!("null={NULL}"), "-c", sql])
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        return String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split('\u{1f}').map(|value| (value != NULL).then(|| value.to_owned())).collect())
            .collect();
    }
    let database = rusqlite::Connection::open(dir.join("signal.db")).expect("open the queue");
    let mut statement = database.prepare(sql).expect("query");
    statement
        .query_map([], |row| (0..columns).map(|index| row.get::<_, Option<String>>(index)).collect())
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read")
}

/// The payloads the queue of the service in `dir` keeps, as stored, whichever engine it is on:
/// `filter` is SQL after `FROM events`.
pub fn stored_payloads(dir: &std::path::Path, filter: &str) -> Vec<String> {
    let sql = format!("SELECT payload FROM events {filter}");
    if on_postgres() {
        let output = Command::new("psql")
            .args([&postgres_database_at(dir), "-qtA", "-c", &sql])
            .output()
            .expect("psql runs");
        assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
        return String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    }
    let database = rusqlite::Connection::open(dir.join("signal.db")).expect("open the queue");
    let mut statement = database.prepare(&sql).expect("query");
    statement.query_map([], |row| row.get(0)).expect("rows").collect::<Result<_, _>>().expect("payloads")
}

/// Everything the queue of the service in `dir` has written, as bytes: its SQLite files, or a
/// dump of its PostgreSQL database.
pub fn stored_bytes(dir: &std::path::Path) -> Vec<u8> {
    if on_postgres() {
        let output = Command::new("pg_dump").arg(postgres_database_at(dir)).output().expect("pg_dump runs");
        assert!(output.status.success(), "pg_dump: {}", String::from_utf8_lossy(&output.stderr));
        return output.stdout;
    }
    let mut stored = Vec::new();
    for file in ["signal.db", "signal.db-wal"] {
        stored.extend(std::fs::read(dir.join(file)).unwrap_or_default());
    }
    stored
}

/// The folder with the browser tests' pages, drivers and npm packages, once they are installed; Chromium
/// must be there.
pub fn browser_kit() -> &'static std::path::Path {
    static KIT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    KIT.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        if !dir.join("node_modules/playwright-core/package.json").exists() {
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm runs (Node.js is needed for the browser tests; `bash tests/run` installs it)");
            assert!(status.success(), "npm ci in tests/browser failed");
        }
        let chromium = std::env::var("SIGNAL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromium).exists(),
            "{chromium} is missing: install Debian's chromium (`bash tests/run` does), or set SIGNAL_CHROMIUM"
        );
        dir
    })
}
