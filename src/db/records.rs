//! Records and their outbox state: SOS alarms, follow-ups, finalized reports, the queue view.
//! A record and its outbox state (lane, upload order, sync state) are one row, written in one
//! transaction; record content is appended, never edited.

use std::time::SystemTime;

use crewsafe_protocol as proto;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::attachments::ReportAttachment;
use super::check_in_payloads::{CheckInDonePayload, CheckInExtendPayload, CheckInStartPayload};
use super::{check_id, new_id, now, Db, Durability};
use crate::crypto::Slot;
use crate::error::{Result, StoreError};
use crate::model::{
    validate_note, Attachment, CancelReason, CrewIdentity, DispatchStatus, IncidentFields,
    IncidentReport, Lane, LocationFix, PendingCounts, QueueEntry, RecordKind, RecordOrder,
    RecordPage, RecordPageRequest, Sos, SosCancellation, SosLocationUpdate, SosState, SyncState,
    MAX_PAGE_ENTRIES,
};

/// Sealed content of an SOS.
#[derive(Serialize, Deserialize)]
pub struct SosPayload {
    /// Who raised it.
    pub crew: CrewIdentity,
    /// When.
    pub raised_at: SystemTime,
    /// Where, if known.
    pub location: Option<LocationFix>,
    /// Short note.
    pub note: Option<String>,
}

/// Sealed content of a follow-up location.
#[derive(Serialize, Deserialize)]
pub struct LocationPayload {
    /// The new position.
    pub location: LocationFix,
    /// When it was recorded.
    pub recorded_at: SystemTime,
}

/// Sealed content of a cancellation.
#[derive(Serialize, Deserialize)]
pub struct CancelPayload {
    /// Why.
    pub reason: CancelReason,
    /// Short note.
    pub note: Option<String>,
    /// When.
    pub cancelled_at: SystemTime,
}

/// Sealed content of a finalized report.
#[derive(Serialize, Deserialize)]
pub struct ReportPayload {
    /// Who wrote it.
    pub crew: CrewIdentity,
    /// The validated content.
    pub fields: IncidentFields,
    /// When the draft was started.
    pub created_at: SystemTime,
    /// When it was finalized.
    pub finalized_at: SystemTime,
    /// The files it commits to.
    #[serde(default)]
    pub attachments: Vec<ReportAttachment>,
}

/// The table name in the slot a server's rejection reason is sealed for. Slot names are part
/// of every envelope's associated data, so they stay as first shipped even though the column
/// moved to `records` in schema v3.
pub(crate) const WEDGED_SLOT_TABLE: &str = "outbox";

/// The slot a server's rejection reason is sealed for.
pub(crate) fn wedged_slot(id: &str) -> Slot<'_> {
    Slot::new(WEDGED_SLOT_TABLE, "wedged_reason", id)
}

/// Inserts a sealed record, queued at the end of its lane, in the caller's transaction. One
/// appended row: the table and its id index are the only b-trees written (a follow-up also
/// enters the parent index).
pub(crate) fn insert_record(
    tx: &Connection,
    id: &str,
    kind: RecordKind,
    parent: Option<&str>,
    sealed: &[u8],
) -> Result<i64> {
    let lane = kind.lane();
    tx.prepare_cached(
        "INSERT INTO records (id, kind, parent_id, payload, lane) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, kind, parent, sealed, lane])?;
    // `seq` is the rowid.
    Ok(tx.last_insert_rowid())
}

/// One stored record with its outbox columns.
pub(super) struct Row {
    pub(super) id: String,
    pub(super) kind: RecordKind,
    pub(super) parent_id: Option<String>,
    pub(super) payload: Option<Vec<u8>>,
    pub(super) seq: u64,
    pub(super) lane: Lane,
    pub(super) state: SyncState,
    pub(super) attempts: u32,
    pub(super) wedged_reason: Option<Vec<u8>>,
    pub(super) dispatch_status: Option<DispatchStatus>,
    pub(super) dispatch_info: Option<Vec<u8>>,
}

const ROW_SELECT: &str = "SELECT r.id, r.kind, r.parent_id, r.payload, r.seq, r.lane, r.state, \
     r.attempts, r.wedged_reason, r.dispatch_status, r.dispatch_info FROM records r";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        kind: r.get(1)?,
        parent_id: r.get(2)?,
        payload: r.get(3)?,
        seq: r.get(4)?,
        lane: r.get(5)?,
        state: r.get(6)?,
        attempts: r.get(7)?,
        wedged_reason: r.get(8)?,
        dispatch_status: r.get(9)?,
        dispatch_info: r.get(10)?,
    })
}

impl Db {
    pub(super) fn rows(&self, filter: &str, param: &dyn rusqlite::ToSql) -> Result<Vec<Row>> {
        self.rows_with(filter, &[param])
    }

    fn rows_with(&self, filter: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{ROW_SELECT} {filter}"))?;
        let rows = stmt.query_map(params, read_row)?;
        rows.map(|r| {
            let mut row = r?;
            if row.state == SyncState::Queued && self.outbox.in_flight.contains_key(&row.id) {
                row.state = SyncState::Sending;
            }
            Ok(row)
        })
        .collect()
    }

    pub(super) fn row(&self, id: &str) -> Result<Option<Row>> {
        Ok(self.rows("WHERE r.id = ?1", &id)?.pop())
    }

    pub(super) fn open_payload<T: serde::de::DeserializeOwned>(&self, row: &Row) -> Result<T> {
        let sealed = row
            .payload
            .as_deref()
            .ok_or_else(|| StoreError::Purged { id: row.id.clone() })?;
        self.open_json(Slot::new("records", "payload", &row.id), sealed)
    }

    pub(super) fn seal_record<T: Serialize>(&self, id: &str, payload: &T) -> Result<Vec<u8>> {
        self.seal_json(Slot::new("records", "payload", id), payload)
    }

    /// Stores a new SOS and queues it, durably, in one transaction.
    pub fn raise_sos(
        &mut self,
        crew: CrewIdentity,
        location: Option<LocationFix>,
        note: Option<String>,
    ) -> Result<Sos> {
        crew.validate()?;
        if let Some(fix) = &location {
            fix.validate("location")?;
        }
        validate_note("note", &note)?;
        let id = new_id();
        let payload = SosPayload {
            crew,
            raised_at: now(),
            location,
            note,
        };
        let sealed = self.seal_record(&id, &payload)?;
        let seq = self.write_one(Durability::Full, |conn| {
            insert_record(conn, &id, RecordKind::Sos, None, &sealed)
        })?;
        self.queued_one(RecordKind::Sos);
        self.outbox.newest_sos = self.outbox.newest_sos.max(seq);
        Ok(Sos {
            id,
            crew: payload.crew,
            raised_at: payload.raised_at,
            location: payload.location,
            note: payload.note,
            state: SosState::Active,
            sync_state: SyncState::Queued,
            dispatch_status: None,
            dispatch: None,
            location_updates: vec![],
            cancellation: None,
        })
    }

    /// Finds an SOS that is still active, or says why it cannot take a follow-up. Returns
    /// its canonical id.
    fn active_sos(&self, sos_id: &str) -> Result<String> {
        let canonical = check_id("sos_id", sos_id)?;
        let sos_id = canonical.as_str();
        match self.row(sos_id)? {
            Some(row) if row.kind == RecordKind::Sos => {}
            _ => {
                return Err(StoreError::NotFound {
                    what: "sos",
                    id: sos_id.into(),
                })
            }
        }
        let cancelled: Option<String> = self
            .conn
            .prepare_cached("SELECT id FROM records WHERE parent_id = ?1 AND kind = 'sos_cancel'")?
            .query_row([sos_id], |r| r.get(0))
            .optional()?;
        match cancelled {
            Some(_) => Err(StoreError::State("the SOS is already cancelled".into())),
            None => Ok(canonical),
        }
    }

    /// Appends a follow-up position to an active SOS.
    pub fn add_sos_location(
        &mut self,
        sos_id: &str,
        location: LocationFix,
    ) -> Result<SosLocationUpdate> {
        location.validate("location")?;
        let canonical = self.active_sos(sos_id)?;
        let sos_id = canonical.as_str();
        let id = new_id();
        let payload = LocationPayload {
            location,
            recorded_at: now(),
        };
        let sealed = self.seal_record(&id, &payload)?;
        self.write_one(Durability::Full, |conn| {
            insert_record(conn, &id, RecordKind::SosLocation, Some(sos_id), &sealed).map(drop)
        })?;
        self.queued_one(RecordKind::SosLocation);
        Ok(SosLocationUpdate {
            id,
            sos_id: sos_id.into(),
            location: payload.location,
            recorded_at: payload.recorded_at,
            sync_state: SyncState::Queued,
        })
    }

    /// Appends a cancellation to an active SOS.
    pub fn cancel_sos(
        &mut self,
        sos_id: &str,
        reason: CancelReason,
        note: Option<String>,
    ) -> Result<SosCancellation> {
        validate_note("note", &note)?;
        let canonical = self.active_sos(sos_id)?;
        let sos_id = canonical.as_str();
        let id = new_id();
        let payload = CancelPayload {
            reason,
            note,
            cancelled_at: now(),
        };
        let sealed = self.seal_record(&id, &payload)?;
        self.write(Durability::Full, |tx, _| {
            insert_record(tx, &id, RecordKind::SosCancel, Some(sos_id), &sealed).map(drop)
        })?;
        self.queued_one(RecordKind::SosCancel);
        Ok(SosCancellation {
            id,
            sos_id: sos_id.into(),
            reason: payload.reason,
            note: payload.note,
            cancelled_at: payload.cancelled_at,
            sync_state: SyncState::Queued,
        })
    }

    /// An SOS with its follow-ups, decrypted.
    pub fn get_sos(&self, sos_id: &str) -> Result<Sos> {
        let canonical = check_id("sos_id", sos_id)?;
        let sos_id = canonical.as_str();
        let not_found = || StoreError::NotFound {
            what: "sos",
            id: sos_id.into(),
        };
        // The SOS and its follow-ups in one statement: one read transaction (one snapshot),
        // where two statements cost two (their locking is most of a read's time).
        let mut rows = self.rows(
            &format!("WHERE r.id = ?1 UNION ALL {ROW_SELECT} WHERE r.parent_id = ?1"),
            &sos_id,
        )?;
        let at = rows
            .iter()
            .position(|r| r.id == sos_id)
            .ok_or_else(not_found)?;
        let row = rows.swap_remove(at);
        if row.kind != RecordKind::Sos {
            return Err(not_found());
        }
        // Follow-ups in upload order.
        rows.sort_unstable_by_key(|r| r.seq);
        let p: SosPayload = self.open_payload(&row)?;
        let mut sos = Sos {
            id: row.id.clone(),
            crew: p.crew,
            raised_at: p.raised_at,
            location: p.location,
            note: p.note,
            state: SosState::Active,
            sync_state: row.state,
            dispatch_status: row.dispatch_status,
            dispatch: self.dispatch_answer(&row.id, row.dispatch_info.as_deref())?,
            location_updates: vec![],
            cancellation: None,
        };
        for child in rows {
            match child.kind {
                RecordKind::SosLocation => {
                    let p: LocationPayload = self.open_payload(&child)?;
                    sos.location_updates.push(SosLocationUpdate {
                        id: child.id,
                        sos_id: sos_id.into(),
                        location: p.location,
                        recorded_at: p.recorded_at,
                        sync_state: child.state,
                    });
                }
                RecordKind::SosCancel => {
                    let p: CancelPayload = self.open_payload(&child)?;
                    sos.state = SosState::Cancelled;
                    sos.cancellation = Some(SosCancellation {
                        id: child.id,
                        sos_id: sos_id.into(),
                        reason: p.reason,
                        note: p.note,
                        cancelled_at: p.cancelled_at,
                        sync_state: child.state,
                    });
                }
                _ => {}
            }
        }
        Ok(sos)
    }

    /// A finalized report, decrypted.
    pub fn get_report(&self, id: &str) -> Result<IncidentReport> {
        let canonical = check_id("report_id", id)?;
        let id = canonical.as_str();
        // Only the columns a report needs: one narrow read.
        let found: Option<(SyncState, Option<Vec<u8>>)> = self
            .conn
            .prepare_cached(
                "SELECT state, payload FROM records WHERE id = ?1 AND kind = 'incident_report'",
            )?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (mut state, payload) = found.ok_or_else(|| StoreError::NotFound {
            what: "report",
            id: id.into(),
        })?;
        if state == SyncState::Queued && self.outbox.in_flight.contains_key(id) {
            state = SyncState::Sending;
        }
        let sealed = payload.ok_or_else(|| StoreError::Purged { id: id.into() })?;
        let p: ReportPayload = self.open_json(Slot::new("records", "payload", id), &sealed)?;
        // Only a report that commits to files has attachment rows to read.
        let attachments = if p.attachments.is_empty() {
            Vec::new()
        } else {
            self.list_attachments(id)?
        };
        Ok(report_from(id, p, state, attachments))
    }

    /// The queue view's line for a record (its time is decrypted).
    fn entry_of(&self, row: Row) -> Result<QueueEntry> {
        // One damaged record must not hide the whole queue: it shows without a time.
        let created_at = match &row.payload {
            None => None,
            Some(_) => self
                .record_time(&row)
                .inspect_err(|e| log::warn!("record {} cannot be read: {e}", row.id))
                .ok(),
        };
        let wedged_reason = match &row.wedged_reason {
            Some(sealed) => Some(self.open_json::<String>(wedged_slot(&row.id), sealed)?),
            None => None,
        };
        Ok(QueueEntry {
            id: row.id,
            kind: row.kind,
            lane: Some(row.lane),
            state: row.state,
            parent_id: row.parent_id,
            queue_position: Some(row.seq),
            attempts: row.attempts,
            wedged_reason,
            dispatch_status: row.dispatch_status,
            created_at,
        })
    }

    /// A page of records: at most `limit` rows read after the cursor, in `seq` order within a
    /// lane (upload order) or backwards over both (newest first), never sorting the table.
    pub fn list_records_page(&self, req: &RecordPageRequest) -> Result<RecordPage> {
        if req.limit == 0 || req.limit > MAX_PAGE_ENTRIES {
            return Err(StoreError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_ENTRIES}"),
            ));
        }
        let cursor = Cursor::parse(req.order, req.after.as_deref())?;
        // Stored states to read: `Sending` is `queued` on disk (told apart afterwards).
        let mut stored: Vec<&str> = req
            .states
            .iter()
            .filter_map(|s| match s {
                SyncState::Sending => SyncState::Queued.stored(),
                other => other.stored(),
            })
            .collect();
        stored.dedup();
        let json = |words: Vec<&str>| -> Result<Option<String>> {
            if words.is_empty() {
                return Ok(None);
            }
            serde_json::to_string(&words)
                .map(Some)
                .map_err(|_| StoreError::Encode("page filter"))
        };
        if !req.states.is_empty() && stored.is_empty() {
            // Only drafts were asked for.
            return Ok(RecordPage {
                entries: vec![],
                next_cursor: None,
            });
        }
        let states = json(stored)?;
        let kinds = json(
            req.kinds
                .iter()
                .map(|&k| proto::Kind::from(k).as_str())
                .collect(),
        )?;
        let filter = "AND (?3 IS NULL OR r.state IN (SELECT value FROM json_each(?3))) \
                      AND (?4 IS NULL OR r.kind IN (SELECT value FROM json_each(?4)))";
        let limit = i64::from(req.limit);
        let mut rows = Vec::new();
        let mut next = None;
        match cursor {
            Cursor::Newest(before) => {
                rows = self.rows_with(
                    &format!("WHERE r.seq < ?1 AND ?2 {filter} ORDER BY r.seq DESC LIMIT ?5"),
                    &[&before, &1, &states, &kinds, &limit],
                )?;
                if rows.len() as i64 == limit {
                    next = rows.last().map(|r| Cursor::Newest(r.seq as i64));
                }
            }
            Cursor::Upload(lane, after) => {
                // The SOS lane to its end, then the report lane, each read in `seq` order.
                let lanes = [Lane::Sos, Lane::Report];
                let start = lanes.iter().position(|&l| l == lane).unwrap_or(0);
                for (i, &l) in lanes.iter().enumerate().skip(start) {
                    let from = if i == start { after } else { 0 };
                    let room = limit - rows.len() as i64;
                    let got = self.rows_with(
                        &format!(
                            "WHERE r.seq > ?1 AND r.lane = ?2 {filter} ORDER BY r.seq LIMIT ?5"
                        ),
                        &[&from, &l, &states, &kinds, &room],
                    )?;
                    let full = got.len() as i64 == room;
                    rows.extend(got);
                    if full {
                        next = rows.last().map(|r| Cursor::Upload(l, r.seq as i64));
                        break;
                    }
                }
            }
        }
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            if req.states.is_empty() || req.states.contains(&row.state) {
                entries.push(self.entry_of(row)?);
            }
        }
        Ok(RecordPage {
            entries,
            next_cursor: next.map(|c| c.to_string()),
        })
    }

    /// Every queued or sent record in upload order (SOS lane first), then the drafts.
    pub fn list_records(&self) -> Result<Vec<QueueEntry>> {
        let rows = self.rows(
            "WHERE ?1 ORDER BY CASE r.lane WHEN 'sos' THEN 0 ELSE 1 END, r.seq",
            &1,
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.entry_of(row)?);
        }
        for draft in self.list_drafts()? {
            out.push(QueueEntry {
                id: draft.id,
                kind: RecordKind::IncidentReport,
                lane: None,
                state: SyncState::Draft,
                parent_id: None,
                queue_position: None,
                attempts: 0,
                wedged_reason: None,
                dispatch_status: None,
                created_at: Some(draft.updated_at),
            });
        }
        Ok(out)
    }

    fn record_time(&self, row: &Row) -> Result<SystemTime> {
        Ok(match row.kind {
            RecordKind::Sos => self.open_payload::<SosPayload>(row)?.raised_at,
            RecordKind::SosLocation => self.open_payload::<LocationPayload>(row)?.recorded_at,
            RecordKind::SosCancel => self.open_payload::<CancelPayload>(row)?.cancelled_at,
            RecordKind::IncidentReport => self.open_payload::<ReportPayload>(row)?.finalized_at,
            RecordKind::CheckInStart => self.open_payload::<CheckInStartPayload>(row)?.started_at,
            RecordKind::CheckInExtend => {
                self.open_payload::<CheckInExtendPayload>(row)?.extended_at
            }
            RecordKind::CheckInDone => self.open_payload::<CheckInDonePayload>(row)?.done_at,
        })
    }

    /// Records not yet delivered per lane, wedged records and drafts.
    pub fn pending_counts(&mut self) -> Result<PendingCounts> {
        let [sos, reports] = self.pending_per_lane()?;
        let mut counts = PendingCounts {
            sos,
            reports,
            ..PendingCounts::default()
        };
        counts.wedged = self
            .conn
            .prepare_cached("SELECT count(*) FROM records WHERE state = 'wedged'")?
            .query_row([], |r| r.get(0))?;
        counts.drafts = self
            .conn
            .prepare_cached("SELECT count(*) FROM drafts")?
            .query_row([], |r| r.get(0))?;
        Ok(counts)
    }
}

pub(crate) fn report_from(
    id: &str,
    p: ReportPayload,
    state: SyncState,
    attachments: Vec<Attachment>,
) -> IncidentReport {
    IncidentReport {
        id: id.into(),
        crew: p.crew,
        fields: p.fields,
        created_at: p.created_at,
        finalized_at: p.finalized_at,
        sync_state: state,
        attachments,
    }
}

/// Where a page of records starts: after this row of this lane (upload order), or before this
/// row (newest first). Written as `u<lane>.<seq>` or `n<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Upload(Lane, i64),
    Newest(i64),
}

impl Cursor {
    /// The cursor of `text` for `order`, or the start of the list.
    fn parse(order: RecordOrder, text: Option<&str>) -> Result<Cursor> {
        let bad = || StoreError::invalid("after", "is not a cursor of a page in this order");
        let Some(text) = text else {
            return Ok(match order {
                RecordOrder::Upload => Cursor::Upload(Lane::Sos, 0),
                RecordOrder::NewestFirst => Cursor::Newest(i64::MAX),
            });
        };
        match order {
            RecordOrder::Upload => {
                let (lane, seq) = text
                    .strip_prefix('u')
                    .and_then(|t| t.split_once('.'))
                    .ok_or_else(bad)?;
                let lane = lane.parse::<proto::Lane>().map_err(|_| bad())?;
                Ok(Cursor::Upload(lane.into(), seq.parse().map_err(|_| bad())?))
            }
            RecordOrder::NewestFirst => Ok(Cursor::Newest(
                text.strip_prefix('n')
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(bad)?,
            )),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Upload(lane, seq) => write!(f, "u{}.{seq}", proto::Lane::from(*lane)),
            Cursor::Newest(seq) => write!(f, "n{seq}"),
        }
    }
}
