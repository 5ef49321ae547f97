//! End to end over loopback against the real reference server: offline saves delivered
//! exactly once when the network returns, SOS first, and every server or network failure the
//! server's fault mode can produce.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::net::{config, Server, Tokens};
use common::*;
use crewsafe::*;
use crewsafe_server::TestFault;

/// A store and a server, with sync configured.
struct Env {
    t: TestStore,
    server: Server,
    tokens: Arc<Tokens>,
}

fn env_with(cfg: impl FnOnce(&mut SyncConfig)) -> Env {
    let server = Server::start();
    let t = TestStore::new();
    let tokens = Tokens::new(&server.token, &server.token);
    let mut c = config(&server.url);
    cfg(&mut c);
    t.store.configure_sync(c, tokens.clone()).unwrap();
    Env { t, server, tokens }
}

fn env() -> Env {
    env_with(|_| {})
}

/// Saves an SOS with two follow-ups and a cancel, and `reports` finalized reports.
fn save_work(store: &CrewStore, reports: usize) -> (Vec<String>, Vec<String>) {
    let mut sos_ids = vec![];
    let sos = store
        .raise_sos(crew(), Some(fix()), Some("help".into()))
        .unwrap();
    sos_ids.push(sos.id.clone());
    sos_ids.push(store.add_sos_location(sos.id.clone(), fix()).unwrap().id);
    sos_ids.push(store.add_sos_location(sos.id.clone(), fix()).unwrap().id);
    sos_ids.push(
        store
            .cancel_sos(sos.id.clone(), CancelReason::HelpArrived, None)
            .unwrap()
            .id,
    );
    let mut report_ids = vec![];
    for _ in 0..reports {
        let d = store.create_draft(crew(), complete_fields()).unwrap();
        report_ids.push(store.finalize_draft(d.id, 1).unwrap().id);
    }
    (sos_ids, report_ids)
}

/// Sleeps until a report's retry time.
fn wait_for(next: Option<SystemTime>) {
    let next = next.expect("a retry time");
    std::thread::sleep(next.duration_since(SystemTime::now()).unwrap_or_default());
}

fn assert_exactly_once(server: &Server, ids: &[String]) {
    for id in ids {
        assert_eq!(server.count_of(id), 1, "record {id} on the server");
    }
}

fn states(store: &CrewStore) -> Vec<SyncState> {
    store
        .list_records()
        .unwrap()
        .iter()
        .map(|e| e.state)
        .collect()
}

#[test]
fn offline_saves_are_delivered_once_when_the_network_returns() {
    let mut e = env();
    e.server.stop();
    let (sos, reports) = save_work(&e.t.store, 3);
    // No network: the sync says it will retry; nothing is lost.
    let r = e.t.store.sync_now().unwrap();
    assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
    assert!(r.next_attempt_at.is_some());
    assert_eq!((r.pending_sos, r.pending_reports), (4, 3));
    // The network returns (the retry time passes).
    e.server.restart();
    wait_for(r.next_attempt_at);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
    assert_eq!((r.accepted, r.duplicates, r.wedged), (7, 0, 0));
    assert_eq!((r.pending_sos, r.pending_reports), (0, 0));
    assert_exactly_once(&e.server, &[sos.clone(), reports.clone()].concat());
    assert!(states(&e.t.store)
        .iter()
        .all(|s| *s == SyncState::Delivered));
    // SOS lane first, follow-ups after their SOS, reports last.
    let order = e.server.all_ids();
    assert_eq!(order, [sos, reports].concat());
    // A second sync sends nothing.
    let before = e.server.srv().batch_requests();
    let r = e.t.store.sync_now().unwrap();
    assert_eq!((r.sent, r.outcome), (0, SyncOutcome::Complete));
    assert_eq!(e.server.srv().batch_requests(), before);
}

#[test]
fn sos_goes_before_reports_saved_earlier() {
    let e = env();
    let d = e.t.store.create_draft(crew(), complete_fields()).unwrap();
    let report = e.t.store.finalize_draft(d.id, 1).unwrap();
    let sos = e.t.store.raise_sos(crew(), None, None).unwrap();
    e.t.store.sync_now().unwrap();
    assert_eq!(e.server.all_ids(), vec![sos.id, report.id]);
}

#[test]
fn lost_response_after_commit_gives_no_duplicate() {
    for fault in [TestFault::DropAfterCommit, TestFault::TruncateAfterCommit] {
        let e = env();
        let (sos, reports) = save_work(&e.t.store, 1);
        e.server.srv().faults().push(fault.clone());
        let r = e.t.store.sync_now().unwrap();
        assert!(
            matches!(r.outcome, SyncOutcome::WillRetry { .. }),
            "{fault:?} {r:?}"
        );
        // The server committed the SOS lane batch; the phone does not know yet.
        assert_exactly_once(&e.server, &sos);
        assert_eq!(e.t.store.pending_counts().unwrap().sos, 4);
        wait_for(r.next_attempt_at);
        let r = e.t.store.sync_now().unwrap();
        assert_eq!(r.outcome, SyncOutcome::Complete);
        assert_eq!((r.duplicates, r.accepted), (4, 1), "{fault:?}");
        assert_exactly_once(&e.server, &[sos, reports].concat());
    }
}

#[test]
fn partial_batch_answers_are_completed() {
    let e = env();
    let (sos, reports) = save_work(&e.t.store, 4);
    e.server.srv().faults().push_all([
        TestFault::Partial { accept_first: 2 },
        TestFault::Partial { accept_first: 1 },
    ]);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
    assert_eq!(r.accepted, 8);
    assert_exactly_once(&e.server, &[sos.clone(), reports.clone()].concat());
    assert_eq!(e.server.all_ids(), [sos, reports].concat(), "order kept");
}

#[test]
fn retry_after_is_honored_for_429_and_503() {
    for code in [429u16, 503] {
        let e = env();
        save_work(&e.t.store, 1);
        e.server.srv().faults().push(TestFault::Status {
            code,
            retry_after_secs: Some(2),
        });
        let start = SystemTime::now();
        let r = e.t.store.sync_now().unwrap();
        assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
        let next = r.next_attempt_at.expect("next attempt");
        assert!(
            next >= start + Duration::from_millis(1900),
            "{code}: Retry-After honored"
        );
        // The network "returning" does not override the server's request.
        e.t.store.set_online(true).unwrap();
        e.t.store.shutdown();
        let requests = e.server.srv().batch_requests();
        let r = e.t.store.sync_now().unwrap();
        assert_eq!(
            (r.sent, r.outcome.clone()),
            (0, SyncOutcome::Deferred),
            "{code}"
        );
        assert_eq!(
            e.server.srv().batch_requests(),
            requests,
            "nothing sent while held"
        );
        std::thread::sleep(next.duration_since(SystemTime::now()).unwrap_or_default());
        let r = e.t.store.sync_now().unwrap();
        assert_eq!(r.outcome, SyncOutcome::Complete, "{code}");
    }
}

#[test]
fn server_errors_back_off_then_deliver() {
    let e = env();
    let (sos, _) = save_work(&e.t.store, 0);
    e.server.srv().faults().push_all([
        TestFault::Status {
            code: 500,
            retry_after_secs: None,
        },
        TestFault::Status {
            code: 502,
            retry_after_secs: None,
        },
    ]);
    for _ in 0..2 {
        let r = e.t.store.sync_now().unwrap();
        assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }));
        wait_for(r.next_attempt_at);
    }
    assert_eq!(e.t.store.sync_now().unwrap().outcome, SyncOutcome::Complete);
    assert_exactly_once(&e.server, &sos);
    let attempts: Vec<u32> =
        e.t.store
            .list_records()
            .unwrap()
            .iter()
            .map(|q| q.attempts)
            .collect();
    assert_eq!(attempts[0], 3, "two failed sends, one success");
}

#[test]
fn poison_record_is_wedged_and_others_delivered() {
    let e = env();
    let (sos, reports) = save_work(&e.t.store, 3);
    let poison = reports[1].clone();
    e.server.srv().faults().reject_id(&poison);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!((r.accepted, r.wedged), (6, 1), "{r:?}");
    assert_eq!(r.outcome, SyncOutcome::Complete);
    let entry =
        e.t.store
            .list_records()
            .unwrap()
            .into_iter()
            .find(|q| q.id == poison)
            .unwrap();
    assert_eq!(entry.state, SyncState::Wedged);
    assert!(entry.wedged_reason.unwrap().contains("poison"));
    assert_eq!(e.t.store.pending_counts().unwrap().wedged, 1);
    assert_exactly_once(&e.server, &sos);
    assert_eq!(e.server.count_of(&poison), 0);
    // Fixed on the server: retry it.
    e.server.srv().faults().clear();
    e.t.store.retry_wedged(poison.clone()).unwrap();
    assert!(matches!(
        e.t.store.retry_wedged(poison.clone()),
        Err(CrewSafeError::InvalidState { .. })
    ));
    assert_eq!(e.t.store.sync_now().unwrap().accepted, 1);
    assert_exactly_once(&e.server, &reports);
}

#[test]
fn wedged_record_can_be_discarded() {
    let e = env();
    let (_, reports) = save_work(&e.t.store, 1);
    e.server.srv().faults().reject_id(&reports[0]);
    e.t.store.sync_now().unwrap();
    assert_eq!(e.t.store.discard_wedged(reports[0].clone()).unwrap(), 1);
    assert!(e
        .t
        .store
        .list_records()
        .unwrap()
        .iter()
        .all(|q| q.id != reports[0]));
    assert_eq!(e.t.store.pending_counts().unwrap().wedged, 0);
    // The discarded report was the newest row, so the next record takes its queue position:
    // it must still be seen as pending and be delivered.
    let d = e.t.store.create_draft(crew(), complete_fields()).unwrap();
    let next = e.t.store.finalize_draft(d.id, 1).unwrap().id;
    assert_eq!(e.t.store.pending_counts().unwrap().reports, 1);
    assert_eq!(e.t.store.sync_now().unwrap().accepted, 1);
    assert_exactly_once(&e.server, &[next]);
}

#[test]
fn unauthorized_refreshes_once_then_stops() {
    // A stale token is refreshed once and the sync succeeds.
    let e = env();
    *e.tokens.current.lock().unwrap() = "stale-token".into();
    save_work(&e.t.store, 1);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!(r.outcome, SyncOutcome::Complete);
    assert_eq!(
        e.tokens.refreshes.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // A refused refresh is a typed error and nothing is lost.
    let e = env();
    *e.tokens.current.lock().unwrap() = "stale-token".into();
    *e.tokens.refreshed.lock().unwrap() = "also-bad".into();
    save_work(&e.t.store, 1);
    assert_eq!(
        e.t.store.sync_now().unwrap_err(),
        CrewSafeError::unauthorized()
    );
    assert_eq!(
        e.tokens.refreshes.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let c = e.t.store.pending_counts().unwrap();
    assert_eq!((c.sos, c.reports), (4, 1));
    assert!(states(&e.t.store).iter().all(|s| *s == SyncState::Queued));
}

#[test]
fn batches_are_capped_by_count_and_bytes() {
    let e = env_with(|c| c.max_batch_records = 3);
    let (sos, reports) = save_work(&e.t.store, 5);
    e.t.store.sync_now().unwrap();
    // 4 SOS-lane records in 2 batches, 5 reports in 2 batches.
    assert_eq!(
        e.server.srv().batch_requests(),
        4,
        "{:?}",
        e.server.all_ids().len()
    );
    assert_exactly_once(&e.server, &[sos, reports].concat());

    let e = env_with(|c| c.max_batch_bytes = 1024);
    let (sos, reports) = save_work(&e.t.store, 4);
    e.t.store.sync_now().unwrap();
    let n = e.server.srv().batch_requests();
    assert!(n >= 5, "byte cap: one report per batch, got {n} batches");
    assert_exactly_once(&e.server, &[sos, reports].concat());
}

#[test]
fn uploads_start_small_grow_while_quick_and_keep_their_size_for_the_next_sync() {
    // At most 1000 records per upload (the default), starting at 50; a long request timeout,
    // so that a loaded machine never makes an upload count as slow.
    let patient = |c: &mut SyncConfig| c.request_timeout_ms = 30_000;
    let e = env_with(patient);
    let raise = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| e.t.store.raise_sos(crew(), None, None).unwrap().id)
            .collect()
    };
    let first = raise(600);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!((r.outcome, r.accepted), (SyncOutcome::Complete, 600));
    // 50, 50, 100, 200, 200: a batch is read while the one before it uploads, so a size
    // reached after an answer applies from the batch after next.
    assert_eq!(e.server.srv().batch_requests(), 5);
    // The size reached (800) holds for the next sync.
    let second = raise(700);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!((r.outcome, r.accepted), (SyncOutcome::Complete, 700));
    assert_eq!(e.server.srv().batch_requests(), 6);
    assert_exactly_once(&e.server, &[first, second].concat());
    // A new configuration starts small again.
    let mut c = config(&e.server.url);
    patient(&mut c);
    e.t.store.configure_sync(c, e.tokens.clone()).unwrap();
    let third = raise(60);
    e.t.store.sync_now().unwrap();
    assert_eq!(e.server.srv().batch_requests(), 8, "50 + 10");
    assert_exactly_once(&e.server, &third);
}

#[test]
fn http_to_a_non_loopback_address_is_refused() {
    let t = TestStore::new();
    for url in [
        "http://10.1.2.3:8080",
        "http://crewsafe.example.kz",
        "ftp://127.0.0.1",
    ] {
        match t
            .store
            .configure_sync(SyncConfig::new(url), Tokens::new("a", "b"))
        {
            Err(CrewSafeError::InvalidInput { field, .. }) => assert_eq!(field, "server_url"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(
        t.store.sync_now().unwrap_err(),
        CrewSafeError::not_configured()
    );
}

#[derive(Default)]
struct Recorder {
    changes: Mutex<Vec<RecordChange>>,
    progress: Mutex<Vec<SyncProgress>>,
    fail: bool,
}

impl RecordListener for Recorder {
    fn on_record_changed(&self, change: RecordChange) -> Result<(), HostError> {
        self.changes.lock().unwrap().push(change);
        if self.fail {
            return Err(HostError::Failed {
                reason: "listener bug".into(),
            });
        }
        Ok(())
    }
}

impl SyncListener for Recorder {
    fn on_sync_progress(&self, progress: SyncProgress) -> Result<(), HostError> {
        self.progress.lock().unwrap().push(progress);
        if self.fail {
            panic!("listener panics");
        }
        Ok(())
    }
}

#[test]
fn listeners_see_changes_and_cannot_break_sync() {
    let e = env();
    let good = Arc::new(Recorder::default());
    let bad = Arc::new(Recorder {
        fail: true,
        ..Default::default()
    });
    let subs = [
        e.t.store.subscribe_records(good.clone()),
        e.t.store.subscribe_sync(good.clone()),
        e.t.store.subscribe_records(bad.clone()),
        e.t.store.subscribe_sync(bad.clone()),
    ];
    let sos = e.t.store.raise_sos(crew(), None, None).unwrap();
    let r = e.t.store.sync_now().unwrap();
    assert_eq!(r.outcome, SyncOutcome::Complete);
    let seen: Vec<SyncState> = good
        .changes
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.id == sos.id)
        .map(|c| c.state)
        .collect();
    assert_eq!(
        seen,
        vec![SyncState::Queued, SyncState::Sending, SyncState::Delivered]
    );
    let phases: Vec<SyncPhase> = good
        .progress
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.phase)
        .collect();
    assert_eq!(
        phases,
        vec![SyncPhase::Started, SyncPhase::Uploaded, SyncPhase::Finished]
    );
    assert_eq!(good.progress.lock().unwrap().last().unwrap().delivered, 1);
    assert_eq!(
        bad.changes.lock().unwrap().len(),
        3,
        "a failing listener is still called"
    );
    // Cancelled subscriptions hear nothing more.
    for s in &subs {
        s.cancel();
    }
    e.t.store.raise_sos(crew(), None, None).unwrap();
    e.t.store.sync_now().unwrap();
    assert_eq!(good.changes.lock().unwrap().len(), 3);
}

#[test]
fn dispatch_status_reaches_the_phone() {
    let e = env();
    let sos = e.t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let rec = Arc::new(Recorder::default());
    let _sub = e.t.store.subscribe_records(rec.clone());
    e.t.store.sync_now().unwrap();
    let got = e.t.store.get_sos(sos.id.clone()).unwrap();
    assert_eq!(got.dispatch_status, Some(DispatchStatus::Delivered));
    let server = crewsafe_server::ServerStore::open(e.server.db()).unwrap();
    server
        .acknowledge_sos(&sos.id, "dispatcher-1")
        .unwrap()
        .unwrap();
    e.t.store.sync_now().unwrap();
    assert_eq!(
        e.t.store.get_sos(sos.id.clone()).unwrap().dispatch_status,
        Some(DispatchStatus::Acknowledged)
    );
    server
        .resolve_sos(&sos.id, "dispatcher-1")
        .unwrap()
        .unwrap();
    e.t.store.sync_now().unwrap();
    assert_eq!(
        e.t.store.get_sos(sos.id.clone()).unwrap().dispatch_status,
        Some(DispatchStatus::Resolved)
    );
    let statuses: Vec<_> = rec
        .changes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|c| c.dispatch_status)
        .collect();
    assert_eq!(
        statuses,
        vec![
            DispatchStatus::Delivered,
            DispatchStatus::Acknowledged,
            DispatchStatus::Resolved
        ]
    );
}

#[test]
fn delivered_content_is_purged_on_request_ids_and_states_stay() {
    let e = env();
    let (sos, _) = save_work(&e.t.store, 1);
    let pending =
        e.t.store
            .raise_sos(crew(), None, Some("not sent".into()))
            .unwrap();
    e.server.srv().faults().reject_id(&pending.id);
    e.t.store.sync_now().unwrap();
    // Within the retention period nothing is purged by a sync.
    assert!(e.t.store.get_sos(sos[0].clone()).is_ok());
    assert_eq!(e.t.store.purge_delivered(7).unwrap(), 0);
    assert_eq!(e.t.store.purge_delivered(0).unwrap(), 5);
    assert_eq!(
        e.t.store.get_sos(sos[0].clone()).err(),
        Some(CrewSafeError::ContentPurged { id: sos[0].clone() })
    );
    let list = e.t.store.list_records().unwrap();
    assert_eq!(list.len(), 6);
    for q in &list {
        if q.id == pending.id {
            assert_eq!(q.state, SyncState::Wedged);
            assert!(q.created_at.is_some(), "undelivered content is kept");
        } else {
            assert_eq!((q.state, q.created_at), (SyncState::Delivered, None));
        }
    }
}

#[test]
fn background_worker_delivers_when_online_and_stops_on_shutdown() {
    let e = env();
    let progress = Arc::new(Recorder::default());
    let _sub = e.t.store.subscribe_sync(progress.clone());
    e.t.store.set_online(true).unwrap();
    let sos = e.t.store.raise_sos(crew(), None, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let finished = || {
        progress
            .progress
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.phase == SyncPhase::Finished && p.delivered > 0)
    };
    while e.server.count_of(&sos.id) == 0 || !finished() {
        assert!(Instant::now() < deadline, "worker did not deliver");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Offline (once the worker's sync has ended; a running sync is not cut short): new work
    // waits.
    e.t.store.set_online(false).unwrap();
    let later = e.t.store.raise_sos(crew(), None, None).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.server.count_of(&later.id), 0);
    e.t.store.set_online(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.server.count_of(&later.id) == 0 {
        assert!(Instant::now() < deadline, "worker did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    e.t.store.shutdown();
    assert!(t.elapsed() < Duration::from_secs(5));
    let after = e.t.store.raise_sos(crew(), None, None).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.server.count_of(&after.id), 0, "no worker after shutdown");
    // Manual sync still works.
    assert_eq!(e.t.store.sync_now().unwrap().accepted, 1);
    // Configuring again starts a new worker.
    e.t.store
        .configure_sync(config(&e.server.url), e.tokens.clone())
        .unwrap();
    let again = e.t.store.raise_sos(crew(), None, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.server.count_of(&again.id) == 0 {
        assert!(Instant::now() < deadline, "no worker after configure_sync");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn many_records_survive_reopen_mid_queue() {
    let mut e = env_with(|c| c.max_batch_records = 10);
    let (sos, reports) = save_work(&e.t.store, 20);
    e.server
        .srv()
        .faults()
        .push(TestFault::Partial { accept_first: 5 });
    e.server.srv().faults().push(TestFault::Status {
        code: 503,
        retry_after_secs: None,
    });
    let r = e.t.store.sync_now().unwrap();
    // The app restarts: a new store object on the same file.
    e.t.reopen();
    e.t.store
        .configure_sync(config(&e.server.url), e.tokens.clone())
        .unwrap();
    wait_for(r.next_attempt_at);
    assert_eq!(e.t.store.sync_now().unwrap().outcome, SyncOutcome::Complete);
    let all: HashSet<String> = e.server.all_ids().into_iter().collect();
    assert_eq!(all.len(), 24);
    assert_exactly_once(&e.server, &[sos, reports].concat());
}

#[test]
fn change_numbers_follow_commit_order_under_a_concurrent_worker() {
    let e = env();
    let rec = Arc::new(Recorder::default());
    let _sub = e.t.store.subscribe_records(rec.clone());
    e.t.store.set_online(true).unwrap();
    let ids: Vec<String> = (0..100)
        .map(|_| e.t.store.raise_sos(crew(), None, None).unwrap().id)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.iter().any(|id| e.server.count_of(id) == 0)
        || e.t.store.pending_counts().unwrap().sos > 0
    {
        assert!(Instant::now() < deadline, "worker did not deliver");
        std::thread::sleep(Duration::from_millis(20));
    }
    e.t.store.shutdown();
    let changes = rec.changes.lock().unwrap().clone();
    let rank = |s: SyncState| match s {
        SyncState::Queued => 0,
        SyncState::Sending => 1,
        _ => 2,
    };
    for id in &ids {
        let mut mine: Vec<&RecordChange> = changes.iter().filter(|c| &c.id == id).collect();
        mine.sort_by_key(|c| c.sequence);
        let states: Vec<SyncState> = mine.iter().map(|c| c.state).collect();
        assert_eq!(
            states.last(),
            Some(&SyncState::Delivered),
            "{id}: {states:?}"
        );
        assert!(
            states.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
            "{id}: by sequence {states:?}"
        );
    }
}

/// An upload in flight shows as `sending` in the queue view while, on disk, its rows stay
/// `queued` (nothing to repair after a crash); the attempt is counted when the answer comes.
#[test]
fn upload_in_flight_is_sending_in_the_view_and_queued_on_disk() {
    let e = env();
    let sos = e.t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    e.server.srv().faults().push(TestFault::Delay { ms: 1_500 });
    let store = e.t.store.clone();
    let sync = std::thread::spawn(move || store.sync_now().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let state_of = |id: &str| {
        e.t.store
            .list_records()
            .unwrap()
            .into_iter()
            .find(|q| q.id == id)
            .map(|q| (q.state, q.attempts))
            .unwrap()
    };
    while state_of(&sos.id).0 != SyncState::Sending {
        assert!(Instant::now() < deadline, "never seen sending");
        std::thread::sleep(Duration::from_millis(5));
    }
    let raw = rusqlite::Connection::open(&e.t.path).unwrap();
    let on_disk: String = raw
        .query_row("SELECT state FROM records WHERE id = ?1", [&sos.id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(on_disk, "queued");
    let report = sync.join().unwrap();
    assert_eq!(report.accepted, 1, "{report:?}");
    assert_eq!(state_of(&sos.id), (SyncState::Delivered, 1));
}

/// A record whose sealed content cannot be opened on this phone is wedged with a reason and
/// the records around it are delivered in order, also when it is met while the next batch is
/// read during an upload.
#[test]
fn unreadable_record_is_wedged_and_the_rest_delivered_in_order() {
    let e = env_with(|c| c.max_batch_records = 2);
    let ids: Vec<String> = (0..6)
        .map(|_| e.t.store.raise_sos(crew(), Some(fix()), None).unwrap().id)
        .collect();
    // Damage the sealed content of the third and fourth records (the first of the second
    // batch, and the one after it).
    let raw = rusqlite::Connection::open(&e.t.path).unwrap();
    for id in &ids[2..4] {
        let mut sealed: Vec<u8> = raw
            .query_row("SELECT payload FROM records WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        sealed[20] ^= 0x01;
        raw.execute(
            "UPDATE records SET payload = ?2 WHERE id = ?1",
            rusqlite::params![id, sealed],
        )
        .unwrap();
    }
    drop(raw);
    let r = e.t.store.sync_now().unwrap();
    assert_eq!((r.accepted, r.wedged), (4, 2), "{r:?}");
    assert_eq!(r.outcome, SyncOutcome::Complete);
    let sent: Vec<String> = [&ids[0..2], &ids[4..6]].concat();
    assert_eq!(e.server.all_ids(), sent, "server order");
    for id in &ids[2..4] {
        let entry =
            e.t.store
                .list_records()
                .unwrap()
                .into_iter()
                .find(|q| &q.id == id)
                .unwrap();
        assert_eq!(entry.state, SyncState::Wedged);
        assert_eq!(entry.created_at, None, "no time without the content");
        assert!(entry
            .wedged_reason
            .unwrap()
            .contains("cannot be read on this phone"));
    }
}

/// Queue counts are exact across reopen (clean close or not) and through wedge, retry and
/// discard: the first count after open starts from the figure stored with the last change.
#[test]
fn pending_counts_survive_reopen_and_every_change_of_state() {
    let server = Server::start();
    let mut t = TestStore::new();
    let configure = |t: &TestStore| {
        t.store
            .configure_sync(
                common::net::config(&server.url),
                Tokens::new(&server.token, &server.token),
            )
            .unwrap();
    };
    let counts = |t: &TestStore| {
        let c = t.store.pending_counts().unwrap();
        (c.sos, c.reports, c.wedged)
    };
    let sos: Vec<String> = (0..4)
        .map(|_| t.store.raise_sos(crew(), None, None).unwrap().id)
        .collect();
    t.store.add_sos_location(sos[0].clone(), fix()).unwrap();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    t.store.finalize_draft(d.id, d.revision).unwrap();
    assert_eq!(counts(&t), (5, 1, 0));
    // Reopened without a clean close (the old handle is just dropped, as in a crash), then
    // after one.
    let dirty_reopen = |t: &mut TestStore| {
        let fresh = CrewStore::open(t.path_string(), t.key.clone()).unwrap();
        drop(std::mem::replace(&mut t.store, fresh));
    };
    dirty_reopen(&mut t);
    assert_eq!(counts(&t), (5, 1, 0));
    t.store.close().unwrap();
    t.reopen_after_close();
    assert_eq!(counts(&t), (5, 1, 0));

    // sos[0] is refused for good; its follow-up waits behind it and is refused too.
    server.srv().faults().reject_id(sos[0].clone());
    configure(&t);
    t.store.sync_now().unwrap();
    assert_eq!(counts(&t), (0, 0, 2));
    t.store.raise_sos(crew(), None, None).unwrap();
    dirty_reopen(&mut t);
    assert_eq!(counts(&t), (1, 0, 2));
    // Retry puts it back; discard takes it with its follow-up.
    t.store.retry_wedged(sos[0].clone()).unwrap();
    assert_eq!(counts(&t), (2, 0, 1));
    t.store.close().unwrap();
    t.reopen_after_close();
    assert_eq!(counts(&t), (2, 0, 1));
    configure(&t);
    t.store.sync_now().unwrap();
    assert_eq!(counts(&t), (0, 0, 2));
    t.reopen();
    assert_eq!(counts(&t), (0, 0, 2));
    assert_eq!(t.store.discard_wedged(sos[0].clone()).unwrap(), 2);
    assert_eq!(counts(&t), (0, 0, 0));
    t.reopen();
    assert_eq!(counts(&t), (0, 0, 0));
}
