//! A batch's answer: sorted into per-record outcomes, stored in one transaction, told to
//! listeners.

use std::collections::HashMap;

use crewsafe_protocol as proto;

use super::clock::now_ms;
use super::error::SyncError;
use super::run::Run;
use crate::db::outbox::Outcome;
use crate::model::{Lane, RecordChange};
use crate::observer::SyncPhase;

/// A batch answer sorted out: what the server said per record, and the records it said
/// nothing about.
pub(super) struct Answered {
    pub(super) outcomes: Vec<(String, Outcome)>,
    pub(super) missing: Vec<String>,
}

impl Run<'_> {
    /// Sorts a batch answer into per-record outcomes and records without an answer, and
    /// counts them in the report.
    pub(super) fn judge(&mut self, ids: &[String], answer: proto::BatchResponse) -> Answered {
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
    pub(super) fn apply_answer(&self, lane: Lane, answered: &Answered) -> Result<(), SyncError> {
        let changes = self.store_answer(lane, answered)?;
        self.tell_applied(lane, changes);
        Ok(())
    }

    /// Stores a judged answer: outcomes in one transaction, unanswered records back to the
    /// queue. Calls no listener (it may run off the sync's thread).
    pub(super) fn store_answer(
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
    pub(super) fn tell_applied(&self, lane: Lane, changes: Vec<RecordChange>) {
        self.changed(changes);
        self.progress(SyncPhase::Uploaded, Some(lane));
    }
}
