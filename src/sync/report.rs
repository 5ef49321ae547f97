//! What a sync tells its caller: [`SyncReport`] and [`SyncOutcome`].

use std::time::SystemTime;

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum SyncOutcome {
    /// Nothing left to send.
    Complete,
    /// Work is left: its lane waits for its retry time (call again after `next_attempt_at`),
    /// or records were queued while this sync ran (no `next_attempt_at`: call again; the
    /// background worker does). A sync delivers what was queued when it started plus SOS
    /// alarms raised meanwhile, so that it ends while records keep arriving.
    Deferred,
    /// The server or network failed; the records are still queued and will be retried.
    WillRetry {
        /// What went wrong (no content).
        reason: String,
    },
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Records put on the wire (a resend counts again).
    pub sent: u32,
    /// Records the server stored for the first time.
    pub accepted: u32,
    /// Records the server already had (a resend after a lost answer).
    pub duplicates: u32,
    /// Records the server refused for good in this sync.
    pub wedged: u32,
    /// SOS records still waiting.
    pub pending_sos: u64,
    /// Reports still waiting.
    pub pending_reports: u64,
    /// Attachments of finalized reports the server does not hold whole yet.
    pub pending_attachments: u64,
    /// Attachment bytes the server confirmed in this sync.
    pub uploaded_bytes: u64,
    /// When pending work may be tried again, if it is waiting for a retry time.
    pub next_attempt_at: Option<SystemTime>,
    /// How it ended.
    pub outcome: SyncOutcome,
}
