//! Lone-worker check-ins and escalation, timed by the real server's alarm timer (with a short
//! check-in minute): a missed check-in raises an alarm with the crew's last known position;
//! one closed in time raises none; one closed late resolves its alarm and says so; due times
//! survive a restart; unacknowledged alarms escalate after the configured time.

mod common;

use std::time::Duration;

use common::alarms::*;
use common::*;
use crewsafe_server::protocol::{AlarmKind, DispatchSosList, DispatchStatus, ItemStatus};
use crewsafe_server::{ServerConfig, CHECK_IN_RESOLVER};
use serde_json::json;

/// How long a check-in minute lasts in these tests.
const MINUTE: Duration = Duration::from_millis(300);

fn short_minutes(c: ServerConfig) -> ServerConfig {
    c.with_check_in_minute(MINUTE)
}

#[test]
fn a_missed_check_in_raises_an_alarm_with_the_last_known_position() {
    let l = Loop::start(short_minutes);
    // The newest fix among the crew's records is this SOS's (fixed later than the check-in's).
    let earlier = sos_at(51.25, "2026-11-25T08:10:00Z");
    l.send(std::slice::from_ref(&earlier));
    l.dispatch_ok(&id_of(&earlier), "resolve", None);
    let start = check_in_start(1);
    let start_id = id_of(&start);
    l.send(&[start.clone(), check_in_extend(&start_id, 4)]);
    // Due after 1 + 4 minutes: nothing yet after two.
    std::thread::sleep(MINUTE * 2);
    assert!(l.store().sos_state(&start_id).unwrap().is_none());

    let alarm = wait_for(Duration::from_secs(5), || {
        l.store().sos_state(&start_id).unwrap()
    });
    assert_eq!(alarm.alarm, AlarmKind::MissedCheckIn);
    assert_eq!(alarm.status, DispatchStatus::Delivered);
    assert_eq!(alarm.crew.crew_id, "brigade-12");
    assert_eq!(alarm.note.as_deref(), Some("aggressive relative"));
    let location = alarm.location.clone().expect("last known position");
    assert_eq!(location.latitude, 51.25);
    let check_in = alarm.check_in.clone().expect("check-in");
    assert_eq!(check_in.address.as_deref(), Some("Main St 1, flat 4"));
    assert_eq!(
        check_in.started_at.to_rfc3339(),
        "2026-11-25T08:00:00+00:00"
    );
    assert_eq!(
        (check_in.due_at - check_in.received_at).to_std().unwrap(),
        MINUTE * 5
    );
    assert!(alarm.raised_at >= check_in.due_at);
    assert!(alarm.raised_at - check_in.due_at < chrono::Duration::seconds(2));
    assert!(check_in.done_at.is_none() && !check_in.closed_late);

    // Dispatchers see it in the list, and can filter by what raised the alarm.
    let list = |query: &str| -> DispatchSosList {
        parse(
            l.client
                .get(l.url(&format!("/v1/dispatch/sos{query}")))
                .bearer_auth(&l.dispatcher)
                .send()
                .unwrap(),
        )
    };
    let missed = list("?alarm=missed_check_in").sos;
    assert_eq!(missed, vec![alarm.clone()]);
    assert_eq!(list("?alarm=sos").sos.len(), 1);
    assert_eq!(list("").sos.len(), 2);
    // And the phone may ask for its status like any alarm's.
    let answer = l.watch(json!([known(&start_id, "delivered", None)]), 0);
    assert_eq!(answer.statuses[0].status, DispatchStatus::Delivered);
}

#[test]
fn a_check_in_closed_in_time_raises_no_alarm() {
    let l = Loop::start(short_minutes);
    let start = check_in_start(2);
    let start_id = id_of(&start);
    l.send(std::slice::from_ref(&start));
    let done = check_in_done(&start_id);
    l.send(std::slice::from_ref(&done));
    std::thread::sleep(MINUTE * 4);
    assert!(l.store().sos_state(&start_id).unwrap().is_none());
    assert!(l.store().dispatch_list().unwrap().is_empty());
    // Sending the closing record again is a duplicate and changes nothing.
    let again = l.post_duplicate(&done);
    assert_eq!(again, ItemStatus::Duplicate);
}

#[test]
fn a_check_in_closed_late_resolves_its_alarm_and_says_so() {
    let l = Loop::start(short_minutes);
    let start = check_in_start(1);
    let start_id = id_of(&start);
    l.send(std::slice::from_ref(&start));
    let raised = wait_for(Duration::from_secs(5), || {
        l.store().sos_state(&start_id).unwrap()
    });
    assert_eq!(raised.status, DispatchStatus::Delivered);
    let mut stream = l.events(None);
    assert_eq!(stream.next().alarm, raised);

    // The crew checked in offline; the record arrives after the alarm was raised.
    let done = check_in_done(&start_id);
    l.send(std::slice::from_ref(&done));
    let closed = l.store().sos_state(&start_id).unwrap().unwrap();
    assert_eq!(closed.status, DispatchStatus::Resolved);
    assert_eq!(closed.resolved_by.as_deref(), Some(CHECK_IN_RESOLVER));
    assert!(closed.acknowledged_by.is_none());
    let check_in = closed.check_in.clone().unwrap();
    assert!(check_in.closed_late);
    assert_eq!(
        check_in.done_at.unwrap().to_rfc3339(),
        "2026-11-25T08:20:00+00:00"
    );
    assert_eq!(check_in.done_received_at, closed.resolved_at);
    assert_eq!(stream.next().alarm, closed);
    // The phone hears it resolved.
    let answer = l.watch(
        json!([known(&start_id, "delivered", Some(raised.updated_at))]),
        0,
    );
    assert_eq!(answer.statuses[0].status, DispatchStatus::Resolved);

    // Duplicates and a second closing record change nothing.
    assert_eq!(l.post_duplicate(&done), ItemStatus::Duplicate);
    l.send(&[check_in_done(&start_id), check_in_extend(&start_id, 3)]);
    assert_eq!(l.store().sos_state(&start_id).unwrap().unwrap(), closed);

    // Follow-ups must name a parent of their own kind's parent kind.
    let resp = l.post_raw_records(&[check_in_done(&id_of(&sos())), sos_cancel(&start_id)]);
    for r in resp {
        assert_eq!(r.status, ItemStatus::Rejected);
        assert!(r.reason.unwrap().starts_with("parent_id: must name an"));
    }
}

#[test]
fn due_check_ins_survive_a_restart() {
    let mut l = Loop::start(short_minutes);
    let start = check_in_start(2);
    let start_id = id_of(&start);
    l.send(std::slice::from_ref(&start));
    // Due while no server runs; raised by the next one as it starts.
    l.stop();
    std::thread::sleep(MINUTE * 3);
    l.restart();
    let alarm = wait_for(Duration::from_secs(2), || {
        l.store().sos_state(&start_id).unwrap()
    });
    assert_eq!(alarm.alarm, AlarmKind::MissedCheckIn);
    // One still running when the server restarts is raised at its due time.
    let later = check_in_start(3);
    let later_id = id_of(&later);
    l.send(std::slice::from_ref(&later));
    l.restart();
    std::thread::sleep(MINUTE);
    assert!(l.store().sos_state(&later_id).unwrap().is_none());
    let alarm = wait_for(Duration::from_secs(5), || {
        l.store().sos_state(&later_id).unwrap()
    });
    let check_in = alarm.check_in.unwrap();
    assert!(alarm.raised_at >= check_in.due_at);
}

#[test]
fn unacknowledged_alarms_escalate_after_the_configured_time() {
    let after = Duration::from_millis(600);
    let l = Loop::start(|c| c.with_escalate_after(after));
    let mut stream = l.events(None);
    let a = sos();
    let a_id = id_of(&a);
    let b = sos();
    let b_id = id_of(&b);
    l.send(&[a, b]);
    let fresh = stream.next().alarm;
    assert_eq!(fresh.id, a_id);
    assert!(!fresh.escalated);
    assert_eq!(fresh.escalates_at, Some(fresh.received_at + after));
    assert_eq!(stream.next().alarm.id, b_id);
    // B is acknowledged in time; A is not.
    let acked = l.dispatch_ok(&b_id, "acknowledge", None);
    assert!(acked.escalates_at.is_none() && !acked.escalated);
    assert_eq!(stream.next().alarm, acked);

    let escalated = stream.next();
    assert_eq!(escalated.alarm.id, a_id);
    assert!(escalated.alarm.escalated);
    assert_eq!(escalated.alarm.status, DispatchStatus::Delivered);
    // In the JSON API too; escalation changes neither the status nor its time.
    let view = l.store().sos_state(&a_id).unwrap().unwrap();
    assert_eq!(view, escalated.alarm);
    assert_eq!(view.updated_at, fresh.updated_at);
    let b_view = l.store().sos_state(&b_id).unwrap().unwrap();
    assert!(!b_view.escalated);
    // Acknowledged late, it keeps the mark.
    let late = l.dispatch_ok(&a_id, "acknowledge", None);
    assert!(late.escalated && late.escalates_at.is_none());
}
