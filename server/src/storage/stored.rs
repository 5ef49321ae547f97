//! What [`crate::ServerStore`] reads back, the same from either backend.

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, Kind, Lane};

/// One stored record, as [`crate::ServerStore::records`] returns it.
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

/// Full dispatch state of one SOS, as [`crate::ServerStore::sos_state`] returns it.
pub type StoredSosState = DispatchSos;

/// Which records to read, always in receive order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    /// Every record.
    All,
    /// The records of one device.
    Device(&'a str),
    /// One record of one device.
    One(&'a str, &'a str),
}

/// The content of a stored record's canonical JSON.
pub(crate) fn content_of(json: &str) -> crate::error::Result<serde_json::Value> {
    let wire: crewsafe_protocol::WireRecord = serde_json::from_str(json)
        .map_err(|_| crate::error::ServerError::Corrupt("stored record unreadable".into()))?;
    Ok(wire.content)
}
