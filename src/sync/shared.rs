//! The state the exported store, its sync engine and its background worker share: the open
//! database behind one mutex, the sync configuration, the one-sync-at-a-time lock, the
//! listeners and the switches of the worker and the status watch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::setup::SyncSetup;
use super::signal::Signal;
use super::watch_signal::Watch;
use crate::db::Db;
use crate::error::StoreError;
use crate::observer::Observers;

/// State shared by the store object, its sync engine and its background worker.
pub(crate) struct Shared {
    db: Mutex<Option<Db>>,
    sync: Mutex<Option<Arc<SyncSetup>>>,
    /// Held for the whole of a sync: one at a time.
    pub(crate) sync_lock: Mutex<()>,
    pub(crate) observers: Arc<Observers>,
    pub(crate) signal: Arc<Signal>,
    /// The switches of the dispatch status watch.
    pub(crate) watch: Arc<Watch>,
    /// Set when the store starts closing: a running sync ends after its current batch.
    closing: AtomicBool,
}

impl Shared {
    /// Shares an open database, with no sync configured yet.
    pub(crate) fn new(db: Db) -> Shared {
        Shared {
            db: Mutex::new(Some(db)),
            sync: Mutex::new(None),
            sync_lock: Mutex::new(()),
            observers: Arc::new(Observers::default()),
            signal: Arc::new(Signal::default()),
            watch: Arc::new(Watch::default()),
            closing: AtomicBool::new(false),
        }
    }

    /// The store is closing: a running sync stops at its next batch (so that `close()` never
    /// waits on a sync that callbacks keep feeding).
    pub(crate) fn begin_close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Whether the store is closing.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// The database slot, locked (`None` once closed).
    pub(crate) fn lock_db(&self) -> MutexGuard<'_, Option<Db>> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls
        // back on drop), so a poisoned lock is safe to keep using.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the open database under its lock.
    pub(crate) fn db<T>(
        &self,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock_db();
        let db = guard.as_mut().ok_or(StoreError::Closed)?;
        f(db)
    }

    /// The current sync configuration, if any.
    pub(crate) fn sync_setup(&self) -> Option<Arc<SyncSetup>> {
        self.sync.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the sync configuration.
    pub(crate) fn set_sync_setup(&self, setup: SyncSetup) {
        *self.sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(setup));
    }
}
