//! Test fault mode, in-process and over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use crewsafe_server::protocol::{
    parse_retry_after, BatchResponse, ItemStatus, TestFault, TestFaultsState,
};
use crewsafe_server::POISON_REASON;
use serde_json::json;

#[test]
fn status_fault_answers_without_processing_then_the_next_request_works() {
    let env = Env::start();
    env.server.faults().push_all([
        TestFault::Status {
            code: 503,
            retry_after_secs: Some(7),
        },
        TestFault::Status {
            code: 429,
            retry_after_secs: Some(2),
        },
        TestFault::Status {
            code: 500,
            retry_after_secs: None,
        },
    ]);
    let s = sos();
    for (code, retry) in [(503, Some(7)), (429, Some(2)), (500, None)] {
        let resp = env.post_records(std::slice::from_ref(&s));
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| parse_retry_after(v.to_str().unwrap(), chrono::Utc::now()).unwrap());
        assert_eq!(retry_after, retry);
        expect_error(resp, code, "test_fault");
        assert_eq!(env.store().record_count().unwrap(), 0, "not processed");
    }
    assert!(env.server.faults().pending().is_empty());
    expect_item(
        &env.batch(std::slice::from_ref(&s))[0],
        &id_of(&s),
        ItemStatus::Accepted,
    );
    assert_eq!(env.server.batch_requests(), 4);
}

#[test]
fn faults_are_consumed_only_by_authenticated_batch_requests() {
    let env = Env::start();
    env.server.faults().push(TestFault::Status {
        code: 503,
        retry_after_secs: None,
    });
    expect_error(env.post_raw(Some("wrong"), "{}"), 401, "unauthorized");
    assert_eq!(env.server.faults().pending().len(), 1);
    expect_error(env.post_records(&[sos()]), 503, "test_fault");
    assert!(env.server.faults().pending().is_empty());
    assert_eq!(env.server.batch_requests(), 2);
}

#[test]
fn delay_fault_waits_then_processes_even_if_the_client_gave_up() {
    let env = Env::start();
    env.server.faults().push(TestFault::Delay { ms: 400 });
    let s = sos();
    let started = Instant::now();
    let res = env.batch(std::slice::from_ref(&s));
    assert!(started.elapsed() >= Duration::from_millis(400));
    expect_item(&res[0], &id_of(&s), ItemStatus::Accepted);

    // The client times out during the delay; the server still stores the batch.
    env.server.faults().push(TestFault::Delay { ms: 600 });
    let s2 = sos();
    let err = env
        .client
        .post(env.url("/v1/records:batch"))
        .bearer_auth(&env.token)
        .timeout(Duration::from_millis(150))
        .body(json!({"protocol": 1, "records": [s2.clone()]}).to_string())
        .send()
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.store().count_of(&id_of(&s2)).unwrap() == 0 {
        assert!(Instant::now() < deadline, "delayed batch never stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    expect_item(
        &env.batch(std::slice::from_ref(&s2))[0],
        &id_of(&s2),
        ItemStatus::Duplicate,
    );
}

#[test]
fn drop_after_commit_loses_the_answer_but_the_records_are_stored() {
    let env = Env::start();
    env.server.faults().push(TestFault::DropAfterCommit);
    let s = sos();
    let r = report();
    let body = json!({"protocol": 1, "records": [s.clone(), r.clone()]}).to_string();
    let err = env
        .client
        .post(env.url("/v1/records:batch"))
        .bearer_auth(&env.token)
        .body(body)
        .send()
        .expect_err("the client must not get an answer");
    assert!(!err.is_timeout(), "closed, not timed out: {err}");
    assert!(err.status().is_none());

    let stored = env.store().records().unwrap();
    assert_eq!(
        stored.len(),
        2,
        "committed before the connection was dropped"
    );
    // The resend is answered duplicate with the original received_at.
    let res = env.batch(&[s.clone(), r.clone()]);
    assert_eq!(
        expect_item(&res[0], &id_of(&s), ItemStatus::Duplicate).received_at,
        Some(stored[0].received_at)
    );
    expect_item(&res[1], &id_of(&r), ItemStatus::Duplicate);
    assert_eq!(env.store().record_count().unwrap(), 2);
    assert_eq!(env.server.batch_requests(), 2);
}

#[test]
fn truncate_after_commit_sends_200_then_a_broken_body() {
    let env = Env::start();
    env.server.faults().push(TestFault::TruncateAfterCommit);
    let s = sos();
    let resp = env.post_records(std::slice::from_ref(&s));
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().is_err(), "the body must fail to read");
    assert_eq!(env.store().count_of(&id_of(&s)).unwrap(), 1);
    expect_item(
        &env.batch(std::slice::from_ref(&s))[0],
        &id_of(&s),
        ItemStatus::Duplicate,
    );
}

#[test]
fn partial_fault_processes_and_answers_only_the_first_records() {
    let env = Env::start();
    env.server
        .faults()
        .push(TestFault::Partial { accept_first: 1 });
    let a = sos();
    let b = report();
    let c = sos_location(&id_of(&a), 1.0, T0);
    let res = env.batch(&[a.clone(), b.clone(), c.clone()]);
    assert_eq!(res.len(), 1, "results for unprocessed records are absent");
    expect_item(&res[0], &id_of(&a), ItemStatus::Accepted);
    let store = env.store();
    assert_eq!(store.count_of(&id_of(&a)).unwrap(), 1);
    assert_eq!(store.count_of(&id_of(&b)).unwrap(), 0);
    assert_eq!(store.count_of(&id_of(&c)).unwrap(), 0);

    // Resending everything completes the batch.
    let res = env.batch(&[a.clone(), b.clone(), c.clone()]);
    expect_item(&res[0], &id_of(&a), ItemStatus::Duplicate);
    expect_item(&res[1], &id_of(&b), ItemStatus::Accepted);
    expect_item(&res[2], &id_of(&c), ItemStatus::Accepted);

    env.server
        .faults()
        .push(TestFault::Partial { accept_first: 0 });
    let d = sos();
    assert!(env.batch(std::slice::from_ref(&d)).is_empty());
    assert_eq!(env.store().count_of(&id_of(&d)).unwrap(), 0);
}

#[test]
fn reject_id_poisons_a_record_until_cleared() {
    let env = Env::start();
    let poison = sos();
    let fine = report();
    env.server.faults().reject_id(id_of(&poison));
    for _ in 0..2 {
        let res = env.batch(&[poison.clone(), fine.clone()]);
        let item = expect_item(&res[0], &id_of(&poison), ItemStatus::Rejected);
        assert_eq!(item.reason.as_deref(), Some(POISON_REASON));
        assert_eq!(item.reason.as_deref(), Some("poison record (test fault)"));
        assert!(matches!(
            res[1].status,
            ItemStatus::Accepted | ItemStatus::Duplicate
        ));
    }
    assert_eq!(env.store().count_of(&id_of(&poison)).unwrap(), 0);
    assert!(
        env.server.faults().pending().is_empty(),
        "reject_id is not one-shot"
    );
    env.server.faults().clear();
    expect_item(
        &env.batch(std::slice::from_ref(&poison))[0],
        &id_of(&poison),
        ItemStatus::Accepted,
    );
}

#[test]
fn http_fault_api_queues_lists_and_clears() {
    let env = Env::start();
    let faults_url = env.url("/test/faults");
    let poison = sos();
    let body = json!([
        {"fault": "status", "code": 503, "retry_after_secs": 1},
        {"fault": "partial", "accept_first": 0},
        {"fault": "reject_id", "id": id_of(&poison)},
        {"fault": "delay", "ms": 1},
        {"fault": "drop_after_commit"},
        {"fault": "truncate_after_commit"}
    ]);
    let resp = env
        .client
        .post(&faults_url)
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let state: TestFaultsState = parse(resp);
    assert_eq!(state.pending.len(), 5);
    assert_eq!(
        state.pending[0],
        TestFault::Status {
            code: 503,
            retry_after_secs: Some(1)
        }
    );
    assert_eq!(state.reject_ids, vec![id_of(&poison)]);

    // Consumed in order.
    let resp = env.post_records(std::slice::from_ref(&poison));
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
    expect_error(resp, 503, "test_fault");
    assert!(env.batch(std::slice::from_ref(&poison)).is_empty());
    let state: TestFaultsState = parse(env.client.get(&faults_url).send().unwrap());
    assert_eq!(state.pending.len(), 3);
    assert_eq!(state.batch_requests, 2);

    // A single object is accepted too; bad input is 400.
    let resp = env
        .client
        .post(&faults_url)
        .body(r#"{"fault":"status","code":429}"#)
        .send()
        .unwrap();
    assert_eq!(parse::<TestFaultsState>(resp).pending.len(), 4);
    let resp = env
        .client
        .post(&faults_url)
        .body(r#"[{"fault":"explode"}]"#)
        .send()
        .unwrap();
    expect_error(resp, 400, "malformed");
    let resp = env
        .client
        .post(&faults_url)
        .body(r#"[{"fault":"status","code":200}]"#)
        .send()
        .unwrap();
    expect_error(resp, 400, "malformed");

    let resp = env.client.delete(&faults_url).send().unwrap();
    let state: TestFaultsState = parse(resp);
    assert!(state.pending.is_empty());
    assert!(state.reject_ids.is_empty());
    assert_eq!(state.batch_requests, 2, "clearing keeps the counter");
    let res: BatchResponse = parse(env.post_records(std::slice::from_ref(&poison)));
    expect_item(&res.results[0], &id_of(&poison), ItemStatus::Accepted);
}

#[test]
fn faults_do_nothing_without_test_fault_mode() {
    let env = Env::start_with(false);
    // Over HTTP the endpoint does not exist, so nothing can be queued; requests are normal.
    let resp = env
        .client
        .post(env.url("/test/faults"))
        .body(r#"[{"fault":"status","code":503}]"#)
        .send()
        .unwrap();
    expect_error(resp, 404, "not_found");
    let s = sos();
    expect_item(
        &env.batch(std::slice::from_ref(&s))[0],
        &id_of(&s),
        ItemStatus::Accepted,
    );
    assert_eq!(env.server.batch_requests(), 1);
}
