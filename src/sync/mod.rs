//! The sync engine: drains the outbox to the national server, SOS lane first, exactly once.
//!
//! One sync at a time. For each lane (SOS, then reports) it takes the next rows in upload
//! order up to the lane's current upload size (which follows the link: [`sizing`]) and the
//! byte cap, marks them `sending` (in memory), posts them without holding the database lock,
//! and applies the per-record answers in one transaction: accepted or duplicate → delivered,
//! conflict or rejected → wedged with the reason, no answer → queued again. Once every record
//! of a batch has its answer, the next batch goes out while that answer is being applied (the
//! server already holds the batch before it, so order within a lane is kept). A lost answer
//! after the server committed leads to a resend that the server answers `duplicate`, so there
//! is never a second copy. Network errors, 408, 429, 5xx and timeouts (which also halve the
//! upload size) put the rows back and schedule the lane with backoff (and the server's
//! Retry-After as a floor); a 401 asks the host for a fresh token once, then stops with
//! `Unauthorized`.

pub mod backoff;
pub mod sizing;
pub mod transport;
pub mod wire;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crewsafe_protocol as proto;
use zeroize::Zeroizing;

use crate::db::outbox::{Horizon, Outcome, RecordChange};
use crate::error::{CrewSafeError, StoreError};
use crate::model::{DispatchStatus, Lane, RecordKind};
use crate::observer::{HostError, SyncPhase, SyncProgress, TokenProvider};
use crate::store::Shared;
use sizing::{BatchSizer, Upload};
use transport::{Transport, TransportError};

/// How the core talks to the national server.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncConfig {
    /// Base URL of the national server. `https://` is required, except `http://` to a
    /// loopback address (127.0.0.0/8, ::1, localhost) for local testing.
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
        }
    }

    fn validate(&self) -> Result<(), transport::ConfigError> {
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
        within(
            "retention_days",
            self.retention_days.into(),
            0,
            MAX_RETENTION_DAYS.into(),
        )
    }
}

/// Longest `connect_timeout_ms`: 2 minutes.
pub const MAX_CONNECT_TIMEOUT_MS: u64 = 120_000;
/// Longest `request_timeout_ms`: 10 minutes.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 600_000;
/// Longest `backoff_base_ms` and `backoff_max_ms`: 1 day.
pub const MAX_BACKOFF_MS: u64 = 86_400_000;
/// Longest `retention_days`: 10 years.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncOutcome {
    /// Nothing left to send.
    Complete,
    /// Work is left: its lane waits for its retry time (call again after `next_attempt_at`),
    /// or records were queued while this sync ran (no `next_attempt_at`: call again; the
    /// background worker does). A sync delivers what was queued when it started plus SOS
    /// alarms raised meanwhile, so that it ends while records keep arriving.
    Deferred,
    /// The server or network failed; the records are still queued and will be retried.
    WillRetry {
        /// What went wrong (no content).
        reason: String,
    },
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Records put on the wire (a resend counts again).
    pub sent: u32,
    /// Records the server stored for the first time.
    pub accepted: u32,
    /// Records the server already had (a resend after a lost answer).
    pub duplicates: u32,
    /// Records the server refused for good in this sync.
    pub wedged: u32,
    /// SOS records still waiting.
    pub pending_sos: u64,
    /// Reports still waiting.
    pub pending_reports: u64,
    /// When pending work may be tried again, if it is waiting for a retry time.
    pub next_attempt_at: Option<SystemTime>,
    /// How it ended.
    pub outcome: SyncOutcome,
}

/// The sync layer's internal error.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `configure_sync` was not called.
    #[error("sync is not configured")]
    NotConfigured,
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] transport::ConfigError),
    /// The server refused the token even after a refresh.
    #[error("the server refused the device token")]
    Unauthorized,
    /// The token provider failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Pin mismatch.
    #[error("pin mismatch")]
    PinMismatch,
    /// Untrusted certificate.
    #[error("certificate rejected: {0}")]
    Certificate(String),
    /// The server, or something in front of it, refused the request itself (not a record).
    #[error("the server refused the request with status {status}")]
    ServerRejected {
        /// HTTP status.
        status: u16,
    },
    /// The token provider returned a token that cannot be sent.
    #[error("the device token cannot be sent: {0}")]
    InvalidToken(String),
}

impl From<SyncError> for CrewSafeError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(e) => e.into(),
            SyncError::NotConfigured => CrewSafeError::not_configured(),
            SyncError::Config(c) => CrewSafeError::InvalidInput {
                field: c.field.into(),
                reason: c.reason,
            },
            SyncError::Unauthorized => CrewSafeError::unauthorized(),
            SyncError::Host(HostError::Failed { reason }) => CrewSafeError::HostFailed { reason },
            SyncError::PinMismatch => CrewSafeError::pin_mismatch(),
            SyncError::Certificate(reason) => CrewSafeError::CertificateRejected { reason },
            SyncError::ServerRejected { status } => CrewSafeError::ServerRejectedRequest { status },
            SyncError::InvalidToken(reason) => CrewSafeError::InvalidDeviceToken { reason },
        }
    }
}

/// A configured sync: transport, token source and settings.
pub struct SyncSetup {
    transport: Transport,
    tokens: Arc<dyn TokenProvider>,
    config: SyncConfig,
    sizer: BatchSizer,
}

impl SyncSetup {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(config: SyncConfig, tokens: Arc<dyn TokenProvider>) -> Result<Self, SyncError> {
        config.validate()?;
        let transport = Transport::new(&transport::TransportConfig {
            server_url: config.server_url.clone(),
            spki_pins: config.spki_pins.clone(),
            extra_roots_pem: config.extra_root_certs_pem.clone(),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        })?;
        let sizer = BatchSizer::new(
            config.max_batch_records,
            Duration::from_millis(config.request_timeout_ms),
        );
        Ok(SyncSetup {
            transport,
            tokens,
            config,
            sizer,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms_to_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A device token from the host, checked to fit an HTTP header.
fn checked_token(token: String) -> Result<Zeroizing<String>, SyncError> {
    let token = Zeroizing::new(token);
    transport::check_token(&token).map_err(|reason| SyncError::InvalidToken(reason.into()))?;
    Ok(token)
}

/// Why a record the server refused alone, while accepting others, is wedged.
fn refused_alone(status: u16) -> String {
    format!("the server refused this record (status {status}) while accepting others")
}

/// One upload in preparation: ids in order, their kinds and the JSON body.
struct Batch {
    ids: Vec<String>,
    kinds: Vec<RecordKind>,
    body: Vec<u8>,
}

/// What reading the next rows of a lane found.
enum Read {
    /// Nothing queued.
    Empty,
    /// The next upload.
    Batch(Batch),
    /// The next row (this id) cannot be opened on this phone, for this reason (no content).
    Unreadable(String, String),
    /// The next row (this id) is a follow-up of a record held back while a refusal is being
    /// judged: it is held back too.
    Held(String, RecordKind),
}

/// How many records are tried alone, in a row, after a whole-request refusal (400/422) of a
/// single record, before the server rather than a record is blamed.
const MAX_SUSPECTS: usize = 3;

/// A lane's records that the server refused alone as a whole request (400/422), held back (in
/// flight, not sent again) until the run shows whether the server accepts other records, with
/// the follow-ups of those records (held back unsent).
#[derive(Default)]
struct Suspects {
    /// Refused alone, in order.
    refused: Vec<String>,
    /// Follow-ups of refused records, never sent in this run.
    followers: Vec<String>,
    /// Both of the above: a row whose parent is in here is held back too.
    held: std::collections::HashSet<String>,
    /// The status of the last refusal.
    status: u16,
}

/// A batch answer sorted out: what the server said per record, and the records it said
/// nothing about.
struct Answered {
    outcomes: Vec<(String, Outcome)>,
    missing: Vec<String>,
}

/// An upload's answer (or why there is none), the batch read meanwhile, and how long the
/// upload took.
type Posted = (
    Result<proto::BatchResponse, TransportError>,
    Option<Batch>,
    Duration,
);

/// A running sync's bookkeeping.
struct Run<'a> {
    shared: &'a Shared,
    setup: &'a SyncSetup,
    report: SyncReport,
    token: Zeroizing<String>,
    refreshed: bool,
    /// The server accepted (or already had) at least one record in this run.
    accepted_any: bool,
    /// What this sync delivers: what was queued when it started, and SOS alarms raised since
    /// (so that a sync in a time-boxed background job ends while records keep arriving).
    horizon: Horizon,
}

/// Runs one sync. Only one runs at a time; a second caller waits for the first. An error
/// also reaches the sync listeners (a `Finished` progress carrying it).
pub(crate) fn sync_now(shared: &Shared) -> Result<SyncReport, CrewSafeError> {
    refuse_reentry()?;
    let _one = shared.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
    sync_locked(shared)
}

thread_local! {
    /// Whether this thread is running a sync (and so may be inside one of its callbacks).
    static SYNCING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as syncing for as long as it lives.
struct SyncingHere;

impl SyncingHere {
    fn enter() -> SyncingHere {
        SYNCING.with(|s| s.set(true));
        SyncingHere
    }
}

impl Drop for SyncingHere {
    fn drop(&mut self) {
        SYNCING.with(|s| s.set(false));
    }
}

/// Refuses a sync started from inside a callback of a sync on the same thread (it would wait
/// for itself).
pub(crate) fn refuse_reentry() -> Result<(), CrewSafeError> {
    if SYNCING.with(|s| s.get()) {
        return Err(CrewSafeError::InvalidState {
            reason: "sync_now was called from a callback of a running sync; that sync goes on \
                     and the worker picks up what it does not deliver"
                .into(),
        });
    }
    Ok(())
}

/// Runs one sync; the caller holds the sync lock.
pub(crate) fn sync_locked(shared: &Shared) -> Result<SyncReport, CrewSafeError> {
    let _here = SyncingHere::enter();
    let setup = shared.sync_setup().ok_or(SyncError::NotConfigured)?;
    shared
        .db(|db| {
            db.clear_in_flight();
            Ok(())
        })
        .map_err(SyncError::from)?;
    let mut run = Run {
        shared,
        setup: &setup,
        report: SyncReport {
            sent: 0,
            accepted: 0,
            duplicates: 0,
            wedged: 0,
            pending_sos: 0,
            pending_reports: 0,
            next_attempt_at: None,
            outcome: SyncOutcome::Complete,
        },
        token: Zeroizing::new(String::new()),
        refreshed: false,
        accepted_any: false,
        horizon: Horizon::QueuedBy(shared.db(|db| db.last_seq()).map_err(SyncError::from)?),
    };
    run.progress(SyncPhase::Started, None);
    let result = run.run();
    // Whatever happened, nothing may stay marked as in flight.
    let cleared = shared.db(|db| {
        db.clear_in_flight();
        Ok(())
    });
    match result
        .and_then(|()| Ok(cleared?))
        .and_then(|()| run.finish())
    {
        Ok(report) => Ok(report),
        Err(e) => {
            let e = CrewSafeError::from(e);
            run.failed(&e);
            Err(e)
        }
    }
}

impl Run<'_> {
    fn progress(&self, phase: SyncPhase, lane: Option<Lane>) {
        self.shared.observers.sync(&SyncProgress {
            phase,
            lane,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
            error: None,
        });
    }

    /// Takes the token, drains the lanes, refreshes dispatch statuses and purges.
    fn run(&mut self) -> Result<(), SyncError> {
        self.token = checked_token(self.setup.tokens.token()?)?;
        self.drain()?;
        self.refresh_dispatch_status();
        let cutoff = now_ms() - i64::from(self.setup.config.retention_days) * 86_400_000;
        self.shared.db(|db| db.purge_delivered(cutoff))?;
        Ok(())
    }

    /// Tells sync listeners that this sync ended with an error.
    fn failed(&self, e: &CrewSafeError) {
        self.shared.observers.sync(&SyncProgress {
            phase: SyncPhase::Finished,
            lane: None,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
            error: Some(e.clone()),
        });
    }

    fn changed(&self, changes: Vec<RecordChange>) {
        self.shared.observers.records(&changes);
    }

    /// SOS lane to the end, then the report lane.
    fn drain(&mut self) -> Result<(), SyncError> {
        for lane in [Lane::Sos, Lane::Report] {
            if !self.drain_lane(lane)? {
                break;
            }
        }
        Ok(())
    }

    /// Sends batches of one lane until it is empty or held. Returns false if the whole sync
    /// should stop (a network-wide failure).
    ///
    /// When every record of a batch got an answer, the next batch of the lane goes out while
    /// that answer is applied on another thread: the server already holds the previous batch,
    /// so order within the lane is kept, and the phone's commit overlaps the server's work. A
    /// batch with unanswered records is applied first (they go back to the queue ahead of
    /// anything later), and so is one after which an SOS is waiting behind reports.
    ///
    /// Batch sizes follow the link (see [`sizing`]): each answer, timeout or `413` adjusts
    /// the lane's size for the uploads after it.
    fn drain_lane(&mut self, lane: Lane) -> Result<bool, SyncError> {
        let sizer = &self.setup.sizer;
        let mut limit = sizer.limit(lane);
        // A batch already marked sending, with the previous answer to apply meanwhile.
        let mut carried: Option<(Batch, Answered)> = None;
        let mut suspects = Suspects::default();
        loop {
            let (batch, previous) = match carried.take() {
                Some((batch, previous)) => (batch, Some(previous)),
                None => {
                    // An SOS queued while reports upload (many batches can take minutes on a
                    // slow link) goes before the next report batch, not after the lane.
                    if self.sos_waits_behind(lane)? && !self.drain_lane(Lane::Sos)? {
                        self.release(&suspects)?;
                        return Ok(false);
                    }
                    if self.shared.db(|db| db.lane_hold(lane, now_ms()))?.is_some() {
                        self.release(&suspects)?;
                        self.report.outcome = SyncOutcome::Deferred;
                        return Ok(true);
                    }
                    let Some(batch) = self.start_batch(lane, limit, &mut suspects)? else {
                        if suspects.refused.is_empty() {
                            return Ok(true);
                        }
                        // Every record tried alone was refused as a whole request.
                        let status = suspects.status;
                        return self.server_rejected(lane, &[], &suspects, status);
                    };
                    (batch, None)
                }
            };
            let Batch { ids, body, .. } = batch;
            let (posted, read_ahead, took) =
                self.post_while_applying(lane, body, previous, limit, &suspects.held)?;
            match posted {
                Ok(answer) => {
                    let answered = self.judge(&ids, answer);
                    if answered.outcomes.is_empty() {
                        self.apply_answer(lane, &answered)?;
                        self.release(&suspects)?;
                        return self.retry_later(lane, "the server processed nothing".into(), None);
                    }
                    if self.accepted_any && !suspects.refused.is_empty() {
                        self.convict(&mut suspects)?;
                    }
                    limit = sizer.record(lane, ids.len(), Upload::Answered(took));
                    if answered.missing.is_empty() && !self.sos_waits_behind(lane)? {
                        // The batch read during the upload if it is within the new size;
                        // otherwise (or if the lane looked empty or held an unreadable row)
                        // a fresh read.
                        let next = match read_ahead {
                            Some(batch) if batch.ids.len() <= limit as usize => {
                                Some(self.begin(lane, batch)?)
                            }
                            _ => self.start_batch(lane, limit, &mut suspects)?,
                        };
                        if let Some(next) = next {
                            carried = Some((next, answered));
                            continue;
                        }
                    }
                    self.apply_answer(lane, &answered)?;
                }
                Err(TransportError::BadRequest { status }) if ids.len() == 1 => {
                    if self.accepted_any {
                        // The server takes other records but not this one.
                        self.requeue(&ids)?;
                        self.wedge(&ids[0], refused_alone(status))?;
                        continue;
                    }
                    // Not proven yet: hold it back (it stays in flight, so reads pass it) and
                    // try the next record alone.
                    suspects.refused.push(ids[0].clone());
                    suspects.held.insert(ids[0].clone());
                    suspects.status = status;
                    if suspects.refused.len() >= MAX_SUSPECTS {
                        return self.server_rejected(lane, &[], &suspects, status);
                    }
                    limit = 1;
                }
                Err(TransportError::ServerRejected { status }) => {
                    return self.server_rejected(lane, &ids, &suspects, status);
                }
                Err(e) => {
                    self.requeue(&ids)?;
                    match e {
                        TransportError::Unauthorized => {
                            if let Err(e) = self.refresh_token() {
                                self.release(&suspects)?;
                                return Err(e);
                            }
                        }
                        TransportError::TooLarge | TransportError::BadRequest { .. }
                            if ids.len() > 1 =>
                        {
                            // Halve to find the record that breaks the request.
                            limit = if e == TransportError::TooLarge {
                                sizer.record(lane, ids.len(), Upload::TooLarge)
                            } else {
                                (ids.len() as u32 / 2).max(1)
                            };
                        }
                        TransportError::TooLarge => {
                            // A single record over the server's body limit: the server proves
                            // this record cannot be taken.
                            self.wedge(&ids[0], e.to_string())?;
                        }
                        other => {
                            self.release(&suspects)?;
                            return self.transport_failed(lane, ids.len(), other);
                        }
                    }
                }
            }
        }
    }

    /// Ends the lane after a failure that needs no per-record decision: retried later, and
    /// certificate problems also end the sync with their error.
    fn transport_failed(
        &mut self,
        lane: Lane,
        count: usize,
        e: TransportError,
    ) -> Result<bool, SyncError> {
        match e {
            TransportError::Retryable {
                reason,
                retry_after_secs,
            } => self.retry_later(lane, reason, retry_after_secs),
            TransportError::TimedOut => {
                self.setup.sizer.record(lane, count, Upload::TimedOut);
                self.retry_later(lane, "timed out".into(), None)
            }
            TransportError::PinMismatch => {
                self.retry_later(lane, e.to_string(), None)?;
                Err(SyncError::PinMismatch)
            }
            TransportError::Certificate { reason } => {
                self.retry_later(lane, reason.clone(), None)?;
                Err(SyncError::Certificate(reason))
            }
            // Handled by the caller; treated as the server's problem if they ever get here.
            TransportError::Unauthorized
            | TransportError::TooLarge
            | TransportError::BadRequest { .. }
            | TransportError::ServerRejected { .. } => {
                self.retry_later(lane, e.to_string(), None)?;
                Err(SyncError::ServerRejected {
                    status: match e {
                        TransportError::BadRequest { status }
                        | TransportError::ServerRejected { status } => status,
                        TransportError::TooLarge => 413,
                        _ => 401,
                    },
                })
            }
        }
    }

    /// The server or its configuration refused the request itself: every record stays queued
    /// (this upload's and the held-back ones), the lane waits with backoff, and the sync ends
    /// with [`SyncError::ServerRejected`].
    fn server_rejected(
        &mut self,
        lane: Lane,
        ids: &[String],
        suspects: &Suspects,
        status: u16,
    ) -> Result<bool, SyncError> {
        self.requeue(ids)?;
        self.release(suspects)?;
        self.retry_later(
            lane,
            format!("the server refused the request with status {status}"),
            None,
        )?;
        Err(SyncError::ServerRejected { status })
    }

    /// Puts records of an upload back in the queue.
    fn requeue(&self, ids: &[String]) -> Result<(), SyncError> {
        let changes = self.shared.db(|db| db.requeue(ids))?;
        self.changed(changes);
        Ok(())
    }

    /// Puts held-back records back in the queue, unjudged (only the refused ones count an
    /// attempt: their followers were never sent).
    fn release(&self, suspects: &Suspects) -> Result<(), SyncError> {
        self.requeue(&suspects.refused)?;
        self.shared.db(|db| {
            db.unhold(&suspects.followers);
            Ok(())
        })?;
        Ok(())
    }

    /// The server accepts other records: the ones it refused alone are wedged, and their
    /// follow-ups go back to the queue (the server answers for each of them).
    fn convict(&mut self, suspects: &mut Suspects) -> Result<(), SyncError> {
        let refused = std::mem::take(&mut suspects.refused);
        self.requeue(&refused)?;
        for id in &refused {
            self.wedge(id, refused_alone(suspects.status))?;
        }
        self.release(suspects)?;
        *suspects = Suspects::default();
        Ok(())
    }

    /// Whether `lane` is the report lane and an SOS-lane record is waiting.
    fn sos_waits_behind(&self, lane: Lane) -> Result<bool, SyncError> {
        Ok(lane == Lane::Report
            && !self
                .shared
                .db(|db| db.queued(Lane::Sos, 1, self.horizon))?
                .is_empty())
    }

    /// Reads the next batch of a lane and marks it sending. Follow-ups of held-back records
    /// are held back too.
    fn start_batch(
        &mut self,
        lane: Lane,
        limit: u32,
        suspects: &mut Suspects,
    ) -> Result<Option<Batch>, SyncError> {
        match self.next_batch(lane, limit, suspects)? {
            Some(batch) => self.begin(lane, batch).map(Some),
            None => Ok(None),
        }
    }

    /// Marks a batch sending.
    fn begin(&mut self, lane: Lane, batch: Batch) -> Result<Batch, SyncError> {
        let sending: Vec<_> = batch
            .ids
            .iter()
            .cloned()
            .zip(batch.kinds.iter().copied())
            .collect();
        let changes = self.shared.db(|db| Ok(db.mark_sending(&sending)))?;
        self.changed(changes);
        self.report.sent += batch.ids.len() as u32;
        log::debug!(
            "uploading {} records ({} bytes) in lane {lane:?}",
            batch.ids.len(),
            batch.body.len()
        );
        Ok(batch)
    }

    /// Posts a batch body. Meanwhile, on another thread, applies `previous` (if given) and
    /// then reads the batch after this one (at most `read_limit` records whose rows are not
    /// in flight), for the caller to send if this upload is fully answered. Also returns how
    /// long the upload took. An error applying `previous` wins over the upload's result
    /// (whose records stay queued on disk and are resent later).
    fn post_while_applying(
        &self,
        lane: Lane,
        body: Vec<u8>,
        previous: Option<Answered>,
        read_limit: u32,
        held: &std::collections::HashSet<String>,
    ) -> Result<Posted, SyncError> {
        std::thread::scope(|s| {
            // No listener is called from this thread: the changes are told on the sync's own
            // thread after the join, so a listener that calls back into the store never
            // waits on a thread that waits for it.
            let meanwhile = s.spawn(|| -> Result<_, SyncError> {
                let applied = match &previous {
                    Some(previous) => Some(self.store_answer(lane, previous)?),
                    None => None,
                };
                // The caller's own read deals with an empty lane, an unreadable row or a
                // failing read: none of them may cost the answer to this upload.
                let next = match self.read_batch(lane, read_limit, held) {
                    Ok(Read::Batch(batch)) => Some(batch),
                    Ok(Read::Empty | Read::Unreadable(..) | Read::Held(..)) => None,
                    Err(e) => {
                        log::debug!("reading ahead in lane {lane:?} failed: {e}");
                        None
                    }
                };
                Ok((applied, next))
            });
            let started = Instant::now();
            let posted = self.setup.transport.post_batch(&self.token, body);
            let took = started.elapsed();
            let (applied, next) = match meanwhile.join() {
                Ok(done) => done?,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            if let Some(changes) = applied {
                self.tell_applied(lane, changes);
            }
            Ok((posted, next, took))
        })
    }

    fn refresh_token(&mut self) -> Result<(), SyncError> {
        if self.refreshed {
            return Err(SyncError::Unauthorized);
        }
        self.refreshed = true;
        self.token = checked_token(self.setup.tokens.refresh_token()?)?;
        Ok(())
    }

    fn wedge(&mut self, id: &str, reason: String) -> Result<(), SyncError> {
        let changes = self
            .shared
            .db(|db| db.apply_outcomes(&[(id.to_string(), Outcome::Wedged { reason })]))?;
        self.report.wedged += changes.len() as u32;
        self.changed(changes);
        Ok(())
    }

    /// Schedules the lane for later and stops this sync.
    fn retry_later(
        &mut self,
        lane: Lane,
        reason: String,
        retry_after_secs: Option<u64>,
    ) -> Result<bool, SyncError> {
        let now = now_ms();
        let cfg = &self.setup.config;
        let hold = retry_after_secs.map(|s| now + (s as i64) * 1000);
        // The lanes after this one would meet the same server or network: they wait too.
        // (Never the other way round: a failing report lane does not hold the SOS lane.)
        let lanes: &[Lane] = match lane {
            Lane::Sos => &[Lane::Sos, Lane::Report],
            Lane::Report => &[Lane::Report],
        };
        let failures = self.shared.db(|db| db.lane_failures(lane))?;
        let delay = backoff::delay_ms(
            failures,
            cfg.backoff_base_ms,
            cfg.backoff_max_ms,
            backoff::draw(),
        );
        for &l in lanes {
            self.shared
                .db(|db| db.lane_failed(l, now + delay as i64, hold))?;
        }
        log::info!("sync of lane {lane:?} will retry: {reason}");
        self.report.outcome = SyncOutcome::WillRetry { reason };
        Ok(false)
    }

    /// Reads the next rows of a lane and builds the request body within the caps. Rows that
    /// cannot be opened on this phone are wedged here.
    fn next_batch(
        &mut self,
        lane: Lane,
        limit: u32,
        suspects: &mut Suspects,
    ) -> Result<Option<Batch>, SyncError> {
        loop {
            match self.read_batch(lane, limit, &suspects.held)? {
                Read::Empty => return Ok(None),
                Read::Batch(batch) => return Ok(Some(batch)),
                Read::Held(id, kind) => {
                    // Counted in flight without being sent, so reads pass it.
                    self.shared.db(|db| {
                        db.hold(&id, kind);
                        Ok(())
                    })?;
                    suspects.held.insert(id.clone());
                    suspects.followers.push(id);
                }
                Read::Unreadable(id, why) => {
                    log::warn!("record {id} cannot be read on this phone: {why}");
                    self.wedge(&id, "the record cannot be read on this phone".into())?
                }
            }
        }
    }

    /// Reads the next rows of a lane and encodes them, within the caps, up to the first row
    /// that cannot be opened on this phone; that row is returned alone when it comes first.
    /// Changes nothing.
    fn read_batch(
        &self,
        lane: Lane,
        limit: u32,
        held: &std::collections::HashSet<String>,
    ) -> Result<Read, SyncError> {
        let rows = self.shared.db(|db| db.queued(lane, limit, self.horizon))?;
        let max_bytes = self.setup.config.max_batch_bytes as usize;
        let mut body = proto::BatchBody::new();
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        for row in rows {
            if let Ok(r) = &row {
                if r.parent_id.as_ref().is_some_and(|p| held.contains(p)) {
                    if ids.is_empty() {
                        return Ok(Read::Held(r.id.clone(), r.kind));
                    }
                    break;
                }
            }
            let (json, id, kind) = match row.map_err(|id| (id, None)).and_then(|r| {
                wire::encode(&r)
                    .map(|json| (json, r.id.clone(), r.kind))
                    .map_err(|e| (r.id.clone(), Some(e)))
            }) {
                Ok(w) => w,
                Err((id, e)) => {
                    if ids.is_empty() {
                        let why =
                            e.map_or_else(|| "its content does not open".into(), |e| e.to_string());
                        return Ok(Read::Unreadable(id, why));
                    }
                    break;
                }
            };
            if !ids.is_empty() && body.len_with(json.len()) > max_bytes {
                break;
            }
            body.push(&json);
            kinds.push(kind);
            ids.push(id);
        }
        if ids.is_empty() {
            return Ok(Read::Empty);
        }
        let body = body.finish();
        Ok(Read::Batch(Batch { ids, kinds, body }))
    }

    /// Sorts a batch answer into per-record outcomes and records without an answer, and
    /// counts them in the report.
    fn judge(&mut self, ids: &[String], answer: proto::BatchResponse) -> Answered {
        let mut by_id: HashMap<String, proto::ItemResult> = answer
            .results
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut answered = Answered {
            outcomes: Vec::new(),
            missing: Vec::new(),
        };
        for id in ids {
            let Some(r) = by_id.remove(id) else {
                answered.missing.push(id.clone());
                continue;
            };
            let outcome = match r.status {
                proto::ItemStatus::Accepted | proto::ItemStatus::Duplicate => {
                    self.accepted_any = true;
                    if r.status == proto::ItemStatus::Accepted {
                        self.report.accepted += 1;
                    } else {
                        self.report.duplicates += 1;
                    }
                    Outcome::Delivered {
                        received_at_ms: r.received_at.map_or_else(now_ms, |t| t.timestamp_millis()),
                    }
                }
                proto::ItemStatus::Conflict | proto::ItemStatus::Rejected => {
                    self.report.wedged += 1;
                    Outcome::Wedged {
                        reason: r.reason.unwrap_or_else(|| format!("{:?}", r.status)),
                    }
                }
            };
            answered.outcomes.push((id.clone(), outcome));
        }
        log::debug!(
            "batch answered: {} results, {} without an answer",
            answered.outcomes.len(),
            answered.missing.len()
        );
        answered
    }

    /// Applies a judged answer and tells listeners.
    fn apply_answer(&self, lane: Lane, answered: &Answered) -> Result<(), SyncError> {
        let changes = self.store_answer(lane, answered)?;
        self.tell_applied(lane, changes);
        Ok(())
    }

    /// Stores a judged answer: outcomes in one transaction, unanswered records back to the
    /// queue. Calls no listener (it may run off the sync's thread).
    fn store_answer(
        &self,
        lane: Lane,
        answered: &Answered,
    ) -> Result<Vec<RecordChange>, SyncError> {
        let mut changes = self.shared.db(|db| db.apply_outcomes(&answered.outcomes))?;
        changes.extend(self.shared.db(|db| db.requeue(&answered.missing))?);
        if !answered.outcomes.is_empty() {
            self.shared.db(|db| db.lane_succeeded(lane))?;
        }
        Ok(changes)
    }

    /// Tells listeners about a stored answer.
    fn tell_applied(&self, lane: Lane, changes: Vec<RecordChange>) {
        self.changed(changes);
        self.progress(SyncPhase::Uploaded, Some(lane));
    }

    /// Fetches what dispatch did with delivered SOS alarms. Failures only cost freshness.
    fn refresh_dispatch_status(&mut self) {
        let Ok(ids) = self.shared.db(|db| db.open_sos_ids(200)) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let answer = match self.setup.transport.sos_status(&self.token, ids) {
            Ok(a) => a,
            Err(e) => {
                log::info!("SOS status not refreshed: {e}");
                return;
            }
        };
        let mut changes = Vec::new();
        for s in answer.statuses {
            let status = DispatchStatus::from(s.status);
            if let Ok(Some(c)) = self.shared.db(|db| db.advance_dispatch(&s.id, status)) {
                changes.push(c);
            }
        }
        self.changed(changes);
    }

    fn finish(&mut self) -> Result<SyncReport, SyncError> {
        let counts = self.shared.db(|db| db.pending_counts())?;
        self.report.pending_sos = counts.sos;
        self.report.pending_reports = counts.reports;
        let next = self.shared.db(|db| db.next_attempt_at())?;
        self.report.next_attempt_at = next.filter(|t| *t > now_ms()).map(ms_to_time);
        let pending = counts.sos + counts.reports > 0;
        match self.report.outcome {
            SyncOutcome::Complete if pending => self.report.outcome = SyncOutcome::Deferred,
            SyncOutcome::Deferred if !pending => self.report.outcome = SyncOutcome::Complete,
            _ => {}
        }
        self.progress(SyncPhase::Finished, None);
        Ok(self.report.clone())
    }
}
