//! The exported lone-worker check-in calls (see [`CheckIn`]).

use crate::error::CrewSafeError;
use crate::model::{CheckIn, CrewIdentity, LocationFix, RecordKind};

use super::CrewStore;

#[uniffi::export]
impl CrewStore {
    /// Starts a lone-worker check-in before the crew goes in somewhere (a flat, a stairwell):
    /// the server is told to expect a check-in within `due_in_minutes` (1 to 1440) and raises
    /// an alarm for the dispatcher by itself if the closing record has not arrived by then,
    /// with the crew's last known position, even if this phone is offline or broken. Stored
    /// and queued in the SOS lane before this returns, even offline. `address` and `note` are
    /// sealed like any content.
    pub fn start_check_in(
        &self,
        crew: CrewIdentity,
        due_in_minutes: u32,
        address: Option<String>,
        note: Option<String>,
        location: Option<LocationFix>,
    ) -> Result<CheckIn, CrewSafeError> {
        self.queue(
            RecordKind::CheckInStart,
            |c: &CheckIn| &c.id,
            |db| db.start_check_in(crew, due_in_minutes, address, note, location),
        )
    }

    /// Closes an open check-in: the crew is safe. If it reaches the server late (the phone was
    /// offline past the due time), the alarm the server raised meanwhile is resolved and marked
    /// as closed late. `InvalidState` if the check-in is already closed.
    pub fn check_in(
        &self,
        check_in_id: String,
        location: Option<LocationFix>,
    ) -> Result<CheckIn, CrewSafeError> {
        self.queue(
            RecordKind::CheckInDone,
            |c: &CheckIn| c.done_id.as_deref().unwrap_or(&c.id),
            |db| db.close_check_in(&check_in_id, location),
        )
    }

    /// Gives an open check-in `extend_by_minutes` more (1 to 1440; the server adds them to its
    /// own due time). `InvalidState` if the check-in is already closed.
    pub fn extend_check_in(
        &self,
        check_in_id: String,
        extend_by_minutes: u32,
    ) -> Result<CheckIn, CrewSafeError> {
        self.queue(
            RecordKind::CheckInExtend,
            |c: &CheckIn| c.extensions.last().map_or(&c.id, |e| &e.id),
            |db| db.extend_check_in(&check_in_id, extend_by_minutes),
        )
    }

    /// A check-in with its extensions, its closing and their delivery states.
    pub fn get_check_in(&self, check_in_id: String) -> Result<CheckIn, CrewSafeError> {
        self.with(|db| db.get_check_in(&check_in_id))
    }
}
