//! Lone-worker check-ins on SQLite (the rules are in `storage/check_ins.rs`): one `check_ins`
//! row per `check_in_start`, keyed by its `records.seq`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{AlarmKind, DispatchStatus};
use rusqlite::{params, Connection, OptionalExtension as _};

use super::{dispatch, events};
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::check_ins::{self as rules, CHECK_IN_RESOLVER};
use crate::storage::column::{fmt_time, parse_time};

/// Records a start received at `received_at`.
pub(crate) fn started(
    conn: &Connection,
    seq: i64,
    received_at: DateTime<Utc>,
    due_in: u32,
    minute: Duration,
) -> Result<()> {
    let due = rules::due_at(received_at, due_in, minute);
    conn.prepare_cached("INSERT INTO check_ins (seq, due_at) VALUES (?1, ?2)")?
        .execute(params![seq, fmt_time(due)])?;
    Ok(())
}

/// Moves a running check-in's due time by `by` minutes.
pub(crate) fn extended(conn: &Connection, seq: i64, by: u32, minute: Duration) -> Result<()> {
    let due: Option<String> = conn
        .prepare_cached(
            "SELECT due_at FROM check_ins
             WHERE seq = ?1 AND done_seq IS NULL AND missed_at IS NULL",
        )?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    if let Some(due) = due {
        let due = rules::extended(parse_time(&due)?, by, minute);
        conn.prepare_cached("UPDATE check_ins SET due_at = ?2 WHERE seq = ?1")?
            .execute(params![seq, fmt_time(due)])?;
    }
    Ok(())
}

/// Raises the missed check-in alarm of the start `seq` at `at`.
fn raise(conn: &Connection, seq: i64, device_id: &str, at: DateTime<Utc>) -> Result<AlarmEvent> {
    let at_str = fmt_time(at);
    dispatch::open_alarm(conn, seq, AlarmKind::MissedCheckIn, &at_str)?;
    conn.prepare_cached("UPDATE check_ins SET missed_at = ?2 WHERE seq = ?1")?
        .execute(params![seq, at_str])?;
    events::log(conn, seq, device_id, at)
}

/// Closes the check-in `seq` of `device_id` with the record `done_seq` received at
/// `received_at`; the events of a late close.
pub(crate) fn done(
    conn: &Connection,
    seq: i64,
    device_id: &str,
    done_seq: i64,
    received_at: DateTime<Utc>,
) -> Result<Vec<AlarmEvent>> {
    let row: Option<(String, Option<i64>, Option<String>)> = conn
        .prepare_cached("SELECT due_at, done_seq, missed_at FROM check_ins WHERE seq = ?1")?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((due_at, None, missed_at)) = row else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let late = rules::is_late(missed_at.is_some(), received_at, parse_time(&due_at)?);
    if missed_at.is_none() && late {
        // Due, but the timer has not run yet: the alarm is raised now, and resolved below.
        out.push(raise(conn, seq, device_id, received_at)?);
    }
    let at = fmt_time(received_at);
    conn.prepare_cached(
        "UPDATE check_ins SET done_seq = ?2, done_received_at = ?3 WHERE seq = ?1",
    )?
    .execute(params![seq, done_seq, at])?;
    if late {
        conn.prepare_cached(
            "UPDATE sos_status SET status = ?2, resolved_at = ?3, resolved_by = ?4, updated_at = ?3
             WHERE seq = ?1 AND status <> ?2",
        )?
        .execute(params![
            seq,
            DispatchStatus::Resolved,
            at,
            CHECK_IN_RESOLVER
        ])?;
        out.push(events::log(conn, seq, device_id, received_at)?);
    }
    Ok(out)
}

/// Raises the alarm of every running check-in due by `now`; returns their events and the
/// next due time of those still running.
pub(crate) fn raise_due(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<(Vec<AlarmEvent>, Option<DateTime<Utc>>)> {
    let open: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT c.seq, c.due_at, r.device_id FROM check_ins c JOIN records r ON r.seq = c.seq
             WHERE c.done_seq IS NULL AND c.missed_at IS NULL",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut raised = Vec::new();
    let mut next: Option<DateTime<Utc>> = None;
    for (seq, due, device_id) in open {
        let due = parse_time(&due)?;
        if due <= now {
            raised.push(raise(conn, seq, &device_id, now)?);
        } else if next.is_none_or(|n| due < n) {
            next = Some(due);
        }
    }
    Ok((raised, next))
}
