//! How to run the server: the database file, the listen address, TLS, the alarm timings and
//! the test fault mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`ServerConfig::escalate_after`].
pub const DEFAULT_ESCALATE_AFTER: Duration = Duration::from_secs(120);
/// Default of [`ServerConfig::check_in_minute`]: a real minute.
pub const DEFAULT_CHECK_IN_MINUTE: Duration = Duration::from_secs(60);

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
    /// SQLite file (created if missing).
    pub db_path: PathBuf,
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
}

impl ServerConfig {
    /// Plain HTTP, no test faults.
    pub fn new(db_path: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            db_path: db_path.into(),
            listen,
            tls: None,
            test_faults: false,
            escalate_after: DEFAULT_ESCALATE_AFTER,
            check_in_minute: DEFAULT_CHECK_IN_MINUTE,
        }
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
