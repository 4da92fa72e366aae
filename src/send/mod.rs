//! `signal send`: maps a file of events with a blueprint and delivers them to MoEngage — a backfill,
//! or the integration document's "Testing" steps against `signal sandbox`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use blueprint::Mapper;
use delivery::{Fate, Settled};
use moengage::{ApiKey, Credentials, DataCenter, MoEngageDestination};
use sender::{Destination, HttpSender, RetryPolicy};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::map::MappingArgs;

mod progress;
mod report;

use progress::Progress;
use report::{Report, Stop, UNREACHABLE_AFTER};

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
        let destination = MoEngageDestination::new(credentials, endpoint, args.per_minute);
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
                    Ok(kind) => {
                        first_sent.get_or_insert_with(Instant::now);
                        let (sender, destination) = (self.sender.clone(), self.destination.clone());
                        let request = kind.request(std::mem::take(&mut body));
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
                        if fate.state == Settled::Paused {
                            stop.get_or_insert(Stop::Paused { code: fate.code.clone() });
                        }
                        if fate.state != Settled::Delivered {
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
    ) -> Result<blueprint::RequestKind, Fate> {
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


#[cfg(test)]
mod tests {
    use super::*;

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
