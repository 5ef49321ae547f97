//! Errors: one internal enum per layer, mapped once to [`CrewSafeError`], the small enum that
//! crosses the FFI boundary.
//!
//! Every variant carries a message (variants without other details carry a fixed `reason`), so
//! that an exception's `message` in Kotlin and its description in Swift are never empty.
//! Messages never carry report text, names or coordinates: only field names, ids, counts and
//! the kind of failure. SQLite messages are passed through as the `Storage` reason; SQLite
//! never echoes bound parameter values, so they cannot contain sealed plaintext either.

use crate::crypto::chunked::FileCryptoError;
use crate::crypto::CryptoError;

/// The error every exported function returns. Each variant says what the app should do.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error, PartialEq, Eq)]
#[uniffi::export(Display)]
pub enum CrewSafeError {
    /// The data key does not open this store. Ask the key holder (Keystore/Keychain) for the
    /// right key; the database was not modified. (A damaged key check value in the file reads
    /// the same way: the library cannot tell the two apart.)
    #[error("{reason}")]
    WrongKey {
        /// A fixed description (never key material).
        reason: String,
    },
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
    /// SOS twice, or `sync_now` called from inside one of the store's own callbacks). Nothing
    /// was changed.
    #[error("not allowed: {reason}")]
    InvalidState {
        /// Which rule was violated.
        reason: String,
    },
    /// The record was delivered and its content was purged from this phone after the
    /// retention period (`SyncConfig.retention_days`, or `purge_delivered`); its id and states
    /// stay. The server holds the content.
    #[error("the content of record {id} was purged after delivery")]
    ContentPurged {
        /// The record's id.
        id: String,
    },
    /// The database was written by a newer CrewSafe. Update the app; the file was not touched.
    #[error("database schema version {found} is newer than this library supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },
    /// The file is damaged or not a store: a stored value failed authentication, SQLite found
    /// a malformed page, the file was truncated (also to 0 bytes), or it is another kind of
    /// file. Retrying does not help: keep the files aside for recovery and open a new store.
    #[error("stored data failed its integrity check: {reason}")]
    Corrupted {
        /// Where the check failed (table and id, never content).
        reason: String,
    },
    /// SQLite or the file system failed (disk full, read-only file, I/O error). Nothing
    /// partial was stored; retry later or free space. (A damaged file is `Corrupted`.)
    #[error("storage failure: {reason}")]
    Storage {
        /// The storage layer's description.
        reason: String,
    },
    /// The store was closed or destroyed; open a new one.
    #[error("{reason}")]
    Closed {
        /// A fixed description.
        reason: String,
    },
    /// `configure_sync` has not been called.
    #[error("{reason}")]
    NotConfigured {
        /// A fixed description.
        reason: String,
    },
    /// The server refused the device token, even after one refresh. Re-enroll the device or
    /// fix the token source; records stay queued.
    #[error("{reason}")]
    Unauthorized {
        /// A fixed description (never the token).
        reason: String,
    },
    /// The server's public key matches none of the pins; nothing was sent. Check the pins
    /// (and the network: this may be an interception).
    #[error("{reason}")]
    PinMismatch {
        /// A fixed description.
        reason: String,
    },
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
    /// The token provider returned a device token that cannot be sent in an HTTP header
    /// (empty, a space or line break, a non-ASCII character). Nothing was sent; records stay
    /// queued. Fix the token source (a stray newline from a file or a QR code is typical).
    #[error("the device token cannot be sent: {reason}")]
    InvalidDeviceToken {
        /// What is wrong with it (never the token).
        reason: String,
    },
    /// The server, or something in front of it (a load balancer, a proxy), refused the upload
    /// as a request rather than any record in it: a redirect (3xx), a wrong path (404), a
    /// wrong method (405) or content type (415), a protocol version it does not speak, or a
    /// status the protocol does not use. Nothing was wedged: every record stays queued and
    /// the background worker retries with backoff. Check `server_url` and the server side.
    #[error("the server refused the request with HTTP status {status}; records stay queued")]
    ServerRejectedRequest {
        /// The HTTP status of the answer.
        status: u16,
    },
}

impl CrewSafeError {
    /// `WrongKey` with its description.
    pub fn wrong_key() -> Self {
        CrewSafeError::WrongKey {
            reason: "the data key does not open this store".into(),
        }
    }

    /// `Closed` with its description.
    pub fn closed() -> Self {
        CrewSafeError::Closed {
            reason: "the store is closed".into(),
        }
    }

    /// `NotConfigured` with its description.
    pub fn not_configured() -> Self {
        CrewSafeError::NotConfigured {
            reason: "sync is not configured: call configure_sync first".into(),
        }
    }

    /// `Unauthorized` with its description.
    pub fn unauthorized() -> Self {
        CrewSafeError::Unauthorized {
            reason: "the server refused the device token, also after a refresh".into(),
        }
    }

    /// `PinMismatch` with its description.
    pub fn pin_mismatch() -> Self {
        CrewSafeError::PinMismatch {
            reason: "the server's public key does not match the pinned keys".into(),
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
    /// The record's content was purged after delivery (retention).
    #[error("the content of record {id} was purged after delivery")]
    Purged {
        /// Record id.
        id: String,
    },
    /// The store was closed.
    #[error("closed")]
    Closed,
    /// The file is damaged in a way found before SQLite reads it (an empty file, say).
    #[error("{0}")]
    Damaged(&'static str),
    /// An attachment file could not be written or read back.
    #[error(transparent)]
    File(#[from] FileCryptoError),
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
            StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseCorrupt =>
            {
                CrewSafeError::Corrupted {
                    reason: "the database file is damaged".into(),
                }
            }
            StoreError::Sql(rusqlite::Error::FromSqlConversionFailure(..)) => {
                CrewSafeError::Corrupted {
                    reason: "a stored value is not one this build knows".into(),
                }
            }
            StoreError::Damaged(reason) => CrewSafeError::Corrupted {
                reason: reason.into(),
            },
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
            StoreError::Purged { id } => CrewSafeError::ContentPurged { id },
            StoreError::WrongKey => CrewSafeError::wrong_key(),
            StoreError::SchemaTooNew { found, supported } => {
                CrewSafeError::SchemaTooNew { found, supported }
            }
            StoreError::Closed => CrewSafeError::closed(),
            StoreError::File(FileCryptoError::Unauthentic) => CrewSafeError::Corrupted {
                reason: "an attachment file is damaged, cut short or replaced".into(),
            },
            StoreError::File(FileCryptoError::Io(e)) => CrewSafeError::Storage {
                reason: e.kind().to_string(),
            },
            StoreError::File(FileCryptoError::Key(e)) => CrewSafeError::Corrupted {
                reason: e.to_string(),
            },
        }
    }
}
