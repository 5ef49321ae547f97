//! The dispatcher's view of one alarm ([`DispatchSos`]), built from its `sos_status` row and
//! the records behind it:
//!
//! - an SOS: its content, its latest position and the trail of earlier ones (folded in from
//!   its `sos_location` follow-ups), its cancellation (the first `sos_cancel`);
//! - a missed check-in: the `check_in_start` content and its `check_ins` row, with the crew's
//!   last known position (the newest fix among the device's recent records). `raised_at` and
//!   `received_at` are both when the server raised the alarm.
//!
//! Both carry the dispatch status, the dispatcher's message and the escalation: an alarm still
//! `delivered` escalates `escalate_after` after it was raised; `escalated` stays true once the
//! timer has marked it.
//!
//! Each backend reads the rows (`sqlite/view.rs`, `postgres/view.rs`); this file builds the
//! view from them, the same for both.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, CheckInDoneContent, CheckInStartContent, DispatchCancel, DispatchCheckIn,
    DispatchSos, DispatchStatus, Kind, Location, SosCancelContent, SosContent, SosLocationContent,
    WireRecord,
};
use serde::de::DeserializeOwned;

use super::column::after;
use crate::error::{Result, ServerError};

/// Most earlier positions a view carries (the newest ones).
pub(crate) const TRAIL_CAP: usize = 100;

/// How many of a device's newest records are searched for its last known position.
pub(crate) const LAST_POSITION_SCAN: i64 = 200;

/// The kinds of record that may carry a position of the crew.
pub(crate) const POSITION_KINDS: [Kind; 4] = [
    Kind::Sos,
    Kind::SosLocation,
    Kind::CheckInStart,
    Kind::CheckInDone,
];

/// What raised an alarm, from the kind of the record its `sos_status` row is keyed by.
pub(crate) fn alarm_of(kind: Kind) -> AlarmKind {
    match kind {
        Kind::CheckInStart => AlarmKind::MissedCheckIn,
        _ => AlarmKind::Sos,
    }
}

/// A stored record's content decoded as `C`.
pub(crate) fn stored<C: DeserializeOwned>(json: &str) -> Result<C> {
    serde_json::from_str::<WireRecord<C>>(json)
        .map(|r| r.content)
        .map_err(|_| ServerError::Corrupt("stored record unreadable".into()))
}

/// The alarm's `sos_status` row joined with its record.
pub(crate) struct AlarmRow {
    pub(crate) device_id: String,
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) json: String,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) status: DispatchStatus,
    pub(crate) delivered_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) acknowledged_at: Option<DateTime<Utc>>,
    pub(crate) acknowledged_by: Option<String>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    pub(crate) resolved_by: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) escalated: bool,
}

/// A missed check-in's `check_ins` row, with the closing record's JSON.
pub(crate) struct CheckInRow {
    pub(crate) due_at: DateTime<Utc>,
    pub(crate) done_json: Option<String>,
    pub(crate) done_received_at: Option<DateTime<Utc>>,
    pub(crate) missed: bool,
}

/// What else a view needs besides its [`AlarmRow`], by the kind of alarm.
pub(crate) enum Detail {
    /// An SOS: its follow-ups (kind and JSON), in receive order.
    Sos { follow_ups: Vec<(Kind, String)> },
    /// A missed check-in: its row and the JSON of the device's newest records that may carry
    /// a position (at most [`LAST_POSITION_SCAN`], of [`POSITION_KINDS`]).
    CheckIn {
        check_in: CheckInRow,
        recent: Vec<String>,
    },
}

/// The view of an alarm from its rows.
pub(crate) fn build(
    row: AlarmRow,
    detail: Detail,
    escalate_after: Duration,
) -> Result<DispatchSos> {
    let mut view = DispatchSos {
        id: row.id,
        device_id: row.device_id.clone(),
        crew: crewsafe_protocol::Crew {
            device_id: row.device_id,
            crew_id: String::new(),
            staff_id: None,
        },
        raised_at: row.delivered_at,
        received_at: row.received_at,
        location: None,
        note: None,
        cancel: None,
        status: row.status,
        updated_at: row.updated_at,
        acknowledged_at: row.acknowledged_at,
        acknowledged_by: row.acknowledged_by,
        resolved_at: row.resolved_at,
        resolved_by: row.resolved_by,
        alarm: alarm_of(row.kind),
        message: row.message,
        trail: Vec::new(),
        escalates_at: (row.status == DispatchStatus::Delivered)
            .then(|| after(row.delivered_at, escalate_after)),
        escalated: row.escalated,
        check_in: None,
    };
    match detail {
        Detail::Sos { follow_ups } => fill_sos(&row.json, follow_ups, &mut view)?,
        Detail::CheckIn { check_in, recent } => {
            fill_check_in(&row.json, check_in, recent, &mut view)?
        }
    }
    Ok(view)
}

/// An SOS: content, positions and cancellation.
fn fill_sos(json: &str, follow_ups: Vec<(Kind, String)>, view: &mut DispatchSos) -> Result<()> {
    let sos: SosContent = stored(json)?;
    view.crew = sos.crew;
    view.raised_at = sos.raised_at;
    view.note = sos.note;
    // Every position, oldest first: the alarm's own, then the follow-ups by recorded time
    // (a stable sort: among equal times the later received wins). The last is the latest.
    let mut positions: Vec<(Option<DateTime<Utc>>, Location)> =
        sos.location.into_iter().map(|l| (None, l)).collect();
    let mut moves = Vec::new();
    for (kind, json) in follow_ups {
        match kind {
            Kind::SosLocation => {
                let c: SosLocationContent = stored(&json)?;
                moves.push((Some(c.recorded_at), c.location));
            }
            Kind::SosCancel if view.cancel.is_none() => {
                let c: SosCancelContent = stored(&json)?;
                view.cancel = Some(DispatchCancel {
                    reason: c.reason,
                    note: c.note,
                    cancelled_at: c.cancelled_at,
                });
            }
            _ => {}
        }
    }
    moves.sort_by_key(|(t, _)| *t);
    positions.extend(moves);
    view.location = positions.pop().map(|(_, l)| l);
    let skip = positions.len().saturating_sub(TRAIL_CAP);
    view.trail = positions.into_iter().skip(skip).map(|(_, l)| l).collect();
    Ok(())
}

/// A missed check-in: its start, its timing and the crew's last known position.
fn fill_check_in(
    json: &str,
    row: CheckInRow,
    recent: Vec<String>,
    view: &mut DispatchSos,
) -> Result<()> {
    let start: CheckInStartContent = stored(json)?;
    let done: Option<CheckInDoneContent> = row.done_json.as_deref().map(stored).transpose()?;
    view.check_in = Some(DispatchCheckIn {
        started_at: start.started_at,
        received_at: view.received_at,
        due_at: row.due_at,
        address: start.address,
        done_at: done.as_ref().map(|d| d.done_at),
        done_received_at: row.done_received_at,
        closed_late: done.is_some() && row.missed,
    });
    // The alarm was raised by the server, not received from the phone.
    view.received_at = view.raised_at;
    view.crew = start.crew;
    view.note = start.note;
    view.location = last_known_position(recent)?;
    Ok(())
}

/// The newest fix (by `fixed_at`) among these records' JSON.
fn last_known_position(recent: Vec<String>) -> Result<Option<Location>> {
    #[derive(serde::Deserialize)]
    struct WithLocation {
        #[serde(default)]
        location: Option<Location>,
    }
    let mut best: Option<Location> = None;
    for json in recent {
        // Every kind scanned has an optional `location`; other fields are ignored here.
        let record: WireRecord = serde_json::from_str(&json)
            .map_err(|_| ServerError::Corrupt("stored record unreadable".into()))?;
        let Ok(WithLocation { location: Some(l) }) =
            serde_json::from_value::<WithLocation>(record.content)
        else {
            continue;
        };
        if best.as_ref().is_none_or(|b| l.fixed_at > b.fixed_at) {
            best = Some(l);
        }
    }
    Ok(best)
}
