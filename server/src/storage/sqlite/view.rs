//! Reads the rows of one alarm's dispatcher view from SQLite (the view is built in
//! `storage/view.rs`).

use std::time::Duration;

use crewsafe_protocol::{DispatchSos, Kind};
use rusqlite::{params, Connection, OptionalExtension as _};

use crate::error::{Result, ServerError};
use crate::storage::column::{parse_opt_time, parse_time};
use crate::storage::view::{
    build, AlarmRow, CheckInRow, Detail, LAST_POSITION_SCAN, POSITION_KINDS,
};

/// The view of the alarm whose `sos_status` row is `seq`.
pub(crate) fn alarm_view(
    conn: &Connection,
    seq: i64,
    escalate_after: Duration,
) -> Result<Option<DispatchSos>> {
    type Raw = (
        (String, String, Kind, String, String),
        (crewsafe_protocol::DispatchStatus, String, String),
        (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
        (Option<String>, Option<String>),
    );
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT r.device_id, r.record_id, r.kind, r.record_json, r.received_at,
                    s.status, s.delivered_at, s.updated_at, s.acknowledged_at,
                    s.acknowledged_by, s.resolved_at, s.resolved_by, s.message, s.escalated_at
             FROM sos_status s JOIN records r ON r.seq = s.seq WHERE s.seq = ?1",
        )?
        .query_row([seq], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                (r.get(5)?, r.get(6)?, r.get(7)?),
                (r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?),
                (r.get(12)?, r.get(13)?),
            ))
        })
        .optional()?;
    let Some((
        (device_id, id, kind, json, received_at),
        (status, delivered_at, updated_at),
        (ack_at, ack_by, res_at, res_by),
        (message, escalated_at),
    )) = raw
    else {
        return Ok(None);
    };
    let row = AlarmRow {
        device_id,
        id,
        kind,
        json,
        received_at: parse_time(&received_at)?,
        status,
        delivered_at: parse_time(&delivered_at)?,
        updated_at: parse_time(&updated_at)?,
        acknowledged_at: parse_opt_time(ack_at)?,
        acknowledged_by: ack_by,
        resolved_at: parse_opt_time(res_at)?,
        resolved_by: res_by,
        message,
        escalated: escalated_at.is_some(),
    };
    let detail = match row.kind {
        Kind::CheckInStart => Detail::CheckIn {
            check_in: check_in_row(conn, seq)?,
            recent: recent_positions(conn, &row.device_id)?,
        },
        _ => Detail::Sos {
            follow_ups: follow_ups(conn, &row.device_id, &row.id)?,
        },
    };
    build(row, detail, escalate_after).map(Some)
}

/// The follow-ups of an SOS, in receive order.
fn follow_ups(conn: &Connection, device_id: &str, id: &str) -> Result<Vec<(Kind, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT kind, record_json FROM records WHERE device_id = ?1 AND parent_id = ?2
             ORDER BY seq",
        )?
        .query_map(params![device_id, id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The `check_ins` row of the start `seq`.
fn check_in_row(conn: &Connection, seq: i64) -> Result<CheckInRow> {
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let (due_at, done_json, done_received_at, missed_at): Row = conn
        .prepare_cached(
            "SELECT c.due_at, d.record_json, c.done_received_at, c.missed_at
             FROM check_ins c LEFT JOIN records d ON d.seq = c.done_seq WHERE c.seq = ?1",
        )?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?
        .ok_or_else(|| ServerError::Corrupt("missed check-in without its check-in".into()))?;
    Ok(CheckInRow {
        due_at: parse_time(&due_at)?,
        done_json,
        done_received_at: parse_opt_time(done_received_at)?,
        missed: missed_at.is_some(),
    })
}

/// The JSON of the device's newest records that may carry a position.
fn recent_positions(conn: &Connection, device_id: &str) -> Result<Vec<String>> {
    let [a, b, c, d] = POSITION_KINDS;
    Ok(conn
        .prepare_cached(
            "SELECT record_json FROM records
             WHERE device_id = ?1 AND kind IN (?2, ?3, ?4, ?5)
             ORDER BY seq DESC LIMIT ?6",
        )?
        .query_map(params![device_id, a, b, c, d, LAST_POSITION_SCAN], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?)
}
