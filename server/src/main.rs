//! `crewsafe-server`: runs the reference server or enrolls devices and dispatchers.
//!
//! ```text
//! crewsafe-server --db server.db --listen 127.0.0.1:8080 [--tls-cert c.pem --tls-key k.pem] [--test-faults]
//!                 [--escalate-after-secs 120] [--check-in-minute-ms 60000]
//! crewsafe-server serve --db server.db --listen 127.0.0.1:8080 ...      (same)
//! crewsafe-server enroll-device --db server.db --device-id X             (prints the token)
//! crewsafe-server enroll-dispatcher --db server.db --name N              (prints the token)
//! ```
//!
//! When serving, the first line on stdout is `listening on URL` (useful with port 0). Request
//! logs go to stderr; `CREWSAFE_LOG=debug|info|warn|error|off` sets the level (default info).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use crewsafe_server::{enroll_device, enroll_dispatcher, start, ServerConfig, TlsConfig};

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
        /// SQLite database file.
        #[arg(long)]
        db: PathBuf,
        /// Device id, as the phone puts it in `crew.device_id`.
        #[arg(long)]
        device_id: String,
    },
    /// Enroll or re-enroll a dispatcher and print its bearer token.
    EnrollDispatcher {
        /// SQLite database file.
        #[arg(long)]
        db: PathBuf,
        /// Dispatcher name, recorded with every acknowledge and resolve.
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// SQLite database file (created if missing).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Enable the test fault mode (/test/faults). Never in production.
    #[arg(long)]
    test_faults: bool,
    /// Mark an alarm escalated when no dispatcher has acknowledged it this many seconds after
    /// it was raised.
    #[arg(long, default_value_t = crewsafe_server::DEFAULT_ESCALATE_AFTER.as_secs())]
    escalate_after_secs: u64,
    /// Length of one lone-worker check-in "minute" in milliseconds. For tests and demos only:
    /// production keeps the default, a real minute.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    check_in_minute_ms: u64,
}

/// Writes log lines to stderr; the level is `log::max_level()`.
struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("crewsafe_server")
                || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            eprintln!("{now} {:<5} {}", record.level(), record.args());
        }
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
    let db = args.db.ok_or("--db is required")?;
    let listen = args.listen.ok_or("--listen is required")?;
    let mut config = ServerConfig::new(db, listen);
    if let (Some(cert_pem), Some(key_pem)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(TlsConfig { cert_pem, key_pem });
    }
    config.test_faults = args.test_faults;
    config.escalate_after = Duration::from_secs(args.escalate_after_secs);
    config.check_in_minute = Duration::from_millis(args.check_in_minute_ms);
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

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::EnrollDevice { db, device_id }) => enroll_device(&db, &device_id)
            .map(|token| println!("{token}"))
            .map_err(|e| e.to_string()),
        Some(Command::EnrollDispatcher { db, name }) => enroll_dispatcher(&db, &name)
            .map(|token| println!("{token}"))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crewsafe-server: {e}");
            ExitCode::FAILURE
        }
    }
}
