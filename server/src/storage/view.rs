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

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, CheckInDoneContent, CheckInStartContent, DispatchCancel, DispatchCheckIn,
    DispatchSos, DispatchStatus, Kind, Location, SosCancelContent, SosContent, SosLocationContent,
    WireRecord,
};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::de::DeserializeOwned;

use super::column::{after, parse_opt_time, parse_time};
use crate::error::{Result, ServerError};

/// Most earlier positions a view carries (the newest ones).
pub(crate) const TRAIL_CAP: usize = 100;

/// How many of a device's newest records are searched for its last known position.
const LAST_POSITION_SCAN: i64 = 200;

/// What raised an alarm, from the kind of the record its `sos_status` row is keyed by.
pub(crate) fn alarm_of(kind: Kind) -> AlarmKind {
    match kind {
        Kind::CheckInStart => AlarmKind::MissedCheckIn,
        _ => AlarmKind::Sos,
    }
}

/// The kind of record behind alarms of `alarm`.
pub(crate) fn kind_of(alarm: AlarmKind) -> Kind {
    match alarm {
        AlarmKind::Sos => Kind::Sos,
        AlarmKind::MissedCheckIn => Kind::CheckInStart,
    }
}

/// A stored record's content decoded as `C`.
pub(crate) fn stored<C: DeserializeOwned>(json: &str) -> Result<C> {
    serde_json::from_str::<WireRecord<C>>(json)
        .map(|r| r.content)
        .map_err(|_| ServerError::Corrupt("stored record unreadable".into()))
}

/// The alarm's row and its record, as read for a view.
struct AlarmRow {
    device_id: String,
    id: String,
    kind: Kind,
    json: String,
    received_at: String,
    status: DispatchStatus,
    delivered_at: String,
    updated_at: String,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
    resolved_at: Option<String>,
    resolved_by: Option<String>,
    message: Option<String>,
    escalated_at: Option<String>,
}

/// The view of the alarm whose `sos_status` row is `seq`.
pub(crate) fn alarm_view(
    conn: &Connection,
    seq: i64,
    escalate_after: Duration,
) -> Result<Option<DispatchSos>> {
    let row = conn
        .prepare_cached(
            "SELECT r.device_id, r.record_id, r.kind, r.record_json, r.received_at,
                    s.status, s.delivered_at, s.updated_at, s.acknowledged_at,
                    s.acknowledged_by, s.resolved_at, s.resolved_by, s.message, s.escalated_at
             FROM sos_status s JOIN records r ON r.seq = s.seq WHERE s.seq = ?1",
        )?
        .query_row([seq], |r| {
            Ok(AlarmRow {
                device_id: r.get(0)?,
                id: r.get(1)?,
                kind: r.get(2)?,
                json: r.get(3)?,
                received_at: r.get(4)?,
                status: r.get(5)?,
                delivered_at: r.get(6)?,
                updated_at: r.get(7)?,
                acknowledged_at: r.get(8)?,
                acknowledged_by: r.get(9)?,
                resolved_at: r.get(10)?,
                resolved_by: r.get(11)?,
                message: r.get(12)?,
                escalated_at: r.get(13)?,
            })
        })
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let delivered_at = parse_time(&row.delivered_at)?;
    let mut view = DispatchSos {
        id: row.id.clone(),
        device_id: row.device_id.clone(),
        crew: crewsafe_protocol::Crew {
            device_id: row.device_id.clone(),
            crew_id: String::new(),
            staff_id: None,
        },
        raised_at: delivered_at,
        received_at: parse_time(&row.received_at)?,
        location: None,
        note: None,
        cancel: None,
        status: row.status,
        updated_at: parse_time(&row.updated_at)?,
        acknowledged_at: parse_opt_time(row.acknowledged_at)?,
        acknowledged_by: row.acknowledged_by,
        resolved_at: parse_opt_time(row.resolved_at)?,
        resolved_by: row.resolved_by,
        alarm: alarm_of(row.kind),
        message: row.message,
        trail: Vec::new(),
        escalates_at: (row.status == DispatchStatus::Delivered)
            .then(|| after(delivered_at, escalate_after)),
        escalated: row.escalated_at.is_some(),
        check_in: None,
    };
    match row.kind {
        Kind::CheckInStart => fill_check_in(conn, seq, &row.json, &mut view)?,
        _ => fill_sos(conn, &row.json, &mut view)?,
    }
    Ok(Some(view))
}

/// An SOS: content, positions and cancellation.
fn fill_sos(conn: &Connection, json: &str, view: &mut DispatchSos) -> Result<()> {
    let sos: SosContent = stored(json)?;
    view.crew = sos.crew;
    view.raised_at = sos.raised_at;
    view.note = sos.note;
    // Every position, oldest first: the alarm's own, then the follow-ups by recorded time
    // (a stable sort: among equal times the later received wins). The last is the latest.
    let mut positions: Vec<(Option<DateTime<Utc>>, Location)> =
        sos.location.into_iter().map(|l| (None, l)).collect();
    let children: Vec<(Kind, String)> = conn
        .prepare_cached(
            "SELECT kind, record_json FROM records WHERE device_id = ?1 AND parent_id = ?2
             ORDER BY seq",
        )?
        .query_map(params![view.device_id, view.id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut follow_ups = Vec::new();
    for (kind, json) in children {
        match kind {
            Kind::SosLocation => {
                let c: SosLocationContent = stored(&json)?;
                follow_ups.push((Some(c.recorded_at), c.location));
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
    follow_ups.sort_by_key(|(t, _)| *t);
    positions.extend(follow_ups);
    view.location = positions.pop().map(|(_, l)| l);
    let skip = positions.len().saturating_sub(TRAIL_CAP);
    view.trail = positions.into_iter().skip(skip).map(|(_, l)| l).collect();
    Ok(())
}

/// A missed check-in: its start, its timing and the crew's last known position.
fn fill_check_in(conn: &Connection, seq: i64, json: &str, view: &mut DispatchSos) -> Result<()> {
    let start: CheckInStartContent = stored(json)?;
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let (due_at, done_json, done_received_at, missed_at): Row = conn
        .prepare_cached(
            "SELECT c.due_at, d.record_json, c.done_received_at, c.missed_at
             FROM check_ins c LEFT JOIN records d ON d.seq = c.done_seq WHERE c.seq = ?1",
        )?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?
        .ok_or_else(|| ServerError::Corrupt("missed check-in without its check-in".into()))?;
    let done: Option<CheckInDoneContent> = done_json.as_deref().map(stored).transpose()?;
    view.check_in = Some(DispatchCheckIn {
        started_at: start.started_at,
        received_at: view.received_at,
        due_at: parse_time(&due_at)?,
        address: start.address,
        done_at: done.as_ref().map(|d| d.done_at),
        done_received_at: parse_opt_time(done_received_at)?,
        closed_late: done.is_some() && missed_at.is_some(),
    });
    // The alarm was raised by the server, not received from the phone.
    view.received_at = view.raised_at;
    view.crew = start.crew;
    view.note = start.note;
    view.location = last_known_position(conn, &view.device_id)?;
    Ok(())
}

/// The newest fix (by `fixed_at`) among the device's newest records that carry one.
pub(crate) fn last_known_position(conn: &Connection, device_id: &str) -> Result<Option<Location>> {
    let rows: Vec<String> = conn
        .prepare_cached(
            "SELECT record_json FROM records
             WHERE device_id = ?1 AND kind IN (?2, ?3, ?4, ?5)
             ORDER BY seq DESC LIMIT ?6",
        )?
        .query_map(
            params![
                device_id,
                Kind::Sos,
                Kind::SosLocation,
                Kind::CheckInStart,
                Kind::CheckInDone,
                LAST_POSITION_SCAN
            ],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    #[derive(serde::Deserialize)]
    struct WithLocation {
        #[serde(default)]
        location: Option<Location>,
    }
    let mut best: Option<Location> = None;
    for json in rows {
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
