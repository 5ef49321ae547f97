//! Whole-request refusals that one record may cause (`400 malformed`, `422`): the record
//! refused alone is wedged only while the server accepts other records in the same run;
//! otherwise it is held back with its follow-ups and nothing is wedged (see
//! `docs/protocol.md`, "Whole-request refusals").

use super::error::SyncError;
use super::run::Run;
use crate::model::Lane;

/// Why a record the server refused alone, while accepting others, is wedged.
pub(super) fn refused_alone(status: u16) -> String {
    format!("the server refused this record (status {status}) while accepting others")
}

/// How many records are tried alone, in a row, after a whole-request refusal (400/422) of a
/// single record, before the server rather than a record is blamed.
pub(super) const MAX_SUSPECTS: usize = 3;

/// A lane's records that the server refused alone as a whole request (400/422), held back (in
/// flight, not sent again) until the run shows whether the server accepts other records, with
/// the follow-ups of those records (held back unsent).
#[derive(Default)]
pub(super) struct Suspects {
    /// Refused alone, in order.
    pub(super) refused: Vec<String>,
    /// Follow-ups of refused records, never sent in this run.
    pub(super) followers: Vec<String>,
    /// The status of the last refusal.
    pub(super) status: u16,
}

impl Suspects {
    /// Whether `id` is held back (so a row whose parent it is must be held back too).
    pub(super) fn holds(&self, id: &str) -> bool {
        self.refused.iter().chain(&self.followers).any(|h| h == id)
    }
}

impl Run<'_> {
    /// The server or its configuration refused the request itself: every record stays queued
    /// (this upload's and the held-back ones), the lane waits with backoff, and the sync ends
    /// with [`SyncError::ServerRejected`].
    pub(super) fn server_rejected(
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

    /// Puts held-back records back in the queue, unjudged (only the refused ones count an
    /// attempt: their followers were never sent).
    pub(super) fn release(&self, suspects: &Suspects) -> Result<(), SyncError> {
        self.requeue(&suspects.refused)?;
        self.shared.db(|db| {
            db.unhold(&suspects.followers);
            Ok(())
        })?;
        Ok(())
    }

    /// The server accepts other records: the ones it refused alone are wedged, and their
    /// follow-ups go back to the queue (the server answers for each of them).
    pub(super) fn convict(&mut self, suspects: &mut Suspects) -> Result<(), SyncError> {
        let refused = std::mem::take(&mut suspects.refused);
        self.requeue(&refused)?;
        for id in &refused {
            self.wedge(id, refused_alone(suspects.status))?;
        }
        self.release(suspects)?;
        *suspects = Suspects::default();
        Ok(())
    }
}
