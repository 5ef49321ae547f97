//! Schema versions: every old-version snapshot under `sql/snapshots` is upgraded and must
//! equal a fresh database; a snapshot of the current version must equal it as built (so a
//! shipped migration cannot be edited unnoticed); a newer version is refused untouched.

mod common;

use std::path::Path;

use common::*;
use crewsafe::db::schema;
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
        Err(CrewSafeError::InvalidState { .. })
    ));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        CrewStore::open(garbage.to_string_lossy().into(), generate_data_key()),
        Err(CrewSafeError::Corrupted { .. })
    ));
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);
}
