//! [`ServerStore`]: direct access to a server database for tests, demos and operators (reads,
//! enrollment, and the dispatcher moves), usable while servers run. On SQLite it has its own
//! connection; on PostgreSQL its own small pool and a runtime to drive it.

use std::path::Path;
use std::time::Duration;

use crewsafe_protocol::{DispatchSos, DispatchStatus};
use rusqlite::Connection;

use super::auth::Enrollment;
use super::dispatch::{Advance, Lookup, Move};
use super::pages::AlarmQuery;
use super::postgres::Postgres;
use super::sqlite;
use super::stored::{StoredRecord, StoredSosState, Which};
use crate::config::{Database, DEFAULT_ESCALATE_AFTER};
use crate::error::{Result, ServerError};

/// Direct access to a server database (reads, enrollment and the dispatcher moves, for tests,
/// demos and operators), usable while servers run. Blocking: do not call it from async code.
///
/// Its dispatcher moves are stored and logged like any. On SQLite, a running server's status
/// watches and event streams learn of them only when something else wakes them: use
/// [`crate::RunningServer::acknowledge`] and [`crate::RunningServer::resolve`] to have them
/// pushed at once. On PostgreSQL every running instance hears of them at once.
pub struct ServerStore {
    backend: Backend,
    escalate_after: Duration,
}

enum Backend {
    Sqlite(Connection),
    /// The pool goes before the runtime that drives its connections.
    Postgres {
        db: Postgres,
        runtime: tokio::runtime::Runtime,
    },
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore").finish_non_exhaustive()
    }
}

impl ServerStore {
    /// Opens the SQLite database at `db_path` (creating the schema if the file is new).
    pub fn open(db_path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            backend: Backend::Sqlite(sqlite::schema::open_connection(db_path.as_ref())?),
            escalate_after: DEFAULT_ESCALATE_AFTER,
        })
    }

    /// Opens `database` (creating or upgrading its schema).
    pub fn connect(database: &Database) -> Result<Self> {
        match database {
            Database::Sqlite(path) => Self::open(path),
            Database::Postgres(url) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let db = runtime.block_on(Postgres::connect(url))?;
                Ok(Self {
                    backend: Backend::Postgres { db, runtime },
                    escalate_after: DEFAULT_ESCALATE_AFTER,
                })
            }
        }
    }

    /// Computes `escalates_at` in the views with this escalation time (the server's
    /// [`crate::ServerConfig::escalate_after`]; the default otherwise).
    pub fn with_escalate_after(mut self, after: Duration) -> Self {
        self.escalate_after = after;
        self
    }

    fn records_of(&self, which: Which<'_>) -> Result<Vec<StoredRecord>> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::records::records(c, which),
            Backend::Postgres { runtime, db } => runtime.block_on(db.records(which)),
        }
    }

    /// Every stored record, in receive order.
    pub fn records(&self) -> Result<Vec<StoredRecord>> {
        self.records_of(Which::All)
    }

    /// The records of one device, in receive order.
    pub fn records_of_device(&self, device_id: &str) -> Result<Vec<StoredRecord>> {
        self.records_of(Which::Device(device_id))
    }

    /// The record `id` of `device_id`, if stored.
    pub fn record(&self, device_id: &str, id: &str) -> Result<Option<StoredRecord>> {
        Ok(self
            .records_of(Which::One(device_id, id))?
            .into_iter()
            .next())
    }

    /// How many stored records (of any device) have this id: 0 or 1 unless devices reuse ids.
    pub fn count_of(&self, id: &str) -> Result<usize> {
        let n = match &self.backend {
            Backend::Sqlite(c) => sqlite::records::count_of(c, id)?,
            Backend::Postgres { runtime, db } => runtime.block_on(db.count_of(id))?,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Number of stored records.
    pub fn record_count(&self) -> Result<usize> {
        let n = match &self.backend {
            Backend::Sqlite(c) => sqlite::records::record_count(c)?,
            Backend::Postgres { runtime, db } => runtime.block_on(db.record_count())?,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Dispatch status of alarm `id` (an SOS, or the start of a missed check-in; the first
    /// received, should two devices share the id).
    pub fn sos_status(&self, id: &str) -> Result<Option<DispatchStatus>> {
        Ok(self.sos_state(id)?.map(|s| s.status))
    }

    /// The full dispatcher view of alarm `id` (the first received, should two devices share
    /// the id).
    pub fn sos_state(&self, id: &str) -> Result<Option<StoredSosState>> {
        let esc = self.escalate_after;
        match &self.backend {
            Backend::Sqlite(c) => match sqlite::dispatch::first_alarm(c, id)? {
                Some(seq) => sqlite::view::alarm_view(c, seq, esc),
                None => Ok(None),
            },
            Backend::Postgres { runtime, db } => runtime.block_on(db.first_alarm_view(id, esc)),
        }
    }

    /// Every alarm as dispatchers see it, in receive order (read a page at a time, as the
    /// dispatcher list is: by receive time, ties by `seq`).
    pub fn dispatch_list(&self) -> Result<Vec<DispatchSos>> {
        let esc = self.escalate_after;
        let mut query = AlarmQuery::all(crewsafe_protocol::MAX_SOS_PAGE);
        let mut out = Vec::new();
        loop {
            let page = match &self.backend {
                Backend::Sqlite(c) => sqlite::dispatch::dispatch_page(c, &query, esc)?,
                Backend::Postgres { runtime, db } => {
                    runtime.block_on(db.dispatch_page(&query, esc))?
                }
            };
            out.extend(page.sos);
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Enrolls (or re-enrolls, replacing its token) a device and returns its bearer token.
    pub fn enroll_device(&self, device_id: &str) -> Result<String> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::enroll_device(c, device_id),
            Backend::Postgres { runtime, db } => runtime.block_on(db.enroll_device(device_id)),
        }
    }

    /// Enrolls (or re-enrolls, replacing its token) a dispatcher and returns its bearer token.
    pub fn enroll_dispatcher(&self, name: &str) -> Result<String> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::enroll_dispatcher(c, name),
            Backend::Postgres { runtime, db } => runtime.block_on(db.enroll_dispatcher(name)),
        }
    }

    /// Every enrolled device (id and when its token was issued; never the token), by id.
    pub fn devices(&self) -> Result<Vec<Enrollment>> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::devices(c),
            Backend::Postgres { runtime, db } => runtime.block_on(db.devices()),
        }
    }

    /// Every enrolled dispatcher (name and when its token was issued), by name.
    pub fn dispatchers(&self) -> Result<Vec<Enrollment>> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::dispatchers(c),
            Backend::Postgres { runtime, db } => runtime.block_on(db.dispatchers()),
        }
    }

    /// Revokes a device: its token is refused (401) from the next request on, also by
    /// running servers; its records stay. `false` if it was not enrolled. Enrolling it again
    /// issues a new token.
    pub fn revoke_device(&self, device_id: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::revoke_device(c, device_id),
            Backend::Postgres { runtime, db } => runtime.block_on(db.revoke_device(device_id)),
        }
    }

    /// Revokes a dispatcher as [`ServerStore::revoke_device`] revokes a device.
    pub fn revoke_dispatcher(&self, name: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(c) => sqlite::auth::revoke_dispatcher(c, name),
            Backend::Postgres { runtime, db } => runtime.block_on(db.revoke_dispatcher(name)),
        }
    }

    fn advance(&self, id: &str, dispatcher: &str, action: Advance) -> Result<Option<DispatchSos>> {
        let mv = Move {
            action,
            dispatcher: dispatcher.to_string(),
            message: None,
        };
        let esc = self.escalate_after;
        let found = match &self.backend {
            Backend::Sqlite(c) => sqlite::dispatch::advance_sos(c, id, None, &mv, esc)?.0,
            Backend::Postgres { runtime, db } => {
                runtime.block_on(db.advance_sos(id, None, &mv, esc))?
            }
        };
        match found {
            Lookup::Found(s) => Ok(Some(s)),
            Lookup::NotFound => Ok(None),
            Lookup::Ambiguous => Err(ServerError::InvalidInput(
                "several devices sent an sos with this id".into(),
            )),
        }
    }

    /// Marks SOS `id` acknowledged by `dispatcher` (as `POST .../acknowledge` does); `None`
    /// if unknown.
    pub fn acknowledge_sos(&self, id: &str, dispatcher: &str) -> Result<Option<DispatchSos>> {
        self.advance(id, dispatcher, Advance::Acknowledge)
    }

    /// Marks SOS `id` resolved by `dispatcher` (as `POST .../resolve` does); `None` if
    /// unknown.
    pub fn resolve_sos(&self, id: &str, dispatcher: &str) -> Result<Option<DispatchSos>> {
        self.advance(id, dispatcher, Advance::Resolve)
    }
}
