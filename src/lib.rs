//! CrewSafe core: an offline-first, encrypted store of SOS alarms and incident reports for
//! ambulance crews, exported to Kotlin and Swift with uniffi.
//!
//! Modules: [`model`] (domain types and validation), [`crypto`] (sealing), [`db`] (SQLite
//! schema and operations), [`store`] (the exported object), [`error`] (errors).

pub mod crypto;
pub mod db;
pub mod error;
pub mod model;
pub mod store;

pub use error::CrewSafeError;
pub use model::*;
pub use store::{generate_data_key, CrewStore, DESTROY_CONFIRMATION};

uniffi::setup_scaffolding!();
