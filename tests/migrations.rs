//! Schema versions: every old-version snapshot under `sql/snapshots` is upgraded and must
//! equal a fresh database; a snapshot of the current version must equal it as built (so a
//! shipped migration cannot be edited unnoticed); a newer version is refused untouched.

mod common;

use std::path::Path;

use common::*;
use crewsafe::internals::schema;
use crewsafe::*;
use sha2::{Digest, Sha256};

fn fresh_schema() -> Vec<String> {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    schema::upgrade_from(&c, 0).unwrap();
    schema::describe(&c).unwrap()
}

#[test]
fn every_snapshot_upgrades_to_the_fresh_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/snapshots");
    let mut seen = 0;
    for v in 1..=schema::VERSION {
        let file = dir.join(format!("v{v}.sql"));
        let sql = std::fs::read_to_string(&file)
            .unwrap_or_else(|_| panic!("missing snapshot {}", file.display()));
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(&sql).unwrap();
        c.pragma_update(None, "user_version", v).unwrap();
        schema::upgrade_from(&c, v).unwrap();
        assert_eq!(schema::user_version(&c).unwrap(), schema::VERSION);
        assert_eq!(
            schema::describe(&c).unwrap(),
            fresh_schema(),
            "upgrading v{v}"
        );
        seen += 1;
    }
    assert_eq!(seen, schema::VERSION);
}

#[test]
fn newer_schema_is_refused_and_file_untouched() {
    let t = TestStore::new();
    t.store.raise_sos(crew(), None, None).unwrap();
    t.store.close().unwrap();
    {
        let c = rusqlite::Connection::open(&t.path).unwrap();
        c.pragma_update(None, "user_version", schema::VERSION + 1)
            .unwrap();
    }
    let before = Sha256::digest(std::fs::read(&t.path).unwrap());
    assert_eq!(
        CrewStore::open(t.path_string(), t.key.clone()).err(),
        Some(CrewSafeError::SchemaTooNew {
            found: schema::VERSION + 1,
            supported: schema::VERSION
        })
    );
    assert_eq!(Sha256::digest(std::fs::read(&t.path).unwrap()), before);
}

#[test]
fn foreign_or_garbage_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE notes (t TEXT);")
        .unwrap();
    assert!(matches!(
        CrewStore::open(other.to_string_lossy().into(), generate_data_key()),
        Err(CrewSafeError::Corrupted { .. })
    ));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        CrewStore::open(garbage.to_string_lossy().into(), generate_data_key()),
        Err(CrewSafeError::Corrupted { .. })
    ));
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);
}

/// One record as a version-2 file holds it: a `records` row and an `outbox` row.
struct V2Row {
    id: String,
    kind: String,
    parent_id: Option<String>,
    payload: Vec<u8>,
    seq: i64,
    lane: String,
}

/// The outbox columns of one version-2 row: state, attempts, delivered at, dispatch status,
/// sealed wedged reason.
type V2Outbox<'a> = (&'a str, i64, Option<i64>, Option<&'a str>, Option<Vec<u8>>);

/// Writes a version-2 file holding `rows` with the given outbox states, as a phone running
/// the version-2 build would have it, including the key canary copied from `canary`.
fn write_v2_file(path: &Path, canary: &[u8], rows: &[V2Row], outbox: &[V2Outbox<'_>]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    for sql in &schema::MIGRATIONS[..2] {
        c.execute_batch(sql).unwrap();
    }
    c.pragma_update(None, "user_version", 2).unwrap();
    c.execute(
        "INSERT INTO meta (key, value) VALUES ('canary', ?1)",
        [canary],
    )
    .unwrap();
    for (row, (state, attempts, delivered_at, dispatch, reason)) in rows.iter().zip(outbox) {
        c.execute(
            "INSERT INTO records (id, kind, parent_id, payload) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![row.id, row.kind, row.parent_id, row.payload],
        )
        .unwrap();
        c.execute(
            "INSERT INTO outbox (seq, record_id, lane, state, attempts, wedged_reason, \
             delivered_at, dispatch_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                row.seq,
                row.id,
                row.lane,
                state,
                attempts,
                reason,
                delivered_at,
                dispatch
            ],
        )
        .unwrap();
    }
}

#[test]
fn version_2_data_survives_the_upgrade() {
    // Real sealed content, produced by the store, then laid out as version 2 stored it.
    let source = TestStore::new();
    let s = &source.store;
    let sos = s
        .raise_sos(crew(), Some(fix()), Some("v2 alarm".into()))
        .unwrap();
    let loc = s.add_sos_location(sos.id.clone(), fix()).unwrap();
    let cancel = s
        .cancel_sos(sos.id.clone(), CancelReason::FalseAlarm, None)
        .unwrap();
    let sos2 = s.raise_sos(crew(), None, None).unwrap();
    let mut reports = Vec::new();
    for _ in 0..2 {
        let d = s.create_draft(crew(), complete_fields()).unwrap();
        reports.push(s.finalize_draft(d.id, d.revision).unwrap());
    }
    s.close().unwrap();
    let raw = rusqlite::Connection::open(&source.path).unwrap();
    let canary: Vec<u8> = raw
        .query_row("SELECT value FROM meta WHERE key = 'canary'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let rows: Vec<V2Row> = raw
        .prepare("SELECT id, kind, parent_id, payload, seq, lane FROM records ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok(V2Row {
                id: r.get(0)?,
                kind: r.get(1)?,
                parent_id: r.get(2)?,
                payload: r.get(3)?,
                seq: r.get::<_, i64>(4)? * 10, // version 2 numbered both lanes together
                lane: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        order,
        [
            &sos.id,
            &loc.id,
            &cancel.id,
            &sos2.id,
            &reports[0].id,
            &reports[1].id
        ]
    );

    let key = crewsafe::internals::DataKey::from_bytes(&source.key).unwrap();
    let reason = key
        .seal(
            crewsafe::internals::Slot::new("outbox", "wedged_reason", &reports[0].id),
            br#""content.fields: rejected by the server""#,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    write_v2_file(
        &path,
        &canary,
        &rows,
        &[
            (
                "delivered",
                1,
                Some(1_764_057_600_000),
                Some("acknowledged"),
                None,
            ),
            ("delivered", 2, Some(1_764_057_600_000), None, None),
            ("queued", 0, None, None, None),
            ("sending", 3, None, None, None),
            ("wedged", 1, None, None, Some(reason)),
            ("queued", 0, None, None, None),
        ],
    );

    let store = CrewStore::open(path.to_string_lossy().into(), source.key.clone()).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema::user_version(&c).unwrap(), schema::VERSION);
    let by_id = |id: &str| {
        store
            .list_records()
            .unwrap()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap()
    };
    let e = by_id(&sos.id);
    assert_eq!(
        (e.state, e.attempts, e.dispatch_status, e.queue_position),
        (
            SyncState::Delivered,
            1,
            Some(DispatchStatus::Acknowledged),
            Some(10)
        )
    );
    let e = by_id(&loc.id);
    assert_eq!(
        (e.state, e.attempts, e.parent_id.as_deref()),
        (SyncState::Delivered, 2, Some(sos.id.as_str()))
    );
    // Left `sending` by the old build: back in the queue on open.
    let e = by_id(&sos2.id);
    assert_eq!((e.state, e.attempts), (SyncState::Queued, 3));
    let e = by_id(&reports[0].id);
    assert_eq!(e.state, SyncState::Wedged);
    assert_eq!(
        e.wedged_reason.as_deref(),
        Some("content.fields: rejected by the server")
    );
    // Content still opens under the same key, follow-ups still hang off their SOS.
    let got = store.get_sos(sos.id.clone()).unwrap();
    assert_eq!(got.note.as_deref(), Some("v2 alarm"));
    assert_eq!(got.location_updates.len(), 1);
    assert_eq!(got.state, SosState::Cancelled);
    assert_eq!(
        store.get_report(reports[1].id.clone()).unwrap().fields,
        reports[1].fields
    );
    let counts = store.pending_counts().unwrap();
    assert_eq!((counts.sos, counts.reports, counts.wedged), (2, 1, 1));
    // New records queue after everything the old build numbered.
    let sos3 = store.raise_sos(crew(), None, None).unwrap();
    assert!(by_id(&sos3.id).queue_position.unwrap() > 60);
    // And the wedged one can still be retried and discarded the new way.
    store.discard_wedged(reports[0].id.clone()).unwrap();
    assert!(store
        .list_records()
        .unwrap()
        .iter()
        .all(|e| e.id != reports[0].id));
}
