//! At-rest secrecy: canary strings written through every API never appear in the files,
//! raw, base64 or hex; sealed values cannot be moved between rows; a wrong key leaves the
//! file byte-for-byte untouched.

mod common;

use base64::Engine;
use common::*;
use crewsafe::*;
use sha2::{Digest, Sha256};

const CANARIES: &[&str] = &[
    "CANARYsosnote7731",
    "CANARYcancel5512",
    "CANARYaddress9044",
    "CANARYnarrative2210",
    "CANARYperp3391",
    "CANARYwitness8820",
    "CANARYinjury4471",
    "CANARYstaffname6602",
    "CANARYpolice1188",
    "CANARYdispatch3307",
    "CANARYdeleted0955",
    "CANARYeditedaway7004",
    "CANARYcrew2626",
    "CANARYdevice5151",
];

/// The coordinates used below, as decimal text and as raw f64 bytes.
const LAT: f64 = 43.238_949_123;
const LON: f64 = 76.889_709_456;

fn encodings(s: &[u8]) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex_lower: String = s.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        s.to_vec(),
        b64.encode(s).into_bytes(),
        hex_lower.clone().into_bytes(),
        hex_lower.to_uppercase().into_bytes(),
    ]
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

fn fields(tag: &str) -> IncidentFields {
    let mut f = complete_fields();
    f.address = Some(format!("{tag}CANARYaddress9044"));
    f.narrative = Some("CANARYnarrative2210 long story".into());
    f.perpetrator_description = Some("CANARYperp3391".into());
    f.witnesses[0].name = "CANARYwitness8820".into();
    f.staff_harmed[0].injury_description = Some("CANARYinjury4471".into());
    f.staff_harmed[0].name = Some("CANARYstaffname6602".into());
    f.police_report_number = Some("CANARYpolice1188".into());
    f.dispatch_call_number = Some("CANARYdispatch3307".into());
    f
}

#[test]
fn no_plaintext_in_db_wal_or_shm() {
    let t = TestStore::new();
    let who = CrewIdentity {
        device_id: "CANARYdevice5151".into(),
        crew_id: "CANARYcrew2626".into(),
        staff_id: None,
    };
    let mut where_ = fix();
    where_.latitude = LAT;
    where_.longitude = LON;
    let sos = t
        .store
        .raise_sos(
            who.clone(),
            Some(where_.clone()),
            Some("CANARYsosnote7731".into()),
        )
        .unwrap();
    t.store
        .add_sos_location(sos.id.clone(), where_.clone())
        .unwrap();
    t.store
        .cancel_sos(
            sos.id.clone(),
            CancelReason::Other,
            Some("CANARYcancel5512".into()),
        )
        .unwrap();
    // Created, edited (the first content must not linger), finalized.
    let d = t.store.create_draft(who.clone(), fields("x")).unwrap();
    let mut edited = fields("y");
    edited.narrative = Some("CANARYeditedaway7004".into());
    t.store.update_draft(d.id.clone(), 1, edited).unwrap();
    t.store.update_draft(d.id.clone(), 2, fields("z")).unwrap();
    t.store.finalize_draft(d.id.clone(), 3).unwrap();
    // Created and deleted.
    let mut gone = fields("w");
    gone.narrative = Some("CANARYdeleted0955".into());
    let d2 = t.store.create_draft(who, gone).unwrap();
    t.store.delete_draft(d2.id).unwrap();

    // Scan before and after a checkpoint: both the WAL and the main file.
    for checkpoint in [false, true] {
        if checkpoint {
            t.store.checkpoint().unwrap();
        }
        let files = t.file_bytes();
        assert!(files.iter().any(|(p, _)| p.ends_with(".db")));
        scan(&files);
        for (path, bytes) in &files {
            for coord in [LAT, LON] {
                assert!(
                    !find(bytes, &coord.to_le_bytes()),
                    "coordinate bytes in {path}"
                );
                assert!(
                    !find(bytes, &coord.to_be_bytes()),
                    "coordinate bytes in {path}"
                );
                assert!(
                    !find(bytes, coord.to_string().as_bytes()),
                    "coordinate text in {path}"
                );
            }
        }
    }
    // The content is still all there for the key holder.
    let got = t.store.get_sos(sos.id).unwrap();
    assert_eq!(got.note.as_deref(), Some("CANARYsosnote7731"));
}

#[test]
fn scan_would_find_plaintext() {
    // The scanner itself works: a plain SQLite file with a canary is caught.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plain.db");
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('CANARYsosnote7731');")
        .unwrap();
    drop(c);
    let bytes = std::fs::read(&p).unwrap();
    assert!(find(&bytes, b"CANARYsosnote7731"));
}

fn sha(path: &std::path::Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn wrong_key_leaves_file_untouched() {
    let t = TestStore::new();
    t.store
        .raise_sos(crew(), Some(fix()), Some("x".into()))
        .unwrap();
    t.store.close().unwrap();
    let before = sha(&t.path);
    for _ in 0..3 {
        assert!(matches!(
            CrewStore::open(t.path_string(), generate_data_key()),
            Err(CrewSafeError::WrongKey { .. })
        ));
    }
    assert_eq!(sha(&t.path), before);
    // And the right key still works afterwards.
    CrewStore::open(t.path_string(), t.key.clone()).unwrap();
}

#[test]
fn sealed_value_moved_to_another_row_fails() {
    let t = TestStore::new();
    let a = t
        .store
        .raise_sos(crew(), None, Some("first".into()))
        .unwrap();
    let b = t
        .store
        .raise_sos(crew(), None, Some("second".into()))
        .unwrap();
    t.store.close().unwrap();
    {
        let c = rusqlite::Connection::open(&t.path).unwrap();
        c.execute(
            "UPDATE records SET payload = (SELECT payload FROM records WHERE id = ?1) WHERE id = ?2",
            [&a.id, &b.id],
        )
        .unwrap();
    }
    let store = CrewStore::open(t.path_string(), t.key.clone()).unwrap();
    assert_eq!(
        store.get_sos(a.id.clone()).unwrap().note.as_deref(),
        Some("first")
    );
    assert!(matches!(
        store.get_sos(b.id.clone()),
        Err(CrewSafeError::Corrupted { .. })
    ));
}

#[test]
fn flipped_bit_in_file_is_detected() {
    let t = TestStore::new();
    let a = t
        .store
        .raise_sos(crew(), None, Some("content".into()))
        .unwrap();
    t.store.close().unwrap();
    {
        let c = rusqlite::Connection::open(&t.path).unwrap();
        let mut blob: Vec<u8> = c
            .query_row("SELECT payload FROM records WHERE id = ?1", [&a.id], |r| {
                r.get(0)
            })
            .unwrap();
        let mid = blob.len() / 2;
        blob[mid] ^= 0x01;
        c.execute(
            "UPDATE records SET payload = ?1 WHERE id = ?2",
            rusqlite::params![blob, a.id],
        )
        .unwrap();
    }
    let store = CrewStore::open(t.path_string(), t.key.clone()).unwrap();
    assert!(matches!(
        store.get_sos(a.id),
        Err(CrewSafeError::Corrupted { .. })
    ));
}

#[test]
fn error_messages_carry_no_content() {
    let t = TestStore::new();
    let mut f = complete_fields();
    f.narrative = Some(format!(
        "CANARYnarrative2210{}",
        "x".repeat(MAX_NARRATIVE_CHARS)
    ));
    let e = t.store.create_draft(crew(), f).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(!text.contains("CANARY"), "{text}");
    let mut bad = fix();
    bad.latitude = 123.456_789;
    let e = t.store.raise_sos(crew(), Some(bad), None).unwrap_err();
    assert!(!format!("{e} {e:?}").contains("123.45"));
}

/// Fails if any canary appears, raw, base64 or hex, in any of the files; the files must hold
/// real data.
fn scan(files: &[(String, Vec<u8>)]) {
    assert!(
        files.iter().map(|(_, b)| b.len()).sum::<usize>() > 8192,
        "the scan saw real files"
    );
    for (path, bytes) in files {
        for canary in CANARIES {
            for enc in encodings(canary.as_bytes()) {
                assert!(!find(bytes, &enc), "{canary} found in {path}");
            }
        }
    }
}

fn assert_no_canaries(t: &TestStore) {
    t.store.checkpoint().unwrap();
    scan(&t.file_bytes());
}

#[test]
fn no_plaintext_after_sync_purge_and_rekey() {
    use common::net::{config, Server, Tokens};
    let server = Server::start();
    let t = TestStore::new();
    t.store
        .configure_sync(
            config(&server.url),
            Tokens::new(&server.token, &server.token),
        )
        .unwrap();
    let mut who = crew();
    who.crew_id = "CANARYcrew2626".into();
    // Offline work, with a poison record so a server reason gets stored too.
    let sos = t
        .store
        .raise_sos(who.clone(), Some(fix()), Some("CANARYsosnote7731".into()))
        .unwrap();
    t.store
        .cancel_sos(
            sos.id.clone(),
            CancelReason::Other,
            Some("CANARYcancel5512".into()),
        )
        .unwrap();
    let d = t.store.create_draft(who.clone(), fields("a")).unwrap();
    let poison = t.store.finalize_draft(d.id, 1).unwrap();
    let d = t.store.create_draft(who.clone(), fields("b")).unwrap();
    t.store.finalize_draft(d.id, 1).unwrap();
    server.srv().faults().reject_id(&poison.id);
    let r = t.store.sync_now().unwrap();
    assert_eq!((r.accepted, r.wedged), (3, 1));
    assert_no_canaries(&t);
    assert_eq!(t.store.purge_delivered(0).unwrap(), 3);
    assert_no_canaries(&t);
    t.store.rekey(generate_data_key()).unwrap();
    assert_no_canaries(&t);
    // The wedged report is still readable for the crew after all that.
    assert!(t.store.get_report(poison.id).is_ok());
}
