//! Batch intake on SQLite (the steps and answers are in `storage/intake.rs`): one immediate
//! transaction per batch on the writer connection, so batches are serialized and `seq` is
//! the next number after the largest stored.

use std::collections::HashSet;
use std::time::Duration;

use crewsafe_protocol::{
    CheckInExtendContent, CheckInStartContent, DispatchStatus, ItemStatus, Kind, WireRecord,
};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};

use super::check_ins;
use super::events;
use crate::error::{Result, ServerError};
use crate::storage::column::{fmt_time, now, parse_time};
use crate::storage::intake::{
    already_stored, content, item, parent_missing, prepare, refused, Intake,
};
use crate::validate::validate;

/// Processes `records` in order inside one transaction that is committed before this
/// returns. A check-in minute lasts `minute`.
pub(crate) fn process_batch(
    conn: &mut Connection,
    device_id: &str,
    records: &[WireRecord],
    reject_ids: &HashSet<String>,
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
        results: Vec::with_capacity(records.len()),
        ..Intake::default()
    };
    for sent in records {
        let p = match prepare(sent, reject_ids) {
            Ok(p) => p,
            Err(answer) => {
                done.results.push(answer);
                continue;
            }
        };
        let rec = &*p.rec;
        let existing: Option<(Vec<u8>, String)> = tx
            .prepare_cached(
                "SELECT content_sha256, received_at FROM records
                 WHERE device_id = ?1 AND record_id = ?2",
            )?
            .query_row(params![device_id, rec.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((stored_hash, stored_at)) = existing {
            let at = parse_time(&stored_at)?;
            done.results
                .push(already_stored(&sent.id, &p.hash, &stored_hash, at));
            continue;
        }
        if let Err(reason) = validate(rec, device_id) {
            done.results
                .push(refused(&sent.id, ItemStatus::Rejected, reason));
            continue;
        }
        let mut parent_seq = None;
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
        let seq = next_seq;
        next_seq += 1;
        tx.prepare_cached(
            "INSERT INTO records (device_id, record_id, seq, kind, lane, parent_id, device_time,
                                  received_at, content_sha256, record_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        let parent = || parent_seq.ok_or_else(|| ServerError::Corrupt("no parent".into()));
        match rec.kind {
            Kind::Sos => {
                tx.prepare_cached(
                    "INSERT INTO sos_status (seq, status, delivered_at, updated_at)
                     VALUES (?1, ?2, ?3, ?3)",
                )?
                .execute(params![seq, DispatchStatus::Delivered, received_str])?;
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
