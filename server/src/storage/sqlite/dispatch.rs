//! Dispatch state of alarms on SQLite: the statuses devices poll and watch, finding an alarm
//! by id, the dispatcher list, and the dispatcher moves (rules in `storage/dispatch.rs`).

use std::collections::HashSet;
use std::time::Duration;

use crewsafe_protocol::{AlarmKind, DispatchSos, DispatchStatus, SosStatus};
use rusqlite::{params, Connection, OptionalExtension as _, Transaction, TransactionBehavior};

use super::events;
use super::view::alarm_view;
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::column::{fmt_time, now, parse_opt_time, parse_time};
use crate::storage::dispatch::{Change, Lookup, Move};
use crate::storage::view::kind_of;

/// Statuses of those `ids` that are alarms of `device_id`, in request order, each once.
pub(crate) fn sos_statuses(
    conn: &Connection,
    device_id: &str,
    ids: &[String],
) -> Result<Vec<SosStatus>> {
    type Row = (
        DispatchStatus,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut stmt = conn.prepare_cached(
        "SELECT s.status, s.updated_at, s.acknowledged_at, s.acknowledged_by, s.resolved_at,
                s.message
         FROM records r JOIN sos_status s ON s.seq = r.seq
         WHERE r.device_id = ?1 AND r.record_id = ?2",
    )?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let row: Option<Row> = stmt
            .query_row(params![device_id, id.to_ascii_lowercase()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        if let Some((status, updated_at, ack_at, ack_by, res_at, message)) = row {
            out.push(SosStatus {
                id: id.clone(),
                status,
                updated_at: parse_time(&updated_at)?,
                acknowledged_at: parse_opt_time(ack_at)?,
                acknowledged_by: ack_by,
                resolved_at: parse_opt_time(res_at)?,
                message,
            });
        }
    }
    Ok(out)
}

/// The alarm `id` (of `device`, when given): its seq and device.
pub(crate) fn find_alarm(
    conn: &Connection,
    id: &str,
    device: Option<&str>,
) -> Result<Lookup<(i64, String)>> {
    // With a device the records key finds it; by id alone the alarm rows are scanned.
    let (sql, params): (&str, Vec<&dyn rusqlite::ToSql>) = match &device {
        Some(device) => (
            "SELECT s.seq, r.device_id FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.record_id = ?1 AND r.device_id = ?2",
            vec![&id, device],
        ),
        None => (
            "SELECT s.seq, r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = ?1 LIMIT 2",
            vec![&id],
        ),
    };
    let found: Vec<(i64, String)> = conn
        .prepare_cached(sql)?
        .query_map(params.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Lookup::of(found))
}

/// The seq of the first received alarm with this id, whichever device sent it.
pub(crate) fn first_alarm(conn: &Connection, id: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT s.seq FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = ?1 ORDER BY s.seq LIMIT 1",
            [id.to_ascii_lowercase()],
            |r| r.get(0),
        )
        .optional()?)
}

/// All alarms (optionally only those with `status`, of `alarm` kind) in receive order.
pub(crate) fn dispatch_list(
    conn: &Connection,
    status: Option<DispatchStatus>,
    alarm: Option<AlarmKind>,
    escalate_after: Duration,
) -> Result<Vec<DispatchSos>> {
    let seqs: Vec<i64> = conn
        .prepare_cached(
            "SELECT s.seq FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE (?1 IS NULL OR s.status = ?1) AND (?2 IS NULL OR r.kind = ?2)
             ORDER BY s.seq",
        )?
        .query_map(params![status, alarm.map(kind_of)], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(sos) = alarm_view(conn, seq, escalate_after)? {
            out.push(sos);
        }
    }
    Ok(out)
}

/// Moves alarm `id` forward (never backwards) and returns its new view and the event of the
/// change.
pub(crate) fn advance_sos(
    conn: &Connection,
    id: &str,
    device: Option<&str>,
    mv: &Move,
    escalate_after: Duration,
) -> Result<(Lookup<DispatchSos>, Option<AlarmEvent>)> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // Ids are stored in their canonical, lower-case form.
    let (seq, device_id) = match find_alarm(&tx, &id.to_ascii_lowercase(), device)? {
        Lookup::Found(found) => found,
        Lookup::NotFound => return Ok((Lookup::NotFound, None)),
        Lookup::Ambiguous => return Ok((Lookup::Ambiguous, None)),
    };
    let (status, message): (DispatchStatus, Option<String>) = tx.query_row(
        "SELECT status, message FROM sos_status WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let at = now();
    let at_str = fmt_time(at);
    let changed = match mv.change(status, message.as_deref()) {
        Change::Acknowledge => tx.execute(
            "UPDATE sos_status
             SET status = ?2, acknowledged_at = ?3, acknowledged_by = ?4, updated_at = ?3,
                 message = COALESCE(?5, message)
             WHERE seq = ?1",
            params![
                seq,
                DispatchStatus::Acknowledged,
                at_str,
                mv.dispatcher,
                mv.message
            ],
        )?,
        Change::Resolve => tx.execute(
            "UPDATE sos_status
             SET status = ?2,
                 acknowledged_at = COALESCE(acknowledged_at, ?3),
                 acknowledged_by = COALESCE(acknowledged_by, ?4),
                 resolved_at = ?3, resolved_by = ?4, updated_at = ?3,
                 message = COALESCE(?5, message)
             WHERE seq = ?1",
            params![
                seq,
                DispatchStatus::Resolved,
                at_str,
                mv.dispatcher,
                mv.message
            ],
        )?,
        Change::Message => tx.execute(
            "UPDATE sos_status SET message = ?2, updated_at = ?3 WHERE seq = ?1",
            params![seq, mv.message, at_str],
        )?,
        Change::Nothing => 0,
    };
    let event = if changed > 0 {
        Some(events::log(&tx, seq, &device_id, at)?)
    } else {
        None
    };
    let view = alarm_view(&tx, seq, escalate_after)?;
    tx.commit()?;
    Ok((view.map_or(Lookup::NotFound, Lookup::Found), event))
}
