//! The server clock and time arithmetic, and how values that have no SQL type of their own
//! sit in SQLite columns: times as RFC 3339 text in UTC (microseconds, `Z`), hashes as
//! SHA-256 blobs (PostgreSQL has `timestamptz` and `bytea`). The one exception is SQLite's
//! `alarm_events.at_ms`, Unix milliseconds, a time only compared in SQL and never shown
//! (RFC 3339 text of varying precision does not sort). Vocabulary words (kind, lane, dispatch
//! status) need nothing here: the protocol enums bind and read themselves.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::{Result, ServerError};

/// The server clock, truncated to microseconds (the precision stored and answered).
pub(crate) fn now() -> DateTime<Utc> {
    let micros = Utc::now().timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or_else(Utc::now)
}

/// A time as its column holds it.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A time read back from its column.
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ServerError::Corrupt("stored time is not RFC 3339".into()))
}

/// An optional time read back from its column.
pub(crate) fn parse_opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

/// A time as Unix milliseconds (`alarm_events.at_ms`).
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` plus a standard duration (saturating at the end of time chrono knows).
pub(crate) fn after(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t` minus a standard duration (saturating at the start of time chrono knows).
pub(crate) fn before(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// SHA-256 of `bytes`, as the hash columns hold it.
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microseconds() {
        let t = now();
        let text = fmt_time(t);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_time(&text).unwrap(), t);
        assert!(parse_time("yesterday").is_err());
    }
}
