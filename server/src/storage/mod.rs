//! The server's storage: every SQL statement of the crate lives under this module, behind
//! [`Storage`] (the running server's handle), [`ServerStore`] (reads for tests and demos) and
//! the enrollment functions. One SQLite file holds:
//!
//! - `devices`, `dispatchers`: who may upload or dispatch, by the SHA-256 of their token;
//! - `records`: every accepted record in canonical JSON, never updated or deleted, keyed by
//!   `(device_id, record_id)` (the permanent dedupe key) and numbered by `seq`;
//! - `sos_status`: one row per alarm (keyed by its record's `seq`: an SOS, or the
//!   `check_in_start` of a missed check-in) with its dispatch status, message and escalation;
//! - `check_ins`: the server-side timing of each lone-worker check-in;
//! - `alarm_events`: the log of alarm changes, for the dispatcher event stream.
//!
//! Kind, lane and dispatch status columns hold the protocol's words, bound and read as the
//! protocol enums. [`Storage`] publishes the events of every commit to the hub after it.

mod auth;
mod check_ins;
mod column;
mod dispatch;
mod escalation;
mod events;
mod intake;
mod read;
mod schema;
mod view;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, DispatchSos, DispatchStatus, ItemResult, SosStatus, WireRecord,
};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::Notify;

pub use check_ins::CHECK_IN_RESOLVER;
pub(crate) use column::now;
pub(crate) use dispatch::{Advance, Lookup, Move};
pub(crate) use events::AlarmChange;
pub use intake::POISON_REASON;
pub use read::{ServerStore, StoredRecord, StoredSosState};

use crate::error::Result;
use crate::hub::Hub;

/// The timings storage applies (from [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// How long an alarm may wait for an acknowledge before it is escalated.
    pub(crate) escalate_after: Duration,
    /// How long a check-in minute lasts.
    pub(crate) check_in_minute: Duration,
}

/// The running server's storage: one connection shared by the blocking tasks, so operations
/// are serialized (one writer at a time).
pub(crate) struct Storage {
    conn: Mutex<Connection>,
    timings: Timings,
    hub: Hub,
    timer_wake: Notify,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (creating or upgrading) the database at `path`.
    pub(crate) fn open(path: &Path, timings: Timings, hub: Hub) -> Result<Self> {
        Ok(Self {
            conn: Mutex::new(schema::open_connection(path)?),
            timings,
            hub,
            timer_wake: Notify::new(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The hub this storage publishes to.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Notified when a check-in or an alarm arrives (the timer's next deadline may move).
    pub(crate) fn timer_wake(&self) -> &Notify {
        &self.timer_wake
    }

    /// The device a bearer token belongs to.
    pub(crate) fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        self.with(|c| auth::device_for_token(c, token))
    }

    /// The dispatcher a bearer token belongs to.
    pub(crate) fn dispatcher_for_token(&self, token: &str) -> Result<Option<String>> {
        self.with(|c| auth::dispatcher_for_token(c, token))
    }

    /// Stores a batch of `device_id` (committed before this returns): one result per record,
    /// in order. Records in `reject_ids` are rejected as poison (test faults).
    pub(crate) fn process_batch(
        &self,
        device_id: &str,
        records: &[WireRecord],
        reject_ids: &HashSet<String>,
    ) -> Result<Vec<ItemResult>> {
        let minute = self.timings.check_in_minute;
        let done =
            self.with(|c| intake::process_batch(c, device_id, records, reject_ids, minute))?;
        self.hub.publish(done.events);
        if done.timing_changed {
            self.timer_wake.notify_one();
        }
        Ok(done.results)
    }

    /// Statuses of those `ids` that are alarms of `device_id`, in request order.
    pub(crate) fn sos_statuses(&self, device_id: &str, ids: &[String]) -> Result<Vec<SosStatus>> {
        self.with(|c| dispatch::sos_statuses(c, device_id, ids))
    }

    /// All alarms (optionally only those with `status`, of kind `alarm`) in receive order.
    pub(crate) fn dispatch_list(
        &self,
        status: Option<DispatchStatus>,
        alarm: Option<AlarmKind>,
    ) -> Result<Vec<DispatchSos>> {
        let esc = self.timings.escalate_after;
        self.with(|c| dispatch::dispatch_list(c, status, alarm, esc))
    }

    /// Moves alarm `id` (of `device`, if given) forward.
    pub(crate) fn advance_sos(
        &self,
        id: &str,
        device: Option<&str>,
        mv: &Move<'_>,
    ) -> Result<Lookup<DispatchSos>> {
        let esc = self.timings.escalate_after;
        let (found, event) = self.with(|c| dispatch::advance_sos(c, id, device, mv, esc))?;
        self.hub.publish(event);
        Ok(found)
    }

    /// Raises the missed check-ins and escalates the alarms due by `now`, in one transaction;
    /// returns when the next one is due.
    pub(crate) fn run_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let esc = self.timings.escalate_after;
        let (events, next) = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (mut events, next_check_in) = check_ins::raise_due(&tx, now)?;
            let (escalated, next_escalation) = escalation::escalate_due(&tx, now, esc)?;
            tx.commit()?;
            events.extend(escalated);
            let next = match (next_check_in, next_escalation) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok((events, next))
        })?;
        self.hub.publish(events);
        Ok(next)
    }

    /// Prunes the alarm event log (see `events.rs`); returns how many events went.
    pub(crate) fn prune_events(&self, now: DateTime<Utc>) -> Result<usize> {
        self.with(|c| events::prune(c, now))
    }

    /// A fresh event stream's alarms and the newest event id they cover.
    pub(crate) fn event_snapshot(&self, now: DateTime<Utc>) -> Result<(Vec<AlarmChange>, i64)> {
        let esc = self.timings.escalate_after;
        self.with(|c| events::snapshot(c, now, esc))
    }

    /// The current view of every alarm with an event after `after`, by newest event id.
    pub(crate) fn changes_after(&self, after: i64) -> Result<Vec<AlarmChange>> {
        let esc = self.timings.escalate_after;
        self.with(|c| events::changes_after(c, after, esc))
    }
}

/// Enrolls (or re-enrolls) a device in the database at `path` and returns its token.
pub(crate) fn enroll_device(path: &Path, device_id: &str) -> Result<String> {
    auth::enroll_device(&schema::open_connection(path)?, device_id)
}

/// Enrolls (or re-enrolls) a dispatcher in the database at `path` and returns its token.
pub(crate) fn enroll_dispatcher(path: &Path, name: &str) -> Result<String> {
    auth::enroll_dispatcher(&schema::open_connection(path)?, name)
}
