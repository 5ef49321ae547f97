//! Schema versions and migrations. The version lives in `PRAGMA user_version`; version `n`
//! is built by the numbered files `server/sql/migrations/001_*.sql` to `n`, applied in order
//! inside one transaction. A fresh database runs every file from version 0, so the files are
//! the one source of truth; `server/sql/snapshots/vN.sql` hold each shipped version for the
//! upgrade tests (`server/tests/migrations.rs`).
//!
//! Every opener (the running server, enrollment, [`crate::ServerStore`]) goes through
//! [`open_connection`]: WAL mode with `synchronous=FULL` (an accepted record is on disk
//! before the server answers), foreign keys on, a ten-second wait for a busy database. The
//! server's reader connections ([`open_reader`]) only read, from a database the writer has
//! already brought up to date.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, ServerError};

/// The migrations, in order. Entry `i` upgrades version `i` to `i + 1`. Shipped files are
/// never edited (a test holds their hashes): a change is a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../sql/migrations/001_initial.sql"),
    include_str!("../../../sql/migrations/002_drop_records_by_id.sql"),
    include_str!("../../../sql/migrations/003_sos_status_by_seq.sql"),
    include_str!("../../../sql/migrations/004_sos_loop.sql"),
    include_str!("../../../sql/migrations/005_dispatch_pages.sql"),
    include_str!("../../../sql/migrations/006_escalation_by_time.sql"),
    include_str!("../../../sql/migrations/007_alarm_kind.sql"),
];

/// The schema version this build writes.
pub(crate) const VERSION: u32 = MIGRATIONS.len() as u32;

/// Opens (creating if needed) the server database and brings its schema up to date. A
/// database of a newer server is refused before anything is written to it.
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Switching to WAL writes the file header: refuse a newer schema first.
    check_version(path, user_version(&conn)?)?;
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
    // Read again under the write lock: another opener may have upgraded meanwhile.
    let from = check_version(path, user_version(&tx)?)?;
    upgrade_from(&tx, from)?;
    tx.commit()?;
    Ok(conn)
}

/// Opens a reader connection on a database already opened (and upgraded) by
/// [`open_connection`]: it may only read.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    check_version(path, user_version(&conn)?)?;
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Reads `PRAGMA user_version`.
fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// The version to upgrade from, or a clear error for a version this build cannot open.
fn check_version(path: &Path, found: i64) -> Result<u32> {
    match u32::try_from(found) {
        Ok(v) if v <= VERSION => Ok(v),
        _ => Err(ServerError::Config(format!(
            "database {} has schema version {found}, newer than this server ({VERSION})",
            path.display()
        ))),
    }
}

/// Applies the migrations after version `from`, in the caller's transaction.
fn upgrade_from(conn: &Connection, from: u32) -> Result<()> {
    for (done, sql) in (1..).zip(MIGRATIONS).skip(from as usize) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", done)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crewsafe_protocol::{DispatchStatus, Kind, Vocabulary as _};
    use rusqlite::{params, OptionalExtension as _};

    use super::*;
    use crate::config::DEFAULT_ESCALATE_AFTER;
    use crate::storage::dispatch::Lookup;
    use crate::storage::sqlite::dispatch::{find_alarm, sos_statuses};
    use crate::storage::sqlite::view::alarm_view;

    #[test]
    fn a_fresh_database_runs_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_connection(&dir.path().join("fresh.db")).unwrap();
        assert_eq!(user_version(&c).unwrap(), i64::from(VERSION));
        // Every dispatch status the protocol knows fits the column's CHECK.
        c.execute(
            "INSERT INTO records VALUES ('d', 'r', 1, ?1, ?2, NULL, 't', 't', x'00', '{}')",
            params![Kind::Sos, Kind::Sos.lane()],
        )
        .unwrap();
        for &status in DispatchStatus::ALL {
            c.execute(
                "INSERT OR REPLACE INTO sos_status (seq, status, delivered_at, updated_at)
                 VALUES (1, ?1, 't', 't')",
                [status],
            )
            .unwrap();
        }
    }

    /// Writes a database of `version` (1 or 2): two devices' SOS alarms with the same id, one
    /// acknowledged, one still delivered, and a report.
    fn old_database(path: &Path, version: i32) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(match version {
            1 => include_str!("../../../sql/snapshots/v1.sql"),
            _ => include_str!("../../../sql/snapshots/v2.sql"),
        })
        .unwrap();
        let t = "2026-11-25T10:00:00.000000Z";
        let t2 = "2026-11-25T10:05:00.000000Z";
        for (dev, rec, seq, kind) in [
            ("dev-a", "sos-1", 1, Kind::Sos),
            ("dev-b", "sos-1", 2, Kind::Sos),
            ("dev-a", "rep-1", 3, Kind::IncidentReport),
        ] {
            c.execute(
                "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?6, x'00', '{}')",
                params![dev, rec, seq, kind, kind.lane(), t],
            )
            .unwrap();
        }
        let old_status =
            "INSERT INTO sos_status VALUES (?1, 'sos-1', ?2, ?3, ?4, ?5, NULL, NULL, ?6)";
        c.execute(
            old_status,
            params!["dev-a", DispatchStatus::Acknowledged, t, t2, "desk 4", t2],
        )
        .unwrap();
        c.execute(
            old_status,
            params![
                "dev-b",
                DispatchStatus::Delivered,
                t,
                None::<&str>,
                None::<&str>,
                t
            ],
        )
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
            assert_eq!(q("PRAGMA user_version"), i64::from(VERSION));
            assert_eq!(
                q("SELECT count(*) FROM sqlite_master WHERE name = 'records_by_id'"),
                0
            );
            assert_eq!(q("SELECT count(*) FROM records"), 3);
            assert_eq!(q("SELECT count(*) FROM sos_status"), 2);
            // Every alarm stored before version 4 has one event, in receive order.
            assert_eq!(q("SELECT count(*) FROM alarm_events"), 2);
            assert_eq!(q("SELECT min(at_ms) FROM alarm_events"), 1_795_600_800_000);
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
            let view = alarm_view(&c, 1, DEFAULT_ESCALATE_AFTER);
            // The stored content of this hand-written row is `{}`: not an SOS the view reads.
            assert!(matches!(view, Err(ServerError::Corrupt(_))), "{view:?}");
            assert!(matches!(
                find_alarm(&c, "sos-1", None).unwrap(),
                Lookup::Ambiguous
            ));
            assert!(matches!(
                find_alarm(&c, "sos-1", Some("dev-b")).unwrap(),
                Lookup::Found((2, d)) if d == "dev-b"
            ));
            assert!(matches!(
                find_alarm(&c, "rep-1", Some("dev-a")).unwrap(),
                Lookup::NotFound
            ));
            drop(c);
            // A database from a newer server is refused.
            Connection::open(&path)
                .unwrap()
                .pragma_update(None, "user_version", VERSION + 1)
                .unwrap();
            assert!(matches!(
                open_connection(&path),
                Err(ServerError::Config(_))
            ));
        }
    }
}
