//! Nothing a person wrote reaches the logs, at any level: every log line of the core (and of
//! the in-process reference server) is captured at TRACE while content with canary strings
//! goes through saving, failing and succeeding syncs, wedging, purging and errors.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::net::{config, Server, Tokens};
use common::*;
use crewsafe::*;
use crewsafe_server::TestFault;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push(format!(
            "{} {} {}",
            record.level(),
            record.target(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture;

const SECRET: &str = "CANARYlogsecret4242";

#[test]
fn no_content_in_logs_at_any_level() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let server = Server::start();
    let t = TestStore::new();
    let tokens = Tokens::new(&server.token, &server.token);
    let mut cfg = config(&server.url);
    cfg.backoff_base_ms = 50;
    t.store.configure_sync(cfg, tokens).unwrap();

    let who = CrewIdentity {
        device_id: crew().device_id,
        crew_id: format!("{SECRET}crew"),
        staff_id: Some(format!("{SECRET}staff")),
    };
    let sos = t
        .store
        .raise_sos(who.clone(), Some(fix()), Some(format!("{SECRET} note")))
        .unwrap();
    t.store.add_sos_location(sos.id.clone(), fix()).unwrap();
    let mut f = complete_fields();
    f.narrative = Some(format!("{SECRET} narrative"));
    f.address = Some(format!("{SECRET} address"));
    let d = t.store.create_draft(who.clone(), f.clone()).unwrap();
    let poison = t.store.finalize_draft(d.id, 1).unwrap();
    let d = t.store.create_draft(who.clone(), f).unwrap();
    t.store.finalize_draft(d.id, 1).unwrap();
    // Errors carrying field names but never values.
    let mut bad = fix();
    bad.latitude = 95.123_456;
    let _ = t
        .store
        .raise_sos(who.clone(), Some(bad), Some(format!("{SECRET} bad")));

    // Failing syncs, a lost answer, a poison record, then success.
    let faults = server.srv().faults();
    faults.reject_id(&poison.id);
    faults.push_all([
        TestFault::Status {
            code: 503,
            retry_after_secs: None,
        },
        TestFault::DropAfterCommit,
        TestFault::Partial { accept_first: 1 },
    ]);
    for _ in 0..10 {
        let r = t.store.sync_now().unwrap();
        if r.outcome == SyncOutcome::Complete {
            break;
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    assert_eq!(t.store.pending_counts().unwrap().wedged, 1);
    t.store.purge_delivered(0).unwrap();
    t.store.rekey(generate_data_key()).unwrap();
    t.store.close().unwrap();
    let _ = CrewStore::open(t.path_string(), generate_data_key());

    let lines = LINES.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("uploading")) && lines.iter().any(|l| l.contains("retry")),
        "the core logged its work ({} lines)",
        lines.len()
    );
    for l in lines.iter() {
        assert!(!l.contains("CANARY"), "content in a log line: {l}");
        assert!(!l.contains("95.12"), "a coordinate in a log line: {l}");
        assert!(
            !l.contains(&server.token),
            "the device token in a log line: {l}"
        );
    }
}
