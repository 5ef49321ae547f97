//! The exported store object. Every method is a thin delegation to [`Db`] behind one mutex,
//! with the internal error mapped to [`CrewSafeError`]. Many threads may share one store;
//! their writes are serialized.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crypto::{random_key_bytes, DataKey};
use crate::db::Db;
use crate::error::{CrewSafeError, StoreError};
use crate::model::{
    CancelReason, CrewIdentity, DraftSaved, IncidentDraft, IncidentFields, IncidentReport,
    LocationFix, PendingCounts, QueueEntry, Sos, SosCancellation, SosLocationUpdate,
};

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

/// An encrypted, offline store of SOS alarms and incident reports on this phone.
#[derive(uniffi::Object)]
pub struct CrewStore {
    db: Mutex<Option<Db>>,
}

type R<T> = Result<T, CrewSafeError>;

impl CrewStore {
    fn lock(&self) -> MutexGuard<'_, Option<Db>> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls
        // back on drop), so a poisoned lock is safe to keep using.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Db) -> Result<T, StoreError>) -> R<T> {
        let mut guard = self.lock();
        let db = guard.as_mut().ok_or(CrewSafeError::Closed)?;
        f(db).map_err(CrewSafeError::from)
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
            db: Mutex::new(Some(db)),
        }))
    }

    /// Raises an SOS: stored and queued (first in line) before this returns, even offline.
    pub fn raise_sos(
        &self,
        crew: CrewIdentity,
        location: Option<LocationFix>,
        note: Option<String>,
    ) -> R<Sos> {
        self.with(|db| db.raise_sos(crew, location, note))
    }

    /// Appends a newer position to an active SOS.
    pub fn add_sos_location(&self, sos_id: String, location: LocationFix) -> R<SosLocationUpdate> {
        self.with(|db| db.add_sos_location(&sos_id, location))
    }

    /// Cancels an active SOS with a reason; the alarm itself is kept and still delivered.
    pub fn cancel_sos(
        &self,
        sos_id: String,
        reason: CancelReason,
        note: Option<String>,
    ) -> R<SosCancellation> {
        self.with(|db| db.cancel_sos(&sos_id, reason, note))
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
        self.with(|db| db.finalize_draft(&draft_id, expected_revision))
    }

    /// A finalized report by id.
    pub fn get_report(&self, report_id: String) -> R<IncidentReport> {
        self.with(|db| db.get_report(&report_id))
    }

    /// Every record in upload order (SOS lane first), then the drafts.
    pub fn list_records(&self) -> R<Vec<QueueEntry>> {
        self.with(|db| db.list_records())
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

    /// Closes the store; later calls fail with `Closed`.
    pub fn close(&self) -> R<()> {
        match self.lock().take() {
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
        match self.lock().take() {
            Some(db) => db.destroy().map_err(CrewSafeError::from),
            None => Err(CrewSafeError::Closed),
        }
    }
}

/// Test-only hooks, compiled only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
#[uniffi::export]
impl CrewStore {
    /// Panics inside the core while holding the store's lock, to prove that a panic reaches
    /// the host as an exception and the store stays usable.
    pub fn debug_panic(&self) {
        let _guard = self.lock();
        panic!("deliberate test panic");
    }
}

impl CrewStore {
    /// Forces a WAL checkpoint so every committed byte sits in the main file (tests).
    pub fn checkpoint(&self) -> R<()> {
        self.with(|db| db.checkpoint())
    }
}
