//! The outbox as the sync engine sees it: picking the next rows of a lane, marking them
//! sending, applying per-record server answers in one transaction, per-lane retry
//! scheduling, dispatch status, wedged records and the retention purge.
//!
//! The outbox is the sync columns of the `records` table (lane, seq, state, attempts,
//! wedged reason, delivery time, dispatch status). No index holds queued rows, so saving a
//! record writes only the table and its id index. Pending rows are found by scanning the
//! table (ordered by `seq`) from each lane's *floor*: a `seq` at or below the lane's first
//! queued or sending row. Floors live in memory: found by one pass at open, moved up after
//! server answers, moved down when a wedged record is retried or a record is deleted. A floor
//! that is too low only costs a longer scan; one too high would hide records, so every
//! change that can make a row pending again (or reuse a `seq`) lowers it first.
//!
//! State machine of an outbox row: `queued → sending → delivered | wedged`, with `sending →
//! queued` when an upload fails or its answer is lost, and `wedged → queued` on an explicit
//! retry. `sending` lives in memory only (the store's in-flight set, shown by the queue view
//! and told to listeners): on disk a row in flight stays `queued` until the server's answer
//! is applied, so an upload rewrites each row once, and a crash mid-upload leaves nothing to
//! repair: the rows are simply still queued and are sent again (the server answers
//! `duplicate` for any it had stored). An attempt is counted when it ends: with the answer,
//! or when the rows go back to the queue.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use zeroize::Zeroizing;

use super::records::wedged_slot;
use super::{check_id, Db, Durability};
use crate::crypto::Slot;
use crate::error::{Result, StoreError};
use crate::model::{DispatchStatus, Lane, RecordChange, RecordKind, SyncState};

/// A queued record, decrypted, ready to be put on the wire.
pub struct QueuedRecord {
    /// Record id.
    pub id: String,
    /// Record kind.
    pub kind: RecordKind,
    /// The SOS a follow-up refers to.
    pub parent_id: Option<String>,
    /// The decrypted JSON payload.
    pub payload: Zeroizing<Vec<u8>>,
}

/// The outbox's state kept in memory beside its rows: where each lane's queue starts, the
/// records of the upload in flight, and the newest SOS raised through this handle.
#[derive(Debug)]
pub(crate) struct OutboxState {
    /// Per lane (SOS, report): a `seq` at or below that lane's first queued or sending row.
    pub(super) floors: [i64; 2],
    /// Records of the upload in flight, with their kinds. Kept in memory only: on disk they
    /// stay `queued`, so a crash mid-upload needs no repair and a sync writes each row once.
    pub(super) in_flight: HashMap<String, RecordKind>,
    /// `seq` of the newest SOS raised through this handle (0: none): a sync started before it
    /// still takes it.
    pub(super) newest_sos: i64,
    /// Records not yet delivered per lane, once counted (counted at the first ask after open,
    /// then kept up to date by every change, so that asking costs nothing).
    pub(super) pending: Option<[u64; 2]>,
}

impl Default for OutboxState {
    fn default() -> Self {
        OutboxState {
            floors: [1, 1],
            in_flight: HashMap::new(),
            newest_sos: 0,
            pending: None,
        }
    }
}

/// How far into the queue a read may look: records queued up to `queued_by` (a sync's
/// start), plus, in the SOS lane, everything up to `sos_by` (the newest SOS raised since,
/// when the sync turned to the SOS lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// The `seq` of the newest record when the sync started.
    pub queued_by: i64,
    /// The `seq` of the newest SOS when the sync last turned to the SOS lane.
    pub sos_by: i64,
}

/// What the server said about one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored (now or before): delivered, received at this time (ms since epoch).
    Delivered {
        /// Server receive time in ms since the epoch.
        received_at_ms: i64,
    },
    /// Refused for good: wedged with this reason.
    Wedged {
        /// The server's reason.
        reason: String,
    },
}

/// Runs `sql`, an UPDATE whose `?1` is a JSON array of record ids and which returns
/// `id, kind` of every row it changed, with `rest` as `?2...`. One statement for a whole
/// batch instead of one per record. Returns the changed ids with their kinds.
fn update_each<'a>(
    tx: &Connection,
    sql: &str,
    ids: impl Iterator<Item = &'a str>,
    rest: &[&dyn rusqlite::ToSql],
) -> Result<HashMap<String, RecordKind>> {
    let ids = serde_json::to_string(&ids.collect::<Vec<_>>())
        .map_err(|_| StoreError::Encode("record ids"))?;
    let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&ids];
    bound.extend_from_slice(rest);
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(bound.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The changes for the `ids` that `changed` holds, in the order of `ids`; `what` gives a
/// changed record's new state and dispatch status from its id and kind.
fn in_order<'a>(
    ids: impl Iterator<Item = &'a str>,
    changed: &HashMap<String, RecordKind>,
    what: impl Fn(&str, RecordKind) -> (SyncState, Option<DispatchStatus>),
) -> Result<Vec<RecordChange>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(&kind) = changed.get(id) {
            let (state, dispatch_status) = what(id, kind);
            out.push(RecordChange {
                sequence: 0,
                id: id.into(),
                kind,
                state,
                dispatch_status,
            });
        }
    }
    Ok(out)
}

/// Unnumbered changes of records (id, kind) to `state`, not SOS dispatch changes.
fn state_changes(records: Vec<(String, RecordKind)>, state: SyncState) -> Vec<RecordChange> {
    records
        .into_iter()
        .map(|(id, kind)| RecordChange {
            sequence: 0,
            id,
            kind,
            state,
            dispatch_status: None,
        })
        .collect()
}

/// Just past the last row: every row inserted later has a higher `seq`.
fn end_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT IFNULL(max(seq), 0) + 1 FROM records")?
        .query_row([], |r| r.get(0))?)
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Sos => 0,
        Lane::Report => 1,
    }
}

impl Db {
    /// Reads each lane's floor as stored (schema v4 keeps them in `lanes`): two numbers, not a
    /// pass over the records.
    pub(crate) fn load_floors(&mut self) -> Result<()> {
        let mut stmt = self.conn.prepare_cached("SELECT lane, floor FROM lanes")?;
        let floors = stmt
            .query_map([], |r| Ok((r.get::<_, Lane>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);
        for (lane, floor) in floors {
            self.outbox.floors[lane_index(lane)] = floor;
        }
        Ok(())
    }

    /// Stores the floors in the caller's transaction.
    fn store_floors(tx: &Connection, floors: [i64; 2]) -> Result<()> {
        let mut stmt = tx.prepare_cached("UPDATE lanes SET floor = ?2 WHERE lane = ?1")?;
        for lane in [Lane::Sos, Lane::Report] {
            stmt.execute(params![lane, floors[lane_index(lane)]])?;
        }
        Ok(())
    }

    /// The `seq` of the newest SOS raised through this handle (0: none since it opened).
    pub fn newest_sos(&self) -> i64 {
        self.outbox.newest_sos
    }

    /// The `seq` of the newest record (0 when there is none).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self.end_seq()? - 1)
    }

    /// Just past the last row: every row inserted later has a higher `seq`.
    fn end_seq(&self) -> Result<i64> {
        end_seq(&self.conn)
    }

    /// Each floor moved up to its lane's first pending row, or just past the last row when
    /// the lane has none: scans from the current floors, in the caller's transaction.
    fn advanced_floors(tx: &Connection, floors: [i64; 2]) -> Result<[i64; 2]> {
        let mut out = floors;
        for lane in [Lane::Sos, Lane::Report] {
            let first: Option<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM records WHERE seq >= ?1 AND lane = ?2 \
                     AND state IN ('queued', 'sending') ORDER BY seq LIMIT 1",
                )?
                .query_row(params![floors[lane_index(lane)], lane], |r| r.get(0))
                .optional()?;
            out[lane_index(lane)] = match first {
                Some(seq) => seq,
                None => end_seq(tx)?,
            };
        }
        Ok(out)
    }

    /// Lowers every floor to `seq` (a row at `seq` may be pending again, or a new row may
    /// reuse a `seq` freed by a delete).
    fn lower_floors(&mut self, seq: i64) {
        for f in &mut self.outbox.floors {
            *f = (*f).min(seq);
        }
    }

    /// Counts one more queued record of `kind` (after its insert committed).
    pub(crate) fn queued_one(&mut self, kind: RecordKind) {
        let lane = kind.lane();
        if let Some(p) = &mut self.outbox.pending {
            p[lane_index(lane)] += 1;
        }
    }

    /// The number of records not yet delivered per lane (SOS, report). The first ask after
    /// open adds, to the count stored with the last change of state (or at close), the queued
    /// records saved after it; later asks cost nothing.
    pub(crate) fn pending_per_lane(&mut self) -> Result<[u64; 2]> {
        if let Some(p) = self.outbox.pending {
            return Ok(p);
        }
        let mut p = [0u64; 2];
        let stored: Vec<(Lane, u64, i64)> = self
            .conn
            .prepare_cached("SELECT lane, pending, pending_as_of FROM lanes")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut since = self.conn.prepare_cached(
            "SELECT count(*) FROM records WHERE seq >= ?1 AND lane = ?2 \
             AND state IN ('queued', 'sending')",
        )?;
        for (lane, pending, as_of) in stored {
            let from = (as_of + 1).max(self.outbox.floors[lane_index(lane)]);
            let later: u64 = since.query_row(params![from, lane], |r| r.get(0))?;
            p[lane_index(lane)] = pending + later;
        }
        drop(since);
        self.outbox.pending = Some(p);
        Ok(p)
    }

    /// Stores the per-lane counts of queued records, exact as of the newest record, in the
    /// caller's transaction.
    fn store_counts(tx: &Connection, counts: [u64; 2]) -> Result<()> {
        let as_of = end_seq(tx)? - 1;
        let mut stmt =
            tx.prepare_cached("UPDATE lanes SET pending = ?2, pending_as_of = ?3 WHERE lane = ?1")?;
        for lane in [Lane::Sos, Lane::Report] {
            stmt.execute(params![lane, counts[lane_index(lane)], as_of])?;
        }
        Ok(())
    }

    /// Stores the counts if they are known (at close): the next open need not count.
    pub(crate) fn store_counts_at_close(&mut self) -> Result<()> {
        match self.outbox.pending {
            Some(counts) => self.write(Durability::Normal, |tx, _| Self::store_counts(tx, counts)),
            None => Ok(()),
        }
    }

    /// Forgets the upload in flight (its rows are queued on disk anyway).
    pub fn clear_in_flight(&mut self) {
        self.outbox.in_flight.clear();
    }

    /// Until when (ms) a lane must wait, if it must.
    pub fn lane_hold(&self, lane: Lane, now_ms: i64) -> Result<Option<i64>> {
        let (next, hold): (Option<i64>, Option<i64>) = self
            .conn
            .prepare_cached("SELECT next_attempt_at, server_hold_until FROM lanes WHERE lane = ?1")?
            .query_row([lane], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let until = next.into_iter().chain(hold).max();
        Ok(until.filter(|t| *t > now_ms))
    }

    /// Consecutive retryable failures of a lane.
    pub fn lane_failures(&self, lane: Lane) -> Result<u32> {
        Ok(self
            .conn
            .prepare_cached("SELECT failures FROM lanes WHERE lane = ?1")?
            .query_row([lane], |r| r.get(0))?)
    }

    /// Records a retryable failure: the lane waits until `next_ms` (client backoff) and, if
    /// the server said so, until `hold_ms`.
    pub fn lane_failed(&mut self, lane: Lane, next_ms: i64, hold_ms: Option<i64>) -> Result<()> {
        self.write(Durability::Full, |tx, _| {
            tx.execute(
                "UPDATE lanes SET failures = failures + 1, next_attempt_at = ?2, \
                 server_hold_until = ?3 WHERE lane = ?1",
                params![lane, next_ms, hold_ms],
            )?;
            Ok(())
        })
    }

    /// Clears a lane's failures after a successful exchange. A working SOS lane also proves
    /// the network works, so the report lane's client backoff (not a server hold) ends too.
    pub fn lane_succeeded(&mut self, lane: Lane) -> Result<()> {
        self.write(Durability::Normal, |tx, _| {
            tx.execute(
                "UPDATE lanes SET failures = 0, next_attempt_at = NULL, server_hold_until = NULL \
                 WHERE lane = ?1 AND (failures != 0 OR next_attempt_at IS NOT NULL \
                 OR server_hold_until IS NOT NULL)",
                [lane],
            )?;
            if lane == Lane::Sos {
                tx.execute(
                    "UPDATE lanes SET next_attempt_at = NULL \
                     WHERE lane = 'report' AND next_attempt_at IS NOT NULL",
                    [],
                )?;
            }
            Ok(())
        })
    }

    /// Forgets client backoff (the network just came back); server holds stay.
    pub fn clear_backoff(&mut self) -> Result<()> {
        self.write(Durability::Normal, |tx, _| {
            tx.execute("UPDATE lanes SET next_attempt_at = NULL, failures = 0", [])?;
            Ok(())
        })
    }

    /// The earliest time (ms) a lane with pending work may be tried again.
    pub fn next_attempt_at(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(max(IFNULL(l.next_attempt_at, 0), IFNULL(l.server_hold_until, 0))) \
                 FROM lanes l WHERE EXISTS (SELECT 1 FROM records r \
                 WHERE r.seq >= CASE l.lane WHEN 'sos' THEN ?1 ELSE ?2 END \
                 AND r.lane = l.lane AND r.state IN ('queued', 'sending'))",
            )?
            .query_row(params![self.outbox.floors[0], self.outbox.floors[1]], |r| {
                r.get::<_, Option<i64>>(0)
            })?)
    }

    /// The next queued records of a lane in upload order that are not part of an upload in
    /// flight, decrypted. A record that cannot be opened on this phone comes back as
    /// `Err(id)` so the caller can wedge it.
    pub fn queued(
        &self,
        lane: Lane,
        limit: u32,
        horizon: Horizon,
    ) -> Result<Vec<std::result::Result<QueuedRecord, String>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, kind, parent_id, payload FROM records \
             WHERE seq >= ?3 AND lane = ?1 AND state = 'queued' AND seq <= ?4 \
             ORDER BY seq LIMIT ?2",
        )?;
        let last = match lane {
            Lane::Report => horizon.queued_by,
            // An SOS raised during the sync goes too, with what is queued before it.
            Lane::Sos => horizon.queued_by.max(horizon.sos_by),
        };
        let floor = self.outbox.floors[lane_index(lane)];
        // Rows in flight are still `queued` on disk: read past them.
        let reach = u64::from(limit) + self.outbox.in_flight.len() as u64;
        let rows = stmt.query_map(params![lane, reach, floor, last], |r| {
            Ok((
                r.get::<_, String>(0)?,
                // A kind this build does not know makes the record unreadable, not the read.
                <RecordKind as rusqlite::types::FromSql>::column_result(r.get_ref(1)?),
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, parent_id, sealed) = row?;
            if self.outbox.in_flight.contains_key(&id) {
                continue;
            }
            if out.len() == limit as usize {
                break;
            }
            let payload =
                sealed.and_then(|s| self.key.open(Slot::new("records", "payload", &id), &s).ok());
            out.push(match (payload, kind) {
                (Some(payload), Ok(kind)) => Ok(QueuedRecord {
                    id,
                    kind,
                    parent_id,
                    payload,
                }),
                _ => Err(id),
            });
        }
        Ok(out)
    }

    /// Marks records as part of an upload in flight: in memory only, nothing is written.
    pub fn mark_sending(&mut self, records: &[(String, RecordKind)]) -> Vec<RecordChange> {
        for (id, kind) in records {
            self.outbox.in_flight.insert(id.clone(), *kind);
        }
        self.numbered(state_changes(records.to_vec(), SyncState::Sending))
    }

    /// Counts a record in flight without sending it (and without telling listeners), so that
    /// reads pass it: a follow-up held back with its SOS.
    pub fn hold(&mut self, id: &str, kind: RecordKind) {
        self.outbox.in_flight.insert(id.to_string(), kind);
    }

    /// Ends [`Db::hold`]: the records are read again, and no attempt is counted.
    pub fn unhold(&mut self, ids: &[String]) {
        for id in ids {
            self.outbox.in_flight.remove(id);
        }
    }

    /// Puts records of a failed or unanswered upload back in the queue (they never left it
    /// on disk); the attempt is counted. Ids not in flight are ignored.
    pub fn requeue(&mut self, ids: &[String]) -> Result<Vec<RecordChange>> {
        let back: Vec<(String, RecordKind)> = ids
            .iter()
            .filter_map(|id| self.outbox.in_flight.remove_entry(id))
            .collect();
        if back.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(&back.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .map_err(|_| StoreError::Encode("record ids"))?;
        self.write(Durability::Normal, |tx, _| {
            tx.prepare_cached(
                "UPDATE records SET attempts = attempts + 1 \
                 WHERE id IN (SELECT value FROM json_each(?1))",
            )?
            .execute([&ids])?;
            Ok(())
        })?;
        Ok(self.numbered(state_changes(back, SyncState::Queued)))
    }

    /// Gives changes their commit-order numbers.
    fn numbered(&mut self, mut changes: Vec<RecordChange>) -> Vec<RecordChange> {
        for c in &mut changes {
            c.sequence = self.next_change();
        }
        changes
    }

    /// Applies the server's per-record answers in one durable transaction: one statement
    /// per receive time for the delivered records (a batch shares one), one per wedged record.
    /// Records in flight end their attempt here (it is counted).
    pub fn apply_outcomes(&mut self, outcomes: &[(String, Outcome)]) -> Result<Vec<RecordChange>> {
        let changes = self.apply_outcomes_unnumbered(outcomes)?;
        for (id, _) in outcomes {
            self.outbox.in_flight.remove(id);
        }
        Ok(self.numbered(changes))
    }

    fn apply_outcomes_unnumbered(
        &mut self,
        outcomes: &[(String, Outcome)],
    ) -> Result<Vec<RecordChange>> {
        // Keyed by receive time and whether the record was in flight (its attempt counts).
        let mut delivered: BTreeMap<(i64, i64), Vec<&str>> = BTreeMap::new();
        let mut wedged = Vec::new();
        for (id, outcome) in outcomes {
            let attempt = i64::from(self.outbox.in_flight.contains_key(id));
            match outcome {
                Outcome::Delivered { received_at_ms } => delivered
                    .entry((*received_at_ms, attempt))
                    .or_default()
                    .push(id),
                Outcome::Wedged { reason } => wedged.push((
                    id.as_str(),
                    self.seal_json(wedged_slot(id), reason)?,
                    attempt,
                )),
            }
        }
        // The counts and floors are stored with the outcomes, in the same transaction.
        let before = self.pending_per_lane()?;
        let floors = self.outbox.floors;
        let changed = self.write(Durability::Full, |tx, _| {
            let mut changed = HashMap::new();
            for ((at, attempt), ids) in &delivered {
                changed.extend(update_each(
                    tx,
                    "UPDATE records SET state = 'delivered', delivered_at = ?2, \
                     attempts = attempts + ?3, wedged_reason = NULL, dispatch_status = CASE kind \
                     WHEN 'sos' THEN IFNULL(dispatch_status, 'delivered') END \
                     WHERE id IN (SELECT value FROM json_each(?1)) AND state != 'delivered' \
                     RETURNING id, kind",
                    ids.iter().copied(),
                    &[at, attempt],
                )?);
            }
            let mut stmt = tx.prepare_cached(
                "UPDATE records SET state = 'wedged', wedged_reason = ?2, attempts = attempts + ?3 \
                 WHERE id = ?1 AND state != 'delivered' RETURNING kind",
            )?;
            for (id, sealed, attempt) in &wedged {
                let kind: Option<RecordKind> = stmt
                    .query_row(params![id, sealed, attempt], |r| r.get(0))
                    .optional()?;
                if let Some(kind) = kind {
                    changed.insert(id.to_string(), kind);
                }
            }
            // Every change here takes a record out of the queue (delivered or wedged).
            let mut after = before;
            for &kind in changed.values() {
                let i = lane_index(kind.lane());
                after[i] = after[i].saturating_sub(1);
            }
            Self::store_counts(tx, after)?;
            let raised = Self::advanced_floors(tx, floors)?;
            if raised != floors {
                Self::store_floors(tx, raised)?;
            }
            Ok((changed, after, raised))
        })?;
        let (changed, after, raised) = changed;
        self.outbox.pending = Some(after);
        self.outbox.floors = raised;
        let outcome_of: HashMap<&str, &Outcome> =
            outcomes.iter().map(|(id, o)| (id.as_str(), o)).collect();
        in_order(
            outcomes.iter().map(|(id, _)| id.as_str()),
            &changed,
            |id, kind| match outcome_of[id] {
                Outcome::Delivered { .. } => (
                    SyncState::Delivered,
                    (kind == RecordKind::Sos).then_some(DispatchStatus::Delivered),
                ),
                Outcome::Wedged { .. } => (SyncState::Wedged, None),
            },
        )
    }

    /// Puts a wedged record back in the queue.
    pub fn retry_wedged(&mut self, id: &str) -> Result<RecordChange> {
        let canonical = check_id("record_id", id)?;
        let id = canonical.as_str();
        let (kind, seq) = self.wedged_kind(id)?;
        let mut counts = self.pending_per_lane()?;
        counts[lane_index(kind.lane())] += 1;
        self.lower_floors(seq);
        let floors = self.outbox.floors;
        self.write(Durability::Full, |tx, _| {
            tx.execute(
                "UPDATE records SET state = 'queued', wedged_reason = NULL, attempts = 0 \
                 WHERE id = ?1",
                [id],
            )?;
            Self::store_floors(tx, floors)?;
            Self::store_counts(tx, counts)
        })?;
        self.outbox.pending = Some(counts);
        Ok(RecordChange {
            sequence: self.next_change(),
            id: id.into(),
            kind,
            state: SyncState::Queued,
            dispatch_status: None,
        })
    }

    /// Deletes a wedged record (and, for an SOS, its follow-ups) for good.
    pub fn discard_wedged(&mut self, id: &str) -> Result<u64> {
        let canonical = check_id("record_id", id)?;
        let id = canonical.as_str();
        let (_, seq) = self.wedged_kind(id)?;
        // Follow-ups come after their SOS; new rows may take the freed `seq` values.
        let before = self.pending_per_lane()?;
        self.lower_floors(seq);
        let floors = self.outbox.floors;
        let (deleted, after) = self.write(Durability::Full, |tx, _| {
            // Follow-ups (SOS lane) of any state go too; the queued ones leave the count.
            let queued: u64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM records WHERE parent_id = ?1 AND state = 'queued'",
                )?
                .query_row([id], |r| r.get(0))?;
            let mut after = before;
            after[lane_index(Lane::Sos)] = after[lane_index(Lane::Sos)].saturating_sub(queued);
            // Follow-ups first: they refer to their SOS.
            let children = tx.execute("DELETE FROM records WHERE parent_id = ?1", [id])?;
            let record = tx.execute("DELETE FROM records WHERE id = ?1", [id])?;
            Self::store_floors(tx, floors)?;
            Self::store_counts(tx, after)?;
            Ok(((children + record) as u64, after))
        })?;
        self.outbox.pending = Some(after);
        Ok(deleted)
    }

    /// The kind and `seq` of a wedged record.
    fn wedged_kind(&self, id: &str) -> Result<(RecordKind, i64)> {
        let row: Option<(RecordKind, SyncState, i64)> = self
            .conn
            .prepare_cached("SELECT kind, state, seq FROM records WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match row {
            None => Err(StoreError::NotFound {
                what: "record",
                id: id.into(),
            }),
            Some((_, state, _)) if state != SyncState::Wedged => {
                Err(StoreError::State("the record is not wedged".into()))
            }
            Some((kind, _, seq)) => Ok((kind, seq)),
        }
    }

    /// Drops the sealed content of records delivered before `before_ms`; ids, kinds and
    /// states stay. Returns how many were purged.
    pub fn purge_delivered(&mut self, before_ms: i64) -> Result<u64> {
        let purged = self.write(Durability::Normal, |tx, _| {
            Ok(tx.execute(
                "UPDATE records SET payload = NULL WHERE state = 'delivered' \
                 AND delivered_at < ?1 AND payload IS NOT NULL",
                [before_ms],
            )? as u64)
        })?;
        self.erase_purged_attachments()?;
        Ok(purged)
    }
}
