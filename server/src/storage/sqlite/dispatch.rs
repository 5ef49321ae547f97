//! Dispatch state of alarms on SQLite: the statuses devices poll and watch, finding an alarm
//! by id, the dispatcher list a page at a time (`storage/pages.rs`) and the alarm counts, and
//! the dispatcher moves (rules in `storage/dispatch.rs`).

use std::collections::HashSet;
use std::time::Duration;

use crewsafe_protocol::{AlarmKind, DispatchSos, DispatchStatus, SosStatus};
use rusqlite::types::Value;
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension as _, Transaction, TransactionBehavior,
};

use super::events;
use super::view::alarm_view;
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::column::{fmt_time, now, parse_opt_time, parse_time};
use crate::storage::dispatch::{Change, Lookup, Move};
use crate::storage::pages::{from_micros, split_keys, AlarmCounts, AlarmPage, AlarmQuery, Key};

/// Opens the alarm of the record `seq`, raised by `alarm` and received (or raised) at `at`
/// (RFC 3339): `delivered`, waiting for a dispatcher.
pub(crate) fn open_alarm(conn: &Connection, seq: i64, alarm: AlarmKind, at: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sos_status (seq, alarm, status, delivered_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![seq, alarm, DispatchStatus::Delivered, at])?;
    Ok(())
}

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

/// One page of the dispatcher list (`storage/pages.rs`): the keys in one range scan of
/// `sos_status_by_time`, or with a status filter one scan of `sos_status_by_status` per
/// status, merged (with an alarm filter, of `sos_status_by_alarm` and
/// `sos_status_by_alarm_status`); then the view of each alarm of the page.
pub(crate) fn dispatch_page(
    conn: &Connection,
    query: &AlarmQuery,
    escalate_after: Duration,
) -> Result<AlarmPage> {
    let mut args: Vec<Value> = Vec::new();
    let scans: Vec<String> = if query.statuses.is_empty() {
        vec![keyset_scan(query, None, &mut args)]
    } else {
        query
            .statuses
            .iter()
            .map(|&status| keyset_scan(query, Some(status), &mut args))
            .collect()
    };
    let sql = if scans.len() == 1 {
        scans.concat()
    } else {
        // Each scan is ordered and limited; the merge sorts at most `limit + 1` keys of each.
        args.push(Value::Integer(query.keys_to_read()));
        let parts: Vec<String> = scans
            .iter()
            .map(|scan| format!("SELECT * FROM ({scan})"))
            .collect();
        format!("{} ORDER BY 1, 2 LIMIT ?", parts.join(" UNION ALL "))
    };
    let keys: Vec<Key> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (keys, next) = split_keys(query, keys);
    let mut sos = Vec::with_capacity(keys.len());
    for (_, seq) in keys {
        if let Some(view) = alarm_view(conn, seq, escalate_after)? {
            sos.push(view);
        }
    }
    Ok(AlarmPage { sos, next })
}

/// The SQL of one ordered, limited scan of alarm keys `(delivered_us, seq)` (with `status`,
/// if given), its arguments appended to `args`.
fn keyset_scan(
    query: &AlarmQuery,
    status: Option<DispatchStatus>,
    args: &mut Vec<Value>,
) -> String {
    let mut sql = String::from("SELECT s.delivered_us, s.seq FROM sos_status s");
    let mut clauses: Vec<&str> = Vec::new();
    if let Some(alarm) = query.alarm {
        clauses.push("s.alarm = ?");
        args.push(Value::Text(alarm.as_str().to_string()));
    }
    if let Some(status) = status {
        clauses.push("s.status = ?");
        args.push(Value::Text(status.as_str().to_string()));
    }
    if let Some(since) = query.since_us {
        clauses.push("s.delivered_us >= ?");
        args.push(Value::Integer(since));
    }
    if let Some(until) = query.until_us {
        clauses.push("s.delivered_us < ?");
        args.push(Value::Integer(until));
    }
    if let Some(after) = query.after {
        clauses.push("(s.delivered_us, s.seq) > (?, ?)");
        args.push(Value::Integer(after.received_us));
        args.push(Value::Integer(after.seq));
    }
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY s.delivered_us, s.seq LIMIT ?");
    args.push(Value::Integer(query.keys_to_read()));
    sql
}

/// The alarm counts of the `/metrics` gauges, from `sos_status_by_status` alone.
pub(crate) fn alarm_counts(conn: &Connection) -> Result<AlarmCounts> {
    let (open, unacknowledged, oldest): (i64, i64, Option<i64>) = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM sos_status WHERE status IN (?1, ?2)),
                    (SELECT count(*) FROM sos_status WHERE status = ?1),
                    (SELECT min(delivered_us) FROM sos_status WHERE status = ?1)",
        )?
        .query_row(
            params![DispatchStatus::Delivered, DispatchStatus::Acknowledged],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
    Ok(AlarmCounts {
        open: u64::try_from(open).unwrap_or(0),
        unacknowledged: u64::try_from(unacknowledged).unwrap_or(0),
        oldest_unacknowledged: oldest.map(from_micros),
    })
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
