//! The sync layer's internal error and its one mapping to the exported error.

use super::transport;
use crate::error::{CrewSafeError, StoreError};
use crate::observer::HostError;

/// The sync layer's internal error.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `configure_sync` was not called.
    #[error("sync is not configured")]
    NotConfigured,
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] transport::ConfigError),
    /// The server refused the token even after a refresh.
    #[error("the server refused the device token")]
    Unauthorized,
    /// The token provider failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Pin mismatch.
    #[error("pin mismatch")]
    PinMismatch,
    /// Untrusted certificate.
    #[error("certificate rejected: {0}")]
    Certificate(String),
    /// The server, or something in front of it, refused the request itself (not a record).
    #[error("the server refused the request with status {status}")]
    ServerRejected {
        /// HTTP status.
        status: u16,
    },
    /// The token provider returned a token that cannot be sent.
    #[error("the device token cannot be sent: {0}")]
    InvalidToken(String),
}

impl From<SyncError> for CrewSafeError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(e) => e.into(),
            SyncError::NotConfigured => CrewSafeError::not_configured(),
            SyncError::Config(c) => CrewSafeError::InvalidInput {
                field: c.field.into(),
                reason: c.reason,
            },
            SyncError::Unauthorized => CrewSafeError::unauthorized(),
            SyncError::Host(HostError::Failed { reason }) => CrewSafeError::HostFailed { reason },
            SyncError::PinMismatch => CrewSafeError::pin_mismatch(),
            SyncError::Certificate(reason) => CrewSafeError::CertificateRejected { reason },
            SyncError::ServerRejected { status } => CrewSafeError::ServerRejectedRequest { status },
            SyncError::InvalidToken(reason) => CrewSafeError::InvalidDeviceToken { reason },
        }
    }
}
