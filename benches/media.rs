//! Attachment benchmark, measured in one run on the real disk (under `target/`, not tmpfs):
//!
//! - Capture throughput: `add_attachment_file` of a 200 MB file (stream in, encrypt, hash,
//!   fsync, commit the row) against a plain copy of the same bytes (a read/write loop with a
//!   1 MiB buffer) followed by an fsync, interleaved, five rounds; the median ratio of the
//!   throughputs is the figure. Target >= 0.7x.
//! - Peak resident memory while capturing and while uploading a 500 MB file, each in a child
//!   process (this binary again) that opens the store, notes its `VmHWM` idle, then does the
//!   work and notes it again; the upload goes to the reference server on loopback (in the
//!   parent, so the server's memory is not counted). Target <= 32 MB above idle.
//! - SOS during a 200 MB upload on a link capped at 1 MB/s (a small forwarding proxy in this
//!   file; one cap shared by every connection, as one radio link is): the time from
//!   `raise_sos` returning until the server's database holds the alarm, sampled several times
//!   at random moments of the upload, with the phone online (the background worker uploads).
//!   The same time on the idle capped link is printed first as the baseline. Target <= 2 s.
//!
//! The disk's fsync latency is printed first: both sides of the capture ratio end in an fsync
//! of the whole file, so the ratio moves with the disk's write speed at the moment.
//! `CREWSAFE_BENCH_QUICK=1` runs a short smoke version (20 MB, 50 MB and 20 MB files);
//! `CREWSAFE_BENCH_ONLY=capture` (or `memory`, `sos`) runs one part.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fsync_ms, median, peak_rss_kib};
use crewsafe::internals::{complete_fields, fix, Rng};
use crewsafe::*;
use crewsafe_server::ServerConfig;

const DEVICE: &str = "bench-media-device";
const MB: usize = 1 << 20;
const CHILD: &str = "CREWSAFE_BENCH_MEDIA_CHILD";

struct Token(String);

impl TokenProvider for Token {
    fn token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
    fn refresh_token(&self) -> Result<String, HostError> {
        Ok(self.0.clone())
    }
}

fn crew() -> CrewIdentity {
    CrewIdentity {
        device_id: DEVICE.into(),
        ..crewsafe::internals::crew()
    }
}

/// A fresh folder under `target/bench-tmp` (the real disk).
fn disk_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("target/bench-tmp").unwrap();
    tempfile::tempdir_in("target/bench-tmp").unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Writes `n` pseudo-random bytes (incompressible, like a video) to `path`, fsynced.
fn write_source(path: &Path, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut f = File::create(path).unwrap();
    let mut buf = vec![0u8; MB];
    let mut left = n;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            w.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let take = left.min(MB);
        f.write_all(&buf[..take]).unwrap();
        left -= take;
    }
    f.sync_all().unwrap();
}

fn open_store(path: &Path, key: &[u8]) -> Arc<CrewStore> {
    CrewStore::open(path.to_string_lossy().into(), key.to_vec()).unwrap()
}

fn add_video(store: &CrewStore, draft: &str, src: &Path) -> Attachment {
    store
        .add_attachment_file(
            draft.into(),
            src.to_string_lossy().into(),
            AttachmentKind::Video,
            "video/mp4".into(),
            None,
        )
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Capture throughput

/// A plain copy of `src` to `dst` through a 1 MiB buffer, then an fsync of `dst`.
fn plain_copy(src: &Path, dst: &Path) -> Duration {
    let t = Instant::now();
    let mut from = File::open(src).unwrap();
    let mut to = File::create(dst).unwrap();
    let mut buf = vec![0u8; MB];
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).unwrap();
    }
    to.sync_all().unwrap();
    let took = t.elapsed();
    drop(to);
    std::fs::remove_file(dst).unwrap();
    took
}

fn capture_throughput(n: usize) {
    let dir = disk_dir();
    let src = dir.path().join("source.bin");
    write_source(&src, n, 1);
    let store = open_store(&dir.path().join("phone.db"), &generate_data_key());
    let draft = store.create_draft(crew(), complete_fields()).unwrap().id;
    let mb = n as f64 / MB as f64;
    let mut ratios = Vec::new();
    let rounds = 5;
    for round in 1..=rounds {
        let capture = || {
            let t = Instant::now();
            let a = add_video(&store, &draft, &src);
            let took = t.elapsed();
            assert_eq!(a.size, n as u64);
            store.remove_attachment(a.id).unwrap();
            took
        };
        // Interleaved, alternating which goes first.
        let (t_copy, t_capture) = if round % 2 == 1 {
            let c = plain_copy(&src, &dir.path().join("copy.bin"));
            (c, capture())
        } else {
            let a = capture();
            (plain_copy(&src, &dir.path().join("copy.bin")), a)
        };
        let ratio = t_copy.as_secs_f64() / t_capture.as_secs_f64();
        println!(
            "capture {mb:.0} MB, round {round}/{rounds}   add_attachment_file {:>6.2} s ({:>5.0} MB/s)   plain copy + fsync {:>6.2} s ({:>5.0} MB/s)   ratio {ratio:.2}x",
            t_capture.as_secs_f64(),
            mb / t_capture.as_secs_f64(),
            t_copy.as_secs_f64(),
            mb / t_copy.as_secs_f64(),
        );
        ratios.push(ratio);
    }
    let m = median(ratios);
    let verdict = if n < 200 * MB {
        "smoke run: the >= 0.7x target is judged on 200 MB"
    } else if m >= 0.7 {
        "meets target >= 0.7x"
    } else {
        "MISSES target >= 0.7x"
    };
    println!(
        "capture {mb:.0} MB: median throughput of add_attachment_file / plain copy + fsync over {rounds} rounds {m:.2}x   ({verdict})"
    );
    store.close().unwrap();
    cpu_costs(&src, n);
}

/// Where the capture's CPU time goes: SHA-256 and AES-256-GCM (64 KiB chunks) of the same
/// bytes in memory, one core, no I/O.
fn cpu_costs(src: &Path, n: usize) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let data = std::fs::read(src).unwrap();
    let mb = n as f64 / MB as f64;
    let t = Instant::now();
    std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &data));
    let sha = t.elapsed().as_secs_f64();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let mut buf = data;
    let t = Instant::now();
    for (i, chunk) in buf.chunks_mut(64 * 1024).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(b"bench"),
                chunk,
            )
            .unwrap();
        let _ = std::hint::black_box(tag);
    }
    let aes = t.elapsed().as_secs_f64();
    println!(
        "capture {mb:.0} MB, CPU alone (in memory, one core): SHA-256 {:.0} MB/s ({:.2} s), AES-256-GCM {:.0} MB/s ({:.2} s)",
        mb / sha,
        sha,
        mb / aes,
        aes
    );
}

// ---------------------------------------------------------------------------------------
// Peak RSS, in child processes

/// Runs this binary as a child in `mode` with `vars`; returns its idle and peak `VmHWM` (KiB).
fn run_child(mode: &str, vars: &[(&str, String)]) -> (u64, u64) {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD, mode);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{mode} child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("@@rss "))
        .expect("the child's figures");
    let mut it = line.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

fn print_rss(what: &str, idle: u64, peak: u64) {
    let above = peak.saturating_sub(idle) as f64 / 1024.0;
    println!(
        "peak RSS {what}: idle store {:.1} MB, peak {:.1} MB, {above:+.1} MB above idle   ({} target <= +32 MB)",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0,
        if above <= 32.0 { "meets" } else { "MISSES" }
    );
}

fn memory(n: usize) {
    let dir = disk_dir();
    let src = dir.path().join("source.bin");
    write_source(&src, n, 2);
    let db = dir.path().join("phone.db");
    let key = generate_data_key();
    let store = open_store(&db, &key);
    let draft = store.create_draft(crew(), complete_fields()).unwrap();
    store.close().unwrap();
    let common = [
        ("CREWSAFE_BENCH_PATH", db.to_string_lossy().into_owned()),
        ("CREWSAFE_BENCH_KEY", hex(&key)),
    ];
    let mb = n as f64 / MB as f64;

    let mut vars = common.to_vec();
    vars.push(("CREWSAFE_BENCH_DRAFT", draft.id.clone()));
    vars.push(("CREWSAFE_BENCH_SRC", src.to_string_lossy().into_owned()));
    let (idle, peak) = run_child("capture", &vars);
    print_rss(&format!("capturing {mb:.0} MB"), idle, peak);

    let store = open_store(&db, &key);
    let report = store.finalize_draft(draft.id, draft.revision).unwrap();
    assert_eq!(report.attachments.len(), 1);
    store.close().unwrap();
    let server_db = dir.path().join("server.db");
    let token = crewsafe_server::enroll_device(&server_db, DEVICE).unwrap();
    let server = crewsafe_server::start(ServerConfig::new(
        &server_db,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let mut vars = common.to_vec();
    vars.push(("CREWSAFE_BENCH_URL", server.url()));
    vars.push(("CREWSAFE_BENCH_TOKEN", token));
    let (idle, peak) = run_child("upload", &vars);
    server.shutdown();
    let store = open_store(&db, &key);
    let a = &store.list_attachments(report.id).unwrap()[0];
    assert_eq!(a.sync_state, SyncState::Delivered, "{a:?}");
    store.close().unwrap();
    print_rss(
        &format!("uploading {mb:.0} MB to the server on loopback"),
        idle,
        peak,
    );
}

/// The child of `memory`: opens the store, notes its peak RSS, captures or uploads, notes it
/// again.
fn child(mode: &str) {
    let var = |k: &str| std::env::var(k).unwrap();
    let store = open_store(
        Path::new(&var("CREWSAFE_BENCH_PATH")),
        &unhex(&var("CREWSAFE_BENCH_KEY")),
    );
    let idle = peak_rss_kib();
    match mode {
        "capture" => {
            add_video(
                &store,
                &var("CREWSAFE_BENCH_DRAFT"),
                Path::new(&var("CREWSAFE_BENCH_SRC")),
            );
        }
        "upload" => {
            store
                .configure_sync(
                    SyncConfig::new(var("CREWSAFE_BENCH_URL")),
                    Arc::new(Token(var("CREWSAFE_BENCH_TOKEN"))),
                )
                .unwrap();
            let started = Instant::now();
            loop {
                let r = store.sync_now().unwrap();
                if r.outcome == SyncOutcome::Complete && r.pending_attachments == 0 {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(600), "{r:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("@@rss {idle} {}", peak_rss_kib());
    store.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// SOS during an upload on a capped link

/// One radio link: a byte budget per direction shared by every connection.
struct Link {
    /// Bytes per second; 0 for no cap.
    rate: AtomicU64,
    up: Mutex<Instant>,
    down: Mutex<Instant>,
}

impl Link {
    /// Waits until `n` more bytes fit in this direction of the link.
    fn pace(&self, next_free: &Mutex<Instant>, n: usize) {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let until = {
            let mut next = next_free.lock().unwrap();
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *next
        };
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
    }
}

/// Copies `from` to `to` through `link` until either side ends.
fn pump(mut from: TcpStream, mut to: TcpStream, link: Arc<Link>, upward: bool) {
    // 8 KiB pieces: 8 ms each at 1 MB/s, so connections share the link finely.
    let mut buf = [0u8; 8 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        link.pace(if upward { &link.up } else { &link.down }, n);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// A forwarding proxy on loopback to `upstream` through `link`; returns its URL.
fn capped_proxy(upstream: std::net::SocketAddr, link: Arc<Link>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let l2 = link.clone();
            std::thread::spawn(move || pump(client, server, l2, true));
            let l3 = link.clone();
            std::thread::spawn(move || pump(s2, c2, l3, false));
        }
    });
    url
}

/// Raises an SOS and returns how long until the server's database holds it.
fn raise_and_wait(store: &CrewStore, server: &crewsafe_server::ServerStore) -> Duration {
    let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
    let raised = Instant::now();
    while server.count_of(&sos.id).unwrap() == 0 {
        assert!(
            raised.elapsed() < Duration::from_secs(60),
            "the SOS did not reach the server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    raised.elapsed()
}

fn sos_during_upload(n: usize, samples: usize) {
    let dir = disk_dir();
    let src = dir.path().join("source.bin");
    write_source(&src, n, 3);
    let server_db = dir.path().join("server.db");
    let token = crewsafe_server::enroll_device(&server_db, DEVICE).unwrap();
    let server = crewsafe_server::start(ServerConfig::new(
        &server_db,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let server_store = crewsafe_server::ServerStore::open(&server_db).unwrap();
    let cap = 1u64 << 20;
    let link = Arc::new(Link {
        rate: AtomicU64::new(cap),
        up: Mutex::new(Instant::now()),
        down: Mutex::new(Instant::now()),
    });
    let url = capped_proxy(server.addr(), link.clone());
    let store = open_store(&dir.path().join("phone.db"), &generate_data_key());
    let draft = store.create_draft(crew(), complete_fields()).unwrap();
    let video = add_video(&store, &draft.id, &src);
    store
        .configure_sync(SyncConfig::new(url), Arc::new(Token(token)))
        .unwrap();
    store.set_online(true).unwrap();
    // The baseline: the same link, idle.
    std::thread::sleep(Duration::from_millis(300));
    let idle = raise_and_wait(&store, &server_store);
    std::thread::sleep(Duration::from_millis(500));
    // Online, the worker sends the report and then the file.
    store.finalize_draft(draft.id, draft.revision).unwrap();
    let uploaded = || -> (u64, SyncState) {
        let a = store.list_attachments(video.report_id.clone()).unwrap();
        (a[0].uploaded_bytes, a[0].sync_state)
    };
    let started = Instant::now();
    while uploaded().0 == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the upload did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rng = Rng::new(Rng::clock_seed());
    let mut times = Vec::new();
    for _ in 0..samples {
        // A random moment within a chunk (chunks take about a second on this link).
        std::thread::sleep(Duration::from_millis(300 + rng.below(1700)));
        let (bytes, state) = uploaded();
        assert_ne!(
            state,
            SyncState::Delivered,
            "the upload ended before the SOS"
        );
        let took = raise_and_wait(&store, &server_store);
        println!(
            "SOS raised with {:.1} of {:.0} MB uploaded: on the server {:.0} ms after raise_sos returned",
            bytes as f64 / MB as f64,
            n as f64 / MB as f64,
            took.as_secs_f64() * 1e3
        );
        times.push(took);
    }
    let (bytes, state) = uploaded();
    assert_ne!(
        state,
        SyncState::Delivered,
        "the upload ended during the samples"
    );
    // Uncapped, the chunk in flight ends at once; closing stops the upload after it.
    link.rate.store(0, Ordering::Relaxed);
    let worst = times.iter().max().copied().unwrap_or_default();
    let mid = median(times.iter().map(Duration::as_secs_f64).collect());
    println!(
        "SOS during a {:.0} MB upload at 1 MB/s ({:.1} MB sent by then): raise_sos -> server, {samples} alarms, median {:.0} ms, worst {:.0} ms; idle link {:.0} ms; worst / idle {:.1}x   ({} target <= 2000 ms)",
        n as f64 / MB as f64,
        bytes as f64 / MB as f64,
        mid * 1e3,
        worst.as_secs_f64() * 1e3,
        idle.as_secs_f64() * 1e3,
        worst.as_secs_f64() / idle.as_secs_f64(),
        if worst <= Duration::from_secs(2) {
            "meets"
        } else {
            "MISSES"
        }
    );
    store.close().unwrap();
    server.shutdown();
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode);
    }
    let quick = std::env::var_os("CREWSAFE_BENCH_QUICK").is_some();
    let (capture_n, rss_n, sos_n, samples) = if quick {
        (20 * MB, 50 * MB, 20 * MB, 2)
    } else {
        (200 * MB, 500 * MB, 200 * MB, 8)
    };
    let probe = disk_dir();
    println!(
        "disk under the stores (target/bench-tmp): fsync after writing 4 KiB {:.2} ms, 1 MiB {:.2} ms (medians of 15)",
        fsync_ms(probe.path(), 4),
        fsync_ms(probe.path(), 1024),
    );
    drop(probe);
    // `CREWSAFE_BENCH_ONLY=capture` (or `memory`, `sos`) runs one part.
    let only = std::env::var("CREWSAFE_BENCH_ONLY").ok();
    let runs = |part: &str| only.is_none() || only.as_deref() == Some(part);
    if runs("capture") {
        capture_throughput(capture_n);
    }
    if runs("memory") {
        memory(rss_n);
    }
    if runs("sos") {
        sos_during_upload(sos_n, samples);
    }
}
