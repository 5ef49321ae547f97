//! Batch intake: each record of a batch is stored exactly once, in one transaction committed
//! before the answer. `(device, id)` is the permanent dedupe key: a record sent again with the
//! same canonical content is a `duplicate` answered with the first receive time, with other
//! content a `conflict`, and neither changes anything else. A follow-up's parent must be a
//! stored record of the kind its kind names ([`Kind::parent_kind`]) of the same device.
//!
//! What an accepted record starts: an SOS its dispatch status (`delivered`) and an alarm
//! event; an SOS follow-up an event of its alarm; a check-in record its timing
//! (`check_ins.rs`). The events are returned for the hub, published after the commit.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    CheckInExtendContent, CheckInStartContent, DispatchStatus, ItemResult, ItemStatus, Kind,
    WireRecord,
};
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};

use super::check_ins;
use super::column::{fmt_time, now, parse_time, sha256};
use super::events;
use crate::canonical::canonical_record;
use crate::error::{Result, ServerError};
use crate::hub::AlarmEvent;
use crate::validate::validate;

/// What a committed batch did.
pub(crate) struct Intake {
    /// One result per processed record, in order.
    pub(crate) results: Vec<ItemResult>,
    /// The alarm events it logged, in order.
    pub(crate) events: Vec<AlarmEvent>,
    /// Whether it started, extended or closed a check-in or raised an alarm (the timer's
    /// next deadline may have moved).
    pub(crate) timing_changed: bool,
}

/// Reason given for records poisoned by the test fault `reject_id`.
pub const POISON_REASON: &str = "poison record (test fault)";

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
    let mut results = Vec::with_capacity(records.len());
    let mut events = Vec::new();
    let mut timing_changed = false;
    for sent in records {
        // Ids are stored and compared in their canonical (lower-case) form; answers carry the
        // id as the client sent it.
        let rec = &*canonical_ids(sent);
        if reject_ids.contains(&rec.id) {
            results.push(refused(&sent.id, ItemStatus::Rejected, POISON_REASON));
            continue;
        }
        let canonical = canonical_record(rec);
        let hash = sha256(canonical.as_bytes());
        let existing: Option<(Vec<u8>, String)> = tx
            .prepare_cached(
                "SELECT content_sha256, received_at FROM records
                 WHERE device_id = ?1 AND record_id = ?2",
            )?
            .query_row(params![device_id, rec.id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((stored_hash, stored_at)) = existing {
            results.push(if stored_hash == hash {
                item(
                    &sent.id,
                    ItemStatus::Duplicate,
                    Some(parse_time(&stored_at)?),
                )
            } else {
                refused(
                    &sent.id,
                    ItemStatus::Conflict,
                    "id: already stored for this device with different content",
                )
            });
            continue;
        }
        if let Err(reason) = validate(rec, device_id) {
            results.push(refused(&sent.id, ItemStatus::Rejected, reason));
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
                    results.push(refused(
                        &sent.id,
                        ItemStatus::Rejected,
                        format!(
                            "parent_id: must name an {want} of this device that is already \
                             stored (send the {want} first, or earlier in the same batch)"
                        ),
                    ));
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
            hash,
            canonical,
        ])?;
        let parent = || parent_seq.ok_or_else(|| ServerError::Corrupt("no parent".into()));
        match rec.kind {
            Kind::Sos => {
                tx.prepare_cached(
                    "INSERT INTO sos_status (seq, status, delivered_at, updated_at)
                     VALUES (?1, ?2, ?3, ?3)",
                )?
                .execute(params![seq, DispatchStatus::Delivered, received_str])?;
                events.push(events::log(&tx, seq, device_id, received_at)?);
                timing_changed = true;
            }
            Kind::SosLocation | Kind::SosCancel => {
                events.push(events::log(&tx, parent()?, device_id, received_at)?);
            }
            Kind::CheckInStart => {
                let c = content::<CheckInStartContent>(rec)?;
                check_ins::started(&tx, seq, received_at, c.due_in_minutes, minute)?;
                timing_changed = true;
            }
            Kind::CheckInExtend => {
                let c = content::<CheckInExtendContent>(rec)?;
                check_ins::extended(&tx, parent()?, c.extend_by_minutes, minute)?;
                timing_changed = true;
            }
            Kind::CheckInDone => {
                events.extend(check_ins::done(
                    &tx,
                    parent()?,
                    device_id,
                    seq,
                    received_at,
                )?);
                timing_changed = true;
            }
            Kind::IncidentReport => {}
        }
        results.push(item(&sent.id, ItemStatus::Accepted, Some(received_at)));
    }
    tx.commit()?;
    Ok(Intake {
        results,
        events,
        timing_changed,
    })
}

/// The content of a validated record, as its kind's type.
fn content<'a, C: serde::Deserialize<'a>>(rec: &'a WireRecord) -> Result<C> {
    C::deserialize(&rec.content).map_err(|_| ServerError::Corrupt("validated content".into()))
}

/// `record` with its id and parent id in lower case (a UUID's canonical form), copied only
/// when they are not already.
fn canonical_ids(record: &WireRecord) -> std::borrow::Cow<'_, WireRecord> {
    let upper = |id: &str| id.bytes().any(|b| b.is_ascii_uppercase());
    if !upper(&record.id) && !record.parent_id.as_deref().is_some_and(upper) {
        return std::borrow::Cow::Borrowed(record);
    }
    let mut owned = record.clone();
    owned.id.make_ascii_lowercase();
    if let Some(p) = &mut owned.parent_id {
        p.make_ascii_lowercase();
    }
    std::borrow::Cow::Owned(owned)
}

fn item(id: &str, status: ItemStatus, received_at: Option<DateTime<Utc>>) -> ItemResult {
    ItemResult {
        id: id.to_string(),
        status,
        received_at,
        reason: None,
    }
}

fn refused(id: &str, status: ItemStatus, reason: impl Into<String>) -> ItemResult {
    ItemResult {
        reason: Some(reason.into()),
        ..item(id, status, None)
    }
}
