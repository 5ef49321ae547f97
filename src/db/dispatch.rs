//! Dispatch answers to delivered SOS alarms: which alarms are still open (watched), and the
//! answers applied, all of one fetch in one transaction. A status never goes backwards; the
//! answer (who acknowledged, the dispatcher's message) is sealed like any content.

use crewsafe_protocol as proto;
use rusqlite::{params, OptionalExtension as _};

use super::{Db, Durability};
use crate::crypto::Slot;
use crate::error::Result;
use crate::model::{DispatchAnswer, DispatchStatus, RecordChange, RecordKind, SyncState};

/// The slot a dispatch answer is sealed for.
pub(crate) fn dispatch_slot(id: &str) -> Slot<'_> {
    Slot::new("records", "dispatch_info", id)
}

fn rank(s: proto::DispatchStatus) -> u8 {
    match s {
        proto::DispatchStatus::Delivered => 0,
        proto::DispatchStatus::Acknowledged => 1,
        proto::DispatchStatus::Resolved => 2,
    }
}

impl Db {
    /// Delivered SOS alarms that dispatch has not resolved, in upload order, with what the
    /// phone knows of each; without those the crew cancelled unless `cancelled` (a sync still
    /// asks about them: dispatch may answer a cancelled alarm; the watch does not wait for it).
    pub fn open_alarms(&self, cancelled: bool) -> Result<Vec<proto::KnownStatus>> {
        let rows: Vec<(String, Option<DispatchStatus>, Option<Vec<u8>>)> = self
            .conn
            .prepare_cached(
                "SELECT s.id, s.dispatch_status, s.dispatch_info FROM records s \
                 WHERE s.kind = 'sos' AND s.state = 'delivered' \
                 AND s.dispatch_status IS NOT 'resolved' \
                 AND (?1 OR NOT EXISTS (SELECT 1 FROM records c \
                                        WHERE c.parent_id = s.id AND c.kind = 'sos_cancel')) \
                 ORDER BY s.seq",
            )?
            .query_map([cancelled], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, status, info) in rows {
            let known = match &info {
                Some(sealed) => {
                    Some(self.open_json::<proto::SosStatus>(dispatch_slot(&id), sealed)?)
                }
                None => None,
            };
            out.push(proto::KnownStatus {
                status: status.map_or(proto::DispatchStatus::Delivered, Into::into),
                updated_at: known.map(|k| k.updated_at),
                id,
            });
        }
        Ok(out)
    }

    /// Applies the server's answers in one transaction. An answer replaces what is stored
    /// when it moves the status forward, or keeps it and is newer (a new message). Returns a
    /// change for each alarm whose status or message changed.
    pub fn apply_dispatch(&mut self, answers: &[proto::SosStatus]) -> Result<Vec<RecordChange>> {
        let mut updates = Vec::new();
        for answer in answers {
            let id = answer.id.to_ascii_lowercase();
            let stored: Option<(Option<DispatchStatus>, Option<Vec<u8>>)> = self
                .conn
                .prepare_cached(
                    "SELECT dispatch_status, dispatch_info FROM records \
                     WHERE id = ?1 AND kind = 'sos' AND state = 'delivered'",
                )?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((status, info)) = stored else {
                continue;
            };
            let known = match &info {
                Some(sealed) => {
                    Some(self.open_json::<proto::SosStatus>(dispatch_slot(&id), sealed)?)
                }
                None => None,
            };
            let old_rank = rank(status.map_or(proto::DispatchStatus::Delivered, Into::into));
            let newer = match (rank(answer.status).cmp(&old_rank), &known) {
                (std::cmp::Ordering::Greater, _) => true,
                (std::cmp::Ordering::Less, _) => false,
                (std::cmp::Ordering::Equal, None) => true,
                (std::cmp::Ordering::Equal, Some(k)) => answer.updated_at > k.updated_at,
            };
            if !newer {
                continue;
            }
            let mut answer = answer.clone();
            answer.id.clone_from(&id);
            let old_message = known.as_ref().and_then(|k| k.message.as_ref());
            let tell =
                status != Some(answer.status.into()) || old_message != answer.message.as_ref();
            let sealed = self.seal_json(dispatch_slot(&id), &answer)?;
            updates.push((id, DispatchStatus::from(answer.status), sealed, tell));
        }
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.write(Durability::Normal, |tx, _| {
            let mut stmt = tx.prepare_cached(
                "UPDATE records SET dispatch_status = ?2, dispatch_info = ?3 WHERE id = ?1",
            )?;
            for (id, status, sealed, _) in &updates {
                stmt.execute(params![id, status, sealed])?;
            }
            Ok(())
        })?;
        Ok(updates
            .into_iter()
            .filter(|u| u.3)
            .map(|(id, status, _, _)| RecordChange {
                sequence: self.next_change(),
                id,
                kind: RecordKind::Sos,
                state: SyncState::Delivered,
                dispatch_status: Some(status),
            })
            .collect())
    }

    /// The dispatch answer stored for an SOS, if any.
    pub(crate) fn dispatch_answer(
        &self,
        id: &str,
        sealed: Option<&[u8]>,
    ) -> Result<Option<DispatchAnswer>> {
        match sealed {
            Some(sealed) => Ok(Some(
                self.open_json::<proto::SosStatus>(dispatch_slot(id), sealed)?
                    .into(),
            )),
            None => Ok(None),
        }
    }
}
