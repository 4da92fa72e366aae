//! `signal sandbox`: a local MoEngage to send to, for integrators and tests.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use moengage::ApiKey;
use sandbox::{Faults, SandboxConfig};

/// Options of `signal sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// A workspace and its Data API key, as WORKSPACE_ID:KEY (repeatable). Default: sandbox:sandbox-key.
    #[arg(long = "workspace", value_name = "ID:KEY", value_parser = parse_workspace)]
    workspaces: Vec<(String, String)>,
    /// Answer 403 (account suspended) to this workspace's correctly signed requests (repeatable).
    #[arg(long, value_name = "ID")]
    suspended: Vec<String>,
    /// This workspace has MoEngage's object data type (repeatable): it keeps object and
    /// array-of-objects attributes, which other workspaces ignore as MoEngage does.
    #[arg(long, value_name = "ID")]
    object_data: Vec<String>,
    /// Events accepted per workspace per minute before answering 429.
    #[arg(long, value_name = "N", default_value_t = moengage::EVENTS_PER_MINUTE)]
    per_minute: u32,
    /// Count --per-minute over this many seconds instead of 60, to try rate limits quickly.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    window_secs: u64,
    /// Share of requests answered 500, from 0 to 1.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    error_rate: f64,
    /// Share of requests answered 429 with Retry-After, from 0 to 1.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    throttle_rate: f64,
    /// The Retry-After, in seconds, of injected 429s.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    retry_after: u64,
    /// Wait this many milliseconds before each answer.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    delay_ms: u64,
    /// Share of requests whose connection is dropped without an answer, from 0 to 1 (half of them
    /// after the events were accepted, so a retry stores them twice).
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = parse_rate)]
    drop_rate: f64,
    /// Draw the injected faults from this seed: the same sequence every run.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Fault the same request body at most this many times; after that it goes through (faults
    /// that pass, so a sender's retries always get there).
    #[arg(long, value_name = "N")]
    max_faults: Option<u32>,
}

fn parse_workspace(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((id, key)) if !id.is_empty() && !key.is_empty() => Ok((id.to_owned(), key.to_owned())),
        _ => Err(format!("`{text}` is not WORKSPACE_ID:KEY, e.g. --workspace WS123:my-data-key")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("`{text}` is not a rate from 0 to 1, e.g. 0.2 for one request in five")),
    }
}

pub fn run(args: &SandboxArgs) -> ExitCode {
    let mut config = SandboxConfig {
        suspended: args.suspended.clone(),
        object_data: args.object_data.clone(),
        per_window: args.per_minute,
        window: Duration::from_secs(args.window_secs),
        faults: Faults {
            error_rate: args.error_rate,
            throttle_rate: args.throttle_rate,
            retry_after_secs: args.retry_after,
            delay: Duration::from_millis(args.delay_ms),
            drop_rate: args.drop_rate,
            seed: args.seed,
            max_faults_per_body: args.max_faults,
        },
        ..SandboxConfig::default()
    };
    if !args.workspaces.is_empty() {
        config.workspaces =
            args.workspaces.iter().map(|(id, key)| (id.clone(), ApiKey::new(key.clone()))).collect();
    }
    let runtime = match crate::runtime(crate::Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("error: cannot listen on {}: {error}; choose another with --listen", args.listen);
                return ExitCode::FAILURE;
            }
        };
        let shutdown = crate::stop::requested();
        let address = listener.local_addr().unwrap_or(args.listen);
        println!("MoEngage sandbox listening on http://{address}");
        for (id, _) in &config.workspaces {
            println!("  POST http://{address}/v1/event/{id}   (Basic auth: the workspace id and its key)");
            println!("  GET  http://{address}/sandbox/workspaces/{id}/customers/CUSTOMER_ID   (the profile and actions as kept)");
            println!("  GET  http://{address}/sandbox/workspaces/{id}/customers/CUSTOMER_ID/actions");
        }
        println!("  GET  http://{address}/sandbox/stats");
        let window =
            if args.window_secs == 60 { "minute".to_owned() } else { format!("{} s", args.window_secs) };
        println!("limit {} events per {window} per workspace; Ctrl-C stops", config.per_window);
        match sandbox::serve_until(listener, config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: the sandbox stopped: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
