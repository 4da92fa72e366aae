//! `signal map`: preview what a blueprint sends, one output line per input line.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use blueprint::{Drop, DropCode, Mapper, PhoneRegion};

/// How events are mapped: the options `signal map` and `signal send` share.
#[derive(Debug, clap::Args)]
pub struct MappingArgs {
    /// The blueprint to apply.
    #[arg(long, value_name = "FILE")]
    blueprint: PathBuf,
    /// Deliver only these events (repeat the flag); other mapped events are dropped with
    /// `not_enabled`. Default: every event the blueprint maps.
    #[arg(long = "enable", value_name = "EVENT")]
    enabled: Vec<String>,
    /// Region for national phone numbers when an event's `context.locale` has none (e.g. GB).
    #[arg(long, value_name = "CC")]
    default_region: Option<String>,
    /// The workspace has MoEngage's object data type: send object and array-of-objects attributes
    /// as they are. Default: flattened, as on most accounts (see the integration's `object_data`).
    #[arg(long)]
    pub object_data: bool,
}

impl MappingArgs {
    /// The blueprint compiled into a warmed-up mapper; on failure, what to exit with, its reasons
    /// already printed.
    pub fn mapper(&self) -> Result<Mapper, ExitCode> {
        let compiled = match blueprint::compile_file(&self.blueprint) {
            Ok(compiled) => compiled,
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                return Err(ExitCode::FAILURE);
            }
        };
        let default_region = match self.default_region.as_deref() {
            None => None,
            Some(code) => match PhoneRegion::parse(code) {
                Some(region) => Some(region),
                None => {
                    eprintln!(
                        "error: --default-region `{code}` is not a region code; use an ISO 3166 two-letter code such as GB or US"
                    );
                    return Err(ExitCode::from(2));
                }
            },
        };
        for warning in compiled.warnings() {
            eprint!("{warning}");
        }
        for event in &self.enabled {
            if !compiled.maps(event) {
                eprintln!(
                    "warning: --enable `{event}`: the blueprint does not map this event, so it stays dropped"
                );
            }
        }
        // Traits are remembered within the run, in input order, as `signal serve` remembers them.
        let mut mapper = Mapper::new(Arc::new(compiled))
            .with_default_region(default_region)
            .with_object_data(self.object_data)
            .with_memory(Arc::new(blueprint::RunMemory::default()));
        if !self.enabled.is_empty() {
            mapper = mapper.with_enabled(self.enabled.iter().cloned());
        }
        mapper.warm_up();
        Ok(mapper)
    }
}

/// Options of `signal map`.
#[derive(Debug, clap::Args)]
pub struct MapArgs {
    #[command(flatten)]
    mapping: MappingArgs,
    /// Read events from this NDJSON file instead of standard input.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Treat every event as received at this RFC 3339 time instead of now (future timestamps are
    /// clamped to it), so that a preview can be reproduced exactly.
    #[arg(long, value_name = "TIME")]
    received_at: Option<jiff::Timestamp>,
}

pub fn run(args: &MapArgs) -> ExitCode {
    let mapper = match args.mapping.mapper() {
        Ok(mapper) => mapper,
        Err(code) => return code,
    };

    let input: Box<dyn io::Read + Send> = match &args.events {
        Some(path) => match File::open(path) {
            Ok(file) => Box::new(file),
            Err(error) => {
                eprintln!("error: cannot read events from {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(io::stdin()),
    };
    match map_stream(&mapper, input, io::stdout().lock(), args.received_at) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How much input is read at a time: many events, so that each is mapped where it was read.
const READ_SIZE: usize = 1 << 20;
/// How many reads may wait to be mapped.
const READS_AHEAD: usize = 2;

/// A read of the input: a buffer and how many of its bytes were read.
type Chunk = io::Result<(Vec<u8>, usize)>;

/// Reads `input` on a thread of its own, so that the copying of the input from the system overlaps
/// the mapping; buffers come back through `spent` to be read into again.
// Not joined: a mapping that stops early (a closed output) must not wait for input that may never
// come (a pipe that stays open); the thread ends with the process.
fn read_ahead(mut input: Box<dyn io::Read + Send>) -> (Receiver<Chunk>, Sender<Vec<u8>>) {
    let (reads, read) = mpsc::sync_channel::<Chunk>(READS_AHEAD);
    let (spent, buffers) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        loop {
            // A buffer keeps its length when it comes back: it is zeroed once, when made.
            let mut buffer = buffers.try_recv().unwrap_or_else(|_| vec![0; READ_SIZE]);
            let outcome = loop {
                match input.read(&mut buffer) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    outcome => break outcome,
                }
            };
            let last = !matches!(outcome, Ok(read) if read > 0);
            if reads.send(outcome.map(|read| (buffer, read))).is_err() || last {
                return;
            }
        }
    });
    (read, spent)
}

fn map_stream(
    mapper: &Mapper,
    input: Box<dyn io::Read + Send>,
    output: impl Write,
    received_at: Option<jiff::Timestamp>,
) -> io::Result<()> {
    let mut output = BufWriter::with_capacity(1 << 16, output);
    let mut mapping = LineMapper { mapper, body: Vec::new(), warnings: Vec::new(), asks: blueprint::Asks::default(), number: 0 };
    let (reads, spent) = read_ahead(input);
    // Lines are mapped where they were read; only a line cut by the end of a read is copied.
    let mut cut = Vec::new();
    while let Ok(read) = reads.recv() {
        let (buffer, read) = read?;
        if read == 0 {
            break;
        }
        // Events read together were received together: one clock reading for them all.
        let now = received_at.unwrap_or_else(jiff::Timestamp::now);
        let bytes = buffer.get(..read).unwrap_or_default();
        let mut start = 0;
        while let Some(newline) = bytes.get(start..).and_then(|rest| memchr::memchr(b'\n', rest)) {
            let line_end = start + newline;
            let line = bytes.get(start..line_end).unwrap_or_default();
            if cut.is_empty() {
                mapping.line(line, now, &mut output)?;
            } else {
                cut.extend_from_slice(line);
                mapping.line(&cut, now, &mut output)?;
                cut.clear();
            }
            start = line_end + 1;
        }
        cut.extend_from_slice(bytes.get(start..).unwrap_or_default());
        // The reader may have ended: then the buffer is simply dropped.
        let _ = spent.send(buffer);
    }
    if !cut.is_empty() {
        mapping.line(&cut, received_at.unwrap_or_else(jiff::Timestamp::now), &mut output)?;
    }
    output.flush()
}

/// Maps lines one by one, numbering them for warnings.
struct LineMapper<'m> {
    mapper: &'m Mapper,
    body: Vec<u8>,
    warnings: Vec<blueprint::Warning>,
    asks: blueprint::Asks,
    number: usize,
}

impl LineMapper<'_> {
    /// Maps one input line (without its newline) and writes its output line.
    fn line(&mut self, mut line: &[u8], received_at: jiff::Timestamp, output: &mut impl Write) -> io::Result<()> {
        self.number += 1;
        let number = self.number;
        while let Some((b'\r', rest)) = line.split_last() {
            line = rest;
        }
        let (mapper, body, warnings, asks) = (self.mapper, &mut self.body, &mut self.warnings, &mut self.asks);
        // Checked sixteen bytes and more at a time; std's check says where a line goes wrong.
        let text = simdutf8::basic::from_utf8(line).or_else(|_| std::str::from_utf8(line));
        let outcome = match text {
            Ok(text) if text.trim().is_empty() => Err(Drop {
                code: DropCode::InvalidEvent,
                reason: "the line is empty; each line must be one JSON object".into(),
            }),
            Ok(text) => {
                warnings.clear();
                mapper.map_asking(text, received_at, body, warnings, Some(asks))
            }
            Err(error) => Err(Drop {
                code: DropCode::InvalidEvent,
                reason: format!("the line is not valid UTF-8 (byte {})", error.valid_up_to()),
            }),
        };
        match outcome {
            Ok(_) => {
                output.write_all(body)?;
                for warning in warnings.iter() {
                    eprintln!("line {number}: {warning}");
                }
                // A device registration is a request of its own, sent once the call is delivered.
                if asks.registers_device
                    && let Ok(text) = text
                {
                    let mut registration = Vec::new();
                    match mapper.map_device_into(text, &mut registration, warnings) {
                        Ok(_) => eprintln!("line {number}: also registers its device: {}", String::from_utf8_lossy(&registration)),
                        Err(drop) => eprintln!("line {number}: its device is not registered: {}", drop.reason),
                    }
                }
            }
            Err(drop) => output.write_all(drop.to_json().as_bytes())?,
        }
        output.write_all(b"\n")
    }
}
