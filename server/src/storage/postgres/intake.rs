//! Batch intake on PostgreSQL (the steps and answers are in `storage/intake.rs`; how
//! concurrent instances are kept apart in `mod.rs`). One transaction per batch; a batch with
//! any record that may touch an alarm or a check-in takes the alarm lock first. A valid
//! record with no parent to check is inserted at once (one round trip), and its key looked
//! up only when the insert did nothing.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    CheckInExtendContent, CheckInStartContent, DispatchStatus, ItemResult, ItemStatus, Kind,
};
use deadpool_postgres::GenericClient;

use super::{events, timer, word, ALARM_LOCK};
use crate::error::{Result, ServerError};
use crate::storage::column::now;
use crate::storage::intake::{
    already_stored, check, content, item, parent_missing, refused, touches_alarms, Checked,
    Incoming, Intake,
};

/// Processes `records` in order inside one transaction that is committed before this
/// returns. A check-in minute lasts `minute`.
pub(crate) async fn process_batch(
    client: &mut deadpool_postgres::Object,
    device_id: &str,
    records: &[Incoming],
    reject_ids: &HashSet<String>,
    minute: Duration,
) -> Result<Intake> {
    // What needs no database is done before the transaction (and the alarm lock).
    let checked = check(records, reject_ids, device_id);
    let tx = client.transaction().await?;
    if records.iter().any(|r| touches_alarms(r.kind)) {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK])
            .await?;
    }
    let received_at = now();
    let mut done = Intake {
        results: Vec::with_capacity(records.len()),
        ..Intake::default()
    };
    for record in checked {
        let insert_first = record.insert_first();
        let (sent, p, invalid) = match record {
            Checked::Answered(answer) => {
                done.results.push(answer);
                continue;
            }
            Checked::Ready {
                sent,
                prepared,
                invalid,
            } => (sent, prepared, invalid),
        };
        let rec = &*p.rec;
        let mut parent_seq = None;
        if !insert_first {
            if let Some(answer) = existing(&tx, device_id, &rec.id, &sent.id, &p.hash).await? {
                done.results.push(answer);
                continue;
            }
            if let Some(reason) = invalid {
                done.results
                    .push(refused(&sent.id, ItemStatus::Rejected, reason));
                continue;
            }
            if let (Some(parent), Some(want)) = (&rec.parent_id, rec.kind.parent_kind()) {
                let stmt = tx
                    .prepare_cached(
                        "SELECT kind, seq FROM records WHERE device_id = $1 AND record_id = $2",
                    )
                    .await?;
                let found = match tx.query_opt(&stmt, &[&device_id, parent]).await? {
                    Some(r) => Some((word::<Kind>(r.try_get(0)?)?, r.try_get::<_, i64>(1)?)),
                    None => None,
                };
                match found {
                    Some((kind, seq)) if kind == want => parent_seq = Some(seq),
                    _ => {
                        done.results.push(parent_missing(&sent.id, want));
                        continue;
                    }
                }
            }
        }
        let stmt = tx
            .prepare_cached(
                "INSERT INTO records (device_id, record_id, kind, lane, parent_id, device_time,
                                      received_at, content_sha256, record_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (device_id, record_id) DO NOTHING
                 RETURNING seq",
            )
            .await?;
        let inserted = tx
            .query_opt(
                &stmt,
                &[
                    &device_id,
                    &rec.id,
                    &rec.kind.as_str(),
                    &rec.lane.as_str(),
                    &rec.parent_id,
                    &rec.device_time,
                    &received_at,
                    &p.hash,
                    &p.canonical,
                ],
            )
            .await?;
        let Some(row) = inserted else {
            // The key was stored already: inserted first, or another instance stored it
            // meanwhile (this insert waited for its commit).
            let answer = existing(&tx, device_id, &rec.id, &sent.id, &p.hash)
                .await?
                .ok_or_else(|| ServerError::Corrupt("conflicting insert vanished".into()))?;
            done.results.push(answer);
            continue;
        };
        let seq: i64 = row.try_get(0)?;
        let parent = || parent_seq.ok_or_else(|| ServerError::Corrupt("no parent".into()));
        match rec.kind {
            Kind::Sos => {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO sos_status (seq, status, delivered_at, updated_at)
                         VALUES ($1, $2, $3, $3)",
                    )
                    .await?;
                tx.execute(
                    &stmt,
                    &[&seq, &DispatchStatus::Delivered.as_str(), &received_at],
                )
                .await?;
                done.events
                    .push(events::log(&tx, seq, device_id, received_at).await?);
                done.timing_changed = true;
            }
            Kind::SosLocation | Kind::SosCancel => {
                done.events
                    .push(events::log(&tx, parent()?, device_id, received_at).await?);
            }
            Kind::CheckInStart => {
                let c = content::<CheckInStartContent>(rec)?;
                timer::started(&tx, seq, received_at, c.due_in_minutes, minute).await?;
                done.timing_changed = true;
            }
            Kind::CheckInExtend => {
                let c = content::<CheckInExtendContent>(rec)?;
                timer::extended(&tx, parent()?, c.extend_by_minutes, minute).await?;
                done.timing_changed = true;
            }
            Kind::CheckInDone => {
                done.events
                    .extend(timer::done(&tx, parent()?, device_id, seq, received_at).await?);
                done.timing_changed = true;
            }
            Kind::IncidentReport => {}
        }
        done.results
            .push(item(&sent.id, ItemStatus::Accepted, Some(received_at)));
    }
    if done.timing_changed {
        events::notify_timing(&tx).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// The answer for a record whose key is already stored, if it is.
async fn existing(
    c: &impl GenericClient,
    device_id: &str,
    id: &str,
    sent_id: &str,
    hash: &[u8],
) -> Result<Option<ItemResult>> {
    let stmt = c
        .prepare_cached(
            "SELECT content_sha256, received_at FROM records
             WHERE device_id = $1 AND record_id = $2",
        )
        .await?;
    let Some(r) = c.query_opt(&stmt, &[&device_id, &id]).await? else {
        return Ok(None);
    };
    let stored_hash: Vec<u8> = r.try_get(0)?;
    let stored_at: DateTime<Utc> = r.try_get(1)?;
    Ok(Some(already_stored(sent_id, hash, &stored_hash, stored_at)))
}
