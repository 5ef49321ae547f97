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

use crate::db::outbox::{Outcome, RecordChange};
use crate::error::StoreError;
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
    /// TCP and TLS connect timeout.
    #[uniffi(default = 10000)]
    pub connect_timeout_ms: u64,
    /// Timeout of a whole request.
    #[uniffi(default = 30000)]
    pub request_timeout_ms: u64,
    /// Most records per upload (1 to 1000). Uploads start at 50 records (or this cap, if
    /// lower), double while they are answered quickly, and halve when one is slow or times
    /// out, so that a slow link still gets every batch through within `request_timeout_ms`.
    #[uniffi(default = 1000)]
    pub max_batch_records: u32,
    /// Most bytes per upload body (a single larger record is still sent alone).
    #[uniffi(default = 524288)]
    pub max_batch_bytes: u64,
    /// How long a delivered record's content stays readable on the phone before it is purged
    /// (its id and state stay).
    #[uniffi(default = 7)]
    pub retention_days: u32,
    /// First retry delay; doubles with every consecutive failure (with jitter).
    #[uniffi(default = 2000)]
    pub backoff_base_ms: u64,
    /// Longest retry delay.
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
        let bad = |field, reason: &str| transport::ConfigError {
            field,
            reason: reason.into(),
        };
        if self.max_batch_records == 0 || self.max_batch_records as usize > proto::MAX_BATCH_RECORDS
        {
            return Err(bad("max_batch_records", "must be between 1 and 1000"));
        }
        if self.max_batch_bytes < 1024 {
            return Err(bad("max_batch_bytes", "must be at least 1024"));
        }
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(bad("request_timeout_ms", "timeouts must be positive"));
        }
        if self.backoff_base_ms == 0 || self.backoff_max_ms < self.backoff_base_ms {
            return Err(bad(
                "backoff_max_ms",
                "must be at least backoff_base_ms (> 0)",
            ));
        }
        Ok(())
    }
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncOutcome {
    /// Nothing left to send.
    Complete,
    /// Work is left, but its lane is waiting for its retry time; call again after
    /// `next_attempt_at`.
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
}

/// Runs one sync. Only one runs at a time; a second caller waits for the first.
pub(crate) fn sync_now(shared: &Shared) -> Result<SyncReport, SyncError> {
    let _one = shared.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
    let setup = shared.sync_setup().ok_or(SyncError::NotConfigured)?;
    shared.db(|db| {
        db.clear_in_flight();
        Ok(())
    })?;
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
        token: Zeroizing::new(setup.tokens.token()?),
        refreshed: false,
    };
    run.progress(SyncPhase::Started, None);
    let result = run.drain();
    // Whatever happened, nothing may stay marked as in flight.
    shared.db(|db| {
        db.clear_in_flight();
        Ok(())
    })?;
    result?;
    run.refresh_dispatch_status();
    let cutoff = now_ms() - i64::from(setup.config.retention_days) * 86_400_000;
    shared.db(|db| db.purge_delivered(cutoff))?;
    run.finish()
}

impl Run<'_> {
    fn progress(&self, phase: SyncPhase, lane: Option<Lane>) {
        self.shared.observers.sync(&SyncProgress {
            phase,
            lane,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
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
        loop {
            let (batch, previous) = match carried.take() {
                Some((batch, previous)) => (batch, Some(previous)),
                None => {
                    // An SOS queued while reports upload (many batches can take minutes on a
                    // slow link) goes before the next report batch, not after the lane.
                    if self.sos_waits_behind(lane)? && !self.drain_lane(Lane::Sos)? {
                        return Ok(false);
                    }
                    if self.shared.db(|db| db.lane_hold(lane, now_ms()))?.is_some() {
                        self.report.outcome = SyncOutcome::Deferred;
                        return Ok(true);
                    }
                    let Some(batch) = self.start_batch(lane, limit)? else {
                        return Ok(true);
                    };
                    (batch, None)
                }
            };
            let Batch { ids, body, .. } = batch;
            let (posted, read_ahead, took) =
                self.post_while_applying(lane, body, previous, limit)?;
            match posted {
                Ok(answer) => {
                    let answered = self.judge(&ids, answer);
                    if answered.outcomes.is_empty() {
                        self.apply_answer(lane, &answered)?;
                        return self.retry_later(lane, "the server processed nothing".into(), None);
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
                            _ => self.start_batch(lane, limit)?,
                        };
                        if let Some(next) = next {
                            carried = Some((next, answered));
                            continue;
                        }
                    }
                    self.apply_answer(lane, &answered)?;
                }
                Err(e) => {
                    let changes = self.shared.db(|db| db.requeue(&ids))?;
                    self.changed(changes);
                    match e {
                        TransportError::Unauthorized => self.refresh_token()?,
                        TransportError::TooLarge if ids.len() > 1 => {
                            limit = sizer.record(lane, ids.len(), Upload::TooLarge);
                        }
                        TransportError::Refused { .. } if ids.len() > 1 => {
                            limit = (ids.len() as u32 / 2).max(1);
                        }
                        TransportError::TooLarge | TransportError::Refused { .. } => {
                            self.wedge(&ids[0], e.to_string())?;
                        }
                        TransportError::Retryable {
                            reason,
                            retry_after_secs,
                        } => return self.retry_later(lane, reason, retry_after_secs),
                        TransportError::TimedOut => {
                            sizer.record(lane, ids.len(), Upload::TimedOut);
                            return self.retry_later(lane, "timed out".into(), None);
                        }
                        TransportError::PinMismatch => {
                            self.retry_later(lane, e.to_string(), None)?;
                            return Err(SyncError::PinMismatch);
                        }
                        TransportError::Certificate { reason } => {
                            self.retry_later(lane, reason.clone(), None)?;
                            return Err(SyncError::Certificate(reason));
                        }
                    }
                }
            }
        }
    }

    /// Whether `lane` is the report lane and an SOS-lane record is waiting.
    fn sos_waits_behind(&self, lane: Lane) -> Result<bool, SyncError> {
        Ok(lane == Lane::Report && !self.shared.db(|db| db.queued(Lane::Sos, 1))?.is_empty())
    }

    /// Reads the next batch of a lane and marks it sending.
    fn start_batch(&mut self, lane: Lane, limit: u32) -> Result<Option<Batch>, SyncError> {
        match self.next_batch(lane, limit)? {
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
    ) -> Result<Posted, SyncError> {
        std::thread::scope(|s| {
            let meanwhile = s.spawn(|| {
                if let Some(previous) = &previous {
                    self.apply_answer(lane, previous)?;
                }
                // The caller's own read deals with an empty lane, an unreadable row or a
                // failing read: none of them may cost the answer to this upload.
                match self.read_batch(lane, read_limit) {
                    Ok(Read::Batch(batch)) => Ok(Some(batch)),
                    Ok(Read::Empty | Read::Unreadable(..)) => Ok(None),
                    Err(e) => {
                        log::debug!("reading ahead in lane {lane:?} failed: {e}");
                        Ok(None)
                    }
                }
            });
            let started = Instant::now();
            let posted = self.setup.transport.post_batch(&self.token, body);
            let took = started.elapsed();
            match meanwhile.join() {
                Ok(next) => next.map(|next| (posted, next, took)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    fn refresh_token(&mut self) -> Result<(), SyncError> {
        if self.refreshed {
            return Err(SyncError::Unauthorized);
        }
        self.refreshed = true;
        self.token = Zeroizing::new(self.setup.tokens.refresh_token()?);
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
    fn next_batch(&mut self, lane: Lane, limit: u32) -> Result<Option<Batch>, SyncError> {
        loop {
            match self.read_batch(lane, limit)? {
                Read::Empty => return Ok(None),
                Read::Batch(batch) => return Ok(Some(batch)),
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
    fn read_batch(&self, lane: Lane, limit: u32) -> Result<Read, SyncError> {
        let rows = self.shared.db(|db| db.queued(lane, limit))?;
        let max_bytes = self.setup.config.max_batch_bytes as usize;
        let mut body = br#"{"protocol":1,"records":["#.to_vec();
        let mut ids = Vec::new();
        let mut kinds = Vec::new();
        for row in rows {
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
            if !ids.is_empty() && body.len() + json.len() + 2 > max_bytes {
                break;
            }
            if !ids.is_empty() {
                body.push(b',');
            }
            body.extend_from_slice(&json);
            kinds.push(kind);
            ids.push(id);
        }
        body.extend_from_slice(b"]}");
        if ids.is_empty() {
            return Ok(Read::Empty);
        }
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

    /// Applies a judged answer: outcomes in one transaction, unanswered records back to the
    /// queue; then tells listeners.
    fn apply_answer(&self, lane: Lane, answered: &Answered) -> Result<(), SyncError> {
        let mut changes = self.shared.db(|db| db.apply_outcomes(&answered.outcomes))?;
        changes.extend(self.shared.db(|db| db.requeue(&answered.missing))?);
        if !answered.outcomes.is_empty() {
            self.shared.db(|db| db.lane_succeeded(lane))?;
        }
        self.changed(changes);
        self.progress(SyncPhase::Uploaded, Some(lane));
        Ok(())
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
            let status = match s.status {
                proto::DispatchStatus::Delivered => DispatchStatus::Delivered,
                proto::DispatchStatus::Acknowledged => DispatchStatus::Acknowledged,
                proto::DispatchStatus::Resolved => DispatchStatus::Resolved,
            };
            if let Ok(Some(c)) = self.shared.db(|db| db.advance_dispatch(&s.id, status)) {
                changes.push(c);
            }
        }
        self.changed(changes);
    }

    fn finish(mut self) -> Result<SyncReport, SyncError> {
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
        Ok(self.report)
    }
}
