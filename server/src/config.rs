//! How to run the server: the database (an SQLite file, or PostgreSQL), the listen address,
//! TLS, the alarm timings and the test fault mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ServerConfig::escalate_after`].
pub const DEFAULT_ESCALATE_AFTER: Duration = Duration::from_secs(120);
/// Default of [`ServerConfig::check_in_minute`]: a real minute.
pub const DEFAULT_CHECK_IN_MINUTE: Duration = Duration::from_secs(60);

/// Where the server keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (created if missing): the embedded default, for tests, demos and small
    /// sites. One server process at a time.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://user:password@host:5432/dbname`) or as
    /// `key=value` pairs (`host=/run/postgresql dbname=crewsafe`). Several server processes
    /// may share it. The schema is created or upgraded at start.
    Postgres(String),
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl From<&std::path::Path> for Database {
    fn from(path: &std::path::Path) -> Self {
        Database::Sqlite(path.to_path_buf())
    }
}

impl std::fmt::Debug for Database {
    /// Never shows a PostgreSQL password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(c) => write!(
                    f,
                    "Postgres(host {:?} port {:?} user {:?} dbname {:?})",
                    c.get_hosts(),
                    c.get_ports(),
                    c.get_user(),
                    c.get_dbname()
                ),
                Err(_) => f.write_str("Postgres(unparsable connection string)"),
            },
        }
    }
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert_pem: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: PathBuf,
}

/// How to run the server. A plain struct; [`ServerConfig::new`] and the `with_*` methods are
/// shortcuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The database: an SQLite file (created if missing) or PostgreSQL.
    pub database: Database,
    /// Address to listen on; port 0 picks a free port (see [`crate::RunningServer::addr`]).
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Enable the test fault mode ([`crate::RunningServer::faults`] and `/test/faults`).
    /// Never in production.
    pub test_faults: bool,
    /// An alarm no dispatcher has acknowledged this long after it was raised is marked
    /// escalated (in the dispatcher views and the event stream). Default two minutes.
    pub escalate_after: Duration,
    /// How long one "minute" of a lone-worker check-in lasts. A real minute by default; only
    /// tests and demos shorten it.
    pub check_in_minute: Duration,
    /// Timeouts, the connection cap, the limit on batches processed at once and the
    /// per-device rate limit (off unless set here; the `crewsafe-server` command turns it on).
    pub limits: Limits,
    /// Where report attachments are kept (content-addressed files). Default: beside an SQLite
    /// database (`<database>.media`); on PostgreSQL it must be set (several instances share
    /// it, like the database), else attachment uploads are refused with 500.
    pub media_dir: Option<PathBuf>,
}

/// What the server allows one client: how slowly it may send, how many connections may be
/// open, how often a device may ask; and how many batches it processes at once.
/// [`Limits::default`] holds the production defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers must arrive within this time (default 30 s).
    pub header_timeout: Duration,
    /// A request body must arrive within this time in total (default 30 s)...
    pub body_timeout: Duration,
    /// ...and with no pause longer than this (default 10 s). A slower client is answered 408.
    pub body_idle_timeout: Duration,
    /// Connections served at once (default 4096); further ones wait in the listen backlog
    /// until one closes. Keep it below the process's file descriptor limit.
    pub max_connections: usize,
    /// Requests per second one device may send in the long run (default 10; 0: no limit).
    /// Above it the server answers 429 with `Retry-After`.
    pub device_rate_per_sec: u32,
    /// Requests one device may send at once after a quiet spell (default 100).
    pub device_burst: u32,
    /// How long `/readyz` waits for the database (default 2 s).
    pub ready_timeout: Duration,
    /// Batches decoded and stored at once, server-wide (default twice the available cores; at
    /// least 1). Each takes about 8 MB per 1000 records of 1 KiB while it is processed; further
    /// batches wait for their turn in arrival order (they are not refused), holding only their
    /// body, which is read before the wait so that a slow client never holds a turn.
    pub max_concurrent_batches: usize,
}

/// Default of [`Limits::max_concurrent_batches`]: twice the available cores (decoding and
/// validation are CPU work; the second batch per core covers the database's round trips).
fn default_max_concurrent_batches() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().saturating_mul(2))
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(10),
            max_connections: 4096,
            device_rate_per_sec: 10,
            device_burst: 100,
            ready_timeout: Duration::from_secs(2),
            max_concurrent_batches: default_max_concurrent_batches(),
        }
    }
}

impl ServerConfig {
    /// On the SQLite file `db_path`: plain HTTP, no test faults.
    pub fn new(db_path: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self::on(Database::Sqlite(db_path.into()), listen)
    }

    /// On `database`: plain HTTP, no test faults, [`Limits::default`] but without the
    /// per-device rate limit (the `crewsafe-server` command sets it).
    pub fn on(database: Database, listen: SocketAddr) -> Self {
        Self {
            database,
            listen,
            tls: None,
            test_faults: false,
            escalate_after: DEFAULT_ESCALATE_AFTER,
            check_in_minute: DEFAULT_CHECK_IN_MINUTE,
            // Tests, benchmarks and demos send as fast as they can from one device.
            limits: Limits {
                device_rate_per_sec: 0,
                ..Limits::default()
            },
            media_dir: None,
        }
    }

    /// Keeps report attachments in `dir`.
    pub fn with_media_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.media_dir = Some(dir.into());
        self
    }

    /// The attachment folder in use: the configured one, else beside an SQLite database.
    pub(crate) fn media_root(&self) -> Option<PathBuf> {
        self.media_dir.clone().or_else(|| match &self.database {
            Database::Sqlite(path) => {
                let mut dir = path.as_os_str().to_owned();
                dir.push(".media");
                Some(dir.into())
            }
            Database::Postgres(_) => None,
        })
    }

    /// Marks unacknowledged alarms escalated after `after`.
    pub fn with_escalate_after(mut self, after: Duration) -> Self {
        self.escalate_after = after;
        self
    }

    /// Makes a check-in minute last `minute` (tests and demos).
    pub fn with_check_in_minute(mut self, minute: Duration) -> Self {
        self.check_in_minute = minute;
        self
    }

    /// Decodes and stores at most `n` batches at once (at least 1; see
    /// [`Limits::max_concurrent_batches`]).
    pub fn with_max_concurrent_batches(mut self, n: usize) -> Self {
        self.limits.max_concurrent_batches = n.max(1);
        self
    }

    /// Serves HTTPS with these PEM files.
    pub fn with_tls(mut self, cert_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        self.tls = Some(TlsConfig {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        });
        self
    }

    /// Turns the test fault mode on.
    pub fn with_test_faults(mut self) -> Self {
        self.test_faults = true;
        self
    }
}
