//! The store's public contract: SOS, follow-ups, drafts, finalize, queue view, reopen,
//! bad input, concurrency, rekey and destroy.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use crewsafe::*;

fn invalid_field<T: std::fmt::Debug>(r: Result<T, CrewSafeError>) -> String {
    match r {
        Err(CrewSafeError::InvalidInput { field, .. }) => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn sos_with_follow_up_and_cancel() {
    let t = TestStore::new();
    let sos = t
        .store
        .raise_sos(crew(), Some(fix()), Some("aggressive relative".into()))
        .unwrap();
    assert_eq!(sos.state, SosState::Active);
    assert_eq!(sos.sync_state, SyncState::Queued);
    assert!(uuid_like(&sos.id));

    let upd = t.store.add_sos_location(sos.id.clone(), fix()).unwrap();
    assert_eq!(upd.sos_id, sos.id);
    let cancel = t
        .store
        .cancel_sos(
            sos.id.clone(),
            CancelReason::FalseAlarm,
            Some("pocket press".into()),
        )
        .unwrap();

    let got = t.store.get_sos(sos.id.clone()).unwrap();
    assert_eq!(got.state, SosState::Cancelled);
    assert_eq!(got.location_updates, vec![upd]);
    assert_eq!(got.cancellation, Some(cancel));
    assert_eq!(got.note.as_deref(), Some("aggressive relative"));
    assert_eq!(got.raised_at, sos.raised_at);

    // Nothing is appended to a cancelled SOS.
    assert!(matches!(
        t.store
            .cancel_sos(sos.id.clone(), CancelReason::Other, None),
        Err(CrewSafeError::InvalidState { .. })
    ));
    assert!(matches!(
        t.store.add_sos_location(sos.id.clone(), fix()),
        Err(CrewSafeError::InvalidState { .. })
    ));
    let counts = t.store.pending_counts().unwrap();
    assert_eq!(counts.sos, 3);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn draft_edit_conflict_and_finalize() {
    let t = TestStore::new();
    let d = t
        .store
        .create_draft(crew(), IncidentFields::default())
        .unwrap();
    assert_eq!(d.revision, 1);

    let mut fields = complete_fields();
    fields.narrative = None;
    let saved = t
        .store
        .update_draft(d.id.clone(), 1, fields.clone())
        .unwrap();
    assert_eq!(saved.revision, 2);

    // A second screen still holding revision 1 is told the current revision.
    assert_eq!(
        t.store
            .update_draft(d.id.clone(), 1, IncidentFields::default())
            .unwrap_err(),
        CrewSafeError::Conflict {
            current_revision: 2
        }
    );
    let got = t.store.get_draft(d.id.clone()).unwrap();
    assert_eq!(got.fields, fields, "the stale write changed nothing");

    // Finalizing without a narrative names the field and keeps the draft.
    assert_eq!(
        invalid_field(t.store.finalize_draft(d.id.clone(), 2)),
        "narrative"
    );
    assert_eq!(t.store.get_draft(d.id.clone()).unwrap().revision, 2);
    // Finalizing a stale revision is a conflict.
    assert!(matches!(
        t.store.finalize_draft(d.id.clone(), 1),
        Err(CrewSafeError::Conflict {
            current_revision: 2
        })
    ));

    t.store
        .update_draft(d.id.clone(), 2, complete_fields())
        .unwrap();
    let report = t.store.finalize_draft(d.id.clone(), 3).unwrap();
    assert_eq!(report.id, d.id);
    assert_eq!(report.fields, complete_fields_like(&report.fields));
    assert_eq!(report.sync_state, SyncState::Queued);
    assert!(matches!(
        t.store.get_draft(d.id.clone()),
        Err(CrewSafeError::NotFound { .. })
    ));
    assert_eq!(t.store.get_report(d.id.clone()).unwrap(), report);
    // The report is immutable: the draft API no longer reaches it.
    assert!(matches!(
        t.store.update_draft(d.id.clone(), 3, complete_fields()),
        Err(CrewSafeError::NotFound { .. })
    ));
}

/// `complete_fields()` uses `now()` for times, so compare everything but the times.
fn complete_fields_like(f: &IncidentFields) -> IncidentFields {
    let mut c = complete_fields();
    c.occurred_at = f.occurred_at;
    if let (Some(a), Some(b)) = (c.location.as_mut(), f.location.as_ref()) {
        a.fixed_at = b.fixed_at;
    }
    c
}

#[test]
fn queue_view_orders_sos_lane_first_and_counts() {
    let t = TestStore::new();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    let r = t.store.finalize_draft(d.id.clone(), 1).unwrap();
    let s1 = t.store.raise_sos(crew(), None, None).unwrap();
    let f1 = t.store.add_sos_location(s1.id.clone(), fix()).unwrap();
    let d2 = t
        .store
        .create_draft(crew(), IncidentFields::default())
        .unwrap();

    let list = t.store.list_records().unwrap();
    let ids: Vec<_> = list.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        ids,
        vec![s1.id.clone(), f1.id.clone(), r.id.clone(), d2.id.clone()]
    );
    assert_eq!(list[0].kind, RecordKind::Sos);
    assert_eq!(list[0].lane, Some(Lane::Sos));
    assert_eq!(list[1].parent_id.as_deref(), Some(s1.id.as_str()));
    assert_eq!(list[2].lane, Some(Lane::Report));
    assert_eq!(list[3].state, SyncState::Draft);
    assert_eq!(list[3].lane, None);
    assert!(list[0].queue_position < list[1].queue_position);
    assert!(list.iter().all(|e| e.created_at.is_some()));

    assert_eq!(
        t.store.pending_counts().unwrap(),
        PendingCounts {
            sos: 2,
            reports: 1,
            wedged: 0,
            drafts: 1
        }
    );
}

#[test]
fn everything_survives_reopen() {
    let mut t = TestStore::new();
    let sos = t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    let before = t.store.list_records().unwrap();
    t.reopen();
    assert_eq!(t.store.list_records().unwrap(), before);
    assert_eq!(t.store.get_sos(sos.id.clone()).unwrap(), sos);
    assert_eq!(t.store.get_draft(d.id.clone()).unwrap(), d);
}

#[test]
fn wrong_key_is_typed_and_bad_key_length_too() {
    let t = TestStore::new();
    t.store.raise_sos(crew(), None, None).unwrap();
    t.store.close().unwrap();
    assert!(matches!(
        CrewStore::open(t.path_string(), generate_data_key()),
        Err(CrewSafeError::WrongKey { .. })
    ));
    assert!(matches!(
        CrewStore::open(t.path_string(), vec![1; 16]),
        Err(CrewSafeError::InvalidKey { .. })
    ));
    assert!(matches!(
        t.store.pending_counts(),
        Err(CrewSafeError::Closed { .. })
    ));
}

#[test]
fn bad_input_is_typed_and_changes_nothing() {
    let t = TestStore::new();
    let sos = t.store.raise_sos(crew(), Some(fix()), None).unwrap();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    let before = t.store.list_records().unwrap();
    let draft_before = t.store.get_draft(d.id.clone()).unwrap();

    let mut bad = fix();
    bad.latitude = f64::NAN;
    assert_eq!(
        invalid_field(t.store.raise_sos(crew(), Some(bad.clone()), None)),
        "location.latitude"
    );
    bad.latitude = 91.0;
    assert_eq!(
        invalid_field(t.store.add_sos_location(sos.id.clone(), bad)),
        "location.latitude"
    );
    let mut bad = fix();
    bad.longitude = 181.0;
    assert_eq!(
        invalid_field(t.store.raise_sos(crew(), Some(bad), None)),
        "location.longitude"
    );
    let mut bad = fix();
    bad.fixed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
    assert_eq!(
        invalid_field(t.store.raise_sos(crew(), Some(bad), None)),
        "location.fixed_at"
    );
    let mut who = crew();
    who.device_id = "".into();
    assert_eq!(
        invalid_field(t.store.raise_sos(who, None, None)),
        "crew.device_id"
    );
    let long = Some("x".repeat(MAX_NOTE_CHARS + 1));
    assert_eq!(
        invalid_field(t.store.raise_sos(crew(), None, long.clone())),
        "note"
    );
    assert_eq!(
        invalid_field(
            t.store
                .cancel_sos(sos.id.clone(), CancelReason::Other, long)
        ),
        "note"
    );
    let mut f = complete_fields();
    f.narrative = Some("n".repeat(MAX_NARRATIVE_CHARS + 1));
    assert_eq!(
        invalid_field(t.store.update_draft(d.id.clone(), 1, f)),
        "narrative"
    );
    let mut f = complete_fields();
    f.address = Some("a".repeat(MAX_ADDRESS_CHARS + 1));
    assert_eq!(invalid_field(t.store.create_draft(crew(), f)), "address");

    // Unknown and malformed ids.
    let unknown = "00000000-0000-4000-8000-000000000000".to_string();
    for r in [
        t.store.get_sos(unknown.clone()).map(|_| ()),
        t.store.add_sos_location(unknown.clone(), fix()).map(|_| ()),
        t.store.get_draft(unknown.clone()).map(|_| ()),
        t.store.delete_draft(unknown.clone()),
        t.store.finalize_draft(unknown.clone(), 1).map(|_| ()),
        t.store.get_report(unknown.clone()).map(|_| ()),
        t.store
            .update_draft(unknown.clone(), 1, IncidentFields::default())
            .map(|_| ()),
    ] {
        assert!(matches!(r, Err(CrewSafeError::NotFound { .. })), "{r:?}");
    }
    assert_eq!(
        invalid_field(t.store.get_sos("not-a-uuid".into())),
        "sos_id"
    );
    // An SOS id is not a report id and vice versa.
    assert!(matches!(
        t.store.get_report(sos.id.clone()),
        Err(CrewSafeError::NotFound { .. })
    ));

    assert_eq!(t.store.list_records().unwrap(), before);
    assert_eq!(t.store.get_draft(d.id.clone()).unwrap(), draft_before);
}

#[test]
fn two_threads_save_at_once() {
    let t = TestStore::new();
    let mut handles = vec![];
    for _ in 0..4 {
        let store = Arc::clone(&t.store);
        handles.push(std::thread::spawn(move || {
            for _ in 0..25 {
                store.raise_sos(crew(), Some(fix()), None).unwrap();
                let d = store
                    .create_draft(crew(), IncidentFields::default())
                    .unwrap();
                store.update_draft(d.id, 1, complete_fields()).unwrap();
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let c = t.store.pending_counts().unwrap();
    assert_eq!((c.sos, c.drafts), (100, 100));
}

#[test]
fn rekey_switches_keys_and_keeps_everything() {
    let mut t = TestStore::new();
    let sos = t
        .store
        .raise_sos(crew(), Some(fix()), Some("note".into()))
        .unwrap();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    let d2 = t.store.create_draft(crew(), complete_fields()).unwrap();
    t.store.finalize_draft(d2.id.clone(), 1).unwrap();
    let before = t.store.list_records().unwrap();

    let new_key = generate_data_key();
    assert!(matches!(
        t.store.rekey(vec![0; 3]),
        Err(CrewSafeError::InvalidKey { .. })
    ));
    t.store.rekey(new_key.clone()).unwrap();
    assert_eq!(t.store.list_records().unwrap(), before);
    t.store.close().unwrap();
    assert!(matches!(
        CrewStore::open(t.path_string(), t.key.clone()),
        Err(CrewSafeError::WrongKey { .. })
    ));
    t.key = new_key;
    t.reopen();
    assert_eq!(t.store.get_sos(sos.id.clone()).unwrap(), sos);
    assert_eq!(t.store.get_draft(d.id.clone()).unwrap(), d);
    assert_eq!(t.store.list_records().unwrap(), before);
}

#[test]
fn destroy_needs_confirmation_and_removes_files() {
    let t = TestStore::new();
    t.store.raise_sos(crew(), None, None).unwrap();
    assert!(!t.file_bytes().is_empty());
    assert_eq!(invalid_field(t.store.destroy("yes".into())), "confirmation");
    t.store.raise_sos(crew(), None, None).unwrap();
    t.store.destroy(DESTROY_CONFIRMATION.into()).unwrap();
    assert!(t.file_bytes().is_empty(), "db, -wal and -shm removed");
    assert!(matches!(
        t.store.pending_counts(),
        Err(CrewSafeError::Closed { .. })
    ));
}

#[test]
fn delete_draft_removes_it() {
    let t = TestStore::new();
    let d = t.store.create_draft(crew(), complete_fields()).unwrap();
    t.store.delete_draft(d.id.clone()).unwrap();
    assert!(t.store.list_drafts().unwrap().is_empty());
    assert_eq!(t.store.pending_counts().unwrap().drafts, 0);
}

/// A store of schema v3 that an older app version left with rows `sending` on disk (that state
/// was once written during an upload): the upgrade puts them back in the queue.
#[test]
fn rows_left_sending_by_an_older_version_are_queued_again_on_upgrade() {
    let mut t = TestStore::new();
    let sos = t.store.raise_sos(crew(), None, None).unwrap();
    t.store.close().unwrap();
    rusqlite::Connection::open(&t.path)
        .unwrap()
        .execute_batch(
            "UPDATE records SET state = 'sending', attempts = 1;
             ALTER TABLE lanes DROP COLUMN floor;
             ALTER TABLE lanes DROP COLUMN pending;
             ALTER TABLE lanes DROP COLUMN pending_as_of;
             DROP TABLE attachments;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    t.reopen_after_close();
    let list = t.store.list_records().unwrap();
    assert_eq!(
        (list[0].id.clone(), list[0].state),
        (sos.id, SyncState::Queued)
    );
    assert_eq!(list[0].attempts, 1);
}

#[test]
fn a_location_fix_from_the_future_is_refused_like_an_incident_time() {
    let t = TestStore::new();
    let sos = t.store.raise_sos(crew(), None, None).unwrap();
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31
    for at in [SystemTime::now() + Duration::from_secs(86_400), far] {
        let late = LocationFix {
            fixed_at: at,
            ..fix()
        };
        assert_eq!(
            invalid_field(t.store.raise_sos(crew(), Some(late.clone()), None)),
            "location.fixed_at"
        );
        assert_eq!(
            invalid_field(t.store.add_sos_location(sos.id.clone(), late.clone())),
            "location.fixed_at"
        );
        let mut fields = complete_fields();
        fields.location = Some(late);
        assert_eq!(
            invalid_field(t.store.create_draft(crew(), fields)),
            "location.fixed_at"
        );
    }
    // A clock a few minutes ahead is tolerated, as for incident times.
    let ahead = LocationFix {
        fixed_at: SystemTime::now() + Duration::from_secs(120),
        ..fix()
    };
    t.store.add_sos_location(sos.id.clone(), ahead).unwrap();
    let c = t.store.pending_counts().unwrap();
    assert_eq!(c.sos, 2, "only the two good records were stored");
}

#[test]
fn every_error_has_a_message() {
    let t = TestStore::new();
    t.store.close().unwrap();
    let errors = [
        CrewStore::open(t.path_string(), generate_data_key())
            .err()
            .unwrap(),
        t.store.pending_counts().unwrap_err(),
        CrewSafeError::not_configured(),
        CrewSafeError::unauthorized(),
        CrewSafeError::pin_mismatch(),
        CrewSafeError::ServerRejectedRequest { status: 307 },
        CrewSafeError::InvalidDeviceToken {
            reason: "the token is empty".into(),
        },
    ];
    for e in errors {
        assert!(e.to_string().len() > 10, "{e:?}");
    }
}

#[test]
fn the_quick_sos_path_raises_for_the_crew_set_once() {
    let t = TestStore::new();
    assert!(matches!(
        t.store.raise_sos_quick(51.1, 71.4, 5.0, 1_700_000_000_000),
        Err(CrewSafeError::InvalidState { .. })
    ));
    let mut bad = crew();
    bad.crew_id = String::new();
    assert!(matches!(
        t.store.set_crew(bad),
        Err(CrewSafeError::InvalidInput { .. })
    ));
    t.store.set_crew(crew()).unwrap();
    let at = SystemTime::now() - Duration::from_secs(5);
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let id = t.store.raise_sos_quick(51.1694, 71.4491, 6.5, ms).unwrap();
    let sos = t.store.get_sos(id).unwrap();
    assert_eq!(sos.crew, crew());
    let fix = sos.location.unwrap();
    assert_eq!(
        (fix.latitude, fix.longitude, fix.accuracy_m),
        (51.1694, 71.4491, 6.5)
    );
    assert_eq!(fix.provider, LocationProvider::Fused);
    let no_fix = t.store.raise_sos_quick(f64::NAN, 0.0, 0.0, 0).unwrap();
    assert!(t.store.get_sos(no_fix).unwrap().location.is_none());
    assert!(matches!(
        t.store.raise_sos_quick(95.0, 0.0, 5.0, ms),
        Err(CrewSafeError::InvalidInput { .. })
    ));
    assert_eq!(t.store.pending_counts().unwrap().sos, 2);
}
