//! How the core reaches the national server: [`SyncConfig`], its defaults and its bounds.

use crewsafe_protocol as proto;

use super::transport;

/// How the core talks to the national server.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncConfig {
    /// Base URL of the national server. `https://` is required, except `http://` to a
    /// loopback address (127.0.0.0/8, ::1, localhost) for local testing. The host name is
    /// ASCII: an international one is written in its `xn--` form.
    pub server_url: String,
    /// Base64 SHA-256 digests of the server's SubjectPublicKeyInfo. When not empty, a server
    /// whose key matches none of them is refused before anything is sent. Add a backup pin.
    #[uniffi(default)]
    pub spki_pins: Vec<String>,
    /// Extra trusted root certificates in PEM (a private national CA, or a test CA), added to
    /// the built-in Mozilla roots.
    #[uniffi(default)]
    pub extra_root_certs_pem: Option<String>,
    /// TCP and TLS connect timeout (1 ms to 2 minutes).
    #[uniffi(default = 10000)]
    pub connect_timeout_ms: u64,
    /// Timeout of a whole request (1 ms to 10 minutes).
    #[uniffi(default = 30000)]
    pub request_timeout_ms: u64,
    /// Most records per upload (1 to 1000). Uploads start at 50 records (or this cap, if
    /// lower), double while they are answered quickly, and halve when one is slow or times
    /// out, so that a slow link still gets every batch through within `request_timeout_ms`.
    #[uniffi(default = 1000)]
    pub max_batch_records: u32,
    /// Most bytes per upload body, 1 KiB to 4 MiB (a single larger record is still sent
    /// alone).
    #[uniffi(default = 524288)]
    pub max_batch_bytes: u64,
    /// How long a delivered record's content stays readable on the phone before it is purged
    /// (its id and state stay): 0 to 3650 days.
    #[uniffi(default = 7)]
    pub retention_days: u32,
    /// First retry delay; doubles with every consecutive failure (with jitter). 1 ms to 1 day.
    #[uniffi(default = 2000)]
    pub backoff_base_ms: u64,
    /// Longest retry delay: at least `backoff_base_ms`, at most 1 day.
    #[uniffi(default = 300000)]
    pub backoff_max_ms: u64,
    /// How long one status watch request waits on the server for news about open SOS
    /// alarms, 5 to 55 seconds; 0 turns the watch off (statuses then arrive only with a sync).
    /// While an alarm is open and the network is up, the phone makes about
    /// 3600 / this many requests an hour (72 at the default), and none otherwise.
    #[uniffi(default = 50)]
    pub status_watch_seconds: u32,
}

impl SyncConfig {
    /// Defaults for everything but the server URL.
    pub fn new(server_url: impl Into<String>) -> Self {
        SyncConfig {
            server_url: server_url.into(),
            spki_pins: vec![],
            extra_root_certs_pem: None,
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_batch_records: 1000,
            max_batch_bytes: 512 * 1024,
            retention_days: 7,
            backoff_base_ms: 2_000,
            backoff_max_ms: 300_000,
            status_watch_seconds: 50,
        }
    }

    pub(super) fn validate(&self) -> Result<(), transport::ConfigError> {
        let within = |field: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(transport::ConfigError {
                    field,
                    reason: format!("must be between {min} and {max}"),
                })
            }
        };
        within(
            "max_batch_records",
            self.max_batch_records.into(),
            1,
            proto::MAX_BATCH_RECORDS as u64,
        )?;
        within(
            "max_batch_bytes",
            self.max_batch_bytes,
            1024,
            proto::MAX_BODY_BYTES as u64,
        )?;
        within(
            "connect_timeout_ms",
            self.connect_timeout_ms,
            1,
            MAX_CONNECT_TIMEOUT_MS,
        )?;
        within(
            "request_timeout_ms",
            self.request_timeout_ms,
            1,
            MAX_REQUEST_TIMEOUT_MS,
        )?;
        within("backoff_base_ms", self.backoff_base_ms, 1, MAX_BACKOFF_MS)?;
        within(
            "backoff_max_ms",
            self.backoff_max_ms,
            self.backoff_base_ms,
            MAX_BACKOFF_MS,
        )?;
        if self.status_watch_seconds != 0 {
            within(
                "status_watch_seconds",
                self.status_watch_seconds.into(),
                MIN_WATCH_SECONDS.into(),
                proto::MAX_WATCH_SECONDS.into(),
            )?;
        }
        within(
            "retention_days",
            self.retention_days.into(),
            0,
            MAX_RETENTION_DAYS.into(),
        )
    }
}

/// Shortest `status_watch_seconds` other than 0 (off).
pub const MIN_WATCH_SECONDS: u32 = 5;
/// Longest `connect_timeout_ms`: 2 minutes.
pub const MAX_CONNECT_TIMEOUT_MS: u64 = 120_000;
/// Longest `request_timeout_ms`: 10 minutes.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 600_000;
/// Longest `backoff_base_ms` and `backoff_max_ms`: 1 day.
pub const MAX_BACKOFF_MS: u64 = 86_400_000;
/// Longest `retention_days`: 10 years.
pub const MAX_RETENTION_DAYS: u32 = 3_650;
