//! Devices and dispatchers on SQLite: enrollment and bearer tokens (only their SHA-256 is
//! stored; see `storage/auth.rs`).

use rusqlite::{params, Connection, OptionalExtension as _};

use crate::error::Result;
use crate::storage::auth::{check_name, new_token, Enrollment};
use crate::storage::column::{fmt_time, now, parse_time, sha256};

/// Every enrolled device, by id.
pub(crate) fn devices(conn: &Connection) -> Result<Vec<Enrollment>> {
    list(
        conn,
        "SELECT device_id, enrolled_at FROM devices ORDER BY device_id",
    )
}

/// Every enrolled dispatcher, by name.
pub(crate) fn dispatchers(conn: &Connection) -> Result<Vec<Enrollment>> {
    list(
        conn,
        "SELECT name, enrolled_at FROM dispatchers ORDER BY name",
    )
}

fn list(conn: &Connection, sql: &str) -> Result<Vec<Enrollment>> {
    let rows: Vec<(String, String)> = conn
        .prepare(sql)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(name, at)| {
            Ok(Enrollment {
                name,
                enrolled_at: parse_time(&at)?,
            })
        })
        .collect()
}

/// Deletes a device's enrollment (its token stops working at once); whether it was enrolled.
pub(crate) fn revoke_device(conn: &Connection, device_id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM devices WHERE device_id = ?1", [device_id])? > 0)
}

/// Deletes a dispatcher's enrollment; whether it was enrolled.
pub(crate) fn revoke_dispatcher(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM dispatchers WHERE name = ?1", [name])? > 0)
}

/// Enrolls (or re-enrolls) a device and returns its new bearer token. Re-enrolling replaces
/// the previous token.
pub(crate) fn enroll_device(conn: &Connection, device_id: &str) -> Result<String> {
    check_name("device id", device_id)?;
    enroll(conn, "devices", "device_id", device_id)
}

/// Enrolls (or re-enrolls) a dispatcher by name and returns its new bearer token.
pub(crate) fn enroll_dispatcher(conn: &Connection, name: &str) -> Result<String> {
    check_name("dispatcher name", name)?;
    enroll(conn, "dispatchers", "name", name)
}

/// The device a bearer token belongs to.
pub(crate) fn device_for_token(conn: &Connection, token: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT device_id FROM devices WHERE token_sha256 = ?1")?
        .query_row([sha256(token.as_bytes())], |r| r.get(0))
        .optional()?)
}

/// The dispatcher a bearer token belongs to.
pub(crate) fn dispatcher_for_token(conn: &Connection, token: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT name FROM dispatchers WHERE token_sha256 = ?1")?
        .query_row([sha256(token.as_bytes())], |r| r.get(0))
        .optional()?)
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
