//! Lone-worker check-ins from the phone to the dispatcher, against the real reference server
//! with a short check-in "minute": closed on time (no alarm), missed (the server raises the
//! alarm by itself while the phone is offline, with the crew's last known position), and
//! closed late offline (the late closing resolves the alarm and says so).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use crewsafe::*;
use crewsafe_server::protocol::{AlarmKind, DispatchSos, DispatchSosList};
use crewsafe_server::ServerConfig;

/// One check-in "minute" on the test server.
const MINUTE: Duration = Duration::from_millis(300);

struct Env {
    t: TestStore,
    _dir: tempfile::TempDir,
    server: crewsafe_server::RunningServer,
    dispatcher: String,
    http: reqwest::blocking::Client,
}

impl Env {
    fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let token = crewsafe_server::enroll_device(&db, &crew().device_id).unwrap();
        let dispatcher = crewsafe_server::enroll_dispatcher(&db, "dispatcher-check-ins").unwrap();
        let server = crewsafe_server::start(
            ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap()).with_check_in_minute(MINUTE),
        )
        .unwrap();
        let t = TestStore::new();
        t.store
            .configure_sync(config(&server.url()), Tokens::new(&token, &token))
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        Env {
            t,
            _dir: dir,
            server,
            dispatcher,
            http: reqwest::blocking::Client::new(),
        }
    }

    fn store(&self) -> &Arc<CrewStore> {
        &self.t.store
    }

    /// Every alarm the dispatcher sees.
    fn alarms(&self) -> Vec<DispatchSos> {
        let body = self
            .http
            .get(format!("{}/v1/dispatch/sos", self.server.url()))
            .bearer_auth(&self.dispatcher)
            .send()
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .unwrap();
        serde_json::from_slice::<DispatchSosList>(&body)
            .unwrap()
            .sos
    }

    fn alarm(&self, id: &str) -> Option<DispatchSos> {
        self.alarms().into_iter().find(|a| a.id == id)
    }

    /// Waits until `f` holds of the alarm for `id`.
    fn wait_alarm(
        &self,
        id: &str,
        within: Duration,
        f: impl Fn(&DispatchSos) -> bool,
    ) -> DispatchSos {
        let deadline = Instant::now() + within;
        loop {
            if let Some(a) = self.alarm(id).filter(|a| f(a)) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "alarm {id}: {:?}",
                self.alarm(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sync_complete(&self) {
        let r = self.store().sync_now().unwrap();
        assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
    }
}

#[test]
fn a_check_in_closed_on_time_raises_no_alarm() {
    let e = Env::start();
    let c = e
        .store()
        .start_check_in(crew(), 4, Some("Abay ave 12".into()), None, Some(fix()))
        .unwrap();
    e.sync_complete();
    e.store().check_in(c.id.clone(), None).unwrap();
    e.sync_complete();
    // Well past the due time (4 minutes of 300 ms).
    std::thread::sleep(MINUTE * 6);
    assert!(e.alarm(&c.id).is_none(), "{:?}", e.alarm(&c.id));
}

#[test]
fn an_extension_moves_the_due_time_on_the_server() {
    let e = Env::start();
    let c = e
        .store()
        .start_check_in(crew(), 2, None, None, None)
        .unwrap();
    e.store().extend_check_in(c.id.clone(), 10).unwrap();
    e.sync_complete();
    std::thread::sleep(MINUTE * 5);
    assert!(e.alarm(&c.id).is_none(), "extended: not due yet");
    e.wait_alarm(&c.id, MINUTE * 15, |a| a.alarm == AlarmKind::MissedCheckIn);
}

#[test]
fn a_missed_check_in_raises_the_alarm_and_a_late_check_in_resolves_it() {
    let e = Env::start();
    // The crew's last known position: a follow-up fix after the check-in started.
    let c = e
        .store()
        .start_check_in(
            crew(),
            2,
            Some("Kenesary st 40, flat 12".into()),
            None,
            None,
        )
        .unwrap();
    let mut last = fix();
    last.latitude = 51.2001;
    let sos = e
        .store()
        .raise_sos(crew(), Some(last.clone()), None)
        .unwrap();
    e.store()
        .cancel_sos(sos.id.clone(), CancelReason::FalseAlarm, None)
        .unwrap();
    e.sync_complete();
    // The phone goes dark (offline, broken): the server raises the alarm by itself.
    e.store().set_online(false).unwrap();
    let alarm = e.wait_alarm(&c.id, MINUTE * 10, |a| a.alarm == AlarmKind::MissedCheckIn);
    assert_eq!(alarm.status, DispatchStatus::Delivered.into());
    assert_eq!(alarm.crew.crew_id, crew().crew_id);
    let at = alarm.location.expect("the crew's last known position");
    assert!((at.latitude - 51.2001).abs() < 1e-9, "{at:?}");
    let check_in = alarm.check_in.expect("the check-in behind the alarm");
    assert_eq!(check_in.address.as_deref(), Some("Kenesary st 40, flat 12"));
    assert!(check_in.done_at.is_none());
    assert!(check_in.due_at >= check_in.received_at);

    // The crew was fine, checked in offline, and the closing arrives late.
    e.store().check_in(c.id.clone(), None).unwrap();
    e.sync_complete();
    let closed = e.wait_alarm(&c.id, Duration::from_secs(5), |a| {
        a.status == DispatchStatus::Resolved.into()
    });
    let check_in = closed.check_in.expect("check-in");
    assert!(check_in.closed_late, "{check_in:?}");
    assert!(check_in.done_at.is_some() && check_in.done_received_at.is_some());
    // Exactly one alarm for the check-in.
    assert_eq!(e.alarms().iter().filter(|a| a.id == c.id).count(), 1);
}
