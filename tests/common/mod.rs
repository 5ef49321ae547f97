//! Shared helpers for the integration tests: temporary stores and sample content.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

pub fn crew() -> CrewIdentity {
    CrewIdentity {
        device_id: "device-0001".into(),
        crew_id: "astana-brigade-12".into(),
        staff_id: Some("staff-77".into()),
    }
}

pub fn fix() -> LocationFix {
    LocationFix {
        latitude: 51.1694,
        longitude: 71.4491,
        accuracy_m: 6.5,
        altitude_m: Some(347.0),
        provider: LocationProvider::Gps,
        fixed_at: SystemTime::now(),
    }
}

/// A report that passes every finalize rule.
pub fn complete_fields() -> IncidentFields {
    IncidentFields {
        occurred_at: Some(SystemTime::now() - Duration::from_secs(1800)),
        location: Some(fix()),
        address: Some("Kenesary st 40, apt 12".into()),
        kind: Some(IncidentKind::PhysicalAssault),
        severity: Some(Severity::Serious),
        staff_harmed: vec![HarmedStaff {
            role: StaffRole::Paramedic,
            name: Some("A. Seitkali".into()),
            injury_description: Some("struck on the head".into()),
        }],
        perpetrator_description: Some("male, about 40, intoxicated".into()),
        witnesses: vec![Witness {
            name: "Neighbour".into(),
            contact: Some("+7 700 000 0000".into()),
        }],
        police_called: Some(true),
        police_report_number: Some("KUI-2026-1234".into()),
        dispatch_call_number: Some("103-556677".into()),
        narrative: Some("The patient's son attacked the paramedic during treatment.".into()),
    }
}
pub mod net;
pub mod proxy;
