//! CrewSafe core: an offline-first, encrypted store of SOS alarms and incident reports for
//! ambulance crews, exported to Kotlin and Swift with uniffi.
//!
//! Layers, each depending only on those after it: [`CrewStore`] (`store`, the exported
//! facade) → `sync` (engine, transport, worker, and the state they share with the store) →
//! `db` (SQLite schema and operations, the outbox) → `model` (domain types, validation, the
//! mapping to the protocol's vocabulary), `observer` (host callbacks), `error`, `crypto`.
//! Modules are private: the crate's public surface is what apps use, re-exported below.
//! Tests, benchmarks and fuzz targets that need internals use [`internals`].

mod crypto;
mod db;
mod error;
mod fixtures;
mod model;
mod observer;
mod store;
mod sync;

pub use error::CrewSafeError;
pub use model::*;
pub use observer::{
    HostError, RecordListener, Subscription, SyncListener, SyncPhase, SyncProgress, TokenProvider,
};
pub use store::{
    generate_data_key, raise_sos_now, AttachmentReader, CrewStore, DESTROY_CONFIRMATION,
    MAX_ATTACHMENT_READ,
};
pub use sync::{
    SyncConfig, SyncOutcome, SyncReport, MAX_BACKOFF_MS, MAX_CONNECT_TIMEOUT_MS,
    MAX_REQUEST_TIMEOUT_MS, MAX_RETENTION_DAYS,
};

/// Internals for the project's own tests, benchmarks and fuzz targets: not part of the API,
/// not stable, not for apps.
#[doc(hidden)]
pub mod internals {
    pub use crate::crypto::{split_envelope, CryptoError, DataKey, Slot, ENVELOPE_V1};
    pub use crate::fixtures::{complete_fields, crew, fix, Rng};
    pub use crate::sync::transport::spki_pin_of_cert_der;

    /// The store's schema: versions and upgrades.
    pub mod schema {
        pub use crate::db::schema::{describe, upgrade_from, user_version, MIGRATIONS, VERSION};
    }
}

uniffi::setup_scaffolding!();
