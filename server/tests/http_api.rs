//! The batch, SOS status and dispatcher endpoints over real HTTP on 127.0.0.1.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;
use crewsafe_server::protocol::{
    CancelReason, DispatchSos, DispatchSosList, DispatchStatus, ItemStatus, Kind, Lane,
    SosStatusResponse, MAX_BATCH_RECORDS, MAX_BODY_BYTES,
};
use crewsafe_server::{enroll_device, enroll_dispatcher};
use serde_json::{json, Value};

#[test]
fn accepted_then_duplicate_with_the_original_received_at() {
    let env = Env::start();
    let s = sos();
    let r = report();
    let first = env.batch(&[s.clone(), r.clone()]);
    assert_eq!(first.len(), 2);
    let at_s = expect_item(&first[0], &id_of(&s), ItemStatus::Accepted).received_at;
    let at_r = expect_item(&first[1], &id_of(&r), ItemStatus::Accepted).received_at;

    // Stored as sent, in receive order, with the server's received_at.
    let stored = env.store().records().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, id_of(&s));
    assert_eq!(stored[0].device_id, DEVICE);
    assert_eq!(stored[0].kind, Kind::Sos);
    assert_eq!(stored[0].lane, Lane::Sos);
    assert_eq!(stored[0].content, s["content"]);
    assert_eq!(Some(stored[0].received_at), at_s);
    assert_eq!(stored[1].kind, Kind::IncidentReport);
    assert_eq!(stored[1].lane, Lane::Report);
    assert_eq!(stored[1].content, r["content"]);
    assert_eq!(
        env.store().sos_status(&id_of(&s)).unwrap(),
        Some(DispatchStatus::Delivered)
    );

    sleep(Duration::from_millis(20));
    // The same records again, one of them with its keys in another order.
    let reordered: Value = {
        let text = format!(
            r#"{{"content":{},"device_time":"2026-11-25T08:00:00+00:00","lane":"report","kind":"incident_report","id":"{}"}}"#,
            r["content"],
            id_of(&r)
        );
        serde_json::from_str(&text).unwrap()
    };
    let again = env.batch(&[s.clone(), reordered]);
    assert_eq!(
        expect_item(&again[0], &id_of(&s), ItemStatus::Duplicate).received_at,
        at_s
    );
    assert_eq!(
        expect_item(&again[1], &id_of(&r), ItemStatus::Duplicate).received_at,
        at_r
    );
    let store = env.store();
    assert_eq!(store.record_count().unwrap(), 2);
    assert_eq!(store.count_of(&id_of(&s)).unwrap(), 1);
    assert_eq!(store.count_of(&id_of(&r)).unwrap(), 1);
}

#[test]
fn ids_are_stored_and_compared_in_lower_case_and_answered_as_sent() {
    let env = Env::start();
    let mut s = sos();
    let lower = id_of(&s);
    let upper = lower.to_uppercase();
    s["id"] = json!(upper);
    let mut l = sos_location(&upper, 51.2, "2026-11-25T08:00:01Z");
    let first = env.batch(&[s.clone(), l.clone()]);
    expect_item(&first[0], &upper, ItemStatus::Accepted);
    expect_item(&first[1], &id_of(&l), ItemStatus::Accepted);
    let stored = env.store().records().unwrap();
    assert_eq!(stored[0].id, lower);
    assert_eq!(stored[1].parent_id.as_deref(), Some(lower.as_str()));
    // The same record with its id in lower case is the same record.
    s["id"] = json!(lower);
    l["parent_id"] = json!(lower);
    let again = env.batch(&[s, l.clone()]);
    expect_item(&again[0], &lower, ItemStatus::Duplicate);
    expect_item(&again[1], &id_of(&l), ItemStatus::Duplicate);
    assert_eq!(env.store().count_of(&lower).unwrap(), 1);
}

#[test]
fn same_id_with_other_content_is_a_conflict_and_the_original_stays() {
    let env = Env::start();
    let s = sos();
    expect_item(
        &env.batch(std::slice::from_ref(&s))[0],
        &id_of(&s),
        ItemStatus::Accepted,
    );

    let mut changed = s.clone();
    changed["content"]["note"] = json!("another note");
    let res = env.batch(std::slice::from_ref(&changed));
    let item = expect_item(&res[0], &id_of(&s), ItemStatus::Conflict);
    assert!(
        item.reason.as_deref().unwrap().starts_with("id:"),
        "{item:?}"
    );
    assert!(!item.reason.as_deref().unwrap().contains("another note"));

    let mut retimed = s.clone();
    retimed["device_time"] = json!("2026-11-25T08:00:01Z");
    expect_item(&env.batch(&[retimed])[0], &id_of(&s), ItemStatus::Conflict);

    let stored = env.store().record(DEVICE, &id_of(&s)).unwrap().unwrap();
    assert_eq!(stored.content, s["content"]);
    assert_eq!(env.store().record_count().unwrap(), 1);

    // Dedupe is per device: another device may use the same id.
    let other = enroll_device(&env.db, "other-phone").unwrap();
    let mut theirs = s.clone();
    theirs["content"]["crew"]["device_id"] = json!("other-phone");
    let resp = env.post_as(&other, &[theirs]);
    assert_eq!(resp.status(), 200);
    let answer: crewsafe_server::protocol::BatchResponse = parse(resp);
    expect_item(&answer.results[0], &id_of(&s), ItemStatus::Accepted);
    assert_eq!(env.store().count_of(&id_of(&s)).unwrap(), 2);
}

/// Applies `edit` to a fresh record from `make` and expects `rejected` with a reason starting
/// with `reason`, not containing `secret`.
fn check_rejected(env: &Env, make: fn() -> Value, edit: impl Fn(&mut Value), reason: &str) {
    let mut rec = make();
    edit(&mut rec);
    let id = rec["id"].as_str().unwrap_or_default().to_string();
    let res = env.batch(&[rec]);
    assert_eq!(res.len(), 1);
    let item = expect_item(&res[0], &id, ItemStatus::Rejected);
    let got = item.reason.as_deref().unwrap();
    assert!(got.starts_with(reason), "expected {reason:?}, got {got:?}");
    assert!(!got.contains("SECRET"), "reason echoes content: {got}");
}

#[test]
fn each_validation_rule_rejects_with_a_reason_naming_the_field() {
    let env = Env::start();
    check_rejected(&env, sos, |r| r["id"] = json!("SECRET-not-a-uuid"), "id:");
    check_rejected(
        &env,
        sos,
        |r| r["id"] = json!("0123456789abcdef0123456789abcdef"),
        "id:",
    );
    check_rejected(&env, sos, |r| r["lane"] = json!("report"), "lane:");
    check_rejected(&env, report, |r| r["lane"] = json!("sos"), "lane:");
    check_rejected(
        &env,
        sos,
        |r| {
            r["content"]["crew"]
                .as_object_mut()
                .unwrap()
                .remove("crew_id");
        },
        "content.crew: missing field crew_id",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["crew"]["crew_id"] = json!("  "),
        "content.crew.crew_id:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["raised_at"] = json!("SECRET yesterday"),
        "content.raised_at:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["SECRET_field"] = json!(1),
        "content:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["location"]["latitude"] = json!(90.5),
        "content.location.latitude:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["location"]["longitude"] = json!(-180.01),
        "content.location.longitude:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["location"]["accuracy_m"] = json!(-1.0),
        "content.location.accuracy_m:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["location"]["provider"] = json!("SECRET-satellite"),
        "content.location.provider: must be one of gps, network, fused, manual",
    );
    check_rejected(
        &env,
        sos,
        |r| r["content"]["crew"]["device_id"] = json!("someone-else"),
        "content.crew.device_id:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["crew"]["device_id"] = json!("someone-else"),
        "content.crew.device_id:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["narrative"] = json!(""),
        "content.narrative:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["severity"] = json!("SECRET-extreme"),
        "content.severity:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["kind"] = json!("theft"),
        "content.kind:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["staff_harmed"][0]["role"] = json!("surgeon"),
        "content.staff_harmed[0].role:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["witnesses"][0]["name"] = json!(""),
        "content.witnesses[0].name:",
    );
    check_rejected(
        &env,
        report,
        |r| r["content"]["police_called"] = json!("SECRET-yes"),
        "content.police_called:",
    );
    check_rejected(
        &env,
        sos,
        |r| r["parent_id"] = json!(new_id()),
        "parent_id: not allowed",
    );
    check_rejected(
        &env,
        || sos_cancel(&new_id()),
        |r| r["content"]["reason"] = json!("bored"),
        "content.reason:",
    );
    check_rejected(
        &env,
        || sos_location(&new_id(), 1.0, T0),
        |r| {
            r.as_object_mut().unwrap().remove("parent_id");
        },
        "parent_id: required",
    );
    assert_eq!(
        env.store().record_count().unwrap(),
        0,
        "nothing rejected is stored"
    );

    // A rejected record does not stop the rest of the batch, and results keep request order.
    let bad = {
        let mut r = sos();
        r["lane"] = json!("report");
        r
    };
    let good = sos();
    let res = env.batch(&[bad.clone(), good.clone()]);
    expect_item(&res[0], &id_of(&bad), ItemStatus::Rejected);
    expect_item(&res[1], &id_of(&good), ItemStatus::Accepted);
    // Rejection is deterministic: the same record is rejected again.
    expect_item(
        &env.batch(std::slice::from_ref(&bad))[0],
        &id_of(&bad),
        ItemStatus::Rejected,
    );
    assert_eq!(env.store().record_count().unwrap(), 1);
}

#[test]
fn follow_ups_need_an_sos_parent_of_the_same_device() {
    let env = Env::start();
    let s = sos();
    let sid = id_of(&s);
    let loc = sos_location(&sid, 50.46, "2026-11-25T08:01:00Z");
    let cancel = sos_cancel(&sid);
    // Parent earlier in the same batch.
    let res = env.batch(&[s.clone(), loc.clone(), cancel.clone()]);
    for (item, rec) in res.iter().zip([&s, &loc, &cancel]) {
        expect_item(item, &id_of(rec), ItemStatus::Accepted);
    }
    let stored = env.store().records().unwrap();
    assert_eq!(stored[1].parent_id.as_deref(), Some(sid.as_str()));

    // Parent in an earlier batch.
    let later = sos_location(&sid, 50.47, "2026-11-25T08:02:00Z");
    expect_item(
        &env.batch(std::slice::from_ref(&later))[0],
        &id_of(&later),
        ItemStatus::Accepted,
    );

    // Unknown parent; follow-up before its parent; a report as parent; another device's SOS.
    let orphan = sos_location(&new_id(), 1.0, T0);
    let s2 = sos();
    let early = sos_location(&id_of(&s2), 1.0, T0);
    let rep = report();
    let on_report = sos_cancel(&id_of(&rep));
    let res = env.batch(&[
        orphan.clone(),
        early.clone(),
        s2.clone(),
        rep.clone(),
        on_report.clone(),
    ]);
    let reason = expect_item(&res[0], &id_of(&orphan), ItemStatus::Rejected)
        .reason
        .clone()
        .unwrap();
    assert!(reason.starts_with("parent_id:"), "{reason}");
    expect_item(&res[1], &id_of(&early), ItemStatus::Rejected);
    expect_item(&res[2], &id_of(&s2), ItemStatus::Accepted);
    expect_item(&res[3], &id_of(&rep), ItemStatus::Accepted);
    expect_item(&res[4], &id_of(&on_report), ItemStatus::Rejected);

    let other = enroll_device(&env.db, "other-phone").unwrap();
    let theirs = sos_location(&sid, 1.0, T0);
    let answer: crewsafe_server::protocol::BatchResponse =
        parse(env.post_as(&other, std::slice::from_ref(&theirs)));
    expect_item(&answer.results[0], &id_of(&theirs), ItemStatus::Rejected);

    // A rejected SOS is not a parent either.
    let mut bad_sos = sos();
    bad_sos["content"]["crew"]["device_id"] = json!("x");
    let child = sos_location(&id_of(&bad_sos), 1.0, T0);
    let res = env.batch(&[bad_sos.clone(), child.clone()]);
    expect_item(&res[0], &id_of(&bad_sos), ItemStatus::Rejected);
    expect_item(&res[1], &id_of(&child), ItemStatus::Rejected);
    assert_eq!(env.store().record_count().unwrap(), 6);
}

#[test]
fn missing_or_unknown_tokens_get_401_and_nothing_is_stored() {
    let env = Env::start();
    let body = json!({"protocol": 1, "records": [sos()]}).to_string();
    for token in [None, Some("not-a-token"), Some("")] {
        let resp = env.post_raw(token, body.clone());
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
        let err = expect_error(resp, 401, "unauthorized");
        assert!(!err.message.contains("not-a-token"));
    }
    let resp = env
        .client
        .post(env.url("/v1/records:batch"))
        .header("authorization", format!("Basic {}", env.token))
        .body(body.clone())
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    // A dispatcher token is not a device token, and the other way round.
    let dispatcher = enroll_dispatcher(&env.db, "Dispatcher One").unwrap();
    expect_error(
        env.post_raw(Some(&dispatcher), body.clone()),
        401,
        "unauthorized",
    );
    let resp = env
        .client
        .get(env.url("/v1/dispatch/sos"))
        .bearer_auth(&env.token)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    let resp = env
        .client
        .post(env.url("/v1/sos:status"))
        .body(r#"{"protocol":1,"ids":[]}"#)
        .send()
        .unwrap();
    expect_error(resp, 401, "unauthorized");
    // Re-enrolling replaces the token.
    let old = env.token.clone();
    let new = enroll_device(&env.db, DEVICE).unwrap();
    assert_ne!(old, new);
    expect_error(env.post_raw(Some(&old), body.clone()), 401, "unauthorized");
    assert_eq!(env.post_raw(Some(&new), body).status(), 200);
    assert_eq!(env.store().record_count().unwrap(), 1);
    assert_eq!(env.server.batch_requests(), 7);
}

#[test]
fn malformed_bodies_get_400_without_echoing_content() {
    let env = Env::start();
    let t = Some(env.token.as_str());
    let err = expect_error(env.post_raw(t, "SECRET not json"), 400, "malformed");
    assert!(!err.message.contains("SECRET"));
    let err = expect_error(
        env.post_raw(t, r#"{"protocol":1,"records":[],"SECRET_extra":1}"#),
        400,
        "malformed",
    );
    assert!(!err.message.contains("SECRET"), "{}", err.message);
    let mut rec = sos();
    rec["kind"] = json!("SECRET_kind");
    let err = expect_error(
        env.post_raw(t, json!({"protocol": 1, "records": [rec]}).to_string()),
        400,
        "malformed",
    );
    assert!(!err.message.contains("SECRET"), "{}", err.message);
    expect_error(
        env.post_raw(t, json!({"protocol": 2, "records": [sos()]}).to_string()),
        400,
        "unsupported_version",
    );
    expect_error(env.post_raw(t, ""), 400, "malformed");
    assert_eq!(env.store().record_count().unwrap(), 0);
    // An empty batch is fine.
    assert!(env.batch(&[]).is_empty());
}

#[test]
fn too_many_records_or_too_large_a_body_get_413() {
    let env = Env::start();
    let records: Vec<Value> = (0..=MAX_BATCH_RECORDS).map(|_| sos()).collect();
    let err = expect_error(env.post_records(&records), 413, "too_large");
    assert!(err.message.contains("1000"), "{}", err.message);
    assert_eq!(env.store().record_count().unwrap(), 0);

    // Exactly the maximum is processed.
    let res = env.batch(&records[..MAX_BATCH_RECORDS]);
    assert_eq!(res.len(), MAX_BATCH_RECORDS);
    assert!(res.iter().all(|r| r.status == ItemStatus::Accepted));
    assert_eq!(env.store().record_count().unwrap(), MAX_BATCH_RECORDS);

    let mut big = sos();
    big["content"]["note"] = json!("x".repeat(MAX_BODY_BYTES));
    expect_error(env.post_records(&[big]), 413, "too_large");
    assert_eq!(env.store().record_count().unwrap(), MAX_BATCH_RECORDS);
}

#[test]
fn sos_status_is_per_device_and_follows_dispatch() {
    let env = Env::start();
    let dispatcher = enroll_dispatcher(&env.db, "Olena (dispatch)").unwrap();
    let s = sos();
    let sid = id_of(&s);
    let loc = sos_location(&sid, 50.5, "2026-11-25T08:05:00Z");
    let res = env.batch(&[s.clone(), loc, report()]);
    let received = res[0].received_at.unwrap();

    let status = |token: &str, ids: Vec<String>| -> SosStatusResponse {
        let resp = env
            .client
            .post(env.url("/v1/sos:status"))
            .bearer_auth(token)
            .body(json!({"protocol": 1, "ids": ids}).to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        parse(resp)
    };
    let unknown = new_id();
    let got = status(&env.token, vec![sid.clone(), unknown.clone(), sid.clone()]);
    assert_eq!(
        got.statuses.len(),
        1,
        "unknown and repeated ids are left out"
    );
    assert_eq!(got.statuses[0].id, sid);
    assert_eq!(got.statuses[0].status, DispatchStatus::Delivered);
    assert_eq!(got.statuses[0].updated_at, received);
    // Another device does not see it.
    let other = enroll_device(&env.db, "other-phone").unwrap();
    assert!(status(&other, vec![sid.clone()]).statuses.is_empty());

    let advance = |action: &str, id: &str| {
        env.client
            .post(env.url(&format!("/v1/dispatch/sos/{id}/{action}")))
            .bearer_auth(&dispatcher)
            .send()
            .unwrap()
    };
    sleep(Duration::from_millis(5));
    let resp = advance("acknowledge", &sid);
    assert_eq!(resp.status(), 200);
    let acked: DispatchSos = parse(resp);
    assert_eq!(acked.status, DispatchStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("Olena (dispatch)"));
    assert!(acked.updated_at > received);
    assert_eq!(
        status(&env.token, vec![sid.clone()]).statuses[0].status,
        DispatchStatus::Acknowledged
    );
    // Acknowledging again changes nothing.
    let again: DispatchSos = parse(advance("acknowledge", &sid));
    assert_eq!(again, acked);

    sleep(Duration::from_millis(5));
    let resolved: DispatchSos = parse(advance("resolve", &sid));
    assert_eq!(resolved.status, DispatchStatus::Resolved);
    assert_eq!(resolved.acknowledged_at, acked.acknowledged_at);
    assert!(resolved.resolved_at.is_some());
    assert!(resolved.updated_at > acked.updated_at);
    // Never backwards.
    let after: DispatchSos = parse(advance("acknowledge", &sid));
    assert_eq!(after.status, DispatchStatus::Resolved);
    assert_eq!(after, resolved);
    let got = status(&env.token, vec![sid.clone()]);
    assert_eq!(got.statuses[0].status, DispatchStatus::Resolved);
    assert_eq!(got.statuses[0].updated_at, resolved.updated_at);
    assert_eq!(
        env.store().sos_status(&sid).unwrap(),
        Some(DispatchStatus::Resolved)
    );

    // Unknown ids are 404; a bad protocol version is 400.
    expect_error(advance("acknowledge", &unknown), 404, "not_found");
    expect_error(advance("resolve", &unknown), 404, "not_found");
    let resp = env
        .client
        .post(env.url("/v1/sos:status"))
        .bearer_auth(&env.token)
        .body(r#"{"protocol":9,"ids":[]}"#)
        .send()
        .unwrap();
    expect_error(resp, 400, "unsupported_version");
}

#[test]
fn dispatchers_list_alarms_with_latest_position_and_cancellation() {
    let env = Env::start();
    let dispatcher = enroll_dispatcher(&env.db, "desk-2").unwrap();
    let a = sos();
    let b = sos();
    let aid = id_of(&a);
    let bid = id_of(&b);
    let newer = sos_location(&aid, 50.6, "2026-11-25T08:10:00Z");
    let older = sos_location(&aid, 50.5, "2026-11-25T08:05:00Z");
    env.batch(&[a, b, newer, older, sos_cancel(&bid), report()]);

    let list = |query: &str| -> DispatchSosList {
        let resp = env
            .client
            .get(env.url(&format!("/v1/dispatch/sos{query}")))
            .bearer_auth(&dispatcher)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        parse(resp)
    };
    let all = list("");
    assert_eq!(all.sos.len(), 2, "reports are not listed");
    assert_eq!(all.sos[0].id, aid);
    assert_eq!(all.sos[0].device_id, DEVICE);
    assert_eq!(all.sos[0].crew.crew_id, "brigade-12");
    assert_eq!(all.sos[0].location.as_ref().unwrap().latitude, 50.6);
    assert!(all.sos[0].cancel.is_none());
    assert_eq!(all.sos[1].id, bid);
    assert_eq!(
        all.sos[1].cancel.as_ref().unwrap().reason,
        CancelReason::HelpArrived
    );
    assert_eq!(all.sos[1].location.as_ref().unwrap().latitude, 50.4501);

    let resp = env
        .client
        .post(env.url(&format!("/v1/dispatch/sos/{bid}/resolve")))
        .bearer_auth(&dispatcher)
        .send()
        .unwrap();
    let resolved: DispatchSos = parse(resp);
    assert_eq!(resolved.status, DispatchStatus::Resolved);
    assert_eq!(resolved.acknowledged_by.as_deref(), Some("desk-2"));
    assert_eq!(resolved.resolved_by.as_deref(), Some("desk-2"));
    let open = list("?status=delivered");
    assert_eq!(open.sos.len(), 1);
    assert_eq!(open.sos[0].id, aid);
    assert_eq!(list("?status=resolved").sos[0].id, bid);
    let resp = env
        .client
        .get(env.url("/v1/dispatch/sos?status=bogus"))
        .bearer_auth(&dispatcher)
        .send()
        .unwrap();
    expect_error(resp, 400, "malformed");

    // The in-process helpers move the same state.
    let store = env.store();
    let acked = store.acknowledge_sos(&aid, "demo").unwrap().unwrap();
    assert_eq!(acked.status, DispatchStatus::Acknowledged);
    assert_eq!(store.dispatch_list().unwrap().len(), 2);
    assert!(store.resolve_sos(&new_id(), "demo").unwrap().is_none());
}

#[test]
fn health_unknown_paths_and_methods() {
    let env = Env::start_with(false);
    assert_eq!(
        env.client.get(env.url("/healthz")).send().unwrap().status(),
        200
    );
    expect_error(
        env.client.get(env.url("/nope")).send().unwrap(),
        404,
        "not_found",
    );
    expect_error(
        env.client.get(env.url("/v1/records:batch")).send().unwrap(),
        405,
        "method_not_allowed",
    );
    // Without test fault mode there is no fault endpoint.
    let resp = env
        .client
        .post(env.url("/test/faults"))
        .body(r#"[{"fault":"drop_after_commit"}]"#)
        .send()
        .unwrap();
    expect_error(resp, 404, "not_found");
    assert_eq!(env.server.url(), format!("http://{}", env.server.addr()));
    assert_ne!(env.server.addr().port(), 0);
}

#[test]
#[should_panic(expected = "test_faults")]
fn faults_handle_needs_test_fault_mode() {
    let env = Env::start_with(false);
    env.server.faults();
}

#[test]
fn data_survives_a_restart_and_dedupe_is_permanent() {
    let env = Env::start();
    let s = sos();
    let first = env.batch(std::slice::from_ref(&s));
    let Env {
        dir,
        db,
        server,
        client,
        token,
    } = env;
    server.shutdown();
    let server = crewsafe_server::start(crewsafe_server::ServerConfig::new(
        &db,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let env = Env {
        dir,
        db,
        server,
        client,
        token,
    };
    let again = env.batch(std::slice::from_ref(&s));
    expect_item(&again[0], &id_of(&s), ItemStatus::Duplicate);
    assert_eq!(again[0].received_at, first[0].received_at);
    assert_eq!(
        env.server.batch_requests(),
        1,
        "a new server counts from zero"
    );
}
