//! `crewsafe-server`: runs the reference server or enrolls devices and dispatchers.
//!
//! ```text
//! crewsafe-server --db server.db --listen 127.0.0.1:8080 [--tls-cert c.pem --tls-key k.pem] [--test-faults]
//!                 [--escalate-after-secs 120] [--check-in-minute-ms 60000]
//!                 [--max-concurrent-batches N] (and the other limits: `--help`)
//! crewsafe-server serve --db server.db --listen 127.0.0.1:8080 ...      (same)
//! crewsafe-server enroll-device --db server.db --device-id X             (prints the token)
//! crewsafe-server enroll-dispatcher --db server.db --name N              (prints the token)
//! crewsafe-server list-tokens --db server.db                             (ids and names, never tokens)
//! crewsafe-server revoke-device --db server.db --device-id X             (401 from then on)
//! crewsafe-server revoke-dispatcher --db server.db --name N
//! ```
//!
//! Instead of `--db FILE` (SQLite), every command takes `--database-url postgres://…` (or the
//! environment variable `CREWSAFE_DATABASE_URL`) to use PostgreSQL.
//!
//! When serving, the first line on stdout is `listening on URL` (useful with port 0). Logs go
//! to stderr, one JSON object per line (one per request: request id, route, status, device,
//! record counts, latency); `CREWSAFE_LOG=debug|info|warn|error|off` sets the level (default
//! info). Every flag can also be given as an environment variable (`docs/operations.md`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use crewsafe_server::{start, Database, Limits, ServerConfig, ServerStore, TlsConfig};

#[derive(Debug, Parser)]
#[command(
    name = "crewsafe-server",
    version,
    about = "Reference national server of the CrewSafe sync protocol",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the same as giving the flags without a subcommand).
    Serve(ServeArgs),
    /// Enroll or re-enroll a device and print its bearer token.
    EnrollDevice {
        #[command(flatten)]
        db: DbArgs,
        /// Device id, as the phone puts it in `crew.device_id`.
        #[arg(long)]
        device_id: String,
    },
    /// Enroll or re-enroll a dispatcher and print its bearer token.
    EnrollDispatcher {
        #[command(flatten)]
        db: DbArgs,
        /// Dispatcher name, recorded with every acknowledge and resolve.
        #[arg(long)]
        name: String,
    },
    /// List enrolled devices and dispatchers with when their tokens were issued (never the
    /// tokens themselves).
    ListTokens {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a device: its token is refused (401) from the next request on, also by running
    /// servers. Its records stay; enroll-device issues a new token.
    RevokeDevice {
        #[command(flatten)]
        db: DbArgs,
        /// Device id.
        #[arg(long)]
        device_id: String,
    },
    /// Revoke a dispatcher's token the same way.
    RevokeDispatcher {
        #[command(flatten)]
        db: DbArgs,
        /// Dispatcher name.
        #[arg(long)]
        name: String,
    },
}

/// The database: an SQLite file or PostgreSQL.
#[derive(Debug, Args)]
struct DbArgs {
    /// SQLite database file (created if missing).
    #[arg(long, env = "CREWSAFE_DB", conflicts_with = "database_url")]
    db: Option<PathBuf>,
    /// PostgreSQL instead of SQLite: `postgres://user:password@host:5432/dbname` or
    /// `host=… dbname=…` (the schema is created or upgraded at start).
    #[arg(long, env = "CREWSAFE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl DbArgs {
    fn database(self) -> Result<Database, String> {
        match (self.db, self.database_url) {
            (_, Some(url)) => Ok(Database::Postgres(url)),
            (Some(path), None) => Ok(Database::Sqlite(path)),
            (None, None) => Err("--db or --database-url is required".into()),
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, env = "CREWSAFE_LISTEN")]
    listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "CREWSAFE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CREWSAFE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Enable the test fault mode (/test/faults). Never in production (no environment
    /// variable on purpose).
    #[arg(long)]
    test_faults: bool,
    /// Mark an alarm escalated when no dispatcher has acknowledged it this many seconds after
    /// it was raised.
    #[arg(long, env = "CREWSAFE_ESCALATE_AFTER_SECS", default_value_t = crewsafe_server::DEFAULT_ESCALATE_AFTER.as_secs())]
    escalate_after_secs: u64,
    /// Length of one lone-worker check-in "minute" in milliseconds. For tests and demos only:
    /// production keeps the default, a real minute.
    #[arg(long, env = "CREWSAFE_CHECK_IN_MINUTE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    check_in_minute_ms: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Timeouts, the connection cap, the batch limit and the rate limit ([`Limits`]).
#[derive(Debug, Args)]
struct LimitArgs {
    /// Seconds a client may take to send the request line and headers.
    #[arg(long, env = "CREWSAFE_HEADER_TIMEOUT_SECS", default_value_t = Limits::default().header_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_secs: u64,
    /// Seconds a client may take to send a request body in total (answered 408 above).
    #[arg(long, env = "CREWSAFE_BODY_TIMEOUT_SECS", default_value_t = Limits::default().body_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_secs: u64,
    /// Longest pause, in seconds, while a client sends a request body (answered 408 above).
    #[arg(long, env = "CREWSAFE_BODY_IDLE_TIMEOUT_SECS", default_value_t = Limits::default().body_idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    body_idle_timeout_secs: u64,
    /// Connections served at once; further ones wait in the listen backlog. Keep it below
    /// the process's file descriptor limit (`ulimit -n`, systemd `LimitNOFILE=`).
    #[arg(long, env = "CREWSAFE_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Requests per second one device may send in the long run; 0 turns the limit off.
    #[arg(long, env = "CREWSAFE_DEVICE_RATE", default_value_t = Limits::default().device_rate_per_sec)]
    device_rate: u32,
    /// Requests one device may send at once after a quiet spell.
    #[arg(long, env = "CREWSAFE_DEVICE_BURST", default_value_t = Limits::default().device_burst, value_parser = clap::value_parser!(u32).range(1..))]
    device_burst: u32,
    /// Milliseconds /readyz (and /metrics' alarm gauges) wait for the database.
    #[arg(long, env = "CREWSAFE_READY_TIMEOUT_MS", default_value_t = Limits::default().ready_timeout.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    ready_timeout_ms: u64,
    /// Batches decoded and stored at once (default: twice the cores); further ones wait for
    /// their turn, holding only their body. Each takes about 8 MB per 1000 records of 1 KiB.
    #[arg(long, env = "CREWSAFE_MAX_CONCURRENT_BATCHES", default_value_t = Limits::default().max_concurrent_batches as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent_batches: u64,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            body_idle_timeout: Duration::from_secs(self.body_idle_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            device_rate_per_sec: self.device_rate,
            device_burst: self.device_burst,
            ready_timeout: Duration::from_millis(self.ready_timeout_ms),
            max_concurrent_batches: usize::try_from(self.max_concurrent_batches)
                .unwrap_or(usize::MAX),
        }
    }
}

/// Writes one JSON object per line to stderr: `ts`, `level`, `target`, `msg`, and the
/// record's key-values (the access log's request id, route, status...). The level is
/// `log::max_level()`.
struct JsonLogger;

static LOGGER: JsonLogger = JsonLogger;

/// Collects a record's key-values into a JSON object: numbers and booleans stay numbers
/// and booleans, absent values (`None`) are left out, anything else becomes a string.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let mut json = Json(None);
        value.visit(&mut json)?;
        if let Some(v) = json.0 {
            self.0.insert(key.as_str().to_string(), v);
        }
        Ok(())
    }
}

/// One key-value's value as JSON (`None` for an absent one).
struct Json(Option<serde_json::Value>);

impl<'v> log::kv::VisitValue<'v> for Json {
    fn visit_any(&mut self, value: log::kv::Value<'_>) -> Result<(), log::kv::Error> {
        self.0 = Some(value.to_string().into());
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), log::kv::Error> {
        self.0 = None;
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        // Milliseconds to the microsecond are plenty.
        self.0 = Some(((value * 1000.0).round() / 1000.0).into());
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0 = Some(value.into());
        Ok(())
    }
}

impl log::Log for JsonLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("crewsafe_server")
                || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = serde_json::Map::new();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("ts".into(), now.into());
        line.insert(
            "level".into(),
            record.level().as_str().to_ascii_lowercase().into(),
        );
        line.insert("target".into(), record.target().into());
        line.insert("msg".into(), record.args().to_string().into());
        let _ = record.key_values().visit(&mut Fields(&mut line));
        eprintln!("{}", serde_json::Value::Object(line));
    }

    fn flush(&self) {}
}

fn init_logging() {
    let level = match std::env::var("CREWSAFE_LOG").as_deref() {
        Ok("off") => log::LevelFilter::Off,
        Ok("error") => log::LevelFilter::Error,
        Ok("warn") => log::LevelFilter::Warn,
        Ok("debug") => log::LevelFilter::Debug,
        Ok("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let database = args.db.database()?;
    let listen = args.listen.ok_or("--listen is required")?;
    let mut config = ServerConfig::on(database, listen);
    if let (Some(cert_pem), Some(key_pem)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsConfig { cert_pem, key_pem });
    }
    config.test_faults = args.test_faults;
    config.escalate_after = Duration::from_secs(args.escalate_after_secs);
    config.check_in_minute = Duration::from_millis(args.check_in_minute_ms);
    config.limits = args.limits.limits();
    if config.check_in_minute != crewsafe_server::DEFAULT_CHECK_IN_MINUTE {
        log::warn!(
            "a check-in minute lasts {} ms (for tests and demos only)",
            args.check_in_minute_ms
        );
    }
    if config.test_faults {
        log::warn!("test fault mode is ON: never use this in production");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let server = start(config).map_err(|e| e.to_string())?;
    println!("listening on {}", server.url());
    let _ = std::io::stdout().flush();
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
    log::info!("shutting down");
    server.shutdown();
    Ok(())
}

/// Prints one line per enrollment: `device` or `dispatcher`, the time its token was issued and
/// the id or name (last, as it may hold spaces).
fn list_tokens(db: &Database) -> crewsafe_server::Result<()> {
    let store = ServerStore::connect(db)?;
    let rows = [
        ("device", store.devices()?),
        ("dispatcher", store.dispatchers()?),
    ];
    for (kind, list) in rows {
        for e in list {
            let at = e
                .enrolled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            println!("{kind:<10} {at} {}", e.name);
        }
    }
    Ok(())
}

/// Revokes one enrollment; an error if there was none (so scripts notice a typo).
fn revoke(
    db: &Database,
    kind: &str,
    name: &str,
    f: impl FnOnce(&ServerStore, &str) -> crewsafe_server::Result<bool>,
) -> Result<(), String> {
    let store = ServerStore::connect(db).map_err(|e| e.to_string())?;
    if f(&store, name).map_err(|e| e.to_string())? {
        println!("revoked {kind} {name}");
        Ok(())
    } else {
        Err(format!("no {kind} {name:?} is enrolled"))
    }
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::EnrollDevice { db, device_id }) => db.database().and_then(|db| {
            ServerStore::connect(&db)
                .and_then(|s| s.enroll_device(&device_id))
                .map(|token| println!("{token}"))
                .map_err(|e| e.to_string())
        }),
        Some(Command::EnrollDispatcher { db, name }) => db.database().and_then(|db| {
            ServerStore::connect(&db)
                .and_then(|s| s.enroll_dispatcher(&name))
                .map(|token| println!("{token}"))
                .map_err(|e| e.to_string())
        }),
        Some(Command::ListTokens { db }) => db
            .database()
            .and_then(|db| list_tokens(&db).map_err(|e| e.to_string())),
        Some(Command::RevokeDevice { db, device_id }) => db
            .database()
            .and_then(|db| revoke(&db, "device", &device_id, |s, id| s.revoke_device(id))),
        Some(Command::RevokeDispatcher { db, name }) => db.database().and_then(|db| {
            revoke(&db, "dispatcher", &name, |s, name| {
                s.revoke_dispatcher(name)
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crewsafe-server: {e}");
            ExitCode::FAILURE
        }
    }
}
