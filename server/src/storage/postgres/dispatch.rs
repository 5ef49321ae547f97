//! Dispatch state of alarms on PostgreSQL: the statuses devices poll and watch, finding an
//! alarm by id, the dispatcher list a page at a time (`storage/pages.rs`) and the alarm
//! counts, and the dispatcher moves (rules in `storage/dispatch.rs`). A move holds the alarm
//! lock (`mod.rs`) from its first statement.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{AlarmKind, DispatchSos, DispatchStatus, SosStatus};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::view::alarm_view;
use super::{events, word, ALARM_LOCK};
use crate::error::Result;
use crate::storage::column::now;
use crate::storage::dispatch::{Change, Lookup, Move};
use crate::storage::pages::{from_micros, split_keys, AlarmCounts, AlarmPage, AlarmQuery, Key};

/// Opens the alarm of the record `seq`, raised by `alarm` and received (or raised) at `at`:
/// `delivered`, waiting for a dispatcher.
pub(crate) async fn open_alarm(
    c: &impl GenericClient,
    seq: i64,
    alarm: AlarmKind,
    at: DateTime<Utc>,
) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO sos_status (seq, alarm, status, delivered_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .await?;
    c.execute(
        &stmt,
        &[
            &seq,
            &alarm.as_str(),
            &DispatchStatus::Delivered.as_str(),
            &at,
        ],
    )
    .await?;
    Ok(())
}

/// Statuses of those `ids` that are alarms of `device_id`, in request order, each once.
pub(crate) async fn sos_statuses(
    c: &impl GenericClient,
    device_id: &str,
    ids: &[String],
) -> Result<Vec<SosStatus>> {
    let stmt = c
        .prepare_cached(
            "SELECT s.status, s.updated_at, s.acknowledged_at, s.acknowledged_by,
                    s.resolved_at, s.message
             FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.device_id = $1 AND r.record_id = $2",
        )
        .await?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let lower = id.to_ascii_lowercase();
        if let Some(r) = c.query_opt(&stmt, &[&device_id, &lower]).await? {
            out.push(SosStatus {
                id: id.clone(),
                status: word(r.try_get(0)?)?,
                updated_at: r.try_get(1)?,
                acknowledged_at: r.try_get(2)?,
                acknowledged_by: r.try_get(3)?,
                resolved_at: r.try_get(4)?,
                message: r.try_get(5)?,
            });
        }
    }
    Ok(out)
}

/// The alarm `id` (of `device`, when given): its seq and device.
async fn find_alarm(
    c: &impl GenericClient,
    id: &str,
    device: Option<&str>,
) -> Result<Lookup<(i64, String)>> {
    let rows = match device {
        Some(device) => {
            c.query(
                "SELECT s.seq, r.device_id FROM records r JOIN sos_status s ON s.seq = r.seq
                 WHERE r.record_id = $1 AND r.device_id = $2",
                &[&id, &device],
            )
            .await?
        }
        None => {
            c.query(
                "SELECT s.seq, r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
                 WHERE r.record_id = $1 LIMIT 2",
                &[&id],
            )
            .await?
        }
    };
    let found = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<(i64, String)>>>()?;
    Ok(Lookup::of(found))
}

/// The seq of the first received alarm with this id, whichever device sent it.
pub(crate) async fn first_alarm(c: &impl GenericClient, id: &str) -> Result<Option<i64>> {
    let row = c
        .query_opt(
            "SELECT s.seq FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = $1 ORDER BY s.seq LIMIT 1",
            &[&id.to_ascii_lowercase()],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// One page of the dispatcher list (`storage/pages.rs`): the keys in one range scan of
/// `sos_status_by_time`, or with a status filter one scan of `sos_status_by_status` per
/// status, merged (with an alarm filter, of `sos_status_by_alarm` and
/// `sos_status_by_alarm_status`); then the view of each alarm of the page.
pub(crate) async fn dispatch_page(
    c: &impl GenericClient,
    query: &AlarmQuery,
    escalate_after: Duration,
) -> Result<AlarmPage> {
    let mut args = Args::default();
    let scans: Vec<String> = if query.statuses.is_empty() {
        vec![keyset_scan(query, None, &mut args)]
    } else {
        query
            .statuses
            .iter()
            .map(|&status| keyset_scan(query, Some(status), &mut args))
            .collect()
    };
    let sql = if scans.len() == 1 {
        scans.concat()
    } else {
        // Each scan is ordered and limited; the merge sorts at most `limit + 1` keys of each.
        let limit = args.push(query.keys_to_read());
        let parts: Vec<String> = scans.iter().map(|scan| format!("({scan})")).collect();
        format!("{} ORDER BY 1, 2 LIMIT {limit}", parts.join(" UNION ALL "))
    };
    let stmt = c.prepare_cached(&sql).await?;
    let keys = c
        .query(&stmt, &args.refs())
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<Key>>>()?;
    let (keys, next) = split_keys(query, keys);
    let mut sos = Vec::with_capacity(keys.len());
    for (_, seq) in keys {
        if let Some(view) = alarm_view(c, seq, escalate_after).await? {
            sos.push(view);
        }
    }
    Ok(AlarmPage { sos, next })
}

/// The arguments of a statement built piece by piece.
#[derive(Default)]
struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    /// Adds an argument; its placeholder.
    fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
    }
}

/// The SQL of one ordered, limited scan of alarm keys (Unix microseconds of `delivered_at`,
/// seq), with `status` if given, its arguments appended to `args`.
fn keyset_scan(query: &AlarmQuery, status: Option<DispatchStatus>, args: &mut Args) -> String {
    // Microseconds: the precision PostgreSQL keeps, exact in a bigint.
    let mut sql = String::from(
        "SELECT (extract(epoch FROM s.delivered_at) * 1000000)::bigint, s.seq FROM sos_status s",
    );
    let mut clauses: Vec<String> = Vec::new();
    if let Some(alarm) = query.alarm {
        clauses.push(format!("s.alarm = {}", args.push(alarm.as_str())));
    }
    if let Some(status) = status {
        clauses.push(format!("s.status = {}", args.push(status.as_str())));
    }
    if let Some(since) = query.since_us {
        clauses.push(format!(
            "s.delivered_at >= {}",
            args.push(from_micros(since))
        ));
    }
    if let Some(until) = query.until_us {
        clauses.push(format!(
            "s.delivered_at < {}",
            args.push(from_micros(until))
        ));
    }
    if let Some(after) = query.after {
        let at = args.push(from_micros(after.received_us));
        let seq = args.push(after.seq);
        clauses.push(format!("(s.delivered_at, s.seq) > ({at}, {seq})"));
    }
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    let limit = args.push(query.keys_to_read());
    sql.push_str(&format!(" ORDER BY s.delivered_at, s.seq LIMIT {limit}"));
    sql
}

/// The alarm counts of the `/metrics` gauges, from `sos_status_by_status` alone.
pub(crate) async fn alarm_counts(c: &impl GenericClient) -> Result<AlarmCounts> {
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM sos_status WHERE status IN ($1, $2)),
                    (SELECT count(*) FROM sos_status WHERE status = $1),
                    (SELECT min(delivered_at) FROM sos_status WHERE status = $1)",
            &[
                &DispatchStatus::Delivered.as_str(),
                &DispatchStatus::Acknowledged.as_str(),
            ],
        )
        .await?;
    let (open, unacknowledged): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok(AlarmCounts {
        open: u64::try_from(open).unwrap_or(0),
        unacknowledged: u64::try_from(unacknowledged).unwrap_or(0),
        oldest_unacknowledged: row.try_get(2)?,
    })
}

/// Moves alarm `id` forward (never backwards) and returns its new view. The event of the
/// change reaches the hubs through the notification.
pub(crate) async fn advance_sos(
    client: &mut deadpool_postgres::Object,
    id: &str,
    device: Option<&str>,
    mv: &Move,
    escalate_after: Duration,
) -> Result<Lookup<DispatchSos>> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ALARM_LOCK])
        .await?;
    // Ids are stored in their canonical, lower-case form.
    let (seq, device_id) = match find_alarm(&tx, &id.to_ascii_lowercase(), device).await? {
        Lookup::Found(found) => found,
        Lookup::NotFound => return Ok(Lookup::NotFound),
        Lookup::Ambiguous => return Ok(Lookup::Ambiguous),
    };
    let row = tx
        .query_one(
            "SELECT status, message FROM sos_status WHERE seq = $1 FOR UPDATE",
            &[&seq],
        )
        .await?;
    let status: DispatchStatus = word(row.try_get(0)?)?;
    let message: Option<String> = row.try_get(1)?;
    let at = now();
    let changed = match mv.change(status, message.as_deref()) {
        Change::Acknowledge => {
            tx.execute(
                "UPDATE sos_status
                 SET status = $2, acknowledged_at = $3, acknowledged_by = $4, updated_at = $3,
                     message = COALESCE($5, message)
                 WHERE seq = $1",
                &[
                    &seq,
                    &DispatchStatus::Acknowledged.as_str(),
                    &at,
                    &mv.dispatcher,
                    &mv.message,
                ],
            )
            .await?
        }
        Change::Resolve => {
            tx.execute(
                "UPDATE sos_status
                 SET status = $2,
                     acknowledged_at = COALESCE(acknowledged_at, $3),
                     acknowledged_by = COALESCE(acknowledged_by, $4),
                     resolved_at = $3, resolved_by = $4, updated_at = $3,
                     message = COALESCE($5, message)
                 WHERE seq = $1",
                &[
                    &seq,
                    &DispatchStatus::Resolved.as_str(),
                    &at,
                    &mv.dispatcher,
                    &mv.message,
                ],
            )
            .await?
        }
        Change::Message => {
            tx.execute(
                "UPDATE sos_status SET message = $2, updated_at = $3 WHERE seq = $1",
                &[&seq, &mv.message, &at],
            )
            .await?
        }
        Change::Nothing => 0,
    };
    if changed > 0 {
        events::log(&tx, seq, &device_id, at).await?;
    }
    let view = alarm_view(&tx, seq, escalate_after).await?;
    tx.commit().await?;
    Ok(view.map_or(Lookup::NotFound, Lookup::Found))
}
