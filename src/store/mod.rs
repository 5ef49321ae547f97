//! The exported store object. Every method is a thin delegation to [`Db`] behind one mutex,
//! with the internal error mapped to [`CrewSafeError`]. Many threads may share one store;
//! their writes are serialized.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::crypto::{random_key_bytes, DataKey};
use crate::db::Db;
use crate::error::{CrewSafeError, StoreError};
use crate::model::RecordChange;
use crate::model::{
    CancelReason, CrewIdentity, DraftSaved, IncidentDraft, IncidentFields, IncidentReport,
    LocationFix, PendingCounts, QueueEntry, RecordKind, RecordPage, RecordPageRequest, Sos,
    SosCancellation, SosLocationUpdate, SyncState,
};
use crate::observer::{RecordListener, Subscription, SyncListener, TokenProvider};
use crate::sync::worker::spawn;
use crate::sync::{self, watch, Shared, SyncConfig, SyncReport, SyncSetup};

mod attachments;
mod check_ins;
mod panic_button;

pub use attachments::{AttachmentReader, MAX_ATTACHMENT_READ};
pub use panic_button::raise_sos_now;

/// The phrase `destroy` requires, so that it is never called by accident.
pub const DESTROY_CONFIRMATION: &str = "DESTROY";

/// Returns 32 fresh random bytes to use as a store's data key. Wrap them with the platform
/// keystore (Android Keystore, iOS Keychain) before saving them; never store them in clear.
#[uniffi::export]
pub fn generate_data_key() -> Vec<u8> {
    match random_key_bytes() {
        Ok(k) => k.to_vec(),
        // The OS random source failing is unrecoverable and must not yield a weak key.
        Err(e) => panic!("{e}"),
    }
}

/// An encrypted, offline store of SOS alarms and incident reports on this phone, with its
/// sync to the national server. Ids handed in may be in any UUID form (upper or lower case,
/// with or without hyphens, braces or `urn:uuid:`); ids handed out are lower-case and
/// hyphenated. Any method may be called from the store's own callbacks.
#[derive(uniffi::Object)]
pub struct CrewStore {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

type R<T> = Result<T, CrewSafeError>;

/// `CrewStore::queue` on a store's shared state (also what the panic button uses).
pub(crate) fn queue_on<T>(
    shared: &Shared,
    kind: RecordKind,
    id_of: impl Fn(&T) -> &str,
    f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
) -> R<T> {
    let (value, sequence) = shared
        .db(|db| {
            let v = f(db)?;
            Ok((v, db.next_change()))
        })
        .map_err(CrewSafeError::from)?;
    shared.observers.records(&[RecordChange {
        sequence,
        id: id_of(&value).into(),
        kind,
        state: SyncState::Queued,
        dispatch_status: None,
    }]);
    shared.signal.kick();
    Ok(value)
}

impl CrewStore {
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Db) -> Result<T, StoreError>) -> R<T> {
        self.shared.db(f).map_err(CrewSafeError::from)
    }

    /// Runs a write that queues a record and numbers its change under the same lock, so the
    /// number is in commit order even when a sync on another thread picks the record up.
    pub(crate) fn queue<T>(
        &self,
        kind: RecordKind,
        id_of: impl Fn(&T) -> &str,
        f: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> R<T> {
        queue_on(&self.shared, kind, id_of, f)
    }

    fn stop_worker(&self) {
        // The watcher never waits on the network: stopping it is quick.
        self.shared.watch.stop();
        if let Some(h) = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        self.shared.signal.stop();
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() == std::thread::current().id() {
                // Called from one of the store's callbacks on the worker's own thread: it
                // cannot wait for itself; it ends as soon as that callback returns.
                return;
            }
            let _ = h.join();
        }
    }
}

impl Drop for CrewStore {
    fn drop(&mut self) {
        // The worker and the watcher hold only weak references; stopping them is enough.
        self.shared.signal.stop();
        self.shared.watch.stop();
    }
}

#[uniffi::export]
impl CrewStore {
    /// Opens the store at `path`, creating it if missing, with the host-held 32-byte `key`.
    /// Fails with `WrongKey` (file untouched) if the key does not match, `SchemaTooNew` if a
    /// newer app wrote the file, `InvalidKey` if the key is not 32 bytes.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> R<Arc<Self>> {
        let mut key = zeroize::Zeroizing::new(key);
        let data_key = DataKey::from_bytes(&key).map_err(StoreError::from)?;
        zeroize::Zeroize::zeroize(&mut *key);
        let db = Db::open(Path::new(&path), data_key)?;
        Ok(Arc::new(CrewStore {
            shared: Arc::new(Shared::new(db)),
            worker: Mutex::new(None),
            watcher: Mutex::new(None),
        }))
    }

    /// Raises an SOS: stored and queued (first in line) before this returns, even offline.
    pub fn raise_sos(
        &self,
        crew: CrewIdentity,
        location: Option<LocationFix>,
        note: Option<String>,
    ) -> R<Sos> {
        self.queue(
            RecordKind::Sos,
            |s: &Sos| &s.id,
            |db| db.raise_sos(crew, location, note),
        )
    }

    /// Sets the crew that `raise_sos_quick` raises alarms for (kept in memory while the
    /// store is open), and arms the panic button: `raise_sos_now` raises on the store that
    /// was given a crew last. Call it when the shift starts.
    pub fn set_crew(&self, crew: CrewIdentity) -> R<()> {
        crew.validate().map_err(CrewSafeError::from)?;
        self.with(|db| {
            db.quick_crew = Some(crew);
            Ok(())
        })?;
        panic_button::arm(&self.shared);
        Ok(())
    }

    /// The SOS button's fast path: raises an SOS for the crew given to `set_crew`, with a fix
    /// passed as plain numbers (no records cross the FFI boundary, which costs a Kotlin or
    /// Swift caller several allocations per argument), and returns its id. A NaN `latitude`
    /// means no fix; `fixed_at_ms` is milliseconds since the Unix epoch; the provider is
    /// `Fused`. Stored and queued, first in line, before this returns, like `raise_sos`.
    /// `InvalidState` before `set_crew`.
    pub fn raise_sos_quick(
        &self,
        latitude: f64,
        longitude: f64,
        accuracy_m: f64,
        fixed_at_ms: i64,
    ) -> R<String> {
        let fix = panic_button::Fix {
            latitude,
            longitude,
            accuracy_m,
            fixed_at_ms,
        };
        Ok(panic_button::raise(&self.shared, fix)?.id)
    }

    /// Appends a newer position to an active SOS.
    pub fn add_sos_location(&self, sos_id: String, location: LocationFix) -> R<SosLocationUpdate> {
        self.queue(
            RecordKind::SosLocation,
            |u: &SosLocationUpdate| &u.id,
            |db| db.add_sos_location(&sos_id, location),
        )
    }

    /// Cancels an active SOS with a reason; the alarm itself is kept and still delivered.
    pub fn cancel_sos(
        &self,
        sos_id: String,
        reason: CancelReason,
        note: Option<String>,
    ) -> R<SosCancellation> {
        self.queue(
            RecordKind::SosCancel,
            |c: &SosCancellation| &c.id,
            |db| db.cancel_sos(&sos_id, reason, note),
        )
    }

    /// An SOS with its follow-ups and current states.
    pub fn get_sos(&self, sos_id: String) -> R<Sos> {
        self.with(|db| db.get_sos(&sos_id))
    }

    /// Starts an incident report draft.
    pub fn create_draft(&self, crew: CrewIdentity, fields: IncidentFields) -> R<IncidentDraft> {
        self.with(|db| db.create_draft(crew, fields))
    }

    /// Saves new content for a draft. `expected_revision` is the revision the caller last saw;
    /// if someone saved meanwhile, fails with `Conflict { current_revision }`.
    pub fn update_draft(
        &self,
        draft_id: String,
        expected_revision: u64,
        fields: IncidentFields,
    ) -> R<DraftSaved> {
        self.with(|db| db.update_draft(&draft_id, expected_revision, fields))
    }

    /// A draft by id.
    pub fn get_draft(&self, draft_id: String) -> R<IncidentDraft> {
        self.with(|db| db.get_draft(&draft_id))
    }

    /// All drafts, oldest first.
    pub fn list_drafts(&self) -> R<Vec<IncidentDraft>> {
        self.with(|db| db.list_drafts())
    }

    /// Deletes a draft for good.
    pub fn delete_draft(&self, draft_id: String) -> R<()> {
        self.with(|db| db.delete_draft(&draft_id))
    }

    /// Checks the required fields and turns the draft into an immutable report queued for
    /// the server. `InvalidInput { field, reason }` names the first missing or bad field.
    pub fn finalize_draft(&self, draft_id: String, expected_revision: u64) -> R<IncidentReport> {
        self.queue(
            RecordKind::IncidentReport,
            |r: &IncidentReport| &r.id,
            |db| db.finalize_draft(&draft_id, expected_revision),
        )
    }

    /// A finalized report by id.
    pub fn get_report(&self, report_id: String) -> R<IncidentReport> {
        self.with(|db| db.get_report(&report_id))
    }

    /// Every record in upload order (SOS lane first), then the drafts. Its cost grows with
    /// every record the phone keeps: screens should use `list_records_page`.
    pub fn list_records(&self) -> R<Vec<QueueEntry>> {
        self.with(|db| db.list_records())
    }

    /// A page of records, in upload order or newest first, filtered by state and kind, after
    /// the cursor of the previous page. Only the page's records are read and decrypted.
    /// `InvalidInput` for a `limit` outside 1 to 500 or a cursor of another order.
    pub fn list_records_page(&self, request: RecordPageRequest) -> R<RecordPage> {
        self.with(|db| db.list_records_page(&request))
    }

    /// How many records wait in each lane, how many are wedged, how many drafts exist.
    pub fn pending_counts(&self) -> R<PendingCounts> {
        self.with(|db| db.pending_counts())
    }

    /// Re-encrypts everything under `new_key` in one transaction. If the app dies midway,
    /// the old key still opens the store. Save the new key only after this returns.
    pub fn rekey(&self, new_key: Vec<u8>) -> R<()> {
        let new_key = zeroize::Zeroizing::new(new_key);
        let key = DataKey::from_bytes(&new_key).map_err(StoreError::from)?;
        self.with(|db| db.rekey(key))
    }

    /// Stops the background sync and closes the store; later calls fail with `Closed`.
    pub fn close(&self) -> R<()> {
        self.shared.begin_close();
        self.stop_worker();
        match self.shared.lock_db().take() {
            Some(db) => db.close().map_err(CrewSafeError::from),
            None => Ok(()),
        }
    }

    /// Closes the store and deletes its database, `-wal` and `-shm` files: every record,
    /// delivered or not, is gone. `confirmation` must be exactly `"DESTROY"`.
    pub fn destroy(&self, confirmation: String) -> R<()> {
        if confirmation != DESTROY_CONFIRMATION {
            return Err(CrewSafeError::InvalidInput {
                field: "confirmation".into(),
                reason: "must be exactly DESTROY".into(),
            });
        }
        self.shared.begin_close();
        self.stop_worker();
        match self.shared.lock_db().take() {
            Some(db) => db.destroy().map_err(CrewSafeError::from),
            None => Err(CrewSafeError::closed()),
        }
    }
}

/// Sync with the national server.
#[uniffi::export]
impl CrewStore {
    /// Sets where and how to deliver records, and who supplies the device token. Starts the
    /// background worker (idle until `set_online(true)`). Calling it again replaces the
    /// configuration and forgets client retry delays (not the server's Retry-After).
    pub fn configure_sync(&self, config: SyncConfig, tokens: Arc<dyn TokenProvider>) -> R<()> {
        let setup = SyncSetup::new(config, tokens)?;
        // A new configuration (URL, CA, pins) deserves a fresh try.
        self.with(|db| db.clear_backoff())?;
        self.shared.set_sync_setup(setup);
        let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if worker.is_none() {
            self.shared.signal.resume();
            let handle =
                spawn(Arc::downgrade(&self.shared), self.shared.signal.clone()).map_err(|e| {
                    CrewSafeError::Storage {
                        reason: format!("could not start the sync worker: {}", e.kind()),
                    }
                })?;
            *worker = Some(handle);
        }
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.is_none() {
            self.shared.watch.resume();
            let handle = watch::spawn(Arc::downgrade(&self.shared), self.shared.watch.clone())
                .map_err(|e| CrewSafeError::Storage {
                    reason: format!("could not start the status watch: {}", e.kind()),
                })?;
            *watcher = Some(handle);
        }
        self.shared.watch.kick();
        Ok(())
    }

    /// Delivers what is queued, SOS lane first, and returns what happened. Blocking: call it
    /// from a background job (WorkManager, BGTask). Network trouble is not an error: the
    /// report says `WillRetry` and when. Errors: `NotConfigured`, `Unauthorized` (the token
    /// was refused twice), `InvalidDeviceToken`, `PinMismatch`, `CertificateRejected`,
    /// `ServerRejectedRequest` (a redirect, wrong path or other answer about the request:
    /// records stay queued and are retried with backoff), and `InvalidState` at once when
    /// called from one of this store's callbacks during a sync (that sync goes on). Sync
    /// listeners hear the same error. A sync delivers what was queued when it started plus
    /// SOS alarms raised meanwhile, so it ends while records keep arriving.
    pub fn sync_now(&self) -> R<SyncReport> {
        sync::sync_now(&self.shared)
    }

    /// Tells the store whether the phone has a network. When it changes from offline to
    /// online, retry delays are forgotten (the server's Retry-After is kept) and the
    /// background worker starts draining the queue, and the status watch starts waiting for
    /// dispatch's answer to any delivered SOS that is still open. Offline, neither sends
    /// anything. Repeated calls with the same value are cheap and do not reset the backoff.
    pub fn set_online(&self, online: bool) -> R<()> {
        // Backoff is forgotten before the worker wakes: its first sync may run callbacks that
        // close the store.
        if online && !self.shared.signal.is_online() {
            self.with(|db| db.clear_backoff())?;
        }
        self.shared.watch.set_online(online);
        self.shared.signal.set_online(online);
        Ok(())
    }

    /// Stops the background worker and waits for it (at most one request timeout), and stops
    /// the status watch (a watch request in flight ends by itself). Manual `sync_now` calls
    /// still work; `configure_sync` starts both again.
    pub fn shutdown(&self) {
        self.stop_worker();
    }

    /// Puts a wedged record back in the queue (after the cause was fixed on the server).
    pub fn retry_wedged(&self, record_id: String) -> R<()> {
        let change = self.with(|db| db.retry_wedged(&record_id))?;
        self.shared.observers.records(&[change]);
        self.shared.signal.kick();
        Ok(())
    }

    /// Deletes a wedged record for good (with the follow-ups of a wedged SOS). Returns how
    /// many records were deleted.
    pub fn discard_wedged(&self, record_id: String) -> R<u64> {
        self.with(|db| db.discard_wedged(&record_id))
    }

    /// Purges the content of records delivered more than `older_than_days` days ago (0: all
    /// delivered records). Ids and states stay. Returns how many were purged.
    pub fn purge_delivered(&self, older_than_days: u32) -> R<u64> {
        let cutoff = SystemTime::now() - Duration::from_secs(u64::from(older_than_days) * 86_400);
        let ms = cutoff
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64 + 1)
            .unwrap_or(0);
        self.with(|db| db.purge_delivered(ms))
    }

    /// Calls `listener` on every record state change until the subscription is cancelled.
    pub fn subscribe_records(&self, listener: Arc<dyn RecordListener>) -> Arc<Subscription> {
        self.shared.observers.add_record(listener)
    }

    /// Calls `listener` with the progress of every sync until the subscription is cancelled.
    pub fn subscribe_sync(&self, listener: Arc<dyn SyncListener>) -> Arc<Subscription> {
        self.shared.observers.add_sync(listener)
    }
}

/// Test-only hooks, compiled only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
impl CrewStore {
    /// Panics inside the core while holding the store's lock, to prove that a panic reaches
    /// the host as an exception and the store stays usable.
    pub fn debug_panic(&self) -> R<()> {
        let _guard = self.shared.lock_db();
        panic!("deliberate test panic");
    }

    /// `raise_sos_quick` timed inside the library, in nanoseconds: the same save without the
    /// FFI crossing, the same-run baseline of the Kotlin FFI benchmark.
    pub fn debug_timed_raise_sos_quick(
        &self,
        latitude: f64,
        longitude: f64,
        accuracy_m: f64,
        fixed_at_ms: i64,
    ) -> R<u64> {
        nanos_of(|| self.raise_sos_quick(latitude, longitude, accuracy_m, fixed_at_ms))
    }

    /// `raise_sos` timed inside the library, in nanoseconds, its arguments already in Rust
    /// (and the SOS it returns dropped there).
    pub fn debug_timed_raise_sos(
        &self,
        crew: CrewIdentity,
        location: Option<LocationFix>,
        note: Option<String>,
    ) -> R<u64> {
        nanos_of(|| self.raise_sos(crew, location, note))
    }
}

/// How long `f` took inside the library, in nanoseconds (test hooks of the FFI benchmark).
#[cfg(feature = "test-hooks")]
pub(crate) fn nanos_of<T>(f: impl FnOnce() -> R<T>) -> R<u64> {
    let start = std::time::Instant::now();
    f()?;
    Ok(start.elapsed().as_nanos() as u64)
}

/// One value of every exported error variant, as the library builds them (test-only, with
/// the `test-hooks` feature): the binding suites check that each has a message.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
pub fn debug_every_error() -> Vec<CrewSafeError> {
    let text = || "text".to_string();
    let every = vec![
        CrewSafeError::wrong_key(),
        CrewSafeError::InvalidKey { reason: text() },
        CrewSafeError::InvalidInput {
            field: "field".into(),
            reason: text(),
        },
        CrewSafeError::NotFound {
            what: "sos".into(),
            id: "id".into(),
        },
        CrewSafeError::Conflict {
            current_revision: 2,
        },
        CrewSafeError::InvalidState { reason: text() },
        CrewSafeError::ContentPurged { id: "id".into() },
        CrewSafeError::SchemaTooNew {
            found: 9,
            supported: 3,
        },
        CrewSafeError::Corrupted { reason: text() },
        CrewSafeError::Storage { reason: text() },
        CrewSafeError::closed(),
        CrewSafeError::not_configured(),
        CrewSafeError::unauthorized(),
        CrewSafeError::pin_mismatch(),
        CrewSafeError::CertificateRejected { reason: text() },
        CrewSafeError::HostFailed { reason: text() },
        CrewSafeError::InvalidDeviceToken { reason: text() },
        CrewSafeError::ServerRejectedRequest { status: 307 },
    ];
    // A new variant must be added above: this match does not compile without it.
    for e in &every {
        match e {
            CrewSafeError::WrongKey { .. }
            | CrewSafeError::InvalidKey { .. }
            | CrewSafeError::InvalidInput { .. }
            | CrewSafeError::NotFound { .. }
            | CrewSafeError::Conflict { .. }
            | CrewSafeError::InvalidState { .. }
            | CrewSafeError::ContentPurged { .. }
            | CrewSafeError::SchemaTooNew { .. }
            | CrewSafeError::Corrupted { .. }
            | CrewSafeError::Storage { .. }
            | CrewSafeError::Closed { .. }
            | CrewSafeError::NotConfigured { .. }
            | CrewSafeError::Unauthorized { .. }
            | CrewSafeError::PinMismatch { .. }
            | CrewSafeError::CertificateRejected { .. }
            | CrewSafeError::HostFailed { .. }
            | CrewSafeError::InvalidDeviceToken { .. }
            | CrewSafeError::ServerRejectedRequest { .. } => {}
        }
    }
    every
}

impl CrewStore {
    /// Forces a WAL checkpoint so every committed byte sits in the main file (tests).
    pub fn checkpoint(&self) -> R<()> {
        self.with(|db| db.checkpoint())
    }
}
