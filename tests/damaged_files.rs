//! Damaged store files are `Corrupted`, never `Storage` (retrying or freeing space does not
//! mend a damaged file), and a file truncated to nothing is never mistaken for a new store.

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use common::*;
use crewsafe::*;

/// A closed store with some records, its WAL checkpointed into the main file.
fn filled_store() -> TestStore {
    let t = TestStore::new();
    for i in 0..40 {
        t.store
            .raise_sos(crew(), Some(fix()), Some(format!("note {i}").repeat(20)))
            .unwrap();
    }
    t.store.checkpoint().unwrap();
    t.store.close().unwrap();
    t
}

fn open(t: &TestStore) -> Result<std::sync::Arc<CrewStore>, CrewSafeError> {
    CrewStore::open(t.path_string(), t.key.clone())
}

/// Opening, then reading everything: the first error, if any.
fn open_and_read(t: &TestStore) -> Option<CrewSafeError> {
    let store = match open(t) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    store.list_records().err()
}

#[test]
fn a_file_truncated_to_zero_bytes_is_corrupted_not_a_new_store() {
    let t = filled_store();
    OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap()
        .set_len(0)
        .unwrap();
    for _ in 0..2 {
        match open(&t) {
            Err(CrewSafeError::Corrupted { reason }) => assert!(reason.contains("empty")),
            other => panic!("{:?}", other.map(|_| "opened")),
        }
    }
    assert_eq!(
        std::fs::metadata(&t.path).unwrap().len(),
        0,
        "left as found"
    );
}

#[test]
fn a_file_truncated_midway_is_corrupted() {
    let t = filled_store();
    let len = std::fs::metadata(&t.path).unwrap().len();
    assert!(len > 8 * 4096, "enough pages to cut: {len}");
    OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    match open_and_read(&t) {
        Some(CrewSafeError::Corrupted { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_page_is_corrupted() {
    let t = filled_store();
    let len = std::fs::metadata(&t.path).unwrap().len();
    let mut f = OpenOptions::new().write(true).open(&t.path).unwrap();
    // Every page but the first (the header and schema) is overwritten with garbage.
    let garbage: Vec<u8> = (0..len - 4096).map(|i| (i * 7 + 13) as u8).collect();
    f.seek(SeekFrom::Start(4096)).unwrap();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
    match open_and_read(&t) {
        Some(CrewSafeError::Corrupted { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_that_is_not_a_database_is_corrupted() {
    let t = filled_store();
    std::fs::write(&t.path, vec![0x5a; 8192]).unwrap();
    assert!(matches!(open(&t), Err(CrewSafeError::Corrupted { .. })));
}

#[test]
fn a_creation_cut_short_leaves_no_store_and_the_next_open_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crewsafe.db");
    // What a kill during creation leaves: the temporary file only.
    let tmp = dir.path().join("crewsafe.db.creating");
    std::fs::write(&tmp, b"half a store").unwrap();
    let key = generate_data_key();
    let store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
    let sos = store.raise_sos(crew(), None, None).unwrap();
    store.close().unwrap();
    assert!(!tmp.exists(), "the temporary file is gone");
    let store = CrewStore::open(path.to_string_lossy().into(), key).unwrap();
    assert_eq!(store.get_sos(sos.id).unwrap().sync_state, SyncState::Queued);
}
