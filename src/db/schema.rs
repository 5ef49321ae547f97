//! Schema versions and migrations. The version lives in `PRAGMA user_version`; each version
//! is a numbered SQL file under `sql/migrations`, applied in order inside one transaction.
//! A fresh database is built by applying every migration from version 0, so there is one
//! source of truth; old-version snapshots under `sql/snapshots` are upgraded in tests and
//! compared with a fresh database.

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// The migrations, in order. Entry `i` upgrades version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    include_str!("../../sql/migrations/001_initial.sql"),
    include_str!("../../sql/migrations/002_sync.sql"),
    include_str!("../../sql/migrations/003_one_row_per_record.sql"),
    include_str!("../../sql/migrations/004_lane_floors.sql"),
    include_str!("../../sql/migrations/005_check_ins_and_dispatch_answers.sql"),
    include_str!("../../sql/migrations/006_attachments.sql"),
];

/// The schema version this build writes.
pub const VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub fn user_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

/// Refuses a database written by a newer build, without writing to it.
pub fn check_not_newer(found: u32) -> Result<()> {
    if found > VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    Ok(())
}

/// Applies the migrations from `from` up to [`VERSION`] in the caller's transaction.
pub fn upgrade_from(conn: &Connection, from: u32) -> Result<()> {
    check_not_newer(from)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", (i + 1) as u32)?;
    }
    Ok(())
}

/// The schema as a sorted list of `type name sql` lines, for comparing two databases.
pub fn describe(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT type, name, IFNULL(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "{} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_upgrade_reaches_current_version() {
        let conn = Connection::open_in_memory().unwrap();
        upgrade_from(&conn, 0).unwrap();
        assert_eq!(user_version(&conn).unwrap(), VERSION);
        assert!(describe(&conn)
            .unwrap()
            .iter()
            .any(|l| l.contains("records_open_sos")));
    }

    #[test]
    fn newer_version_is_typed() {
        assert!(matches!(
            check_not_newer(VERSION + 1),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
