//! SQLite storage: devices, dispatchers, records (permanently deduplicated by device and
//! record id) and SOS dispatch status.
//!
//! One file in WAL mode with `synchronous=FULL`, so an accepted record is on disk before the
//! server answers. Every opener (the running server, enrollment, [`ServerStore`]) creates or
//! checks the schema and waits up to ten seconds for a busy database.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use crewsafe_protocol::{
    DispatchCancel, DispatchSos, DispatchStatus, ItemResult, ItemStatus, Kind, Lane,
    SosCancelContent, SosContent, SosLocationContent, SosStatus, WireRecord,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::validate::{kind_name, validate};
use crate::{Result, ServerError};

/// Schema version kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i32 = 3;

/// Upgrades from version 1. The index of records by id alone was dropped: every record
/// scattered one more entry over a random-keyed index, which dominated the pages a batch
/// commit writes, and only rare lookups without a device (tests, dispatcher acks by id) used
/// it.
const MIGRATE_1_TO_2: &str = "DROP INDEX IF EXISTS records_by_id;";

/// Upgrades from version 2. `sos_status` rows are keyed by their SOS's `records.seq`
/// instead of (device, id): accepting an SOS appends one row instead of also scattering an
/// entry over a random-keyed index. Lookups by (device, id) go through the records key.
const MIGRATE_2_TO_3: &str = r#"
CREATE TABLE sos_status_v3 (
    seq             INTEGER PRIMARY KEY REFERENCES records (seq),
    status          TEXT NOT NULL
                    CHECK (status = 'delivered' OR status = 'acknowledged' OR status = 'resolved'),
    delivered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    updated_at      TEXT NOT NULL
);
INSERT INTO sos_status_v3
    SELECT r.seq, s.status, s.delivered_at, s.acknowledged_at, s.acknowledged_by,
           s.resolved_at, s.resolved_by, s.updated_at
    FROM sos_status s JOIN records r ON r.device_id = s.device_id AND r.record_id = s.sos_id;
DROP TABLE sos_status;
ALTER TABLE sos_status_v3 RENAME TO sos_status;
"#;

const SCHEMA: &str = r#"
CREATE TABLE devices (
    device_id    TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL
);
CREATE TABLE dispatchers (
    name         TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL
);
-- Never updated or deleted: the primary key is the permanent dedupe key.
CREATE TABLE records (
    device_id      TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    seq            INTEGER NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    lane           TEXT NOT NULL,
    parent_id      TEXT,
    device_time    TEXT NOT NULL,
    received_at    TEXT NOT NULL,
    content_sha256 BLOB NOT NULL,
    record_json    TEXT NOT NULL,
    PRIMARY KEY (device_id, record_id)
);
CREATE INDEX records_by_parent ON records (device_id, parent_id) WHERE parent_id IS NOT NULL;
-- One row per SOS, keyed by its records row.
CREATE TABLE sos_status (
    seq             INTEGER PRIMARY KEY REFERENCES records (seq),
    status          TEXT NOT NULL
                    CHECK (status = 'delivered' OR status = 'acknowledged' OR status = 'resolved'),
    delivered_at    TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    updated_at      TEXT NOT NULL
);
"#;

/// Opens (creating if needed) the server database and brings its schema up to date.
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Every per-record statement of a batch is prepared once and reused.
    conn.set_prepared_statement_cache_capacity(64);
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ServerError::Config(format!(
            "database {} cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version < SCHEMA_VERSION {
        if version == 1 {
            tx.execute_batch(MIGRATE_1_TO_2)?;
        }
        tx.execute_batch(MIGRATE_2_TO_3)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    } else if version > SCHEMA_VERSION {
        return Err(ServerError::Config(format!(
            "database {} has schema version {version}, newer than this server ({SCHEMA_VERSION})",
            path.display()
        )));
    }
    tx.commit()?;
    Ok(conn)
}

/// The running server's connection, shared by the blocking tasks.
pub(crate) struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: Mutex::new(open_connection(path)?),
        })
    }

    /// Runs `f` with the connection (operations are serialized: one writer at a time).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

// ---------------------------------------------------------------------------------------
// Time, hashing, tokens
// ---------------------------------------------------------------------------------------

/// The server clock, truncated to microseconds (the precision stored and answered).
pub(crate) fn now() -> DateTime<Utc> {
    let micros = Utc::now().timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now)
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ServerError::Corrupt("stored time is not RFC 3339".into()))
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// Serializes a JSON value with object keys sorted at every level, independent of how
/// serde_json was built (the `preserve_order` feature would otherwise keep insertion order).
/// Keys and scalars are written exactly as `Value::to_string` writes them.
#[cfg(test)]
fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // serde_json only writes UTF-8, and so do the brackets and separators.
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical JSON of a whole record, byte for byte `canonical_json(&to_value(record))`
/// (the stored dedupe hashes depend on it), written without building a copy of the record
/// as a `Value` first. Its keys in sorted order: content, device_time, id, kind, lane,
/// parent_id.
pub(crate) fn canonical_record(rec: &WireRecord) -> String {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"content":"#);
    write_canonical(&rec.content, &mut out);
    out.extend_from_slice(br#","device_time":"#);
    push_json(&mut out, &rec.device_time);
    out.extend_from_slice(br#","id":"#);
    push_json(&mut out, &rec.id);
    out.extend_from_slice(br#","kind":"#);
    push_json(&mut out, &rec.kind);
    out.extend_from_slice(br#","lane":"#);
    push_json(&mut out, &rec.lane);
    if let Some(parent) = &rec.parent_id {
        out.extend_from_slice(br#","parent_id":"#);
        push_json(&mut out, parent);
    }
    out.push(b'}');
    String::from_utf8_lossy(&out).into_owned()
}

fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json(out, k);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => push_json(out, scalar),
    }
}

fn push_json(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    // Writing a string, a time or a scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn new_token() -> Result<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServerError::Config("system random generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > 200
        || value.trim() != value
        || value.chars().any(char::is_control)
    {
        return Err(ServerError::InvalidInput(format!(
            "{what} must be 1 to 200 characters, without control characters or surrounding spaces"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Enrollment and authentication
// ---------------------------------------------------------------------------------------

/// Enrolls (or re-enrolls) a device and returns its new bearer token. Re-enrolling replaces
/// the previous token. Only the token's SHA-256 is stored.
pub(crate) fn enroll_device_conn(conn: &Connection, device_id: &str) -> Result<String> {
    check_name("device id", device_id)?;
    enroll(conn, "devices", "device_id", device_id)
}

/// Enrolls (or re-enrolls) a dispatcher by name and returns its new bearer token.
pub(crate) fn enroll_dispatcher_conn(conn: &Connection, name: &str) -> Result<String> {
    check_name("dispatcher name", name)?;
    enroll(conn, "dispatchers", "name", name)
}

/// Stores a fresh token's SHA-256 for `key` in `table` (keyed by `key_col`), replacing any
/// previous one, and returns the token.
fn enroll(conn: &Connection, table: &str, key_col: &str, key: &str) -> Result<String> {
    let token = new_token()?;
    conn.execute(
        &format!(
            "INSERT INTO {table} ({key_col}, token_sha256, enrolled_at) VALUES (?1, ?2, ?3)
             ON CONFLICT ({key_col}) DO UPDATE
             SET token_sha256 = excluded.token_sha256, enrolled_at = excluded.enrolled_at"
        ),
        params![key, sha256(token.as_bytes()), fmt_time(now())],
    )?;
    Ok(token)
}

/// The device a bearer token belongs to.
pub(crate) fn device_for_token(conn: &Connection, token: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT device_id FROM devices WHERE token_sha256 = ?1",
            [sha256(token.as_bytes())],
            |r| r.get(0),
        )
        .optional()?)
}

/// The dispatcher a bearer token belongs to.
pub(crate) fn dispatcher_for_token(conn: &Connection, token: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT name FROM dispatchers WHERE token_sha256 = ?1",
            [sha256(token.as_bytes())],
            |r| r.get(0),
        )
        .optional()?)
}

// ---------------------------------------------------------------------------------------
// Batch intake
// ---------------------------------------------------------------------------------------

fn lane_str(lane: Lane) -> &'static str {
    match lane {
        Lane::Sos => "sos",
        Lane::Report => "report",
    }
}

fn parse_kind(s: &str) -> Result<Kind> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| ServerError::Corrupt("stored kind is unknown".into()))
}

fn parse_lane(s: &str) -> Result<Lane> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| ServerError::Corrupt("stored lane is unknown".into()))
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

/// Reason given for records poisoned by the test fault `reject_id`.
pub const POISON_REASON: &str = "poison record (test fault)";

/// Processes `records` in order inside one transaction that is committed before this
/// returns. Returns one result per record.
pub(crate) fn process_batch(
    conn: &mut Connection,
    device_id: &str,
    records: &[WireRecord],
    reject_ids: &HashSet<String>,
) -> Result<Vec<ItemResult>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let received_at = now();
    let received_str = fmt_time(received_at);
    let mut next_seq: i64 =
        tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM records", [], |r| {
            r.get(0)
        })?;
    let mut results = Vec::with_capacity(records.len());
    for rec in records {
        if reject_ids.contains(&rec.id) {
            results.push(refused(&rec.id, ItemStatus::Rejected, POISON_REASON));
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
                    &rec.id,
                    ItemStatus::Duplicate,
                    Some(parse_time(&stored_at)?),
                )
            } else {
                refused(
                    &rec.id,
                    ItemStatus::Conflict,
                    "id: already stored for this device with different content",
                )
            });
            continue;
        }
        if let Err(reason) = validate(rec, device_id) {
            results.push(refused(&rec.id, ItemStatus::Rejected, reason));
            continue;
        }
        if let Some(parent) = &rec.parent_id {
            let parent_kind: Option<String> = tx
                .prepare_cached("SELECT kind FROM records WHERE device_id = ?1 AND record_id = ?2")?
                .query_row(params![device_id, parent], |r| r.get(0))
                .optional()?;
            if parent_kind.as_deref() != Some("sos") {
                results.push(refused(
                    &rec.id,
                    ItemStatus::Rejected,
                    "parent_id: must name an sos of this device that is already stored \
                     (send the sos first, or earlier in the same batch)",
                ));
                continue;
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
            kind_name(rec.kind),
            lane_str(rec.lane),
            rec.parent_id,
            fmt_time(rec.device_time),
            received_str,
            hash,
            canonical,
        ])?;
        if rec.kind == Kind::Sos {
            tx.prepare_cached(
                "INSERT INTO sos_status (seq, status, delivered_at, updated_at)
                 VALUES (?1, 'delivered', ?2, ?2)",
            )?
            .execute(params![seq, received_str])?;
        }
        results.push(item(&rec.id, ItemStatus::Accepted, Some(received_at)));
    }
    tx.commit()?;
    Ok(results)
}

// ---------------------------------------------------------------------------------------
// SOS status
// ---------------------------------------------------------------------------------------

fn status_str(s: DispatchStatus) -> &'static str {
    match s {
        DispatchStatus::Delivered => "delivered",
        DispatchStatus::Acknowledged => "acknowledged",
        DispatchStatus::Resolved => "resolved",
    }
}

fn parse_status(s: &str) -> Result<DispatchStatus> {
    match s {
        "delivered" => Ok(DispatchStatus::Delivered),
        "acknowledged" => Ok(DispatchStatus::Acknowledged),
        "resolved" => Ok(DispatchStatus::Resolved),
        _ => Err(ServerError::Corrupt("stored sos status is unknown".into())),
    }
}

/// Statuses of those `ids` that are SOS alarms of `device_id`, in request order, each once.
pub(crate) fn sos_statuses(
    conn: &Connection,
    device_id: &str,
    ids: &[String],
) -> Result<Vec<SosStatus>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.status, s.updated_at FROM records r JOIN sos_status s ON s.seq = r.seq
         WHERE r.device_id = ?1 AND r.record_id = ?2",
    )?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let row: Option<(String, String)> = stmt
            .query_row(params![device_id, id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((status, updated_at)) = row {
            out.push(SosStatus {
                id: id.clone(),
                status: parse_status(&status)?,
                updated_at: parse_time(&updated_at)?,
            });
        }
    }
    Ok(out)
}

/// Outcome of looking an SOS up by id alone.
pub(crate) enum Lookup<T> {
    /// Exactly one match.
    Found(T),
    /// No SOS with this id (for this device, if one was named).
    NotFound,
    /// Several devices sent an SOS with this id; name the device.
    Ambiguous,
}

/// The device that sent SOS `id` (restricted to `device` when given).
fn find_sos_device(conn: &Connection, id: &str, device: Option<&str>) -> Result<Lookup<String>> {
    // With a device the records key finds it; by id alone the SOS rows are scanned.
    let (sql, params): (&str, Vec<&dyn rusqlite::ToSql>) = match &device {
        Some(device) => (
            "SELECT r.device_id FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.record_id = ?1 AND r.device_id = ?2",
            vec![&id, device],
        ),
        None => (
            "SELECT r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
             WHERE r.record_id = ?1 LIMIT 2",
            vec![&id],
        ),
    };
    let devices: Vec<String> = conn
        .prepare_cached(sql)?
        .query_map(params.as_slice(), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match devices.len() {
        0 => Lookup::NotFound,
        1 => Lookup::Found(devices.into_iter().next().unwrap_or_default()),
        _ => Lookup::Ambiguous,
    })
}

fn stored_wire(json: &str) -> Result<WireRecord> {
    serde_json::from_str(json).map_err(|_| ServerError::Corrupt("stored record unreadable".into()))
}

fn stored_content<T: serde::de::DeserializeOwned>(rec: WireRecord) -> Result<T> {
    serde_json::from_value(rec.content)
        .map_err(|_| ServerError::Corrupt("stored content unreadable".into()))
}

/// The dispatcher view of one SOS.
pub(crate) fn dispatch_sos(
    conn: &Connection,
    device_id: &str,
    id: &str,
) -> Result<Option<DispatchSos>> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT r.record_json, r.received_at, s.status, s.updated_at,
                    s.acknowledged_at, s.acknowledged_by, s.resolved_at, s.resolved_by
             FROM records r JOIN sos_status s ON s.seq = r.seq
             WHERE r.device_id = ?1 AND r.record_id = ?2",
            params![device_id, id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .optional()?;
    let Some((json, received_at, status, updated_at, ack_at, ack_by, res_at, res_by)) = row else {
        return Ok(None);
    };
    let sos: SosContent = stored_content(stored_wire(&json)?)?;
    let mut location = sos.location.clone();
    let mut latest_fix: Option<DateTime<Utc>> = None;
    let mut cancel = None;
    let mut stmt = conn.prepare_cached(
        "SELECT kind, record_json FROM records WHERE device_id = ?1 AND parent_id = ?2
         ORDER BY seq",
    )?;
    let children: Vec<(String, String)> = stmt
        .query_map(params![device_id, id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kind, json) in children {
        match parse_kind(&kind)? {
            Kind::SosLocation => {
                let c: SosLocationContent = stored_content(stored_wire(&json)?)?;
                if latest_fix.is_none_or(|t| c.recorded_at >= t) {
                    latest_fix = Some(c.recorded_at);
                    location = Some(c.location);
                }
            }
            Kind::SosCancel if cancel.is_none() => {
                let c: SosCancelContent = stored_content(stored_wire(&json)?)?;
                cancel = Some(DispatchCancel {
                    reason: c.reason,
                    note: c.note,
                    cancelled_at: c.cancelled_at,
                });
            }
            _ => {}
        }
    }
    let opt_time = |s: Option<String>| s.as_deref().map(parse_time).transpose();
    Ok(Some(DispatchSos {
        id: id.to_string(),
        device_id: device_id.to_string(),
        crew: sos.crew,
        raised_at: sos.raised_at,
        received_at: parse_time(&received_at)?,
        location,
        note: sos.note,
        cancel,
        status: parse_status(&status)?,
        updated_at: parse_time(&updated_at)?,
        acknowledged_at: opt_time(ack_at)?,
        acknowledged_by: ack_by,
        resolved_at: opt_time(res_at)?,
        resolved_by: res_by,
    }))
}

/// All SOS alarms (optionally only those with `status`) in receive order.
pub(crate) fn dispatch_list(
    conn: &Connection,
    status: Option<DispatchStatus>,
) -> Result<Vec<DispatchSos>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.device_id, r.record_id FROM sos_status s JOIN records r ON r.seq = s.seq
         WHERE ?1 IS NULL OR s.status = ?1
         ORDER BY s.seq",
    )?;
    let keys: Vec<(String, String)> = stmt
        .query_map([status.map(status_str)], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for (device_id, id) in keys {
        if let Some(sos) = dispatch_sos(conn, &device_id, &id)? {
            out.push(sos);
        }
    }
    Ok(out)
}

/// A dispatcher's move of an SOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advance {
    /// delivered → acknowledged.
    Acknowledge,
    /// delivered/acknowledged → resolved.
    Resolve,
}

/// Moves SOS `id` forward (never backwards; repeating is a no-op) and returns its new view.
pub(crate) fn advance_sos(
    conn: &Connection,
    id: &str,
    device: Option<&str>,
    action: Advance,
    dispatcher: &str,
) -> Result<Lookup<DispatchSos>> {
    let device_id = match find_sos_device(conn, id, device)? {
        Lookup::Found(d) => d,
        Lookup::NotFound => return Ok(Lookup::NotFound),
        Lookup::Ambiguous => return Ok(Lookup::Ambiguous),
    };
    let at = fmt_time(now());
    match action {
        Advance::Acknowledge => conn.execute(
            "UPDATE sos_status
             SET status = 'acknowledged', acknowledged_at = ?3, acknowledged_by = ?4,
                 updated_at = ?3
             WHERE seq = (SELECT seq FROM records WHERE device_id = ?1 AND record_id = ?2)
               AND status = 'delivered'",
            params![device_id, id, at, dispatcher],
        )?,
        Advance::Resolve => conn.execute(
            "UPDATE sos_status
             SET status = 'resolved',
                 acknowledged_at = COALESCE(acknowledged_at, ?3),
                 acknowledged_by = COALESCE(acknowledged_by, ?4),
                 resolved_at = ?3, resolved_by = ?4, updated_at = ?3
             WHERE seq = (SELECT seq FROM records WHERE device_id = ?1 AND record_id = ?2)
               AND status <> 'resolved'",
            params![device_id, id, at, dispatcher],
        )?,
    };
    match dispatch_sos(conn, &device_id, id)? {
        Some(sos) => Ok(Lookup::Found(sos)),
        None => Ok(Lookup::NotFound),
    }
}

// ---------------------------------------------------------------------------------------
// Read helpers for tests and the demo
// ---------------------------------------------------------------------------------------

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
pub struct ServerStore {
    conn: Connection,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore").finish_non_exhaustive()
    }
}

const RECORD_COLUMNS: &str =
    "device_id, record_id, kind, lane, parent_id, device_time, received_at, record_json";

fn read_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 8]> {
    Ok([
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ])
}

fn to_stored(row: [Option<String>; 8]) -> Result<StoredRecord> {
    let [device_id, id, kind, lane, parent_id, device_time, received_at, json] = row;
    let need = |v: Option<String>| v.ok_or_else(|| ServerError::Corrupt("null column".into()));
    Ok(StoredRecord {
        device_id: need(device_id)?,
        id: need(id)?,
        kind: parse_kind(&need(kind)?)?,
        lane: parse_lane(&need(lane)?)?,
        parent_id,
        device_time: parse_time(&need(device_time)?)?,
        received_at: parse_time(&need(received_at)?)?,
        content: stored_wire(&need(json)?)?.content,
    })
}

impl ServerStore {
    /// Opens the database at `db_path` (creating the schema if the file is new).
    pub fn open(db_path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            conn: open_connection(db_path.as_ref())?,
        })
    }

    fn query_records(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredRecord>> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM records {filter} ORDER BY seq");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows: Vec<[Option<String>; 8]> = stmt
            .query_map(args, read_record)?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(to_stored).collect()
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

    /// Dispatch status of SOS `id` (the first received, should two devices share the id).
    pub fn sos_status(&self, id: &str) -> Result<Option<DispatchStatus>> {
        Ok(self.sos_state(id)?.map(|s| s.status))
    }

    /// The full dispatcher view of SOS `id` (the first received, should two devices share the
    /// id).
    pub fn sos_state(&self, id: &str) -> Result<Option<StoredSosState>> {
        let device: Option<String> = self
            .conn
            .query_row(
                "SELECT r.device_id FROM sos_status s JOIN records r ON r.seq = s.seq
                 WHERE r.record_id = ?1 ORDER BY s.seq LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        match device {
            Some(d) => dispatch_sos(&self.conn, &d, id),
            None => Ok(None),
        }
    }

    /// Every SOS alarm as dispatchers see it, in receive order.
    pub fn dispatch_list(&self) -> Result<Vec<DispatchSos>> {
        dispatch_list(&self.conn, None)
    }

    fn advance(&self, id: &str, dispatcher: &str, action: Advance) -> Result<Option<DispatchSos>> {
        match advance_sos(&self.conn, id, None, action, dispatcher)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":"\u00e9\""}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[{"x":"é\"","y":1}]},"b":1}"#
        );
        // Keys and scalars are written as `Value::to_string` writes them (already-sorted keys
        // here, so both must agree byte for byte: stored hashes depend on it).
        let b: serde_json::Value = serde_json::from_str(
            r#"{"\u0001k\n":[1.5,-0.0,1e300,-7,true,"tab\tq\"\\ \u2028"],"z\u00e9":{}}"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&b), b.to_string());
    }

    #[test]
    fn canonical_record_equals_canonical_json_of_the_record() {
        let mut rec: WireRecord = serde_json::from_str(
            r#"{"id":"6f1c2a0e-3c51-4c39-a4c5-0f0c2b6d9e11","kind":"sos","lane":"sos",
                "device_time":"2026-11-25T10:00:00.123456789Z",
                "content":{"z":1,"crew":{"id":"\u00e9\"\n","b":[2.5,-0.0,null]},"a":true}}"#,
        )
        .unwrap();
        let via_value = |r: &WireRecord| canonical_json(&serde_json::to_value(r).unwrap());
        assert_eq!(canonical_record(&rec), via_value(&rec));
        rec.kind = Kind::SosLocation;
        rec.parent_id = Some("\u{2028}parent".into());
        rec.device_time = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(canonical_record(&rec), via_value(&rec));
        rec.kind = Kind::IncidentReport;
        rec.lane = Lane::Report;
        rec.parent_id = None;
        rec.content = serde_json::json!([]);
        assert_eq!(canonical_record(&rec), via_value(&rec));
    }

    /// The schema of server version 2 exactly as shipped (version 1 had one more index).
    const SCHEMA_V2: &str = r#"
CREATE TABLE devices (device_id TEXT PRIMARY KEY, token_sha256 BLOB NOT NULL UNIQUE,
                      enrolled_at TEXT NOT NULL);
CREATE TABLE dispatchers (name TEXT PRIMARY KEY, token_sha256 BLOB NOT NULL UNIQUE,
                          enrolled_at TEXT NOT NULL);
CREATE TABLE records (
    device_id TEXT NOT NULL, record_id TEXT NOT NULL, seq INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL, lane TEXT NOT NULL, parent_id TEXT, device_time TEXT NOT NULL,
    received_at TEXT NOT NULL, content_sha256 BLOB NOT NULL, record_json TEXT NOT NULL,
    PRIMARY KEY (device_id, record_id)
);
CREATE INDEX records_by_parent ON records (device_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE sos_status (
    device_id TEXT NOT NULL, sos_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('delivered', 'acknowledged', 'resolved')),
    delivered_at TEXT NOT NULL, acknowledged_at TEXT, acknowledged_by TEXT,
    resolved_at TEXT, resolved_by TEXT, updated_at TEXT NOT NULL,
    PRIMARY KEY (device_id, sos_id),
    FOREIGN KEY (device_id, sos_id) REFERENCES records (device_id, record_id)
);
"#;

    /// Writes a database of `version` (1 or 2): two devices' SOS alarms with the same id, one
    /// acknowledged, one still delivered, and a report.
    fn old_database(path: &Path, version: i32) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(SCHEMA_V2).unwrap();
        if version == 1 {
            c.execute_batch("CREATE INDEX records_by_id ON records (record_id);")
                .unwrap();
        }
        let t = "2026-11-25T10:00:00.000000Z";
        let t2 = "2026-11-25T10:05:00.000000Z";
        for (dev, rec, seq, kind) in [
            ("dev-a", "sos-1", 1, "sos"),
            ("dev-b", "sos-1", 2, "sos"),
            ("dev-a", "rep-1", 3, "incident_report"),
        ] {
            let lane = if kind == "sos" { "sos" } else { "report" };
            c.execute(
                "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?6, x'00', '{}')",
                params![dev, rec, seq, kind, lane, t],
            )
            .unwrap();
        }
        c.execute_batch(&format!(
            "INSERT INTO sos_status VALUES ('dev-a', 'sos-1', 'acknowledged', '{t}', '{t2}',
                                            'desk 4', NULL, NULL, '{t2}');
             INSERT INTO sos_status VALUES ('dev-b', 'sos-1', 'delivered', '{t}', NULL, NULL,
                                            NULL, NULL, '{t}');"
        ))
        .unwrap();
        c.pragma_update(None, "user_version", version).unwrap();
    }

    #[test]
    fn older_databases_are_upgraded_keeping_records_and_sos_status() {
        for version in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("old.db");
            old_database(&path, version);
            let c = open_connection(&path).unwrap();
            let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
            assert_eq!(q("PRAGMA user_version"), i64::from(SCHEMA_VERSION));
            assert_eq!(
                q("SELECT count(*) FROM sqlite_master WHERE name = 'records_by_id'"),
                0
            );
            assert_eq!(q("SELECT count(*) FROM records"), 3);
            assert_eq!(q("SELECT count(*) FROM sos_status"), 2);
            assert!(c
                .query_row("PRAGMA foreign_key_check", [], |_| Ok(()))
                .optional()
                .unwrap()
                .is_none());
            let status = |dev: &str| {
                let s = sos_statuses(&c, dev, &["sos-1".into(), "rep-1".into()]).unwrap();
                assert_eq!(s.len(), 1, "only the sos has a status");
                s[0].status
            };
            assert_eq!(status("dev-a"), DispatchStatus::Acknowledged);
            assert_eq!(status("dev-b"), DispatchStatus::Delivered);
            let view = dispatch_sos(&c, "dev-a", "sos-1");
            // The stored content of this hand-written row is `{}`: not an SOS the view reads.
            assert!(matches!(view, Err(ServerError::Corrupt(_))), "{view:?}");
            assert!(matches!(
                find_sos_device(&c, "sos-1", None).unwrap(),
                Lookup::Ambiguous
            ));
            assert!(matches!(
                find_sos_device(&c, "sos-1", Some("dev-b")).unwrap(),
                Lookup::Found(d) if d == "dev-b"
            ));
            assert!(matches!(
                find_sos_device(&c, "rep-1", Some("dev-a")).unwrap(),
                Lookup::NotFound
            ));
            drop(c);
            // A database from a newer server is refused.
            Connection::open(&path)
                .unwrap()
                .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
            assert!(matches!(
                open_connection(&path),
                Err(ServerError::Config(_))
            ));
        }
    }

    #[test]
    fn tokens_are_32_random_bytes_base64url() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(bytes.len(), 32);
    }
}
