//! The sync engine: drains the outbox to the national server, SOS lane first, exactly once.
//!
//! One sync at a time. For each lane (SOS, then reports) it takes the next rows in upload
//! order up to the lane's current upload size (which follows the link: [`sizing`]) and the
//! byte cap, marks them `sending` (in memory), posts them without holding the database lock,
//! and applies the per-record answers in one transaction: accepted or duplicate → delivered,
//! conflict or rejected → wedged with the reason, no answer → queued again. Once every record
//! of a batch has its answer, the next batch goes out while that answer is being applied (the
//! server already holds the batch before it, so order within a lane is kept). A lost answer
//! after the server committed leads to a resend that the server answers `duplicate`, so there
//! is never a second copy. Network errors, 408, 429, 5xx and timeouts (which also halve the
//! upload size) put the rows back and schedule the lane with backoff (and the server's
//! Retry-After as a floor); a 401 asks the host for a fresh token once, then stops with
//! `Unauthorized`.

//!
//! Files: [`config`] and [`report`] (the exported types), [`setup`] (a configured sync),
//! [`shared`] and [`signal`] (the state the store, the engine and the worker share), [`run`]
//! (a running sync's state), [`engine`] (one run), [`batch`], [`answer`] and [`refusals`] (its
//! parts), [`reentry`] (callbacks that call back), [`transport`], [`wire`], [`sizing`],
//! [`backoff`], [`clock`], [`worker`] and [`watch`] with [`watch_signal`] (the dispatch status long poll). Each file imports only the files it needs, never
//! one above it.

mod answer;
mod backoff;
mod batch;
mod clock;
mod config;
mod engine;
mod error;
mod reentry;
mod refusals;
mod report;
mod run;
mod setup;
mod shared;
mod signal;
mod sizing;
pub(crate) mod transport;
mod upload;
pub(crate) mod watch;
mod watch_signal;
mod wire;
pub(crate) mod worker;

pub use config::{
    SyncConfig, MAX_BACKOFF_MS, MAX_CONNECT_TIMEOUT_MS, MAX_REQUEST_TIMEOUT_MS, MAX_RETENTION_DAYS,
};
pub(crate) use engine::sync_now;
pub use report::{SyncOutcome, SyncReport};
pub(crate) use setup::SyncSetup;
pub(crate) use shared::Shared;
