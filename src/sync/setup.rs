//! A configured sync: the HTTP transport, the host's token source, the settings and the
//! per-lane upload sizes.

use std::sync::Arc;
use std::time::Duration;

use super::config::SyncConfig;
use super::error::SyncError;
use super::sizing::BatchSizer;
use super::transport::{self, Transport};
use crate::observer::TokenProvider;

/// A configured sync: transport, token source and settings.
pub struct SyncSetup {
    pub(super) transport: Transport,
    pub(super) tokens: Arc<dyn TokenProvider>,
    pub(super) config: SyncConfig,
    pub(super) sizer: BatchSizer,
    /// How attachment chunks are sized now (kept from one sync to the next).
    pub(super) pace: std::sync::Mutex<UploadPace>,
}

/// Attachment chunk sizing, in upload units: it starts at one unit and doubles while chunks
/// go up quickly, up to [`UploadPace::MAX_UNITS`]; a failed chunk (a cut link) drops it to one
/// unit, where it stays until [`UploadPace::CALM_UNITS`] units went up without a failure. On a
/// link that keeps dropping, a cut then costs at most one unit.
#[derive(Debug, Clone, Copy)]
pub(super) struct UploadPace {
    /// Units per chunk.
    pub(super) units: u64,
    /// Units sent since the last failure.
    pub(super) calm: u64,
}

impl UploadPace {
    /// Most units per chunk (1 MiB).
    pub(super) const MAX_UNITS: u64 = 4;
    /// Units without a failure before chunks grow again after one.
    pub(super) const CALM_UNITS: u64 = 32;
}

impl Default for UploadPace {
    fn default() -> Self {
        UploadPace {
            units: 1,
            calm: Self::CALM_UNITS,
        }
    }
}

impl SyncSetup {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(config: SyncConfig, tokens: Arc<dyn TokenProvider>) -> Result<Self, SyncError> {
        config.validate()?;
        let transport = Transport::new(&transport::TransportConfig {
            server_url: config.server_url.clone(),
            spki_pins: config.spki_pins.clone(),
            extra_roots_pem: config.extra_root_certs_pem.clone(),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        })?;
        let sizer = BatchSizer::new(
            config.max_batch_records,
            Duration::from_millis(config.request_timeout_ms),
        );
        Ok(SyncSetup {
            transport,
            tokens,
            config,
            sizer,
            pace: Default::default(),
        })
    }
}
