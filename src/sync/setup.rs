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
        })
    }
}
