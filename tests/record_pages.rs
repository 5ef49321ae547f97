//! The paginated record list: pages walk the same records as `list_records`, in upload order
//! or newest first, filtered by state and kind; bad limits and cursors are typed errors.

mod common;

use common::net::{config, Server, Tokens};
use common::*;
use crewsafe::*;

fn request(order: RecordOrder, limit: u32) -> RecordPageRequest {
    RecordPageRequest {
        order,
        limit,
        states: vec![],
        kinds: vec![],
        after: None,
    }
}

/// Every page of a request, followed to the end.
fn walk(store: &CrewStore, mut req: RecordPageRequest) -> Vec<QueueEntry> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let page = store.list_records_page(req.clone()).unwrap();
        assert!(page.entries.len() <= req.limit as usize);
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) => req.after = Some(c),
            None => return out,
        }
    }
    panic!("pages never ended");
}

fn ids(entries: &[QueueEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

/// Reports and SOS-lane records interleaved, plus a draft.
fn fill(store: &CrewStore) {
    for i in 0..12 {
        let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
        if i % 2 == 0 {
            store.add_sos_location(sos.id, fix()).unwrap();
        }
        let d = store.create_draft(crew(), complete_fields()).unwrap();
        store.finalize_draft(d.id, d.revision).unwrap();
    }
    store.create_draft(crew(), complete_fields()).unwrap();
}

#[test]
fn pages_walk_the_whole_list_in_both_orders() {
    let t = TestStore::new();
    fill(&t.store);
    let all: Vec<QueueEntry> = t
        .store
        .list_records()
        .unwrap()
        .into_iter()
        .filter(|e| e.state != SyncState::Draft)
        .collect();
    assert_eq!(all.len(), 30);
    for limit in [1, 7, 30, 500] {
        let upload = walk(&t.store, request(RecordOrder::Upload, limit));
        assert_eq!(upload, all, "upload order, pages of {limit}");
        let newest = walk(&t.store, request(RecordOrder::NewestFirst, limit));
        let mut by_seq = all.clone();
        by_seq.sort_by_key(|e| std::cmp::Reverse(e.queue_position));
        assert_eq!(ids(&newest), ids(&by_seq), "newest first, pages of {limit}");
    }
    // Entries carry their decrypted time, as in the full list.
    assert!(all.iter().all(|e| e.created_at.is_some()));
}

#[test]
fn pages_filter_by_kind_and_state() {
    let server = Server::start();
    let t = TestStore::new();
    fill(&t.store);
    let reports = walk(
        &t.store,
        RecordPageRequest {
            kinds: vec![RecordKind::IncidentReport],
            ..request(RecordOrder::Upload, 5)
        },
    );
    assert_eq!(reports.len(), 12);
    assert!(reports.iter().all(|e| e.kind == RecordKind::IncidentReport));

    // Deliver everything but one poisoned report.
    let poison = reports[3].id.clone();
    server.srv().faults().reject_id(poison.clone());
    t.store
        .configure_sync(
            config(&server.url),
            Tokens::new(&server.token, &server.token),
        )
        .unwrap();
    t.store.sync_now().unwrap();
    let new = t.store.raise_sos(crew(), None, None).unwrap();

    let by_state = |states: Vec<SyncState>| {
        walk(
            &t.store,
            RecordPageRequest {
                states,
                ..request(RecordOrder::NewestFirst, 4)
            },
        )
    };
    assert_eq!(
        ids(&by_state(vec![SyncState::Wedged])),
        vec![poison.clone()]
    );
    assert_eq!(
        ids(&by_state(vec![SyncState::Queued])),
        vec![new.id.clone()]
    );
    assert_eq!(by_state(vec![SyncState::Delivered]).len(), 29);
    assert_eq!(
        by_state(vec![SyncState::Queued, SyncState::Wedged]).len(),
        2
    );
    assert!(by_state(vec![SyncState::Draft]).is_empty());
    assert!(by_state(vec![SyncState::Sending]).is_empty());
    let sos_delivered = walk(
        &t.store,
        RecordPageRequest {
            states: vec![SyncState::Delivered],
            kinds: vec![RecordKind::Sos],
            ..request(RecordOrder::Upload, 3)
        },
    );
    assert_eq!(sos_delivered.len(), 12);
    assert!(sos_delivered.iter().all(|e| e.kind == RecordKind::Sos
        && e.state == SyncState::Delivered
        && e.dispatch_status == Some(DispatchStatus::Delivered)));
}

#[test]
fn bad_limits_and_cursors_are_typed_errors() {
    let t = TestStore::new();
    fill(&t.store);
    for limit in [0, 501] {
        match t
            .store
            .list_records_page(request(RecordOrder::Upload, limit))
        {
            Err(CrewSafeError::InvalidInput { field, .. }) => assert_eq!(field, "limit"),
            other => panic!("{limit}: {other:?}"),
        }
    }
    let upload_cursor = t
        .store
        .list_records_page(request(RecordOrder::Upload, 2))
        .unwrap()
        .next_cursor
        .unwrap();
    for (order, cursor) in [
        (RecordOrder::NewestFirst, upload_cursor.clone()),
        (RecordOrder::Upload, "n5".to_string()),
        (RecordOrder::Upload, "ux.3".to_string()),
        (RecordOrder::Upload, "garbage".to_string()),
    ] {
        let req = RecordPageRequest {
            after: Some(cursor.clone()),
            ..request(order, 2)
        };
        match t.store.list_records_page(req) {
            Err(CrewSafeError::InvalidInput { field, .. }) => assert_eq!(field, "after"),
            other => panic!("{cursor}: {other:?}"),
        }
    }
}
