//! The background worker: while the host says the network is up and work is pending, it
//! drains the queue, sleeping until the next retry time between failed attempts. New
//! records and a returning network wake it; `shutdown()` stops it and waits for it. It never
//! gives up on a server that refuses requests: it waits for the lane's backoff and tries again.

use std::sync::{Arc, Condvar, Mutex, TryLockError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::{sync_locked, SyncOutcome};
use crate::error::CrewSafeError;
use crate::store::Shared;

#[derive(Default)]
struct State {
    online: bool,
    stop: bool,
    kicked: bool,
}

/// Shared switches between the store and its worker thread.
#[derive(Default)]
pub struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

impl Signal {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host reports connectivity. Returns true when this is a change from offline to
    /// online (platforms repeat "online" often; only the change should reset retry delays).
    pub fn set_online(&self, online: bool) -> bool {
        let mut s = self.lock();
        let came_online = online && !s.online;
        s.online = online;
        s.kicked |= online;
        self.cv.notify_all();
        came_online
    }

    /// Wakes the worker because there may be new work.
    pub fn kick(&self) {
        self.lock().kicked = true;
        self.cv.notify_all();
    }

    /// Asks the worker to stop.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    /// Whether the worker was asked to stop.
    fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Clears a previous stop request, before a new worker starts.
    pub fn resume(&self) {
        self.lock().stop = false;
    }

    /// Waits until there is a reason to sync (returns true) or the worker must stop (false).
    fn wait(&self, deadline: Option<SystemTime>) -> bool {
        let mut s = self.lock();
        loop {
            if s.stop {
                return false;
            }
            let due = deadline.is_some_and(|d| SystemTime::now() >= d);
            if s.online && (s.kicked || due) {
                s.kicked = false;
                return true;
            }
            let wait = match (s.online, deadline) {
                (true, Some(d)) => d
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(10)),
                _ => Duration::from_secs(3600),
            };
            s = self
                .cv
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

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
        let result = sync_locked(&shared);
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
                        .map(super::ms_to_time)
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
