//! Callbacks that call back: a sync runs its listeners and token provider on its own thread,
//! so `sync_now` from inside one of them would wait for itself. The thread that runs a sync is
//! marked, and a sync started on a marked thread is refused at once.

use crate::error::CrewSafeError;

thread_local! {
    /// Whether this thread is running a sync (and so may be inside one of its callbacks).
    static SYNCING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as syncing for as long as it lives.
pub(super) struct SyncingHere;

impl SyncingHere {
    pub(super) fn enter() -> SyncingHere {
        SYNCING.with(|s| s.set(true));
        SyncingHere
    }
}

impl Drop for SyncingHere {
    fn drop(&mut self) {
        SYNCING.with(|s| s.set(false));
    }
}

/// Refuses a sync started from inside a callback of a sync on the same thread (it would wait
/// for itself).
pub(crate) fn refuse_reentry() -> Result<(), CrewSafeError> {
    if SYNCING.with(|s| s.get()) {
        return Err(CrewSafeError::InvalidState {
            reason: "sync_now was called from a callback of a running sync; that sync goes on \
                     and the worker picks up what it does not deliver"
                .into(),
        });
    }
    Ok(())
}
