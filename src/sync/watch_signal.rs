//! The switches between the store and its status watcher: online or not, look again, stop,
//! and the outcome of the request the watcher waits for (see [`super::watch`]).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    online: bool,
    stop: bool,
    /// Something may have changed (a new open alarm, a new configuration, online again).
    kicked: bool,
    /// Number of the request the watcher waits for; bumped by each new request.
    request: u64,
    /// Outcome of request `request`, once it ended.
    outcome: Option<Outcome>,
}

/// How a watch request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Answered: with news (applied) or without.
    Answered { news: bool },
    /// The token was refused.
    Unauthorized,
    /// Anything else: try again later.
    Failed,
}

/// The switches between the store and its watcher.
#[derive(Default)]
pub struct Watch {
    state: Mutex<State>,
    cv: Condvar,
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host reports connectivity.
    pub fn set_online(&self, online: bool) {
        let mut s = self.lock();
        s.kicked |= online && !s.online;
        s.online = online;
        self.cv.notify_all();
    }

    /// There may be a new open alarm, or a new configuration: look again (at once, even if a
    /// request is waiting on the server).
    pub fn kick(&self) {
        self.lock().kicked = true;
        self.cv.notify_all();
    }

    /// Asks the watcher to stop (it does not wait for a request in flight).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    /// Clears a previous stop request, before a new watcher starts.
    pub fn resume(&self) {
        self.lock().stop = false;
    }

    /// Waits until the watcher may ask: online, and either kicked or `until` passed (with no
    /// `until`, only a kick will do). False when it must stop.
    pub(super) fn wait_turn(&self, until: Option<Instant>) -> bool {
        let mut s = self.lock();
        loop {
            if s.stop {
                return false;
            }
            let due = until.is_some_and(|t| Instant::now() >= t);
            if s.online && (s.kicked || due) {
                s.kicked = false;
                return true;
            }
            let wait = match (s.online, until) {
                (true, Some(t)) => t
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(5)),
                _ => Duration::from_secs(3600),
            };
            s = self
                .cv
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Starts waiting for a new request; returns its number.
    pub(super) fn begin(&self) -> u64 {
        let mut s = self.lock();
        s.request += 1;
        s.outcome = None;
        s.request
    }

    /// A request ended.
    pub(super) fn end(&self, request: u64, outcome: Outcome) {
        let mut s = self.lock();
        if s.request == request {
            s.outcome = Some(outcome);
            self.cv.notify_all();
        }
    }

    /// Waits for request `request` to end. `None` when the watcher must look again first
    /// (kicked while online) or stop; the request then goes on alone.
    pub(super) fn wait_end(&self, request: u64) -> Option<Outcome> {
        let mut s = self.lock();
        loop {
            if s.stop || (s.kicked && s.online) {
                return None;
            }
            if s.request == request {
                if let Some(o) = s.outcome.take() {
                    return Some(o);
                }
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}
