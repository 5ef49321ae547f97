//! Check-ins and escalation on PostgreSQL (the rules are in `storage/check_ins.rs` and
//! `sqlite/escalation.rs`): the rows of a check-in, and the timer round that raises missed
//! check-ins and marks unacknowledged alarms escalated. Every instance runs the timer; each
//! round holds the alarm lock (`mod.rs`) and its updates name only rows still due, so a
//! check-in is raised and an alarm escalated once, by whichever instance comes first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{AlarmKind, DispatchStatus};
use deadpool_postgres::GenericClient;

use super::{dispatch, events, ALARM_LOCK};
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::check_ins::{self as rules, CHECK_IN_RESOLVER};
use crate::storage::column::{after, before};

/// Records a start received at `received_at`.
pub(crate) async fn started(
    c: &impl GenericClient,
    seq: i64,
    received_at: DateTime<Utc>,
    due_in: u32,
    minute: Duration,
) -> Result<()> {
    let due = rules::due_at(received_at, due_in, minute);
    let stmt = c
        .prepare_cached("INSERT INTO check_ins (seq, due_at) VALUES ($1, $2)")
        .await?;
    c.execute(&stmt, &[&seq, &due]).await?;
    Ok(())
}

/// Moves a running check-in's due time by `by` minutes.
pub(crate) async fn extended(
    c: &impl GenericClient,
    seq: i64,
    by: u32,
    minute: Duration,
) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "SELECT due_at FROM check_ins
             WHERE seq = $1 AND done_seq IS NULL AND missed_at IS NULL",
        )
        .await?;
    if let Some(r) = c.query_opt(&stmt, &[&seq]).await? {
        let due = rules::extended(r.try_get(0)?, by, minute);
        c.execute(
            "UPDATE check_ins SET due_at = $2 WHERE seq = $1",
            &[&seq, &due],
        )
        .await?;
    }
    Ok(())
}

/// Raises the missed check-in alarm of the start `seq` at `at`.
async fn raise(
    c: &impl GenericClient,
    seq: i64,
    device_id: &str,
    at: DateTime<Utc>,
) -> Result<AlarmEvent> {
    dispatch::open_alarm(c, seq, AlarmKind::MissedCheckIn, at).await?;
    c.execute(
        "UPDATE check_ins SET missed_at = $2 WHERE seq = $1",
        &[&seq, &at],
    )
    .await?;
    events::log(c, seq, device_id, at).await
}

/// Closes the check-in `seq` of `device_id` with the record `done_seq` received at
/// `received_at`; the events of a late close.
pub(crate) async fn done(
    c: &impl GenericClient,
    seq: i64,
    device_id: &str,
    done_seq: i64,
    received_at: DateTime<Utc>,
) -> Result<Vec<AlarmEvent>> {
    let row = c
        .query_opt(
            "SELECT due_at, done_seq, missed_at IS NOT NULL FROM check_ins WHERE seq = $1",
            &[&seq],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Vec::new());
    };
    let (due_at, closed, missed): (DateTime<Utc>, Option<i64>, bool) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if closed.is_some() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let late = rules::is_late(missed, received_at, due_at);
    if !missed && late {
        // Due, but no timer has run yet: the alarm is raised now, and resolved below.
        out.push(raise(c, seq, device_id, received_at).await?);
    }
    c.execute(
        "UPDATE check_ins SET done_seq = $2, done_received_at = $3 WHERE seq = $1",
        &[&seq, &done_seq, &received_at],
    )
    .await?;
    if late {
        let resolved = DispatchStatus::Resolved.as_str();
        c.execute(
            "UPDATE sos_status SET status = $2, resolved_at = $3, resolved_by = $4,
                                   updated_at = $3
             WHERE seq = $1 AND status <> $2",
            &[&seq, &resolved, &received_at, &CHECK_IN_RESOLVER],
        )
        .await?;
        out.push(events::log(c, seq, device_id, received_at).await?);
    }
    Ok(out)
}

/// One timer round at `now`, in one transaction under the alarm lock: raises every running
/// check-in due by `now`, marks every alarm `delivered` for `escalate_after` escalated, and
/// returns when the next of either is due.
pub(crate) async fn run_due(
    client: &mut deadpool_postgres::Object,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<Option<DateTime<Utc>>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK])
        .await?;
    let due = tx
        .query(
            "SELECT c.seq, r.device_id FROM check_ins c JOIN records r ON r.seq = c.seq
             WHERE c.done_seq IS NULL AND c.missed_at IS NULL AND c.due_at <= $1
             ORDER BY c.seq",
            &[&now],
        )
        .await?;
    for r in due {
        let (seq, device_id): (i64, String) = (r.try_get(0)?, r.try_get(1)?);
        raise(&tx, seq, &device_id, now).await?;
    }
    // The status is spelled out so that the partial index `sos_status_unescalated` applies.
    let waiting = tx
        .query(
            "UPDATE sos_status s SET escalated_at = $1 FROM records r
             WHERE r.seq = s.seq AND s.status = 'delivered' AND s.escalated_at IS NULL
               AND s.delivered_at <= $2
             RETURNING s.seq, r.device_id",
            &[&now, &before(now, escalate_after)],
        )
        .await?;
    let mut marked: Vec<(i64, String)> = waiting
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
    marked.sort();
    for (seq, device_id) in marked {
        events::log(&tx, seq, &device_id, now).await?;
    }
    let next = tx
        .query_one(
            "SELECT (SELECT MIN(due_at) FROM check_ins
                     WHERE done_seq IS NULL AND missed_at IS NULL),
                    (SELECT MIN(delivered_at) FROM sos_status
                     WHERE status = 'delivered' AND escalated_at IS NULL)",
            &[],
        )
        .await?;
    tx.commit().await?;
    let next_check_in: Option<DateTime<Utc>> = next.try_get(0)?;
    let next_escalation = next
        .try_get::<_, Option<DateTime<Utc>>>(1)?
        .map(|t| after(t, escalate_after));
    Ok(match (next_check_in, next_escalation) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}
