//! The hub: after every commit that changes what an alarm's dispatcher view shows, storage
//! publishes one [`AlarmEvent`] per change here. Status watches of the alarm's device and the
//! dispatcher event streams subscribe; a subscriber that falls behind (lags) re-reads from the
//! database, so the log in `alarm_events`, not this channel, is what never loses an event.

use tokio::sync::broadcast;

/// How many events the channel holds for a slow subscriber before it lags.
const CAPACITY: usize = 1024;

/// One committed change of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlarmEvent {
    /// Its row in `alarm_events`.
    pub(crate) event_id: i64,
    /// The device whose alarm changed.
    pub(crate) device_id: String,
}

/// The publishing side, shared by storage and the subscribers.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    tx: broadcast::Sender<AlarmEvent>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Subscribes: every event published from now on (subscribe before reading the state the
    /// events change, and no change is missed).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<AlarmEvent> {
        self.tx.subscribe()
    }

    /// Publishes committed events, in order.
    pub(crate) fn publish(&self, events: impl IntoIterator<Item = AlarmEvent>) {
        for e in events {
            // No subscriber is not an error.
            let _ = self.tx.send(e);
        }
    }
}
