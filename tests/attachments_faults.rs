//! Attachments under faults, with real files, the real reference server and real kills:
//! kill -9 of the phone's process during uploads (many times: nothing lost, no orphan file,
//! never more counted as uploaded than the server holds, delivered only when the server has
//! the whole checked file); a 50 MB video through the fault proxy with 20 cuts at random
//! points of the byte stream (completes, at most 1.1x the file on the wire); a full disk
//! during capture (typed error, the draft and its other attachments intact, no partial
//! file); and how a long upload on a slow link reacts to `shutdown` and to going offline.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::*;
use common::proxy::{Fault, Proxy};
use common::*;
use crewsafe::internals::Rng;
use crewsafe::*;
use sha2::{Digest, Sha256};

const UNIT: u64 = 256 * 1024;

fn content(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn media_dir(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.media", db.display()))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn read_all(store: &CrewStore, id: &str) -> Vec<u8> {
    let r = store.open_attachment(id.into()).unwrap();
    let mut out = Vec::new();
    loop {
        let part = r.read(out.len() as u64, 4 << 20).unwrap();
        if part.is_empty() {
            break;
        }
        out.extend_from_slice(&part);
    }
    assert_eq!(out.len() as u64, r.size());
    out
}

fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What the server says it holds of an attachment (device token, straight to the server).
fn server_holds(
    http: &reqwest::blocking::Client,
    server: &Server,
    report: &str,
    attachment: &str,
) -> (u64, bool) {
    let body = http
        .get(format!(
            "{}/v1/reports/{report}/attachments/{attachment}",
            server.url
        ))
        .bearer_auth(&server.token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (
        v["received"].as_u64().unwrap(),
        v["stored"].as_bool().unwrap(),
    )
}

/// The stored file, downloaded with a dispatcher token.
fn download(
    http: &reqwest::blocking::Client,
    server: &Server,
    dispatcher: &str,
    report: &str,
    attachment: &str,
) -> (u16, Vec<u8>) {
    let r = http
        .get(format!(
            "{}/v1/dispatch/reports/{report}/attachments/{attachment}?device_id={}",
            server.url,
            crew().device_id
        ))
        .bearer_auth(dispatcher)
        .send()
        .unwrap();
    (r.status().as_u16(), r.bytes().unwrap().to_vec())
}

/// The server's upload in progress of `attachment` (`uploads/<device>/<id>.part`), if any.
fn server_partial(server: &Server, attachment: &str) -> Option<Vec<u8>> {
    let uploads = media_dir(&server.db()).join("uploads");
    for dev in std::fs::read_dir(uploads).ok()? {
        let p = dev.unwrap().path().join(format!("{attachment}.part"));
        if let Ok(b) = std::fs::read(&p) {
            return Some(b);
        }
    }
    None
}

/// A finalized report with one video attachment from bytes.
fn report_with_video(store: &CrewStore, video: &[u8]) -> (String, Attachment) {
    let d = store.create_draft(crew(), complete_fields()).unwrap();
    store
        .add_attachment_bytes(
            d.id.clone(),
            video.to_vec(),
            AttachmentKind::Video,
            "video/mp4".into(),
            None,
        )
        .unwrap();
    let r = store.finalize_draft(d.id.clone(), d.revision).unwrap();
    let a = r.attachments[0].clone();
    (r.id, a)
}

fn configure(store: &CrewStore, url: &str, token: &str) {
    let mut c = config(url);
    c.status_watch_seconds = 0;
    store.configure_sync(c, Tokens::new(token, token)).unwrap();
}

/// Syncs until nothing is pending, within `limit`; returns the attachment bytes confirmed.
fn sync_until_done(store: &CrewStore, limit: Duration) -> u64 {
    let started = Instant::now();
    let mut bytes = 0;
    loop {
        if let Ok(r) = store.sync_now() {
            bytes += r.uploaded_bytes;
            if r.outcome == SyncOutcome::Complete && r.pending_attachments == 0 {
                return bytes;
            }
        }
        assert!(started.elapsed() < limit, "not done in {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CHILD_VAR: &str = "CREWSAFE_UPLOAD_CHILD";

/// The child of the kill test: opens the store, says so, and syncs in a loop.
#[test]
fn child_uploader() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return;
    };
    let p: Vec<&str> = spec.split('|').collect();
    let key: Vec<u8> = (0..p[1].len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&p[1][i..i + 2], 16).unwrap())
        .collect();
    let store = CrewStore::open(p[0].into(), key).unwrap();
    configure(&store, p[2], p[3]);
    let mut out = std::io::stdout();
    writeln!(out, "@@ready").unwrap();
    out.flush().unwrap();
    loop {
        let _ = store.sync_now();
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_during_upload_loses_nothing_and_never_counts_more_than_the_server_holds() {
    let server = Server::start();
    let dispatcher = crewsafe_server::enroll_dispatcher(server.db(), "investigator-1").unwrap();
    let proxy = Proxy::start(server.url.trim_start_matches("http://").parse().unwrap());
    // 1.5 MB/s: the 20 MB file takes about as long as the fifteen rounds, so most kills land
    // mid-upload (and the last ones may land around its end).
    proxy.always(Fault::Bandwidth(3 << 19));
    let http = http();
    let mut t = TestStore::new();
    let video = content(20 << 20, 7);
    let sha = sha_hex(&video);
    let (report, a) = report_with_video(&t.store, &video);
    let key_hex: String = t.key.iter().map(|b| format!("{b:02x}")).collect();
    t.store.close().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::new(Rng::clock_seed());
    let (kills, mut mid_upload, mut delivered_rounds) = (15, 0, 0);
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_uploader",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_VAR,
                format!(
                    "{}|{key_hex}|{}|{}",
                    t.path.display(),
                    proxy.url(),
                    server.token
                ),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.is_ok_and(|l| l.contains("@@ready")));
        assert!(ready, "round {round}: the child did not start");
        std::thread::sleep(Duration::from_millis(100 + rng.below(1400)));
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever reached the server before the kill is handled before we look.
        assert!(proxy.wait_idle(Duration::from_secs(20)));

        t.reopen_after_close();
        let listed = t.store.list_attachments(report.clone()).unwrap();
        assert_eq!(listed.len(), 1, "round {round}");
        let mine = &listed[0];
        assert_eq!((&mine.id, &mine.sha256), (&a.id, &sha), "round {round}");
        assert_eq!(
            sha_hex(&read_all(&t.store, &a.id)),
            sha,
            "round {round}: unreadable"
        );
        assert_eq!(
            files_in(&media_dir(&t.path)),
            vec![format!("{}.csa", a.id)],
            "round {round}: orphans or a missing file"
        );
        let (received, stored) = server_holds(&http, &server, &report, &a.id);
        assert!(
            mine.uploaded_bytes <= received,
            "round {round}: the phone counts {} uploaded, the server holds {received}",
            mine.uploaded_bytes
        );
        if stored {
            assert_eq!(received, video.len() as u64);
        } else if let Some(part) = server_partial(&server, &a.id) {
            // What the server holds is a checked prefix, on unit boundaries.
            assert_eq!(part.len() as u64, received, "round {round}");
            assert_eq!(received % UNIT, 0, "round {round}");
            assert!(part == video[..part.len()], "round {round}: a bad prefix");
        }
        if mine.sync_state == SyncState::Delivered {
            assert!(stored, "round {round}: delivered but not stored");
            let (status, got) = download(&http, &server, &dispatcher, &report, &a.id);
            assert_eq!((status, sha_hex(&got)), (200, sha.clone()), "round {round}");
            delivered_rounds += 1;
        } else {
            assert_eq!(mine.sync_state, SyncState::Queued, "round {round}");
            if received > 0 && !stored {
                mid_upload += 1;
            }
        }
        t.store.close().unwrap();
    }
    println!("{kills} kills: {mid_upload} mid-upload, {delivered_rounds} after delivery");
    assert!(
        mid_upload >= 8,
        "only {mid_upload} of {kills} kills landed mid-upload"
    );
    // A clean sync finishes it, sending only what the server does not hold.
    t.reopen_after_close();
    proxy.clear();
    let (held, _) = server_holds(&http, &server, &report, &a.id);
    configure(&t.store, &proxy.url(), &server.token);
    let sent = sync_until_done(&t.store, Duration::from_secs(60));
    assert!(
        sent <= video.len() as u64 - held,
        "{sent} sent after {held} held"
    );
    let done = &t.store.list_attachments(report.clone()).unwrap()[0];
    assert_eq!(done.sync_state, SyncState::Delivered);
    assert_eq!(done.uploaded_bytes, video.len() as u64);
    let (status, got) = download(&http, &server, &dispatcher, &report, &a.id);
    assert_eq!((status, sha_hex(&got)), (200, sha));
    assert!(server_holds(&http, &server, &report, &a.id).1);
    assert_eq!(files_in(&media_dir(&t.path)), vec![format!("{}.csa", a.id)]);
}

#[test]
fn fifty_mb_with_twenty_cuts_at_random_points_costs_at_most_a_tenth_more() {
    let server = Server::start();
    let dispatcher = crewsafe_server::enroll_dispatcher(server.db(), "investigator-1").unwrap();
    let proxy = Arc::new(Proxy::start(
        server.url.trim_start_matches("http://").parse().unwrap(),
    ));
    // 20 MB/s, so that a cut lands within ~20 KB of its point.
    proxy.always(Fault::Bandwidth(20 << 20));
    let http = http();
    let t = TestStore::new();
    configure(&t.store, &proxy.url(), &server.token);
    let video = content(50 << 20, 8);
    let (report, a) = report_with_video(&t.store, &video);
    // Deliver the report first (its file's requests refused): only the file's bytes are
    // counted and cut.
    proxy.only_requests_to(Some("/attachments/"));
    for _ in 0..20 {
        proxy.once(Fault::Down);
    }
    let _ = t.store.sync_now();
    proxy.clear();
    proxy.always(Fault::Bandwidth(20 << 20));
    assert_eq!(server.count_of(&report), 1);

    // The cuts: 20 points drawn at random over the file's length, counted in bytes on the
    // wire; at each, every connection is torn down (a dropped link), whatever is in flight.
    let before = proxy.stats().bytes_up;
    let mut rng = Rng::new(Rng::clock_seed());
    let mut points: Vec<u64> = (0..20).map(|_| rng.below(video.len() as u64)).collect();
    points.sort_unstable();
    let done = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicU64::new(0));
    let cutter = {
        let (proxy, done, cuts) = (proxy.clone(), done.clone(), cuts.clone());
        std::thread::spawn(move || {
            for p in points {
                while proxy.stats().bytes_up - before < p {
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                proxy.kill_all();
                cuts.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    while t.store.list_attachments(report.clone()).unwrap()[0].sync_state != SyncState::Delivered {
        let _ = t.store.sync_now();
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    done.store(true, Ordering::SeqCst);
    cutter.join().unwrap();
    let wire = proxy.stats().bytes_up - before;
    let cuts = cuts.load(Ordering::SeqCst);
    println!(
        "50 MB, {cuts} cuts: {wire} bytes on the wire ({:.3}x the file), {:.0} KB lost per cut, {:?}",
        wire as f64 / video.len() as f64,
        (wire - video.len() as u64) as f64 / cuts.max(1) as f64 / 1024.0,
        started.elapsed()
    );
    assert!(cuts >= 18, "only {cuts} cuts happened");
    let (status, got) = download(&http, &server, &dispatcher, &report, &a.id);
    assert_eq!((status, sha_hex(&got)), (200, sha_hex(&video)));
    assert!(
        (wire as f64) <= 1.1 * video.len() as f64,
        "{wire} bytes on the wire for {} ({cuts} cuts)",
        video.len()
    );
}

/// A tmpfs of `size` mounted on a fresh folder; unmounted on drop (as in storage_faults.rs).
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(size: &str) -> Option<Self> {
        if std::env::var_os("CREWSAFE_NO_MOUNT").is_some() {
            eprintln!("CREWSAFE_NO_MOUNT set: the full-disk capture test is skipped");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "mounting a tmpfs failed (run as root, or set CREWSAFE_NO_MOUNT=1)"
        );
        Some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_during_capture_is_a_typed_error_and_leaves_the_draft_whole() {
    let Some(fs) = SmallFs::new("16m") else {
        return;
    };
    let path = fs.path().join("crewsafe.db");
    let key = generate_data_key();
    let store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
    let draft = store.create_draft(crew(), complete_fields()).unwrap();
    let photo = content(300_000, 1);
    let p = store
        .add_attachment_bytes(
            draft.id.clone(),
            photo.clone(),
            AttachmentKind::Photo,
            "image/jpeg".into(),
            None,
        )
        .unwrap();
    // The app's recordings live elsewhere (its own cache), not on the full disk.
    let outside = tempfile::tempdir().unwrap();
    let audio_src = outside.path().join("audio.m4a");
    let audio = content(1_000_000, 2);
    std::fs::write(&audio_src, &audio).unwrap();
    let au = store
        .add_attachment_file(
            draft.id.clone(),
            audio_src.to_string_lossy().into(),
            AttachmentKind::Audio,
            "audio/mp4".into(),
            None,
        )
        .unwrap();
    // Other files take most of the disk: about 6 MB stay free.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![1u8; 8 << 20]).unwrap();
    let video_src = outside.path().join("video.mp4");
    let video = content(10 << 20, 3);
    std::fs::write(&video_src, &video).unwrap();
    let add_video = |store: &CrewStore| {
        store.add_attachment_file(
            draft.id.clone(),
            video_src.to_string_lossy().into(),
            AttachmentKind::Video,
            "video/mp4".into(),
            None,
        )
    };
    let saved = store.get_draft(draft.id.clone()).unwrap();
    let err = add_video(&store).unwrap_err();
    assert!(matches!(err, CrewSafeError::Storage { .. }), "{err:?}");
    let check = |store: &CrewStore| {
        assert_eq!(store.get_draft(draft.id.clone()).unwrap(), saved);
        assert_eq!(
            store.list_attachments(draft.id.clone()).unwrap(),
            vec![p.clone(), au.clone()]
        );
        assert_eq!(read_all(store, &p.id), photo);
        assert_eq!(read_all(store, &au.id), audio);
        let mut expected = vec![format!("{}.csa", p.id), format!("{}.csa", au.id)];
        expected.sort();
        assert_eq!(files_in(&media_dir(&path)), expected, "a partial file left");
    };
    check(&store);
    // The store still works (the partial file's space is back), also after a reopen.
    store.raise_sos(crew(), None, None).unwrap();
    store.close().unwrap();
    let store = CrewStore::open(path.to_string_lossy().into(), key.clone()).unwrap();
    check(&store);
    // Space freed: the same capture goes through.
    std::fs::remove_file(&filler).unwrap();
    let v = add_video(&store).unwrap();
    assert_eq!(v.sha256, sha_hex(&video));
    assert_eq!(read_all(&store, &v.id), video);
    assert_eq!(store.list_attachments(draft.id.clone()).unwrap().len(), 3);
    let rev = store.get_draft(draft.id.clone()).unwrap().revision;
    assert_eq!(
        store
            .finalize_draft(draft.id.clone(), rev)
            .unwrap()
            .attachments
            .len(),
        3
    );
    store.close().unwrap();
}

/// A phone online on a 1 MB/s link whose background worker is uploading a 20 MB video.
struct SlowUpload {
    _server: Server,
    proxy: Proxy,
    t: TestStore,
    report: String,
}

impl SlowUpload {
    fn start() -> SlowUpload {
        let server = Server::start();
        let proxy = Proxy::start(server.url.trim_start_matches("http://").parse().unwrap());
        proxy.always(Fault::Bandwidth(1 << 20));
        let t = TestStore::new();
        configure(&t.store, &proxy.url(), &server.token);
        let (report, _) = report_with_video(&t.store, &content(20 << 20, 9));
        t.store.set_online(true).unwrap();
        let s = SlowUpload {
            _server: server,
            proxy,
            t,
            report,
        };
        let started = Instant::now();
        while s.uploaded() < 1 << 20 {
            assert!(started.elapsed() < Duration::from_secs(20), "no upload");
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    fn uploaded(&self) -> u64 {
        self.t.store.list_attachments(self.report.clone()).unwrap()[0].uploaded_bytes
    }
}

#[test]
fn shutdown_during_a_long_upload_returns_within_a_request_timeout() {
    let s = SlowUpload::start();
    let asked = Instant::now();
    s.t.store.shutdown();
    let took = asked.elapsed();
    let at = s.uploaded();
    std::thread::sleep(Duration::from_secs(2));
    let later = s.uploaded();
    s.proxy.clear();
    // `shutdown` documents "waits for it (at most one request timeout)": 5 s here.
    assert!(
        took <= Duration::from_secs(5),
        "shutdown() took {took:?} (the worker went on uploading: {at} bytes by then)"
    );
    assert_eq!(later, at, "the upload went on after shutdown()");
}

#[test]
fn going_offline_stops_a_long_upload_at_the_next_chunk() {
    let s = SlowUpload::start();
    s.t.store.set_online(false).unwrap();
    let at = s.uploaded();
    // The chunk in flight may still end (at most 8 MiB, about 2 MiB on this link).
    std::thread::sleep(Duration::from_secs(6));
    let later = s.uploaded();
    s.proxy.clear();
    s.t.store.shutdown();
    // "Offline, neither sends anything" (`set_online`).
    assert!(
        later - at <= 2 << 20,
        "{} bytes more uploaded after set_online(false)",
        later - at
    );
}
