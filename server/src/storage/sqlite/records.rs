//! Reads of stored records on SQLite, for [`crate::ServerStore`].

use crewsafe_protocol::{Kind, Lane};
use rusqlite::Connection;

use crate::error::Result;
use crate::storage::column::parse_time;
use crate::storage::stored::{content_of, StoredRecord, Which};

/// A `records` row before its times and JSON are parsed.
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
        Ok(StoredRecord {
            content: content_of(&self.json)?,
            device_id: self.device_id,
            id: self.id,
            kind: self.kind,
            lane: self.lane,
            parent_id: self.parent_id,
            device_time: parse_time(&self.device_time)?,
            received_at: parse_time(&self.received_at)?,
        })
    }
}

/// The records `which` names, in receive order.
pub(crate) fn records(conn: &Connection, which: Which<'_>) -> Result<Vec<StoredRecord>> {
    let (filter, args): (&str, Vec<&dyn rusqlite::ToSql>) = match &which {
        Which::All => ("", vec![]),
        Which::Device(d) => ("WHERE device_id = ?1", vec![d]),
        Which::One(d, id) => ("WHERE device_id = ?1 AND record_id = ?2", vec![d, id]),
    };
    let sql = format!(
        "SELECT device_id, record_id, kind, lane, parent_id, device_time, received_at,
                record_json
         FROM records {filter} ORDER BY seq"
    );
    let rows: Vec<RecordRow> = conn
        .prepare(&sql)?
        .query_map(args.as_slice(), RecordRow::read)?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter().map(RecordRow::into_stored).collect()
}

/// How many stored records (of any device) have this id.
pub(crate) fn count_of(conn: &Connection, id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM records WHERE record_id = ?1",
        [id],
        |r| r.get(0),
    )?)
}

/// Number of stored records.
pub(crate) fn record_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?)
}
