//! The switches between the store and its background worker: online or not, new work, stop.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Default)]
struct State {
    online: bool,
    stop: bool,
    kicked: bool,
    /// Threads asleep in `wait` (the worker; briefly two while one replaces another).
    waiting: u32,
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

    /// Wakes the worker because there may be new work. Only a sleeping worker that can act
    /// is woken: offline, the next `set_online(true)` wakes it, and a worker that is not
    /// asleep sees `kicked` before it next sleeps. (Waking costs the caller a system call and
    /// the worker a thread switch on every save.)
    pub fn kick(&self) {
        let mut s = self.lock();
        s.kicked = true;
        if s.waiting > 0 && s.online {
            self.cv.notify_all();
        }
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
            s.waiting += 1;
            s = self
                .cv
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            s.waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{mpsc, Arc};

    /// Starts a thread that waits once (no deadline) and reports when it returns.
    fn waiter(signal: &Arc<Signal>) -> mpsc::Receiver<bool> {
        let (tx, rx) = mpsc::channel();
        let s = signal.clone();
        std::thread::spawn(move || tx.send(s.wait(None)).unwrap());
        // Until it sleeps (kicks before that are seen without a wake-up anyway).
        let start = std::time::Instant::now();
        while signal.lock().waiting == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the waiter never slept"
            );
            std::thread::yield_now();
        }
        rx
    }

    #[test]
    fn a_kick_wakes_a_sleeping_worker_only_when_online() {
        let signal = Arc::new(Signal::default());
        signal.set_online(true);
        assert!(signal.wait(None), "coming online counts as a kick");
        let woken = waiter(&signal);
        signal.kick();
        assert_eq!(woken.recv_timeout(Duration::from_secs(10)), Ok(true));

        // Offline, a kick leaves it asleep; coming online wakes it for that kick.
        signal.set_online(false);
        let woken = waiter(&signal);
        signal.kick();
        assert!(woken.recv_timeout(Duration::from_millis(200)).is_err());
        signal.set_online(true);
        assert_eq!(woken.recv_timeout(Duration::from_secs(10)), Ok(true));
    }

    #[test]
    fn a_kick_while_the_worker_is_busy_is_seen_at_its_next_wait() {
        let signal = Signal::default();
        signal.set_online(true);
        assert!(
            signal.wait(Some(SystemTime::now())),
            "set_online counts as a kick"
        );
        signal.kick();
        // No thread was asleep: the kick is kept, and the next wait returns at once.
        assert!(signal.wait(None));
        signal.stop();
        assert!(!signal.wait(None));
    }
}
