//! Callbacks into the host app: listener traits the app implements, the token provider, and
//! subscription handles. Listeners are always called after the database lock is released; a
//! listener that throws is ignored and never breaks a save or a sync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::CrewSafeError;
use crate::model::Lane;
use crate::model::RecordChange;

/// An error raised by host code (a listener or the token provider).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum HostError {
    /// The host could not do what was asked; `reason` is shown in logs, never sent anywhere.
    #[error("host callback failed: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HostError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        HostError::Failed { reason: e.reason }
    }
}

/// Supplies the device token for each sync. The token is kept in memory only for that sync
/// and never written to the database.
#[uniffi::export(with_foreign)]
pub trait TokenProvider: Send + Sync {
    /// The current device token.
    fn token(&self) -> Result<String, HostError>;
    /// A fresh token, after the server refused the current one (called at most once per sync).
    fn refresh_token(&self) -> Result<String, HostError>;
}

/// Hears every change of a record's delivery state (queued, sending, delivered, wedged) and
/// of an SOS's dispatch status.
#[uniffi::export(with_foreign)]
pub trait RecordListener: Send + Sync {
    /// Called once per change, off the database lock, possibly from a background thread.
    fn on_record_changed(&self, change: RecordChange) -> Result<(), HostError>;
}

/// What a sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// A sync began.
    Started,
    /// A batch was answered.
    Uploaded,
    /// The sync ended (see the report, or `error`).
    Finished,
}

/// Progress of a sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// Phase.
    pub phase: SyncPhase,
    /// The lane of the last batch, if any.
    pub lane: Option<Lane>,
    /// Records sent so far in this sync.
    pub sent: u32,
    /// Records delivered so far in this sync (accepted or duplicate).
    pub delivered: u32,
    /// Records wedged so far in this sync.
    pub wedged: u32,
    /// At `Finished`: the error the sync ended with (the same `sync_now` returns), if any;
    /// records it could not deliver stay queued.
    pub error: Option<CrewSafeError>,
    /// Attachment bytes the server confirmed so far in this sync.
    pub uploaded_bytes: u64,
}

/// Hears sync progress.
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    /// Called at the start, after each answered batch and at the end of every sync.
    fn on_sync_progress(&self, progress: SyncProgress) -> Result<(), HostError>;
}

enum Listener {
    Record(Arc<dyn RecordListener>),
    Sync(Arc<dyn SyncListener>),
}

/// The registered listeners.
#[derive(Default)]
pub struct Observers {
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_id: AtomicU64,
}

impl Observers {
    fn add(self: &Arc<Self>, l: Listener) -> Arc<Subscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, l));
        Arc::new(Subscription {
            observers: Arc::downgrade(self),
            id,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Listener)>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a record listener.
    pub fn add_record(self: &Arc<Self>, l: Arc<dyn RecordListener>) -> Arc<Subscription> {
        self.add(Listener::Record(l))
    }

    /// Registers a sync listener.
    pub fn add_sync(self: &Arc<Self>, l: Arc<dyn SyncListener>) -> Arc<Subscription> {
        self.add(Listener::Sync(l))
    }

    /// Tells record listeners about changes. Call without holding the database lock.
    pub fn records(&self, changes: &[RecordChange]) {
        if changes.is_empty() {
            return;
        }
        let targets: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(_, l)| match l {
                Listener::Record(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        for t in targets {
            for c in changes {
                guarded("record", || t.on_record_changed(c.clone()));
            }
        }
    }

    /// Tells sync listeners about progress. Call without holding the database lock.
    pub fn sync(&self, p: &SyncProgress) {
        let targets: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(_, l)| match l {
                Listener::Sync(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for t in targets {
            guarded("sync", || t.on_sync_progress(p.clone()));
        }
    }
}

/// Calls a listener; an error or a panic in it is logged and otherwise ignored.
fn guarded(what: &str, call: impl FnOnce() -> Result<(), HostError>) {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("{what} listener failed: {e}"),
        Err(_) => log::warn!("{what} listener panicked"),
    }
}

/// A listener registration. Callbacks continue until `cancel()` is called: dropping or
/// closing this handle does not stop them.
#[derive(uniffi::Object)]
pub struct Subscription {
    observers: Weak<Observers>,
    id: u64,
}

#[uniffi::export]
impl Subscription {
    /// Stops the callbacks of this registration. Calling it twice is harmless.
    pub fn cancel(&self) {
        if let Some(o) = self.observers.upgrade() {
            o.lock().retain(|(id, _)| *id != self.id);
        }
    }
}
