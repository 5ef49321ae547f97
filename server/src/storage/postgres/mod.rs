//! The PostgreSQL backend: one database shared by any number of server processes. The tables
//! are those of SQLite (`server/sql/postgres/`), and so are the rules (`storage/*.rs`); what
//! differs is how concurrent writers, possibly in different processes, are kept apart:
//!
//! - **Exactly once.** A record is inserted with `INSERT … ON CONFLICT (device_id, record_id)
//!   DO NOTHING RETURNING seq`. When a phone's retry reaches another instance while the first
//!   attempt is still in its transaction, the second insert waits for the first to commit and
//!   then inserts nothing; the record is read back and answered `duplicate` (or `conflict`).
//!   `seq` comes from an identity sequence: receive order, with gaps where a transaction
//!   rolled back or an insert found its key stored already.
//! - **Alarms in order.** Every transaction that may change an alarm or a check-in (a batch
//!   with any record but incident reports, a dispatcher move, a timer round) first takes the
//!   transaction-level advisory lock [`ALARM_LOCK`]. So these are serialized across all
//!   instances, their alarm event ids grow in commit order (the event stream's `Last-Event-ID`
//!   never skips one), a missed check-in is raised once, and an escalation is marked once.
//!   Incident reports do not take it and are stored in parallel. Taking the lock first, before
//!   any row lock, leaves no room for a deadlock between two such transactions.
//! - **Live events across instances.** A transaction that logs an alarm event also sends
//!   `NOTIFY` on [`CHANNEL`] (`e <event id> <device id>`; `t` when the timer's next deadline
//!   may have moved). PostgreSQL delivers notifications only after the commit, in commit
//!   order. Each running instance LISTENs on one dedicated connection and feeds its hub
//!   (`listen.rs`), so status watches and event streams on any instance see changes made by
//!   every instance; after a lost connection it reads the events it missed from the log.
//!
//! Everything else goes through a connection pool ([`Postgres`]).

mod auth;
mod dispatch;
mod events;
mod intake;
pub(crate) mod listen;
mod records;
mod schema;
mod timer;
mod view;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crewsafe_protocol::{DispatchSos, SosStatus, Vocabulary};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::{Result, ServerError};
use crate::storage::dispatch::{Lookup, Move};
use crate::storage::events::AlarmChange;
use crate::storage::intake::{Incoming, Intake};
use crate::storage::pages::{AlarmCounts, AlarmPage, AlarmQuery};
use crate::storage::stored::{StoredRecord, Which};

/// The transaction-level advisory lock every transaction that may change an alarm or a
/// check-in holds until it commits (an arbitrary constant: "CrewSafe" in ASCII, shortened).
pub(crate) const ALARM_LOCK: i64 = 0x4372_6577_5361;

/// The notification channel of alarm events.
pub(crate) const CHANNEL: &str = "crewsafe_alarm_events";

/// Connections in the pool of one server process.
pub(crate) const POOL_SIZE: usize = 16;

/// How long a request waits for a pooled connection (or for a new one) before it fails.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// A PostgreSQL server database: a pool of connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Postgres {
    pool: Pool,
}

/// Parses a connection string (URL or `key=value` pairs), naming the application.
pub(crate) fn config(url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| ServerError::Config("the PostgreSQL connection string is invalid".into()))?;
    if config.get_application_name().is_none() {
        config.application_name("crewsafe-server");
    }
    Ok(config)
}

/// A protocol word read back from a column.
pub(crate) fn word<V: Vocabulary>(text: &str) -> Result<V> {
    text.parse()
        .map_err(|_| ServerError::Corrupt("stored value unreadable: unknown word".into()))
}

impl Postgres {
    /// Connects (creating or upgrading the schema). Must run on a tokio runtime, which then
    /// drives the pooled connections.
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let manager = Manager::from_config(
            config(url)?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| ServerError::Config(format!("PostgreSQL pool: {e}")))?;
        let db = Self { pool };
        let mut client = db.client().await?;
        schema::migrate(&mut client).await?;
        Ok(db)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        Ok(self.pool.get().await?)
    }

    /// Whether the database answers.
    pub(crate) async fn ping(&self) -> Result<()> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub(crate) async fn device_for_token(&self, token: &str) -> Result<Option<String>> {
        auth::device_for_token(&self.client().await?, token).await
    }

    pub(crate) async fn dispatcher_for_token(&self, token: &str) -> Result<Option<String>> {
        auth::dispatcher_for_token(&self.client().await?, token).await
    }

    pub(crate) async fn enroll_device(&self, device_id: &str) -> Result<String> {
        auth::enroll_device(&self.client().await?, device_id).await
    }

    pub(crate) async fn enroll_dispatcher(&self, name: &str) -> Result<String> {
        auth::enroll_dispatcher(&self.client().await?, name).await
    }

    pub(crate) async fn devices(&self) -> Result<Vec<crate::storage::auth::Enrollment>> {
        let sql = "SELECT device_id, enrolled_at FROM devices ORDER BY device_id";
        auth::list(&self.client().await?, sql).await
    }

    pub(crate) async fn dispatchers(&self) -> Result<Vec<crate::storage::auth::Enrollment>> {
        let sql = "SELECT name, enrolled_at FROM dispatchers ORDER BY name";
        auth::list(&self.client().await?, sql).await
    }

    pub(crate) async fn revoke_device(&self, device_id: &str) -> Result<bool> {
        let sql = "DELETE FROM devices WHERE device_id = $1";
        auth::revoke(&self.client().await?, sql, device_id).await
    }

    pub(crate) async fn revoke_dispatcher(&self, name: &str) -> Result<bool> {
        let sql = "DELETE FROM dispatchers WHERE name = $1";
        auth::revoke(&self.client().await?, sql, name).await
    }

    pub(crate) async fn process_batch(
        &self,
        device_id: &str,
        records: &[Incoming],
        reject_ids: &HashSet<String>,
        minute: Duration,
    ) -> Result<Intake> {
        let mut client = self.client().await?;
        let (mut tries, mut keys) = (0, intake::Keys::New);
        loop {
            match intake::process_batch(&mut client, device_id, records, reject_ids, minute, keys)
                .await
            {
                Err(e) if keys == intake::Keys::New && is_stored_key(&e) => {
                    // Rare: a record sent again (its answer lost) or stored by another
                    // instance meanwhile.
                    keys = intake::Keys::Checked;
                    log::debug!("a batch held a stored key: storing it again with conflict checks");
                }
                Err(e) if tries < 2 && is_deadlock(&e) => {
                    tries += 1;
                    log::warn!("database deadlock, storing the batch again");
                }
                other => {
                    return other.map(|done| Intake {
                        stored_again: keys == intake::Keys::Checked,
                        ..done
                    })
                }
            }
        }
    }

    pub(crate) async fn sos_statuses(
        &self,
        device_id: &str,
        ids: &[String],
    ) -> Result<Vec<SosStatus>> {
        dispatch::sos_statuses(&self.client().await?, device_id, ids).await
    }

    /// One page of the dispatcher list, read in one snapshot.
    pub(crate) async fn dispatch_page(
        &self,
        query: &AlarmQuery,
        escalate_after: Duration,
    ) -> Result<AlarmPage> {
        let mut client = self.client().await?;
        let tx = read_snapshot(&mut client).await?;
        let out = dispatch::dispatch_page(&tx, query, escalate_after).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The alarm counts of the `/metrics` gauges.
    pub(crate) async fn alarm_counts(&self) -> Result<AlarmCounts> {
        dispatch::alarm_counts(&self.client().await?).await
    }

    pub(crate) async fn advance_sos(
        &self,
        id: &str,
        device: Option<&str>,
        mv: &Move,
        escalate_after: Duration,
    ) -> Result<Lookup<DispatchSos>> {
        let mut client = self.client().await?;
        dispatch::advance_sos(&mut client, id, device, mv, escalate_after).await
    }

    /// Raises the missed check-ins and escalates the alarms due by `now`, in one transaction;
    /// when the next one is due.
    pub(crate) async fn run_due(
        &self,
        now: DateTime<Utc>,
        escalate_after: Duration,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut client = self.client().await?;
        timer::run_due(&mut client, now, escalate_after).await
    }

    pub(crate) async fn prune_events(&self, now: DateTime<Utc>) -> Result<u64> {
        events::prune(&self.client().await?, now).await
    }

    pub(crate) async fn event_snapshot(
        &self,
        now: DateTime<Utc>,
        escalate_after: Duration,
    ) -> Result<(Vec<AlarmChange>, i64)> {
        let mut client = self.client().await?;
        let tx = read_snapshot(&mut client).await?;
        let out = events::snapshot(&tx, now, escalate_after).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn changes_after(
        &self,
        after: i64,
        escalate_after: Duration,
    ) -> Result<Vec<AlarmChange>> {
        let mut client = self.client().await?;
        let tx = read_snapshot(&mut client).await?;
        let out = events::changes_after(&tx, after, escalate_after).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn records(&self, which: Which<'_>) -> Result<Vec<StoredRecord>> {
        records::records(&self.client().await?, which).await
    }

    /// One page of the dispatcher report list.
    pub(crate) async fn report_page(
        &self,
        q: &crate::storage::reports::ReportQuery,
    ) -> Result<crate::storage::reports::ReportPage> {
        records::report_page(&self.client().await?, q).await
    }

    pub(crate) async fn count_of(&self, id: &str) -> Result<i64> {
        records::count_of(&self.client().await?, id).await
    }

    pub(crate) async fn record_count(&self) -> Result<i64> {
        records::record_count(&self.client().await?).await
    }

    /// The view of the first received alarm with this id.
    pub(crate) async fn first_alarm_view(
        &self,
        id: &str,
        escalate_after: Duration,
    ) -> Result<Option<DispatchSos>> {
        let mut client = self.client().await?;
        let tx = read_snapshot(&mut client).await?;
        let out = match dispatch::first_alarm(&tx, id).await? {
            Some(seq) => view::alarm_view(&tx, seq, escalate_after).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(out)
    }
}

/// A read-only transaction that sees one snapshot throughout.
async fn read_snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// Whether PostgreSQL aborted a transaction as a deadlock victim (two batches of one device
/// racing on different instances may lock the same records in different orders): it is
/// simply run again.
/// Whether `e` is an insert refused because the record's key is stored already.
fn is_stored_key(e: &ServerError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(e, ServerError::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some("records_pkey"))
}

fn is_deadlock(e: &ServerError) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(e, ServerError::Postgres(e) if e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    }))
}
