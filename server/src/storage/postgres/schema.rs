//! PostgreSQL schema versions and migrations. Version `n` is built by the numbered files
//! `server/sql/postgres/001_*.sql` to `n`, applied in order inside one transaction; the
//! version lives in the one-row table `crewsafe_schema`. Several instances may start at once:
//! the upgrade holds an advisory lock, and each reads the version again under it. A database
//! of a newer server is refused before anything is written to it. The upgrade tests are in
//! `server/tests/postgres_contract.rs`.

use crate::error::{Result, ServerError};

/// The migrations, in order. Entry `i` upgrades version `i` to `i + 1`. Shipped files are
/// never edited (a test holds their hashes): a change is a new file.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../sql/postgres/001_initial.sql"),
    include_str!("../../../sql/postgres/002_dispatch_pages.sql"),
    include_str!("../../../sql/postgres/003_alarm_kind.sql"),
];

/// The schema version this build writes.
pub(crate) const VERSION: u32 = MIGRATIONS.len() as u32;

/// The advisory lock held while the schema is checked and upgraded.
const MIGRATION_LOCK: i64 = 0x4372_6577_5300;

/// Brings the schema up to date (or refuses a newer one).
pub(crate) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS crewsafe_schema (version integer NOT NULL);")
        .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM crewsafe_schema", &[])
        .await?
        .map(|r| r.get(0));
    let from = match u32::try_from(found.unwrap_or(0)) {
        Ok(v) if v <= VERSION => v,
        _ => {
            return Err(ServerError::Config(format!(
                "the PostgreSQL database has schema version {}, newer than this server \
                 ({VERSION})",
                found.unwrap_or(0)
            )))
        }
    };
    if found.is_none() {
        tx.execute("INSERT INTO crewsafe_schema (version) VALUES (0)", &[])
            .await?;
    }
    for (done, sql) in (1i32..).zip(MIGRATIONS).skip(from as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("UPDATE crewsafe_schema SET version = $1", &[&done])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
