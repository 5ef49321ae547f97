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
use crate::storage::column::{after, fmt_time, parse_time};

/// Marks every alarm due for escalation by `now`; returns their events and the next time one
/// of the others is due.
pub(crate) fn escalate_due(
    conn: &Connection,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<(Vec<AlarmEvent>, Option<DateTime<Utc>>)> {
    // The status is spelled out so that the partial index `sos_status_unescalated` applies.
    let waiting: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT s.seq, s.delivered_at, r.device_id FROM sos_status s
             JOIN records r ON r.seq = s.seq
             WHERE s.status = 'delivered' AND s.escalated_at IS NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut marked = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for (seq, delivered_at, device_id) in waiting {
        let due = after(parse_time(&delivered_at)?, escalate_after);
        if due <= now {
            conn.prepare_cached(
                "UPDATE sos_status SET escalated_at = ?2 WHERE seq = ?1 AND status = ?3",
            )?
            .execute(params![seq, fmt_time(now), DispatchStatus::Delivered])?;
            marked.push(events::log(conn, seq, &device_id, now)?);
        } else if next.is_none_or(|n| due < n) {
            next = Some(due);
        }
    }
    Ok((marked, next))
}
