//! The panic button (`raise_sos_now`): raises on the store that `set_crew` armed last.
//! One test in its own binary: the armed store is process-wide, and the tests of one
//! binary run in parallel.

mod common;

use common::*;
use crewsafe::*;

/// The newest SOS on a store.
fn newest_sos(t: &TestStore) -> Sos {
    let page = t
        .store
        .list_records_page(RecordPageRequest {
            order: RecordOrder::NewestFirst,
            limit: 1,
            states: vec![],
            kinds: vec![RecordKind::Sos],
            after: None,
        })
        .unwrap();
    t.store.get_sos(page.entries[0].id.clone()).unwrap()
}

#[test]
fn raise_sos_now_raises_on_the_store_armed_last() {
    // Nothing armed yet.
    assert!(matches!(
        raise_sos_now(51.1, 71.4, 5.0, 1_700_000_000_000),
        Err(CrewSafeError::InvalidState { .. })
    ));

    let a = TestStore::new();
    a.store.set_crew(crew()).unwrap();
    raise_sos_now(51.1694, 71.4491, 6.5, 1_700_000_000_000).unwrap();
    assert_eq!(a.store.pending_counts().unwrap().sos, 1);
    let sos = newest_sos(&a);
    assert_eq!(sos.crew, crew());
    assert_eq!(sos.sync_state, SyncState::Queued);
    let fix = sos.location.unwrap();
    assert_eq!(
        (fix.latitude, fix.longitude, fix.accuracy_m, fix.provider),
        (51.1694, 71.4491, 6.5, LocationProvider::Fused)
    );

    // A second store given a crew takes the button over.
    let b = TestStore::new();
    let mut other = crew();
    other.crew_id = "almaty-brigade-3".into();
    b.store.set_crew(other.clone()).unwrap();
    raise_sos_now(f64::NAN, 0.0, 0.0, 0).unwrap();
    assert_eq!(a.store.pending_counts().unwrap().sos, 1);
    assert_eq!(b.store.pending_counts().unwrap().sos, 1);
    let sos = newest_sos(&b);
    assert_eq!(sos.crew, other);
    assert!(sos.location.is_none(), "a NaN latitude means no fix");

    // A fix out of range is refused and nothing is stored.
    assert!(matches!(
        raise_sos_now(95.0, 0.0, 5.0, 1_700_000_000_000),
        Err(CrewSafeError::InvalidInput { .. })
    ));
    assert_eq!(b.store.pending_counts().unwrap().sos, 1);

    // The armed store closed: a typed error, not an alarm on another store.
    b.store.close().unwrap();
    assert!(matches!(
        raise_sos_now(51.1, 71.4, 5.0, 1_700_000_000_000),
        Err(CrewSafeError::Closed { .. })
    ));
    // Gone altogether: nothing is armed.
    drop(b);
    assert!(matches!(
        raise_sos_now(51.1, 71.4, 5.0, 1_700_000_000_000),
        Err(CrewSafeError::InvalidState { .. })
    ));
    assert_eq!(a.store.pending_counts().unwrap().sos, 1);
}
