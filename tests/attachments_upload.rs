//! Attachment uploads from the phone to the real reference server: delivered once the server
//! checked the whole file against the report's commitment, downloadable by a dispatcher with
//! the same bytes (cuts at random points and kills: `tests/attachments_faults.rs`); across a
//! server restart; an SOS raised during a long upload on a
//! slow link reaches the server at once; and the server's own checks (chunk checksum, offset,
//! whole-file hash, unknown report) over raw HTTP.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::net::*;
use common::proxy::{Fault, Proxy};
use common::*;
use crewsafe::internals::Rng;
use crewsafe::*;
use sha2::{Digest, Sha256};

fn content(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn sha_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Env {
    t: TestStore,
    server: Server,
    dispatcher: String,
    http: reqwest::blocking::Client,
}

impl Env {
    fn start(url_of: impl FnOnce(&Server) -> String) -> Env {
        let server = Server::start();
        let t = TestStore::new();
        let mut c = config(&url_of(&server));
        c.status_watch_seconds = 0;
        t.store
            .configure_sync(c, Tokens::new(&server.token, &server.token))
            .unwrap();
        let dispatcher = crewsafe_server::enroll_dispatcher(server.db(), "investigator-1").unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        Env {
            t,
            server,
            dispatcher,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// A finalized report with these files attached.
    fn report_with(&self, files: &[(&[u8], AttachmentKind, &str)]) -> (String, Vec<Attachment>) {
        let d = self
            .t
            .store
            .create_draft(crew(), complete_fields())
            .unwrap();
        for (bytes, kind, mime) in files {
            self.t
                .store
                .add_attachment_bytes(d.id.clone(), bytes.to_vec(), *kind, mime.to_string(), None)
                .unwrap();
        }
        let r = self
            .t
            .store
            .finalize_draft(d.id.clone(), d.revision)
            .unwrap();
        (r.id, r.attachments)
    }

    /// Syncs until nothing is pending (retries after failures), within `limit`.
    fn sync_until_done(&self, limit: Duration) -> u64 {
        let started = Instant::now();
        let mut bytes = 0;
        loop {
            let r = self.t.store.sync_now().unwrap();
            bytes += r.uploaded_bytes;
            if r.outcome == SyncOutcome::Complete {
                return bytes;
            }
            assert!(started.elapsed() < limit, "not done in {limit:?}: {r:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn download(&self, report: &str, attachment: &str) -> (u16, Vec<u8>) {
        let r = self
            .http
            .get(format!(
                "{}/v1/dispatch/reports/{report}/attachments/{attachment}?device_id={}",
                self.server.url,
                crew().device_id
            ))
            .bearer_auth(&self.dispatcher)
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    }
}

#[test]
fn attachments_are_delivered_once_checked_and_download_byte_for_byte() {
    let e = Env::start(|s| s.url.clone());
    let photo = content(700_000, 1);
    let audio = content(3 * 262_144 + 5, 2);
    let (report, atts) = e.report_with(&[
        (&photo, AttachmentKind::Photo, "image/jpeg"),
        (&audio, AttachmentKind::Audio, "audio/ogg"),
    ]);
    // Before the report is delivered nothing of its files is downloadable.
    assert_eq!(e.download(&report, &atts[0].id).0, 404);
    let sent = e.sync_until_done(Duration::from_secs(30));
    assert_eq!(sent, (photo.len() + audio.len()) as u64);
    let after = e.t.store.list_attachments(report.clone()).unwrap();
    assert!(
        after.iter().all(|a| a.sync_state == SyncState::Delivered),
        "{after:?}"
    );
    assert!(after.iter().all(|a| a.uploaded_bytes == a.size));
    for (a, bytes) in atts.iter().zip([&photo, &audio]) {
        let (status, got) = e.download(&report, &a.id);
        assert_eq!(status, 200);
        assert_eq!(sha_hex(&got), sha_hex(bytes));
    }
    let list: serde_json::Value = e
        .http
        .get(format!(
            "{}/v1/dispatch/reports/{report}/attachments?device_id={}",
            e.server.url,
            crew().device_id
        ))
        .bearer_auth(&e.dispatcher)
        .send()
        .unwrap()
        .bytes()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let listed = list["attachments"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|a| a["stored"] == true));
    assert_eq!(listed[0]["sha256"], sha_hex(&photo));
    // Nothing more to send.
    assert_eq!(e.t.store.sync_now().unwrap().uploaded_bytes, 0);
}

#[test]
fn an_upload_resumes_after_a_server_restart_without_sending_again() {
    let proxy = Arc::new(std::sync::Mutex::new(None::<Proxy>));
    let p2 = proxy.clone();
    let mut e = Env::start(move |s| {
        let p = Proxy::start(s.url.trim_start_matches("http://").parse().unwrap());
        let url = p.url();
        *p2.lock().unwrap() = Some(p);
        url
    });
    // 4 MB/s: the 6 MB file takes about a second and a half.
    proxy
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .always(Fault::Bandwidth(4 << 20));
    let video = content(6 << 20, 4);
    let (report, _) = e.report_with(&[(&video, AttachmentKind::Video, "video/mp4")]);
    let sync = {
        let store = e.t.store.clone();
        std::thread::spawn(move || store.sync_now())
    };
    // Stop the server once about a third is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = &e.t.store.list_attachments(report.clone()).unwrap()[0];
        assert_ne!(a.sync_state, SyncState::Delivered, "too fast to cut");
        if a.uploaded_bytes >= 2 << 20 {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    // The link drops (every connection torn down) and the server restarts meanwhile.
    let proxy = proxy.lock().unwrap().take().unwrap();
    proxy.down();
    let _ = sync.join().unwrap();
    e.server.stop();
    let held = e.t.store.list_attachments(report.clone()).unwrap()[0].uploaded_bytes;
    assert!(held < video.len() as u64);
    e.server.restart();
    proxy.up();
    let sent = e.sync_until_done(Duration::from_secs(30));
    // Only what the server did not hold goes again (the chunk cut by the stop included).
    assert!(
        sent <= video.len() as u64 - held,
        "{sent} sent again after {held} held"
    );
    let a = &e.t.store.list_attachments(report.clone()).unwrap()[0];
    assert_eq!(a.sync_state, SyncState::Delivered);
    assert_eq!(sha_hex(&e.download(&report, &a.id).1), sha_hex(&video));
}

#[test]
fn an_sos_raised_during_a_long_upload_on_a_slow_link_goes_first() {
    let proxy = Arc::new(std::sync::Mutex::new(None::<Proxy>));
    let p2 = proxy.clone();
    let e = Env::start(move |s| {
        let p = Proxy::start(s.url.trim_start_matches("http://").parse().unwrap());
        let url = p.url();
        *p2.lock().unwrap() = Some(p);
        url
    });
    let video = content(20 << 20, 5);
    let (report, _) = e.report_with(&[(&video, AttachmentKind::Video, "video/mp4")]);
    // A 1 MB/s link.
    proxy
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .always(Fault::Bandwidth(1 << 20));
    let store = e.t.store.clone();
    let upload = std::thread::spawn(move || store.sync_now());
    std::thread::sleep(Duration::from_secs(3));
    let a = &e.t.store.list_attachments(report.clone()).unwrap()[0];
    assert!(
        a.sync_state != SyncState::Delivered && a.uploaded_bytes > 0,
        "{a:?}"
    );
    let raised = Instant::now();
    let sos = e.t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let deadline = raised + Duration::from_secs(15);
    while e.server.count_of(&sos.id) == 0 {
        assert!(Instant::now() < deadline, "the SOS did not arrive");
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = raised.elapsed();
    println!("SOS on the server {took:?} after raise_sos during a 20 MB upload at 1 MB/s");
    assert!(took <= Duration::from_secs(2), "{took:?}");
    e.t.store.shutdown();
    proxy.lock().unwrap().as_ref().unwrap().clear();
    let _ = upload.join().unwrap();
}

/// A raw request to the server.
fn raw(
    e: &Env,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut r = e
        .http
        .request(method, format!("{}{path}", e.server.url))
        .bearer_auth(&e.server.token)
        .body(body);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_server_checks_every_chunk_offset_and_the_whole_file() {
    let e = Env::start(|s| s.url.clone());
    let bytes = content(300_000, 6);
    let (report, atts) = e.report_with(&[(&bytes, AttachmentKind::Photo, "image/png")]);
    e.t.store.set_online(false).unwrap();
    // Deliver the report but not its file: the upload lane needs the report first, so cut
    // the attachment requests away by syncing against a proxy that is down for them.
    let proxy = Proxy::start(e.server.url.trim_start_matches("http://").parse().unwrap());
    let mut c = config(&proxy.url());
    c.status_watch_seconds = 0;
    e.t.store
        .configure_sync(c, Tokens::new(&e.server.token, &e.server.token))
        .unwrap();
    proxy.only_requests_to(Some("/attachments/"));
    for _ in 0..50 {
        proxy.once(Fault::Down);
    }
    let _ = e.t.store.sync_now();
    let path = format!("/v1/reports/{report}/attachments/{}", atts[0].id);
    let sha = |b: &[u8]| sha_hex(b);
    let unit = 262_144usize;
    let (s, v) = raw(&e, reqwest::Method::GET, &path, &[], vec![]);
    assert_eq!(
        (s, v["received"].as_u64(), v["stored"].as_bool()),
        (200, Some(0), Some(false))
    );
    // A damaged chunk.
    let (s, v) = raw(
        &e,
        reqwest::Method::PUT,
        &path,
        &[
            ("upload-offset", "0".into()),
            ("chunk-sha256", sha(b"other")),
        ],
        bytes[..unit].to_vec(),
    );
    assert_eq!((s, v["error"].as_str()), (400, Some("checksum_mismatch")));
    // A chunk off the boundaries, then a good one, then one at the wrong offset.
    let (s, _) = raw(
        &e,
        reqwest::Method::PUT,
        &path,
        &[
            ("upload-offset", "0".into()),
            ("chunk-sha256", sha(&bytes[..1000])),
        ],
        bytes[..1000].to_vec(),
    );
    assert_eq!(s, 400);
    let (s, v) = raw(
        &e,
        reqwest::Method::PUT,
        &path,
        &[
            ("upload-offset", "0".into()),
            ("chunk-sha256", sha(&bytes[..unit])),
        ],
        bytes[..unit].to_vec(),
    );
    assert_eq!((s, v["received"].as_u64()), (200, Some(unit as u64)));
    let (s, v) = raw(
        &e,
        reqwest::Method::PUT,
        &path,
        &[
            ("upload-offset", "0".into()),
            ("chunk-sha256", sha(&bytes[..unit])),
        ],
        bytes[..unit].to_vec(),
    );
    assert_eq!((s, v["error"].as_str()), (409, Some("offset_mismatch")));
    // The rest, with a byte changed: the whole file fails its commitment and is dropped.
    let mut rest = bytes[unit..].to_vec();
    rest[10] ^= 1;
    let (s, v) = raw(
        &e,
        reqwest::Method::PUT,
        &path,
        &[
            ("upload-offset", unit.to_string()),
            ("chunk-sha256", sha(&rest)),
        ],
        rest,
    );
    assert_eq!((s, v["error"].as_str()), (422, Some("hash_mismatch")));
    let (_, v) = raw(&e, reqwest::Method::GET, &path, &[], vec![]);
    assert_eq!(v["received"].as_u64(), Some(0));
    // An attachment no report of this device lists.
    let (s, _) = raw(
        &e,
        reqwest::Method::GET,
        &format!("/v1/reports/{report}/attachments/0b6e5b8e-9999-4999-8999-999999999999"),
        &[],
        vec![],
    );
    assert_eq!(s, 404);
    // The phone, back on the direct link, sends it all and it is stored.
    proxy.clear();
    let mut c = config(&e.server.url);
    c.status_watch_seconds = 0;
    e.t.store
        .configure_sync(c, Tokens::new(&e.server.token, &e.server.token))
        .unwrap();
    e.sync_until_done(Duration::from_secs(30));
    assert_eq!(e.download(&report, &atts[0].id).1, bytes);
}
