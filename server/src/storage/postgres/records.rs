//! Reads of stored records on PostgreSQL, for [`crate::ServerStore`].

use crewsafe_protocol::Kind;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::word;
use crate::error::Result;
use crate::storage::reports::{ReportPage, ReportQuery};
use crate::storage::stored::{content_of, StoredRecord, Which};

/// A record from the columns `device_id, record_id, kind, lane, parent_id, device_time,
/// received_at, record_json`, in this order.
fn stored_of(r: &Row) -> Result<StoredRecord> {
    Ok(StoredRecord {
        device_id: r.try_get(0)?,
        id: r.try_get(1)?,
        kind: word(r.try_get(2)?)?,
        lane: word(r.try_get(3)?)?,
        parent_id: r.try_get(4)?,
        device_time: r.try_get(5)?,
        received_at: r.try_get(6)?,
        content: content_of(r.try_get(7)?)?,
    })
}

/// The records `which` names, in receive order.
pub(crate) async fn records(c: &impl GenericClient, which: Which<'_>) -> Result<Vec<StoredRecord>> {
    let (filter, args): (&str, Vec<&(dyn ToSql + Sync)>) = match &which {
        Which::All => ("", vec![]),
        Which::Device(d) => ("WHERE device_id = $1", vec![d]),
        Which::One(d, id) => ("WHERE device_id = $1 AND record_id = $2", vec![d, id]),
    };
    let sql = format!(
        "SELECT device_id, record_id, kind, lane, parent_id, device_time, received_at,
                record_json
         FROM records {filter} ORDER BY seq"
    );
    let rows = c.query(&sql, &args).await?;
    rows.iter().map(stored_of).collect()
}

/// One page of the dispatcher report list (see `storage/reports.rs`): incident reports by
/// `seq`, newest first, read backwards along the `seq` index.
pub(crate) async fn report_page(c: &impl GenericClient, q: &ReportQuery) -> Result<ReportPage> {
    let rows = c
        .query(
            "SELECT device_id, record_id, kind, lane, parent_id, device_time, received_at,
                    record_json, seq
             FROM records
             WHERE kind = $1 AND seq < $2
               AND ($3::timestamptz IS NULL OR received_at >= $3)
               AND ($4::timestamptz IS NULL OR received_at < $4)
             ORDER BY seq DESC LIMIT $5",
            &[
                &Kind::IncidentReport.as_str(),
                &q.below(),
                &q.since,
                &q.until,
                &q.rows(),
            ],
        )
        .await?;
    let rows = rows
        .iter()
        .map(|r| Ok((r.try_get(8)?, stored_of(r)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(ReportPage::from_rows(q, rows))
}

/// How many stored records (of any device) have this id.
pub(crate) async fn count_of(c: &impl GenericClient, id: &str) -> Result<i64> {
    let row = c
        .query_one("SELECT COUNT(*) FROM records WHERE record_id = $1", &[&id])
        .await?;
    Ok(row.try_get(0)?)
}

/// Number of stored records.
pub(crate) async fn record_count(c: &impl GenericClient) -> Result<i64> {
    Ok(c.query_one("SELECT COUNT(*) FROM records", &[])
        .await?
        .try_get(0)?)
}
