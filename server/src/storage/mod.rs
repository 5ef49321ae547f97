//! The server's storage: every SQL statement of the crate lives under this module, behind
//! [`Storage`] (the running server's handle), [`ServerStore`] (reads for tests and demos) and
//! the enrollment functions. One SQLite file holds:
//!
//! - `devices`, `dispatchers`: who may upload or dispatch, by the SHA-256 of their token;
//! - `records`: every accepted record in canonical JSON, never updated or deleted, keyed by
//!   `(device_id, record_id)` (the permanent dedupe key) and numbered by `seq`;
//! - `sos_status`: one row per SOS (keyed by its `records.seq`) with its dispatch status.
//!
//! Kind, lane and dispatch status columns hold the protocol's words, bound and read as the
//! protocol enums.

mod auth;
mod column;
mod dispatch;
mod intake;
mod read;
mod schema;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use crewsafe_protocol::{DispatchSos, DispatchStatus, ItemResult, SosStatus, WireRecord};
use rusqlite::Connection;

pub(crate) use dispatch::{Advance, Lookup};
pub use intake::POISON_REASON;
pub use read::{ServerStore, StoredRecord, StoredSosState};

use crate::error::Result;

/// The running server's storage: one connection shared by the blocking tasks, so operations
/// are serialized (one writer at a time).
pub(crate) struct Storage {
    conn: Mutex<Connection>,
}

impl Storage {
    /// Opens (creating or upgrading) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: Mutex::new(schema::open_connection(path)?),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The device a bearer token belongs to.
    pub(crate) fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        self.with(|c| auth::device_for_token(c, token))
    }

    /// The dispatcher a bearer token belongs to.
    pub(crate) fn dispatcher_for_token(&self, token: &str) -> Result<Option<String>> {
        self.with(|c| auth::dispatcher_for_token(c, token))
    }

    /// Stores a batch of `device_id` (committed before this returns): one result per record,
    /// in order. Records in `reject_ids` are rejected as poison (test faults).
    pub(crate) fn process_batch(
        &self,
        device_id: &str,
        records: &[WireRecord],
        reject_ids: &HashSet<String>,
    ) -> Result<Vec<ItemResult>> {
        self.with(|c| intake::process_batch(c, device_id, records, reject_ids))
    }

    /// Statuses of those `ids` that are SOS alarms of `device_id`, in request order.
    pub(crate) fn sos_statuses(&self, device_id: &str, ids: &[String]) -> Result<Vec<SosStatus>> {
        self.with(|c| dispatch::sos_statuses(c, device_id, ids))
    }

    /// All SOS alarms (optionally only those with `status`) in receive order.
    pub(crate) fn dispatch_list(&self, status: Option<DispatchStatus>) -> Result<Vec<DispatchSos>> {
        self.with(|c| dispatch::dispatch_list(c, status))
    }

    /// Moves SOS `id` (of `device`, if given) forward on behalf of `dispatcher`.
    pub(crate) fn advance_sos(
        &self,
        id: &str,
        device: Option<&str>,
        action: Advance,
        dispatcher: &str,
    ) -> Result<Lookup<DispatchSos>> {
        self.with(|c| dispatch::advance_sos(c, id, device, action, dispatcher))
    }
}

/// Enrolls (or re-enrolls) a device in the database at `path` and returns its token.
pub(crate) fn enroll_device(path: &Path, device_id: &str) -> Result<String> {
    auth::enroll_device(&schema::open_connection(path)?, device_id)
}

/// Enrolls (or re-enrolls) a dispatcher in the database at `path` and returns its token.
pub(crate) fn enroll_dispatcher(path: &Path, name: &str) -> Result<String> {
    auth::enroll_dispatcher(&schema::open_connection(path)?, name)
}
