//! Reference national server of the CrewSafe sync protocol (see `docs/protocol.md` and
//! `server/openapi.yaml`).
//!
//! It takes batches of SOS alarms and incident reports from enrolled devices and stores each
//! record exactly once: records carry client-generated ids, `(device, id)` is a permanent
//! dedupe key, and a batch is committed before it is answered: to SQLite (WAL,
//! `synchronous=FULL`; the embedded default), or to PostgreSQL, which several server
//! processes may share ([`Database`]). Dispatchers list alarms (SOS, and missed lone-worker
//! check-ins, which the server's timer raises itself) or follow them live on an event stream,
//! and move them from `delivered` to `acknowledged` to `resolved` with an optional message for
//! the crew; devices poll or watch (long poll) that status.
//!
//! The library runs the server on its own tokio runtime in a background thread, so plain
//! synchronous tests can use it:
//!
//! ```no_run
//! use crewsafe_server::{enroll_device, start, ServerConfig, ServerStore, TestFault};
//!
//! let db = std::env::temp_dir().join("crewsafe-doc.db");
//! let server = start(ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap()).with_test_faults())?;
//! let token = enroll_device(&db, "device-1")?;
//! println!("POST {}/v1/records:batch with Bearer {token}", server.url());
//! server.faults().push(TestFault::DropAfterCommit);
//! // ... run the client ...
//! let records = ServerStore::open(&db)?.records()?;
//! server.shutdown();
//! # Ok::<(), crewsafe_server::ServerError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

mod canonical;
mod config;
mod error;
mod faults;
mod http;
mod hub;
mod media;
mod net;
mod ops;
mod storage;
mod timer;
mod validate;

pub use config::{
    Database, Limits, ServerConfig, TlsConfig, DEFAULT_CHECK_IN_MINUTE, DEFAULT_ESCALATE_AFTER,
};
pub use crewsafe_protocol as protocol;
pub use crewsafe_protocol::{DispatchSos, DispatchStatus, TestFault, TestFaultsState};
pub use error::{Result, ServerError};
pub use faults::Faults;
pub use storage::{
    Enrollment, ServerStore, StoredRecord, StoredSosState, CHECK_IN_RESOLVER, POISON_REASON,
};

/// A server running on its own thread and tokio runtime. Stops on [`RunningServer::shutdown`]
/// or when dropped.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    test_faults: bool,
    database: Database,
    escalate_after: Duration,
    faults: Arc<Faults>,
    storage: Arc<storage::Storage>,
    /// The server runtime, for the blocking dispatcher moves.
    handle: tokio::runtime::Handle,
    watches: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the server and returns once its socket is listening.
///
/// Opens (creating or upgrading) the database and loads the TLS files first, so configuration
/// errors come back here. Besides the HTTP server, the runtime runs the alarm timer (missed
/// check-ins, escalation) and, on PostgreSQL, the listener that hears of changes made by other
/// instances.
pub fn start(config: ServerConfig) -> Result<RunningServer> {
    let timings = storage::Timings {
        escalate_after: config.escalate_after,
        check_in_minute: config.check_in_minute,
    };
    let tls = config.tls.as_ref().map(net::load_tls).transpose()?;
    let listener = std::net::TcpListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let faults = Arc::new(Faults::default());
    let watches = Arc::new(AtomicUsize::new(0));
    let ops = Arc::new(ops::Ops::new(config.limits.clone()));
    // Turns true when the server stops: watches answer, event streams end, the timer stops.
    let (closing_tx, closing_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = oneshot::channel();
    type Ready = Result<(Arc<storage::Storage>, tokio::runtime::Handle)>;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Ready>();
    let (database, test_faults) = (config.database.clone(), config.test_faults);
    let (thread_faults, thread_watches) = (faults.clone(), watches.clone());
    let thread_ops = ops.clone();
    let media = config
        .media_root()
        .map(|root| Arc::new(media::Media::new(root)));
    let thread = std::thread::Builder::new()
        .name("crewsafe-server".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("crewsafe-server-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let handle = runtime.handle().clone();
            runtime.block_on(async move {
                let opened = storage::Storage::open(&database, timings, hub::Hub::new()).await;
                let storage = match opened {
                    Ok(s) => Arc::new(s),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let router = http::router(http::AppState {
                    storage: storage.clone(),
                    faults: thread_faults,
                    test_faults,
                    closing: closing_rx.clone(),
                    watches: thread_watches,
                    ops: thread_ops.clone(),
                    media: media.clone(),
                });
                let _ = ready_tx.send(Ok((storage.clone(), handle)));
                tokio::spawn(timer::run(storage, closing_rx));
                let stop = async move {
                    let _ = stop_rx.await;
                    let _ = closing_tx.send(true);
                };
                net::serve(
                    listener,
                    tls.map(tokio_rustls::TlsAcceptor::from),
                    router,
                    thread_ops,
                    stop,
                )
                .await;
            });
            runtime.shutdown_timeout(net::SHUTDOWN_GRACE);
        })?;
    let (storage, handle) = match ready_rx.recv() {
        Ok(Ok(ready)) => ready,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(ServerError::Config("server thread ended at start".into()));
        }
    };
    log::info!(
        "crewsafe-server listening on {}://{addr}",
        if config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    );
    Ok(RunningServer {
        addr,
        tls: config.tls.is_some(),
        test_faults: config.test_faults,
        database: config.database,
        escalate_after: config.escalate_after,
        faults,
        storage,
        handle,
        watches,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

impl RunningServer {
    /// The bound address (the real port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` or `https://127.0.0.1:41234`. An unspecified
    /// listen address (0.0.0.0, ::) is shown as loopback.
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn db_path(&self) -> Option<&Path> {
        match &self.database {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }

    /// Opens a [`ServerStore`] on this server's database (with this server's escalation
    /// time).
    pub fn store(&self) -> Result<ServerStore> {
        Ok(ServerStore::connect(&self.database)?.with_escalate_after(self.escalate_after))
    }

    /// Status watches (`POST /v1/sos:watch`) waiting right now.
    pub fn open_watches(&self) -> usize {
        self.watches.load(Ordering::SeqCst)
    }

    /// Acknowledges alarm `id` as dispatcher `by` would with `POST
    /// /v1/dispatch/sos/{id}/acknowledge`, with an optional message for the crew: watches and
    /// event streams hear of it at once. `None` if no alarm has this id; an error if several
    /// devices sent one with this id.
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        message: Option<&str>,
    ) -> Result<Option<DispatchSos>> {
        self.advance(id, by, message, storage::Advance::Acknowledge)
    }

    /// Resolves alarm `id` as [`RunningServer::acknowledge`] acknowledges it.
    pub fn resolve(
        &self,
        id: &str,
        by: &str,
        message: Option<&str>,
    ) -> Result<Option<DispatchSos>> {
        self.advance(id, by, message, storage::Advance::Resolve)
    }

    fn advance(
        &self,
        id: &str,
        by: &str,
        message: Option<&str>,
        action: storage::Advance,
    ) -> Result<Option<DispatchSos>> {
        let message = validate::dispatch_message(message).map_err(ServerError::InvalidInput)?;
        let mv = storage::Move {
            action,
            dispatcher: by.to_string(),
            message: message.map(str::to_string),
        };
        let found = self
            .handle
            .block_on(self.storage.advance_sos(id.to_string(), None, mv))?;
        match found {
            storage::Lookup::Found(s) => Ok(Some(s)),
            storage::Lookup::NotFound => Ok(None),
            storage::Lookup::Ambiguous => Err(ServerError::InvalidInput(
                "several devices sent an alarm with this id".into(),
            )),
        }
    }

    /// The fault controls.
    ///
    /// # Panics
    /// If the server was started without [`ServerConfig::test_faults`]: faults would silently
    /// do nothing.
    pub fn faults(&self) -> &Faults {
        assert!(
            self.test_faults,
            "RunningServer::faults needs ServerConfig::test_faults = true"
        );
        &self.faults
    }

    /// Batch requests received so far, whatever their outcome (also without test faults).
    pub fn batch_requests(&self) -> u64 {
        self.faults.batch_requests()
    }

    /// Stops accepting, lets requests in flight finish (up to five seconds), and waits for
    /// the server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Enrolls (or re-enrolls, replacing its token) a device in the SQLite database at `db_path`
/// and returns its bearer token: 32 random bytes, base64url without padding. Only the token's
/// SHA-256 is stored. Safe while the server runs. Any database:
/// [`ServerStore::enroll_device`].
pub fn enroll_device(db_path: impl AsRef<Path>, device_id: &str) -> Result<String> {
    ServerStore::open(db_path)?.enroll_device(device_id)
}

/// Enrolls (or re-enrolls, replacing its token) a dispatcher by name in the SQLite database
/// at `db_path` and returns its bearer token. Safe while the server runs. Any database:
/// [`ServerStore::enroll_dispatcher`].
pub fn enroll_dispatcher(db_path: impl AsRef<Path>, name: &str) -> Result<String> {
    ServerStore::open(db_path)?.enroll_dispatcher(name)
}
