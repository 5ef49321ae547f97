//! A misconfigured server never silently stops alarms. The phone syncs to the real reference
//! server through our own proxy (`tests/common/proxy.rs`), which plays a misconfigured load
//! balancer or gateway: it answers redirects, 404, 415, 418 or a malformed-envelope 400 itself,
//! or rewrites the request on its way so that the real server answers 404 or 405.
//!
//! For every such answer: nothing is wedged, every record stays queued, `sync_now` and the
//! sync listener get `ServerRejectedRequest { status }`, the report never says `Complete`
//! while records wait, and once the misconfiguration is gone everything is delivered exactly
//! once, by `sync_now` and by the background worker. A record that breaks its whole batch
//! (a real server answer) is wedged only when the server accepts other records in the same
//! run. Also: tokens that cannot be sent, URLs with credentials.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::net::{Server, Tokens};
use common::proxy::{Fault, Proxy};
use common::*;
use crewsafe::*;
use crewsafe_server::TestFault;

/// Collects what sync listeners hear at the end of each sync.
#[derive(Default)]
struct Ends(Mutex<Vec<Option<CrewSafeError>>>);

impl SyncListener for Ends {
    fn on_sync_progress(&self, p: SyncProgress) -> Result<(), HostError> {
        if p.phase == SyncPhase::Finished {
            self.0.lock().unwrap().push(p.error);
        }
        Ok(())
    }
}

impl Ends {
    fn errors(&self) -> Vec<CrewSafeError> {
        self.0.lock().unwrap().iter().flatten().cloned().collect()
    }
}

/// A store syncing to a real server through the proxy, with listeners attached.
struct Env {
    server: Server,
    proxy: Proxy,
    t: TestStore,
    ends: Arc<Ends>,
    _sub: Arc<Subscription>,
}

impl Env {
    fn new() -> Env {
        let server = Server::start();
        let proxy = Proxy::start(server.srv().addr());
        let t = TestStore::new();
        let mut cfg = common::net::config(&proxy.url());
        cfg.backoff_base_ms = 100;
        cfg.backoff_max_ms = 400;
        t.store
            .configure_sync(cfg, Tokens::new(&server.token, &server.token))
            .unwrap();
        let ends = Arc::new(Ends::default());
        let sub = t.store.subscribe_sync(ends.clone());
        Env {
            server,
            proxy,
            t,
            ends,
            _sub: sub,
        }
    }

    /// Two SOS (one with a follow-up position) and a report: every record kind and both
    /// lanes. Returns the ids in the order queued.
    fn queue_work(&self) -> Vec<String> {
        let s = &self.t.store;
        let a = s.raise_sos(crew(), Some(fix()), None).unwrap();
        let l = s.add_sos_location(a.id.clone(), fix()).unwrap();
        let b = s.raise_sos(crew(), None, Some("second".into())).unwrap();
        let d = s.create_draft(crew(), complete_fields()).unwrap();
        let r = s.finalize_draft(d.id, d.revision).unwrap();
        vec![a.id, l.id, b.id, r.id]
    }

    fn counts(&self) -> PendingCounts {
        self.t.store.pending_counts().unwrap()
    }

    /// Syncs until nothing is pending (waiting out retry times), within `limit`.
    fn sync_until_delivered(&self, limit: Duration) -> SyncReport {
        let end = Instant::now() + limit;
        loop {
            let r = self.t.store.sync_now().expect("sync after the fix");
            if r.outcome == SyncOutcome::Complete {
                return r;
            }
            assert!(Instant::now() < end, "not delivered in time: {r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every id is stored exactly once on the server and delivered on the phone.
    fn assert_delivered_once(&self, ids: &[String]) {
        for id in ids {
            assert_eq!(self.server.count_of(id), 1, "{id} on the server");
        }
        let c = self.counts();
        assert_eq!((c.sos, c.reports, c.wedged), (0, 0, 0), "{c:?}");
    }
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Answer {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.into(),
    }
}

fn rewrite(from: &str, to: &str) -> Fault {
    Fault::RewriteHead {
        from: from.into(),
        to: to.into(),
    }
}

/// What a misconfiguration looks like and the status the app must be told.
fn misconfigurations() -> Vec<(&'static str, Fault, u16)> {
    let moved = [("location", "https://elsewhere.example.kz/v1/records:batch")];
    vec![
        ("301 moved permanently", answer(301, &moved, ""), 301),
        ("302 found", answer(302, &moved, ""), 302),
        ("307 temporary redirect", answer(307, &moved, ""), 307),
        ("308 permanent redirect", answer(308, &moved, ""), 308),
        (
            "404 from the real server (wrong path)",
            rewrite("POST /v1/records:batch", "POST /api/v1/records:batch"),
            404,
        ),
        (
            "405 from the real server (wrong method)",
            rewrite("POST /v1/records:batch", "PUT /v1/records:batch"),
            405,
        ),
        (
            "415 from a gateway",
            answer(415, &[], "unsupported media type"),
            415,
        ),
        (
            "400 malformed envelope, every record alone",
            answer(
                400,
                &[("content-type", "application/json")],
                r#"{"error":"malformed","message":"malformed body: missing field `records`"}"#,
            ),
            400,
        ),
        (
            "400 unsupported_version",
            answer(
                400,
                &[("content-type", "application/json")],
                r#"{"error":"unsupported_version","message":"protocol version 1 is not supported"}"#,
            ),
            400,
        ),
        ("418 from a gateway", answer(418, &[], "I'm a teapot"), 418),
    ]
}

#[test]
fn whole_request_refusals_wedge_nothing_and_tell_the_app() {
    for (what, fault, status) in misconfigurations() {
        let e = Env::new();
        let ids = e.queue_work();
        e.proxy.always(fault);
        let err = e.t.store.sync_now().expect_err(what);
        assert_eq!(
            err,
            CrewSafeError::ServerRejectedRequest { status },
            "{what}"
        );
        assert!(!err.to_string().is_empty());
        let c = e.counts();
        assert_eq!((c.sos, c.reports, c.wedged), (3, 1, 0), "{what}: {c:?}");
        assert!(
            e.server.all_ids().is_empty(),
            "{what}: nothing reached the server"
        );
        assert_eq!(
            e.ends.errors(),
            vec![CrewSafeError::ServerRejectedRequest { status }],
            "{what}: the sync listener hears the error"
        );
        assert!(e
            .t
            .store
            .list_records()
            .unwrap()
            .iter()
            .all(|r| r.state == SyncState::Queued || r.state == SyncState::Draft));
        // While the lane waits for its retry time, the report says so: never `Complete`.
        let again = e.t.store.sync_now().expect(what);
        assert_eq!(again.outcome, SyncOutcome::Deferred, "{what}");
        assert!(again.next_attempt_at.is_some(), "{what}");

        // The misconfiguration is fixed: everything goes, exactly once.
        e.proxy.clear();
        let r = e.sync_until_delivered(Duration::from_secs(10));
        assert_eq!(r.wedged, 0, "{what}");
        e.assert_delivered_once(&ids);
    }
}

#[test]
fn the_background_worker_retries_a_refusing_server_and_never_wedges() {
    let e = Env::new();
    e.proxy.always(answer(
        307,
        &[("location", "https://elsewhere.example.kz/")],
        "",
    ));
    let ids = e.queue_work();
    e.t.store.set_online(true).unwrap();
    // The worker keeps trying (backoff 100..400 ms) and every attempt reaches the listener.
    let end = Instant::now() + Duration::from_secs(20);
    while e.ends.errors().len() < 3 {
        assert!(Instant::now() < end, "the worker stopped retrying");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(e
        .ends
        .errors()
        .iter()
        .all(|x| *x == CrewSafeError::ServerRejectedRequest { status: 307 }));
    let c = e.counts();
    assert_eq!((c.sos, c.reports, c.wedged), (3, 1, 0), "{c:?}");

    e.proxy.clear();
    let end = Instant::now() + Duration::from_secs(20);
    while e.counts().sos + e.counts().reports > 0 {
        assert!(Instant::now() < end, "not delivered after the fix");
        std::thread::sleep(Duration::from_millis(20));
    }
    e.t.store.shutdown();
    e.assert_delivered_once(&ids);
}

/// One record breaks its whole batch (the real server answers `400 malformed` for any batch
/// holding it): it is isolated and wedged, because the server accepts the others in the
/// same run; wherever it stands in the queue.
#[test]
fn a_record_that_breaks_its_batch_is_wedged_only_while_others_are_accepted() {
    for poison_at in 0..3 {
        let e = Env::new();
        let sos: Vec<String> = (0..3)
            .map(|_| e.t.store.raise_sos(crew(), None, None).unwrap().id)
            .collect();
        let poison = sos[poison_at].clone();
        e.server
            .srv()
            .faults()
            .push(TestFault::MalformedWithId { id: poison.clone() });
        let r = e.t.store.sync_now().unwrap();
        assert_eq!(
            (r.accepted, r.wedged),
            (2, 1),
            "poison at {poison_at}: {r:?}"
        );
        assert_eq!(r.outcome, SyncOutcome::Complete);
        for id in &sos {
            assert_eq!(e.server.count_of(id), usize::from(*id != poison));
        }
        let wedged =
            e.t.store
                .list_records()
                .unwrap()
                .into_iter()
                .find(|r| r.id == poison)
                .unwrap();
        assert_eq!(wedged.state, SyncState::Wedged);
        assert!(wedged.wedged_reason.unwrap().contains("status 400"));
    }
}

/// When the only records to try are refused alone the same way, it is the server: nothing
/// is wedged and the app is told; once the server takes them, they are delivered.
#[test]
fn when_every_record_alone_is_refused_nothing_is_wedged() {
    let e = Env::new();
    let a = e.t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let l = e.t.store.add_sos_location(a.id.clone(), fix()).unwrap();
    e.server
        .srv()
        .faults()
        .push(TestFault::MalformedWithId { id: a.id.clone() });
    assert_eq!(
        e.t.store.sync_now().unwrap_err(),
        CrewSafeError::ServerRejectedRequest { status: 400 }
    );
    let c = e.counts();
    assert_eq!((c.sos, c.wedged), (2, 0), "{c:?}");
    // The follow-up was held back with its SOS, never sent alone ahead of it.
    assert!(e.server.all_ids().is_empty());
    let attempts = |id: &str| {
        e.t.store
            .list_records()
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .attempts
    };
    // Both went in the first batch; the SOS alone once more; the follow-up never alone.
    assert_eq!(e.server.srv().batch_requests(), 2);
    assert_eq!((attempts(&a.id), attempts(&l.id)), (2, 1));
    e.server.srv().faults().clear();
    e.sync_until_delivered(Duration::from_secs(10));
    e.assert_delivered_once(&[a.id, l.id]);
}

#[test]
fn a_token_that_cannot_be_a_header_is_a_typed_error_and_nothing_is_sent() {
    for bad in ["token-with-newline\n", "t\u{f6}ken", "two words", ""] {
        let e = Env::new();
        e.t.store
            .configure_sync(
                common::net::config(&e.proxy.url()),
                Tokens::new(bad, &e.server.token),
            )
            .unwrap();
        e.t.store.raise_sos(crew(), None, None).unwrap();
        match e.t.store.sync_now() {
            Err(CrewSafeError::InvalidDeviceToken { reason }) => {
                assert!(!reason.contains(bad) || bad.is_empty(), "{reason}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
        assert_eq!(e.server.srv().batch_requests(), 0);
        assert_eq!(e.counts().sos, 1);
        assert!(matches!(
            e.ends.errors().as_slice(),
            [CrewSafeError::InvalidDeviceToken { .. }]
        ));
    }
}

#[test]
fn a_refreshed_token_that_cannot_be_a_header_is_a_typed_error() {
    let e = Env::new();
    e.t.store
        .configure_sync(
            common::net::config(&e.proxy.url()),
            Tokens::new("stale-token", "fresh\r\ntoken"),
        )
        .unwrap();
    e.t.store.raise_sos(crew(), None, None).unwrap();
    assert!(matches!(
        e.t.store.sync_now(),
        Err(CrewSafeError::InvalidDeviceToken { .. })
    ));
    assert_eq!(e.counts().sos, 1);
}

#[test]
fn a_url_with_credentials_is_refused_at_configure() {
    let t = TestStore::new();
    for url in [
        "https://user:secret@crewsafe.example.kz",
        "http://user@127.0.0.1:8080",
    ] {
        match t
            .store
            .configure_sync(SyncConfig::new(url), Tokens::new("a", "b"))
        {
            Err(CrewSafeError::InvalidInput { field, reason }) => {
                assert_eq!(field, "server_url");
                assert!(!reason.contains("secret"));
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}
