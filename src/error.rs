//! Errors: one internal enum per layer, mapped once to [`CrewSafeError`], the small enum that
//! crosses the FFI boundary.
//!
//! Messages never carry report text, names or coordinates: only field names, ids, counts and
//! the kind of failure. SQLite messages are passed through as the `Storage` reason; SQLite
//! never echoes bound parameter values, so they cannot contain sealed plaintext either.

use crate::crypto::CryptoError;

/// The error every exported function returns. Each variant says what the app should do.
#[derive(Debug, thiserror::Error, uniffi::Error, PartialEq, Eq)]
pub enum CrewSafeError {
    /// The data key does not open this store. Ask the key holder (Keystore/Keychain) for the
    /// right key; the database was not modified.
    #[error("the data key does not open this store")]
    WrongKey,
    /// The key handed in is not a usable 32-byte key. Use `generate_data_key()`.
    #[error("invalid data key: {reason}")]
    InvalidKey {
        /// Why the key was refused (never the key bytes).
        reason: String,
    },
    /// A value passed in is not acceptable; `field` names the first bad field. Nothing was
    /// stored. Show the reason next to that field.
    #[error("invalid input in `{field}`: {reason}")]
    InvalidInput {
        /// Dotted path of the offending field, e.g. `location.latitude`.
        field: String,
        /// What is wrong with it, without echoing the value.
        reason: String,
    },
    /// No record, draft or SOS has this id.
    #[error("no {what} with id {id}")]
    NotFound {
        /// What was looked for (`draft`, `sos`, `record`).
        what: String,
        /// The id that was looked for.
        id: String,
    },
    /// The draft changed since the caller read it (another screen or thread saved it).
    /// Reload the draft at `current_revision` and reapply the edit.
    #[error("draft was changed meanwhile; current revision is {current_revision}")]
    Conflict {
        /// The revision now stored.
        current_revision: u64,
    },
    /// The operation is not allowed in the record's current state (for example cancelling an
    /// SOS twice). Nothing was changed.
    #[error("not allowed: {reason}")]
    InvalidState {
        /// Which rule was violated.
        reason: String,
    },
    /// The database was written by a newer CrewSafe. Update the app; the file was not touched.
    #[error("database schema version {found} is newer than this library supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// A stored value failed authentication: the file was tampered with or damaged.
    #[error("stored data failed its integrity check: {reason}")]
    Corrupted {
        /// Where the check failed (table and id, never content).
        reason: String,
    },
    /// SQLite or the file system failed (disk full, read-only file, I/O error). Nothing
    /// partial was stored; retry later or free space.
    #[error("storage failure: {reason}")]
    Storage {
        /// The storage layer's description.
        reason: String,
    },
    /// The store was closed or destroyed; open a new one.
    #[error("the store is closed")]
    Closed,
    /// `configure_sync` has not been called.
    #[error("sync is not configured")]
    NotConfigured,
    /// The server refused the device token, even after one refresh. Re-enroll the device or
    /// fix the token source; records stay queued.
    #[error("the server refused the device token")]
    Unauthorized,
    /// The server's public key matches none of the pins; nothing was sent. Check the pins
    /// (and the network: this may be an interception).
    #[error("the server's public key does not match the pinned keys")]
    PinMismatch,
    /// The server's certificate is not trusted; nothing was sent.
    #[error("the server certificate was rejected: {reason}")]
    CertificateRejected {
        /// The TLS layer's reason.
        reason: String,
    },
    /// A host callback (token provider) failed.
    #[error("host callback failed: {reason}")]
    HostFailed {
        /// The host's reason.
        reason: String,
    },
}

impl From<crate::sync::SyncError> for CrewSafeError {
    fn from(e: crate::sync::SyncError) -> Self {
        use crate::sync::SyncError;
        match e {
            SyncError::Store(e) => e.into(),
            SyncError::NotConfigured => CrewSafeError::NotConfigured,
            SyncError::Config(c) => CrewSafeError::InvalidInput {
                field: c.field.into(),
                reason: c.reason,
            },
            SyncError::Unauthorized => CrewSafeError::Unauthorized,
            SyncError::Host(crate::observer::HostError::Failed { reason }) => {
                CrewSafeError::HostFailed { reason }
            }
            SyncError::PinMismatch => CrewSafeError::PinMismatch,
            SyncError::Certificate(reason) => CrewSafeError::CertificateRejected { reason },
        }
    }
}

/// The store layer's internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failure.
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    /// File system failure outside SQLite (for example while destroying).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A sealed value decrypted but is not the JSON we wrote.
    #[error("stored {table} {id} has an unreadable payload")]
    Decode {
        /// Table holding the value.
        table: &'static str,
        /// Row id.
        id: String,
    },
    /// A value could not be encoded for storage (for example a time before 1970).
    #[error("{0} could not be encoded")]
    Encode(&'static str),
    /// Validation failure.
    #[error("invalid input in `{field}`: {reason}")]
    Invalid {
        /// Offending field.
        field: String,
        /// Reason.
        reason: String,
    },
    /// Unknown id.
    #[error("no {what} with id {id}")]
    NotFound {
        /// Kind of thing.
        what: &'static str,
        /// Id.
        id: String,
    },
    /// Stale draft revision.
    #[error("stale revision, current is {0}")]
    Conflict(u64),
    /// Operation not allowed in this state.
    #[error("{0}")]
    State(String),
    /// The canary does not open with this key.
    #[error("wrong key")]
    WrongKey,
    /// Schema newer than supported.
    #[error("schema {found} newer than {supported}")]
    SchemaTooNew {
        /// Found version.
        found: u32,
        /// Supported version.
        supported: u32,
    },
    /// The store was closed.
    #[error("closed")]
    Closed,
}

/// Result alias for the internal layers.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Shorthand for a validation error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for CrewSafeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::NotADatabase =>
            {
                CrewSafeError::Corrupted {
                    reason: "the file is not a CrewSafe database".into(),
                }
            }
            StoreError::Sql(e) => CrewSafeError::Storage {
                reason: e.to_string(),
            },
            StoreError::Encode(what) => CrewSafeError::InvalidInput {
                field: what.into(),
                reason: "could not be encoded".into(),
            },
            StoreError::Io(e) => CrewSafeError::Storage {
                reason: e.kind().to_string(),
            },
            StoreError::Crypto(CryptoError::BadKeyLength(n)) => CrewSafeError::InvalidKey {
                reason: format!("expected 32 bytes, got {n}"),
            },
            StoreError::Crypto(e) => CrewSafeError::Corrupted {
                reason: e.to_string(),
            },
            StoreError::Decode { table, id } => CrewSafeError::Corrupted {
                reason: format!("{table} {id} is unreadable"),
            },
            StoreError::Invalid { field, reason } => CrewSafeError::InvalidInput { field, reason },
            StoreError::NotFound { what, id } => CrewSafeError::NotFound {
                what: what.to_string(),
                id,
            },
            StoreError::Conflict(current_revision) => CrewSafeError::Conflict { current_revision },
            StoreError::State(reason) => CrewSafeError::InvalidState { reason },
            StoreError::WrongKey => CrewSafeError::WrongKey,
            StoreError::SchemaTooNew { found, supported } => {
                CrewSafeError::SchemaTooNew { found, supported }
            }
            StoreError::Closed => CrewSafeError::Closed,
        }
    }
}
