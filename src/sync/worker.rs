//! The background worker: while the host says the network is up and work is pending, it
//! drains the queue, sleeping until the next retry time between failed attempts. New
//! records and a returning network wake it; `shutdown()` stops it and waits for it. It never
//! gives up on a server that refuses requests: it waits for the lane's backoff and tries again.

use std::sync::{Arc, TryLockError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::engine::sync_locked;
use super::report::SyncOutcome;
use super::shared::Shared;
use super::signal::Signal;
use crate::error::CrewSafeError;

/// Starts the worker thread. It holds only a weak reference to the store's shared state, so
/// dropping the store ends it.
pub(crate) fn spawn(shared: Weak<Shared>, signal: Arc<Signal>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("crewsafe-sync".into())
        .spawn(move || run(shared, signal))
}

fn run(shared: Weak<Shared>, signal: Arc<Signal>) {
    let mut deadline = None;
    while signal.wait(deadline) {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Waits for a manual sync to end, but not past a stop request: `close()` called from a
        // callback of that manual sync waits for this thread.
        let one = loop {
            match shared.sync_lock.try_lock() {
                Ok(g) => break g,
                Err(TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(TryLockError::WouldBlock) if signal.stopping() => return,
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let result = sync_locked(&shared, true);
        drop(one);
        deadline = match result {
            Ok(report) => match report.outcome {
                SyncOutcome::Complete => None,
                _ => Some(
                    report
                        .next_attempt_at
                        .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(1)),
                ),
            },
            // The host must act (new token, configuration); wait to be woken.
            Err(
                CrewSafeError::Unauthorized { .. }
                | CrewSafeError::NotConfigured { .. }
                | CrewSafeError::HostFailed { .. }
                | CrewSafeError::InvalidDeviceToken { .. },
            ) => None,
            // The server side may be fixed meanwhile: try again when the lane's backoff ends.
            Err(CrewSafeError::ServerRejectedRequest { status }) => {
                log::info!("background sync: the server refused the request ({status})");
                Some(
                    shared
                        .db(|db| db.next_attempt_at())
                        .ok()
                        .flatten()
                        .map(super::clock::ms_to_time)
                        .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(30)),
                )
            }
            Err(e) => {
                log::info!("background sync failed: {e}");
                Some(SystemTime::now() + Duration::from_secs(30))
            }
        };
    }
}
