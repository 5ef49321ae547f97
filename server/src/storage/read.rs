//! [`ServerStore`]: read access to a server database for tests, demos and operators, plus the
//! dispatcher moves, usable while the server runs (each has its own SQLite connection).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, DispatchStatus, Kind, Lane, WireRecord};
use rusqlite::Connection;

use super::column::parse_time;
use super::dispatch::{advance_sos, dispatch_list, first_alarm, Advance, Lookup, Move};
use super::schema::open_connection;
use super::view::alarm_view;
use crate::config::DEFAULT_ESCALATE_AFTER;
use crate::error::{Result, ServerError};

/// One stored record, as [`ServerStore::records`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Device that sent it (from its token).
    pub device_id: String,
    /// Record id (client-generated).
    pub id: String,
    /// Record kind.
    pub kind: Kind,
    /// Lane.
    pub lane: Lane,
    /// The SOS a follow-up belongs to.
    pub parent_id: Option<String>,
    /// Device wall-clock time from the record.
    pub device_time: DateTime<Utc>,
    /// When the server stored it.
    pub received_at: DateTime<Utc>,
    /// The record's content as sent (keys sorted).
    pub content: serde_json::Value,
}

/// Full dispatch state of one SOS, as [`ServerStore::sos_state`] returns it.
pub type StoredSosState = DispatchSos;

/// Read access to a server database (and the dispatcher moves, for demos), usable while the
/// server runs. Each `ServerStore` has its own SQLite connection.
///
/// Its dispatcher moves are stored and logged like any, but a running server's status watches
/// and event streams learn of them only when something else wakes them: use
/// [`crate::RunningServer::acknowledge`] and [`crate::RunningServer::resolve`] to have them
/// pushed at once.
pub struct ServerStore {
    conn: Connection,
    escalate_after: Duration,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore").finish_non_exhaustive()
    }
}

/// A `records` row as [`ServerStore`] reads it, before its times and JSON are parsed.
struct RecordRow {
    device_id: String,
    id: String,
    kind: Kind,
    lane: Lane,
    parent_id: Option<String>,
    device_time: String,
    received_at: String,
    json: String,
}

const RECORD_COLUMNS: &str =
    "device_id, record_id, kind, lane, parent_id, device_time, received_at, record_json";

impl RecordRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            device_id: r.get(0)?,
            id: r.get(1)?,
            kind: r.get(2)?,
            lane: r.get(3)?,
            parent_id: r.get(4)?,
            device_time: r.get(5)?,
            received_at: r.get(6)?,
            json: r.get(7)?,
        })
    }

    fn into_stored(self) -> Result<StoredRecord> {
        let wire: WireRecord = serde_json::from_str(&self.json)
            .map_err(|_| ServerError::Corrupt("stored record unreadable".into()))?;
        Ok(StoredRecord {
            device_id: self.device_id,
            id: self.id,
            kind: self.kind,
            lane: self.lane,
            parent_id: self.parent_id,
            device_time: parse_time(&self.device_time)?,
            received_at: parse_time(&self.received_at)?,
            content: wire.content,
        })
    }
}

impl ServerStore {
    /// Opens the database at `db_path` (creating the schema if the file is new).
    pub fn open(db_path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            conn: open_connection(db_path.as_ref())?,
            escalate_after: DEFAULT_ESCALATE_AFTER,
        })
    }

    /// Computes `escalates_at` in the views with this escalation time (the server's
    /// [`crate::ServerConfig::escalate_after`]; the default otherwise).
    pub fn with_escalate_after(mut self, after: Duration) -> Self {
        self.escalate_after = after;
        self
    }

    fn query_records(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredRecord>> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM records {filter} ORDER BY seq");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows: Vec<RecordRow> = stmt
            .query_map(args, RecordRow::read)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(RecordRow::into_stored).collect()
    }

    /// Every stored record, in receive order.
    pub fn records(&self) -> Result<Vec<StoredRecord>> {
        self.query_records("", &[])
    }

    /// The records of one device, in receive order.
    pub fn records_of_device(&self, device_id: &str) -> Result<Vec<StoredRecord>> {
        self.query_records("WHERE device_id = ?1", &[&device_id])
    }

    /// The record `id` of `device_id`, if stored.
    pub fn record(&self, device_id: &str, id: &str) -> Result<Option<StoredRecord>> {
        Ok(self
            .query_records(
                "WHERE device_id = ?1 AND record_id = ?2",
                &[&device_id, &id],
            )?
            .into_iter()
            .next())
    }

    /// How many stored records (of any device) have this id: 0 or 1 unless devices reuse ids.
    pub fn count_of(&self, id: &str) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM records WHERE record_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Number of stored records.
    pub fn record_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Dispatch status of alarm `id` (an SOS, or the start of a missed check-in; the first
    /// received, should two devices share the id).
    pub fn sos_status(&self, id: &str) -> Result<Option<DispatchStatus>> {
        Ok(self.sos_state(id)?.map(|s| s.status))
    }

    /// The full dispatcher view of alarm `id` (the first received, should two devices share
    /// the id).
    pub fn sos_state(&self, id: &str) -> Result<Option<StoredSosState>> {
        match first_alarm(&self.conn, id)? {
            Some(seq) => alarm_view(&self.conn, seq, self.escalate_after),
            None => Ok(None),
        }
    }

    /// Every alarm as dispatchers see it, in receive order.
    pub fn dispatch_list(&self) -> Result<Vec<DispatchSos>> {
        dispatch_list(&self.conn, None, None, self.escalate_after)
    }

    fn advance(&self, id: &str, dispatcher: &str, action: Advance) -> Result<Option<DispatchSos>> {
        let mv = Move {
            action,
            dispatcher,
            message: None,
        };
        match advance_sos(&self.conn, id, None, &mv, self.escalate_after)?.0 {
            Lookup::Found(s) => Ok(Some(s)),
            Lookup::NotFound => Ok(None),
            Lookup::Ambiguous => Err(ServerError::InvalidInput(
                "several devices sent an sos with this id".into(),
            )),
        }
    }

    /// Marks SOS `id` acknowledged by `dispatcher` (as `POST .../acknowledge` does); `None`
    /// if unknown.
    pub fn acknowledge_sos(&self, id: &str, dispatcher: &str) -> Result<Option<DispatchSos>> {
        self.advance(id, dispatcher, Advance::Acknowledge)
    }

    /// Marks SOS `id` resolved by `dispatcher` (as `POST .../resolve` does); `None` if
    /// unknown.
    pub fn resolve_sos(&self, id: &str, dispatcher: &str) -> Result<Option<DispatchSos>> {
        self.advance(id, dispatcher, Advance::Resolve)
    }
}
