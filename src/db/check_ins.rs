//! Lone-worker check-ins: a start record ("expect a check-in from this crew by T"), its
//! extensions and its closing record, all in the SOS lane. The server times the check-in on
//! its own clock and raises the alarm itself if the closing record has not arrived in time.

use crewsafe_protocol as proto;
use serde::Serialize;

use super::check_in_payloads::{CheckInDonePayload, CheckInExtendPayload, CheckInStartPayload};
use super::records::insert_record;
use super::{check_id, new_id, now, Db, Durability};
use crate::error::{Result, StoreError};
use crate::model::{
    check_opt_text, validate_note, CheckIn, CheckInExtension, CheckInState, CrewIdentity,
    LocationFix, RecordKind, MAX_ADDRESS_CHARS,
};

impl Db {
    /// Starts a check-in: one record in the SOS lane, durably queued.
    pub fn start_check_in(
        &mut self,
        crew: CrewIdentity,
        due_in_minutes: u32,
        address: Option<String>,
        note: Option<String>,
        location: Option<LocationFix>,
    ) -> Result<CheckIn> {
        crew.validate()?;
        check_minutes("due_in_minutes", due_in_minutes)?;
        check_opt_text("address", &address, MAX_ADDRESS_CHARS)?;
        validate_note("note", &note)?;
        if let Some(fix) = &location {
            fix.validate("location")?;
        }
        let id = new_id();
        let payload = CheckInStartPayload {
            crew,
            started_at: now(),
            due_in_minutes,
            address,
            note,
            location,
        };
        let sealed = self.seal_record(&id, &payload)?;
        self.write(Durability::Full, |tx, _| {
            insert_record(tx, &id, RecordKind::CheckInStart, None, &sealed).map(drop)
        })?;
        self.queued_one(RecordKind::CheckInStart);
        self.get_check_in(&id)
    }

    /// Gives an open check-in more time.
    pub fn extend_check_in(&mut self, id: &str, extend_by_minutes: u32) -> Result<CheckIn> {
        check_minutes("extend_by_minutes", extend_by_minutes)?;
        let check_in = self.open_check_in(id)?;
        let total = check_in.due_in_minutes.saturating_add(extend_by_minutes);
        if total > 2 * proto::MAX_CHECK_IN_MINUTES {
            return Err(StoreError::invalid(
                "extend_by_minutes",
                format!(
                    "a check-in may run at most {} minutes in all",
                    2 * proto::MAX_CHECK_IN_MINUTES
                ),
            ));
        }
        let payload = CheckInExtendPayload {
            extend_by_minutes,
            extended_at: now(),
        };
        self.follow_up(&check_in.id, RecordKind::CheckInExtend, &payload)?;
        self.get_check_in(&check_in.id)
    }

    /// Closes an open check-in: the crew is safe.
    pub fn close_check_in(&mut self, id: &str, location: Option<LocationFix>) -> Result<CheckIn> {
        if let Some(fix) = &location {
            fix.validate("location")?;
        }
        let check_in = self.open_check_in(id)?;
        let payload = CheckInDonePayload {
            done_at: now(),
            location,
        };
        self.follow_up(&check_in.id, RecordKind::CheckInDone, &payload)?;
        self.get_check_in(&check_in.id)
    }

    /// A check-in with its extensions and closing, decrypted.
    pub fn get_check_in(&self, id: &str) -> Result<CheckIn> {
        let canonical = check_id("check_in_id", id)?;
        let id = canonical.as_str();
        let row = self
            .row(id)?
            .filter(|r| r.kind == RecordKind::CheckInStart)
            .ok_or_else(|| StoreError::NotFound {
                what: "check_in",
                id: id.into(),
            })?;
        let p: CheckInStartPayload = self.open_payload(&row)?;
        let mut check_in = CheckIn {
            id: row.id.clone(),
            crew: p.crew,
            started_at: p.started_at,
            due_in_minutes: p.due_in_minutes,
            due_at: p.started_at,
            address: p.address,
            note: p.note,
            location: p.location,
            state: CheckInState::Open,
            done_at: None,
            done_id: None,
            sync_state: row.state,
            done_sync_state: None,
            extensions: Vec::new(),
        };
        for child in self.rows("WHERE r.parent_id = ?1 ORDER BY r.seq", &id)? {
            match child.kind {
                RecordKind::CheckInExtend => {
                    let e: CheckInExtendPayload = self.open_payload(&child)?;
                    check_in.due_in_minutes += e.extend_by_minutes;
                    check_in.extensions.push(CheckInExtension {
                        id: child.id,
                        extend_by_minutes: e.extend_by_minutes,
                        extended_at: e.extended_at,
                        sync_state: child.state,
                    });
                }
                RecordKind::CheckInDone => {
                    let d: CheckInDonePayload = self.open_payload(&child)?;
                    check_in.state = CheckInState::Done;
                    check_in.done_at = Some(d.done_at);
                    check_in.done_id = Some(child.id);
                    check_in.done_sync_state = Some(child.state);
                }
                _ => {}
            }
        }
        check_in.set_due();
        Ok(check_in)
    }

    /// A check-in that is still open, or why it cannot take a follow-up.
    fn open_check_in(&self, id: &str) -> Result<CheckIn> {
        let check_in = self.get_check_in(id)?;
        match check_in.state {
            CheckInState::Open => Ok(check_in),
            CheckInState::Done => Err(StoreError::State("the check-in is already closed".into())),
        }
    }

    /// Appends a follow-up of a check-in, durably queued.
    fn follow_up<T: Serialize>(
        &mut self,
        parent: &str,
        kind: RecordKind,
        payload: &T,
    ) -> Result<()> {
        let id = new_id();
        let sealed = self.seal_record(&id, payload)?;
        self.write(Durability::Full, |tx, _| {
            insert_record(tx, &id, kind, Some(parent), &sealed).map(drop)
        })?;
        self.queued_one(kind);
        Ok(())
    }
}

fn check_minutes(field: &str, minutes: u32) -> Result<()> {
    if (1..=proto::MAX_CHECK_IN_MINUTES).contains(&minutes) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            field,
            format!("must be 1 to {} minutes", proto::MAX_CHECK_IN_MINUTES),
        ))
    }
}
