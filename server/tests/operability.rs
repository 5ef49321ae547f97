//! What an operator relies on, against the real server on loopback: implausible input refused
//! with reasons and JSON bodies, `/readyz` that touches the database, `/metrics` after
//! traffic, the body and header timeouts, the connection cap and the per-device rate limit.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::alarms::{wait_for, Loop};
use common::*;
use crewsafe_server::protocol::{ErrorBody, ItemStatus};
use crewsafe_server::{Database, Limits, ServerConfig};
use serde_json::{json, Value};

fn with_limits(f: impl FnOnce(&mut Limits)) -> impl FnOnce(ServerConfig) -> ServerConfig {
    move |mut c| {
        f(&mut c.limits);
        c
    }
}

fn no_limits(c: ServerConfig) -> ServerConfig {
    c
}

/// Sends `request` on a fresh connection and reads until the server closes it (or `within`
/// passes); returns the status code and the body.
fn raw(addr: SocketAddr, request: &[u8], within: Duration) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    split_answer(&out)
}

/// The status and body of a raw HTTP/1.1 answer (`Content-Length` bodies only).
fn split_answer(answer: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => answer[end + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {}", String::from_utf8_lossy(body)))
}

fn addr(l: &Loop) -> SocketAddr {
    l.server().addr()
}

// ---------------------------------------------------------------------------------------
// Input refused
// ---------------------------------------------------------------------------------------

#[test]
fn times_outside_the_plausible_range_are_rejected_with_a_reason() {
    let l = Loop::start(no_limits);
    let tomorrow_and_more = (chrono::Utc::now() + chrono::TimeDelta::hours(26))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut old_device_time = sos();
    old_device_time["device_time"] = json!("1999-12-31T23:59:59Z");
    let mut year_9999 = sos();
    year_9999["content"]["raised_at"] = json!("9999-12-31T23:59:59Z");
    let mut future_report = report();
    future_report["content"]["occurred_at"] = json!(tomorrow_and_more);
    let mut old_fix = sos();
    old_fix["content"]["location"]["fixed_at"] = json!("1970-01-01T00:00:00Z");
    let good = sos();
    let mut future_cancel = sos_cancel(&id_of(&good));
    future_cancel["content"]["cancelled_at"] = json!(tomorrow_and_more);
    let records = [
        old_device_time,
        year_9999,
        future_report,
        old_fix,
        good.clone(),
        future_cancel,
    ];
    let results = l.post_raw_records(&records);
    let reasons: Vec<Option<&str>> = results.iter().map(|r| r.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [
            Some("device_time: must not be before 2000-01-01T00:00:00Z"),
            Some("content.raised_at: must not be more than one day ahead of the server's clock"),
            Some("content.occurred_at: must not be more than one day ahead of the server's clock"),
            Some("content.location.fixed_at: must not be before 2000-01-01T00:00:00Z"),
            None,
            Some("content.cancelled_at: must not be more than one day ahead of the server's clock"),
        ]
    );
    for (i, r) in results.iter().enumerate() {
        let want = if i == 4 {
            ItemStatus::Accepted
        } else {
            ItemStatus::Rejected
        };
        expect_item(r, &id_of(&records[i]), want);
    }
    let stored: Vec<String> = l
        .store()
        .records()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stored, [id_of(&good)]);
}

#[test]
fn an_id_that_is_not_utf8_in_a_dispatcher_path_gets_a_json_error_after_authentication() {
    let l = Loop::start(no_limits);
    let url = l.url("/v1/dispatch/sos/%FF%FE/acknowledge");
    let resp = l.client.post(&url).send().unwrap();
    expect_error(resp, 401, "unauthorized");
    let resp = l
        .client
        .post(&url)
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    let body = expect_error(resp, 400, "malformed");
    assert_eq!(body.message, "invalid alarm id in the path");
}

#[test]
fn requests_hyper_cannot_parse_get_json_error_bodies() {
    let l = Loop::start(no_limits);
    let big = "a".repeat(1024 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let (status, body) = raw(addr(&l), request.as_bytes(), Duration::from_secs(10));
    assert_eq!(status, 431);
    assert_eq!(error_body(&body).error.as_str(), "headers_too_large");
    let (status, body) = raw(
        addr(&l),
        b"NOT HTTP AT ALL\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status, 400);
    assert_eq!(error_body(&body).error.as_str(), "malformed");
    // The server still answers.
    let (status, _) = raw(
        addr(&l),
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------

/// Locks every reader out of an SQLite database in WAL mode, as a process stuck holding its
/// locks would: write locks on the five WAL read-mark lock bytes of the `-shm` file (offsets
/// 123 to 127, see SQLite's `wal.c`), one of which every read transaction must lock for
/// reading. Open file description locks, so that they hold against the server's connections in
/// this same process; closing the file frees them. Never blocks: retries for ten seconds while
/// a server read holds one of the bytes.
fn lock_out_readers(db: &std::path::Path) -> std::fs::File {
    use std::os::fd::AsRawFd as _;
    let shm = db.with_file_name(format!("{}-shm", db.file_name().unwrap().to_str().unwrap()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&shm)
        .unwrap();
    // SAFETY: a zeroed `flock` is a valid value; fcntl reads it during the call only.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    lock.l_start = 123;
    lock.l_len = 5;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: a valid descriptor and a valid `flock` that outlives the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
        if rc == 0 {
            return file;
        }
        let e = std::io::Error::last_os_error();
        assert!(
            Instant::now() < deadline,
            "cannot lock {}: {e}",
            shm.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn readyz_answers_503_while_the_database_is_locked_and_healthz_stays_ok() {
    let l = Loop::start(with_limits(|l| {
        l.ready_timeout = Duration::from_millis(500)
    }));
    let Database::Sqlite(path) = l.database.clone() else {
        unreachable!()
    };
    let resp = l.client.get(l.url("/readyz")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(parse::<Value>(resp), json!({"status": "ready"}));

    let lock = lock_out_readers(&path);
    let started = Instant::now();
    let resp = l.client.get(l.url("/readyz")).send().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let body = expect_error(resp, 503, "unavailable");
    assert_eq!(body.message, "the database does not answer");
    let resp = l.client.get(l.url("/healthz")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = l.metrics();
    assert!(
        metric(&metrics, "crewsafe_database_errors_total") >= 1.0,
        "{metrics}"
    );

    drop(lock);
    wait_for(Duration::from_secs(20), || {
        let resp = l.client.get(l.url("/readyz")).send().unwrap();
        (resp.status() == 200).then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

/// Checks the exposition's format: every sample follows the `# HELP` and `# TYPE` lines of its
/// family, every value parses, counters end in `_total`, and histogram buckets are cumulative
/// with `+Inf` equal to `_count`.
fn check_exposition(text: &str) {
    let mut help: Option<String> = None;
    let mut family: Option<(String, String)> = None;
    let mut buckets: Vec<f64> = Vec::new();
    let mut inf = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(help.as_deref(), Some(name), "TYPE without its HELP: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            family = Some((name.to_string(), kind.to_string()));
            buckets.clear();
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = series.split('{').next().unwrap();
        let (family, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("no family: {line}"));
        match kind.as_str() {
            "counter" => assert!(name == family && name.ends_with("_total"), "{line}"),
            "gauge" => assert_eq!(name, family, "{line}"),
            _ if name == format!("{family}_bucket") => {
                assert!(
                    buckets.last().is_none_or(|b| value >= *b),
                    "not cumulative: {line}"
                );
                buckets.push(value);
                if series.contains("le=\"+Inf\"") {
                    inf = Some(value);
                }
            }
            _ if name == format!("{family}_sum") => assert!(value >= 0.0, "{line}"),
            _ if name == format!("{family}_count") => {
                assert_eq!(
                    inf.take(),
                    Some(value),
                    "+Inf bucket and count differ: {line}"
                )
            }
            _ => panic!("sample outside its family: {line}"),
        }
    }
}

#[test]
fn metrics_count_requests_by_route_records_by_outcome_and_open_alarms() {
    let l = Loop::start(no_limits);
    let first = sos();
    let second = sos();
    let mut conflicting = first.clone();
    conflicting["content"]["note"] = json!("other content, same id");
    let mut rejected = sos();
    rejected["lane"] = json!("report");
    let results = l.post_raw_records(&[first.clone(), second.clone(), rejected]);
    assert_eq!(results[2].status, ItemStatus::Rejected);
    assert_eq!(l.post_duplicate(&first), ItemStatus::Duplicate);
    assert_eq!(l.post_duplicate(&conflicting), ItemStatus::Conflict);
    l.dispatch_ok(&id_of(&second), "acknowledge", None);
    let resp = l.dispatch(&new_id(), "acknowledge", None);
    assert_eq!(resp.status(), 404);
    let resp = l.client.get(l.url("/no/such/path/12345")).send().unwrap();
    assert_eq!(resp.status(), 404);
    let stream = l.events(None);

    let resp = l.client.get(l.url("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().unwrap();
    check_exposition(&text);
    let requests = |method: &str, route: &str, status: u16| {
        metric(
            &text,
            &format!(
                "crewsafe_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("POST", "/v1/records:batch", 200), 3.0);
    assert_eq!(
        requests("POST", "/v1/dispatch/sos/{id}/acknowledge", 200),
        1.0
    );
    assert_eq!(
        requests("POST", "/v1/dispatch/sos/{id}/acknowledge", 404),
        1.0
    );
    assert_eq!(requests("GET", "unmatched", 404), 1.0);
    // Route patterns, never raw paths or ids.
    assert!(!text.contains(&id_of(&second)), "{text}");
    assert!(!text.contains("12345"), "{text}");
    for (outcome, n) in [
        ("accepted", 2.0),
        ("duplicate", 1.0),
        ("conflict", 1.0),
        ("rejected", 1.0),
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("crewsafe_records_total{{outcome=\"{outcome}\"}}")
            ),
            n,
            "{outcome}"
        );
    }
    assert_eq!(metric(&text, "crewsafe_batch_duration_seconds_count"), 3.0);
    assert_eq!(
        metric(&text, "crewsafe_batch_duration_seconds_bucket{le=\"+Inf\"}"),
        3.0
    );
    assert!(metric(&text, "crewsafe_batch_duration_seconds_sum") > 0.0);
    assert_eq!(metric(&text, "crewsafe_alarms_open"), 2.0);
    assert_eq!(metric(&text, "crewsafe_alarms_unacknowledged"), 1.0);
    assert!(metric(&text, "crewsafe_alarm_oldest_unacknowledged_age_seconds") >= 0.0);
    assert_eq!(metric(&text, "crewsafe_open_event_streams"), 1.0);
    assert_eq!(metric(&text, "crewsafe_open_watches"), 0.0);
    assert!(metric(&text, "crewsafe_open_connections") >= 1.0);
    assert_eq!(metric(&text, "crewsafe_database_errors_total"), 0.0);

    drop(stream);
    l.dispatch_ok(&id_of(&first), "resolve", None);
    wait_for(Duration::from_secs(10), || {
        let text = l.metrics();
        (metric(&text, "crewsafe_open_event_streams") == 0.0
            && metric(&text, "crewsafe_alarms_unacknowledged") == 0.0
            && metric(&text, "crewsafe_alarms_open") == 1.0
            && metric(&text, "crewsafe_alarm_oldest_unacknowledged_age_seconds") == 0.0)
            .then_some(())
    });
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn a_body_trickled_byte_by_byte_is_cut_off_with_408() {
    let l = Loop::start(with_limits(|l| {
        l.body_idle_timeout = Duration::from_secs(1);
        l.body_timeout = Duration::from_secs(3);
    }));
    let head = format!(
        "POST /v1/records:batch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n",
        l.token
    );
    // One byte every 2 s: over the idle timeout.
    let mut s = TcpStream::connect(addr(&l)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let trickle = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..10 {
                if s.write_all(b"{").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        })
    };
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let took = started.elapsed();
    let (status, body) = split_answer(&out);
    assert_eq!(status, 408);
    assert_eq!(error_body(&body).error.as_str(), "timeout");
    assert!(took < Duration::from_secs(5), "{took:?}");
    trickle.join().unwrap();

    // One byte every 0.5 s: under the idle timeout, over the total.
    let mut s = TcpStream::connect(addr(&l)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        if s.write_all(b" ").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let took = started.elapsed();
    let (status, body) = split_answer(&out);
    assert_eq!(status, 408);
    assert_eq!(error_body(&body).error.as_str(), "timeout");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(l.server().batch_requests(), 2);
    assert!(l.store().records().unwrap().is_empty());
}

#[test]
fn headers_trickled_byte_by_byte_are_cut_off() {
    let l = Loop::start(with_limits(|l| l.header_timeout = Duration::from_secs(2)));
    let mut s = TcpStream::connect(addr(&l)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let request =
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    let mut out = Vec::new();
    for byte in request {
        if s.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    let took = started.elapsed();
    assert!(closed, "still open after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Whatever came before the close is not a success.
    assert!(!String::from_utf8_lossy(&out).contains(" 200 "), "{out:?}");
}

#[test]
fn connections_above_the_cap_wait_until_one_closes() {
    let l = Loop::start(with_limits(|l| l.max_connections = 2));
    let a = TcpStream::connect(addr(&l)).unwrap();
    let b = TcpStream::connect(addr(&l)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A third connection is accepted by the kernel but not served.
    let mut c = TcpStream::connect(addr(&l)).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 1024];
    assert!(c.read(&mut buf).is_err(), "served above the cap");
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert_eq!(split_answer(&out).0, 200);
    drop(b);
}

/// Posts `records` as [`DEVICE`] on a thread; the thread returns the answer's status and body.
fn post_in_background(l: &Loop, records: Vec<Value>) -> std::thread::JoinHandle<(u16, Value)> {
    let (client, url, token) = (
        l.client.clone(),
        l.url("/v1/records:batch"),
        l.token.clone(),
    );
    std::thread::spawn(move || {
        let resp = client
            .post(url)
            .bearer_auth(token)
            .body(json!({"protocol": 1, "records": records}).to_string())
            .send()
            .expect("send");
        let status = resp.status().as_u16();
        let body = resp.bytes().expect("answer");
        (status, serde_json::from_slice(&body).expect("JSON answer"))
    })
}

/// The batch gauges (in progress, waiting) and the wait counter of one `/metrics` scrape.
fn batch_gauges(l: &Loop) -> (f64, f64, f64) {
    let text = l.metrics();
    check_exposition(&text);
    (
        metric(&text, "crewsafe_batches_in_progress"),
        metric(&text, "crewsafe_batches_waiting"),
        metric(&text, "crewsafe_batch_wait_seconds_total"),
    )
}

fn expect_all_accepted((status, answer): (u16, Value)) {
    assert_eq!(status, 200, "{answer}");
    for r in answer["results"].as_array().unwrap() {
        assert_eq!(r["status"], "accepted", "{r}");
    }
}

#[test]
fn batches_over_the_concurrency_limit_wait_for_their_turn_and_are_all_stored() {
    let l = Loop::start(|c| c.with_test_faults().with_max_concurrent_batches(1));
    let faults = l.server().faults();
    // A batch that gets its turn keeps it and waits before decoding until released.
    faults.hold_batches();
    let first = post_in_background(&l, vec![report(), sos()]);
    wait_for(Duration::from_secs(10), || {
        (batch_gauges(&l) == (1.0, 0.0, 0.0)).then_some(())
    });
    let later: Vec<_> = (0..2)
        .map(|_| post_in_background(&l, vec![report()]))
        .collect();
    // Both later batches were read in full and queue behind the first: with the limit off
    // they would be in progress too, and `waiting` would never reach 2.
    let (in_progress, waiting, _) = wait_for(Duration::from_secs(10), || {
        let g = batch_gauges(&l);
        (g.1 == 2.0).then_some(g)
    });
    assert_eq!((in_progress, waiting), (1.0, 2.0));
    assert!(l.store().records().unwrap().is_empty());
    assert_eq!(l.server().batch_requests(), 3);

    faults.release_batches();
    expect_all_accepted(first.join().unwrap());
    for t in later {
        expect_all_accepted(t.join().unwrap());
    }
    let (in_progress, waiting, waited) = batch_gauges(&l);
    assert_eq!((in_progress, waiting), (0.0, 0.0));
    assert!(waited > 0.0, "{waited}");
    assert_eq!(l.store().records().unwrap().len(), 4);
}

#[test]
fn the_concurrency_limit_lets_as_many_batches_through_as_configured() {
    let l = Loop::start(|c| c.with_test_faults().with_max_concurrent_batches(2));
    let faults = l.server().faults();
    faults.hold_batches();
    let posts: Vec<_> = (0..3)
        .map(|_| post_in_background(&l, vec![report()]))
        .collect();
    wait_for(Duration::from_secs(10), || {
        (batch_gauges(&l).0 == 2.0).then_some(())
    });
    wait_for(Duration::from_secs(10), || {
        (batch_gauges(&l).1 == 1.0).then_some(())
    });
    assert_eq!(batch_gauges(&l).0, 2.0);
    faults.release_batches();
    for t in posts {
        expect_all_accepted(t.join().unwrap());
    }
    assert_eq!(l.store().records().unwrap().len(), 3);
}

#[test]
fn a_client_trickling_its_body_holds_no_batch_turn() {
    // Long body timeouts: if the slow body held the only turn, the next batch would wait for
    // them, well past the client's 20 s timeout.
    let l = Loop::start(|c| {
        let mut c = c.with_max_concurrent_batches(1);
        c.limits.body_timeout = Duration::from_secs(120);
        c.limits.body_idle_timeout = Duration::from_secs(120);
        c
    });
    let head = format!(
        "POST /v1/records:batch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"protocol\":1,",
        l.token
    );
    let mut slow = TcpStream::connect(addr(&l)).unwrap();
    slow.write_all(head.as_bytes()).unwrap();
    // The slow request reached the handler (it counts before authenticating).
    wait_for(Duration::from_secs(10), || {
        (l.server().batch_requests() == 1).then_some(())
    });
    let started = Instant::now();
    l.send(&[report()]);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(batch_gauges(&l), (0.0, 0.0, 0.0));
    assert_eq!(l.store().records().unwrap().len(), 1);
    drop(slow);
}

#[test]
fn a_device_over_its_rate_gets_429_with_retry_after() {
    let l = Loop::start(with_limits(|l| {
        l.device_rate_per_sec = 1;
        l.device_burst = 3;
    }));
    let other = l.enroll_device("another-phone");
    let status_query = |token: &str| {
        l.client
            .post(l.url("/v1/sos:status"))
            .bearer_auth(token)
            .body(json!({"protocol": 1, "ids": []}).to_string())
            .send()
            .unwrap()
    };
    for _ in 0..3 {
        assert_eq!(status_query(&l.token).status(), 200);
    }
    let resp = status_query(&l.token);
    assert_eq!(resp.headers()["retry-after"], "1");
    expect_error(resp, 429, "rate_limited");
    // Batches count too; other devices and dispatchers are not held back.
    expect_error(l.post_as_raw(&[sos()]), 429, "rate_limited");
    assert_eq!(status_query(&other).status(), 200);
    let resp = l
        .client
        .get(l.url("/v1/dispatch/sos"))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(status_query(&l.token).status(), 200);
    let text = l.metrics();
    assert_eq!(metric(&text, "crewsafe_rate_limited_total"), 2.0);
}

trait PostRaw {
    fn post_as_raw(&self, records: &[Value]) -> reqwest::blocking::Response;
}

impl PostRaw for Loop {
    fn post_as_raw(&self, records: &[Value]) -> reqwest::blocking::Response {
        self.client
            .post(self.url("/v1/records:batch"))
            .bearer_auth(&self.token)
            .body(json!({"protocol": 1, "records": records}).to_string())
            .send()
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Structured logs and configuration (the binary)
// ---------------------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_crewsafe-server");

/// Kills the child (its id only) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn each_request_logs_one_json_line_without_tokens_or_content() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let log = dir.path().join("log");
    let token = crewsafe_server::enroll_device(&db, DEVICE).unwrap();
    // Configuration from the environment: the database, the address, the rate limit.
    let mut child = Child(
        std::process::Command::new(BIN)
            .env("CREWSAFE_LOG", "info")
            .env("CREWSAFE_DB", &db)
            .env("CREWSAFE_LISTEN", "127.0.0.1:0")
            .env("CREWSAFE_DEVICE_RATE", "1")
            .env("CREWSAFE_DEVICE_BURST", "2")
            .env_remove("CREWSAFE_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let client = client();
    let secret_note = "SECRET-NOTE-do-not-log";
    let mut record = sos();
    record["content"]["note"] = json!(secret_note);
    let resp = client
        .post(format!("{url}/v1/records:batch"))
        .bearer_auth(&token)
        .header("x-request-id", "req-42")
        .body(json!({"protocol": 1, "records": [record, sos()]}).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let resp = client
        .get(format!("{url}/healthz"))
        .header("x-request-id", "not allowed: spaces")
        .send()
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "{generated}");
    // The third request of this device within a second is over its burst of 2.
    for _ in 0..2 {
        let _ = client
            .post(format!("{url}/v1/sos:status"))
            .bearer_auth(&token)
            .body(json!({"protocol": 1, "ids": []}).to_string())
            .send()
            .unwrap();
    }
    let resp = client
        .post(format!("{url}/v1/records:batch"))
        .bearer_auth("wrong-token-value")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    let lines: Vec<Value> = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let requests = lines.iter().filter(|l| l["msg"] == "request").count();
        (requests >= 5).then_some(lines)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [token.as_str(), secret_note, "wrong-token-value"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    let batch = lines
        .iter()
        .find(|l| l["request_id"] == "req-42")
        .unwrap_or_else(|| panic!("no line of req-42 in\n{text}"));
    assert_eq!(batch["level"], "info");
    assert_eq!(batch["target"], "crewsafe_server::access");
    assert_eq!(batch["method"], "POST");
    assert_eq!(batch["route"], "/v1/records:batch");
    assert_eq!(batch["status"], 200);
    assert_eq!(batch["device_id"], DEVICE);
    assert_eq!(batch["records"], 2);
    assert_eq!(batch["accepted"], 2);
    assert_eq!(batch["rejected"], 0);
    assert!(batch["latency_ms"].as_f64().unwrap() >= 0.0, "{batch}");
    assert!(batch["ts"].as_str().unwrap().ends_with('Z'), "{batch}");
    let health = lines
        .iter()
        .find(|l| l["request_id"] == generated.as_str())
        .unwrap();
    assert_eq!(health["route"], "/healthz");
    assert!(
        health.get("device_id").is_none() && health.get("records").is_none(),
        "{health}"
    );
    let statuses: Vec<&Value> = lines
        .iter()
        .filter(|l| l["route"] == "/v1/sos:status" || l["status"] == 401)
        .map(|l| &l["status"])
        .collect();
    assert_eq!(statuses, [&json!(200), &json!(429), &json!(401)], "{text}");
}

#[test]
fn every_flag_has_its_environment_variable() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "CREWSAFE_DB",
        "CREWSAFE_DATABASE_URL",
        "CREWSAFE_LISTEN",
        "CREWSAFE_TLS_CERT",
        "CREWSAFE_TLS_KEY",
        "CREWSAFE_ESCALATE_AFTER_SECS",
        "CREWSAFE_CHECK_IN_MINUTE_MS",
        "CREWSAFE_HEADER_TIMEOUT_SECS",
        "CREWSAFE_BODY_TIMEOUT_SECS",
        "CREWSAFE_BODY_IDLE_TIMEOUT_SECS",
        "CREWSAFE_MAX_CONNECTIONS",
        "CREWSAFE_DEVICE_RATE",
        "CREWSAFE_DEVICE_BURST",
        "CREWSAFE_READY_TIMEOUT_MS",
        "CREWSAFE_MAX_CONCURRENT_BATCHES",
    ] {
        assert!(
            help.contains(&format!("[env: {var}")),
            "{var} missing from\n{help}"
        );
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .unwrap();
        assert!(
            doc.contains(&format!("`{var}`")),
            "{var} not in docs/operations.md"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The answers' checker itself
// ---------------------------------------------------------------------------------------

#[test]
fn the_openapi_checker_refuses_answers_that_do_not_match() {
    use common::openapi::{check, check_schema};
    let alarm = json!({
        "id": "a", "device_id": "d", "crew": {"device_id": "d", "crew_id": "c"},
        "raised_at": "2026-11-25T08:00:00Z", "received_at": "2026-11-25T08:00:01Z",
        "status": "delivered", "updated_at": "2026-11-25T08:00:01Z",
        "cancel": null, "location": null, "note": null
    });
    check_schema("DispatchSos", &alarm);
    let fails =
        |f: Box<dyn FnOnce() + std::panic::UnwindSafe>| std::panic::catch_unwind(f).is_err();
    let mut wrong_status = alarm.clone();
    wrong_status["status"] = json!("lost");
    assert!(fails(Box::new(move || check_schema(
        "DispatchSos",
        &wrong_status
    ))));
    let mut not_rfc3339 = alarm.clone();
    not_rfc3339["raised_at"] = json!("+10000-01-01T00:00:00Z");
    assert!(fails(Box::new(move || check_schema(
        "DispatchSos",
        &not_rfc3339
    ))));
    let body = serde_json::to_vec(&alarm).unwrap();
    check("/v1/dispatch/sos/a/acknowledge", 200, &body);
    // A status the document does not list for the path.
    assert!(fails(Box::new(move || check(
        "/v1/dispatch/sos/a/acknowledge",
        418,
        &body
    ))));
    let error = br#"{"error":"rate_limited","message":"m"}"#;
    check("/v1/records:batch", 429, error);
    assert!(fails(Box::new(|| check(
        "/v1/records:batch",
        429,
        br#"{"error":"nope","message":"m"}"#
    ))));
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked_from_the_command_line() {
    let l = Loop::start(no_limits);
    let Database::Sqlite(db) = l.database.clone() else {
        unreachable!()
    };
    let db = db.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env_remove("CREWSAFE_DATABASE_URL")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, listed, _) = run(&["list-tokens", "--db", &db]);
    assert!(ok);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("device     20") && lines[0].ends_with(&format!(" {DEVICE}")),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("dispatcher 20") && lines[1].ends_with(" desk 4"),
        "{listed}"
    );
    assert!(
        !listed.contains(&l.token) && !listed.contains(&l.dispatcher),
        "{listed}"
    );

    let batch = |token: &str| {
        l.client
            .post(l.url("/v1/sos:status"))
            .bearer_auth(token)
            .body(json!({"protocol": 1, "ids": []}).to_string())
            .send()
            .unwrap()
    };
    assert_eq!(batch(&l.token).status(), 200);
    let (ok, out, _) = run(&["revoke-device", "--db", &db, "--device-id", DEVICE]);
    assert!(ok);
    assert_eq!(out, format!("revoked device {DEVICE}\n"));
    expect_error(batch(&l.token), 401, "unauthorized");
    let (ok, _, err) = run(&["revoke-device", "--db", &db, "--device-id", DEVICE]);
    assert!(!ok && err.contains("is enrolled"), "{err}");

    let (ok, _, _) = run(&["revoke-dispatcher", "--db", &db, "--name", "desk 4"]);
    assert!(ok);
    let resp = l
        .client
        .get(l.url("/v1/dispatch/sos"))
        .bearer_auth(&l.dispatcher)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    let (_, listed, _) = run(&["list-tokens", "--db", &db]);
    assert_eq!(listed, "");
}
