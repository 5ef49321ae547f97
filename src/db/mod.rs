//! The database: one SQLite connection owned by the store, the data key, and the operations
//! on records with their outbox state, and drafts (`records.rs`, `outbox.rs`, `drafts.rs`).
//!
//! # What someone who copies the files can see
//! The database, `-wal` and `-shm` files show, in the clear:
//! - record ids (random UUIDs), record kinds (`sos`, `sos_location`, `sos_cancel`,
//!   `incident_report`) and which SOS a follow-up refers to;
//! - per record, its outbox state (same row since schema v3): lane, upload order, sync
//!   state, number of attempts, server receive time once delivered, and an SOS's dispatch
//!   status;
//! - per lane, its retry times, where its queue starts and how many records it holds (schema
//!   v4; all derivable from the records' states anyway);
//! - draft ids and their revision counters;
//! - the schema version, and the number and size of rows (hence roughly how long a text is).
//!
//! Everything else is sealed (see [`crate::crypto`]): who raised or wrote a record, every
//! location, every time stamp, notes, addresses, names, descriptions, narratives, police and
//! dispatch numbers, and server rejection reasons.
//!
//! # Pragmas
//! WAL journal; `synchronous=FULL` for every write that queues a record (one fsync of the
//! WAL per commit), `NORMAL` for draft autosaves; `secure_delete=ON` so deleted drafts are
//! overwritten; `temp_store=MEMORY` so sorts never spill plaintext-free but still private
//! pages to temp files; foreign keys on.

pub mod attachments;
pub mod check_in_payloads;
pub mod check_ins;
mod columns;
mod dispatch;
mod drafts;
pub mod media;
pub mod outbox;
pub mod records;
pub mod schema;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{de::DeserializeOwned, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{DataKey, Slot};
use crate::error::{Result, StoreError};

const CANARY: &[u8] = b"crewsafe key canary v1";
const CANARY_SLOT: Slot<'static> = Slot {
    table: "meta",
    column: "value",
    id: "canary",
};

/// How hard a commit must reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the WAL at every commit: anything queued for the server.
    Full,
    /// fsync at checkpoints only: draft autosaves.
    Normal,
}

/// An open, unlocked store.
pub struct Db {
    conn: Connection,
    key: DataKey,
    path: PathBuf,
    durability: Durability,
    changes: u64,
    /// The outbox's state kept in memory.
    outbox: outbox::OutboxState,
    /// Size limits for new attachments.
    attachment_limits: crate::model::AttachmentLimits,
    /// The crew `raise_sos_quick` raises for (set by `set_crew`).
    pub(crate) quick_crew: Option<crate::model::CrewIdentity>,
}

impl Db {
    /// Opens or creates the store at `path`. A wrong key or a newer schema is refused before
    /// anything is written. A missing file is created (see [`Db::create_file`]); an existing
    /// empty file is refused as damaged, never taken for a new store: since a store is only
    /// ever renamed into place whole, an empty file at `path` was truncated (or is not ours).
    pub fn open(path: &Path, key: DataKey) -> Result<Db> {
        let key = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                return Err(StoreError::Damaged(
                    "the database file is empty (truncated, or not a store)",
                ))
            }
            Ok(_) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Db::create_file(path, key)?,
            Err(e) => return Err(e.into()),
        };
        let mut db = Db::connect(path, key, OpenFlags::empty())?;
        let version = schema::user_version(&db.conn)?;
        schema::check_not_newer(version)?;
        if version == 0 {
            db.create()?;
        } else {
            db.verify_canary()?;
            db.conn.pragma_update(None, "journal_mode", "WAL")?;
            if version < schema::VERSION {
                log::info!(
                    "upgrading the store schema from v{version} to v{}",
                    schema::VERSION
                );
                db.write(Durability::Full, |tx, _| schema::upgrade_from(tx, version))?;
            }
        }
        db.load_floors()?;
        db.clean_media()?;
        log::debug!("store opened (schema v{})", schema::VERSION);
        Ok(db)
    }

    /// Opens a connection with the store's settings (`extra` may add `CREATE`).
    fn connect(path: &Path, key: DataKey, extra: OpenFlags) -> Result<Db> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Room for every statement the store runs, so none is parsed twice.
        conn.set_prepared_statement_cache_capacity(64);
        // Plans that never depend on the values bound (the query planner stability
        // guarantee). Without it SQLite marks a statement with an `x = ?` term and an
        // `ORDER BY` to be re-planned when `?` is rebound, and the statement cache clears the
        // bindings of every statement handed back to it: such a statement was compiled anew at
        // each use (half the time of `get_sos`, whose follow-up query is one). The store has
        // no statistics tables and no `LIKE ?`, so the plans are the same ones.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        // Connection settings only: none of these writes to the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Ok(Db {
            conn,
            key,
            path: path.to_path_buf(),
            durability: Durability::Full,
            changes: 0,
            outbox: outbox::OutboxState::default(),
            attachment_limits: crate::model::AttachmentLimits::default(),
            quick_crew: None,
        })
    }

    /// Creates a new store at `path` whole: it is built beside it under a temporary name
    /// (`<name>.creating`, replaced if a kill left one) and renamed into place once its schema
    /// and key check value are committed. So a file at `path` is always a complete store, and
    /// an empty one can only be damage. Gives the key back.
    fn create_file(path: &Path, key: DataKey) -> Result<DataKey> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".creating");
        let tmp = PathBuf::from(tmp);
        remove_with_companions(&tmp)?;
        let mut db = Db::connect(&tmp, key, OpenFlags::SQLITE_OPEN_CREATE)?;
        db.create()?;
        let Db { conn, key, .. } = db;
        // The last connection closing checkpoints the WAL into the file and removes it.
        conn.close().map_err(|(_, e)| StoreError::Sql(e))?;
        std::fs::rename(&tmp, path)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // The rename must outlive a power cut; a platform that cannot open a folder for
        // syncing still has the renamed file.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(key)
    }

    fn create(&mut self) -> Result<()> {
        let tables: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables != 0 {
            return Err(StoreError::Damaged(
                "the file is a database of another application",
            ));
        }
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        let canary = self.key.seal(CANARY_SLOT, CANARY)?;
        self.write(Durability::Full, |tx, _| {
            schema::upgrade_from(tx, 0)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('canary', ?1)",
                [canary],
            )?;
            Ok(())
        })
    }

    fn verify_canary(&self) -> Result<()> {
        let sealed: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'canary'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let sealed = sealed.ok_or(StoreError::WrongKey)?;
        match self.key.open(CANARY_SLOT, &sealed) {
            Ok(plain) if &plain[..] == CANARY => Ok(()),
            _ => Err(StoreError::WrongKey),
        }
    }

    /// The next number in the commit order of record changes.
    pub fn next_change(&mut self) -> u64 {
        self.changes += 1;
        self.changes
    }

    /// Runs `f` in one IMMEDIATE transaction committed with the given durability. If `f`
    /// fails or panics, or the commit fails, the transaction is rolled back.
    fn write<T>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&Connection, &DataKey) -> Result<T>,
    ) -> Result<T> {
        self.set_durability(durability)?;
        let tx = WriteTx::begin(&self.conn)?;
        let out = f(&self.conn, &self.key)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f`, which makes exactly one write statement, as its own transaction committed
    /// with the given durability: SQLite makes a lone statement atomic by itself, without the
    /// `BEGIN IMMEDIATE` and `COMMIT` statements `write` adds (two more statement runs and
    /// lock rounds, on the path of every SOS save).
    fn write_one<T>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.set_durability(durability)?;
        f(&self.conn)
    }

    fn set_durability(&mut self, durability: Durability) -> Result<()> {
        if self.durability != durability {
            let mode = match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            };
            self.conn.pragma_update(None, "synchronous", mode)?;
            self.durability = durability;
        }
        Ok(())
    }

    /// Serializes and seals a value for `slot`.
    fn seal_json<T: Serialize>(&self, slot: Slot<'_>, value: &T) -> Result<Vec<u8>> {
        let json =
            Zeroizing::new(serde_json::to_vec(value).map_err(|_| StoreError::Encode("record"))?);
        Ok(self.key.seal(slot, &json)?)
    }

    /// Opens and deserializes a value sealed for `slot`.
    fn open_json<T: DeserializeOwned>(&self, slot: Slot<'_>, sealed: &[u8]) -> Result<T> {
        open_json(&self.key, slot, sealed)
    }

    /// Re-seals every sealed value under `new_key` in one transaction, then switches keys.
    /// If anything fails (or the process dies) before the commit, the old key stays valid.
    pub fn rekey(&mut self, new_key: DataKey) -> Result<()> {
        self.write(Durability::Full, |tx, old| {
            reseal_column(tx, old, &new_key, "meta", "key", "value", "meta")?;
            reseal_column(tx, old, &new_key, "records", "id", "payload", "records")?;
            let wedged = records::WEDGED_SLOT_TABLE;
            reseal_column(tx, old, &new_key, "records", "id", "wedged_reason", wedged)?;
            reseal_column(
                tx,
                old,
                &new_key,
                "records",
                "id",
                "dispatch_info",
                "records",
            )?;
            reseal_column(tx, old, &new_key, "drafts", "id", "header", "drafts")?;
            reseal_column(tx, old, &new_key, "drafts", "id", "body", "drafts")?;
            // Attachment files keep their own keys: only the sealed keys change.
            reseal_column(
                tx,
                old,
                &new_key,
                "attachments",
                "id",
                "meta",
                "attachments",
            )?;
            reseal_column(
                tx,
                old,
                &new_key,
                "attachments",
                "id",
                "file_key",
                "attachments",
            )?;
            Ok(())
        })?;
        self.key = new_key;
        Ok(())
    }

    /// Closes the connection (checkpointing the WAL).
    pub fn close(mut self) -> Result<()> {
        // Counts known now need not be counted again at the next open; failing to store them
        // only costs that count.
        if let Err(e) = self.store_counts_at_close() {
            log::debug!("queue counts not stored at close: {e}");
        }
        self.conn.close().map_err(|(_, e)| StoreError::Sql(e))
    }

    /// Closes the connection and deletes the database and its companion files.
    pub fn destroy(self) -> Result<()> {
        let path = self.path.clone();
        let media = self.media();
        // Even if closing fails, the handle is dropped here; then remove the files.
        let _ = self.conn.close();
        remove_with_companions(&path)?;
        media.remove_all()?;
        Ok(())
    }

    /// Runs a passive WAL checkpoint (used by tests and before handing files over).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Deletes a database file and its companions (`-wal`, `-shm`, `-journal`); missing ones
/// are fine.
fn remove_with_companions(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn open_json<T: DeserializeOwned>(key: &DataKey, slot: Slot<'_>, sealed: &[u8]) -> Result<T> {
    let plain = key.open(slot, sealed)?;
    serde_json::from_slice(&plain).map_err(|_| StoreError::Decode {
        table: "record",
        id: slot.id.to_string(),
    })
}

fn reseal_column(
    tx: &Connection,
    old: &DataKey,
    new: &DataKey,
    table: &str,
    id_col: &str,
    col: &str,
    slot_table: &str,
) -> Result<()> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare(&format!(
            "SELECT \"{id_col}\" FROM \"{table}\" WHERE \"{col}\" IS NOT NULL"
        ))?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut read = tx.prepare(&format!(
        "SELECT \"{col}\" FROM \"{table}\" WHERE \"{id_col}\" = ?1"
    ))?;
    let mut write = tx.prepare(&format!(
        "UPDATE \"{table}\" SET \"{col}\" = ?2 WHERE \"{id_col}\" = ?1"
    ))?;
    for id in ids {
        let sealed: Vec<u8> = read.query_row([&id], |r| r.get(0))?;
        let slot = Slot::new(slot_table, col, &id);
        let plain = old.open(slot, &sealed)?;
        write.execute(rusqlite::params![id, new.seal(slot, &plain)?])?;
    }
    Ok(())
}

/// An open write transaction. BEGIN and COMMIT run as cached statements: an SOS save is
/// a few microseconds of work besides the fsync, and parsing both each time was a visible
/// part of it. Dropped without `commit` (an error or a panic in between), it rolls back.
struct WriteTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    fn begin(conn: &'c Connection) -> Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(WriteTx { conn, open: true })
    }

    fn commit(mut self) -> Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        // After a failed COMMIT SQLite may already have ended the transaction.
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A new client-side record id.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Checks that an id handed in is a UUID, in any of its written forms (upper or lower case,
/// with or without hyphens, braces or `urn:uuid:`), and returns its canonical form (lower-case,
/// hyphenated), the form every id is stored and compared in.
fn check_id(field: &str, id: &str) -> Result<String> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| StoreError::invalid(field, "is not a UUID"))
}

fn now() -> SystemTime {
    SystemTime::now()
}
