//! Helpers for end-to-end tests against the reference server on loopback.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crewsafe::*;
use crewsafe_server::{RunningServer, ServerConfig};

/// A token provider that hands out fixed tokens and counts refreshes.
pub struct Tokens {
    pub current: Mutex<String>,
    pub refreshed: Mutex<String>,
    pub refreshes: AtomicU32,
}

impl Tokens {
    pub fn new(current: &str, refreshed: &str) -> Arc<Self> {
        Arc::new(Tokens {
            current: Mutex::new(current.into()),
            refreshed: Mutex::new(refreshed.into()),
            refreshes: AtomicU32::new(0),
        })
    }
}

impl TokenProvider for Tokens {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.current.lock().unwrap().clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let fresh = self.refreshed.lock().unwrap().clone();
        *self.current.lock().unwrap() = fresh.clone();
        Ok(fresh)
    }
}

/// A reference server with test faults on, its database, and an enrolled device.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub running: Option<RunningServer>,
    pub token: String,
    pub url: String,
}

impl Server {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let token = crewsafe_server::enroll_device(&db, &super::crew().device_id).unwrap();
        let running = crewsafe_server::start(
            ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap()).with_test_faults(),
        )
        .unwrap();
        let url = running.url();
        Server {
            dir,
            running: Some(running),
            token,
            url,
        }
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("server.db")
    }

    pub fn srv(&self) -> &RunningServer {
        self.running.as_ref().expect("server running")
    }

    /// Stops the server (the network "goes away").
    pub fn stop(&mut self) {
        if let Some(s) = self.running.take() {
            s.shutdown();
        }
    }

    /// Starts it again on the same port and database.
    pub fn restart(&mut self) {
        let addr = self.url.trim_start_matches("http://").parse().unwrap();
        self.running = Some(
            crewsafe_server::start(ServerConfig::new(self.db(), addr).with_test_faults()).unwrap(),
        );
    }

    pub fn count_of(&self, id: &str) -> usize {
        crewsafe_server::ServerStore::open(self.db())
            .unwrap()
            .count_of(id)
            .unwrap()
    }

    pub fn all_ids(&self) -> Vec<String> {
        crewsafe_server::ServerStore::open(self.db())
            .unwrap()
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    }
}

/// Fast retry settings for tests.
pub fn config(url: &str) -> SyncConfig {
    let mut c = SyncConfig::new(url);
    c.backoff_base_ms = 200;
    c.backoff_max_ms = 2_000;
    c.connect_timeout_ms = 2_000;
    c.request_timeout_ms = 5_000;
    c
}
