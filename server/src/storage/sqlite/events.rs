//! The alarm event log on SQLite (what it holds and how the stream reads it: see
//! `storage/events.rs`). `alarm_events.at_ms` is the server clock in Unix milliseconds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::DispatchStatus;
use rusqlite::{params, Connection};

use super::view::alarm_view;
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::column::millis;
use crate::storage::events::{AlarmChange, RECENT, RETENTION};

/// Logs a change of the alarm `seq` (of `device_id`) in the caller's transaction.
pub(crate) fn log(
    conn: &Connection,
    seq: i64,
    device_id: &str,
    at: DateTime<Utc>,
) -> Result<AlarmEvent> {
    conn.prepare_cached("INSERT INTO alarm_events (seq, at_ms) VALUES (?1, ?2)")?
        .execute(params![seq, millis(at)])?;
    Ok(AlarmEvent {
        event_id: conn.last_insert_rowid(),
        device_id: device_id.to_string(),
    })
}

/// The newest event id so far (0 before the first).
fn high_water(conn: &Connection) -> Result<i64> {
    // sqlite_sequence remembers the largest id even after pruning.
    Ok(conn.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alarm_events'), 0)",
        [],
        |r| r.get(0),
    )?)
}

fn views(
    conn: &Connection,
    keys: Vec<(i64, i64)>,
    escalate_after: Duration,
) -> Result<Vec<AlarmChange>> {
    let mut out = Vec::with_capacity(keys.len());
    for (seq, event_id) in keys {
        if let Some(alarm) = alarm_view(conn, seq, escalate_after)? {
            out.push(AlarmChange { event_id, alarm });
        }
    }
    out.sort_by_key(|c| c.event_id);
    Ok(out)
}

/// Every alarm with an event after `after`, at its current view, by newest event id.
pub(crate) fn changes_after(
    conn: &Connection,
    after: i64,
    escalate_after: Duration,
) -> Result<Vec<AlarmChange>> {
    let tx = conn.unchecked_transaction()?;
    let keys: Vec<(i64, i64)> = tx
        .prepare_cached(
            "SELECT seq, MAX(event_id) FROM alarm_events WHERE event_id > ?1 GROUP BY seq",
        )?
        .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let out = views(&tx, keys, escalate_after)?;
    tx.finish()?;
    Ok(out)
}

/// The alarms a fresh stream starts with (not resolved, or changed since `now - RECENT`) by
/// newest event id, and the newest event id they cover.
pub(crate) fn snapshot(
    conn: &Connection,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<(Vec<AlarmChange>, i64)> {
    // One read transaction: the high water mark covers exactly what was read.
    let tx = conn.unchecked_transaction()?;
    let recent = millis(now) - RECENT.as_millis() as i64;
    let keys: Vec<(i64, i64)> = tx
        .prepare_cached(
            "SELECT e.seq, MAX(e.event_id) FROM alarm_events e
             WHERE e.seq IN (SELECT seq FROM sos_status WHERE status <> ?1
                             UNION SELECT seq FROM alarm_events WHERE at_ms >= ?2)
             GROUP BY e.seq",
        )?
        .query_map(params![DispatchStatus::Resolved, recent], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let high = high_water(&tx)?;
    let out = views(&tx, keys, escalate_after)?;
    tx.finish()?;
    Ok((out, high))
}

/// Deletes events older than `now - RETENTION`, except each alarm's newest. Returns how many.
pub(crate) fn prune(conn: &Connection, now: DateTime<Utc>) -> Result<usize> {
    let cutoff = millis(now) - RETENTION.as_millis() as i64;
    Ok(conn.execute(
        "DELETE FROM alarm_events
         WHERE at_ms < ?1
           AND EXISTS (SELECT 1 FROM alarm_events n
                       WHERE n.seq = alarm_events.seq AND n.event_id > alarm_events.event_id)",
        [cutoff],
    )?)
}
