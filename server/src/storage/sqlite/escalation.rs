//! Escalation on SQLite: an alarm still `delivered` (no dispatcher has acknowledged it) `escalate_after`
//! after it was raised is marked escalated (`sos_status.escalated_at`), once. The mark stays
//! after an acknowledge: it records that the alarm waited too long. It changes neither the
//! status nor `updated_at`, so the phones' status watches do not see it; dispatchers do.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::DispatchStatus;
use rusqlite::{params, Connection};

use super::events;
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::column::{after, before, fmt_time};

/// Marks every alarm due for escalation by `now`; returns their events and the next time one
/// of the others is due. Both reads are ranges of the partial index `sos_status_unescalated`
/// (on the receive time, `delivered_us`): the alarms due now, and the first of the rest.
pub(crate) fn escalate_due(
    conn: &Connection,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<(Vec<AlarmEvent>, Option<DateTime<Utc>>)> {
    // An alarm received at or before this is due. The status is spelled out so that the
    // partial index applies, and named so that the planner never prefers the dispatcher
    // list's index on (status, time): that one also holds the escalated alarms still waiting.
    let cutoff_us = before(now, escalate_after).timestamp_micros();
    let due: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT s.seq, r.device_id FROM sos_status s INDEXED BY sos_status_unescalated
             JOIN records r ON r.seq = s.seq
             WHERE s.status = 'delivered' AND s.escalated_at IS NULL AND s.delivered_us <= ?1
             ORDER BY s.seq",
        )?
        .query_map([cutoff_us], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut marked = Vec::with_capacity(due.len());
    for (seq, device_id) in due {
        conn.prepare_cached(
            "UPDATE sos_status SET escalated_at = ?2 WHERE seq = ?1 AND status = ?3",
        )?
        .execute(params![seq, fmt_time(now), DispatchStatus::Delivered])?;
        marked.push(events::log(conn, seq, &device_id, now)?);
    }
    let first_waiting: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(delivered_us) FROM sos_status INDEXED BY sos_status_unescalated
             WHERE status = 'delivered' AND escalated_at IS NULL",
        )?
        .query_row([], |r| r.get(0))?;
    let next = first_waiting
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .map(|t| after(t, escalate_after));
    Ok((marked, next))
}
