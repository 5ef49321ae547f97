//! Lone-worker check-ins as the app sees them.

use std::time::{Duration, SystemTime};

use super::{CrewIdentity, LocationFix, SyncState};

/// Where a check-in stands on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CheckInState {
    /// Running: the server raises an alarm if it is not closed in time.
    Open,
    /// Closed by the crew (`checkIn`).
    Done,
}

/// More time asked for a check-in.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CheckInExtension {
    /// Client-generated UUID of this record.
    pub id: String,
    /// Minutes added.
    pub extend_by_minutes: u32,
    /// When (device clock).
    pub extended_at: SystemTime,
    /// Delivery state.
    pub sync_state: SyncState,
}

/// A lone-worker check-in: "expect a check-in from this crew within `due_in_minutes`". If the
/// closing record has not reached the server by then, the server raises an alarm for the
/// dispatcher by itself, with the crew's last known position, even if this phone is offline
/// or broken. The server times it from when it receives the start (its own clock); `due_at`
/// here is the phone's estimate.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CheckIn {
    /// Client-generated UUID of the start record.
    pub id: String,
    /// Who went in.
    pub crew: CrewIdentity,
    /// When it started (device clock).
    pub started_at: SystemTime,
    /// Minutes asked for at the start plus every extension.
    pub due_in_minutes: u32,
    /// `started_at` plus `due_in_minutes` (device clock).
    pub due_at: SystemTime,
    /// Where the crew went, as text.
    pub address: Option<String>,
    /// Short note.
    pub note: Option<String>,
    /// Where the crew was at the start.
    pub location: Option<LocationFix>,
    /// Open or done.
    pub state: CheckInState,
    /// When the crew checked in (device clock), once done.
    pub done_at: Option<SystemTime>,
    /// Client-generated UUID of the closing record, once done.
    pub done_id: Option<String>,
    /// Delivery state of the start record.
    pub sync_state: SyncState,
    /// Delivery state of the closing record, once done.
    pub done_sync_state: Option<SyncState>,
    /// Extensions, oldest first.
    pub extensions: Vec<CheckInExtension>,
}

impl CheckIn {
    /// Recomputes `due_at` from `started_at` and `due_in_minutes`.
    pub(crate) fn set_due(&mut self) {
        self.due_at = self.started_at + Duration::from_secs(u64::from(self.due_in_minutes) * 60);
    }
}
