//! Opening a damaged CrewSafe database. A valid small database (SOS with follow-ups and a
//! cancel, reports in every outbox state, a purged record, drafts) is written once; each
//! input is a list of byte patches applied to a copy of it. Opening the copy, listing,
//! counting, reading every record and draft, and one more write must each end `Ok` or in a
//! typed `CrewSafeError`: never a panic.
//!
//! Input format: 4-byte patches `(offset: u24 LE, value: u8)`, offset taken modulo the file
//! length; when 3 bytes are left over they give a length (u24 LE, modulo the file length)
//! to truncate the file to.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crewsafe::internals::{crew, fix, DataKey, Slot};
use crewsafe::*;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = *b"crewsafe-fuzz-fixed-key-32-bytes";

struct Template {
    dir: PathBuf,
    bytes: Vec<u8>,
}

fn fields() -> IncidentFields {
    IncidentFields {
        occurred_at: Some(SystemTime::now()),
        location: Some(fix()),
        address: Some("Kenesary st 40".into()),
        kind: Some(IncidentKind::Threat),
        severity: Some(Severity::Moderate),
        staff_harmed: vec![],
        perpetrator_description: None,
        witnesses: vec![Witness {
            name: "Neighbour".into(),
            contact: None,
        }],
        police_called: Some(false),
        police_report_number: None,
        dispatch_call_number: Some("103-556677".into()),
        narrative: Some("Threatened the crew at the door.".into()),
    }
}

/// `$CREWSAFE_FUZZ_DIR` (set by `smoke.sh`, removed when it ends), else `/dev/shm` (a tmpfs:
/// no disk I/O per input), else the temp dir; one sub-folder per process.
fn work_dir() -> PathBuf {
    let base = match std::env::var_os("CREWSAFE_FUZZ_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let dir = base.join(format!("crewsafe-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn build_template() -> Template {
    let dir = work_dir();
    let path = dir.join("template.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let p = path.to_string_lossy().to_string();
    let store = CrewStore::open(p.clone(), KEY.to_vec()).expect("create template");
    let sos = store
        .raise_sos(crew(), Some(fix()), Some("help".into()))
        .expect("sos");
    let loc = store.add_sos_location(sos.id.clone(), fix()).expect("loc");
    store
        .cancel_sos(sos.id.clone(), CancelReason::HelpArrived, None)
        .expect("cancel");
    let sos2 = store.raise_sos(crew(), None, None).expect("sos 2");
    let mut reports = vec![];
    for _ in 0..3 {
        let d = store.create_draft(crew(), fields()).expect("draft");
        reports.push(store.finalize_draft(d.id, 1).expect("finalize").id);
    }
    store.create_draft(crew(), fields()).expect("open draft");
    store
        .create_draft(crew(), IncidentFields::default())
        .expect("empty draft");
    store.close().expect("close template");

    // Outbox states only a server could produce: delivered (with a dispatch status),
    // wedged (with a sealed reason), and delivered with its content purged.
    let key = DataKey::from_bytes(&KEY).expect("key");
    let reason = key
        .seal(
            Slot::new("outbox", "wedged_reason", &reports[1]),
            br#""content.narrative: must not be empty""#,
        )
        .expect("seal");
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.execute(
        "UPDATE records SET state = 'delivered', delivered_at = 1764057600000, \
         dispatch_status = 'acknowledged', attempts = 1 WHERE id = ?1",
        [&sos.id],
    )
    .expect("deliver sos");
    conn.execute(
        "UPDATE records SET state = 'delivered', delivered_at = 1764057600000, attempts = 2 \
         WHERE id = ?1",
        [&loc.id],
    )
    .expect("deliver follow-up");
    conn.execute(
        "UPDATE records SET state = 'wedged', wedged_reason = ?2, attempts = 1 \
         WHERE id = ?1",
        rusqlite::params![reports[1], reason],
    )
    .expect("wedge report");
    conn.execute(
        "UPDATE records SET state = 'delivered', delivered_at = 1, attempts = 1 \
         WHERE id = ?1",
        [&reports[0]],
    )
    .expect("deliver report");
    conn.execute(
        "UPDATE records SET payload = NULL WHERE id = ?1",
        [&reports[0]],
    )
    .expect("purge report");
    conn.execute(
        "UPDATE records SET state = 'sending', attempts = 3 WHERE id = ?1",
        [&sos2.id],
    )
    .expect("sending sos");
    conn.execute(
        "UPDATE lanes SET failures = 2, next_attempt_at = 1764057600000 WHERE lane = 'report'",
        [],
    )
    .expect("lane backoff");
    conn.close().expect("raw close");

    // The template must itself be a healthy store.
    let store = CrewStore::open(p, KEY.to_vec()).expect("reopen template");
    assert_eq!(store.list_records().expect("list").len(), 9);
    store.close().expect("close");
    let bytes = std::fs::read(&path).expect("read template");
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists()
            || std::fs::metadata(format!("{}-wal", path.display()))
                .map(|m| m.len() == 0)
                .unwrap_or(true),
        "template checkpointed into the main file"
    );
    assert!(bytes.len() <= 1 << 24, "patch offsets are u24");
    Template { dir, bytes }
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(build_template)
}

/// Every call on a damaged store: any `CrewSafeError` is fine, a panic is the bug.
fn exercise(path: String) {
    let store: Arc<CrewStore> = match CrewStore::open(path, KEY.to_vec()) {
        Ok(s) => s,
        Err(_) => return,
    };
    if let Ok(entries) = store.list_records() {
        for e in entries {
            let _ = match (e.kind, e.state) {
                (_, SyncState::Draft) => store.get_draft(e.id).map(drop),
                (RecordKind::IncidentReport, _) => store.get_report(e.id).map(drop),
                (RecordKind::Sos, _) => store.get_sos(e.id).map(drop),
                _ => Ok(()),
            };
        }
    }
    let _ = store.pending_counts();
    let _ = store.list_drafts();
    let _ = store.raise_sos(crew(), None, None);
    let _ = store.pending_counts();
    let _ = store.close();
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let mut bytes = t.bytes.clone();
    let len = bytes.len();
    let u24 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], 0]) as usize;
    let mut chunks = data.chunks_exact(4);
    for p in &mut chunks {
        bytes[u24(p) % len] = p[3];
    }
    if let rest @ [_, _, _] = chunks.remainder() {
        bytes.truncate(u24(rest) % len);
    }
    let path = t.dir.join("work.db");
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, &bytes).expect("write work copy");
    exercise(path.to_string_lossy().to_string());
});
