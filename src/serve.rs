//! `signal serve`: the service. With `--config` it runs that configuration; without one it runs on
//! built-in defaults — SQLite under `./data`, the Retail preset, and MoEngage when the
//! `MOENGAGE_*` variables are set, else a MoEngage sandbox inside the process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use config::{Config, LogFormat, LogLevel, WriteKey};
use moengage::{ApiKey, Credentials, MoEngageDestination};

/// Options of `signal serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (see signal.example.yaml). Without it, Signal runs on built-in
    /// defaults and says so.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen for events here instead of the configured address (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve the Event Debugger, /healthz, /readyz and /metrics here instead of the configured
    /// address (off loopback, the configuration needs an `admin_token`).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Keep the queue in this SQLite file instead of the configured one.
    #[arg(long, value_name = "FILE", conflicts_with = "postgres")]
    database: Option<PathBuf>,
    /// Keep the queue in this PostgreSQL database (postgres://USER:PASSWORD@HOST:PORT/DATABASE)
    /// instead of the configured storage. Best given as SIGNAL_POSTGRES_URL, which `ps` does not show.
    #[arg(long, value_name = "URL", env = "SIGNAL_POSTGRES_URL", hide_env_values = true)]
    postgres: Option<String>,
}

impl ServeArgs {
    /// The command line's settings win over the file's, at start and at every reload.
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(admin_listen) = self.admin_listen {
            config.admin_listen = admin_listen;
        }
        if let Some(database) = &self.database {
            config.storage = store::Storage::Sqlite(database.clone());
        }
        if let Some(url) = &self.postgres {
            config.storage = store::Storage::Postgres {
                url: secret::Secret::new(url.clone()),
                max_connections: config::defaults::POSTGRES_CONNECTIONS,
            };
        }
    }

    /// How a reload gets the configuration: the file again, with the command line's settings.
    fn reloader(&self) -> server::Reloader {
        let Some(path) = self.config.clone() else {
            return std::sync::Arc::new(|| {
                Err("Signal runs on its built-in defaults: there is no configuration file to load again (start it with --config FILE)".to_owned())
            });
        };
        let overrides = ServeArgs {
            config: None,
            listen: self.listen,
            admin_listen: self.admin_listen,
            database: self.database.clone(),
            postgres: self.postgres.clone(),
        };
        std::sync::Arc::new(move || {
            let mut config = config::load(&path).map_err(|diagnostics| {
                // Said in the log and in an HTTP answer: the place and the kind, none of the file's
                // text, which may hold a key (`signal validate` shows it all).
                let places: Vec<_> = diagnostics.0.into_iter().map(blueprint::Diagnostic::without_text).collect();
                blueprint::Diagnostics(places).to_string()
            })?;
            overrides.apply(&mut config);
            Ok(config)
        })
    }
}

/// The write key of the built-in defaults, unless `SIGNAL_WRITE_KEY` gives another.
const DEFAULT_WRITE_KEY: &str = "dev-write-key";

enum Destination {
    Configured,
    MoEngage,
    Sandbox(String),
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let runtime = match crate::runtime(crate::Threads::Many) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> ExitCode {
    let (mut config, destination) = match &args.config {
        Some(path) => match config::load(path) {
            Ok(config) => (config, Destination::Configured),
            Err(diagnostics) => {
                eprintln!("{diagnostics}");
                return ExitCode::FAILURE;
            }
        },
        None => match embedded().await {
            Ok(pair) => pair,
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(2);
            }
        },
    };
    args.apply(&mut config);
    init_logging(config.log_format, config.log_level);

    // The ports first: a second instance started by mistake stops here, before it touches the
    // queue (opening it makes what another run left claimed pending again).
    let listeners = match server::Listeners::bind(&config).await {
        Ok(listeners) => listeners,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let (queue, recovered) = match store::open(&config.storage).await {
        Ok(opened) => opened,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    for (path, before) in &recovered.made_private {
        tracing::warn!(path = %path, mode_before = %format!("{before:o}"), "others could read Signal's data (it holds emails and phone numbers): made private to this user");
    }
    if recovered.claimed > 0 || recovered.paused > 0 {
        tracing::info!(
            in_flight = recovered.claimed,
            paused = recovered.paused,
            "events a previous run had not finished are queued again"
        );
    }
    let stop = crate::stop::requested();
    let reloading = server::Reloading { load: args.reloader(), hangups: crate::stop::hangups() };
    banner(&config, &listeners, &destination);
    for pipeline in &config.pipelines {
        for warning in pipeline.blueprint.warnings() {
            tracing::warn!(pipeline = %pipeline.name, "{}", warning.headline());
        }
    }
    for source in &config.sources {
        if !config.pipelines.iter().any(|pipeline| pipeline.source == source.name) {
            tracing::warn!(source = %source.name, "no pipeline takes this source's events: they are accepted and not delivered");
        }
    }
    match server::run(config, queue.clone(), listeners, stop, Some(reloading)).await {
        Ok(()) => {
            if let Err(error) = queue.close().await {
                tracing::warn!(%error, "the store's write-ahead log was left to be replayed at the next start");
            }
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The built-in configuration: MoEngage from the `MOENGAGE_*` variables when they are all set,
/// else a sandbox in this process.
async fn embedded() -> Result<(Config, Destination), String> {
    let write_key =
        WriteKey::new(std::env::var("SIGNAL_WRITE_KEY").unwrap_or_else(|_| DEFAULT_WRITE_KEY.into()));
    let environment = |name: &str| std::env::var(name).ok();
    match moengage::credentials_from_environment(&environment).map_err(|error| error.to_string())? {
        Some(credentials) => {
            let destination = MoEngageDestination::new(credentials, None, moengage::EVENTS_PER_MINUTE);
            Ok((config::embedded(write_key, "moengage", std::sync::Arc::new(destination)), Destination::MoEngage))
        }
        None => {
            sender::install_crypto_provider();
            let base = sandbox::spawn_on_loopback(sandbox::SandboxConfig::default())
                .await
                .map_err(|error| format!("cannot start the built-in sandbox: {error}"))?;
            let credentials = Credentials::new(
                "sandbox",
                ApiKey::new("sandbox-key"),
                "01".parse().map_err(|e| format!("{e}"))?,
            )
            .map_err(|error| error.to_string())?;
            let destination = MoEngageDestination::new(credentials, Some(&base), moengage::EVENTS_PER_MINUTE);
            Ok((config::embedded(write_key, "sandbox", std::sync::Arc::new(destination)), Destination::Sandbox(base)))
        }
    }
}

fn banner(config: &Config, listeners: &server::Listeners, destination: &Destination) {
    let address = |listener: &tokio::net::TcpListener, configured: SocketAddr| {
        listener.local_addr().unwrap_or(configured)
    };
    let collector = address(&listeners.collector, config.listen);
    let admin = address(&listeners.admin, config.admin_listen);
    match destination {
        Destination::Configured => println!("Signal is running"),
        Destination::MoEngage | Destination::Sandbox(_) => {
            println!("Signal is running on its built-in defaults (no --config)")
        }
    }
    println!("  collector  http://{collector}   POST /v1/track, /v1/page, /v1/identify, /v1/batch");
    println!("  tag        <script src=\"http://{collector}/signal.js\" data-write-key=\"KEY\"></script>   for sites without an SDK");
    println!("  queue      {}", config.storage.describe());
    for source in &config.sources {
        if matches!(destination, Destination::Configured) {
            println!("  source     {} (its write key is the HTTP Basic username)", source.name);
        } else {
            println!("  write key  {} (the HTTP Basic username), e.g.", source.write_key.expose());
            println!(
                "             curl -u {}: -d '{{\"type\":\"track\",\"event\":\"Order Completed\",\"user_id\":\"u_8842\",\"properties\":{{\"order_id\":\"ORD-1001\",\"revenue\":89.99}}}}' http://{collector}/v1/track",
                source.write_key.expose()
            );
        }
    }
    for pipeline in &config.pipelines {
        let integration = config.integrations.iter().find(|i| i.name == pipeline.integration);
        let url = integration.map_or(String::new(), |integration| integration.destination.shown_as());
        println!(
            "  pipeline   {}: {} → {} with {} ({url})",
            pipeline.name, pipeline.source, pipeline.integration, pipeline.blueprint_name
        );
    }
    if let Destination::Sandbox(base) = destination {
        println!("  sandbox    {base}   the built-in MoEngage sandbox; what arrived:");
        println!("             curl {base}/sandbox/workspaces/sandbox/customers/u_8842/actions");
    }
    if let Destination::Sandbox(_) = destination {
        println!(
            "  to MoEngage: set MOENGAGE_WORKSPACE_ID, MOENGAGE_DATA_API_KEY and MOENGAGE_DATA_CENTER, or run with --config signal.yaml (see signal.example.yaml)"
        );
    }
    println!("  debugger   http://{admin}/debugger   every event's fate; in the terminal: signal events (or cargo run --release -- events)");
    println!("  admin      http://{admin}/healthz, /readyz, /metrics");
}

fn init_logging(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // An error only means a subscriber is already installed.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
