//! `signal send`: maps a file of events with a blueprint and delivers them to MoEngage — a backfill,
//! or the integration document's "Testing" steps against `signal sandbox`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use blueprint::Mapper;
use delivery::{Fate, State};
use moengage::{ApiKey, Credentials, DataCenter, MoEngageDestination};
use sender::{Destination, HttpSender, RetryPolicy};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::map::MappingArgs;

/// Options of `signal send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    #[command(flatten)]
    mapping: MappingArgs,
    /// The events to send: NDJSON, one JSON object per line (`-` reads standard input).
    #[arg(long, value_name = "FILE")]
    events: PathBuf,
    /// The MoEngage Workspace ID (MoEngage: Settings → Account → APIs).
    #[arg(long, env = "MOENGAGE_WORKSPACE_ID", value_name = "ID")]
    workspace_id: Option<String>,
    /// The Data API key, from the Data tile. Prefer the environment variable: a flag is visible to
    /// other users of the machine in the process list.
    #[arg(long, env = "MOENGAGE_DATA_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
    /// The data center: 01–06 or 101, the number in your dashboard URL (dashboard-01 → 01).
    #[arg(long, env = "MOENGAGE_DATA_CENTER", value_name = "DC")]
    data_center: Option<String>,
    /// Send to this base URL instead of MoEngage, e.g. http://127.0.0.1:8088 for `signal sandbox`.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Events per minute, at most MoEngage's 30,000 (lower it to leave room for other senders).
    #[arg(long, value_name = "N", default_value_t = moengage::EVENTS_PER_MINUTE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(moengage::EVENTS_PER_MINUTE)))]
    per_minute: u32,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// How long an event is retried after its first attempt (429, 5xx, timeouts, connection
    /// errors) before it counts as failed, e.g. 30s, 10m, 2h.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    retry_window: Duration,
    /// How long to wait for each answer, e.g. 30s.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write every event that was not delivered (failed, not sent, interrupted) to this NDJSON file,
    /// to send again with --events.
    #[arg(long, value_name = "FILE")]
    unsent: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    config::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration; write e.g. 30s, 10m, 2h or 1h 30m"))
}

/// Where events go, checked before anything is read.
struct Target {
    destination: Arc<dyn Destination>,
    shown_as: String,
}

impl Target {
    fn from_args(args: &SendArgs) -> Result<Target, String> {
        let workspace_id = args.workspace_id.clone().ok_or(
            "no Workspace ID: set MOENGAGE_WORKSPACE_ID or pass --workspace-id (MoEngage: Settings → Account → APIs)",
        )?;
        let api_key = args.api_key.clone().ok_or(
            "no Data API key: set MOENGAGE_DATA_API_KEY (MoEngage: Settings → Account → APIs, the Data tile)",
        )?;
        let data_center: DataCenter = match (&args.data_center, &args.endpoint) {
            (Some(text), _) => text.parse().map_err(|error| format!("{error}"))?,
            // The data centre only chooses the host, which --endpoint replaces.
            (None, Some(_)) => "01".parse().map_err(|error| format!("{error}"))?,
            (None, None) => {
                return Err(
                    "no data center: set MOENGAGE_DATA_CENTER or pass --data-center (01–06 or 101, from your dashboard URL), or --endpoint for a sandbox".into(),
                );
            }
        };
        let credentials = Credentials::new(workspace_id, ApiKey::new(api_key), data_center)
            .map_err(|error| error.to_string())?;
        let endpoint = match args.endpoint.as_deref() {
            None => None,
            Some(text) if moengage::is_endpoint_base(text) => Some(text),
            Some(text) => {
                return Err(format!(
                    "--endpoint `{text}` is not an http:// or https:// URL; for a sandbox write e.g. http://127.0.0.1:8088"
                ));
            }
        };
        let destination = MoEngageDestination::new(credentials, endpoint, args.per_minute)
            .with_object_data(args.mapping.object_data);
        let shown_as = destination.shown_as();
        Ok(Target { destination: Arc::new(destination), shown_as })
    }
}

pub fn run(args: &SendArgs) -> ExitCode {
    let target = match Target::from_args(args) {
        Ok(target) => target,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let mapper = match args.mapping.mapper() {
        Ok(mapper) => mapper,
        Err(code) => return code,
    };
    let input = match Input::open(&args.events) {
        Ok(input) => input,
        Err(error) => {
            eprintln!("error: cannot read events from {}: {error}", args.events.display());
            return ExitCode::FAILURE;
        }
    };
    let unsent = match args.unsent.as_deref().map(File::create).transpose() {
        Ok(file) => file.map(BufWriter::new),
        Err(error) => {
            let path = args.unsent.as_deref().unwrap_or(Path::new("")).display();
            eprintln!("error: cannot write --unsent {path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let policy = RetryPolicy { window: args.retry_window, ..RetryPolicy::default() };
    let sender = match HttpSender::new(policy, args.timeout) {
        Ok(sender) => sender,
        Err(error) => {
            eprintln!("error: cannot set up HTTP: {error}");
            return ExitCode::FAILURE;
        }
    };
    // One thread: at MoEngage's 500 events/s mapping and sending need a fraction of a core, and
    // threads handing work to each other would cost more than the work.
    let runtime = match crate::runtime(crate::Threads::One) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let run = Run {
        mapper,
        sender: Arc::new(sender),
        destination: target.destination,
        concurrency: usize::from(args.concurrency),
        unsent,
    };
    let stop = {
        let _inside = runtime.enter();
        crate::stop::requested()
    };
    eprintln!("sending {} to {}", input.name, target.shown_as);
    let report = runtime.block_on(run.send_all(input, stop));
    match report {
        Ok(report) => {
            print!("{}", report.summary(&target.shown_as, args.unsent.as_deref()));
            report.exit_code()
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The events file, read on its own thread so that a slow input never stalls delivery.
struct Input {
    name: String,
    reader: Box<dyn BufRead + Send>,
    /// Lines in the file, for the ETA; unknown for standard input.
    total: Option<u64>,
}

impl Input {
    fn open(path: &Path) -> io::Result<Input> {
        if path == Path::new("-") {
            return Ok(Input {
                name: "standard input".into(),
                reader: Box::new(BufReader::new(io::stdin())),
                total: None,
            });
        }
        let total = count_lines(File::open(path)?)?;
        Ok(Input {
            name: path.display().to_string(),
            reader: Box::new(BufReader::with_capacity(1 << 16, File::open(path)?)),
            total: Some(total),
        })
    }

    /// Sends `(line number, line)`s, in chunks (one wake-up per chunk, not per line), until the end
    /// of the input or until nobody listens.
    fn spawn_reader(mut self) -> mpsc::Receiver<io::Result<Vec<(u64, String)>>> {
        const CHUNK: usize = 256;
        let (chunks, receiver) = mpsc::channel(4);
        std::thread::spawn(move || {
            let mut number = 0u64;
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut failure = None;
                while chunk.len() < CHUNK {
                    let mut line = String::new();
                    match self.reader.read_line(&mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            number += 1;
                            while line.ends_with(['\n', '\r']) {
                                line.pop();
                            }
                            chunk.push((number, line));
                        }
                        Err(error) => {
                            let text = format!("line {}: {error}", number + 1);
                            failure = Some(io::Error::new(error.kind(), text));
                            break;
                        }
                    }
                }
                let ended = chunk.len() < CHUNK;
                if !chunk.is_empty() && chunks.blocking_send(Ok(chunk)).is_err() {
                    return;
                }
                if let Some(error) = failure {
                    let _ = chunks.blocking_send(Err(error));
                    return;
                }
                if ended {
                    return;
                }
            }
        });
        receiver
    }
}

fn count_lines(file: File) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let chunk = reader.fill_buf()?;
        let Some(&end) = chunk.last() else { break };
        lines += chunk.iter().filter(|&&byte| byte == b'\n').count() as u64;
        last = end;
        let length = chunk.len();
        reader.consume(length);
    }
    Ok(lines + u64::from(last != b'\n'))
}

struct Run {
    mapper: Mapper,
    sender: Arc<HttpSender>,
    destination: Arc<dyn Destination>,
    concurrency: usize,
    unsent: Option<BufWriter<File>>,
}

/// Why sending stopped before the end of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Interrupted,
    /// Nothing has answered since sending began, and attempts keep failing: waiting out the retry
    /// window would only delay the same verdict.
    Unreachable {
        why: String,
    },
    /// MoEngage refused the credentials (401/403): the rest would only be refused too.
    Paused {
        code: String,
    },
}

impl Run {
    async fn send_all(mut self, input: Input, interrupt: impl Future<Output = ()>) -> io::Result<Report> {
        let from_file = input.total.is_some();
        let mut report = Report::new(input.total);
        let mut progress = Progress::new(input.total);
        let mut chunks = input.spawn_reader();
        let mut pending: VecDeque<(u64, String)> = VecDeque::new();
        let mut in_flight: JoinSet<Fate> = JoinSet::new();
        let mut in_flight_lines: HashMap<tokio::task::Id, (u64, String)> = HashMap::new();
        let mut stop: Option<Stop> = None;
        let mut input_done = false;
        tokio::pin!(interrupt);
        let mut ticks = tokio::time::interval(Duration::from_millis(250));
        let (mut body, mut warnings) = (Vec::new(), Vec::new());
        let mut first_sent: Option<Instant> = None;

        loop {
            while stop.is_none() && in_flight.len() < self.concurrency {
                let Some((number, line)) = pending.pop_front() else { break };
                let mapped = self.map(&line, &mut body, &mut warnings);
                for warning in warnings.drain(..) {
                    report.warn(warning.code.as_str(), &warning.message, number);
                }
                match mapped {
                    Err(fate) => report.record(&fate, number),
                    Ok(()) => {
                        first_sent.get_or_insert_with(Instant::now);
                        let (sender, destination) = (self.sender.clone(), self.destination.clone());
                        let request = std::mem::take(&mut body);
                        let handle = in_flight
                            .spawn(async move { delivery::send(&sender, &*destination, request).await });
                        in_flight_lines.insert(handle.id(), (number, line));
                    }
                }
            }
            if in_flight.is_empty() && (stop.is_some() || (input_done && pending.is_empty())) {
                break;
            }
            let reading = stop.is_none() && !input_done;
            tokio::select! {
                _ = &mut interrupt, if stop != Some(Stop::Interrupted) => {
                    stop = Some(Stop::Interrupted);
                    in_flight.abort_all();
                }
                Some(done) = in_flight.join_next_with_id() => match done {
                    Ok((id, fate)) => {
                        let Some((number, line)) = in_flight_lines.remove(&id) else { continue };
                        report.record(&fate, number);
                        if fate.state == State::Paused {
                            stop.get_or_insert(Stop::Paused { code: fate.code.clone() });
                        }
                        if fate.state != State::Delivered {
                            self.keep_unsent(&line)?;
                        }
                    }
                    Err(error) => {
                        if let Some((number, line)) = in_flight_lines.remove(&error.id()) {
                            // Even with no answer, a request that timed out may have arrived.
                            report.record_interrupted(number);
                            self.keep_unsent(&line)?;
                        }
                    }
                },
                chunk = chunks.recv(), if reading && pending.is_empty() => match chunk {
                    None => input_done = true,
                    Some(chunk) => pending.extend(chunk?),
                },
                _ = ticks.tick() => {
                    let sending = self.sender.progress();
                    progress.show(&report, in_flight.len(), &sending);
                    let silent_for = first_sent.map(|first| first.elapsed()).unwrap_or_default();
                    if stop.is_none() && !sending.answered && sending.retrying > 0 && silent_for >= UNREACHABLE_AFTER {
                        stop = Some(Stop::Unreachable { why: sending.latest_failure.unwrap_or_default() });
                        in_flight.abort_all();
                    }
                }
            }
        }
        if let Some(stop) = stop {
            report.stopped = Some(stop);
            // Lines already read but not sent, then, from a file, the rest of it; standard input may
            // never end, so only what was read from it counts.
            if !from_file {
                chunks.close();
            }
            let mut unsent_lines = std::mem::take(&mut pending);
            loop {
                for (number, line) in unsent_lines.drain(..) {
                    // What the blueprint drops is reported as dropped and not kept: it would be
                    // dropped again.
                    if let Err(fate) = self.map(&line, &mut body, &mut warnings) {
                        warnings.clear();
                        report.record(&fate, number);
                        continue;
                    }
                    warnings.clear();
                    report.not_sent += 1;
                    report.last_line = report.last_line.max(number);
                    self.keep_unsent(&line)?;
                }
                let next = if from_file { chunks.recv().await } else { chunks.try_recv().ok() };
                match next {
                    Some(chunk) => unsent_lines.extend(chunk?),
                    None => break,
                }
            }
        }
        if let Some(unsent) = self.unsent.as_mut() {
            unsent.flush()?;
        }
        progress.finish(&report);
        report.elapsed = progress.started.elapsed();
        Ok(report)
    }

    fn map(
        &self,
        line: &str,
        body: &mut Vec<u8>,
        warnings: &mut Vec<blueprint::Warning>,
    ) -> Result<(), Fate> {
        delivery::map(&self.mapper, line, jiff::Timestamp::now(), body, warnings)
    }

    fn keep_unsent(&mut self, line: &str) -> io::Result<()> {
        if let Some(unsent) = self.unsent.as_mut() {
            unsent.write_all(line.as_bytes())?;
            unsent.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// How the summary names a fate that is not a delivery: `401 MissingAttributeError`,
/// `connection error, still failing when the retry window closed`.
fn failure_name(fate: &Fate) -> String {
    let what = match fate.code.as_str() {
        "connection" => "connection error".to_owned(),
        "timeout" => "no answer within the timeout".to_owned(),
        // Refused by the size guard before any request.
        "413" if fate.status.is_none() => "not sent: over the size limit".to_owned(),
        code => match &fate.error_type {
            Some(kind) => format!("{code} {kind}"),
            None => code.to_owned(),
        },
    };
    let retried = if fate.gave_up { ", still failing when the retry window closed" } else { "" };
    format!("{what}{retried}")
}

/// How long a destination may stay silent — no answer at all while attempts fail — before
/// `signal send` stops instead of waiting out the retry window.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(20);

/// Events with the same fate, and the first few of their line numbers.
#[derive(Debug)]
struct Group {
    count: u64,
    detail: Option<String>,
    hint: Option<String>,
    lines: Vec<u64>,
}

const LINES_SHOWN: usize = 5;

impl Group {
    /// Counts line `number`, keeping the lowest few in order: events finish out of order.
    fn add(&mut self, number: u64) {
        self.count += 1;
        let at = self.lines.partition_point(|&line| line < number);
        if at < LINES_SHOWN {
            self.lines.insert(at, number);
            self.lines.truncate(LINES_SHOWN);
        }
    }
}

/// The tally of a run, printed at the end.
#[derive(Debug)]
struct Report {
    total: Option<u64>,
    /// (outcome order, outcome, what) → the events.
    groups: BTreeMap<(u8, &'static str, String), Group>,
    warnings: BTreeMap<&'static str, Group>,
    delivered: u64,
    failed: u64,
    dropped: u64,
    /// Lines that are not events (`invalid_event`): the input needs fixing.
    invalid: u64,
    interrupted: u64,
    not_sent: u64,
    last_line: u64,
    stopped: Option<Stop>,
    elapsed: Duration,
}

impl Report {
    fn new(total: Option<u64>) -> Self {
        Report {
            total,
            groups: BTreeMap::new(),
            warnings: BTreeMap::new(),
            delivered: 0,
            failed: 0,
            dropped: 0,
            invalid: 0,
            interrupted: 0,
            not_sent: 0,
            last_line: 0,
            stopped: None,
            elapsed: Duration::ZERO,
        }
    }

    fn settled(&self) -> u64 {
        self.delivered + self.failed + self.dropped + self.interrupted
    }

    /// Records what became of the event on line `number`.
    fn record(&mut self, fate: &Fate, number: u64) {
        let (order, outcome, what, detail) = match fate.state {
            State::Delivered => {
                self.delivered += 1;
                (0, "delivered", fate.code.clone(), None)
            }
            State::Failed | State::Paused => {
                self.failed += 1;
                (1, "failed", failure_name(fate), fate.said.clone())
            }
            State::Dropped => {
                self.dropped += 1;
                if fate.code == blueprint::DropCode::InvalidEvent.as_str() {
                    self.invalid += 1;
                }
                (2, "dropped", fate.code.clone(), fate.said.clone())
            }
        };
        let hint = match (fate.code.as_str(), &fate.hint) {
            ("timeout", Some(hint)) => Some(format!("{hint} Raise --timeout if it is only slow.")),
            (_, hint) => hint.clone(),
        };
        self.add(order, outcome, what, detail, hint, number);
    }

    /// Records an event that was in flight when sending was interrupted: it may have arrived.
    fn record_interrupted(&mut self, number: u64) {
        self.interrupted += 1;
        let what = "in flight when interrupted; it may have arrived".to_owned();
        self.add(3, "interrupted", what, None, None, number);
    }

    fn add(
        &mut self,
        order: u8,
        outcome: &'static str,
        what: String,
        detail: Option<String>,
        hint: Option<String>,
        number: u64,
    ) {
        self.last_line = self.last_line.max(number);
        self.groups
            .entry((order, outcome, what))
            .or_insert_with(|| Group { count: 0, detail, hint, lines: Vec::new() })
            .add(number);
    }

    fn warn(&mut self, code: &'static str, message: &str, number: u64) {
        self.warnings
            .entry(code)
            .or_insert_with(|| Group {
                count: 0,
                detail: Some(message.to_owned()),
                hint: None,
                lines: Vec::new(),
            })
            .add(number);
    }

    fn exit_code(&self) -> ExitCode {
        match self.stopped {
            Some(Stop::Interrupted) => ExitCode::from(130),
            _ if self.failed > 0 || self.not_sent > 0 || self.invalid > 0 || self.stopped.is_some() => {
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        }
    }

    fn summary(&self, target: &str, unsent: Option<&Path>) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 { (self.delivered as f64 / seconds).round() as u64 } else { 0 };
        let _ = writeln!(
            out,
            "{} of {} events delivered to {target} in {seconds:.1} s ({}/s)",
            thousands(self.delivered),
            thousands(self.settled() + self.not_sent),
            thousands(rate),
        );
        let row = |out: &mut String, outcome: &str, what: &str, group: &Group| {
            let _ = writeln!(out, "  {outcome:<11} {:>9}  {what}", thousands(group.count));
            let indent = " ".repeat(25);
            if let Some(detail) = &group.detail {
                let _ = writeln!(out, "{indent}{detail}");
            }
            if let Some(hint) = &group.hint {
                let _ = writeln!(out, "{indent}likely cause: {hint}");
            }
            if outcome != "delivered" {
                let mut shown: Vec<String> = group.lines.iter().map(u64::to_string).collect();
                if group.count > group.lines.len() as u64 {
                    shown.push("…".into());
                }
                let _ = writeln!(
                    out,
                    "{indent}line{} {}",
                    if group.count == 1 { "" } else { "s" },
                    shown.join(", ")
                );
            }
        };
        for ((_, outcome, what), group) in &self.groups {
            row(&mut out, outcome, what, group);
        }
        if self.not_sent > 0 || (self.stopped.is_some() && self.total.is_none()) {
            let why = match &self.stopped {
                Some(Stop::Interrupted) => "interrupted (Ctrl-C) before these were sent".to_owned(),
                Some(Stop::Paused { code }) => format!(
                    "sending paused after MoEngage answered {code}: fix the Workspace ID or Data API key, then send these again"
                ),
                Some(Stop::Unreachable { why }) => format!(
                    "stopped: nothing answered in {} s ({why}); check --endpoint or the data center, then send these again",
                    UNREACHABLE_AFTER.as_secs()
                ),
                None => String::new(),
            };
            let _ = writeln!(out, "  {:<11} {:>9}  {why}", "not sent", thousands(self.not_sent));
            if self.total.is_none() {
                let _ = writeln!(
                    out,
                    "{}standard input was not read past line {}",
                    " ".repeat(25),
                    self.last_line
                );
            }
        }
        // Stopped with nothing left unread: the reason still belongs in the summary.
        if let Some(Stop::Unreachable { why }) = &self.stopped
            && self.not_sent == 0
        {
            let _ = writeln!(
                out,
                "  stopped: nothing answered in {} s ({why}); check --endpoint or the data center",
                UNREACHABLE_AFTER.as_secs()
            );
        }
        for (code, group) in &self.warnings {
            row(&mut out, "warning", code, group);
        }
        let undelivered = self.failed + self.interrupted + self.not_sent;
        if undelivered > 0 {
            match unsent {
                Some(path) => {
                    let _ = writeln!(
                        out,
                        "the {} events not delivered are in {}: fix the cause, then send that file with --events",
                        thousands(undelivered),
                        path.display()
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "add --unsent FILE to keep the events not delivered in a file you can send again"
                    );
                }
            }
        }
        out
    }
}

/// `1234567` → `1,234,567`.
fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// How far along, how fast, and how long to go: "1,200/5,000 events (24%), 490/s, ETA 8s".
fn progress_line(settled: u64, total: Option<u64>, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { settled as f64 / seconds } else { 0.0 };
    match total {
        Some(total) => {
            let percent = settled.saturating_mul(100).checked_div(total).unwrap_or(100);
            let eta = if rate > 0.0 {
                let remaining = total.saturating_sub(settled) as f64 / rate;
                format!("ETA {}", short_duration(Duration::from_secs_f64(remaining.min(1e9))))
            } else {
                "ETA unknown".into()
            };
            format!(
                "{}/{} events ({percent}%), {}/s, {eta}",
                thousands(settled),
                thousands(total),
                thousands(rate.round() as u64)
            )
        }
        None => format!("{} events, {}/s", thousands(settled), thousands(rate.round() as u64)),
    }
}

/// `75 s` → `1m15s`.
fn short_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// A bar on a terminal; on anything else (a log, CI) a plain line every ten seconds.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    started: Instant,
    last_line: Instant,
}

const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let template = if total.is_some() { "{bar:20} {msg}" } else { "{spinner} {msg}" };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        let now = Instant::now();
        Progress { bar, total, started: now, last_line: now }
    }

    fn show(&mut self, report: &Report, in_flight: usize, sending: &sender::InProgress) {
        let elapsed = self.started.elapsed();
        let mut line = format!(
            "{}; {} delivered, {} failed, {} dropped, {in_flight} in flight",
            progress_line(report.settled(), self.total, elapsed),
            thousands(report.delivered),
            thousands(report.failed),
            thousands(report.dropped),
        );
        if sending.retrying > 0 {
            let why = sending.latest_failure.as_deref().unwrap_or("failing");
            line.push_str(&format!("; {} retrying: {why}", thousands(sending.retrying)));
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(report.settled());
                bar.set_message(line);
            }
            None if self.last_line.elapsed() >= PLAIN_PROGRESS_EVERY => {
                self.last_line = Instant::now();
                eprintln!("progress: {line}");
            }
            None => {}
        }
    }

    fn finish(&self, _report: &Report) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_how_fast_and_how_long_to_go() {
        assert_eq!(
            progress_line(1_200, Some(5_000), Duration::from_secs(2)),
            "1,200/5,000 events (24%), 600/s, ETA 6s"
        );
        assert_eq!(
            progress_line(500, Some(60_500), Duration::from_secs(1)),
            "500/60,500 events (0%), 500/s, ETA 2m00s"
        );
        assert_eq!(progress_line(0, Some(10), Duration::ZERO), "0/10 events (0%), 0/s, ETA unknown");
        assert_eq!(progress_line(42, None, Duration::from_secs(2)), "42 events, 21/s");
        assert_eq!(short_duration(Duration::from_secs(7_500)), "2h05m");
    }

    #[test]
    fn a_group_shows_its_lowest_lines_in_order() {
        let mut group = Group { count: 0, detail: None, hint: None, lines: Vec::new() };
        for line in [9, 3, 7, 1, 12, 5, 2] {
            group.add(line);
        }
        assert_eq!((group.count, group.lines.as_slice()), (7, &[1, 2, 3, 5, 7][..]));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err_and(|error| error.contains("e.g. 30s")));
    }

    #[test]
    fn a_file_without_a_final_newline_still_counts_its_last_line() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        for (text, lines) in [("", 0), ("a\n", 1), ("a\nb", 2), ("a\nb\n", 2)] {
            let path = dir.path().join("events.ndjson");
            std::fs::write(&path, text)?;
            assert_eq!(count_lines(File::open(&path)?)?, lines, "{text:?}");
        }
        Ok(())
    }
}
