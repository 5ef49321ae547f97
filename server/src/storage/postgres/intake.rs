//! Batch intake on PostgreSQL (the steps and answers are in `storage/intake.rs`; how
//! concurrent instances are kept apart in `mod.rs`). One transaction per batch; a batch with
//! any record that may touch an alarm or a check-in takes the alarm lock first.
//!
//! Valid records with no parent to check are inserted without looking their keys up first,
//! and each run of such records in a batch with one statement (`INSERT … SELECT FROM unnest`
//! of arrays, in batch order, returning the numbers given): a batch of 1000 reports is one
//! round trip instead of 1000. Every other record is looked up, checked and inserted on its
//! own.
//!
//! A run is first inserted as new keys ([`Keys::New`]): a plain insert, which costs
//! PostgreSQL about 70% of one with `ON CONFLICT DO NOTHING` (measured with the ingest
//! bench). If a key was stored already (a record sent again after a lost answer, or stored by
//! another instance meanwhile: the insert waits for that commit), the insert fails, the whole
//! transaction is rolled back, and the batch is stored again with [`Keys::Checked`]: `ON
//! CONFLICT DO NOTHING`, and a key the insert did not take is looked up and answered as a
//! duplicate or conflict. A run that repeats a key is inserted that way at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, CheckInExtendContent, CheckInStartContent, ItemResult, ItemStatus, Kind,
};
use deadpool_postgres::GenericClient;

use super::{dispatch, events, timer, word, ALARM_LOCK};
use crate::error::{Result, ServerError};
use crate::storage::column::now;
use crate::storage::intake::{
    already_stored, check, content, item, parent_missing, refused, touches_alarms, Checked,
    Incoming, Intake, Prepared,
};

/// How a run of records that need no look-up first is inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// As new keys: a plain insert, which fails (and with it the transaction) if a key is
    /// stored already.
    New,
    /// Checked: `ON CONFLICT DO NOTHING`, then the keys not taken are looked up.
    Checked,
}

/// Processes `records` in order inside one transaction that is committed before this
/// returns, inserting runs as `keys` says. A check-in minute lasts `minute`.
pub(crate) async fn process_batch(
    client: &mut deadpool_postgres::Object,
    device_id: &str,
    records: &[Incoming],
    reject_ids: &HashSet<String>,
    minute: Duration,
    keys: Keys,
) -> Result<Intake> {
    // What needs no database is done before the transaction (and the alarm lock).
    let checked = check(records, reject_ids, device_id);
    let tx = client.transaction().await?;
    if records.iter().any(|r| touches_alarms(r.kind)) {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK])
            .await?;
    }
    let mut batch = Batch {
        tx: &tx,
        device_id,
        received_at: now(),
        minute,
        keys,
        done: Intake {
            results: Vec::with_capacity(records.len()),
            ..Intake::default()
        },
    };
    let mut checked = checked.into_iter().peekable();
    while let Some(record) = checked.next() {
        if record.insert_first() {
            let mut run = vec![ready(record)?];
            while let Some(next) = checked.next_if(Checked::insert_first) {
                run.push(ready(next)?);
            }
            batch.insert_run(run).await?;
            continue;
        }
        match record {
            Checked::Answered(answer) => batch.done.results.push(answer),
            Checked::Ready {
                sent,
                prepared,
                invalid,
            } => batch.one(sent, &prepared, invalid).await?,
        }
    }
    if batch.done.timing_changed {
        events::notify_timing(&tx).await?;
    }
    let done = batch.done;
    tx.commit().await?;
    Ok(done)
}

/// A record to insert before looking its key up: as sent, and prepared.
type Ready<'a> = (&'a Incoming, Prepared<'a>);

fn ready(record: Checked<'_>) -> Result<Ready<'_>> {
    match record {
        Checked::Ready { sent, prepared, .. } => Ok((sent, prepared)),
        Checked::Answered(_) => Err(ServerError::Corrupt("an answered record to insert".into())),
    }
}

/// Inserts a run of records, given as arrays, in batch order.
macro_rules! insert_run_sql {
    () => {
        "INSERT INTO records (device_id, record_id, kind, lane, device_time, received_at,
                              content_sha256, record_json)
         SELECT $1, r.id, r.kind, r.lane, r.device_time, $2, r.sha, r.json
         FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[],
                     $8::text[])
              WITH ORDINALITY AS r (id, kind, lane, device_time, sha, json, n)
         ORDER BY r.n"
    };
}

/// A batch being stored: its transaction and what it did so far.
struct Batch<'t, 'c> {
    tx: &'t deadpool_postgres::Transaction<'c>,
    device_id: &'t str,
    received_at: DateTime<Utc>,
    minute: Duration,
    keys: Keys,
    done: Intake,
}

impl Batch<'_, '_> {
    /// Inserts a run of records that need no look-up first with one statement, then answers
    /// each in order.
    async fn insert_run(&mut self, run: Vec<Ready<'_>>) -> Result<()> {
        let mut ids = Vec::with_capacity(run.len());
        let mut kinds = Vec::with_capacity(run.len());
        let mut lanes = Vec::with_capacity(run.len());
        let mut times = Vec::with_capacity(run.len());
        let mut hashes = Vec::with_capacity(run.len());
        let mut jsons = Vec::with_capacity(run.len());
        for (_, p) in &run {
            ids.push(p.rec.id.as_str());
            kinds.push(p.rec.kind.as_str());
            lanes.push(p.rec.lane.as_str());
            times.push(p.rec.device_time);
            hashes.push(p.hash.as_slice());
            jsons.push(p.canonical.as_str());
        }
        let repeats = {
            let mut seen = HashSet::with_capacity(ids.len());
            !ids.iter().all(|id| seen.insert(*id))
        };
        // Numbers are given in the order of the select (batch order); of a key repeated in
        // the run only the first is inserted.
        let sql = if self.keys == Keys::Checked || repeats {
            concat!(
                insert_run_sql!(),
                " ON CONFLICT (device_id, record_id) DO NOTHING",
                " RETURNING record_id, seq"
            )
        } else {
            concat!(insert_run_sql!(), " RETURNING record_id, seq")
        };
        let stmt = self.tx.prepare_cached(sql).await?;
        let rows = self
            .tx
            .query(
                &stmt,
                &[
                    &self.device_id,
                    &self.received_at,
                    &ids,
                    &kinds,
                    &lanes,
                    &times,
                    &hashes,
                    &jsons,
                ],
            )
            .await?;
        let mut given = HashMap::with_capacity(rows.len());
        for row in &rows {
            given.insert(row.try_get::<_, &str>(0)?, row.try_get::<_, i64>(1)?);
        }
        for (sent, p) in &run {
            // The first of a repeated key takes its number; the others are duplicates.
            match given.remove(p.rec.id.as_str()) {
                Some(seq) => self.accepted(sent, &p.rec, seq, None).await?,
                None => {
                    let answer = self
                        .existing(&p.rec.id, &sent.id, &p.hash)
                        .await?
                        .ok_or_else(|| {
                            ServerError::Corrupt("conflicting insert vanished".into())
                        })?;
                    self.done.results.push(answer);
                }
            }
        }
        Ok(())
    }

    /// Looks up, checks and stores one record that names a parent or is invalid.
    async fn one(
        &mut self,
        sent: &Incoming,
        p: &Prepared<'_>,
        invalid: Option<String>,
    ) -> Result<()> {
        let rec = &*p.rec;
        if let Some(answer) = self.existing(&rec.id, &sent.id, &p.hash).await? {
            self.done.results.push(answer);
            return Ok(());
        }
        if let Some(reason) = invalid {
            self.done
                .results
                .push(refused(&sent.id, ItemStatus::Rejected, reason));
            return Ok(());
        }
        let mut parent_seq = None;
        if let (Some(parent), Some(want)) = (&rec.parent_id, rec.kind.parent_kind()) {
            let stmt = self
                .tx
                .prepare_cached(
                    "SELECT kind, seq FROM records WHERE device_id = $1 AND record_id = $2",
                )
                .await?;
            let found = match self.tx.query_opt(&stmt, &[&self.device_id, parent]).await? {
                Some(r) => Some((word::<Kind>(r.try_get(0)?)?, r.try_get::<_, i64>(1)?)),
                None => None,
            };
            match found {
                Some((kind, seq)) if kind == want => parent_seq = Some(seq),
                _ => {
                    self.done.results.push(parent_missing(&sent.id, want));
                    return Ok(());
                }
            }
        }
        let stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO records (device_id, record_id, kind, lane, parent_id, device_time,
                                      received_at, content_sha256, record_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (device_id, record_id) DO NOTHING
                 RETURNING seq",
            )
            .await?;
        let inserted = self
            .tx
            .query_opt(
                &stmt,
                &[
                    &self.device_id,
                    &rec.id,
                    &rec.kind.as_str(),
                    &rec.lane.as_str(),
                    &rec.parent_id,
                    &rec.device_time,
                    &self.received_at,
                    &p.hash,
                    &p.canonical,
                ],
            )
            .await?;
        match inserted {
            Some(row) => self.accepted(sent, rec, row.try_get(0)?, parent_seq).await,
            None => {
                // Another instance stored the key meanwhile (this insert waited for its
                // commit).
                let answer = self
                    .existing(&rec.id, &sent.id, &p.hash)
                    .await?
                    .ok_or_else(|| ServerError::Corrupt("conflicting insert vanished".into()))?;
                self.done.results.push(answer);
                Ok(())
            }
        }
    }

    /// What an inserted record starts (by its kind), and its answer.
    async fn accepted(
        &mut self,
        sent: &Incoming,
        rec: &Incoming,
        seq: i64,
        parent_seq: Option<i64>,
    ) -> Result<()> {
        let (tx, device_id, received_at) = (self.tx, self.device_id, self.received_at);
        let parent = || parent_seq.ok_or_else(|| ServerError::Corrupt("no parent".into()));
        let done = &mut self.done;
        match rec.kind {
            Kind::Sos => {
                dispatch::open_alarm(tx, seq, AlarmKind::Sos, received_at).await?;
                done.events
                    .push(events::log(tx, seq, device_id, received_at).await?);
                done.timing_changed = true;
            }
            Kind::SosLocation | Kind::SosCancel => {
                done.events
                    .push(events::log(tx, parent()?, device_id, received_at).await?);
            }
            Kind::CheckInStart => {
                let c = content::<CheckInStartContent>(rec)?;
                timer::started(tx, seq, received_at, c.due_in_minutes, self.minute).await?;
                done.timing_changed = true;
            }
            Kind::CheckInExtend => {
                let c = content::<CheckInExtendContent>(rec)?;
                timer::extended(tx, parent()?, c.extend_by_minutes, self.minute).await?;
                done.timing_changed = true;
            }
            Kind::CheckInDone => {
                done.events
                    .extend(timer::done(tx, parent()?, device_id, seq, received_at).await?);
                done.timing_changed = true;
            }
            Kind::IncidentReport => {}
        }
        done.results
            .push(item(&sent.id, ItemStatus::Accepted, Some(received_at)));
        Ok(())
    }

    /// The answer for a record whose key is already stored, if it is.
    async fn existing(&self, id: &str, sent_id: &str, hash: &[u8]) -> Result<Option<ItemResult>> {
        existing(self.tx, self.device_id, id, sent_id, hash).await
    }
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
