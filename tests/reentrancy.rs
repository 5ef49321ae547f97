//! Callbacks that call back into the store never hang it: a record, sync or token callback may
//! call any store method, on the caller's thread or on the background worker's, and each call
//! either works or fails at once with a typed error; `close()` always returns. A sync ends
//! while records keep arriving. Ids are accepted in any UUID form; sync settings have bounds.
//!
//! Every scenario runs under a watchdog: a hang fails the test instead of stalling the suite.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use common::net::{Server, Tokens};
use common::*;
use crewsafe::*;

/// Runs `f` on its own thread; fails the test if it does not return within `secs`.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: hung for {secs} s"))
}

/// What a callback does with the store each time it is called.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reflex {
    /// `sync_now()`: must be refused at once when the callback runs inside a sync.
    SyncAgain,
    /// Every read and write of the store's API.
    Everything,
    /// `close()`.
    Close,
}

/// A record listener, sync listener and token provider that all call back into the store.
struct Caller {
    store: Mutex<Weak<CrewStore>>,
    reflex: Reflex,
    token: String,
    calls: AtomicU32,
    /// Errors the store gave the callbacks (only typed errors are possible).
    errors: Mutex<Vec<CrewSafeError>>,
    /// Once true, the callbacks stop calling back (so the test can end cleanly).
    quiet: AtomicBool,
}

impl Caller {
    fn new(reflex: Reflex, token: &str) -> Arc<Caller> {
        Arc::new(Caller {
            store: Mutex::new(Weak::new()),
            reflex,
            token: token.into(),
            calls: AtomicU32::new(0),
            errors: Mutex::new(Vec::new()),
            quiet: AtomicBool::new(false),
        })
    }

    fn attach(self: &Arc<Self>, store: &Arc<CrewStore>) {
        *self.store.lock().unwrap() = Arc::downgrade(store);
    }

    fn note<T>(&self, r: Result<T, CrewSafeError>) {
        if let Err(e) = r {
            self.errors.lock().unwrap().push(e);
        }
    }

    fn call_back(&self) {
        if self.quiet.load(Ordering::SeqCst) || self.calls.fetch_add(1, Ordering::SeqCst) > 40 {
            return;
        }
        let Some(s) = self.store.lock().unwrap().upgrade() else {
            return;
        };
        match self.reflex {
            Reflex::SyncAgain => self.note(s.sync_now()),
            Reflex::Close => self.note(s.close()),
            Reflex::Everything => {
                self.note(s.pending_counts());
                self.note(s.list_records());
                self.note(s.list_drafts());
                let sos = s.raise_sos(crew(), None, Some("from a callback".into()));
                if let Ok(sos) = &sos {
                    self.note(s.get_sos(sos.id.clone()));
                }
                self.note(sos);
                self.note(s.create_draft(crew(), IncidentFields::default()));
                self.note(s.set_online(true));
                self.note(s.purge_delivered(30));
                self.note(s.sync_now());
                let sub = s.subscribe_records(Arc::new(Quiet));
                sub.cancel();
            }
        }
    }
}

struct Quiet;

impl RecordListener for Quiet {
    fn on_record_changed(&self, _: RecordChange) -> Result<(), HostError> {
        Ok(())
    }
}

impl RecordListener for Caller {
    fn on_record_changed(&self, _: RecordChange) -> Result<(), HostError> {
        self.call_back();
        Ok(())
    }
}

impl SyncListener for Caller {
    fn on_sync_progress(&self, _: SyncProgress) -> Result<(), HostError> {
        self.call_back();
        Ok(())
    }
}

impl TokenProvider for Caller {
    fn token(&self) -> Result<String, HostError> {
        self.call_back();
        Ok(self.token.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.token.clone())
    }
}

/// The only errors a callback may get: none is a hang, none is a panic.
fn typed_only(errors: &[CrewSafeError]) {
    for e in errors {
        assert!(
            matches!(
                e,
                CrewSafeError::InvalidState { .. }
                    | CrewSafeError::Closed { .. }
                    | CrewSafeError::InvalidInput { .. }
            ),
            "unexpected error from a callback: {e:?}"
        );
    }
}

/// A store with sync configured to a real server, every callback kind calling back.
fn setup(reflex: Reflex) -> (Server, TestStore, Arc<Caller>, Vec<Arc<Subscription>>) {
    let server = Server::start();
    let t = TestStore::new();
    let caller = Caller::new(reflex, &server.token);
    caller.attach(&t.store);
    t.store
        .configure_sync(common::net::config(&server.url), caller.clone())
        .unwrap();
    let subs = vec![
        t.store.subscribe_records(caller.clone()),
        t.store.subscribe_sync(caller.clone()),
    ];
    (server, t, caller, subs)
}

#[test]
fn a_listener_that_syncs_again_does_not_hang_a_manual_sync() {
    let (server, t, caller, _subs) = setup(Reflex::SyncAgain);
    // Outside a sync, a listener's sync_now simply syncs: keep it quiet while queuing.
    caller.quiet.store(true, Ordering::SeqCst);
    let ids: Vec<String> = (0..3)
        .map(|_| t.store.raise_sos(crew(), None, None).unwrap().id)
        .collect();
    caller.quiet.store(false, Ordering::SeqCst);
    let store = t.store.clone();
    let report = within(30, "sync_now", move || store.sync_now()).unwrap();
    assert_eq!(report.accepted, 3);
    let errors = caller.errors.lock().unwrap().clone();
    assert!(!errors.is_empty(), "the inner sync_now calls were refused");
    assert!(errors
        .iter()
        .all(|e| matches!(e, CrewSafeError::InvalidState { .. })));
    for id in ids {
        assert_eq!(server.count_of(&id), 1);
    }
    let store = t.store.clone();
    within(30, "close", move || store.close()).unwrap();
}

#[test]
fn a_listener_that_syncs_again_does_not_hang_the_worker_nor_close() {
    let (server, t, caller, _subs) = setup(Reflex::SyncAgain);
    let sos = t.store.raise_sos(crew(), None, None).unwrap();
    t.store.set_online(true).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while server.count_of(&sos.id) == 0 {
        assert!(Instant::now() < end, "the worker did not deliver");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A later sync by the worker, with the listener calling back again.
    t.store.raise_sos(crew(), None, None).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let store = t.store.clone();
    within(30, "close while the worker syncs", move || store.close()).unwrap();
    typed_only(&caller.errors.lock().unwrap());
}

#[test]
fn every_store_method_from_every_callback_works_or_fails_at_once() {
    // On the caller's thread.
    let (server, t, caller, _subs) = setup(Reflex::Everything);
    t.store.raise_sos(crew(), None, None).unwrap();
    let store = t.store.clone();
    within(60, "sync_now with callbacks calling back", move || {
        store.sync_now()
    })
    .unwrap();
    typed_only(&caller.errors.lock().unwrap());
    assert!(caller.calls.load(Ordering::SeqCst) > 3);

    // On the worker's thread (`set_online(true)` from the callbacks starts it too).
    let before = caller.calls.load(Ordering::SeqCst);
    t.store.set_online(true).unwrap();
    t.store.raise_sos(crew(), None, None).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while caller.calls.load(Ordering::SeqCst) <= before + 3 {
        assert!(Instant::now() < end, "the worker made no callbacks");
        std::thread::sleep(Duration::from_millis(20));
    }
    caller.quiet.store(true, Ordering::SeqCst);
    let store = t.store.clone();
    within(60, "close", move || store.close()).unwrap();
    typed_only(&caller.errors.lock().unwrap());
    drop(server);
}

#[test]
fn close_from_a_callback_returns_on_either_thread() {
    // Inside a manual sync, while the worker waits for that sync to end.
    let (_server, t, caller, _subs) = setup(Reflex::Close);
    caller.quiet.store(true, Ordering::SeqCst);
    t.store.raise_sos(crew(), None, None).unwrap();
    // The worker runs too: it waits for the manual sync, whose callbacks close the store.
    t.store.set_online(true).unwrap();
    caller.quiet.store(false, Ordering::SeqCst);
    let store = t.store.clone();
    let r = within(30, "sync_now closing from its callbacks", move || {
        store.sync_now()
    });
    assert!(
        matches!(r, Ok(_) | Err(CrewSafeError::Closed { .. })),
        "{r:?}"
    );
    assert!(matches!(
        t.store.pending_counts(),
        Err(CrewSafeError::Closed { .. })
    ));
    typed_only(&caller.errors.lock().unwrap());

    // Inside the worker's sync.
    let (_server, t, caller, _subs) = setup(Reflex::Close);
    caller.quiet.store(true, Ordering::SeqCst);
    t.store.raise_sos(crew(), None, None).unwrap();
    caller.quiet.store(false, Ordering::SeqCst);
    t.store.set_online(true).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while t.store.pending_counts().is_ok() {
        assert!(
            Instant::now() < end,
            "the worker's callbacks never closed the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let store = t.store.clone();
    within(30, "close after the worker closed", move || store.close()).unwrap();
    typed_only(&caller.errors.lock().unwrap());
}

/// A listener that raises an SOS once, the first time it hears of a record being sent.
struct RaiseOnce {
    store: Mutex<Weak<CrewStore>>,
    raised: Mutex<Option<String>>,
}

impl RecordListener for RaiseOnce {
    fn on_record_changed(&self, c: RecordChange) -> Result<(), HostError> {
        if c.state != SyncState::Sending {
            return Ok(());
        }
        let mut raised = self.raised.lock().unwrap();
        if raised.is_none() {
            if let Some(s) = self.store.lock().unwrap().upgrade() {
                *raised = Some(s.raise_sos(crew(), None, None).unwrap().id);
            }
        }
        Ok(())
    }
}

#[test]
fn a_sync_ends_while_records_keep_arriving_and_takes_sos_raised_meanwhile() {
    let server = Server::start();
    let t = TestStore::new();
    let mut cfg = common::net::config(&server.url);
    cfg.max_batch_records = 20;
    t.store
        .configure_sync(cfg, Tokens::new(&server.token, &server.token))
        .unwrap();
    for _ in 0..50 {
        let d = t.store.create_draft(crew(), complete_fields()).unwrap();
        t.store.finalize_draft(d.id, d.revision).unwrap();
    }
    let raiser = Arc::new(RaiseOnce {
        store: Mutex::new(Arc::downgrade(&t.store)),
        raised: Mutex::new(None),
    });
    let _sub = t.store.subscribe_records(raiser.clone());
    // A steady stream of new reports for as long as the sync runs.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (store, stop) = (t.store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let d = store.create_draft(crew(), complete_fields()).unwrap();
                store.finalize_draft(d.id, d.revision).unwrap();
                n += 1;
            }
            n
        })
    };
    let store = t.store.clone();
    let report = within(60, "sync_now under a stream of new records", move || {
        store.sync_now()
    })
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    let fed = feeder.join().unwrap();
    // Everything queued at the start, plus the SOS raised during the sync.
    assert!(report.accepted >= 51, "{report:?}");
    let sos = raiser
        .raised
        .lock()
        .unwrap()
        .clone()
        .expect("an SOS was raised");
    assert_eq!(
        server.count_of(&sos),
        1,
        "the SOS raised meanwhile went in this sync"
    );
    if fed > 0 && report.pending_reports > 0 {
        assert_eq!(report.outcome, SyncOutcome::Deferred);
    }
    // The rest goes with the next syncs.
    let end = Instant::now() + Duration::from_secs(60);
    while t.store.sync_now().unwrap().outcome != SyncOutcome::Complete {
        assert!(Instant::now() < end);
    }
    assert_eq!(server.all_ids().len() as u32, 50 + 1 + fed);
}

#[test]
fn ids_are_accepted_in_any_uuid_form() {
    let t = TestStore::new();
    let sos = t.store.raise_sos(crew(), None, None).unwrap();
    let simple = sos.id.replace('-', "");
    for form in [
        sos.id.to_uppercase(),
        format!("{{{}}}", sos.id),
        format!("urn:uuid:{}", sos.id),
        simple.clone(),
        simple.to_uppercase(),
    ] {
        let got = t
            .store
            .get_sos(form.clone())
            .unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(got.id, sos.id, "canonical id back for {form}");
    }
    let u = t
        .store
        .add_sos_location(sos.id.to_uppercase(), fix())
        .unwrap();
    let c = t
        .store
        .cancel_sos(sos.id.to_uppercase(), CancelReason::FalseAlarm, None)
        .unwrap();
    let again = t.store.get_sos(sos.id.clone()).unwrap();
    assert_eq!(again.location_updates[0].id, u.id);
    assert_eq!(again.cancellation.unwrap().id, c.id);
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    assert_eq!(t.store.get_draft(d.id.to_uppercase()).unwrap().id, d.id);
    assert!(matches!(
        t.store.get_sos("not-a-uuid".into()),
        Err(CrewSafeError::InvalidInput { .. })
    ));
}

#[test]
fn sync_settings_out_of_bounds_are_refused_naming_the_field() {
    let t = TestStore::new();
    let year_ms = 365 * 86_400_000u64;
    type Change = Box<dyn Fn(&mut SyncConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "connect_timeout_ms",
            Box::new(move |c| c.connect_timeout_ms = year_ms),
        ),
        ("connect_timeout_ms", Box::new(|c| c.connect_timeout_ms = 0)),
        (
            "request_timeout_ms",
            Box::new(move |c| c.request_timeout_ms = year_ms),
        ),
        (
            "backoff_base_ms",
            Box::new(move |c| c.backoff_base_ms = year_ms),
        ),
        (
            "backoff_max_ms",
            Box::new(move |c| c.backoff_max_ms = year_ms),
        ),
        ("backoff_max_ms", Box::new(|c| c.backoff_max_ms = 1)),
        ("retention_days", Box::new(|c| c.retention_days = 5_000_000)),
        ("max_batch_bytes", Box::new(|c| c.max_batch_bytes = 1 << 40)),
        (
            "max_batch_records",
            Box::new(|c| c.max_batch_records = 5000),
        ),
    ];
    for (field, change) in cases {
        let mut c = SyncConfig::new("https://crewsafe.example.kz");
        change(&mut c);
        match t.store.configure_sync(c, Tokens::new("a", "b")) {
            Err(CrewSafeError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // The documented limits themselves are fine.
    let mut c = SyncConfig::new("https://crewsafe.example.kz");
    c.connect_timeout_ms = 120_000;
    c.request_timeout_ms = 600_000;
    c.backoff_max_ms = 86_400_000;
    c.retention_days = 3_650;
    c.max_batch_bytes = 4 * 1024 * 1024;
    t.store.configure_sync(c, Tokens::new("a", "b")).unwrap();
}

/// A store configured to sync with a fresh reference server.
fn synced_store() -> (Server, TestStore) {
    let server = Server::start();
    let t = TestStore::new();
    t.store
        .configure_sync(
            common::net::config(&server.url),
            Tokens::new(&server.token, &server.token),
        )
        .unwrap();
    (server, t)
}

/// A listener that raises a new SOS whenever a record is sent or delivered, without end.
struct RaiseAlways(Mutex<Weak<CrewStore>>);

impl RecordListener for RaiseAlways {
    fn on_record_changed(&self, c: RecordChange) -> Result<(), HostError> {
        if c.state == SyncState::Queued {
            return Ok(());
        }
        if let Some(s) = self.0.lock().unwrap().upgrade() {
            let _ = s.raise_sos(crew(), None, None);
        }
        Ok(())
    }
}

#[test]
fn close_returns_while_callbacks_keep_feeding_the_worker_alarms() {
    let (server, t) = synced_store();
    t.store.raise_sos(crew(), None, None).unwrap();
    let _sub = t
        .store
        .subscribe_records(Arc::new(RaiseAlways(Mutex::new(Arc::downgrade(&t.store)))));
    t.store.set_online(true).unwrap();
    // Let the worker get going, then close from this thread.
    let end = Instant::now() + Duration::from_secs(30);
    while server.all_ids().len() < 20 {
        assert!(Instant::now() < end, "the worker did not deliver");
        std::thread::sleep(Duration::from_millis(10));
    }
    let store = t.store.clone();
    within(30, "close while callbacks keep raising alarms", move || {
        store.close()
    })
    .unwrap();
}

#[test]
fn a_manual_sync_returns_while_its_callbacks_keep_raising_alarms() {
    let (_server, t) = synced_store();
    for _ in 0..3 {
        t.store.raise_sos(crew(), None, None).unwrap();
        let d = t.store.create_draft(crew(), complete_fields()).unwrap();
        t.store.finalize_draft(d.id, d.revision).unwrap();
    }
    let _sub = t
        .store
        .subscribe_records(Arc::new(RaiseAlways(Mutex::new(Arc::downgrade(&t.store)))));
    let store = t.store.clone();
    let report = within(
        30,
        "sync_now while its callbacks keep raising alarms",
        move || store.sync_now(),
    )
    .unwrap();
    assert!(report.accepted >= 6, "{report:?}");
    assert_eq!(
        report.outcome,
        SyncOutcome::Deferred,
        "alarms raised meanwhile wait"
    );
    let store = t.store.clone();
    within(30, "close", move || store.close()).unwrap();
}
