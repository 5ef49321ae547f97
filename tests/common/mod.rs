//! Shared helpers for the integration tests: temporary stores and sample content.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use crewsafe::*;

/// A store in a fresh temporary folder; the folder lives as long as the value.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub key: Vec<u8>,
    pub store: Arc<CrewStore>,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crewsafe.db");
        let key = generate_data_key();
        let store = CrewStore::open(path.to_string_lossy().into(), key.clone()).expect("open");
        TestStore {
            dir,
            path,
            key,
            store,
        }
    }

    pub fn path_string(&self) -> String {
        self.path.to_string_lossy().into()
    }

    /// Closes and reopens with the same key.
    pub fn reopen(&mut self) {
        self.store.close().expect("close");
        self.store = CrewStore::open(self.path_string(), self.key.clone()).expect("reopen");
    }

    /// Opens again after the store was closed elsewhere.
    pub fn reopen_after_close(&mut self) {
        self.store = CrewStore::open(self.path_string(), self.key.clone()).expect("reopen");
    }

    /// Bytes of the database and its -wal and -shm files.
    pub fn file_bytes(&self) -> Vec<(String, Vec<u8>)> {
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| {
                let p = format!("{}{s}", self.path.display());
                std::fs::read(&p).ok().map(|b| (p, b))
            })
            .collect()
    }
}

#[allow(unused_imports)]
pub use crewsafe::internals::{complete_fields, crew, fix};
pub mod net;
pub mod proxy;
