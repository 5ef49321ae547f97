//! One sync run: the lanes drained in order, batches posted while the previous answer is
//! applied, failures turned into backoff, and the report.

use std::time::{Duration, Instant};

use crewsafe_protocol as proto;
use zeroize::Zeroizing;

use super::answer::Answered;
use super::batch::{Batch, Read};
use super::clock::{ms_to_time, now_ms};
use super::error::SyncError;
use super::reentry::{refuse_reentry, SyncingHere};
use super::refusals::{refused_alone, Suspects, MAX_SUSPECTS};
use super::report::{SyncOutcome, SyncReport};
use super::run::Run;
use super::shared::Shared;
use super::sizing::Upload;
use super::transport::{self, TransportError};
use crate::db::outbox::Horizon;
use crate::error::CrewSafeError;
use crate::model::Lane;
use crate::observer::{SyncPhase, SyncProgress};

/// A device token from the host, checked to fit an HTTP header.
pub(super) fn checked_token(token: String) -> Result<Zeroizing<String>, SyncError> {
    let token = Zeroizing::new(token);
    transport::check_token(&token).map_err(|reason| SyncError::InvalidToken(reason.into()))?;
    Ok(token)
}

/// An upload's answer (or why there is none), the batch read meanwhile, and how long the
/// upload took.
pub(super) type Posted = (
    Result<proto::BatchResponse, TransportError>,
    Option<Batch>,
    Duration,
);

/// Runs one sync. Only one runs at a time; a second caller waits for the first. An error
/// also reaches the sync listeners (a `Finished` progress carrying it).
pub(crate) fn sync_now(shared: &Shared) -> Result<SyncReport, CrewSafeError> {
    refuse_reentry()?;
    let _one = shared.sync_lock.lock().unwrap_or_else(|p| p.into_inner());
    sync_locked(shared, false)
}

/// Runs one sync; the caller holds the sync lock. `on_worker`: the background worker runs it.
pub(crate) fn sync_locked(shared: &Shared, on_worker: bool) -> Result<SyncReport, CrewSafeError> {
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
            pending_attachments: 0,
            uploaded_bytes: 0,
            next_attempt_at: None,
            outcome: SyncOutcome::Complete,
        },
        token: Zeroizing::new(String::new()),
        refreshed: false,
        accepted_any: false,
        on_worker,
        horizon: Horizon {
            queued_by: shared.db(|db| db.last_seq()).map_err(SyncError::from)?,
            sos_by: 0,
        },
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
    /// Takes the token, drains the lanes, refreshes dispatch statuses and purges.
    pub(super) fn run(&mut self) -> Result<(), SyncError> {
        self.token = checked_token(self.setup.tokens.token()?)?;
        // Alarms earlier syncs delivered: dispatch may have acted on them. Those this sync
        // delivers are news to dispatch (the status watch follows them from now on).
        let open_before: Vec<String> = self
            .shared
            .db(|db| db.open_alarms(true))
            .map(|open| open.into_iter().map(|k| k.id).collect())
            .unwrap_or_default();
        if self.drain()? {
            self.upload_attachments()?;
        }
        if self.accepted_any {
            // An SOS may have become open: the status watch looks again.
            self.shared.watch.kick();
        }
        self.refresh_dispatch_status(&open_before);
        let cutoff = now_ms() - i64::from(self.setup.config.retention_days) * 86_400_000;
        self.shared.db(|db| db.purge_delivered(cutoff))?;
        Ok(())
    }

    /// Tells sync listeners that this sync ended with an error.
    pub(super) fn failed(&self, e: &CrewSafeError) {
        self.shared.observers.sync(&SyncProgress {
            phase: SyncPhase::Finished,
            lane: None,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
            error: Some(e.clone()),
            uploaded_bytes: self.report.uploaded_bytes,
        });
    }

    /// SOS lane to the end, then the report lane.
    /// Drains the SOS lane, then the reports; false if the sync must stop.
    pub(super) fn drain(&mut self) -> Result<bool, SyncError> {
        for lane in [Lane::Sos, Lane::Report] {
            if !self.drain_lane(lane)? {
                return Ok(false);
            }
        }
        Ok(true)
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
    pub(super) fn drain_lane(&mut self, lane: Lane) -> Result<bool, SyncError> {
        let sizer = &self.setup.sizer;
        let mut limit = sizer.limit(lane);
        // A batch already marked sending, with the previous answer to apply meanwhile.
        let mut carried: Option<(Batch, Answered)> = None;
        let mut suspects = Suspects::default();
        if lane == Lane::Sos {
            // SOS alarms raised so far go too; those raised from here on wait for the next
            // turn to this lane (or the next sync), so the lane ends even if callbacks keep
            // raising alarms.
            self.horizon.sos_by = self.shared.db(|db| Ok(db.newest_sos()))?;
        }
        loop {
            if self.shared.closing() {
                // The store is closing: apply what was answered, put the rest back.
                if let Some((batch, previous)) = carried.take() {
                    self.apply_answer(lane, &previous)?;
                    self.requeue(&batch.ids)?;
                }
                self.release(&suspects)?;
                return Ok(false);
            }
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
                self.post_while_applying(lane, body, previous, limit, &suspects)?;
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
    pub(super) fn transport_failed(
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

    /// Whether `lane` is the report lane and an SOS-lane record is waiting (an SOS raised
    /// since the sync began counts).
    pub(super) fn sos_waits_behind(&self, lane: Lane) -> Result<bool, SyncError> {
        if lane != Lane::Report {
            return Ok(false);
        }
        Ok(!self
            .shared
            .db(|db| {
                let now = Horizon {
                    sos_by: db.newest_sos(),
                    ..self.horizon
                };
                db.queued(Lane::Sos, 1, now)
            })?
            .is_empty())
    }

    /// Posts a batch body. Meanwhile, on another thread, applies `previous` (if given) and
    /// then reads the batch after this one (at most `read_limit` records whose rows are not
    /// in flight), for the caller to send if this upload is fully answered. Also returns how
    /// long the upload took. An error applying `previous` wins over the upload's result
    /// (whose records stay queued on disk and are resent later).
    pub(super) fn post_while_applying(
        &self,
        lane: Lane,
        body: Vec<u8>,
        previous: Option<Answered>,
        read_limit: u32,
        held: &Suspects,
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

    pub(super) fn refresh_token(&mut self) -> Result<(), SyncError> {
        if self.refreshed {
            return Err(SyncError::Unauthorized);
        }
        self.refreshed = true;
        self.token = checked_token(self.setup.tokens.refresh_token()?)?;
        Ok(())
    }

    /// Fetches what dispatch did with the alarms `open` (ids), a request's worth at a time,
    /// and applies each answer in its own transaction (memory stays that of one answer,
    /// however many alarms are open). Failures only cost freshness (the status watch keeps it
    /// fresh too).
    pub(super) fn refresh_dispatch_status(&mut self, open: &[String]) {
        for chunk in open.chunks(proto::MAX_STATUS_IDS) {
            let answers = match self.setup.transport.sos_status(&self.token, chunk.to_vec()) {
                Ok(a) => a.statuses,
                Err(e) => {
                    log::info!("SOS status not refreshed: {e}");
                    return;
                }
            };
            match self.shared.db(|db| db.apply_dispatch(&answers)) {
                Ok(changes) => self.changed(changes),
                Err(e) => {
                    log::info!("SOS status not stored: {e}");
                    return;
                }
            }
        }
    }

    pub(super) fn finish(&mut self) -> Result<SyncReport, SyncError> {
        let counts = self.shared.db(|db| db.pending_counts())?;
        self.report.pending_sos = counts.sos;
        self.report.pending_reports = counts.reports;
        self.report.pending_attachments = self.shared.db(|db| db.pending_attachments())?;
        let next = self.shared.db(|db| db.next_attempt_at())?;
        self.report.next_attempt_at = next.filter(|t| *t > now_ms()).map(ms_to_time);
        let pending = counts.sos + counts.reports + self.report.pending_attachments > 0;
        match self.report.outcome {
            SyncOutcome::Complete if pending => self.report.outcome = SyncOutcome::Deferred,
            SyncOutcome::Deferred if !pending => self.report.outcome = SyncOutcome::Complete,
            _ => {}
        }
        self.progress(SyncPhase::Finished, None);
        Ok(self.report.clone())
    }
}
