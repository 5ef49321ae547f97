//! The dispatcher event stream (`GET /v1/dispatch/events`) against the real server: the
//! snapshot a fresh stream starts with, live changes as they commit, and the replay of what a
//! reconnecting client missed (`Last-Event-ID`), in the exact wire format.

mod common;

use std::io::Read as _;
use std::time::{Duration, Instant};

use common::alarms::*;
use common::*;
use crewsafe_server::protocol::DispatchStatus;

#[test]
fn a_fresh_stream_starts_with_open_and_recent_alarms_then_goes_live() {
    let l = Loop::start(|c| c);
    let (a, b, c) = (sos(), sos(), sos());
    let (a_id, b_id, c_id) = (id_of(&a), id_of(&b), id_of(&c));
    l.send(&[a, b, c]);
    l.dispatch_ok(&a_id, "acknowledge", Some("on the way"));
    l.dispatch_ok(&b_id, "resolve", None);

    // Each alarm once, at its current view, in the order of its newest change.
    let mut stream = l.events(None);
    let first = stream.next();
    let second = stream.next();
    let third = stream.next();
    assert_eq!(first.alarm.id, c_id);
    assert_eq!(second.alarm.id, a_id);
    assert_eq!(second.alarm.message.as_deref(), Some("on the way"));
    // Resolved in the last hour: still shown.
    assert_eq!(third.alarm.id, b_id);
    assert_eq!(third.alarm.status, DispatchStatus::Resolved);
    assert!(first.id < second.id && second.id < third.id);
    assert_eq!(second.alarm, l.store().sos_state(&a_id).unwrap().unwrap());

    // A new alarm is on the stream as soon as its batch is answered.
    let d = sos();
    let sent = Instant::now();
    l.send(std::slice::from_ref(&d));
    let live = stream.next();
    println!("batch answered → event read: {:?}", sent.elapsed());
    assert_eq!(live.alarm.id, id_of(&d));
    assert!(live.id > third.id);
    // Its follow-ups too: the trail keeps earlier positions, oldest first.
    l.send(&[
        sos_location(&id_of(&d), 50.46, "2026-11-25T08:02:00Z"),
        sos_location(&id_of(&d), 50.47, "2026-11-25T08:04:00Z"),
    ]);
    let mut moved = stream.next();
    if moved.alarm.location.as_ref().unwrap().latitude != 50.47 {
        // The two follow-ups may come as two events.
        moved = stream.next();
    }
    assert_eq!(moved.alarm.location.unwrap().latitude, 50.47);
    let trail: Vec<f64> = moved.alarm.trail.iter().map(|l| l.latitude).collect();
    assert_eq!(trail, vec![50.4501, 50.46]);
    assert!(moved.id > live.id);

    // Without a dispatcher token there is no stream.
    let resp = l.client.get(l.url("/v1/dispatch/events")).send().unwrap();
    expect_error(resp, 401, "unauthorized");
    let resp = l
        .client
        .get(l.url("/v1/dispatch/events"))
        .bearer_auth(&l.token)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
}

#[test]
fn a_reconnecting_stream_gets_what_it_missed_and_nothing_else() {
    let l = Loop::start(|c| c);
    let (a, b, c) = (sos(), sos(), sos());
    let (a_id, b_id, c_id) = (id_of(&a), id_of(&b), id_of(&c));
    l.send(&[a, b, c]);
    let mut stream = l.events(None);
    let seen: Vec<Event> = (0..3).map(|_| stream.next()).collect();
    let last = seen[2].id;
    drop(stream);

    // While the console is away: A moves, C is acknowledged with a message, then A again.
    l.send(&[sos_location(&a_id, 50.9, "2026-11-25T08:09:00Z")]);
    l.dispatch_ok(&c_id, "acknowledge", Some("crew 7 on the way, 6 min"));
    l.dispatch_ok(&a_id, "acknowledge", None);

    let mut stream = l.events(Some(last));
    let c_now = stream.next();
    let a_now = stream.next();
    assert_eq!(c_now.alarm.id, c_id);
    assert_eq!(
        c_now.alarm.message.as_deref(),
        Some("crew 7 on the way, 6 min")
    );
    assert_eq!(a_now.alarm.id, a_id);
    assert_eq!(a_now.alarm.status, DispatchStatus::Acknowledged);
    assert_eq!(a_now.alarm.location.as_ref().unwrap().latitude, 50.9);
    assert!(last < c_now.id && c_now.id < a_now.id);
    // B did not change: it is not sent again. The next event is live.
    l.dispatch_ok(&b_id, "resolve", Some("closed"));
    let b_now = stream.next();
    assert_eq!(b_now.alarm.id, b_id);
    assert!(b_now.id > a_now.id);

    // Replaying from an id past everything sends nothing until something changes.
    let mut stream = l.events(Some(b_now.id));
    l.dispatch_ok(&c_id, "resolve", None);
    let next = stream.next();
    assert_eq!(next.alarm.id, c_id);
    assert_eq!(next.alarm.status, DispatchStatus::Resolved);
}

#[test]
fn the_stream_opens_with_a_comment_and_ends_when_the_server_stops() {
    let mut l = Loop::start(|c| c);
    let resp = l
        .client
        .get(l.url("/v1/dispatch/events"))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let reader = std::thread::spawn(move || {
        let mut resp = resp;
        let mut all = String::new();
        let _ = resp.read_to_string(&mut all);
        all
    });
    std::thread::sleep(Duration::from_millis(100));
    let stopping = Instant::now();
    l.stop();
    let all = reader.join().unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(3));
    assert_eq!(all, ": crewsafe alarm stream\n\n");
}
