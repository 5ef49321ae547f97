//! Dispatch state of alarms on PostgreSQL: the statuses devices poll and watch, finding an
//! alarm by id, the dispatcher list, and the dispatcher moves (rules in
//! `storage/dispatch.rs`). A move holds the alarm lock (`mod.rs`) from its first statement.

use std::collections::HashSet;
use std::time::Duration;

use crewsafe_protocol::{AlarmKind, DispatchSos, DispatchStatus, SosStatus};
use deadpool_postgres::GenericClient;

use super::view::alarm_view;
use super::{events, word, ALARM_LOCK};
use crate::error::Result;
use crate::storage::column::now;
use crate::storage::dispatch::{Change, Lookup, Move};
use crate::storage::view::kind_of;

/// Statuses of those `ids` that are alarms of `device_id`, in request order, each once.
pub(crate) async fn sos_statuses(
    c: &impl GenericClient,
    device_id: &str,
    ids: &[String],
) -> Result<Vec<SosStatus>> {
    let stmt = c
        .prepare_cached(
            "SELECT s.status, s.updated_at, s.acknowledged_at, s.acknowledged_by,
                    s.resolved_at, s.message
             FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.device_id = $1 AND r.record_id = $2",
        )
        .await?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let lower = id.to_ascii_lowercase();
        if let Some(r) = c.query_opt(&stmt, &[&device_id, &lower]).await? {
            out.push(SosStatus {
                id: id.clone(),
                status: word(r.try_get(0)?)?,
                updated_at: r.try_get(1)?,
                acknowledged_at: r.try_get(2)?,
                acknowledged_by: r.try_get(3)?,
                resolved_at: r.try_get(4)?,
                message: r.try_get(5)?,
            });
        }
    }
    Ok(out)
}

/// The alarm `id` (of `device`, when given): its seq and device.
async fn find_alarm(
    c: &impl GenericClient,
    id: &str,
    device: Option<&str>,
) -> Result<Lookup<(i64, String)>> {
    let rows = match device {
        Some(device) => {
            c.query(
                "SELECT s.seq, r.device_id FROM records r JOIN sos_status s ON s.seq = r.seq
                 WHERE r.record_id = $1 AND r.device_id = $2",
                &[&id, &device],
            )
            .await?
        }
        None => {
            c.query(
                "SELECT s.seq, r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
                 WHERE r.record_id = $1 LIMIT 2",
                &[&id],
            )
            .await?
        }
    };
    let found = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(i64, String)>>>()?;
    Ok(Lookup::of(found))
}

/// The seq of the first received alarm with this id, whichever device sent it.
pub(crate) async fn first_alarm(c: &impl GenericClient, id: &str) -> Result<Option<i64>> {
    let row = c
        .query_opt(
            "SELECT s.seq FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = $1 ORDER BY s.seq LIMIT 1",
            &[&id.to_ascii_lowercase()],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// All alarms (optionally only those with `status`, of `alarm` kind) in receive order.
pub(crate) async fn dispatch_list(
    c: &impl GenericClient,
    status: Option<DispatchStatus>,
    alarm: Option<AlarmKind>,
    escalate_after: Duration,
) -> Result<Vec<DispatchSos>> {
    let status = status.map(|s| s.as_str());
    let kind = alarm.map(|a| kind_of(a).as_str());
    let seqs = c
        .query(
            "SELECT s.seq FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE ($1::text IS NULL OR s.status = $1) AND ($2::text IS NULL OR r.kind = $2)
             ORDER BY s.seq",
            &[&status, &kind],
        )
        .await?;
    let mut out = Vec::with_capacity(seqs.len());
    for r in seqs {
        if let Some(sos) = alarm_view(c, r.try_get(0)?, escalate_after).await? {
            out.push(sos);
        }
    }
    Ok(out)
}

/// Moves alarm `id` forward (never backwards) and returns its new view. The event of the
/// change reaches the hubs through the notification.
pub(crate) async fn advance_sos(
    client: &mut deadpool_postgres::Object,
    id: &str,
    device: Option<&str>,
    mv: &Move,
    escalate_after: Duration,
) -> Result<Lookup<DispatchSos>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK])
        .await?;
    // Ids are stored in their canonical, lower-case form.
    let (seq, device_id) = match find_alarm(&tx, &id.to_ascii_lowercase(), device).await? {
        Lookup::Found(found) => found,
        Lookup::NotFound => return Ok(Lookup::NotFound),
        Lookup::Ambiguous => return Ok(Lookup::Ambiguous),
    };
    let row = tx
        .query_one(
            "SELECT status, message FROM sos_status WHERE seq = $1 FOR UPDATE",
            &[&seq],
        )
        .await?;
    let status: DispatchStatus = word(row.try_get(0)?)?;
    let message: Option<String> = row.try_get(1)?;
    let at = now();
    let changed = match mv.change(status, message.as_deref()) {
        Change::Acknowledge => {
            tx.execute(
                "UPDATE sos_status
                 SET status = $2, acknowledged_at = $3, acknowledged_by = $4, updated_at = $3,
                     message = COALESCE($5, message)
                 WHERE seq = $1",
                &[
                    &seq,
                    &DispatchStatus::Acknowledged.as_str(),
                    &at,
                    &mv.dispatcher,
                    &mv.message,
                ],
            )
            .await?
        }
        Change::Resolve => {
            tx.execute(
                "UPDATE sos_status
                 SET status = $2,
                     acknowledged_at = COALESCE(acknowledged_at, $3),
                     acknowledged_by = COALESCE(acknowledged_by, $4),
                     resolved_at = $3, resolved_by = $4, updated_at = $3,
                     message = COALESCE($5, message)
                 WHERE seq = $1",
                &[
                    &seq,
                    &DispatchStatus::Resolved.as_str(),
                    &at,
                    &mv.dispatcher,
                    &mv.message,
                ],
            )
            .await?
        }
        Change::Message => {
            tx.execute(
                "UPDATE sos_status SET message = $2, updated_at = $3 WHERE seq = $1",
                &[&seq, &mv.message, &at],
            )
            .await?
        }
        Change::Nothing => 0,
    };
    if changed > 0 {
        events::log(&tx, seq, &device_id, at).await?;
    }
    let view = alarm_view(&tx, seq, escalate_after).await?;
    tx.commit().await?;
    Ok(view.map_or(Lookup::NotFound, Lookup::Found))
}
