//! The Event Debugger in the terminal: `signal events` lists events with their fates (and follows
//! new ones), `signal replay` queues failed or paused events again. Both speak to a running
//! `signal serve` through its admin API.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Where the admin API is, and the token it may need.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin listener of `signal serve`.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// The `admin_token` of Signal's configuration, when it has one.
    #[arg(long, value_name = "TOKEN", env = "SIGNAL_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Options of `signal events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Only events in this state: pending, retrying, delivered, dropped, failed or paused.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Only events of this name (`Order Completed`, `page`, `identify`).
    #[arg(long, value_name = "EVENT")]
    event: Option<String>,
    /// Only events of this `user_id`.
    #[arg(long, value_name = "ID")]
    customer_id: Option<String>,
    /// Only events of this pipeline.
    #[arg(long, value_name = "NAME")]
    pipeline: Option<String>,
    #[command(flatten)]
    time: TimeArgs,
    /// How many of the newest events to show (1 to 1,000).
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// Keep going: show each new event and each change of state as it happens, until Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,
    /// One JSON object per line, as the API gives it, instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `signal replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Which events to queue again: `failed` (e.g. while the destination was down) or `paused`.
    #[arg(long, value_name = "STATE")]
    state: ReplayState,
    /// Only this pipeline's.
    #[arg(long, value_name = "NAME")]
    pipeline: Option<String>,
    #[command(flatten)]
    time: TimeArgs,
}

/// When the events were received.
#[derive(Debug, clap::Args)]
pub struct TimeArgs {
    /// Only events received since then: an RFC 3339 time, or a duration ago such as `10m` or `2h`.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events received before then: an RFC 3339 time, or a duration ago.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

/// The states a replay takes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReplayState {
    /// Refused for good, or failing when the retry window closed.
    Failed,
    /// Waiting for a paused integration.
    Paused,
}

impl ReplayState {
    fn as_str(self) -> &'static str {
        match self {
            ReplayState::Failed => "failed",
            ReplayState::Paused => "paused",
        }
    }
}

/// Events one replay request queues again; each step answers how many remain, for the bar.
const REPLAY_STEP: u64 = 1000;

/// A failure to tell the user, and the exit code.
struct Failure(String);

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure(message)
    }
}

struct Admin {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Admin {
    fn new(args: &AdminArgs) -> Result<Admin, Failure> {
        sender::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| Failure(format!("cannot build an HTTP client: {error}")))?;
        if args.token.as_deref().is_some_and(|token| token.chars().any(char::is_control)) {
            return Err(Failure("the admin token has a line break or another control character in it: give it on one line".into()));
        }
        let base = args.admin.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(Failure(format!("--admin is `{base}`: give a URL such as http://127.0.0.1:9090")));
        }
        Ok(Admin { base, token: args.token.clone(), client })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends, and reads a JSON answer; every failure is said in the user's terms.
    async fn send(&self, request: reqwest::RequestBuilder, timeout: Option<Duration>) -> Result<reqwest::Response, Failure> {
        let request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        let response = request.send().await.map_err(|error| {
            // The innermost cause says it plainly: `Connection refused (os error 111)`.
            let mut cause = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(inner) = source {
                cause = inner.to_string();
                source = inner.source();
            }
            Failure(format!(
                "cannot reach Signal's admin listener at {}: {cause}. Is `signal serve` running? Pass --admin URL if it listens elsewhere",
                self.base
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let said = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|answer| answer.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| status.to_string());
        let advice = match status.as_u16() {
            401 if self.token.is_none() => " (pass --token, or set SIGNAL_ADMIN_TOKEN)",
            401 => " (check --token or SIGNAL_ADMIN_TOKEN)",
            404 => " (is that Signal's admin listener? it is `admin_listen` in the configuration)",
            _ => "",
        };
        Err(Failure(format!("the admin API answered {}: {said}{advice}", status.as_u16())))
    }
}

/// The most of an answer read: a listing of 1,000 events is far less.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Reads a JSON answer, at most [`MAX_ANSWER_BYTES`] of it.
async fn read_json(mut response: reqwest::Response) -> Result<Value, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|error| Failure(format!("the admin API's answer broke off: {error}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(Failure("the admin API's answer is larger than any Signal gives: is that Signal?".into()));
        }
    }
    serde_json::from_slice(&body).map_err(|error| Failure(format!("the admin API's answer is not JSON: {error}")))
}

/// A time given on the command line: RFC 3339, or a duration ago (`10m`).
fn time_option(name: &str, text: &Option<String>) -> Result<Option<String>, Failure> {
    let Some(text) = text else { return Ok(None) };
    if let Some(time) = blueprint::event::parse_time(text) {
        return Ok(Some(time.to_string()));
    }
    let ago = config::parse_duration(text).ok_or_else(|| {
        Failure(format!("--{name} is `{text}`: give an RFC 3339 time (2026-11-28T10:15:00Z) or a duration ago (10m, 2h, 7d)"))
    })?;
    let ago = jiff::SignedDuration::try_from(ago).map_err(|error| Failure(format!("--{name}: {error}")))?;
    let then = jiff::Timestamp::now().checked_sub(ago).map_err(|error| Failure(format!("--{name}: {error}")))?;
    Ok(Some(then.to_string()))
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

pub fn run_events(args: &EventsArgs) -> ExitCode {
    let runtime = match crate::runtime(crate::Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    finish(runtime.block_on(events(args)))
}

pub fn run_replay(args: &ReplayArgs) -> ExitCode {
    let runtime = match crate::runtime(crate::Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    finish(runtime.block_on(replay(args)))
}

async fn events(args: &EventsArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.admin)?;
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("state", &args.state),
        ("event", &args.event),
        ("customer_id", &args.customer_id),
        ("pipeline", &args.pipeline),
    ] {
        if let Some(value) = value {
            filters.push((name, value.clone()));
        }
    }
    let mut listing = filters.clone();
    if let Some(since) = time_option("since", &args.time.since)? {
        listing.push(("since", since));
    }
    if let Some(until) = time_option("until", &args.time.until)? {
        listing.push(("until", until));
    }
    listing.push(("limit", args.limit.to_string()));
    let style = Style::new(args.json);
    // Follow from before the listing, so that nothing between the two is missed.
    let stream = if args.follow {
        let request = admin.request(reqwest::Method::GET, &format!("/api/events/stream{}", query(&filters)));
        Some(admin.send(request, None).await?)
    } else {
        None
    };
    let request = admin.request(reqwest::Method::GET, &format!("/api/events{}", query(&listing)));
    let answer = read_json(admin.send(request, Some(Duration::from_secs(30))).await?).await?;
    let lines = answer.get("events").and_then(Value::as_array).cloned().ok_or_else(|| {
        Failure(format!("the answer at {} has no `events` list: is that Signal's admin listener?", admin.base))
    })?;
    let mut out = std::io::stdout().lock();
    if !args.json {
        if lines.is_empty() && !args.follow {
            eprintln!("no events{}", if filters.is_empty() && args.time.since.is_none() { " yet" } else { " match" });
            return Ok(());
        }
        let _ = writeln!(out, "{}", style.header());
    }
    // Oldest first: the newest ends next to the prompt, and followed lines continue below it.
    for line in lines.iter().rev() {
        let _ = writeln!(out, "{}", style.line(line));
    }
    let _ = out.flush();
    drop(out);
    let Some(mut stream) = stream else { return Ok(()) };
    let mut pending = Vec::new();
    loop {
        let chunk = stream
            .chunk()
            .await
            .map_err(|error| Failure(format!("the live stream broke off: {error}")))?;
        let Some(chunk) = chunk else {
            return Err(Failure("the live stream ended: `signal serve` stopped".into()));
        };
        pending.extend_from_slice(&chunk);
        if pending.len() > MAX_ANSWER_BYTES {
            return Err(Failure("the live stream sent a line larger than any Signal sends: is that Signal?".into()));
        }
        while let Some(end) = find_blank_line(&pending) {
            let message: Vec<u8> = pending.drain(..end).collect();
            let text = String::from_utf8_lossy(&message);
            let mut kind = "message";
            let mut data = String::new();
            for field in text.lines() {
                if let Some(value) = field.strip_prefix("event:") {
                    kind = if value.trim() == "record" { "record" } else { "other" };
                } else if let Some(value) = field.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            match (kind, serde_json::from_str::<Value>(&data)) {
                ("record", Ok(line)) => println!("{}", style.line(&line)),
                ("other", Ok(lagged)) => {
                    let missed = lagged.get("missed").and_then(Value::as_u64).unwrap_or(0);
                    eprintln!("({missed} changes went by faster than they could be shown)");
                }
                _ => {}
            }
        }
    }
}

/// `?name=value&...`, each value percent-encoded.
fn query(pairs: &[(&str, String)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
                _ => format!("%{byte:02X}"),
            })
            .collect()
    };
    let joined: Vec<String> = pairs.iter().map(|(name, value)| format!("{name}={}", encode(value))).collect();
    if joined.is_empty() { String::new() } else { format!("?{}", joined.join("&")) }
}

/// The end of the first SSE message (after its blank line), if a whole one has arrived.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|at| {
        if bytes[at..].starts_with(b"\n\n") {
            Some(at + 2)
        } else if bytes[at..].starts_with(b"\r\n\r\n") {
            Some(at + 4)
        } else {
            None
        }
    })
}

/// How lines are printed: a table for people, JSON lines for programs.
struct Style {
    json: bool,
    colour: bool,
}

impl Style {
    fn new(json: bool) -> Style {
        let colour = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Style { json, colour }
    }

    fn header(&self) -> String {
        format!(
            "{:<23}  {:<9}  {:<18}  {:<6}  {:<24}  {:<16}  {:<12}  {}",
            "RECEIVED", "STATE", "CODE", "STATUS", "EVENT", "CUSTOMER", "PIPELINE", "HINT"
        )
    }

    fn line(&self, record: &Value) -> String {
        if self.json {
            return record.to_string();
        }
        let text = |name: &str| -> String {
            match record.get(name) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => "-".into(),
                Some(other) => other.to_string(),
            }
        };
        let received = record
            .get("received_at")
            .and_then(Value::as_str)
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
            .map_or_else(|| text("received_at"), |time| time.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string());
        let state = text("state");
        let shown_state = format!("{state:<9}");
        let shown_state = if self.colour {
            let colour = match state.as_str() {
                "delivered" => "32",
                "failed" => "31",
                "paused" => "33",
                "retrying" => "35",
                "pending" => "36",
                _ => "2",
            };
            format!("\u{1b}[{colour}m{shown_state}\u{1b}[0m")
        } else {
            shown_state
        };
        format!(
            "{received:<23}  {shown_state}  {:<18}  {:<6}  {:<24}  {:<16}  {:<12}  {}",
            clip(&text("code"), 18),
            clip(&text("status"), 6),
            clip(&text("event"), 24),
            clip(&text("customer_id"), 16),
            clip(&text("pipeline"), 12),
            printable(record.get("hint").and_then(Value::as_str).unwrap_or_default())
        )
    }
}

fn clip(text: &str, width: usize) -> String {
    let text = printable(text);
    if text.chars().count() <= width {
        return text;
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// Text from events (anyone who can send one) as the terminal may show it: control characters,
/// which could move the cursor, retitle the window or write the clipboard, are shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

async fn replay(args: &ReplayArgs) -> Result<(), Failure> {
    let admin = Admin::new(&args.admin)?;
    let state = args.state.as_str();
    let mut request = serde_json::json!({"state": state, "limit": REPLAY_STEP});
    if let Some(pipeline) = &args.pipeline {
        request["pipeline"] = pipeline.clone().into();
    }
    if let Some(since) = time_option("since", &args.time.since)? {
        request["since"] = since.into();
    }
    if let Some(until) = time_option("until", &args.time.until)? {
        request["until"] = until.into();
    }
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut requeued = 0u64;
    loop {
        let step = admin.request(reqwest::Method::POST, "/api/replay").json(&request);
        let answer = read_json(admin.send(step, Some(Duration::from_secs(60))).await?).await?;
        if answer.get("requeued").and_then(Value::as_u64).is_none() {
            return Err(Failure(format!("the answer at {} has no `requeued` count: is that Signal's admin listener?", admin.base)));
        }
        let done = answer.get("requeued").and_then(Value::as_u64).unwrap_or(0);
        let remaining = answer.get("remaining").and_then(Value::as_u64).unwrap_or(0);
        // The next step continues where this one ended.
        if let Some(after) = answer.get("after").and_then(Value::as_i64) {
            request["after"] = after.into();
        }
        requeued += done;
        if bar.is_none() && remaining > 0 && std::io::stderr().is_terminal() {
            let new = indicatif::ProgressBar::new(requeued + remaining);
            if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} queued again") {
                new.set_style(style);
            }
            bar = Some(new);
        }
        if let Some(bar) = &bar {
            bar.set_length(requeued + remaining);
            bar.set_position(requeued);
        } else if remaining > 0 {
            eprintln!("progress: {requeued} queued again, {remaining} to go");
        }
        if done == 0 || remaining == 0 {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if requeued == 0 {
        println!("no {state} events to replay");
    } else {
        println!(
            "{requeued} {state} events queued again; follow them with: signal events --follow{}",
            if args.admin.admin == "http://127.0.0.1:9090" { String::new() } else { format!(" --admin {}", args.admin.admin) }
        );
    }
    Ok(())
}
