//! The dispatcher console in a real browser, against the real server and a real phone store:
//! a phone raises an SOS, the alarm appears in the console without a reload, the dispatcher
//! acknowledges it with a message, and the phone's listener hears `Acknowledged` without any
//! app-initiated sync. A newer position replaces the alarm's view in place. Then the page
//! loses its network, a second alarm is raised meanwhile, and the page shows it after
//! reconnecting (with `Last-Event-ID`); the server restarts, a third alarm is raised while it
//! is down, and the page shows it after reconnecting by itself. Last, a lone-worker check-in
//! falls due (the server's own alarm shows), the crew cancels the third alarm, the second,
//! never acknowledged, shows escalated, and the first is resolved: the phone hears `Resolved`.
//! Then the crew writes an incident report with a photo (a small PNG of a known colour made
//! here), the phone delivers the report and the photo, and the console's Reports view, reached
//! with the keyboard, shows the report with the photo rendered from the server's bytes (its
//! size, its pixels' colour read back through a canvas), its size and SHA-256; the file was
//! fetched with the token in a header, never in a URL.
//!
//! The browser side is `scripts/console-browser.py` (Debian's `chromium`, `chromium-driver`
//! and `python3-selenium`); this test owns the server and the phone and talks to the script
//! in lines (see the script's doc). Screenshots of the console are saved as
//! `target/artifacts/console.png` (alarms) and `target/artifacts/console-reports.png`.
//!
//! Without the browser tools the test prints a loud SKIP and passes, unless
//! `CREWSAFE_REQUIRE_BROWSER=1` (set by `scripts/test-all.sh`), which makes it fail.
//! `CREWSAFE_PYTHON`, `CREWSAFE_CHROMIUM` and `CREWSAFE_CHROMEDRIVER` override the tools'
//! paths.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::net::{config, Tokens};
use common::{complete_fields, crew, fix, TestStore};
use crewsafe::*;
use crewsafe_server::protocol::CONSOLE_PATH;
use crewsafe_server::ServerConfig;
use sha2::Digest as _;

const DISPATCHER: &str = "alice-dispatch";
const ADDRESS: &str = "Abai 10, flat 4";
/// Unacknowledged alarms escalate this soon here (two minutes by default).
const ESCALATE_AFTER: Duration = Duration::from_secs(4);
/// Longest wait for one step of the script.
const STEP: Duration = Duration::from_secs(60);
/// The colour of the report's photo.
const PHOTO_RGB: [u8; 3] = [0x1e, 0x90, 0xc8];
/// Its size in pixels.
const PHOTO_SIZE: (u32, u32) = (48, 32);

/// CRC-32 (ISO-HDLC, as PNG chunks use).
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real PNG of `width` x `height` pixels all of colour `rgb` (8-bit RGB, the image data in
/// stored deflate blocks: every viewer reads it).
fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    // Each row: filter byte 0 (none), then the pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain((0..width).flat_map(|_| rgb))
        .collect();
    let raw = row.repeat(height as usize);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
    };
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, no filter, no interlace
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &zlib);
    chunk(b"IEND", &[]);
    png
}

#[test]
fn the_test_png_is_a_png() {
    // The CRC of IEND's empty data is a known constant.
    assert_eq!(crc32(&[b"IEND"]), 0xae42_6082);
    let png = solid_png(2, 1, [1, 2, 3]);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.ends_with(&[0xae, 0x42, 0x60, 0x82]));
}

/// Every record change the phone reports.
#[derive(Default)]
struct Changes {
    seen: Mutex<Vec<RecordChange>>,
    cond: Condvar,
}

impl RecordListener for Changes {
    fn on_record_changed(&self, change: RecordChange) -> Result<(), HostError> {
        self.seen.lock().unwrap().push(change);
        self.cond.notify_all();
        Ok(())
    }
}

impl Changes {
    /// Waits until a change of record `id` satisfies `pred`.
    fn wait_for(&self, id: &str, timeout: Duration, pred: impl Fn(&RecordChange) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if seen.iter().any(|c| c.id == id && pred(c)) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            seen = self.cond.wait_timeout(seen, left).unwrap().0;
        }
    }
}

fn skip_or_fail(why: &str) {
    if std::env::var("CREWSAFE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("CREWSAFE_REQUIRE_BROWSER=1 but the browser test cannot run: {why}");
    }
    let line = "!".repeat(78);
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "\n{line}\nSKIP console_browser: {why}\n  (apt-get install chromium chromium-driver \
         python3-selenium; scripts/test-all.sh sets CREWSAFE_REQUIRE_BROWSER=1)\n{line}\n"
    );
}

/// The Python that has Debian's selenium: `CREWSAFE_PYTHON`, else the system's (a `python3`
/// earlier on PATH, say from pyenv, does not see Debian's packages).
fn python() -> String {
    if let Ok(p) = std::env::var("CREWSAFE_PYTHON") {
        return p;
    }
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        "python3".into()
    }
}

/// Why the browser tools are not usable, if they are not.
fn missing_tools(python: &str) -> Option<String> {
    let chromium = std::env::var("CREWSAFE_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let driver = std::env::var("CREWSAFE_CHROMEDRIVER").unwrap_or("/usr/bin/chromedriver".into());
    for tool in [&chromium, &driver] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} not found"));
        }
    }
    match Command::new(python)
        .args(["-c", "import selenium"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some(format!("{python} cannot import selenium")),
    }
}

/// Where the screenshot goes: `artifacts/` in the target directory this test was built in.
fn screenshot_path() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("artifacts")
        .join("console.png")
}

/// The running script: its stdin, and its stdout lines through a channel.
struct Script {
    child: Child,
    /// Closed by `finish`: a script still waiting for a step then gives up at once.
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line it printed so far.
    transcript: Vec<String>,
}

impl Script {
    fn send(&mut self, line: &str) {
        // A script that already ended is reported by `finish`.
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}").and_then(|()| stdin.flush());
        }
    }

    /// Reads lines until one starts with `word`; returns the rest of that line. `None` if the
    /// script ended or the time ran out first.
    fn expect(&mut self, word: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line
                        .strip_prefix(word)
                        .filter(|rest| rest.is_empty() || rest.starts_with(' '))
                        .map(|rest| rest.trim().to_string());
                    self.transcript.push(line);
                    if found.is_some() {
                        return found;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Reads what is left and waits for the exit (killing the script after `timeout`).
    fn finish(&mut self, timeout: Duration) -> Option<i32> {
        drop(self.stdin.take());
        let end = Instant::now() + timeout;
        while let Ok(line) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.transcript.push(line);
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn failures(&self) -> Vec<&str> {
        self.transcript
            .iter()
            .filter(|l| l.starts_with("FAIL"))
            .map(String::as_str)
            .collect()
    }
}

fn spawn_script(python: &str, console_url: &str, token: &str, screenshot: &Path) -> Script {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/console-browser.py");
    let who = crew();
    let spot = fix();
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--url", console_url, "--token", token])
        .arg("--screenshot")
        .arg(screenshot)
        .args(["--crew", &who.crew_id, "--dispatcher", DISPATCHER])
        .args(["--lat", &format!("{:.5}", spot.latitude)])
        .args(["--lon", &format!("{:.5}", spot.longitude)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start scripts/console-browser.py");
    let stdin = child.stdin.take().expect("script stdin");
    let stdout = child.stdout.take().expect("script stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Straight to stderr (not the test's captured output), so CI logs show each check.
            let _ = writeln!(std::io::stderr(), "console-browser: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Script {
        child,
        stdin: Some(stdin),
        lines,
        transcript: Vec::new(),
    }
}

/// How the server is configured here: alarms escalate after a few seconds and a check-in
/// "minute" lasts a second, so both show within the test.
fn server_config(db: &Path, addr: SocketAddr) -> ServerConfig {
    ServerConfig::new(db, addr)
        .with_escalate_after(ESCALATE_AFTER)
        .with_check_in_minute(Duration::from_secs(1))
}

#[test]
fn console_shows_phone_alarms_live_and_the_phone_hears_the_answers() {
    let python = python();
    if let Some(why) = missing_tools(&python) {
        skip_or_fail(&why);
        return;
    }

    // The real reference server, a device and a dispatcher.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let device_token = crewsafe_server::enroll_device(&db, &crew().device_id).unwrap();
    let dispatcher_token = crewsafe_server::enroll_dispatcher(&db, DISPATCHER).unwrap();
    let running = crewsafe_server::start(server_config(&db, "127.0.0.1:0".parse().unwrap()))
        .expect("start the server");
    let url = running.url();
    let mut server = Some(running);

    // A phone store syncing with it in the background (the app never calls sync_now here).
    let t = TestStore::new();
    let changes = Arc::new(Changes::default());
    let _sub = t.store.subscribe_records(changes.clone());
    t.store
        .configure_sync(config(&url), Tokens::new(&device_token, &device_token))
        .unwrap();
    t.store.set_online(true).unwrap();
    let delivered = |id: &str, secs: u64| {
        changes.wait_for(id, Duration::from_secs(secs), |c| {
            c.state == SyncState::Delivered
        })
    };
    let heard = |id: &str, status: DispatchStatus| {
        changes.wait_for(id, Duration::from_secs(10), |c| {
            c.dispatch_status == Some(status)
        })
    };

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let mut script = spawn_script(
        &python,
        &format!("{url}{CONSOLE_PATH}"),
        &dispatcher_token,
        &shot,
    );
    let mut problems: Vec<String> = Vec::new();
    let mut fail = |what: &str| problems.push(what.to_string());

    'steps: {
        // Chromium's first start on a busy two-core machine can take a while.
        if script.expect("ready", Duration::from_secs(90)).is_none() {
            fail("the console never became ready");
            break 'steps;
        }

        // 1. The phone raises an SOS; its worker delivers it; the page shows it live; the
        //    dispatcher acknowledges with a message; the phone hears it by itself.
        let sos = t
            .store
            .raise_sos(crew(), Some(fix()), Some("stairwell, 3rd floor".into()))
            .unwrap();
        script.send(&format!("sos {}", sos.id.to_ascii_lowercase()));
        if script.expect("acknowledged", STEP).is_none() {
            fail("the console did not show the alarm acknowledged");
            break 'steps;
        }
        if !heard(&sos.id, DispatchStatus::Acknowledged) {
            fail(
                "the phone's RecordListener did not see Acknowledged within 10 s of the click \
                 (no sync_now was called: this needs the phone's status watch)",
            );
        }

        // 2. A newer position replaces the alarm's view in the page.
        let mut moved = fix();
        moved.latitude += 0.0123;
        moved.longitude -= 0.0456;
        let update = t
            .store
            .add_sos_location(sos.id.clone(), moved.clone())
            .unwrap();
        if !delivered(&update.id, 20) {
            fail("the location follow-up was not delivered");
            break 'steps;
        }
        script.send(&format!(
            "moved {:.5} {:.5}",
            moved.latitude, moved.longitude
        ));
        if script.expect("moved", STEP).is_none() {
            fail("the console did not show the newer position");
            break 'steps;
        }

        // 3. The page loses its network; an alarm raised meanwhile shows after reconnect.
        script.send("offline");
        if script.expect("offline", STEP).is_none() {
            fail("the console did not go offline");
            break 'steps;
        }
        let sos2 = t
            .store
            .raise_sos(
                crew(),
                Some(fix()),
                Some("second alarm, page offline".into()),
            )
            .unwrap();
        if !delivered(&sos2.id, 20) {
            fail("the second SOS was not delivered to the server");
            break 'steps;
        }
        script.send(&format!("sos {}", sos2.id.to_ascii_lowercase()));
        if script.expect("replayed", STEP).is_none() {
            fail("the console did not show the alarm raised while it was offline");
            break 'steps;
        }

        // 4. The server restarts (the stream breaks for real); an alarm raised while it is
        //    down shows once the page has reconnected by itself.
        let addr = server.take().map(|s| {
            let addr = s.addr();
            s.shutdown();
            addr
        });
        script.send("down");
        if script.expect("disconnected", STEP).is_none() {
            fail("the console did not notice the server going away");
            break 'steps;
        }
        let sos3 = t
            .store
            .raise_sos(crew(), Some(fix()), Some("third alarm, server down".into()))
            .unwrap();
        server = addr.map(|addr| {
            crewsafe_server::start(server_config(&db, addr))
                .expect("restart the server on the same port and database")
        });
        if !delivered(&sos3.id, 30) {
            fail("the third SOS was not delivered after the restart");
            break 'steps;
        }
        script.send(&format!("sos {}", sos3.id.to_ascii_lowercase()));
        if script.expect("restarted", STEP).is_none() {
            fail("the console did not show the alarm raised while the server was down");
            break 'steps;
        }

        // 5. A check-in nobody closes raises the server's own alarm; the crew cancels the
        //    third alarm; the second, never acknowledged, escalates; the first is resolved and
        //    the phone hears it.
        t.store
            .start_check_in(crew(), 2, Some(ADDRESS.into()), None, Some(fix()))
            .unwrap();
        let cancel = t
            .store
            .cancel_sos(
                sos3.id.clone(),
                CancelReason::FalseAlarm,
                Some("pressed in a pocket".into()),
            )
            .unwrap();
        if !delivered(&cancel.id, 20) {
            fail("the cancellation was not delivered");
            break 'steps;
        }
        script.send(&format!("checkin {ADDRESS}"));
        if script.expect("resolved", STEP).is_none() {
            fail("the console did not get through check-in, escalation and resolve");
            break 'steps;
        }
        if !heard(&sos.id, DispatchStatus::Resolved) {
            fail("the phone's RecordListener did not see Resolved within 10 s of the click");
        }

        // 6. An incident report with a photo: the phone delivers the report, then the photo;
        //    the console's Reports view shows the photo rendered from the server's bytes.
        let png = solid_png(PHOTO_SIZE.0, PHOTO_SIZE.1, PHOTO_RGB);
        let draft = t.store.create_draft(crew(), complete_fields()).unwrap();
        let photo = t
            .store
            .add_attachment_bytes(
                draft.id.clone(),
                png.clone(),
                AttachmentKind::Photo,
                "image/png".into(),
                None,
            )
            .unwrap();
        let report = t
            .store
            .finalize_draft(draft.id.clone(), draft.revision)
            .unwrap();
        let sha: String = sha2::Sha256::digest(&png)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if photo.sha256 != sha || photo.size != png.len() as u64 {
            fail("the library's hash or size of the photo is not the file's");
        }
        let until = Instant::now() + Duration::from_secs(60);
        let uploaded = loop {
            let files = t.store.list_attachments(report.id.clone()).unwrap();
            if !files.is_empty() && files.iter().all(|f| f.sync_state == SyncState::Delivered) {
                break true;
            }
            if Instant::now() > until {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !uploaded {
            fail("the report's photo was not delivered within 60 s");
            break 'steps;
        }
        let [r, g, b] = PHOTO_RGB;
        script.send(&format!(
            "report {} {} {r} {g} {b} {} {} {} {sha}",
            report.id.to_ascii_lowercase(),
            photo.id.to_ascii_lowercase(),
            PHOTO_SIZE.0,
            PHOTO_SIZE.1,
            png.len(),
        ));
        if script.expect("reported", STEP).is_none() {
            fail("the console did not show the report's photo");
            break 'steps;
        }
        script.send("done");
    }

    let code = script.finish(Duration::from_secs(90));
    t.store.shutdown();
    if let Some(server) = server {
        server.shutdown();
    }

    if shot.exists() {
        let _ = writeln!(std::io::stderr(), "console screenshot: {}", shot.display());
    }
    if code == Some(2) {
        // The tools are installed but the browser would not start.
        skip_or_fail("console-browser.py could not start Chromium");
        return;
    }
    if code != Some(0) {
        problems.push(format!(
            "console-browser.py exited with {code:?}; failed checks:\n  {}",
            script.failures().join("\n  ")
        ));
    }
    assert!(
        problems.is_empty(),
        "console browser test failed:\n- {}\nscript output:\n{}",
        problems.join("\n- "),
        script.transcript.join("\n")
    );
}
