//! Fault injection on the wire: the phone syncs to the reference server through our own TCP
//! fault proxy (`tests/common/proxy.rs`), under every proxy fault (latency, bandwidth limit,
//! reset mid-request and mid-response, cut after the request, proxy down then up, server
//! down then up behind the proxy, a latency beyond the request timeout) and every fault of
//! the server's test mode (5xx, 429/503 with Retry-After, lost answer after commit, partial
//! batch, poison record), plus a seeded chaos run mixing all of them while records keep
//! being added.
//!
//! Every scenario ends with the same checks ([`Env::verify`]):
//! - every deliverable record is stored exactly once on the server and `Delivered` on the
//!   phone, and the server holds nothing else;
//! - every poisoned record is `Wedged` on the phone (with the server's reason) and absent
//!   from the server;
//! - in the server's receive order, a follow-up comes after its SOS, and no report comes
//!   before an SOS-lane record that was queued before the sync that delivered the report
//!   began.
//!
//! After each `sync_now` the test waits until the proxy has nothing in flight towards the
//! server and every complete request was answered ([`Proxy::wait_idle`]); the server's
//! record count then marks which records arrived during that sync, exactly.
//!
//! `CREWSAFE_LONG=1` makes the chaos run long; `CREWSAFE_SEED=<n>` replays a chaos seed.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use common::net::{Server, Tokens};
use common::proxy::{Fault, Proxy};
use common::*;
use crewsafe::internals::Rng;
use crewsafe::*;
use crewsafe_server::{ServerStore, TestFault};

const BATCH_PATH: &str = "/v1/records:batch";

/// Short timeouts and backoff, small batches (so that a sync is several requests).
fn fast_config(url: &str) -> SyncConfig {
    let mut c = common::net::config(url);
    c.backoff_base_ms = 40;
    c.backoff_max_ms = 300;
    // Generous enough that a loaded machine does not add timeouts of its own.
    c.connect_timeout_ms = 2_000;
    c.request_timeout_ms = 5_000;
    c.max_batch_records = 3;
    c
}

/// One record the phone queued.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    kind: RecordKind,
    parent: Option<String>,
    /// Syncs started before it was queued.
    round: usize,
    /// Rejected for good by the server (test fault `reject_id`).
    poison: bool,
}

impl Entry {
    fn sos_lane(&self) -> bool {
        self.kind != RecordKind::IncidentReport
    }
}

/// Totals of the sync reports.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    syncs: usize,
    will_retry: usize,
    deferred: usize,
    accepted: u64,
    duplicates: u64,
    wedged: u64,
}

/// A server, the proxy in front of it, and a store syncing through the proxy.
struct Env {
    server: Server,
    proxy: Proxy,
    t: TestStore,
    ledger: Vec<Entry>,
    /// Server record count after each sync settled (index k: after sync k+1).
    windows: Vec<usize>,
    totals: Totals,
    active_sos: Vec<String>,
    started: Instant,
}

impl Env {
    fn new(cfg: impl FnOnce(&mut SyncConfig)) -> Env {
        let server = Server::start();
        let proxy = Proxy::start(server.srv().addr());
        proxy.only_requests_to(Some(BATCH_PATH));
        let t = TestStore::new();
        let mut c = fast_config(&proxy.url());
        cfg(&mut c);
        t.store
            .configure_sync(c, Tokens::new(&server.token, &server.token))
            .unwrap();
        Env {
            server,
            proxy,
            t,
            ledger: vec![],
            windows: vec![],
            totals: Totals::default(),
            active_sos: vec![],
            started: Instant::now(),
        }
    }

    fn store(&self) -> &CrewStore {
        &self.t.store
    }

    fn note(&mut self, id: String, kind: RecordKind, parent: Option<String>, poison: bool) {
        if poison {
            self.server.srv().faults().reject_id(&id);
        }
        self.ledger.push(Entry {
            id,
            kind,
            parent,
            round: self.totals.syncs,
            poison,
        });
    }

    fn raise_sos(&mut self, poison: bool) -> String {
        let id = self
            .store()
            .raise_sos(crew(), Some(fix()), Some("help".into()))
            .unwrap()
            .id;
        self.note(id.clone(), RecordKind::Sos, None, poison);
        if !poison {
            // A poisoned SOS never reaches the server, so its follow-ups could not either.
            self.active_sos.push(id.clone());
        }
        id
    }

    fn add_location(&mut self, sos: &str, poison: bool) -> String {
        let id = self.store().add_sos_location(sos.into(), fix()).unwrap().id;
        self.note(
            id.clone(),
            RecordKind::SosLocation,
            Some(sos.into()),
            poison,
        );
        id
    }

    fn cancel(&mut self, sos: &str) -> String {
        let id = self
            .store()
            .cancel_sos(sos.into(), CancelReason::ThreatOver, None)
            .unwrap()
            .id;
        self.active_sos.retain(|s| s != sos);
        self.note(id.clone(), RecordKind::SosCancel, Some(sos.into()), false);
        id
    }

    fn report(&mut self, poison: bool) -> String {
        let d = self
            .store()
            .create_draft(crew(), complete_fields())
            .unwrap();
        let id = self.store().finalize_draft(d.id, 1).unwrap().id;
        self.note(id.clone(), RecordKind::IncidentReport, None, poison);
        id
    }

    /// The standard mix, interleaved so that reports are queued before SOS alarms: 4 reports
    /// (the last poisoned), 3 SOS alarms, 3 positions and a cancel. 7 SOS-lane records make
    /// 3 batches of at most 3; 4 reports make 2.
    fn mix(&mut self) {
        self.report(false);
        let a = self.raise_sos(false);
        self.add_location(&a, false);
        self.report(false);
        let b = self.raise_sos(false);
        self.add_location(&a, false);
        self.add_location(&b, false);
        self.report(false);
        self.cancel(&a);
        self.raise_sos(false);
        self.report(true);
    }

    fn server_count(&self) -> usize {
        ServerStore::open(self.server.db())
            .unwrap()
            .record_count()
            .unwrap()
    }

    /// One `sync_now`, then waits for the wire to settle and marks the server's window.
    fn sync(&mut self) -> SyncReport {
        self.totals.syncs += 1;
        let r = self
            .store()
            .sync_now()
            .unwrap_or_else(|e| panic!("sync {} failed: {e:?}", self.totals.syncs));
        self.settled(r)
    }

    /// Waits for the wire to settle after sync number `totals.syncs` returned `r`, marks the
    /// server's window and adds up the report.
    fn settled(&mut self, r: SyncReport) -> SyncReport {
        assert!(
            self.proxy.wait_idle(Duration::from_secs(30)),
            "the proxy did not settle after sync {}",
            self.totals.syncs
        );
        self.windows.push(self.server_count());
        let t = &mut self.totals;
        t.accepted += u64::from(r.accepted);
        t.duplicates += u64::from(r.duplicates);
        t.wedged += u64::from(r.wedged);
        match r.outcome {
            SyncOutcome::WillRetry { .. } => t.will_retry += 1,
            SyncOutcome::Deferred => t.deferred += 1,
            SyncOutcome::Complete => {}
        }
        r
    }

    /// Syncs until nothing is pending (only wedged records may be left), sleeping until the
    /// report's retry time between attempts.
    fn drive(&mut self, budget: Duration) {
        let end = Instant::now() + budget;
        loop {
            let r = self.sync();
            if r.pending_sos + r.pending_reports == 0 {
                assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
                return;
            }
            assert_ne!(r.outcome, SyncOutcome::Complete, "{r:?}");
            assert!(
                Instant::now() < end,
                "queue not drained within {budget:?}: {r:?}, proxy {:?}",
                self.proxy.stats()
            );
            sleep_until(r.next_attempt_at, Duration::from_secs(5));
        }
    }

    /// The checks every scenario ends with. Returns (delivered, wedged).
    fn verify(&self) -> (usize, usize) {
        let records = ServerStore::open(self.server.db())
            .unwrap()
            .records()
            .unwrap();
        let pos: HashMap<&str, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let deliverable: Vec<&Entry> = self.ledger.iter().filter(|e| !e.poison).collect();
        let poison: Vec<&Entry> = self.ledger.iter().filter(|e| e.poison).collect();

        // Exactly once on the server, nothing else there.
        for e in &deliverable {
            assert_eq!(
                self.server.count_of(&e.id),
                1,
                "{:?} {} on the server",
                e.kind,
                e.id
            );
        }
        for e in &poison {
            assert_eq!(self.server.count_of(&e.id), 0, "poison {} stored", e.id);
        }
        assert_eq!(
            records.len(),
            deliverable.len(),
            "unexpected server records"
        );
        // The phone learnt each delivery exactly once: as `accepted` or, after a lost
        // answer, as `duplicate`.
        assert_eq!(
            self.totals.accepted + self.totals.duplicates,
            deliverable.len() as u64,
            "{:?}",
            self.totals
        );
        assert_eq!(self.totals.wedged, poison.len() as u64, "{:?}", self.totals);

        // Delivered / wedged on the phone.
        let phone: HashMap<String, QueueEntry> = self
            .store()
            .list_records()
            .unwrap()
            .into_iter()
            .map(|q| (q.id.clone(), q))
            .collect();
        for e in &deliverable {
            assert_eq!(phone[&e.id].state, SyncState::Delivered, "{e:?}");
        }
        for e in &poison {
            let q = &phone[&e.id];
            assert_eq!(q.state, SyncState::Wedged, "{e:?}");
            assert!(
                q.wedged_reason.as_deref().unwrap_or("").contains("poison"),
                "{q:?}"
            );
        }
        let counts = self.store().pending_counts().unwrap();
        assert_eq!(
            (counts.sos, counts.reports, counts.wedged),
            (0, 0, poison.len() as u64)
        );

        // Follow-ups after their SOS.
        for e in &deliverable {
            if let Some(parent) = &e.parent {
                assert!(pos[parent.as_str()] < pos[e.id.as_str()], "{e:?}");
            }
        }

        // SOS never held behind reports: a report received during sync k comes after every
        // SOS-lane record queued before sync k began.
        let window_of = |p: usize| {
            self.windows
                .iter()
                .position(|&count| p < count)
                .map(|k| k + 1)
                .expect("record outside every window")
        };
        for r in deliverable.iter().filter(|e| !e.sos_lane()) {
            let p = pos[r.id.as_str()];
            let k = window_of(p);
            for s in deliverable.iter().filter(|e| e.sos_lane() && e.round < k) {
                assert!(
                    pos[s.id.as_str()] < p,
                    "report {} (received at {p} during sync {k}) before {:?} {} (queued \
                     before sync {}, received at {})",
                    r.id,
                    s.kind,
                    s.id,
                    s.round + 1,
                    pos[s.id.as_str()]
                );
            }
        }
        (deliverable.len(), poison.len())
    }

    /// Verifies and prints a one-line summary.
    fn finish(&self, scenario: &str, faults: &str) {
        let (delivered, wedged) = self.verify();
        let s = self.proxy.stats();
        eprintln!(
            "wire_faults {scenario}: {delivered} delivered once, {wedged} wedged; faults {faults}; \
             {} syncs ({} will-retry, {} deferred), {} duplicates answered; proxy {} conns \
             {} requests fired {:?}; {:.1}s",
            self.totals.syncs,
            self.totals.will_retry,
            self.totals.deferred,
            self.totals.duplicates,
            s.connections,
            s.requests,
            s.fired,
            self.started.elapsed().as_secs_f64()
        );
    }
}

fn sleep_until(next: Option<SystemTime>, cap: Duration) {
    let d = next
        .and_then(|t| t.duration_since(SystemTime::now()).ok())
        .unwrap_or(Duration::from_millis(5));
    std::thread::sleep(d.min(cap));
}

fn fired(p: &Proxy, name: &str) -> u64 {
    p.stats().fired.get(name).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The proxy itself, against a byte-counting stub server
// ---------------------------------------------------------------------------------------

/// A keep-alive HTTP/1.1 stub: answers every complete request (head + Content-Length) with
/// `response`, and records the bytes each connection delivered.
struct Stub {
    addr: std::net::SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

fn stub(response: &'static [u8]) -> Stub {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = received.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let rec = rec.clone();
            std::thread::spawn(move || {
                let (mut buf, mut total, mut pending) = (vec![0u8; 65536], 0usize, Vec::new());
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    total += n;
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                        let cl: usize = head
                            .split("\r\n")
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if pending.len() < end + 4 + cl {
                            break;
                        }
                        pending.drain(..end + 4 + cl);
                        if conn.write_all(response).is_err() {
                            break;
                        }
                    }
                }
                rec.lock().unwrap().push(total);
            });
        }
    });
    Stub { addr, received }
}

impl Stub {
    /// Bytes delivered by the connections closed so far, waiting for `n` of them.
    fn closed(&self, n: usize) -> Vec<usize> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.received.lock().unwrap().clone();
            if r.len() >= n || Instant::now() > end {
                return r;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const STUB_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 24\r\n\r\n{\"results\":[],\"pad\":12}";

fn raw_request(path: &str, body: usize) -> Vec<u8> {
    let mut r =
        format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {body}\r\n\r\n")
            .into_bytes();
    r.extend(vec![b'x'; body]);
    r
}

/// Sends one request over a fresh connection; returns the answer bytes received before the
/// connection ended (or `want` bytes arrived) and the time it took.
fn exchange(proxy: &Proxy, req: &[u8], want: usize) -> (Vec<u8>, Duration) {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(req);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, t.elapsed())
}

#[test]
fn proxy_faults_do_what_they_say() {
    let st = stub(STUB_RESPONSE);
    let p = Proxy::start(st.addr);
    let full = STUB_RESPONSE.len();
    let req = raw_request(BATCH_PATH, 1_000);
    let mut conns = 0;
    let mut closed = |p: &Proxy| {
        conns += 1;
        p.kill_all();
        st.closed(conns)[conns - 1]
    };

    // Pass-through.
    let (got, _) = exchange(&p, &req, full);
    assert_eq!(got, STUB_RESPONSE);
    assert_eq!(closed(&p), req.len());

    // Reset mid-request: exactly `after` bytes reach the server, never the whole request.
    for after in [0usize, 1, 50, 999, usize::MAX] {
        p.once(Fault::ResetMidRequest { after });
        let (got, _) = exchange(&p, &req, full);
        assert!(got.is_empty(), "{after}");
        assert_eq!(closed(&p), after.min(req.len() - 1), "{after}");
    }

    // Reset mid-response: exactly `after` bytes reach the client; the server had it all.
    for after in [0usize, 1, 30, full - 1] {
        p.once(Fault::ResetMidResponse { after });
        let (got, _) = exchange(&p, &req, full);
        assert_eq!(got, STUB_RESPONSE[..after], "{after}");
        assert_eq!(closed(&p), req.len());
    }
    // Beyond the end of the answer: nothing happens.
    p.once(Fault::ResetMidResponse { after: full + 10 });
    assert_eq!(exchange(&p, &req, full).0, STUB_RESPONSE);
    assert_eq!(closed(&p), req.len());

    // Cut after the request: the server has it all, the client gets nothing.
    p.once(Fault::CutAfterRequest);
    assert!(exchange(&p, &req, full).0.is_empty());
    assert_eq!(closed(&p), req.len());

    // A one-shot `Down`: nothing forwarded.
    p.once(Fault::Down);
    assert!(exchange(&p, &req, full).0.is_empty());
    assert_eq!(closed(&p), 0);

    // One-shots wait for a matching request; other requests pass.
    p.only_requests_to(Some(BATCH_PATH));
    p.once(Fault::CutAfterRequest);
    let other = raw_request("/v1/sos:status", 10);
    assert_eq!(exchange(&p, &other, full).0, STUB_RESPONSE);
    assert_eq!(closed(&p), other.len());
    assert_eq!(p.pending_once(), 1);
    assert!(exchange(&p, &req, full).0.is_empty());
    assert_eq!(closed(&p), req.len());

    // Latency per chunk, both ways.
    p.once(Fault::Latency(Duration::from_millis(150)));
    let (got, took) = exchange(&p, &req, full);
    assert_eq!(got, STUB_RESPONSE);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    closed(&p);

    // Bandwidth: 10 kB at 20 kB/s takes about half a second.
    p.always(Fault::Bandwidth(20_000));
    let big = raw_request(BATCH_PATH, 10_000);
    let (got, took) = exchange(&p, &big, full);
    assert_eq!(got, STUB_RESPONSE);
    assert!(took >= Duration::from_millis(450), "{took:?}");
    p.clear();
    closed(&p);

    // A client that gives up while its request is delayed: the request still reaches the
    // server, and `wait_idle` returns only once the server answered.
    p.once(Fault::Latency(Duration::from_millis(300)));
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(p.addr()).unwrap();
        s.write_all(&req).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.wait_idle(Duration::from_secs(5)));
    conns += 1;
    assert_eq!(st.closed(conns)[conns - 1], req.len());

    // Down: refused; up: served again on the same port.
    p.down();
    let refused = std::net::TcpStream::connect(p.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    p.up();
    assert_eq!(exchange(&p, &req, full).0, STUB_RESPONSE);

    let s = p.stats();
    eprintln!("wire_faults proxy self-test: {s:?}");
    assert_eq!(s.fired.get("reset_mid_request"), Some(&5));
    assert_eq!(s.fired.get("reset_mid_response"), Some(&4));
    assert_eq!(s.fired.get("cut_after_request"), Some(&2));
    assert_eq!(s.fired.get("down"), Some(&1));
}

// ---------------------------------------------------------------------------------------
// Proxy faults
// ---------------------------------------------------------------------------------------

#[test]
fn latency_on_every_chunk() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.proxy.always(Fault::Latency(Duration::from_millis(40)));
    e.drive(Duration::from_secs(20));
    assert_eq!(e.totals.will_retry, 0, "latency alone is no failure");
    assert!(fired(&e.proxy, "latency") >= 5);
    e.finish("latency 40ms/chunk", "persistent latency");
}

#[test]
fn bandwidth_limit() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.mix();
    e.proxy.always(Fault::Bandwidth(16 * 1024));
    let t = Instant::now();
    e.drive(Duration::from_secs(20));
    assert_eq!(e.totals.will_retry, 0, "a slow link is no failure");
    assert!(fired(&e.proxy, "bandwidth") >= 8);
    assert!(t.elapsed() > Duration::from_millis(300), "throttled");
    e.finish("bandwidth 16 KiB/s", "persistent bandwidth limit");
}

#[test]
fn a_link_too_slow_for_a_whole_batch_gets_smaller_batches_through() {
    // At 6 KiB/s one batch of 20 SOS records takes longer than the 1 s request timeout (the
    // first sync times out, asserted below): resent whole, it would time out forever. Uploads
    // halve after a timeout or a slow answer until they fit; the records the server committed
    // from timed-out requests come back `duplicate`.
    let mut e = Env::new(|c| {
        c.max_batch_records = 1000;
        c.request_timeout_ms = 1_000;
    });
    for _ in 0..20 {
        e.raise_sos(false);
    }
    e.proxy.always(Fault::Bandwidth(6 * 1024));
    let r = e.sync();
    assert!(
        matches!(&r.outcome, SyncOutcome::WillRetry { reason } if reason.contains("timed out")),
        "{r:?}"
    );
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    e.drive(Duration::from_secs(40));
    assert!(
        e.server.srv().batch_requests() >= 4,
        "the 20 records went in smaller batches"
    );
    e.finish(
        "link too slow for a whole batch",
        "bandwidth 6 KiB/s, 1 s request timeout",
    );
}

#[test]
fn latency_beyond_the_request_timeout() {
    // The client gives up; the proxy still delivers the request late, the server commits,
    // and the resend is answered `duplicate`.
    let mut e = Env::new(|c| c.request_timeout_ms = 500);
    e.mix();
    e.proxy.once(Fault::Latency(Duration::from_millis(900)));
    let r = e.sync();
    assert!(
        matches!(&r.outcome, SyncOutcome::WillRetry { reason } if reason.contains("timed out")),
        "{r:?}"
    );
    assert_eq!(e.server_count(), 3, "the late request was committed");
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    e.drive(Duration::from_secs(20));
    assert!(e.totals.duplicates >= 3, "{:?}", e.totals);
    e.finish(
        "latency beyond request timeout",
        "1 timeout with late commit",
    );
}

#[test]
fn sos_raised_during_a_slow_report_upload_overtakes_the_remaining_reports() {
    // A slow link and a long report backlog: 12 reports in batches of 2 take over a second.
    // Before the fix in `drain_lane`, the SOS waited for the next sync.
    let mut e = Env::new(|c| c.max_batch_records = 2);
    for _ in 0..12 {
        e.report(false);
    }
    e.proxy.always(Fault::Latency(Duration::from_millis(100)));
    // Sync 1 runs on a worker thread; the crew raises an SOS while it uploads reports.
    e.totals.syncs += 1;
    let store = e.t.store.clone();
    let sync = std::thread::spawn(move || store.sync_now().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.server_count() < 2 {
        assert!(Instant::now() < deadline, "no report arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    let before = e.server_count();
    let sos = e.raise_sos(false);
    let r = sync.join().unwrap();
    e.settled(r);
    let order = e.server.all_ids();
    let at = order
        .iter()
        .position(|id| *id == sos)
        .expect("SOS delivered by sync 1");
    // At most the report batch already on the wire (2 records) may land before it.
    assert!(
        at <= before + 2,
        "SOS raised after {before} reports arrived was received at {at} of {}: held behind \
         the remaining reports",
        order.len()
    );
    e.drive(Duration::from_secs(20));
    e.finish(
        "SOS during slow report upload",
        "persistent latency 100ms/chunk, SOS raised mid-sync",
    );
}

#[test]
fn reset_mid_request_at_many_offsets() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.mix();
    // Inside the request line, inside the headers, at the body start, inside the body, and
    // beyond the end (capped at the last byte: the request never completes).
    let offsets = [0usize, 1, 20, 150, 260, 700, 2_000, 5_000, usize::MAX];
    for &after in &offsets {
        e.proxy.once(Fault::ResetMidRequest { after });
    }
    e.drive(Duration::from_secs(30));
    assert_eq!(fired(&e.proxy, "reset_mid_request"), offsets.len() as u64);
    assert_eq!(e.totals.will_retry, offsets.len(), "{:?}", e.totals);
    assert_eq!(e.totals.duplicates, 0, "a broken upload is never committed");
    e.finish("reset mid-request", &format!("{} resets", offsets.len()));
}

#[test]
fn reset_mid_response_at_many_offsets() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.mix();
    // Answers are about 200 bytes and more: every offset cuts inside one (status line,
    // headers, body).
    let offsets = [0usize, 1, 12, 40, 90, 130, 170];
    for &after in &offsets {
        e.proxy.once(Fault::ResetMidResponse { after });
    }
    e.drive(Duration::from_secs(30));
    assert_eq!(fired(&e.proxy, "reset_mid_response"), offsets.len() as u64);
    assert_eq!(e.totals.will_retry, offsets.len(), "{:?}", e.totals);
    // Each cut answer was for a committed batch: the resend that is finally answered says
    // `duplicate` (at least for the first batch, 3 records).
    assert!(e.totals.duplicates >= 3, "{:?}", e.totals);
    e.finish("reset mid-response", &format!("{} resets", offsets.len()));
}

#[test]
fn cut_after_the_request_was_sent() {
    let mut e = Env::new(|_| {});
    e.mix();
    for _ in 0..4 {
        e.proxy.once(Fault::CutAfterRequest);
    }
    e.drive(Duration::from_secs(20));
    assert_eq!(fired(&e.proxy, "cut_after_request"), 4);
    assert!(e.totals.duplicates >= 3, "{:?}", e.totals);
    e.finish("cut after request", "4 cuts");
}

#[test]
fn proxy_down_then_up() {
    let mut e = Env::new(|_| {});
    e.mix();
    // Down: connections refused.
    e.proxy.down();
    let r = e.sync();
    assert!(
        matches!(&r.outcome, SyncOutcome::WillRetry { reason } if reason.contains("connect")),
        "{r:?}"
    );
    // Still down; more work is queued offline, an SOS among it.
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    let r = e.sync();
    assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
    e.report(false);
    let late = e.raise_sos(false);
    assert_eq!(e.server_count(), 0);
    e.proxy.up();
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    e.drive(Duration::from_secs(20));
    assert_eq!(e.server.count_of(&late), 1);

    // Down and up again between two syncs: the client's pooled connection is dead.
    e.mix();
    e.proxy.down();
    e.proxy.up();
    e.drive(Duration::from_secs(20));
    // Requests closed before being forwarded.
    e.mix();
    e.proxy.once(Fault::Down);
    e.proxy.once(Fault::Down);
    e.drive(Duration::from_secs(20));
    assert_eq!(fired(&e.proxy, "down"), 2);
    assert_eq!(e.proxy.stats().down_periods, 2);
    e.finish(
        "proxy down then up",
        "2 down periods (refused), 2 requests closed unforwarded",
    );
}

#[test]
fn server_down_then_up_behind_the_proxy() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.server.stop();
    let r = e.sync();
    assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
    assert!(e.proxy.stats().upstream_unreachable >= 1);
    e.raise_sos(false);
    e.server.restart();
    // A restarted server forgets its test faults: poison again.
    for p in e.ledger.iter().filter(|p| p.poison) {
        e.server.srv().faults().reject_id(&p.id);
    }
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    e.drive(Duration::from_secs(20));
    e.finish("server down then up", "1 server outage");
}

// ---------------------------------------------------------------------------------------
// Server faults, through the proxy
// ---------------------------------------------------------------------------------------

#[test]
fn server_5xx() {
    let mut e = Env::new(|_| {});
    e.mix();
    let codes = [500u16, 502, 503, 504, 500];
    e.server
        .srv()
        .faults()
        .push_all(codes.iter().map(|&code| TestFault::Status {
            code,
            retry_after_secs: None,
        }));
    e.drive(Duration::from_secs(20));
    assert_eq!(e.totals.will_retry, codes.len());
    assert!(e.server.srv().faults().pending().is_empty());
    e.finish("server 5xx", "500, 502, 503, 504, 500");
}

#[test]
fn server_429_and_503_with_retry_after() {
    let mut e = Env::new(|_| {});
    e.mix();
    // 429 on the first SOS batch: every lane waits for the server's time.
    e.server.srv().faults().push(TestFault::Status {
        code: 429,
        retry_after_secs: Some(1),
    });
    let start = SystemTime::now();
    let r = e.sync();
    let next = r.next_attempt_at.expect("a retry time");
    assert!(
        next >= start + Duration::from_millis(950),
        "Retry-After honoured"
    );
    let requests = e.server.srv().batch_requests();
    let r2 = e.sync();
    assert_eq!((r2.sent, r2.outcome), (0, SyncOutcome::Deferred));
    assert_eq!(e.server.srv().batch_requests(), requests, "nothing sent");
    sleep_until(Some(next), Duration::from_secs(5));
    e.drive(Duration::from_secs(20));

    // 503 on the first report batch: the report lane waits, but an SOS raised meanwhile is
    // delivered at once, not held behind the reports.
    e.mix();
    let sos_batches = 3; // 7 SOS-lane records in batches of 3
    let mut faults = vec![TestFault::Delay { ms: 0 }; sos_batches];
    faults.push(TestFault::Status {
        code: 503,
        retry_after_secs: Some(1),
    });
    e.server.srv().faults().push_all(faults);
    let r = e.sync();
    assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
    assert_eq!(r.pending_sos, 0, "{r:?}");
    let sos = e.raise_sos(false);
    let loc = e.add_location(&sos, false);
    let r = e.sync();
    assert_eq!((r.accepted, r.outcome.clone()), (2, SyncOutcome::Deferred));
    assert_eq!((e.server.count_of(&sos), e.server.count_of(&loc)), (1, 1));
    assert!(r.pending_reports > 0, "reports still held: {r:?}");
    sleep_until(r.next_attempt_at, Duration::from_secs(5));
    e.drive(Duration::from_secs(20));
    e.finish(
        "429/503 Retry-After",
        "429 RA=1 on SOS lane, 503 RA=1 on report lane",
    );
}

#[test]
fn lost_answers_after_commit() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.server.srv().faults().push_all([
        TestFault::DropAfterCommit,
        TestFault::TruncateAfterCommit,
        TestFault::DropAfterCommit,
        TestFault::Delay { ms: 0 },
        TestFault::Delay { ms: 0 },
        TestFault::TruncateAfterCommit,
    ]);
    e.drive(Duration::from_secs(20));
    assert!(e.totals.duplicates >= 3, "{:?}", e.totals);
    e.finish("lost answer after commit", "2 drops, 2 truncations");
}

#[test]
fn partial_batches() {
    let mut e = Env::new(|_| {});
    e.mix();
    e.mix();
    e.server.srv().faults().push_all([
        TestFault::Partial { accept_first: 1 },
        TestFault::Partial { accept_first: 0 },
        TestFault::Partial { accept_first: 2 },
        TestFault::Partial { accept_first: 1 },
        TestFault::Partial { accept_first: 0 },
    ]);
    e.drive(Duration::from_secs(20));
    // Answers for nothing are a retryable failure; partial answers are not.
    assert_eq!(e.totals.will_retry, 2, "{:?}", e.totals);
    e.finish("partial batch", "partial 1, 0, 2, 1, 0");
}

#[test]
fn poison_records() {
    let mut e = Env::new(|_| {});
    // A poisoned report, position, SOS without follow-ups, and a poisoned record in the same
    // batch as good ones.
    e.mix();
    let a = e.raise_sos(false);
    e.add_location(&a, true);
    e.add_location(&a, false);
    e.raise_sos(true);
    e.report(true);
    e.report(false);
    e.drive(Duration::from_secs(20));
    assert_eq!(e.totals.wedged, 4);
    e.finish("poison records", "4 poisoned records");
}

// ---------------------------------------------------------------------------------------
// Chaos
// ---------------------------------------------------------------------------------------

#[test]
fn chaos() {
    let long = std::env::var("CREWSAFE_LONG").is_ok_and(|v| v == "1");
    let seed = std::env::var("CREWSAFE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Rng::clock_seed);
    let (rounds, budget) = if long {
        (1_000usize, Duration::from_secs(600))
    } else {
        (60, Duration::from_secs(20))
    };
    eprintln!("wire_faults chaos: seed {seed} (replay with CREWSAFE_SEED={seed}), long={long}");
    let mut rng = Rng::new(seed);
    let batch = 1 + rng.below(5) as u32;
    let timeout_ms = 1_500;
    let mut e = Env::new(|c| {
        c.max_batch_records = batch;
        c.request_timeout_ms = timeout_ms;
        c.backoff_base_ms = 20;
        c.backoff_max_ms = 200;
    });
    // One-shot faults may hit any request, the SOS status query included.
    e.proxy.only_requests_to(None);
    let mut injected: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut server_pushed = 0u64;
    let mut persistent_rounds = 0;
    let start = Instant::now();
    let mut round = 0;
    while round < rounds && start.elapsed() < budget {
        round += 1;
        if long && round % 200 == 0 {
            eprintln!(
                "wire_faults chaos: round {round}, {} records, {:.0}s",
                e.ledger.len(),
                start.elapsed().as_secs_f64()
            );
        }
        // New work between syncs.
        for _ in 0..rng.below(4) {
            match rng.below(10) {
                0..=2 => {
                    e.raise_sos(false);
                }
                3..=4 if !e.active_sos.is_empty() => {
                    let s = e.active_sos[rng.below(e.active_sos.len() as u64) as usize].clone();
                    e.add_location(&s, rng.chance(4));
                }
                5 if !e.active_sos.is_empty() => {
                    let s = e.active_sos[rng.below(e.active_sos.len() as u64) as usize].clone();
                    e.cancel(&s);
                }
                _ => {
                    e.report(rng.chance(4));
                }
            }
        }
        // Persistent shaping comes and goes.
        if persistent_rounds > 0 {
            persistent_rounds -= 1;
            if persistent_rounds == 0 {
                e.proxy.clear();
            }
        } else if rng.chance(8) {
            persistent_rounds = 1 + rng.below(4);
            if rng.chance(50) {
                e.proxy
                    .always(Fault::Latency(Duration::from_millis(5 + rng.below(40))));
                *injected.entry("proxy persistent latency").or_default() += 1;
            } else {
                e.proxy
                    .always(Fault::Bandwidth(20_000 + rng.below(100_000)));
                *injected.entry("proxy persistent bandwidth").or_default() += 1;
            }
        }
        // Faults for this round.
        let mut down = false;
        for _ in 0..rng.below(4) {
            let (name, f): (&'static str, Option<Fault>) = match rng.below(19) {
                0 => (
                    "proxy latency",
                    Some(Fault::Latency(Duration::from_millis(10 + rng.below(300)))),
                ),
                1 => (
                    "proxy bandwidth",
                    Some(Fault::Bandwidth(4_000 + rng.below(40_000))),
                ),
                2 | 3 => (
                    "proxy reset mid-request",
                    Some(Fault::ResetMidRequest {
                        after: rng.below(4_000) as usize,
                    }),
                ),
                4 | 5 => (
                    "proxy reset mid-response",
                    Some(Fault::ResetMidResponse {
                        after: rng.below(400) as usize,
                    }),
                ),
                6 => ("proxy cut after request", Some(Fault::CutAfterRequest)),
                7 => ("proxy request closed (down)", Some(Fault::Down)),
                8 => (
                    "proxy latency beyond timeout",
                    Some(Fault::Latency(Duration::from_millis(
                        timeout_ms + 100 + rng.below(300),
                    ))),
                ),
                9 => {
                    down = true;
                    ("proxy down (refused) for a sync", None)
                }
                10..=11 => {
                    let code = [500u16, 502, 503, 504][rng.below(4) as usize];
                    e.server.srv().faults().push(TestFault::Status {
                        code,
                        retry_after_secs: None,
                    });
                    ("server 5xx", None)
                }
                12 => {
                    if rng.chance(30) {
                        let code = if rng.chance(50) { 429 } else { 503 };
                        e.server.srv().faults().push(TestFault::Status {
                            code,
                            retry_after_secs: Some(1),
                        });
                        ("server 429/503 Retry-After", None)
                    } else {
                        e.server
                            .srv()
                            .faults()
                            .push(TestFault::Delay { ms: rng.below(200) });
                        ("server delay", None)
                    }
                }
                13 | 14 => {
                    e.server.srv().faults().push(TestFault::DropAfterCommit);
                    ("server drop after commit", None)
                }
                15 => {
                    e.server.srv().faults().push(TestFault::TruncateAfterCommit);
                    ("server truncate after commit", None)
                }
                16 | 17 => {
                    e.server.srv().faults().push(TestFault::Partial {
                        accept_first: rng.below(3) as usize,
                    });
                    ("server partial batch", None)
                }
                _ => {
                    e.proxy.kill_all();
                    ("proxy kill pooled connections", None)
                }
            };
            if name.starts_with("server") {
                server_pushed += 1;
            }
            if let Some(f) = f {
                e.proxy.once(f);
            }
            *injected.entry(name).or_default() += 1;
        }
        if down {
            e.proxy.down();
        }
        let r = e.sync();
        if down {
            e.proxy.up();
        }
        if r.pending_sos + r.pending_reports > 0 {
            sleep_until(r.next_attempt_at, Duration::from_millis(1_200));
        }
    }
    // Calm: leftover one-shots go, poison stays, and the queue drains.
    let server_left = e.server.srv().faults().pending().len() as u64;
    let proxy_left = e.proxy.pending_once() as u64;
    e.proxy.clear();
    e.server.srv().faults().clear();
    for p in e.ledger.iter().filter(|p| p.poison) {
        e.server.srv().faults().reject_id(&p.id);
    }
    e.drive(Duration::from_secs(60));
    let injected_total: u64 = injected.values().sum();
    let stats = e.proxy.stats();
    e.finish(
        "chaos",
        &format!(
            "seed {seed}, {round} rounds, {} records, {injected_total} injected {injected:?}, \
             server one-shots consumed {} of {server_pushed}, proxy one-shots left unused \
             {proxy_left}, proxy fired total {}",
            e.ledger.len(),
            server_pushed - server_left,
            stats.total_fired(),
        ),
    );
    assert!(
        injected_total >= 20,
        "too few faults tried: {injected_total}"
    );
    let kinds: HashSet<&str> = injected.keys().copied().collect();
    if round >= 60 {
        assert!(kinds.len() >= 10, "too few fault kinds: {kinds:?}");
    }
}
