//! The SQLite backend: the embedded default (tests, demos, small sites). One file holds:
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
//! protocol enums; times are RFC 3339 text (`storage/column.rs`).
//!
//! [`Sqlite`] keeps one writer connection (every write is serialized on it, so `seq` and event
//! ids follow commit order) and a small pool of reader connections: in WAL mode a reader sees
//! the last commit without waiting for the writer, so a long dispatcher list does not hold up
//! an upload or a status poll.

pub(crate) mod auth;
mod check_ins;
pub(crate) mod dispatch;
mod escalation;
mod events;
mod intake;
pub(crate) mod records;
pub(crate) mod schema;
pub(crate) mod view;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, SosStatus};
use rusqlite::{Connection, TransactionBehavior};

use crate::error::Result;
use crate::hub::AlarmEvent;
use crate::storage::dispatch::{Lookup, Move};
use crate::storage::events::AlarmChange;
use crate::storage::intake::{Incoming, Intake};
use crate::storage::pages::{AlarmCounts, AlarmPage, AlarmQuery};
use crate::storage::stored::{StoredRecord, Which};

/// Most reader connections open at once.
const MAX_READERS: usize = 4;

/// A server database on SQLite: one writer connection and a pool of readers.
pub(crate) struct Sqlite {
    writer: Mutex<Connection>,
    readers: Readers,
}

impl Sqlite {
    /// Opens (creating or upgrading) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            writer: Mutex::new(schema::open_connection(path)?),
            readers: Readers {
                path: path.to_path_buf(),
                pool: Mutex::new(Pool::default()),
                freed: Condvar::new(),
            },
        })
    }

    fn write<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = lock(&self.writer);
        f(&mut guard)
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.take()?;
        let out = f(&conn);
        self.readers.give_back(conn);
        out
    }

    /// Whether the database answers a read.
    pub(crate) fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?))
    }

    pub(crate) fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        self.read(|c| auth::device_for_token(c, token))
    }

    pub(crate) fn dispatcher_for_token(&self, token: &str) -> Result<Option<String>> {
        self.read(|c| auth::dispatcher_for_token(c, token))
    }

    pub(crate) fn process_batch(
        &self,
        device_id: &str,
        records: &[Incoming],
        reject_ids: &HashSet<String>,
        minute: Duration,
    ) -> Result<Intake> {
        // What needs no database is done before the one writer is taken.
        let checked = crate::storage::intake::check(records, reject_ids, device_id);
        self.write(|c| intake::process_batch(c, device_id, checked, minute))
    }

    /// The stored record `id` of `device`, if any.
    pub(crate) fn record(&self, device_id: &str, id: &str) -> Result<Option<StoredRecord>> {
        self.read(|c| Ok(records::records(c, Which::One(device_id, id))?.pop()))
    }

    /// One page of the dispatcher report list.
    pub(crate) fn report_page(
        &self,
        q: &crate::storage::reports::ReportQuery,
    ) -> Result<crate::storage::reports::ReportPage> {
        self.read(|c| records::report_page(c, q))
    }

    pub(crate) fn sos_statuses(&self, device_id: &str, ids: &[String]) -> Result<Vec<SosStatus>> {
        self.read(|c| dispatch::sos_statuses(c, device_id, ids))
    }

    /// One page of the dispatcher list, read in one snapshot.
    pub(crate) fn dispatch_page(
        &self,
        query: &AlarmQuery,
        escalate_after: Duration,
    ) -> Result<AlarmPage> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let out = dispatch::dispatch_page(&tx, query, escalate_after)?;
            tx.finish()?;
            Ok(out)
        })
    }

    /// The alarm counts of the `/metrics` gauges.
    pub(crate) fn alarm_counts(&self) -> Result<AlarmCounts> {
        self.read(dispatch::alarm_counts)
    }

    pub(crate) fn advance_sos(
        &self,
        id: &str,
        device: Option<&str>,
        mv: &Move,
        escalate_after: Duration,
    ) -> Result<(Lookup<DispatchSos>, Option<AlarmEvent>)> {
        self.write(|c| dispatch::advance_sos(c, id, device, mv, escalate_after))
    }

    /// Raises the missed check-ins and escalates the alarms due by `now`, in one transaction;
    /// their events and when the next one is due.
    pub(crate) fn run_due(
        &self,
        now: DateTime<Utc>,
        escalate_after: Duration,
    ) -> Result<(Vec<AlarmEvent>, Option<DateTime<Utc>>)> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (mut events, next_check_in) = check_ins::raise_due(&tx, now)?;
            let (escalated, next_escalation) = escalation::escalate_due(&tx, now, escalate_after)?;
            tx.commit()?;
            events.extend(escalated);
            let next = match (next_check_in, next_escalation) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            Ok((events, next))
        })
    }

    pub(crate) fn prune_events(&self, now: DateTime<Utc>) -> Result<usize> {
        self.write(|c| events::prune(c, now))
    }

    pub(crate) fn event_snapshot(
        &self,
        now: DateTime<Utc>,
        escalate_after: Duration,
    ) -> Result<(Vec<AlarmChange>, i64)> {
        self.read(|c| events::snapshot(c, now, escalate_after))
    }

    pub(crate) fn changes_after(
        &self,
        after: i64,
        escalate_after: Duration,
    ) -> Result<Vec<AlarmChange>> {
        self.read(|c| events::changes_after(c, after, escalate_after))
    }
}

/// Reader connections, opened on demand up to [`MAX_READERS`]; a caller waits for a free one
/// beyond that.
struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    freed: Condvar,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

impl Readers {
    fn take(&self) -> Result<Connection> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < MAX_READERS {
                pool.open += 1;
                drop(pool);
                let opened = schema::open_reader(&self.path);
                if opened.is_err() {
                    lock(&self.pool).open -= 1;
                    self.freed.notify_one();
                }
                return opened;
            }
            pool = self.freed.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give_back(&self, conn: Connection) {
        lock(&self.pool).idle.push(conn);
        self.freed.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
