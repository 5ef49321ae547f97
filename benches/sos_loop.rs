//! The SOS loop on loopback, against the reference server, in one run:
//!
//! - Dispatcher click → phone listener: the time from sending a dispatcher's acknowledge to
//!   the phone's record listener hearing `Acknowledged`, with no app-initiated sync (the
//!   status watch brings it), over 200 alarms (each then resolved, so one alarm is watched at
//!   a time). Target p99 ≤ 1 s.
//! - `raise_sos` return → the alarm on the dispatcher's event stream (`GET
//!   /v1/dispatch/events`, what the console reads) while online: one batch, one commit, one
//!   push. Target p99 ≤ 250 ms.
//! - Requests per hour per phone while one SOS stays open and nothing changes, counted on the
//!   wire by a forwarding proxy, with the watch's wait at 5 s (to count many in a short run)
//!   and the same count offline (expected: none).
//!
//! The server's database and the phone's store live on the real disk: every delivery is an
//! fsync on both sides, so the fsync latency of the disk is printed first.
//! `CREWSAFE_BENCH_QUICK=1` runs a short smoke version.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crewsafe::internals::fix;
use crewsafe::*;
use crewsafe_server::{RunningServer, ServerConfig};

const DEVICE: &str = "bench-loop-device";

struct Token(String);

impl TokenProvider for Token {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
}

struct Changes(Mutex<Sender<RecordChange>>);

impl RecordListener for Changes {
    fn on_record_changed(&self, c: RecordChange) -> Result<(), HostError> {
        let _ = self.0.lock().unwrap().send(c);
        Ok(())
    }
}

fn crew() -> CrewIdentity {
    CrewIdentity {
        device_id: DEVICE.into(),
        ..crewsafe::internals::crew()
    }
}

fn quick() -> bool {
    std::env::var_os("CREWSAFE_BENCH_QUICK").is_some()
}

/// Median time of writing 4 KiB to a file in `dir` and fsyncing it, over 15 tries.
fn fsync_ms(dir: &Path) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            f.write_all(&[7u8; 4096]).unwrap();
            let t = Instant::now();
            f.sync_all().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// p50 and p99 of `samples`, in ms.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.99))
}

/// A plain HTTP/1.1 POST on loopback; returns the status.
fn post(base: &str, path: &str, token: &str, body: &str) -> u16 {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
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

/// The server, a phone online against it and the phone's record changes.
struct Setup {
    _dir: tempfile::TempDir,
    server: RunningServer,
    store: Arc<CrewStore>,
    dispatcher: String,
    changes: Receiver<RecordChange>,
    _sub: Arc<Subscription>,
}

fn setup(url_of: impl FnOnce(&RunningServer) -> String, watch_seconds: u32) -> Setup {
    // Under the target dir: on the real disk, not tmpfs.
    std::fs::create_dir_all("target/bench-tmp").unwrap();
    let dir = tempfile::tempdir_in("target/bench-tmp").unwrap();
    let db = dir.path().join("server.db");
    let token = crewsafe_server::enroll_device(&db, DEVICE).unwrap();
    let dispatcher = crewsafe_server::enroll_dispatcher(&db, "bench-dispatcher").unwrap();
    let server =
        crewsafe_server::start(ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap())).unwrap();
    let store = CrewStore::open(
        dir.path().join("phone.db").to_string_lossy().into(),
        generate_data_key(),
    )
    .unwrap();
    let mut config = SyncConfig::new(url_of(&server));
    config.status_watch_seconds = watch_seconds;
    store
        .configure_sync(config, Arc::new(Token(token)))
        .unwrap();
    let (tx, rx) = channel();
    let sub = store.subscribe_records(Arc::new(Changes(Mutex::new(tx))));
    store.set_online(true).unwrap();
    Setup {
        _dir: dir,
        server,
        store,
        dispatcher,
        changes: rx,
        _sub: sub,
    }
}

impl Setup {
    fn wait_for(&self, want: impl Fn(&RecordChange) -> bool) -> Instant {
        loop {
            let c = self
                .changes
                .recv_timeout(Duration::from_secs(20))
                .expect("a change within 20 s");
            if want(&c) {
                return Instant::now();
            }
        }
    }

    fn dispatch(&self, id: &str, action: &str, body: &str) {
        let status = post(
            &self.server.url(),
            &format!("/v1/dispatch/sos/{id}/{action}"),
            &self.dispatcher,
            body,
        );
        assert_eq!(status, 200, "{action}");
    }
}

/// Dispatcher click → phone listener, over `n` alarms.
fn click_to_phone(n: usize) -> Vec<Duration> {
    let s = setup(|srv| srv.url(), 50);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sos = s.store.raise_sos(crew(), Some(fix()), None).unwrap();
        s.wait_for(|c| c.id == sos.id && c.state == SyncState::Delivered);
        // The watch learns the delivered status at once, then waits on the server: the
        // dispatcher clicks some time later, as a person would.
        std::thread::sleep(Duration::from_millis(30));
        let clicked = Instant::now();
        s.dispatch(&sos.id, "acknowledge", r#"{"message":"on the way"}"#);
        let heard = s.wait_for(|c| {
            c.id == sos.id && c.dispatch_status == Some(DispatchStatus::Acknowledged)
        });
        samples.push(heard - clicked);
        s.dispatch(&sos.id, "resolve", "");
        s.wait_for(|c| c.id == sos.id && c.dispatch_status == Some(DispatchStatus::Resolved));
    }
    s.store.close().unwrap();
    samples
}

/// Reads the dispatcher event stream and sends each event's alarm id with its arrival time.
fn read_events(url: &str, token: &str, out: Sender<(String, Instant)>) {
    let host = url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&host).unwrap();
    write!(
        s,
        "GET /v1/dispatch/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(s);
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(data) = line.trim_end().strip_prefix("data:") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) {
                if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
                    if out.send((id.to_string(), Instant::now())).is_err() {
                        return;
                    }
                }
            }
        }
        line.clear();
    }
}

/// `raise_sos` return → the alarm on the event stream, over `n` alarms.
fn raise_to_console(n: usize) -> Vec<Duration> {
    let s = setup(|srv| srv.url(), 50);
    let (tx, rx) = channel();
    let (url, token) = (s.server.url(), s.dispatcher.clone());
    std::thread::spawn(move || read_events(&url, &token, tx));
    std::thread::sleep(Duration::from_millis(200));
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let sos = s.store.raise_sos(crew(), Some(fix()), None).unwrap();
        let raised = Instant::now();
        loop {
            let (id, at) = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the alarm on the event stream within 20 s");
            if id == sos.id {
                samples.push(at - raised);
                break;
            }
        }
        s.wait_for(|c| c.id == sos.id && c.state == SyncState::Delivered);
        s.dispatch(&sos.id, "resolve", "");
    }
    s.store.close().unwrap();
    samples
}

/// A forwarding proxy that counts the watch requests passing through it.
fn counting_proxy(upstream: String, watches: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(&upstream).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let watches = watches.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                let needle = b"POST /v1/sos:watch ";
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    let hits = buf[..n]
                        .windows(needle.len())
                        .filter(|w| w == needle)
                        .count();
                    watches.fetch_add(hits as u64, Ordering::SeqCst);
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    url
}

/// Watch requests per hour while one SOS stays open, online and then offline.
fn requests_per_hour(window: Duration) -> (f64, f64) {
    let watches = Arc::new(AtomicU64::new(0));
    let counter = watches.clone();
    let s = setup(
        move |srv| counting_proxy(srv.addr().to_string(), counter),
        5,
    );
    let sos = s.store.raise_sos(crew(), Some(fix()), None).unwrap();
    s.wait_for(|c| c.id == sos.id && c.state == SyncState::Delivered);
    std::thread::sleep(Duration::from_secs(1));
    let before = watches.load(Ordering::SeqCst);
    std::thread::sleep(window);
    let online = (watches.load(Ordering::SeqCst) - before) as f64 * 3600.0 / window.as_secs_f64();
    s.store.set_online(false).unwrap();
    // The request in flight when the phone went offline ends first.
    std::thread::sleep(Duration::from_secs(6));
    let before = watches.load(Ordering::SeqCst);
    std::thread::sleep(window);
    let offline = (watches.load(Ordering::SeqCst) - before) as f64 * 3600.0 / window.as_secs_f64();
    s.store.close().unwrap();
    (online, offline)
}

fn main() {
    let quick = quick();
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all("target/bench-tmp").unwrap();
    let probe = tempfile::tempdir_in("target/bench-tmp").unwrap();
    println!(
        "disk under the server and the phone: fsync after writing 4 KiB {:.2} ms (median of 15)",
        fsync_ms(probe.path())
    );
    let n = if quick { 20 } else { 200 };
    let (p50, p99) = percentiles(click_to_phone(n));
    println!(
        "dispatcher click -> phone listener, {n} acknowledgements: p50 {p50:.1} ms, p99 {p99:.1} ms \
         (target p99 <= 1000 ms)"
    );
    let (p50, p99) = percentiles(raise_to_console(n));
    println!(
        "raise_sos return -> alarm on the dispatcher event stream, {n} alarms: p50 {p50:.1} ms, \
         p99 {p99:.1} ms (target p99 <= 250 ms)"
    );
    let window = Duration::from_secs(if quick { 11 } else { 60 });
    let (online, offline) = requests_per_hour(window);
    println!(
        "watch requests per hour with one SOS open and nothing changing, wait 5 s: online {online:.0}, \
         offline {offline:.0} (about 3600 / wait online; at the default wait of 50 s: ~72 an hour)"
    );
}
