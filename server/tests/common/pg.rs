//! A PostgreSQL database of its own for each test, in the cluster the environment names:
//! `CREWSAFE_TEST_POSTGRES` (a connection string to a database the test user may create
//! databases from), or the `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE`
//! variables that `pg_virtualenv` exports. Without either the PostgreSQL tests are skipped,
//! unless `CREWSAFE_REQUIRE_POSTGRES=1`, when they fail; an unreachable cluster always fails.

use crewsafe_server::Database;

/// A fresh database, dropped (with any connection left to it) when this is dropped.
pub struct PgDatabase {
    admin: String,
    name: String,
    /// Its connection string.
    pub url: String,
}

/// The admin connection string from the environment, if any.
fn admin() -> Option<String> {
    if let Ok(url) = std::env::var("CREWSAFE_TEST_POSTGRES") {
        return Some(url);
    }
    let host = std::env::var("PGHOST").ok()?;
    let mut parts = vec![format!("host={host}")];
    for (var, key) in [
        ("PGPORT", "port"),
        ("PGUSER", "user"),
        ("PGPASSWORD", "password"),
        ("PGDATABASE", "dbname"),
    ] {
        if let Ok(v) = std::env::var(var) {
            parts.push(format!("{key}={v}"));
        }
    }
    Some(parts.join(" "))
}

/// Whether a missing PostgreSQL must fail the tests.
pub fn required() -> bool {
    std::env::var("CREWSAFE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Runs a few statements on the admin database.
fn admin_execute(admin: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let out = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        out
    })
}

impl PgDatabase {
    /// A fresh empty database, or `None` (with a note on stderr) when no PostgreSQL is
    /// configured and none is required.
    pub fn create() -> Option<PgDatabase> {
        let Some(admin) = admin() else {
            assert!(
                !required(),
                "CREWSAFE_REQUIRE_POSTGRES=1 but no PostgreSQL is configured: run the tests \
                 under pg_virtualenv, or set CREWSAFE_TEST_POSTGRES"
            );
            eprintln!("no PostgreSQL configured (PGHOST or CREWSAFE_TEST_POSTGRES): skipped");
            return None;
        };
        let name = format!("crewsafe_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = admin_execute(&admin, &format!("CREATE DATABASE {name}")) {
            panic!("PostgreSQL is configured but unusable: {e}");
        }
        let url = admin
            .split_whitespace()
            .filter(|p| !p.starts_with("dbname="))
            .chain([format!("dbname={name}").as_str()])
            .collect::<Vec<_>>()
            .join(" ");
        Some(PgDatabase { admin, name, url })
    }

    /// The server's [`Database`] for it.
    pub fn database(&self) -> Database {
        Database::Postgres(self.url.clone())
    }

    /// Runs statements in this database.
    pub fn execute(&self, sql: &str) {
        admin_execute(&self.url, sql).expect("statements");
    }

    /// One row of text values (`NULL` as `None`) of a query in this database.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let driver = tokio::spawn(connection);
            let mut rows = Vec::new();
            for m in client.simple_query(sql).await.expect("query") {
                if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                    rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
                }
            }
            drop(client);
            let _ = driver.await;
            rows
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = admin_execute(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
