//! Devices and dispatchers on PostgreSQL: enrollment and bearer tokens (only their SHA-256 is
//! stored; see `storage/auth.rs`).

use deadpool_postgres::GenericClient;

use crate::error::Result;
use crate::storage::auth::{check_name, new_token, Enrollment};
use crate::storage::column::{now, sha256};

/// Enrolls (or re-enrolls) a device and returns its new bearer token.
pub(crate) async fn enroll_device(c: &impl GenericClient, device_id: &str) -> Result<String> {
    check_name("device id", device_id)?;
    let token = new_token()?;
    c.execute(
        "INSERT INTO devices (device_id, token_sha256, enrolled_at) VALUES ($1, $2, $3)
         ON CONFLICT (device_id) DO UPDATE
         SET token_sha256 = excluded.token_sha256, enrolled_at = excluded.enrolled_at",
        &[&device_id, &sha256(token.as_bytes()), &now()],
    )
    .await?;
    Ok(token)
}

/// Enrolls (or re-enrolls) a dispatcher by name and returns its new bearer token.
pub(crate) async fn enroll_dispatcher(c: &impl GenericClient, name: &str) -> Result<String> {
    check_name("dispatcher name", name)?;
    let token = new_token()?;
    c.execute(
        "INSERT INTO dispatchers (name, token_sha256, enrolled_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE
         SET token_sha256 = excluded.token_sha256, enrolled_at = excluded.enrolled_at",
        &[&name, &sha256(token.as_bytes()), &now()],
    )
    .await?;
    Ok(token)
}

/// Every enrolled device (`table` `devices`, key `device_id`) or dispatcher (`dispatchers`,
/// `name`), by key.
pub(crate) async fn list(c: &impl GenericClient, sql: &str) -> Result<Vec<Enrollment>> {
    let rows = c.query(sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|r| Enrollment {
            name: r.get(0),
            enrolled_at: r.get(1),
        })
        .collect())
}

/// Deletes an enrollment by the statement `sql` (`$1` the key); whether there was one.
pub(crate) async fn revoke(c: &impl GenericClient, sql: &str, key: &str) -> Result<bool> {
    Ok(c.execute(sql, &[&key]).await? > 0)
}

/// The device a bearer token belongs to.
pub(crate) async fn device_for_token(
    c: &impl GenericClient,
    token: &str,
) -> Result<Option<String>> {
    let stmt = c
        .prepare_cached("SELECT device_id FROM devices WHERE token_sha256 = $1")
        .await?;
    let row = c.query_opt(&stmt, &[&sha256(token.as_bytes())]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// The dispatcher a bearer token belongs to.
pub(crate) async fn dispatcher_for_token(
    c: &impl GenericClient,
    token: &str,
) -> Result<Option<String>> {
    let stmt = c
        .prepare_cached("SELECT name FROM dispatchers WHERE token_sha256 = $1")
        .await?;
    let row = c.query_opt(&stmt, &[&sha256(token.as_bytes())]).await?;
    Ok(row.map(|r| r.get(0)))
}
