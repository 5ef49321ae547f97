//! The storage contract: one suite that runs unchanged against both backends, through the
//! HTTP API and [`crewsafe_server::ServerStore`] (`sqlite_contract.rs` runs it on SQLite,
//! `postgres_contract.rs` on PostgreSQL). Each test names the behaviour both must share:
//! dedupe, conflict, content read as sent, ordering, SOS status, dispatcher moves with
//! messages, tokens, check-ins (on time, missed, late), escalation, the event stream and its
//! replay, the status watch, concurrent uploads, and the dispatcher list a page at a time with
//! its filters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crewsafe_server::protocol::{
    AlarmKind, DispatchSos, DispatchSosList, DispatchStatus, ItemStatus, SosStatusResponse,
};
use crewsafe_server::{ServerConfig, CHECK_IN_RESOLVER};
use serde_json::{json, Value};

use crate::common::alarms::*;
use crate::common::*;

mod reports;
pub use reports::{attachment_round_trip, report_list};

/// How long a check-in minute lasts in these tests.
pub const MINUTE: Duration = Duration::from_millis(300);

/// The `crewsafe_batches_stored_again_total` counter of `/metrics`.
fn stored_again(l: &Loop) -> f64 {
    metric(&l.metrics(), "crewsafe_batches_stored_again_total")
}

/// A server on `backend` with [`DEVICE`] and [`DISPATCHER`] enrolled, or `None` to skip.
pub fn site(
    backend: Backend,
    configure: impl FnOnce(ServerConfig) -> ServerConfig,
) -> Option<Loop> {
    Loop::start_on(backend, configure)
}

fn status(l: &Loop, token: &str, ids: &[&str]) -> SosStatusResponse {
    let resp = l
        .client
        .post(l.url("/v1/sos:status"))
        .bearer_auth(token)
        .body(json!({"protocol": 1, "ids": ids}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    parse(resp)
}

/// The same records again are duplicates answered with the first receive time; ids are
/// compared in lower case and answered as sent.
pub fn dedupe(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let (s, r) = (sos(), report());
    let first = l.post_raw_records(&[s.clone(), r.clone()]);
    expect_item(&first[0], &id_of(&s), ItemStatus::Accepted);
    expect_item(&first[1], &id_of(&r), ItemStatus::Accepted);
    std::thread::sleep(Duration::from_millis(5));
    let again = l.post_raw_records(&[r.clone(), s.clone(), s.clone()]);
    expect_item(&again[0], &id_of(&r), ItemStatus::Duplicate);
    expect_item(&again[1], &id_of(&s), ItemStatus::Duplicate);
    expect_item(&again[2], &id_of(&s), ItemStatus::Duplicate);
    assert_eq!(again[0].received_at, first[1].received_at);
    assert_eq!(again[1].received_at, first[0].received_at);
    let mut upper = r.clone();
    upper["id"] = json!(id_of(&r).to_uppercase());
    let answer = l.post_raw_records(std::slice::from_ref(&upper));
    expect_item(&answer[0], &id_of(&upper), ItemStatus::Duplicate);
    let store = l.store();
    assert_eq!(store.record_count().unwrap(), 2);
    assert_eq!(store.count_of(&id_of(&s)).unwrap(), 1);
    let stored = store.record(DEVICE, &id_of(&s)).unwrap().unwrap();
    assert_eq!(stored.received_at, first[0].received_at.unwrap());
    assert_eq!(stored.content, s["content"]);
}

/// The same id with other content is a conflict and the original stays; another device may
/// use the same id. On PostgreSQL the batch that brought the stored key was stored again with
/// conflict checks, and `/metrics` counts it.
pub fn conflict(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let r = report();
    l.send(std::slice::from_ref(&r));
    assert_eq!(stored_again(&l), 0.0);
    let mut other = r.clone();
    other["content"]["narrative"] = json!("something else");
    let answer = l.post_raw_records(std::slice::from_ref(&other));
    expect_item(&answer[0], &id_of(&r), ItemStatus::Conflict);
    let again = match b {
        Backend::Postgres => 1.0,
        Backend::Sqlite => 0.0,
    };
    assert_eq!(stored_again(&l), again);
    let stored = l.store().record(DEVICE, &id_of(&r)).unwrap().unwrap();
    assert_eq!(stored.content, r["content"]);
    let second = l.enroll_device("other-phone");
    let mut theirs = r.clone();
    theirs["content"]["crew"]["device_id"] = json!("other-phone");
    l.send_as(&second, std::slice::from_ref(&theirs));
    assert_eq!(l.store().count_of(&id_of(&r)).unwrap(), 2);
}

/// A stored key is answered before the record is validated (valid new records are inserted
/// before their key is looked up, invalid ones are not): an id sent again with other, invalid
/// content is a conflict, not a rejection; the same new id twice in one batch is accepted
/// once, then a duplicate (or a conflict if the content differs).
pub fn stored_key_before_validation(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let r = report();
    l.send(std::slice::from_ref(&r));
    let mut invalid = r.clone();
    invalid["content"]["severity"] = json!("apocalyptic");
    let answer = l.post_raw_records(std::slice::from_ref(&invalid));
    expect_item(&answer[0], &id_of(&r), ItemStatus::Conflict);
    let mut fresh_invalid = invalid.clone();
    fresh_invalid["id"] = json!(new_id());
    let answer = l.post_raw_records(std::slice::from_ref(&fresh_invalid));
    expect_item(&answer[0], &id_of(&fresh_invalid), ItemStatus::Rejected);
    let twice = report();
    let answer = l.post_raw_records(&[twice.clone(), twice.clone()]);
    expect_item(&answer[0], &id_of(&twice), ItemStatus::Accepted);
    expect_item(&answer[1], &id_of(&twice), ItemStatus::Duplicate);
    assert_eq!(answer[0].received_at, answer[1].received_at);
    let mut changed = twice.clone();
    changed["content"]["narrative"] = json!("something else");
    let answer = l.post_raw_records(&[changed]);
    expect_item(&answer[0], &id_of(&twice), ItemStatus::Conflict);
    // A new id twice in one batch with other content the second time: the first is stored.
    let (first, mut second) = (report(), report());
    second["id"] = first["id"].clone();
    second["content"]["narrative"] = json!("told otherwise");
    let answer = l.post_raw_records(&[report(), first.clone(), second, report()]);
    expect_item(&answer[1], &id_of(&first), ItemStatus::Accepted);
    expect_item(&answer[2], &id_of(&first), ItemStatus::Conflict);
    let stored = l.store().record(DEVICE, &id_of(&first)).unwrap().unwrap();
    assert_eq!(stored.content, first["content"]);
    let store = l.store();
    assert_eq!(store.record_count().unwrap(), 5);
    assert_eq!(store.count_of(&id_of(&twice)).unwrap(), 1);
}

/// Content is read as its JSON text says: of a repeated key the last value counts (stored in
/// canonical form, so the same text again is a duplicate); a content that cannot be read (a
/// number out of range) is rejected alone and the rest of its batch stored, and sent under a
/// stored id it is a conflict.
pub fn content_as_sent(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let batch = |records: &[&str]| format!(r#"{{"protocol":1,"records":[{}]}}"#, records.join(","));
    let (a, c) = (report(), report());
    let serious = r#""severity":"serious""#;
    let repeated = a
        .to_string()
        .replace(serious, &format!(r#""severity":"apocalyptic",{serious}"#));
    let out_of_range = |r: &Value| {
        let text = r.to_string();
        assert!(text.contains(serious));
        text.replace(serious, r#""severity":"serious","accuracy_m":1e400"#)
    };
    let unreadable = report();
    let texts = [repeated.clone(), out_of_range(&unreadable), c.to_string()];
    let answer = l.post_batch_text(batch(&texts.iter().map(String::as_str).collect::<Vec<_>>()));
    expect_item(&answer[0], &id_of(&a), ItemStatus::Accepted);
    let rejected = expect_item(&answer[1], &id_of(&unreadable), ItemStatus::Rejected);
    assert!(
        rejected
            .reason
            .as_deref()
            .unwrap()
            .starts_with("content: malformed"),
        "{rejected:?}"
    );
    expect_item(&answer[2], &id_of(&c), ItemStatus::Accepted);
    let again = l.post_batch_text(batch(&[&repeated, &a.to_string(), &out_of_range(&a)]));
    expect_item(&again[0], &id_of(&a), ItemStatus::Duplicate);
    expect_item(&again[1], &id_of(&a), ItemStatus::Duplicate);
    expect_item(&again[2], &id_of(&a), ItemStatus::Conflict);
    let store = l.store();
    assert_eq!(store.record_count().unwrap(), 2);
    assert_eq!(
        store.record(DEVICE, &id_of(&a)).unwrap().unwrap().content,
        a["content"]
    );
    assert!(store.record(DEVICE, &id_of(&unreadable)).unwrap().is_none());
}

/// Records are kept in receive order; a follow-up needs its parent of this device, stored
/// before it or earlier in the same batch; a rejected record is not stored.
pub fn ordering(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let s = sos();
    let sid = id_of(&s);
    let batch1 = vec![
        s.clone(),
        sos_location(&sid, 50.5, "2026-11-25T08:05:00Z"),
        report(),
    ];
    l.send(&batch1);
    let batch2 = vec![report(), sos_cancel(&sid), report()];
    l.send(&batch2);
    let ids: Vec<String> = l
        .store()
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let sent: Vec<String> = batch1.iter().chain(&batch2).map(id_of).collect();
    assert_eq!(ids, sent);
    // A follow-up without its parent, or with another device's, is rejected.
    let orphan = sos_location(&new_id(), 50.0, "2026-11-25T08:06:00Z");
    let other = l.enroll_device("other-phone");
    let mut foreign = sos_cancel(&sid);
    foreign["content"]["note"] = json!("not mine");
    let answer = l.post_raw_records(std::slice::from_ref(&orphan));
    expect_item(&answer[0], &id_of(&orphan), ItemStatus::Rejected);
    let resp = l
        .client
        .post(l.url("/v1/records:batch"))
        .bearer_auth(&other)
        .body(json!({"protocol": 1, "records": [foreign]}).to_string())
        .send()
        .unwrap();
    let answer: crewsafe_server::protocol::BatchResponse = parse(resp);
    assert_eq!(answer.results[0].status, ItemStatus::Rejected);
    assert_eq!(l.store().record_count().unwrap(), 6);
    // The alarm's view folds in its follow-ups.
    let view = l.store().sos_state(&sid).unwrap().unwrap();
    assert_eq!(view.location.unwrap().latitude, 50.5);
    assert!(view.cancel.is_some());
}

/// Dispatcher moves go forward only, each with an optional message; the phone's status poll
/// follows them; an id two devices share needs the device.
pub fn dispatch_moves_and_sos_status(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let s = sos();
    let sid = id_of(&s);
    l.send(std::slice::from_ref(&s));
    let got = status(&l, &l.token, &[&sid, &new_id(), &sid]);
    assert_eq!(got.statuses.len(), 1);
    assert_eq!(got.statuses[0].status, DispatchStatus::Delivered);
    let other = l.enroll_device("other-phone");
    assert!(status(&l, &other, &[&sid]).statuses.is_empty());

    std::thread::sleep(Duration::from_millis(5));
    let acked = l.dispatch_ok(&sid, "acknowledge", Some("crew 7 on the way"));
    assert_eq!(acked.status, DispatchStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some(DISPATCHER));
    assert_eq!(acked.message.as_deref(), Some("crew 7 on the way"));
    let polled = &status(&l, &l.token, &[&sid]).statuses[0];
    assert_eq!(polled.status, DispatchStatus::Acknowledged);
    assert_eq!(polled.message.as_deref(), Some("crew 7 on the way"));
    assert_eq!(polled.updated_at, acked.updated_at);
    // The same move with the same message changes nothing; a new message replaces it.
    assert_eq!(
        l.dispatch_ok(&sid, "acknowledge", Some("crew 7 on the way")),
        acked
    );
    std::thread::sleep(Duration::from_millis(5));
    let told = l.dispatch_ok(&sid, "acknowledge", Some("police called too"));
    assert_eq!(told.message.as_deref(), Some("police called too"));
    assert!(told.updated_at > acked.updated_at);
    assert_eq!(told.acknowledged_at, acked.acknowledged_at);
    let resolved = l.dispatch_ok(&sid, "resolve", None);
    assert_eq!(resolved.status, DispatchStatus::Resolved);
    assert_eq!(resolved.message.as_deref(), Some("police called too"));
    // Never backwards.
    assert_eq!(l.dispatch_ok(&sid, "acknowledge", None), resolved);
    assert_eq!(
        l.store().sos_status(&sid).unwrap(),
        Some(DispatchStatus::Resolved)
    );
    expect_error(l.dispatch(&new_id(), "resolve", None), 404, "not_found");

    // Two devices sent an alarm with the same id: the device must be named.
    let mut theirs = s.clone();
    theirs["content"]["crew"]["device_id"] = json!("other-phone");
    l.send_as(&other, std::slice::from_ref(&theirs));
    expect_error(l.dispatch(&sid, "acknowledge", None), 409, "ambiguous");
    let resp = l
        .client
        .post(l.url(&format!(
            "/v1/dispatch/sos/{sid}/acknowledge?device_id=other-phone"
        )))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let theirs_view: DispatchSos = parse(resp);
    assert_eq!(theirs_view.device_id, "other-phone");
    assert_eq!(theirs_view.status, DispatchStatus::Acknowledged);
    // The dispatcher list shows both, in receive order.
    let list = l.store().dispatch_list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].device_id, DEVICE);
    assert_eq!(list[1].device_id, "other-phone");
}

/// Only enrolled tokens work, each for its role; re-enrolling replaces a token.
/// Enrollments are listed without tokens; a revoked device or dispatcher token is refused at
/// once by the running server, the device's records stay, and enrolling again issues a token
/// that works.
pub fn revocation(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let other = l.enroll_device("second-phone");
    let store = l.store();
    let devices: Vec<String> = store
        .devices()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(devices, [DEVICE, "second-phone"]);
    let dispatchers = store.dispatchers().unwrap();
    assert_eq!(dispatchers.len(), 1);
    assert_eq!(dispatchers[0].name, DISPATCHER);
    let age = chrono::Utc::now() - dispatchers[0].enrolled_at;
    assert!(
        age >= chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(5),
        "{age}"
    );
    let s = sos();
    l.send(std::slice::from_ref(&s));

    assert!(store.revoke_device(DEVICE).unwrap());
    let resp = l
        .client
        .post(l.url("/v1/records:batch"))
        .bearer_auth(&l.token)
        .body(json!({"protocol": 1, "records": [report()]}).to_string())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    assert!(!store.revoke_device(DEVICE).unwrap());
    assert_eq!(l.store().record_count().unwrap(), 1);
    let devices: Vec<String> = store
        .devices()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(devices, ["second-phone"]);
    // Other devices go on.
    let mut theirs = sos_for("second-phone");
    theirs["content"]["crew"]["device_id"] = json!("second-phone");
    l.send_as(&other, &[theirs]);

    assert!(store.revoke_dispatcher(DISPATCHER).unwrap());
    let resp = l
        .client
        .get(l.url("/v1/dispatch/sos"))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    assert!(store.dispatchers().unwrap().is_empty());

    let fresh = l.enroll_device(DEVICE);
    l.send_as(&fresh, &[report()]);
    assert_eq!(l.store().record_count().unwrap(), 3);
}

pub fn tokens(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let r = report();
    let resp = l
        .client
        .post(l.url("/v1/records:batch"))
        .bearer_auth("not-a-token")
        .body(json!({"protocol": 1, "records": [r]}).to_string())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    // A device token is no dispatcher token, nor the other way round.
    let resp = l
        .client
        .get(l.url("/v1/dispatch/sos"))
        .bearer_auth(&l.token)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    let resp = l
        .client
        .post(l.url("/v1/records:batch"))
        .bearer_auth(&l.dispatcher)
        .body(json!({"protocol": 1, "records": [r]}).to_string())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    assert_eq!(l.store().record_count().unwrap(), 0);
    let fresh = l.enroll_device(DEVICE);
    assert_ne!(fresh, l.token);
    let resp = l
        .client
        .post(l.url("/v1/records:batch"))
        .bearer_auth(&l.token)
        .body(json!({"protocol": 1, "records": [r]}).to_string())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    l.send_as(&fresh, std::slice::from_ref(&r));
    // Names are checked.
    let store = l.store();
    assert!(store.enroll_device("").is_err());
    assert!(store.enroll_dispatcher(" padded ").is_err());
}

fn short_minutes(c: ServerConfig) -> ServerConfig {
    c.with_check_in_minute(MINUTE)
}

/// A check-in closed in time raises nothing; a missed one raises an alarm with the last known
/// position; one closed late resolves its alarm and says so.
pub fn check_ins(b: Backend) {
    let Some(l) = site(b, short_minutes) else {
        return;
    };
    // On time.
    let on_time = check_in_start(2);
    let on_time_id = id_of(&on_time);
    l.send(std::slice::from_ref(&on_time));
    l.send(&[check_in_done(&on_time_id)]);
    // Missed, then closed late.
    let earlier = sos_at(51.25, "2026-11-25T08:10:00Z");
    l.send(std::slice::from_ref(&earlier));
    l.dispatch_ok(&id_of(&earlier), "resolve", None);
    let start = check_in_start(1);
    let start_id = id_of(&start);
    l.send(&[start.clone(), check_in_extend(&start_id, 2)]);
    std::thread::sleep(MINUTE * 2);
    assert!(l.store().sos_state(&start_id).unwrap().is_none());
    let alarm = wait_for(Duration::from_secs(5), || {
        l.store().sos_state(&start_id).unwrap()
    });
    assert_eq!(alarm.alarm, AlarmKind::MissedCheckIn);
    assert_eq!(alarm.status, DispatchStatus::Delivered);
    assert_eq!(alarm.location.clone().unwrap().latitude, 51.25);
    let check_in = alarm.check_in.clone().unwrap();
    assert_eq!(
        (check_in.due_at - check_in.received_at).to_std().unwrap(),
        MINUTE * 3
    );
    assert!(!check_in.closed_late);
    let list = l.store().dispatch_list().unwrap();
    assert_eq!(
        list.len(),
        2,
        "the SOS and the missed check-in, not the on-time one"
    );
    assert!(l.store().sos_state(&on_time_id).unwrap().is_none());
    // The list filtered by what raised the alarm.
    let ids = |query: &str| -> Vec<String> {
        let page: DispatchSosList = parse(sos_page_as(&l, query));
        page.sos.into_iter().map(|a| a.id).collect()
    };
    assert_eq!(ids("alarm=missed_check_in"), vec![start_id.clone()]);
    assert_eq!(ids("alarm=sos"), vec![id_of(&earlier)]);
    assert_eq!(
        ids("alarm=missed_check_in&status=delivered,acknowledged"),
        vec![start_id.clone()]
    );
    assert!(ids("alarm=sos&status=delivered").is_empty());

    let mut stream = l.events(None);
    let mut seen = stream.next();
    if seen.alarm.id != start_id {
        seen = stream.next();
    }
    assert_eq!(seen.alarm, alarm);
    let done = check_in_done(&start_id);
    l.send(std::slice::from_ref(&done));
    let closed = l.store().sos_state(&start_id).unwrap().unwrap();
    assert_eq!(closed.status, DispatchStatus::Resolved);
    assert_eq!(closed.resolved_by.as_deref(), Some(CHECK_IN_RESOLVER));
    assert!(closed.check_in.clone().unwrap().closed_late);
    assert_eq!(stream.next().alarm, closed);
    assert_eq!(l.post_duplicate(&done), ItemStatus::Duplicate);
    assert_eq!(l.store().sos_state(&start_id).unwrap().unwrap(), closed);
}

/// An alarm no dispatcher acknowledged in time is marked escalated, once.
pub fn escalation(b: Backend) {
    let Some(l) = site(b, |c| c.with_escalate_after(Duration::from_millis(400))) else {
        return;
    };
    let (a, c) = (sos(), sos());
    let (a_id, c_id) = (id_of(&a), id_of(&c));
    l.send(&[a, c]);
    l.dispatch_ok(&c_id, "acknowledge", None);
    let view = wait_for(Duration::from_secs(5), || {
        l.store().sos_state(&a_id).unwrap().filter(|v| v.escalated)
    });
    assert_eq!(view.status, DispatchStatus::Delivered);
    assert!(!l.store().sos_state(&c_id).unwrap().unwrap().escalated);
    let mut stream = l.events(None);
    let events: Vec<Event> = (0..2).map(|_| stream.next()).collect();
    assert!(events
        .iter()
        .any(|e| e.alarm.id == a_id && e.alarm.escalated));
}

/// A fresh stream starts with the open alarms; live changes follow; a reconnect with
/// `Last-Event-ID` gets what it missed and nothing else.
pub fn event_stream_replay(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let (a, c) = (sos(), sos());
    let (a_id, c_id) = (id_of(&a), id_of(&c));
    l.send(&[a, c]);
    let mut stream = l.events(None);
    let first = stream.next();
    let second = stream.next();
    assert_eq!(
        (first.alarm.id.as_str(), second.alarm.id.as_str()),
        (a_id.as_str(), c_id.as_str())
    );
    assert!(first.id < second.id);
    let d = sos();
    l.send(std::slice::from_ref(&d));
    let live = stream.next();
    assert_eq!(live.alarm.id, id_of(&d));
    assert!(live.id > second.id);
    drop(stream);
    // Missed while away: an acknowledge of `a` and a new alarm.
    l.dispatch_ok(&a_id, "acknowledge", Some("on the way"));
    let e = sos();
    l.send(std::slice::from_ref(&e));
    let mut again = l.events(Some(live.id));
    let x = again.next();
    let y = again.next();
    assert_eq!(x.alarm.id, a_id);
    assert_eq!(x.alarm.message.as_deref(), Some("on the way"));
    assert_eq!(y.alarm.id, id_of(&e));
    assert!(live.id < x.id && x.id < y.id);
    // And then live again.
    l.dispatch_ok(&c_id, "resolve", None);
    let z = again.next();
    assert_eq!(z.alarm.id, c_id);
    assert_eq!(z.alarm.status, DispatchStatus::Resolved);
    assert!(z.id > y.id);
}

/// A waiting status watch hears the acknowledge and its message at once.
pub fn watch(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let a = sos();
    let a_id = id_of(&a);
    l.send(std::slice::from_ref(&a));
    let current = l
        .watch(json!([known(&a_id, "delivered", None)]), 0)
        .statuses[0]
        .clone();
    let l = Arc::new(l);
    let watcher = {
        let (l, a_id) = (l.clone(), a_id.clone());
        std::thread::spawn(move || {
            let answer = l.watch(
                json!([known(&a_id, "delivered", Some(current.updated_at))]),
                30,
            );
            (Instant::now(), answer)
        })
    };
    wait_for(Duration::from_secs(5), || {
        (l.server().open_watches() == 1).then_some(())
    });
    let clicked = Instant::now();
    let view = l.dispatch_ok(&a_id, "acknowledge", Some("crew 7, 6 min"));
    let (answered, answer) = watcher.join().unwrap();
    let latency = answered.duration_since(clicked);
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    assert_eq!(answer.statuses.len(), 1);
    assert_eq!(answer.statuses[0].status, DispatchStatus::Acknowledged);
    assert_eq!(answer.statuses[0].message.as_deref(), Some("crew 7, 6 min"));
    assert_eq!(Some(answer.statuses[0].updated_at), view.acknowledged_at);
}

/// Eight clients upload overlapping batches at once: every record is stored once and
/// answered `accepted` exactly once, whatever the interleaving.
pub fn concurrent_uploads(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    let records: Vec<Value> = (0..40)
        .map(|i| if i % 5 == 0 { sos() } else { report() })
        .collect();
    let l = Arc::new(l);
    let records = Arc::new(records);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (l, records) = (l.clone(), records.clone());
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                // Each worker sends every record, in windows starting at its own offset.
                for round in 0..4 {
                    let start = (w * 5 + round * 10) % records.len();
                    let batch: Vec<Value> = (0..15)
                        .map(|i| records[(start + i) % records.len()].clone())
                        .collect();
                    for r in l.post_raw_records(&batch) {
                        assert!(
                            matches!(r.status, ItemStatus::Accepted | ItemStatus::Duplicate),
                            "{r:?}"
                        );
                        if r.status == ItemStatus::Accepted {
                            accepted.push(r.id);
                        }
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    accepted.sort();
    let mut stored: Vec<String> = l
        .store()
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    stored.sort();
    let mut unique = accepted.clone();
    unique.dedup();
    assert_eq!(accepted, unique, "a record was accepted twice");
    assert_eq!(stored, accepted, "every stored record was accepted once");
    // Every alarm has its status and its one creation event.
    let list = l.store().dispatch_list().unwrap();
    assert_eq!(
        list.len(),
        records
            .iter()
            .filter(|r| r["kind"] == "sos")
            .filter(|r| stored.contains(&id_of(r)))
            .count()
    );
}

/// `GET /v1/dispatch/sos` with this query string, as the dispatcher.
fn sos_page_as(l: &Loop, query: &str) -> reqwest::blocking::Response {
    l.client
        .get(l.url(&format!("/v1/dispatch/sos?{query}")))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap()
}

/// Every alarm the list answers for `query`, `limit` at a time: the ids, and how many pages.
/// `between` runs after the first page.
fn walk_pages(
    l: &Loop,
    query: &str,
    limit: u32,
    mut between: impl FnMut(),
) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1.. {
        let mut q = format!("limit={limit}&{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let resp = sos_page_as(l, &q);
        assert_eq!(resp.status(), 200, "{q}");
        let page: DispatchSosList = parse(resp);
        assert!(page.sos.len() <= limit as usize, "{q}");
        ids.extend(page.sos.iter().map(|a| a.id.clone()));
        if pages == 1 {
            between();
        }
        match page.next_cursor {
            Some(c) => {
                assert_eq!(
                    page.sos.len(),
                    limit as usize,
                    "a page before the last is full"
                );
                cursor = Some(c);
            }
            None => return (ids, pages),
        }
    }
    unreachable!()
}

/// A time as a query value.
fn q_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339().replace('+', "%2B")
}

/// The dispatcher list comes a page at a time in receive order (batches in the order they
/// arrived, records of a batch in their order): paging returns every alarm once, an alarm
/// received between two pages comes on a later page, and the status, alarm kind and receive
/// time filters page the same way. Anything the server cannot read is a 400 naming it. The
/// `/metrics` alarm gauges count the same alarms.
pub fn dispatch_pages(b: Backend) {
    let Some(l) = site(b, |c| c) else { return };
    // Three batches, received at distinct times; a report is no alarm.
    let mut batches: Vec<Vec<Value>> = Vec::new();
    let mut received = Vec::new();
    for n in [5, 4, 3] {
        let mut batch: Vec<Value> = (0..n).map(|_| sos()).collect();
        batch.insert(1, report());
        let answer = l.post_raw_records(&batch);
        received.push(answer[0].received_at.unwrap());
        batches.push(batch.into_iter().filter(|r| r["kind"] == "sos").collect());
        std::thread::sleep(Duration::from_millis(3));
    }
    let ids = |batch: &[Value]| -> Vec<String> { batch.iter().map(id_of).collect() };
    let mut sent: Vec<String> = batches.iter().flat_map(|b| ids(b)).collect();

    // Pages of 5 and the default page: every alarm once, in receive order; the one received
    // after the first page comes last.
    let late = sos();
    let (listed, pages) = walk_pages(&l, "", 5, || l.send(std::slice::from_ref(&late)));
    sent.push(id_of(&late));
    assert_eq!(listed, sent);
    assert_eq!(pages, 3);
    let all: DispatchSosList = parse(sos_page_as(&l, ""));
    assert_eq!(
        all.sos.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        sent
    );
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.sos, l.store().dispatch_list().unwrap());
    // A page that ends exactly at the last alarm has no cursor; one alarm per page works.
    assert_eq!(walk_pages(&l, "", 13, || {}), (sent.clone(), 1));
    assert_eq!(walk_pages(&l, "", 1, || {}), (sent.clone(), 13));

    // Status filters (one, or several): alarms of the first and last batch acknowledged, one
    // of the second resolved.
    let (a, b2, c) = (
        id_of(&batches[0][2]),
        id_of(&batches[1][0]),
        id_of(&batches[2][1]),
    );
    l.dispatch_ok(&a, "acknowledge", None);
    l.dispatch_ok(&c, "acknowledge", Some("on our way"));
    l.dispatch_ok(&b2, "resolve", None);
    let delivered: Vec<String> = sent
        .iter()
        .filter(|id| ![&a, &b2, &c].contains(id))
        .cloned()
        .collect();
    assert_eq!(walk_pages(&l, "status=delivered", 3, || {}).0, delivered);
    let moved = vec![a.clone(), b2.clone(), c.clone()];
    let (both, pages) = walk_pages(&l, "status=resolved,acknowledged", 2, || {});
    assert_eq!((both, pages), (moved, 2));
    let open: Vec<String> = sent.iter().filter(|id| **id != b2).cloned().collect();
    assert_eq!(
        walk_pages(&l, "status=delivered,acknowledged", 4, || {}).0,
        open
    );
    assert_eq!(
        walk_pages(&l, "status=resolved", 4, || {}).0,
        vec![b2.clone()]
    );

    // The kind of alarm: these are all SOS.
    assert_eq!(walk_pages(&l, "alarm=sos", 6, || {}).0, sent);
    let none: DispatchSosList = parse(sos_page_as(&l, "alarm=missed_check_in"));
    assert!(none.sos.is_empty() && none.next_cursor.is_none());

    // Receive times: `since` inclusive, `until` exclusive, with paging and status.
    let window = format!(
        "since={}&until={}",
        q_time(received[1]),
        q_time(received[2])
    );
    assert_eq!(walk_pages(&l, &window, 3, || {}).0, ids(&batches[1]));
    let second_delivered: Vec<String> = ids(&batches[1])
        .into_iter()
        .filter(|id| *id != b2)
        .collect();
    assert_eq!(
        walk_pages(&l, &format!("{window}&status=delivered"), 2, || {}).0,
        second_delivered
    );
    let since_last = format!("since={}", q_time(received[2]));
    let mut tail = ids(&batches[2]);
    tail.push(id_of(&late));
    assert_eq!(walk_pages(&l, &since_last, 2, || {}).0, tail);
    let before_first = format!("until={}", q_time(received[0]));
    assert!(walk_pages(&l, &before_first, 2, || {}).0.is_empty());
    // A cursor from an unfiltered page continues a filtered one after the same position.
    let first: DispatchSosList = parse(sos_page_as(&l, "limit=6"));
    let cursor = first.next_cursor.unwrap();
    let rest: DispatchSosList = parse(sos_page_as(
        &l,
        &format!("status=delivered&cursor={cursor}"),
    ));
    let expected: Vec<&String> = delivered
        .iter()
        .filter(|id| !sent[..6].contains(id))
        .collect();
    assert_eq!(rest.sos.iter().map(|a| &a.id).collect::<Vec<_>>(), expected);

    // What the server cannot read: 400 `malformed`, naming the parameter.
    let tampered = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a1:x:1")
    };
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        (&*format!("cursor={tampered}"), "cursor"),
        ("since=yesterday", "since"),
        ("since=2026-11-25T08:00:00+01:00", "since"),
        ("until=2026-11-25", "until"),
        (
            "since=2026-11-25T09:00:00Z&until=2026-11-25T08:00:00Z",
            "until",
        ),
        ("status=open", "status"),
        ("alarm=fire", "alarm"),
    ] {
        let body = expect_error(sos_page_as(&l, query), 400, "malformed");
        assert!(body.message.starts_with(name), "{query}: {}", body.message);
    }
    let max: DispatchSosList = parse(sos_page_as(&l, "limit=1000"));
    assert_eq!(max.sos.len(), 13);
    let resp = l
        .client
        .get(l.url("/v1/dispatch/sos?limit=1"))
        .bearer_auth(&l.token)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");

    // The gauges count the same alarms: 12 open, 10 of them unacknowledged.
    let text = l.metrics();
    let gauge = |name: &str| metric(&text, name);
    assert_eq!(gauge("crewsafe_alarms_open"), 12.0);
    assert_eq!(gauge("crewsafe_alarms_unacknowledged"), 10.0);
    let oldest = gauge("crewsafe_alarm_oldest_unacknowledged_age_seconds");
    let age = (chrono::Utc::now() - received[0]).num_milliseconds() as f64 / 1000.0;
    assert!(oldest > 0.0 && oldest <= age + 0.01, "{oldest} vs {age}");
}

/// Generates one `#[test]` per contract test, on `$backend`.
macro_rules! suite {
    ($backend:expr) => {
        #[test]
        fn dedupe() {
            contract::dedupe($backend)
        }
        #[test]
        fn conflict() {
            contract::conflict($backend)
        }
        #[test]
        fn stored_key_before_validation() {
            contract::stored_key_before_validation($backend)
        }
        #[test]
        fn content_as_sent() {
            contract::content_as_sent($backend)
        }
        #[test]
        fn ordering() {
            contract::ordering($backend)
        }
        #[test]
        fn dispatch_moves_and_sos_status() {
            contract::dispatch_moves_and_sos_status($backend)
        }
        #[test]
        fn tokens() {
            contract::tokens($backend)
        }
        #[test]
        fn revocation() {
            contract::revocation($backend)
        }
        #[test]
        fn check_ins() {
            contract::check_ins($backend)
        }
        #[test]
        fn escalation() {
            contract::escalation($backend)
        }
        #[test]
        fn event_stream_replay() {
            contract::event_stream_replay($backend)
        }
        #[test]
        fn watch() {
            contract::watch($backend)
        }
        #[test]
        fn concurrent_uploads() {
            contract::concurrent_uploads($backend)
        }
        #[test]
        fn report_list() {
            contract::report_list($backend)
        }
        #[test]
        fn attachment_round_trip() {
            contract::attachment_round_trip($backend)
        }
        #[test]
        fn dispatch_pages() {
            contract::dispatch_pages($backend)
        }
    };
}
pub(crate) use suite;
