//! The server's storage: every SQL statement of the crate lives under this module, behind
//! [`Storage`] (the running server's handle), [`ServerStore`] (reads for tests and demos) and
//! the enrollment functions. Two backends hold the same tables and follow the same rules:
//!
//! - `sqlite/`: one SQLite file, the embedded default (tests, demos, small sites); one
//!   server process;
//! - `postgres/`: a PostgreSQL database that several server processes share.
//!
//! The files directly here hold what both share, without SQL: the intake steps and answers
//! (`intake.rs`), the dispatcher moves (`dispatch.rs`), check-in timing (`check_ins.rs`),
//! building an alarm's view from its rows (`view.rs`), the pages of the dispatcher alarm list
//! (`pages.rs`), the event log's rules (`events.rs`),
//! the pages of the dispatcher report list (`reports.rs`), tokens (`auth.rs`) and times
//! (`column.rs`).
//!
//! [`Storage`] runs SQLite's blocking calls on tokio's blocking pool and publishes the events
//! of every commit to the hub right after it; on PostgreSQL the events reach the hub of every
//! instance through `LISTEN`/`NOTIFY` (`postgres/listen.rs`). Writes run to completion even
//! if the request that asked for them goes away.

mod auth;
mod check_ins;
mod column;
mod dispatch;
mod events;
mod intake;
mod pages;
mod postgres;
mod read;
mod reports;
mod sqlite;
mod stored;
mod view;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, ItemResult, SosStatus};
use tokio::sync::Notify;

pub use auth::Enrollment;
pub use check_ins::CHECK_IN_RESOLVER;
pub(crate) use column::now;
pub(crate) use dispatch::{Advance, Lookup, Move};
pub(crate) use events::AlarmChange;
pub(crate) use intake::Incoming;
pub use intake::POISON_REASON;
pub(crate) use pages::{AlarmCounts, AlarmPage, AlarmQuery, Position};
pub use read::ServerStore;
pub(crate) use reports::{ReportPage, ReportQuery};
pub use stored::{StoredRecord, StoredSosState};

use crate::config::Database;
use crate::error::{Result, ServerError};
use crate::hub::Hub;
use postgres::Postgres;
use sqlite::Sqlite;

/// The timings storage applies (from [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// How long an alarm may wait for an acknowledge before it is escalated.
    pub(crate) escalate_after: Duration,
    /// How long a check-in minute lasts.
    pub(crate) check_in_minute: Duration,
}

/// What storing a batch answered.
#[derive(Debug)]
pub(crate) struct StoredBatch {
    /// One result per processed record, in order.
    pub(crate) results: Vec<ItemResult>,
    /// Whether it was stored a second time, with conflict checks (PostgreSQL: a record's key
    /// was stored already).
    pub(crate) stored_again: bool,
}

impl StoredBatch {
    /// What the caller needs of a stored batch; wakes the check-in timer first if the batch
    /// moved one of its deadlines.
    fn of(done: intake::Intake, timer_wake: &Notify) -> Self {
        if done.timing_changed {
            timer_wake.notify_one();
        }
        StoredBatch {
            results: done.results,
            stored_again: done.stored_again,
        }
    }
}

/// The running server's storage.
pub(crate) struct Storage {
    backend: Backend,
    timings: Timings,
    hub: Hub,
    timer_wake: Arc<Notify>,
}

enum Backend {
    Sqlite(Arc<Sqlite>),
    Postgres(Postgres),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

/// Runs a blocking SQLite call on the blocking pool (to completion, whatever the caller does).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("database task failed: {e}")))?
}

/// Runs a PostgreSQL write as its own task (to completion, whatever the caller does).
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(f)
        .await
        .map_err(|e| ServerError::Internal(format!("database task failed: {e}")))?
}

impl Storage {
    /// Opens (creating or upgrading) the database. On PostgreSQL this also starts the
    /// notification listener on the current runtime.
    pub(crate) async fn open(database: &Database, timings: Timings, hub: Hub) -> Result<Self> {
        let timer_wake = Arc::new(Notify::new());
        let backend = match database {
            Database::Sqlite(path) => {
                let path = path.clone();
                Backend::Sqlite(Arc::new(blocking(move || Sqlite::open(&path)).await?))
            }
            Database::Postgres(url) => {
                let db = Postgres::connect(url).await?;
                postgres::listen::start(url, hub.clone(), timer_wake.clone()).await?;
                Backend::Postgres(db)
            }
        };
        Ok(Self {
            backend,
            timings,
            hub,
            timer_wake,
        })
    }

    /// The hub this storage publishes to.
    pub(crate) fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Notified when a check-in or an alarm arrives (the timer's next deadline may move).
    pub(crate) fn timer_wake(&self) -> &Notify {
        &self.timer_wake
    }

    /// Whether the database answers (for a readiness probe).
    pub(crate) async fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.ping()).await
            }
            Backend::Postgres(db) => db.ping().await,
        }
    }

    /// The device a bearer token belongs to.
    pub(crate) async fn device_for_token(&self, token: String) -> Result<Option<String>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.device_for_token(&token)).await
            }
            Backend::Postgres(db) => db.device_for_token(&token).await,
        }
    }

    /// The dispatcher a bearer token belongs to.
    pub(crate) async fn dispatcher_for_token(&self, token: String) -> Result<Option<String>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.dispatcher_for_token(&token)).await
            }
            Backend::Postgres(db) => db.dispatcher_for_token(&token).await,
        }
    }

    /// Stores a batch of `device_id` (committed before this returns): one result per record,
    /// in order. Records in `reject_ids` are rejected as poison (test faults).
    pub(crate) async fn process_batch(
        &self,
        device_id: String,
        records: Vec<Incoming>,
        reject_ids: HashSet<String>,
    ) -> Result<StoredBatch> {
        let minute = self.timings.check_in_minute;
        let wake = self.timer_wake.clone();
        match &self.backend {
            Backend::Sqlite(db) => {
                let (db, hub) = (db.clone(), self.hub.clone());
                blocking(move || {
                    let mut done = db.process_batch(&device_id, &records, &reject_ids, minute)?;
                    hub.publish(std::mem::take(&mut done.events));
                    Ok(StoredBatch::of(done, &wake))
                })
                .await
            }
            Backend::Postgres(db) => {
                let db = db.clone();
                detached(async move {
                    let done = db
                        .process_batch(&device_id, &records, &reject_ids, minute)
                        .await?;
                    Ok(StoredBatch::of(done, &wake))
                })
                .await
            }
        }
    }

    /// Statuses of those `ids` that are alarms of `device_id`, in request order.
    pub(crate) async fn sos_statuses(
        &self,
        device_id: String,
        ids: Arc<Vec<String>>,
    ) -> Result<Vec<SosStatus>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.sos_statuses(&device_id, &ids)).await
            }
            Backend::Postgres(db) => db.sos_statuses(&device_id, &ids).await,
        }
    }

    /// One page of the dispatcher list, in receive order (`pages.rs`).
    pub(crate) async fn dispatch_page(&self, query: AlarmQuery) -> Result<AlarmPage> {
        let esc = self.timings.escalate_after;
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.dispatch_page(&query, esc)).await
            }
            Backend::Postgres(db) => db.dispatch_page(&query, esc).await,
        }
    }

    /// How many alarms are open and unacknowledged, and the oldest unacknowledged one's
    /// receive time (counted in SQL, for `/metrics`).
    pub(crate) async fn alarm_counts(&self) -> Result<AlarmCounts> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.alarm_counts()).await
            }
            Backend::Postgres(db) => db.alarm_counts().await,
        }
    }

    /// The stored record `id` (canonical form) of `device`, if any.
    pub(crate) async fn record(&self, device: String, id: String) -> Result<Option<StoredRecord>> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.record(&device, &id)).await
            }
            Backend::Postgres(db) => Ok(db.records(stored::Which::One(&device, &id)).await?.pop()),
        }
    }

    /// One page of the dispatcher report list (incident reports, newest first).
    pub(crate) async fn report_page(&self, q: ReportQuery) -> Result<ReportPage> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.report_page(&q)).await
            }
            Backend::Postgres(db) => db.report_page(&q).await,
        }
    }

    /// Moves alarm `id` (of `device`, if given) forward.
    pub(crate) async fn advance_sos(
        &self,
        id: String,
        device: Option<String>,
        mv: Move,
    ) -> Result<Lookup<DispatchSos>> {
        let esc = self.timings.escalate_after;
        match &self.backend {
            Backend::Sqlite(db) => {
                let (db, hub) = (db.clone(), self.hub.clone());
                blocking(move || {
                    let (found, event) = db.advance_sos(&id, device.as_deref(), &mv, esc)?;
                    hub.publish(event);
                    Ok(found)
                })
                .await
            }
            Backend::Postgres(db) => {
                let db = db.clone();
                detached(async move { db.advance_sos(&id, device.as_deref(), &mv, esc).await })
                    .await
            }
        }
    }

    /// Raises the missed check-ins and escalates the alarms due by `now`, in one transaction;
    /// returns when the next one is due.
    pub(crate) async fn run_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let esc = self.timings.escalate_after;
        match &self.backend {
            Backend::Sqlite(db) => {
                let (db, hub) = (db.clone(), self.hub.clone());
                blocking(move || {
                    let (events, next) = db.run_due(now, esc)?;
                    hub.publish(events);
                    Ok(next)
                })
                .await
            }
            Backend::Postgres(db) => {
                let db = db.clone();
                detached(async move { db.run_due(now, esc).await }).await
            }
        }
    }

    /// Prunes the alarm event log (see `events.rs`); returns how many events went.
    pub(crate) async fn prune_events(&self, now: DateTime<Utc>) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.prune_events(now).map(|n| n as u64)).await
            }
            Backend::Postgres(db) => db.prune_events(now).await,
        }
    }

    /// A fresh event stream's alarms and the newest event id they cover.
    pub(crate) async fn event_snapshot(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<AlarmChange>, i64)> {
        let esc = self.timings.escalate_after;
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.event_snapshot(now, esc)).await
            }
            Backend::Postgres(db) => db.event_snapshot(now, esc).await,
        }
    }

    /// The current view of every alarm with an event after `after`, by newest event id.
    pub(crate) async fn changes_after(&self, after: i64) -> Result<Vec<AlarmChange>> {
        let esc = self.timings.escalate_after;
        match &self.backend {
            Backend::Sqlite(db) => {
                let db = db.clone();
                blocking(move || db.changes_after(after, esc)).await
            }
            Backend::Postgres(db) => db.changes_after(after, esc).await,
        }
    }
}
