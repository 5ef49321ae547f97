//! The switches between the store and its background worker: online or not, new work, stop.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};

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

    /// Whether the host last said the network is up.
    pub fn is_online(&self) -> bool {
        self.lock().online
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
    pub(crate) fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Clears a previous stop request, before a new worker starts.
    pub fn resume(&self) {
        self.lock().stop = false;
    }

    /// Waits until there is a reason to sync (returns true) or the worker must stop (false).
    pub(super) fn wait(&self, deadline: Option<SystemTime>) -> bool {
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
