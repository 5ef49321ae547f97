//! The sealed contents of a lone-worker check-in's records (see [`super::check_ins`]).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::model::{CrewIdentity, LocationFix};

/// Sealed content of a check-in's start.
#[derive(Serialize, Deserialize)]
pub struct CheckInStartPayload {
    /// Who is going in.
    pub crew: CrewIdentity,
    /// When (device clock).
    pub started_at: SystemTime,
    /// Minutes until it is due.
    pub due_in_minutes: u32,
    /// Where the crew is going.
    pub address: Option<String>,
    /// Short note.
    pub note: Option<String>,
    /// Where the crew was, if known.
    pub location: Option<LocationFix>,
}

/// Sealed content of a check-in's extension.
#[derive(Serialize, Deserialize)]
pub struct CheckInExtendPayload {
    /// Minutes added.
    pub extend_by_minutes: u32,
    /// When (device clock).
    pub extended_at: SystemTime,
}

/// Sealed content of a check-in's closing.
#[derive(Serialize, Deserialize)]
pub struct CheckInDonePayload {
    /// When the crew checked in (device clock).
    pub done_at: SystemTime,
    /// Where the crew was, if known.
    pub location: Option<LocationFix>,
}
