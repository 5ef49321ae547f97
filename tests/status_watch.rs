//! The SOS loop on the phone, against the real reference server on loopback: once an SOS is
//! delivered and the host says the network is up, dispatch's answer (acknowledged, resolved,
//! the dispatcher's message) reaches the record listener by itself, with no `sync_now`.
//! Offline nothing is asked; a cancelled or resolved alarm is not watched; a server restart
//! during a watch is survived; closing the store does not wait for a watch in flight. Also the
//! lone-worker check-in calls.

mod common;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::net::*;
use common::*;
use crewsafe::*;

/// Sends every record change to a channel.
struct Changes(Mutex<Sender<RecordChange>>);

impl RecordListener for Changes {
    fn on_record_changed(&self, c: RecordChange) -> Result<(), HostError> {
        let _ = self.0.lock().unwrap().send(c);
        Ok(())
    }
}

/// A phone online against a fresh server, a dispatcher and the phone's record changes.
struct Loop {
    t: TestStore,
    server: Server,
    dispatcher: String,
    changes: Receiver<RecordChange>,
    _sub: Arc<Subscription>,
}

impl Loop {
    fn start() -> Loop {
        Loop::with_config(|_| {})
    }

    fn with_config(tune: impl FnOnce(&mut SyncConfig)) -> Loop {
        let server = Server::start();
        let t = TestStore::new();
        let mut c = config(&server.url);
        tune(&mut c);
        let tokens = Tokens::new(&server.token, &server.token);
        t.store.configure_sync(c, tokens).unwrap();
        let (tx, rx) = channel();
        let sub = t.store.subscribe_records(Arc::new(Changes(Mutex::new(tx))));
        t.store.set_online(true).unwrap();
        let dispatcher = crewsafe_server::enroll_dispatcher(server.db(), "dispatcher-7").unwrap();
        Loop {
            t,
            server,
            dispatcher,
            changes: rx,
            _sub: sub,
        }
    }

    /// Raises an SOS and waits until the background worker delivered it.
    fn delivered_sos(&self) -> Sos {
        let sos = self.t.store.raise_sos(crew(), Some(fix()), None).unwrap();
        self.wait_for(Duration::from_secs(10), |c| {
            c.id == sos.id && c.state == SyncState::Delivered
        })
        .expect("the SOS is delivered by the background worker");
        sos
    }

    /// Waits for a change matching `want`.
    fn wait_for(
        &self,
        within: Duration,
        want: impl Fn(&RecordChange) -> bool,
    ) -> Option<RecordChange> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.changes.recv_timeout(left) {
                Ok(c) if want(&c) => return Some(c),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// A dispatcher's move, as the console makes it.
    fn dispatch(&self, sos_id: &str, action: &str, message: Option<&str>) {
        let body = match message {
            Some(m) => serde_json::json!({ "message": m }).to_string(),
            None => String::new(),
        };
        let status = post(
            &format!("{}/v1/dispatch/sos/{sos_id}/{action}", self.server.url),
            &self.dispatcher,
            &body,
        );
        assert_eq!(status, 200, "{action} {sos_id}");
    }
}

/// A plain HTTP/1.1 POST on loopback; returns the status.
fn post(url: &str, token: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn is_status(id: &str, status: DispatchStatus) -> impl Fn(&RecordChange) -> bool + '_ {
    move |c| c.id == id && c.dispatch_status == Some(status)
}

#[test]
fn the_acknowledgement_and_message_reach_the_phone_by_themselves() {
    let l = Loop::start();
    let sos = l.delivered_sos();
    // Let the watch settle on the server first (it learns the delivered status at once).
    std::thread::sleep(Duration::from_millis(300));
    let clicked = Instant::now();
    l.dispatch(&sos.id, "acknowledge", Some("crew 7 on the way, 6 min"));
    l.wait_for(
        Duration::from_secs(5),
        is_status(&sos.id, DispatchStatus::Acknowledged),
    )
    .expect("the listener hears Acknowledged without sync_now");
    let took = clicked.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let got = l.t.store.get_sos(sos.id.clone()).unwrap();
    assert_eq!(got.dispatch_status, Some(DispatchStatus::Acknowledged));
    let answer = got.dispatch.expect("the dispatch answer is kept");
    assert_eq!(answer.status, DispatchStatus::Acknowledged);
    assert_eq!(answer.acknowledged_by.as_deref(), Some("dispatcher-7"));
    assert!(answer.acknowledged_at.is_some());
    assert_eq!(answer.message.as_deref(), Some("crew 7 on the way, 6 min"));

    // A new message alone also arrives, then the resolution.
    l.dispatch(&sos.id, "acknowledge", Some("crew 7 is 2 min away"));
    l.wait_for(Duration::from_secs(5), |c| c.id == sos.id)
        .expect("a new message is a change too");
    let answer = l.t.store.get_sos(sos.id.clone()).unwrap().dispatch.unwrap();
    assert_eq!(answer.message.as_deref(), Some("crew 7 is 2 min away"));
    l.dispatch(&sos.id, "resolve", None);
    l.wait_for(
        Duration::from_secs(5),
        is_status(&sos.id, DispatchStatus::Resolved),
    )
    .expect("the listener hears Resolved");
    let answer = l.t.store.get_sos(sos.id.clone()).unwrap().dispatch.unwrap();
    assert!(answer.resolved_at.is_some());
}

#[test]
fn the_message_is_sealed_at_rest() {
    let l = Loop::start();
    let sos = l.delivered_sos();
    let secret = "Crew-Seven-Secret-Route-Message";
    l.dispatch(&sos.id, "acknowledge", Some(secret));
    l.wait_for(
        Duration::from_secs(5),
        is_status(&sos.id, DispatchStatus::Acknowledged),
    )
    .expect("acknowledged");
    l.t.store.close().unwrap();
    for (path, bytes) in l.t.file_bytes() {
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains(secret), "message in clear in {path}");
        assert!(
            !hay.contains("dispatcher-7"),
            "dispatcher name in clear in {path}"
        );
    }
}

#[test]
fn offline_nothing_is_asked_and_the_answer_comes_when_online_again() {
    let l = Loop::start();
    let sos = l.delivered_sos();
    l.t.store.set_online(false).unwrap();
    // A request already waiting on the server may still answer; wait for it to be gone.
    std::thread::sleep(Duration::from_millis(300));
    l.dispatch(&sos.id, "acknowledge", None);
    let heard = l.wait_for(
        Duration::from_secs(2),
        is_status(&sos.id, DispatchStatus::Acknowledged),
    );
    // The request in flight when the phone went offline may have carried it; if not, it
    // arrives only once online again.
    if heard.is_none() {
        l.t.store.set_online(true).unwrap();
        l.wait_for(
            Duration::from_secs(5),
            is_status(&sos.id, DispatchStatus::Acknowledged),
        )
        .expect("the answer arrives once online again");
    }
}

#[test]
fn an_alarm_raised_while_a_watch_waits_is_watched_at_once() {
    let l = Loop::start();
    let first = l.delivered_sos();
    // The watch now waits on the server for news about the first alarm only.
    std::thread::sleep(Duration::from_millis(500));
    let second = l.delivered_sos();
    std::thread::sleep(Duration::from_millis(300));
    l.dispatch(&second.id, "acknowledge", None);
    l.wait_for(
        Duration::from_secs(3),
        is_status(&second.id, DispatchStatus::Acknowledged),
    )
    .expect("the second alarm's answer does not wait for the first watch to time out");
    l.dispatch(&first.id, "resolve", None);
    l.wait_for(
        Duration::from_secs(3),
        is_status(&first.id, DispatchStatus::Resolved),
    )
    .expect("the first alarm is still watched");
}

#[test]
fn a_cancelled_alarm_is_not_watched_but_a_sync_still_fetches_it() {
    let l = Loop::start();
    // Raised and cancelled offline: both arrive in one batch, the alarm is never open.
    l.t.store.set_online(false).unwrap();
    let sos = l.t.store.raise_sos(crew(), None, None).unwrap();
    let cancel =
        l.t.store
            .cancel_sos(sos.id.clone(), CancelReason::FalseAlarm, None)
            .unwrap();
    l.t.store.set_online(true).unwrap();
    l.wait_for(Duration::from_secs(10), |c| {
        c.id == cancel.id && c.state == SyncState::Delivered
    })
    .expect("cancellation delivered");
    std::thread::sleep(Duration::from_millis(300));
    l.dispatch(&sos.id, "acknowledge", None);
    assert_eq!(
        l.wait_for(
            Duration::from_millis(1500),
            is_status(&sos.id, DispatchStatus::Acknowledged)
        )
        .map(|c| format!("{c:?}")),
        None,
        "a cancelled alarm is not watched"
    );
    l.t.store.sync_now().unwrap();
    assert_eq!(
        l.t.store.get_sos(sos.id).unwrap().dispatch_status,
        Some(DispatchStatus::Acknowledged)
    );
}

#[test]
fn a_server_restart_during_a_watch_is_survived() {
    let mut l = Loop::start();
    let sos = l.delivered_sos();
    std::thread::sleep(Duration::from_millis(300));
    l.server.stop();
    std::thread::sleep(Duration::from_millis(500));
    l.server.restart();
    l.dispatch(&sos.id, "acknowledge", Some("after restart"));
    l.wait_for(
        Duration::from_secs(10),
        is_status(&sos.id, DispatchStatus::Acknowledged),
    )
    .expect("the watch comes back after the restart (with backoff)");
}

#[test]
fn closing_does_not_wait_for_a_watch_in_flight() {
    let l = Loop::start();
    l.delivered_sos();
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    l.t.store.close().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "close took {took:?}");
}

#[test]
fn the_watch_can_be_turned_off() {
    let l = Loop::with_config(|c| c.status_watch_seconds = 0);
    let sos = l.delivered_sos();
    // The sync that delivered it has ended (it fetches statuses once, at its end).
    std::thread::sleep(Duration::from_millis(300));
    l.dispatch(&sos.id, "acknowledge", None);
    assert!(l
        .wait_for(
            Duration::from_millis(1500),
            is_status(&sos.id, DispatchStatus::Acknowledged)
        )
        .is_none());
    l.t.store.sync_now().unwrap();
    assert_eq!(
        l.t.store.get_sos(sos.id).unwrap().dispatch_status,
        Some(DispatchStatus::Acknowledged)
    );
}

#[test]
fn watch_settings_out_of_range_are_refused() {
    let t = TestStore::new();
    for bad in [1, 4, 56, 3600] {
        let mut c = config("http://127.0.0.1:9");
        c.status_watch_seconds = bad;
        let err = t
            .store
            .configure_sync(c, Tokens::new("t", "t"))
            .unwrap_err();
        assert!(
            matches!(&err, CrewSafeError::InvalidInput { field, .. } if field == "status_watch_seconds"),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn check_ins_are_stored_extended_closed_and_delivered() {
    let l = Loop::start();
    let store = &l.t.store;
    let c = store
        .start_check_in(
            crew(),
            20,
            Some("Abay ave 12, flat 40".into()),
            Some("drunk patient".into()),
            Some(fix()),
        )
        .unwrap();
    assert_eq!(c.state, CheckInState::Open);
    assert_eq!(c.due_in_minutes, 20);
    assert_eq!(
        c.due_at.duration_since(c.started_at).unwrap(),
        Duration::from_secs(20 * 60)
    );
    let c = store.extend_check_in(c.id.clone(), 10).unwrap();
    assert_eq!(c.due_in_minutes, 30);
    assert_eq!(c.extensions.len(), 1);
    let c = store.check_in(c.id.clone(), None).unwrap();
    assert_eq!(c.state, CheckInState::Done);
    assert!(c.done_at.is_some());
    let done_id = c.done_id.clone().unwrap();
    // Everything reaches the server, in order, exactly once.
    l.wait_for(Duration::from_secs(10), |ch| {
        ch.id == done_id && ch.state == SyncState::Delivered
    })
    .expect("the closing record is delivered");
    let got = store.get_check_in(c.id.clone()).unwrap();
    assert_eq!(got.sync_state, SyncState::Delivered);
    assert_eq!(got.done_sync_state, Some(SyncState::Delivered));
    assert_eq!(got.extensions[0].sync_state, SyncState::Delivered);
    assert_eq!(l.server.count_of(&c.id), 1);
    assert_eq!(l.server.count_of(&done_id), 1);

    // A closed check-in takes nothing more.
    assert!(matches!(
        store.check_in(c.id.clone(), None),
        Err(CrewSafeError::InvalidState { .. })
    ));
    assert!(matches!(
        store.extend_check_in(c.id.clone(), 5),
        Err(CrewSafeError::InvalidState { .. })
    ));
}

#[test]
fn bad_check_in_input_is_refused_and_nothing_is_stored() {
    let t = TestStore::new();
    let store = &t.store;
    let before = store.pending_counts().unwrap();
    for minutes in [0, 1441, u32::MAX] {
        let err = store
            .start_check_in(crew(), minutes, None, None, None)
            .unwrap_err();
        assert!(
            matches!(&err, CrewSafeError::InvalidInput { field, .. } if field == "due_in_minutes"),
            "{err:?}"
        );
    }
    let err = store
        .start_check_in(crew(), 10, Some("x".repeat(501)), None, None)
        .unwrap_err();
    assert!(matches!(&err, CrewSafeError::InvalidInput { field, .. } if field == "address"));
    assert_eq!(store.pending_counts().unwrap(), before);
    let unknown = "7a1e3c2e-1111-4222-8333-944455566677".to_string();
    assert!(matches!(
        store.check_in(unknown.clone(), None),
        Err(CrewSafeError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_check_in(unknown),
        Err(CrewSafeError::NotFound { .. })
    ));
    // An SOS is not a check-in.
    let sos = store.raise_sos(crew(), None, None).unwrap();
    assert!(matches!(
        store.check_in(sos.id.clone(), None),
        Err(CrewSafeError::NotFound { .. })
    ));
    let c = store.start_check_in(crew(), 10, None, None, None).unwrap();
    assert!(matches!(
        store.extend_check_in(c.id.clone(), 0),
        Err(CrewSafeError::InvalidInput { .. })
    ));
    assert!(matches!(
        store.get_sos(c.id),
        Err(CrewSafeError::NotFound { .. })
    ));
}
