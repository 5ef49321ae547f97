//! Devices and dispatchers: enrollment and bearer tokens. A token is 32 random bytes,
//! base64url without padding; only its SHA-256 is stored, so a copy of the database does not
//! let anyone upload or dispatch.

use base64::Engine as _;
use rusqlite::{params, Connection, OptionalExtension as _};

use super::column::{fmt_time, now, sha256};
use crate::error::{Result, ServerError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
