//! The alarm event log (`alarm_events`): one row per change an alarm's dispatcher view shows
//! (a new SOS, its follow-up position or cancellation, an acknowledge, resolve or message, a
//! missed check-in raised, a late check-in closing it, an escalation), written in the
//! transaction of the change. Event ids only grow in the order the changes commit (SQLite has
//! one writer; PostgreSQL takes a lock for every transaction that logs one, see
//! `postgres/mod.rs`). The dispatcher event stream reads it:
//!
//! - the snapshot: every alarm not resolved, and every alarm changed in the last [`RECENT`],
//!   each with its newest event id, in the order of those ids, and the newest id it covers;
//! - the changes after a given id (a reconnecting stream's `Last-Event-ID`, or a lagging
//!   subscriber's last sent id): the current view of every alarm with an event after it, in
//!   the order of their newest event ids.
//!
//! Pruning deletes events older than [`RETENTION`] except each alarm's newest, so "the alarms
//! with an event after N" stays exact for any N: a change after N left the alarm's newest
//! event after N, and that one is never pruned.

use std::time::Duration;

use crewsafe_protocol::DispatchSos;

/// How long events are kept (each alarm's newest is kept for ever).
pub(crate) const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far back a fresh stream's snapshot reaches for alarms already resolved.
pub(crate) const RECENT: Duration = Duration::from_secs(3600);

/// One alarm's current view with its newest event id.
#[derive(Debug, Clone)]
pub(crate) struct AlarmChange {
    /// The alarm's newest event id (the stream's `id:`).
    pub(crate) event_id: i64,
    /// The alarm as dispatch sees it now.
    pub(crate) alarm: DispatchSos,
}
