//! `signal`: server-side delivery of first-party events to MoEngage, declared in YAML blueprints.

mod events;
mod map;
mod sandbox;
mod send;
mod serve;
mod test_cases;
mod stop;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Signal delivers first-party events server-to-server to MoEngage's Track Event API.
#[derive(Debug, Parser)]
#[command(name = "signal", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check blueprint, configuration and blueprint test files; print every error as
    /// FILE:LINE:COL with a hint.
    Validate {
        /// Blueprint, configuration or blueprint test files to check (a file with `sources`,
        /// `integrations` or `pipelines` is a configuration; one named `*.tests.yaml` is a test file,
        /// checked with its blueprint).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Read files that resolve outside the current folder and the files' folders (a
        /// blueprint's `extends`, a test file's `blueprint` and `events`, symlinks).
        #[arg(long)]
        allow_outside: bool,
    },
    /// Preview a blueprint: NDJSON events in, one MoEngage request body (or drop) per line out.
    Map(map::MapArgs),
    /// Run the mapping cases beside blueprints (`shop.tests.yaml` beside `shop.yaml`): each an event
    /// and the body (or drop) it must map to; `--update` writes results for review.
    Test(test_cases::TestArgs),
    /// Map a file of events with a blueprint and deliver them to MoEngage (a backfill, or a test
    /// against `signal sandbox`).
    Send(send::SendArgs),
    /// Run the service: collect events over HTTP, queue them durably, deliver them to MoEngage.
    Serve(serve::ServeArgs),
    /// Run a local MoEngage emulator to send events to, with optional faults.
    Sandbox(sandbox::SandboxArgs),
    /// The Event Debugger in the terminal: events of a running `signal serve` and their fates.
    Events(events::EventsArgs),
    /// Queue failed or paused events of a running `signal serve` again.
    Replay(events::ReplayArgs),
    /// Print a JSON Schema (the files under schemas/ are these outputs).
    Schema {
        /// Which schema.
        #[arg(value_enum)]
        which: SchemaKind,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaKind {
    /// Blueprint files (blueprints/**/*.yaml).
    Blueprint,
    /// The configuration file (signal.yaml).
    Config,
    /// Blueprint test files (blueprints/**/*.tests.yaml).
    Tests,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files, allow_outside } => validate(&files, allow_outside),
        Command::Map(args) => map::run(&args),
        Command::Test(args) => test_cases::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Sandbox(args) => sandbox::run(&args),
        Command::Events(args) => events::run_events(&args),
        Command::Replay(args) => events::run_replay(&args),
        Command::Schema { which } => schema(which),
    }
}

/// How many threads a command's async runtime uses.
#[derive(Debug, Clone, Copy)]
enum Threads {
    /// The calling thread only.
    One,
    /// One worker per core.
    Many,
}

/// The async runtime for a command; on failure the reason is printed and the exit code returned.
fn runtime(threads: Threads) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Many => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("error: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

fn validate(files: &[PathBuf], allow_outside: bool) -> ExitCode {
    let access = blueprint::files::FileAccess::for_command_line(files, allow_outside);
    let mut failed = false;
    for file in files {
        let is_tests = file.to_string_lossy().ends_with(cases::SUFFIX);
        // A file that cannot be read is reported by the blueprint compiler, which reads it the same way.
        let is_config = !is_tests && access.read(file).is_ok_and(|text| config::looks_like_config(&text));
        let checked = if is_tests {
            // A test file is checked with its blueprint: both must be right before a case can run.
            cases::load(file, &access).and_then(|suite| {
                suite
                    .compile()
                    .map(|_| (format!("{} cases for {}", suite.len(), suite.blueprint.display()), String::new()))
            })
        } else if is_config {
            let environment: std::collections::HashMap<String, String> = std::env::vars().collect();
            config::load_within(file, &|name| environment.get(name).cloned(), &access).map(|config| {
                let summary = format!(
                    "configuration: {} sources, {} integrations, {} pipelines",
                    config.sources.len(),
                    config.integrations.len(),
                    config.pipelines.len()
                );
                (summary, String::new())
            })
        } else {
            blueprint::compile_file_within(file, &access).map(|compiled| {
                let events: Vec<&str> = compiled.event_names().collect();
                let warnings: String = compiled.warnings().iter().map(ToString::to_string).collect();
                let count = compiled.warnings().len();
                let noted = match count {
                    0 => String::new(),
                    _ => format!(", {count} warning{}", if count == 1 { "" } else { "s" }),
                };
                let mapped = match (events.len(), compiled.maps_every_event()) {
                    (0, true) => "every event, through \"*\"".to_owned(),
                    (named, every) => format!(
                        "{named} event{}: {}{}",
                        if named == 1 { "" } else { "s" },
                        events.join(", "),
                        if every { ", and every other through \"*\"" } else { "" }
                    ),
                };
                (format!("{mapped}{noted}"), warnings)
            })
        };
        match checked {
            Ok((summary, warnings)) => print!("{}: ok ({summary})\n{warnings}", file.display()),
            Err(diagnostics) => {
                failed = true;
                println!("{diagnostics}");
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn schema(which: SchemaKind) -> ExitCode {
    let value = match which {
        SchemaKind::Blueprint => blueprint::blueprint_schema(),
        SchemaKind::Config => config::config_schema(),
        SchemaKind::Tests => cases::tests_schema(),
    };
    match serde_json::to_string_pretty(&value) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: cannot print the schema: {error}");
            ExitCode::FAILURE
        }
    }
}
