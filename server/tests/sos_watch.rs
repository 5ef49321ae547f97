//! The phone's status watch (`POST /v1/sos:watch`) and the dispatcher messages, against the
//! real server on loopback: answered at once when a status differs, within milliseconds of an
//! acknowledge while waiting, empty when the wait ends; 500 watches at once; a client that
//! goes away frees its waiter; a restart during a watch; limits.

mod common;

use std::io::{Read as _, Write as _};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::alarms::*;
use common::*;
use crewsafe_server::protocol::{
    DispatchStatus, SosStatusResponse, MAX_DISPATCH_MESSAGE_CHARS, MAX_STATUS_IDS,
};
use crewsafe_server::ServerConfig;
use serde_json::json;

fn plain(c: ServerConfig) -> ServerConfig {
    c
}

#[test]
fn a_watch_answers_at_once_when_a_status_differs() {
    let l = Loop::start(plain);
    let a = sos();
    let a_id = id_of(&a);
    l.send(&[a]);
    // The phone has no time yet: its status is news.
    let started = Instant::now();
    let answer = l.watch(json!([known(&a_id, "delivered", None)]), 30);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(answer.statuses.len(), 1);
    let delivered = answer.statuses[0].clone();
    assert_eq!(delivered.status, DispatchStatus::Delivered);
    assert!(delivered.acknowledged_at.is_none() && delivered.message.is_none());

    l.dispatch_ok(&a_id, "acknowledge", Some("crew 7 on the way, 6 min"));
    // Another status is news, and so is a newer time.
    let answer = l.watch(
        json!([known(&a_id, "delivered", Some(delivered.updated_at))]),
        30,
    );
    let ack = &answer.statuses[0];
    assert_eq!(ack.status, DispatchStatus::Acknowledged);
    assert_eq!(ack.acknowledged_by.as_deref(), Some(DISPATCHER));
    assert_eq!(ack.message.as_deref(), Some("crew 7 on the way, 6 min"));
    assert!(ack.acknowledged_at.is_some());
    let answer = l.watch(
        json!([known(&a_id, "acknowledged", Some(delivered.updated_at))]),
        30,
    );
    assert_eq!(answer.statuses[0], *ack);

    // Unknown ids and ids of other devices are never news; the same status at the same
    // millisecond is not news: the wait ends empty.
    let other = l.enroll_device("other-phone");
    let theirs = sos_for("other-phone");
    l.send_as(&other, std::slice::from_ref(&theirs));
    let started = Instant::now();
    let answer = l.watch(
        json!([
            known(&a_id, "acknowledged", Some(ack.updated_at)),
            known(&new_id(), "delivered", None),
            known(&id_of(&theirs), "delivered", None),
        ]),
        1,
    );
    assert!(answer.statuses.is_empty(), "{answer:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(l.server().open_watches(), 0);
}

#[test]
fn a_waiting_watch_hears_the_acknowledge_and_its_message_within_milliseconds() {
    let l = Loop::start(plain);
    let a = sos();
    let a_id = id_of(&a);
    l.send(&[a]);
    let current = l
        .watch(json!([known(&a_id, "delivered", None)]), 0)
        .statuses[0]
        .clone();
    let l = Arc::new(l);
    let watcher = {
        let l = l.clone();
        let a_id = a_id.clone();
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
    // A follow-up of the alarm wakes the watch, which finds no news and waits on.
    l.send(&[sos_location(&a_id, 50.6, "2026-11-25T08:03:00Z")]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(l.server().open_watches(), 1);
    let clicked = Instant::now();
    let view = l.dispatch_ok(&a_id, "acknowledge", Some("crew 7 on the way, 6 min"));
    let (answered, answer) = watcher.join().unwrap();
    let latency = answered.duration_since(clicked);
    println!("acknowledge → watch answer: {latency:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    assert_eq!(answer.statuses.len(), 1);
    let s = &answer.statuses[0];
    assert_eq!(s.status, DispatchStatus::Acknowledged);
    assert_eq!(s.message.as_deref(), Some("crew 7 on the way, 6 min"));
    assert_eq!(Some(s.updated_at), view.acknowledged_at);
    assert_eq!(view.message.as_deref(), Some("crew 7 on the way, 6 min"));
}

#[test]
fn messages_update_statuses_never_go_back_and_limits_hold() {
    let l = Loop::start(plain);
    let a = sos();
    let a_id = id_of(&a);
    l.send(&[a]);
    // An empty body and an empty object are no message.
    let resp = l.dispatch(&a_id, "acknowledge", Some(""));
    assert_eq!(resp.status(), 200);
    let first: crewsafe_server::DispatchSos = parse(resp);
    assert_eq!(first.status, DispatchStatus::Acknowledged);
    assert!(first.message.is_none());
    assert_eq!(l.dispatch_ok(&a_id, "acknowledge", None), first);
    let resp = l.dispatch(&a_id, "acknowledge", Some("{}"));
    assert_eq!(parse::<crewsafe_server::DispatchSos>(resp), first);
    // Acknowledging again with a message updates the message and the time, not the status.
    let second = l.dispatch_ok(&a_id, "acknowledge", Some("on the way"));
    assert_eq!(second.message.as_deref(), Some("on the way"));
    assert!(second.updated_at > first.updated_at);
    assert_eq!(second.acknowledged_at, first.acknowledged_at);
    // The same message again changes nothing.
    assert_eq!(
        l.dispatch_ok(&a_id, "acknowledge", Some("on the way")),
        second
    );

    let resolved = l.dispatch_ok(&a_id, "resolve", None);
    assert_eq!(resolved.status, DispatchStatus::Resolved);
    assert_eq!(resolved.message.as_deref(), Some("on the way"));
    // Never backwards: acknowledging a resolved alarm changes nothing, even with a message.
    assert_eq!(
        l.dispatch_ok(&a_id, "acknowledge", Some("late words")),
        resolved
    );
    let closing = l.dispatch_ok(&a_id, "resolve", Some("crew safe, closed"));
    assert_eq!(closing.status, DispatchStatus::Resolved);
    assert_eq!(closing.message.as_deref(), Some("crew safe, closed"));

    // The status query carries the same fields.
    let resp = l
        .client
        .post(l.url("/v1/sos:status"))
        .bearer_auth(&l.token)
        .body(json!({"protocol": 1, "ids": [a_id]}).to_string())
        .send()
        .unwrap();
    let status: SosStatusResponse = parse(resp);
    let s = &status.statuses[0];
    assert_eq!(s.status, DispatchStatus::Resolved);
    assert_eq!(s.message.as_deref(), Some("crew safe, closed"));
    assert_eq!(s.acknowledged_by.as_deref(), Some(DISPATCHER));
    assert_eq!(s.resolved_at, closing.resolved_at);
    assert_eq!(s.updated_at, closing.updated_at);

    // Limits: the message length counts characters, not bytes.
    let b = sos();
    let b_id = id_of(&b);
    l.send(&[b]);
    let longest = "й".repeat(MAX_DISPATCH_MESSAGE_CHARS);
    let body = json!({ "message": format!("{longest}!") }).to_string();
    let err = expect_error(
        l.dispatch(&b_id, "acknowledge", Some(&body)),
        400,
        "malformed",
    );
    assert!(err.message.contains("message"), "{}", err.message);
    for bad in ["{\"message\": 5}", "{\"note\": \"x\"}", "not json"] {
        expect_error(
            l.dispatch(&b_id, "acknowledge", Some(bad)),
            400,
            "malformed",
        );
    }
    assert_eq!(
        l.store().sos_status(&b_id).unwrap(),
        Some(DispatchStatus::Delivered)
    );
    let view = l.dispatch_ok(&b_id, "resolve", Some(&longest));
    assert_eq!(view.message.as_deref(), Some(longest.as_str()));

    let watch = |body: serde_json::Value| {
        l.client
            .post(l.url("/v1/sos:watch"))
            .bearer_auth(&l.token)
            .body(body.to_string())
            .send()
            .unwrap()
    };
    expect_error(
        watch(json!({"protocol": 1, "known": [], "wait_seconds": 56})),
        400,
        "malformed",
    );
    let many: Vec<_> = (0..=MAX_STATUS_IDS)
        .map(|_| known(&new_id(), "delivered", None))
        .collect();
    expect_error(
        watch(json!({"protocol": 1, "known": many, "wait_seconds": 1})),
        400,
        "malformed",
    );
    expect_error(
        watch(json!({"protocol": 2, "known": [], "wait_seconds": 1})),
        400,
        "unsupported_version",
    );
    let resp = l
        .client
        .post(l.url("/v1/sos:watch"))
        .body(json!({"protocol": 1, "known": [], "wait_seconds": 1}).to_string())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
}

#[test]
fn five_hundred_phones_watch_at_once_and_each_hears_its_acknowledge() {
    const PHONES: usize = 500;
    let l = Arc::new(Loop::start(plain));
    let mut phones = Vec::with_capacity(PHONES);
    for i in 0..PHONES {
        let device = format!("phone-{i}");
        let token = l.enroll_device(&device);
        let alarm = sos_for(&device);
        let id = id_of(&alarm);
        l.send_as(&token, &[alarm]);
        phones.push((token, id));
    }
    let ready = Arc::new(Barrier::new(PHONES + 1));
    let watchers: Vec<_> = phones
        .iter()
        .cloned()
        .map(|(token, id)| {
            let (l, ready) = (l.clone(), ready.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    ready.wait();
                    let resp = l.watch_as(
                        &token,
                        json!([known(&id, "delivered", Some(chrono::Utc::now()))]),
                        50,
                    );
                    assert_eq!(resp.status(), 200);
                    let answer: SosStatusResponse = parse(resp);
                    (id, answer)
                })
                .unwrap()
        })
        .collect();
    ready.wait();
    wait_for(Duration::from_secs(30), || {
        (l.server().open_watches() == PHONES).then_some(())
    });
    let started = Instant::now();
    for (_, id) in &phones {
        l.server()
            .acknowledge(id, DISPATCHER, Some("on the way"))
            .unwrap()
            .unwrap();
    }
    for w in watchers {
        let (id, answer) = w.join().expect("watcher");
        assert_eq!(answer.statuses.len(), 1, "{id}");
        assert_eq!(answer.statuses[0].id, id);
        assert_eq!(answer.statuses[0].status, DispatchStatus::Acknowledged);
        assert_eq!(answer.statuses[0].message.as_deref(), Some("on the way"));
    }
    println!(
        "{PHONES} watches answered {:?} after the first acknowledge",
        started.elapsed()
    );
    assert_eq!(l.server().open_watches(), 0);
}

#[test]
fn a_client_that_goes_away_frees_its_waiter() {
    let l = Loop::start(plain);
    let a = sos();
    let a_id = id_of(&a);
    l.send(&[a]);
    let body = json!({
        "protocol": 1,
        "known": [known(&a_id, "delivered", Some(chrono::Utc::now()))],
        "wait_seconds": 55
    })
    .to_string();
    let mut socket = std::net::TcpStream::connect(l.server().addr()).unwrap();
    write!(
        socket,
        "POST /v1/sos:watch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        l.token,
        body.len()
    )
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        (l.server().open_watches() == 1).then_some(())
    });
    drop(socket);
    wait_for(Duration::from_secs(3), || {
        (l.server().open_watches() == 0).then_some(())
    });
}

#[test]
fn a_restart_during_a_watch_ends_it_and_the_phone_watches_the_new_server() {
    let mut l = Loop::start(plain);
    let a = sos();
    let a_id = id_of(&a);
    l.send(&[a]);
    let current = l
        .watch(json!([known(&a_id, "delivered", None)]), 0)
        .statuses[0]
        .clone();
    let known_now = json!([known(&a_id, "delivered", Some(current.updated_at))]);
    let url = l.url("/v1/sos:watch");
    let token = l.token.clone();
    let body = json!({"protocol": 1, "known": known_now, "wait_seconds": 55}).to_string();
    let watcher = std::thread::spawn(move || {
        let started = Instant::now();
        let outcome = client()
            .post(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(70))
            .body(body)
            .send()
            .and_then(|r| r.text().map(|t| t.to_string()));
        (started.elapsed(), outcome)
    });
    wait_for(Duration::from_secs(5), || {
        (l.server().open_watches() == 1).then_some(())
    });
    let old_addr = l.server().addr();
    l.restart();
    let (took, outcome) = watcher.join().unwrap();
    // The watch ends when its server stops: with an empty answer or a closed connection,
    // never by waiting out its 55 seconds.
    assert!(took < Duration::from_secs(10), "{took:?}");
    match outcome {
        Ok(text) => assert_eq!(text, r#"{"statuses":[]}"#),
        Err(e) => println!("the watch saw: {e}"),
    }
    // Nothing listens on the old address any more.
    let mut probe = std::net::TcpStream::connect(old_addr);
    if let Ok(s) = &mut probe {
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut buf = [0u8; 16];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }

    // The phone watches the new server, on the same database: the acknowledge comes through.
    let l = Arc::new(l);
    let watcher = {
        let l = l.clone();
        let known_now = known_now.clone();
        std::thread::spawn(move || l.watch(known_now, 30))
    };
    wait_for(Duration::from_secs(5), || {
        (l.server().open_watches() == 1).then_some(())
    });
    l.dispatch_ok(&a_id, "acknowledge", Some("on the way"));
    let answer = watcher.join().unwrap();
    assert_eq!(answer.statuses[0].status, DispatchStatus::Acknowledged);
    assert_eq!(answer.statuses[0].message.as_deref(), Some("on the way"));
}
