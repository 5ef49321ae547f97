//! SOS dispatch state: the status devices poll, the dispatcher view of an alarm (its latest
//! position and its cancellation folded in from the follow-ups), and the dispatcher moves
//! `delivered` → `acknowledged` → `resolved`, which never go backwards.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, DispatchCancel, DispatchSos, DispatchStatus, Kind, SosCancelContent, SosContent,
    SosLocationContent, SosStatus, WireRecord,
};
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::de::DeserializeOwned;

use super::column::{fmt_time, now, parse_opt_time, parse_time};
use crate::error::{Result, ServerError};

/// Outcome of looking an SOS up by id alone.
pub(crate) enum Lookup<T> {
    /// Exactly one match.
    Found(T),
    /// No SOS with this id (for this device, if one was named).
    NotFound,
    /// Several devices sent an SOS with this id; name the device.
    Ambiguous,
}

/// A dispatcher's move of an SOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advance {
    /// delivered → acknowledged.
    Acknowledge,
    /// delivered/acknowledged → resolved.
    Resolve,
}

/// Statuses of those `ids` that are SOS alarms of `device_id`, in request order, each once.
pub(crate) fn sos_statuses(
    conn: &Connection,
    device_id: &str,
    ids: &[String],
) -> Result<Vec<SosStatus>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.status, s.updated_at FROM records r JOIN sos_status s ON s.seq = r.seq
         WHERE r.device_id = ?1 AND r.record_id = ?2",
    )?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let row: Option<(DispatchStatus, String)> = stmt
            .query_row(params![device_id, id.to_ascii_lowercase()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((status, updated_at)) = row {
            out.push(SosStatus {
                id: id.clone(),
                status,
                updated_at: parse_time(&updated_at)?,
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                message: None,
            });
        }
    }
    Ok(out)
}

/// The device that sent SOS `id` (restricted to `device` when given).
pub(crate) fn find_sos_device(
    conn: &Connection,
    id: &str,
    device: Option<&str>,
) -> Result<Lookup<String>> {
    // With a device the records key finds it; by id alone the SOS rows are scanned.
    let (sql, params): (&str, Vec<&dyn rusqlite::ToSql>) = match &device {
        Some(device) => (
            "SELECT r.device_id FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.record_id = ?1 AND r.device_id = ?2",
            vec![&id, device],
        ),
        None => (
            "SELECT r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = ?1 LIMIT 2",
            vec![&id],
        ),
    };
    let devices: Vec<String> = conn
        .prepare_cached(sql)?
        .query_map(params.as_slice(), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match devices.len() {
        0 => Lookup::NotFound,
        1 => Lookup::Found(devices.into_iter().next().unwrap_or_default()),
        _ => Lookup::Ambiguous,
    })
}

/// The device of the first received SOS with this id, whichever device sent it.
pub(crate) fn first_sos_device(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = ?1 ORDER BY s.seq LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()?)
}

/// A stored record with its content decoded as `C`.
fn stored<C: DeserializeOwned>(json: &str) -> Result<WireRecord<C>> {
    serde_json::from_str(json).map_err(|_| ServerError::Corrupt("stored record unreadable".into()))
}

/// The dispatcher view of one SOS.
pub(crate) fn dispatch_sos(
    conn: &Connection,
    device_id: &str,
    id: &str,
) -> Result<Option<DispatchSos>> {
    type Row = (
        String,
        String,
        DispatchStatus,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT r.record_json, r.received_at, s.status, s.updated_at,
                    s.acknowledged_at, s.acknowledged_by, s.resolved_at, s.resolved_by
             FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.device_id = ?1 AND r.record_id = ?2",
        )?
        .query_row(params![device_id, id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .optional()?;
    let Some((json, received_at, status, updated_at, ack_at, ack_by, res_at, res_by)) = row else {
        return Ok(None);
    };
    let sos = stored::<SosContent>(&json)?.content;
    let mut location = sos.location.clone();
    let mut latest_fix: Option<DateTime<Utc>> = None;
    let mut cancel = None;
    let children: Vec<(Kind, String)> = conn
        .prepare_cached(
            "SELECT kind, record_json FROM records WHERE device_id = ?1 AND parent_id = ?2
             ORDER BY seq",
        )?
        .query_map(params![device_id, id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kind, json) in children {
        match kind {
            Kind::SosLocation => {
                let c = stored::<SosLocationContent>(&json)?.content;
                if latest_fix.is_none_or(|t| c.recorded_at >= t) {
                    latest_fix = Some(c.recorded_at);
                    location = Some(c.location);
                }
            }
            Kind::SosCancel if cancel.is_none() => {
                let c = stored::<SosCancelContent>(&json)?.content;
                cancel = Some(DispatchCancel {
                    reason: c.reason,
                    note: c.note,
                    cancelled_at: c.cancelled_at,
                });
            }
            _ => {}
        }
    }
    Ok(Some(DispatchSos {
        id: id.to_string(),
        device_id: device_id.to_string(),
        crew: sos.crew,
        raised_at: sos.raised_at,
        received_at: parse_time(&received_at)?,
        location,
        note: sos.note,
        cancel,
        status,
        updated_at: parse_time(&updated_at)?,
        acknowledged_at: parse_opt_time(ack_at)?,
        acknowledged_by: ack_by,
        resolved_at: parse_opt_time(res_at)?,
        resolved_by: res_by,
        alarm: AlarmKind::Sos,
        message: None,
        trail: Vec::new(),
        escalates_at: None,
        escalated: false,
        check_in: None,
    }))
}

/// All SOS alarms (optionally only those with `status`) in receive order.
pub(crate) fn dispatch_list(
    conn: &Connection,
    status: Option<DispatchStatus>,
) -> Result<Vec<DispatchSos>> {
    let keys: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT r.device_id, r.record_id FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE ?1 IS NULL OR s.status = ?1
             ORDER BY s.seq",
        )?
        .query_map([status], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for (device_id, id) in keys {
        if let Some(sos) = dispatch_sos(conn, &device_id, &id)? {
            out.push(sos);
        }
    }
    Ok(out)
}

/// Moves SOS `id` forward (never backwards; repeating is a no-op) and returns its new view.
pub(crate) fn advance_sos(
    conn: &Connection,
    id: &str,
    device: Option<&str>,
    action: Advance,
    dispatcher: &str,
) -> Result<Lookup<DispatchSos>> {
    // Ids are stored in their canonical, lower-case form.
    let id = &id.to_ascii_lowercase();
    let device_id = match find_sos_device(conn, id, device)? {
        Lookup::Found(d) => d,
        Lookup::NotFound => return Ok(Lookup::NotFound),
        Lookup::Ambiguous => return Ok(Lookup::Ambiguous),
    };
    let at = fmt_time(now());
    match action {
        Advance::Acknowledge => conn.execute(
            "UPDATE sos_status
             SET status = ?5, acknowledged_at = ?3, acknowledged_by = ?4, updated_at = ?3
             WHERE seq = (SELECT seq FROM records WHERE device_id = ?1 AND record_id = ?2)
               AND status = ?6",
            params![
                device_id,
                id,
                at,
                dispatcher,
                DispatchStatus::Acknowledged,
                DispatchStatus::Delivered
            ],
        )?,
        Advance::Resolve => conn.execute(
            "UPDATE sos_status
             SET status = ?5,
                 acknowledged_at = COALESCE(acknowledged_at, ?3),
                 acknowledged_by = COALESCE(acknowledged_by, ?4),
                 resolved_at = ?3, resolved_by = ?4, updated_at = ?3
             WHERE seq = (SELECT seq FROM records WHERE device_id = ?1 AND record_id = ?2)
               AND status <> ?5",
            params![device_id, id, at, dispatcher, DispatchStatus::Resolved],
        )?,
    };
    match dispatch_sos(conn, &device_id, id)? {
        Some(sos) => Ok(Lookup::Found(sos)),
        None => Ok(Lookup::NotFound),
    }
}
