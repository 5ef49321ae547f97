//! A running sync's state ([`Run`]) and what every part of it needs: telling listeners,
//! putting records back or wedging them, and scheduling a retry. The engine and its parts
//! (batch reading, answers, refusals) add their own methods in their files.

use zeroize::Zeroizing;

use super::backoff;
use super::clock::now_ms;
use super::error::SyncError;
use super::report::{SyncOutcome, SyncReport};
use super::setup::SyncSetup;
use super::shared::Shared;
use crate::db::outbox::{Horizon, Outcome};
use crate::model::{Lane, RecordChange};
use crate::observer::{SyncPhase, SyncProgress};

/// A running sync's bookkeeping.
pub(super) struct Run<'a> {
    pub(super) shared: &'a Shared,
    pub(super) setup: &'a SyncSetup,
    pub(super) report: SyncReport,
    pub(super) token: Zeroizing<String>,
    pub(super) refreshed: bool,
    /// The server accepted (or already had) at least one record in this run.
    pub(super) accepted_any: bool,
    /// Run by the background worker (which `shutdown` and going offline stop at the next
    /// attachment chunk), not by the app's `sync_now`.
    pub(super) on_worker: bool,
    /// What this sync delivers: what was queued when it started, and SOS alarms raised since
    /// (so that a sync in a time-boxed background job ends while records keep arriving).
    pub(super) horizon: Horizon,
}

impl Run<'_> {
    /// Tells sync listeners where the sync is.
    pub(super) fn progress(&self, phase: SyncPhase, lane: Option<Lane>) {
        self.shared.observers.sync(&SyncProgress {
            phase,
            lane,
            sent: self.report.sent,
            delivered: self.report.accepted + self.report.duplicates,
            wedged: self.report.wedged,
            error: None,
            uploaded_bytes: self.report.uploaded_bytes,
        });
    }

    /// Tells record listeners about changes (on the sync's own thread).
    pub(super) fn changed(&self, changes: Vec<RecordChange>) {
        self.shared.observers.records(&changes);
    }

    /// Puts records of an upload back in the queue.
    pub(super) fn requeue(&self, ids: &[String]) -> Result<(), SyncError> {
        let changes = self.shared.db(|db| db.requeue(ids))?;
        self.changed(changes);
        Ok(())
    }

    /// Wedges one record with the reason, and counts it in the report.
    pub(super) fn wedge(&mut self, id: &str, reason: String) -> Result<(), SyncError> {
        let changes = self
            .shared
            .db(|db| db.apply_outcomes(&[(id.to_string(), Outcome::Wedged { reason })]))?;
        self.report.wedged += changes.len() as u32;
        self.changed(changes);
        Ok(())
    }

    /// Schedules the lane for later and stops this sync.
    pub(super) fn retry_later(
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
}
