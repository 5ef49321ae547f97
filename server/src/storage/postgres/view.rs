//! Reads the rows of one alarm's dispatcher view from PostgreSQL (the view is built in
//! `storage/view.rs`).

use std::time::Duration;

use crewsafe_protocol::{DispatchSos, Kind};
use deadpool_postgres::GenericClient;

use super::word;
use crate::error::{Result, ServerError};
use crate::storage::view::{
    build, AlarmRow, CheckInRow, Detail, LAST_POSITION_SCAN, POSITION_KINDS,
};

/// The view of the alarm whose `sos_status` row is `seq`.
pub(crate) async fn alarm_view(
    c: &impl GenericClient,
    seq: i64,
    escalate_after: Duration,
) -> Result<Option<DispatchSos>> {
    let stmt = c
        .prepare_cached(
            "SELECT r.device_id, r.record_id, r.kind, r.record_json, r.received_at,
                    s.status, s.delivered_at, s.updated_at, s.acknowledged_at,
                    s.acknowledged_by, s.resolved_at, s.resolved_by, s.message,
                    s.escalated_at IS NOT NULL
             FROM sos_status s JOIN records r ON r.seq = s.seq WHERE s.seq = $1",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&seq]).await? else {
        return Ok(None);
    };
    let row = AlarmRow {
        device_id: r.try_get(0)?,
        id: r.try_get(1)?,
        kind: word(r.try_get(2)?)?,
        json: r.try_get(3)?,
        received_at: r.try_get(4)?,
        status: word(r.try_get(5)?)?,
        delivered_at: r.try_get(6)?,
        updated_at: r.try_get(7)?,
        acknowledged_at: r.try_get(8)?,
        acknowledged_by: r.try_get(9)?,
        resolved_at: r.try_get(10)?,
        resolved_by: r.try_get(11)?,
        message: r.try_get(12)?,
        escalated: r.try_get(13)?,
    };
    let detail = match row.kind {
        Kind::CheckInStart => Detail::CheckIn {
            check_in: check_in_row(c, seq).await?,
            recent: recent_positions(c, &row.device_id).await?,
        },
        _ => Detail::Sos {
            follow_ups: follow_ups(c, &row.device_id, &row.id).await?,
        },
    };
    build(row, detail, escalate_after).map(Some)
}

/// The follow-ups of an SOS, in receive order.
async fn follow_ups(
    c: &impl GenericClient,
    device_id: &str,
    id: &str,
) -> Result<Vec<(Kind, String)>> {
    let stmt = c
        .prepare_cached(
            "SELECT kind, record_json FROM records WHERE device_id = $1 AND parent_id = $2
             ORDER BY seq",
        )
        .await?;
    c.query(&stmt, &[&device_id, &id])
        .await?
        .iter()
        .map(|r| Ok((word(r.try_get(0)?)?, r.try_get(1)?)))
        .collect()
}

/// The `check_ins` row of the start `seq`.
async fn check_in_row(c: &impl GenericClient, seq: i64) -> Result<CheckInRow> {
    let stmt = c
        .prepare_cached(
            "SELECT c.due_at, d.record_json, c.done_received_at, c.missed_at IS NOT NULL
             FROM check_ins c LEFT JOIN records d ON d.seq = c.done_seq WHERE c.seq = $1",
        )
        .await?;
    let r = c
        .query_opt(&stmt, &[&seq])
        .await?
        .ok_or_else(|| ServerError::Corrupt("missed check-in without its check-in".into()))?;
    Ok(CheckInRow {
        due_at: r.try_get(0)?,
        done_json: r.try_get(1)?,
        done_received_at: r.try_get(2)?,
        missed: r.try_get(3)?,
    })
}

/// The JSON of the device's newest records that may carry a position.
async fn recent_positions(c: &impl GenericClient, device_id: &str) -> Result<Vec<String>> {
    let kinds: Vec<&str> = POSITION_KINDS.iter().map(|k| k.as_str()).collect();
    let stmt = c
        .prepare_cached(
            "SELECT record_json FROM records
             WHERE device_id = $1 AND kind = ANY($2)
             ORDER BY seq DESC LIMIT $3",
        )
        .await?;
    c.query(&stmt, &[&device_id, &kinds, &LAST_POSITION_SCAN])
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}
