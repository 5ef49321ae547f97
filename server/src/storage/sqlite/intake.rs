//! Batch intake on SQLite (the steps and answers are in `storage/intake.rs`): one immediate
//! transaction per batch on the writer connection, so batches are serialized and `seq` is
//! the next number after the largest stored. The steps that need no database ran before the
//! writer was taken (`Sqlite::process_batch`); a valid record with no parent to check is
//! inserted at once, and its key looked up only when the insert did nothing.

use std::time::Duration;

use crewsafe_protocol::{
    AlarmKind, CheckInExtendContent, CheckInStartContent, ItemResult, ItemStatus, Kind,
};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};

use super::{check_ins, dispatch, events};
use crate::error::{Result, ServerError};
use crate::storage::column::{fmt_time, now, parse_time};
use crate::storage::intake::{
    already_stored, content, item, parent_missing, refused, Checked, Intake,
};

/// Stores the `checked` records of a batch of `device_id` in order, inside one transaction
/// that is committed before this returns. A check-in minute lasts `minute`.
pub(crate) fn process_batch(
    conn: &mut Connection,
    device_id: &str,
    checked: Vec<Checked<'_>>,
    minute: Duration,
) -> Result<Intake> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let received_at = now();
    let received_str = fmt_time(received_at);
    let mut next_seq: i64 =
        tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM records", [], |r| {
            r.get(0)
        })?;
    let mut done = Intake {
        results: Vec::with_capacity(checked.len()),
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
            if let Some(answer) = existing(&tx, device_id, &rec.id, &sent.id, &p.hash)? {
                done.results.push(answer);
                continue;
            }
            if let Some(reason) = invalid {
                done.results
                    .push(refused(&sent.id, ItemStatus::Rejected, reason));
                continue;
            }
            if let (Some(parent), Some(want)) = (&rec.parent_id, rec.kind.parent_kind()) {
                let parent: Option<(Kind, i64)> = tx
                    .prepare_cached(
                        "SELECT kind, seq FROM records WHERE device_id = ?1 AND record_id = ?2",
                    )?
                    .query_row(params![device_id, parent], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                match parent {
                    Some((kind, seq)) if kind == want => parent_seq = Some(seq),
                    _ => {
                        done.results.push(parent_missing(&sent.id, want));
                        continue;
                    }
                }
            }
        }
        let seq = next_seq;
        let inserted = tx
            .prepare_cached(
                "INSERT INTO records (device_id, record_id, seq, kind, lane, parent_id,
                                      device_time, received_at, content_sha256, record_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (device_id, record_id) DO NOTHING",
            )?
            .execute(params![
                device_id,
                rec.id,
                seq,
                rec.kind,
                rec.lane,
                rec.parent_id,
                fmt_time(rec.device_time),
                received_str,
                p.hash,
                p.canonical,
            ])?;
        if inserted == 0 {
            // Inserted first, and the key was stored already.
            let answer = existing(&tx, device_id, &rec.id, &sent.id, &p.hash)?
                .ok_or_else(|| ServerError::Corrupt("conflicting insert vanished".into()))?;
            done.results.push(answer);
            continue;
        }
        next_seq += 1;
        let parent = || parent_seq.ok_or_else(|| ServerError::Corrupt("no parent".into()));
        match rec.kind {
            Kind::Sos => {
                dispatch::open_alarm(&tx, seq, AlarmKind::Sos, &received_str)?;
                done.events
                    .push(events::log(&tx, seq, device_id, received_at)?);
                done.timing_changed = true;
            }
            Kind::SosLocation | Kind::SosCancel => {
                done.events
                    .push(events::log(&tx, parent()?, device_id, received_at)?);
            }
            Kind::CheckInStart => {
                let c = content::<CheckInStartContent>(rec)?;
                check_ins::started(&tx, seq, received_at, c.due_in_minutes, minute)?;
                done.timing_changed = true;
            }
            Kind::CheckInExtend => {
                let c = content::<CheckInExtendContent>(rec)?;
                check_ins::extended(&tx, parent()?, c.extend_by_minutes, minute)?;
                done.timing_changed = true;
            }
            Kind::CheckInDone => {
                done.events.extend(check_ins::done(
                    &tx,
                    parent()?,
                    device_id,
                    seq,
                    received_at,
                )?);
                done.timing_changed = true;
            }
            Kind::IncidentReport => {}
        }
        done.results
            .push(item(&sent.id, ItemStatus::Accepted, Some(received_at)));
    }
    tx.commit()?;
    Ok(done)
}

/// The answer for a record whose key is already stored, if it is.
fn existing(
    tx: &Connection,
    device_id: &str,
    id: &str,
    sent_id: &str,
    hash: &[u8],
) -> Result<Option<ItemResult>> {
    let found: Option<(Vec<u8>, String)> = tx
        .prepare_cached(
            "SELECT content_sha256, received_at FROM records
             WHERE device_id = ?1 AND record_id = ?2",
        )?
        .query_row(params![device_id, id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        Some((stored_hash, stored_at)) => Ok(Some(already_stored(
            sent_id,
            hash,
            &stored_hash,
            parse_time(&stored_at)?,
        ))),
        None => Ok(None),
    }
}
