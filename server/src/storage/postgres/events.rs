//! The alarm event log on PostgreSQL (what it holds and how the stream reads it: see
//! `storage/events.rs`). Logging an event also queues its notification (`mod.rs`): both take
//! effect at the commit, or neither.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::DispatchStatus;
use deadpool_postgres::GenericClient;

use super::view::alarm_view;
use super::CHANNEL;
use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::column::before;
use crate::storage::events::{AlarmChange, RECENT, RETENTION};

/// Logs a change of the alarm `seq` (of `device_id`) in the caller's transaction, which holds
/// the alarm lock, and notifies the listening instances when it commits.
pub(crate) async fn log(
    c: &impl GenericClient,
    seq: i64,
    device_id: &str,
    at: DateTime<Utc>,
) -> Result<AlarmEvent> {
    let stmt = c
        .prepare_cached(
            "WITH e AS (INSERT INTO alarm_events (seq, at) VALUES ($1, $2) RETURNING event_id)
             SELECT event_id, pg_notify($3, 'e ' || event_id || ' ' || $4) FROM e",
        )
        .await?;
    let row = c
        .query_one(&stmt, &[&seq, &at, &CHANNEL, &device_id])
        .await?;
    Ok(AlarmEvent {
        event_id: row.try_get(0)?,
        device_id: device_id.to_string(),
    })
}

/// Tells the listening instances that the timer's next deadline may have moved.
pub(crate) async fn notify_timing(c: &impl GenericClient) -> Result<()> {
    c.execute("SELECT pg_notify($1, 't')", &[&CHANNEL]).await?;
    Ok(())
}

/// The newest event id so far (0 before the first). Pruning keeps each alarm's newest event,
/// so the newest of all is never pruned.
pub(crate) const HIGH_WATER: &str = "SELECT COALESCE(MAX(event_id), 0) FROM alarm_events";

/// The events after `$1`, oldest first, with their devices (for a listener that lost its
/// connection).
pub(crate) const EVENTS_AFTER: &str =
    "SELECT e.event_id, r.device_id FROM alarm_events e JOIN records r ON r.seq = e.seq
     WHERE e.event_id > $1 ORDER BY e.event_id";

async fn views(
    c: &impl GenericClient,
    rows: Vec<tokio_postgres::Row>,
    escalate_after: Duration,
) -> Result<Vec<AlarmChange>> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (seq, event_id): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        if let Some(alarm) = alarm_view(c, seq, escalate_after).await? {
            out.push(AlarmChange { event_id, alarm });
        }
    }
    out.sort_by_key(|c| c.event_id);
    Ok(out)
}

/// Every alarm with an event after `after`, at its current view, by newest event id (in the
/// caller's snapshot transaction).
pub(crate) async fn changes_after(
    c: &impl GenericClient,
    after: i64,
    escalate_after: Duration,
) -> Result<Vec<AlarmChange>> {
    let stmt = c
        .prepare_cached(
            "SELECT seq, MAX(event_id) FROM alarm_events WHERE event_id > $1 GROUP BY seq",
        )
        .await?;
    let rows = c.query(&stmt, &[&after]).await?;
    views(c, rows, escalate_after).await
}

/// The alarms a fresh stream starts with (not resolved, or changed since `now - RECENT`) by
/// newest event id, and the newest event id they cover (in the caller's snapshot
/// transaction).
pub(crate) async fn snapshot(
    c: &impl GenericClient,
    now: DateTime<Utc>,
    escalate_after: Duration,
) -> Result<(Vec<AlarmChange>, i64)> {
    let stmt = c
        .prepare_cached(
            "SELECT e.seq, MAX(e.event_id) FROM alarm_events e
             WHERE e.seq IN (SELECT seq FROM sos_status WHERE status <> $1
                             UNION SELECT seq FROM alarm_events WHERE at >= $2)
             GROUP BY e.seq",
        )
        .await?;
    let rows = c
        .query(
            &stmt,
            &[&DispatchStatus::Resolved.as_str(), &before(now, RECENT)],
        )
        .await?;
    let high = c.query_one(HIGH_WATER, &[]).await?.try_get(0)?;
    Ok((views(c, rows, escalate_after).await?, high))
}

/// Deletes events older than `now - RETENTION`, except each alarm's newest. Returns how many.
pub(crate) async fn prune(c: &impl GenericClient, now: DateTime<Utc>) -> Result<u64> {
    Ok(c.execute(
        "DELETE FROM alarm_events a
         WHERE a.at < $1
           AND EXISTS (SELECT 1 FROM alarm_events n
                       WHERE n.seq = a.seq AND n.event_id > a.event_id)",
        &[&before(now, RETENTION)],
    )
    .await?)
}
