//! The alarm event log (`alarm_events`): one row per change an alarm's dispatcher view shows
//! (a new SOS, its follow-up position or cancellation, an acknowledge, resolve or message, a
//! missed check-in raised, a late check-in closing it, an escalation), written in the
//! transaction of the change. The dispatcher event stream reads it:
//!
//! - [`snapshot`]: every alarm not resolved, and every alarm changed in the last hour, each
//!   with its newest event id, in the order of those ids;
//! - [`changes_after`]: the current view of every alarm with an event after a given id (a
//!   reconnecting stream's `Last-Event-ID`, or a lagging subscriber's last sent id), in the
//!   order of their newest event ids.
//!
//! Pruning ([`prune`]) deletes events older than [`RETENTION`] except each alarm's newest, so
//! "the alarms with an event after N" stays exact for any N: a change after N left the alarm's
//! newest event after N, and that one is never pruned.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, DispatchStatus};
use rusqlite::{params, Connection};

use super::column::millis;
use super::view::alarm_view;
use crate::error::Result;
use crate::hub::AlarmEvent;

/// How long events are kept (each alarm's newest is kept for ever).
pub(crate) const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far back a fresh stream's snapshot reaches for alarms already resolved.
pub(crate) const RECENT: Duration = Duration::from_secs(3600);

/// One alarm's current view with its newest event id.
#[derive(Debug, Clone)]
pub(crate) struct AlarmChange {
    /// The alarm's newest event id (the stream's `id:`).
    pub(crate) event_id: i64,
    /// The alarm as dispatch sees it now.
    pub(crate) alarm: DispatchSos,
}

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
pub(crate) fn high_water(conn: &Connection) -> Result<i64> {
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
    let keys: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, MAX(event_id) FROM alarm_events WHERE event_id > ?1 GROUP BY seq",
        )?
        .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    views(conn, keys, escalate_after)
}

/// The alarms a fresh stream starts with (not resolved, or changed since `now - RECENT`) by
/// newest event id, and the newest event id they cover.
pub(crate) fn snapshot(
    conn: &Connection,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<(Vec<AlarmChange>, i64)> {
    let recent = millis(now) - RECENT.as_millis() as i64;
    let keys: Vec<(i64, i64)> = conn
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
    let high = high_water(conn)?;
    Ok((views(conn, keys, escalate_after)?, high))
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
