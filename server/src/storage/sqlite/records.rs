//! Reads of stored records on SQLite, for [`crate::ServerStore`].

use crewsafe_protocol::{Kind, Lane};
use rusqlite::{params, Connection};

use crate::error::Result;
use crate::storage::column::parse_time;
use crate::storage::reports::{sortable_time, ReportPage, ReportQuery};
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

/// `received_at` in the form [`sortable_time`] writes: stored times have 0 to 9 fraction
/// digits (`…:00Z`, `…:00.5Z`), whose text does not sort; this pads the fraction to nine.
const SORTABLE_RECEIVED_AT: &str = "(substr(received_at, 1, 19) || '.' || substr(
    CASE WHEN substr(received_at, 20, 1) = '.' THEN rtrim(substr(received_at, 21), 'Z')
         ELSE '' END || '000000000', 1, 9))";

/// One page of the dispatcher report list (see `storage/reports.rs`): incident reports by
/// `seq`, newest first, read backwards along the `seq` index.
pub(crate) fn report_page(conn: &Connection, q: &ReportQuery) -> Result<ReportPage> {
    let sql = format!(
        "SELECT device_id, record_id, kind, lane, parent_id, device_time, received_at,
                record_json, seq
         FROM records
         WHERE kind = ?1 AND seq < ?2
           AND (?3 IS NULL OR {SORTABLE_RECEIVED_AT} >= ?3)
           AND (?4 IS NULL OR {SORTABLE_RECEIVED_AT} < ?4)
         ORDER BY seq DESC LIMIT ?5"
    );
    let rows: Vec<(i64, RecordRow)> = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                Kind::IncidentReport,
                q.below(),
                q.since.map(sortable_time),
                q.until.map(sortable_time),
                q.rows()
            ],
            |r| Ok((r.get(8)?, RecordRow::read(r)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let rows = rows
        .into_iter()
        .map(|(seq, row)| Ok((seq, row.into_stored()?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ReportPage::from_rows(q, rows))
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    #[test]
    fn stored_receive_times_compare_as_times() {
        let c = Connection::open_in_memory().unwrap();
        for stored in [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00.5Z",
            "2026-11-25T10:00:00.123Z",
            "2026-11-25T10:00:00.123456Z",
            "2026-11-25T10:00:00.123456789Z",
        ] {
            let sql = format!("SELECT {SORTABLE_RECEIVED_AT} FROM (SELECT ?1 AS received_at)");
            let got: String = c.query_row(&sql, [stored], |r| r.get(0)).unwrap();
            let t: DateTime<Utc> = parse_time(stored).unwrap();
            assert_eq!(got, sortable_time(t), "{stored}");
        }
    }
}
