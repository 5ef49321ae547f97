//! CrewSafe core: an offline-first, encrypted store of SOS alarms and incident reports for
//! ambulance crews, exported to Kotlin and Swift with uniffi.
//!
//! Modules: [`model`] (domain types and validation), [`crypto`] (sealing), [`db`] (SQLite
//! schema and operations), [`sync`] (outbox draining, transport, worker), [`observer`]
//! (host callbacks), [`store`] (the exported object), [`error`] (errors).

pub mod crypto;
pub mod db;
pub mod error;
pub mod model;
pub mod observer;
pub mod store;
pub mod sync;

pub use db::outbox::RecordChange;
pub use error::CrewSafeError;
pub use model::*;
pub use observer::{
    HostError, RecordListener, Subscription, SyncListener, SyncPhase, SyncProgress, TokenProvider,
};
pub use store::{generate_data_key, CrewStore, DESTROY_CONFIRMATION};
pub use sync::{SyncConfig, SyncOutcome, SyncReport};

uniffi::setup_scaffolding!();
