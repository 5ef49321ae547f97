//! Every word of the protocol vocabulary, walked from `Vocabulary::ALL` (never listed by hand),
//! makes a real round trip: the phone saves something that uses it (through the core's
//! exported enum, converted with the `From` impls of `src/model.rs`), `sync_now` delivers it
//! to the reference server over loopback HTTP, and the server's stored content, the
//! dispatcher API and the phone's view all carry exactly the protocol's spelling.
//!
//! Enums whose variants are exercised in different ways (`Kind`, `Lane`, `ItemStatus`,
//! `DispatchStatus`) go through a `match` without a wildcard, so a new variant does not compile
//! until this test says how to produce it; every test also asserts that each variant of `ALL`
//! was seen on the server, so a variant that is handled but never produced fails.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::net::{config, Server, Tokens};
use common::{complete_fields, crew, fix, TestStore};
use crewsafe::{IncidentFields, LocationFix, SyncOutcome, SyncReport, SyncState};
use crewsafe_protocol::{self as proto, Vocabulary};
use crewsafe_server::{ServerStore, StoredRecord};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// A phone store with sync configured against a fresh reference server, an HTTP client, and a
/// dispatcher token.
struct Env {
    t: TestStore,
    server: Server,
    http: Client,
    dispatcher: String,
}

impl Env {
    fn start() -> Self {
        let server = Server::start();
        let t = TestStore::new();
        let tokens = Tokens::new(&server.token, &server.token);
        t.store.configure_sync(config(&server.url), tokens).unwrap();
        let dispatcher = crewsafe_server::enroll_dispatcher(server.db(), "dispatcher-vocab")
            .expect("enroll dispatcher");
        // reqwest is built without a rustls provider; the core installs none either.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Env {
            t,
            server,
            http,
            dispatcher,
        }
    }

    fn server_store(&self) -> ServerStore {
        self.server.srv().store().expect("server store")
    }

    /// Every record the server stored, by id.
    fn stored(&self) -> BTreeMap<String, StoredRecord> {
        self.server_store()
            .records()
            .expect("records")
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect()
    }

    /// `sync_now`, which must deliver everything.
    fn sync_complete(&self) -> SyncReport {
        let r = self.t.store.sync_now().expect("sync_now");
        assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
        assert_eq!(
            (r.pending_sos, r.pending_reports, r.wedged),
            (0, 0, 0),
            "{r:?}"
        );
        r
    }

    /// Sends `req` and returns the status and the JSON body.
    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let resp = req.send().expect("http request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().expect("http body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "answer {status} is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, body)
    }

    /// `GET /v1/dispatch/sos` (optionally `?status=`) as the dispatcher: the raw JSON list of
    /// alarms, checked to decode as the protocol's `DispatchSosList` too.
    fn dispatch_list(&self, status: Option<proto::DispatchStatus>) -> Vec<Value> {
        let mut url = format!("{}{}", self.server.url, proto::DISPATCH_SOS_PATH);
        if let Some(s) = status {
            url = format!("{url}?status={}", s.as_str());
        }
        let (code, body) = self.send(self.http.get(url).bearer_auth(&self.dispatcher));
        assert_eq!(code, 200, "{body}");
        let typed: proto::DispatchSosList =
            serde_json::from_value(body.clone()).expect("a DispatchSosList");
        let list = body["sos"].as_array().expect("sos list").clone();
        assert_eq!(typed.sos.len(), list.len());
        list
    }

    /// `POST /v1/dispatch/sos/{id}/{action}` as the dispatcher: the SOS as dispatch now sees it.
    fn dispatch_move(&self, sos_id: &str, action: &str) -> Value {
        let url = format!(
            "{}{}/{sos_id}/{action}",
            self.server.url,
            proto::DISPATCH_SOS_PATH
        );
        let (code, body) = self.send(self.http.post(url).bearer_auth(&self.dispatcher));
        assert_eq!(code, 200, "{action} {sos_id}: {body}");
        body
    }

    /// Posts one raw record to the batch endpoint with the device's token and returns its
    /// one result (as raw JSON).
    fn post_record(&self, record: &Value) -> Value {
        let body = json!({"protocol": proto::PROTOCOL_VERSION, "records": [record]});
        let (code, answer) = self.send(
            self.http
                .post(format!("{}{}", self.server.url, proto::BATCH_PATH))
                .bearer_auth(&self.server.token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        );
        assert_eq!(code, 200, "{answer}");
        let typed: proto::BatchResponse =
            serde_json::from_value(answer.clone()).expect("a BatchResponse");
        assert_eq!(typed.results.len(), 1, "{answer}");
        answer["results"][0].clone()
    }
}

/// The fix of `fix()` from another provider.
fn fix_from(provider: proto::LocationProvider) -> LocationFix {
    LocationFix {
        provider: crewsafe::LocationProvider::from(provider),
        ..fix()
    }
}

/// Creates a draft from `complete_fields()` changed by `edit`, finalizes it, returns its id.
fn finalize_report(t: &TestStore, edit: impl FnOnce(&mut IncidentFields)) -> String {
    let mut fields = complete_fields();
    edit(&mut fields);
    let draft = t.store.create_draft(crew(), fields).expect("create_draft");
    let report = t
        .store
        .finalize_draft(draft.id, draft.revision)
        .expect("finalize_draft");
    assert_eq!(report.sync_state, SyncState::Queued);
    report.id
}

/// What the phone saved: for every word, the ids of the records that carry it.
#[derive(Default)]
struct Saved {
    /// Per provider: an SOS raised with a fix of it, and a follow-up position of it.
    providers: Vec<(proto::LocationProvider, String, String)>,
    /// Per cancel reason: an SOS, and its cancellation with that reason.
    cancels: Vec<(proto::CancelReason, String, String)>,
    /// Per incident kind: a finalized report.
    incident_kinds: Vec<(proto::IncidentKind, String)>,
    /// Per severity: a finalized report.
    severities: Vec<(proto::Severity, String)>,
    /// Per staff role: a finalized report with that harmed staff member.
    roles: Vec<(proto::StaffRole, String)>,
    /// A check-in: its start, an extension and its closing.
    check_in: Vec<[String; 3]>,
}

impl Saved {
    fn sos_alarms(&self) -> Vec<String> {
        let by_provider = self.providers.iter().map(|(_, sos, _)| sos.clone());
        let cancelled = self.cancels.iter().map(|(_, sos, _)| sos.clone());
        by_provider.chain(cancelled).collect()
    }

    fn reports(&self) -> Vec<String> {
        [
            ids(&self.incident_kinds),
            ids(&self.severities),
            ids(&self.roles),
        ]
        .concat()
    }

    /// The records saved as `kind`.
    fn of_kind(&self, kind: proto::Kind) -> Vec<String> {
        match kind {
            proto::Kind::Sos => self.sos_alarms(),
            proto::Kind::SosLocation => self.providers.iter().map(|p| p.2.clone()).collect(),
            proto::Kind::SosCancel => self.cancels.iter().map(|c| c.2.clone()).collect(),
            proto::Kind::IncidentReport => self.reports(),
            proto::Kind::CheckInStart => self.check_in.iter().map(|c| c[0].clone()).collect(),
            proto::Kind::CheckInExtend => self.check_in.iter().map(|c| c[1].clone()).collect(),
            proto::Kind::CheckInDone => self.check_in.iter().map(|c| c[2].clone()).collect(),
        }
    }

    /// The records saved into `lane`.
    fn in_lane(&self, lane: proto::Lane) -> Vec<String> {
        match lane {
            proto::Lane::Sos => [
                self.of_kind(proto::Kind::Sos),
                self.of_kind(proto::Kind::SosLocation),
                self.of_kind(proto::Kind::SosCancel),
                self.of_kind(proto::Kind::CheckInStart),
                self.of_kind(proto::Kind::CheckInExtend),
                self.of_kind(proto::Kind::CheckInDone),
            ]
            .concat(),
            proto::Lane::Report => self.of_kind(proto::Kind::IncidentReport),
        }
    }

    fn all(&self) -> Vec<String> {
        proto::Kind::ALL
            .iter()
            .flat_map(|&k| self.of_kind(k))
            .collect()
    }
}

/// The ids of `(variant, id)` pairs.
fn ids<T>(saved: &[(T, String)]) -> Vec<String> {
    saved.iter().map(|(_, id)| id.clone()).collect()
}

/// Saves, for every word of the content vocabularies, a record that uses it.
fn save_every_word(t: &TestStore) -> Saved {
    let store = &t.store;
    let mut saved = Saved::default();
    for &p in proto::LocationProvider::ALL {
        let sos = store
            .raise_sos(crew(), Some(fix_from(p)), None)
            .expect("raise_sos");
        let follow_up = store
            .add_sos_location(sos.id.clone(), fix_from(p))
            .expect("add_sos_location");
        saved.providers.push((p, sos.id, follow_up.id));
    }
    let start = store
        .start_check_in(
            crew(),
            15,
            Some("vocabulary test".into()),
            None,
            Some(fix()),
        )
        .expect("start_check_in");
    let extended = store
        .extend_check_in(start.id.clone(), 5)
        .expect("extend_check_in");
    let done = store
        .check_in(start.id.clone(), Some(fix()))
        .expect("check_in");
    saved.check_in.push([
        start.id,
        extended.extensions[0].id.clone(),
        done.done_id.expect("done id"),
    ]);
    for &reason in proto::CancelReason::ALL {
        let sos = store
            .raise_sos(crew(), Some(fix()), None)
            .expect("raise_sos");
        let cancel = store
            .cancel_sos(
                sos.id.clone(),
                crewsafe::CancelReason::from(reason),
                Some("vocabulary test".into()),
            )
            .expect("cancel_sos");
        saved.cancels.push((reason, sos.id, cancel.id));
    }
    for &kind in proto::IncidentKind::ALL {
        let id = finalize_report(t, |f| f.kind = Some(crewsafe::IncidentKind::from(kind)));
        saved.incident_kinds.push((kind, id));
    }
    for &severity in proto::Severity::ALL {
        let id = finalize_report(t, |f| {
            f.severity = Some(crewsafe::Severity::from(severity));
        });
        saved.severities.push((severity, id));
    }
    for &role in proto::StaffRole::ALL {
        let id = finalize_report(t, |f| {
            assert_eq!(f.staff_harmed.len(), 1, "complete_fields has one harmed");
            f.staff_harmed[0].role = crewsafe::StaffRole::from(role);
        });
        saved.roles.push((role, id));
    }
    saved
}

/// Checks that the stored record saved for each variant carries exactly its word at
/// `pointer` in its content, and that every variant of `T` was seen on the server.
fn assert_words_stored<T: Vocabulary>(
    saved: &[(T, String)],
    stored: &BTreeMap<String, StoredRecord>,
    kind: proto::Kind,
    pointer: &str,
) {
    let what = std::any::type_name::<T>();
    let mut seen: Vec<T> = Vec::new();
    for (variant, id) in saved {
        let rec = stored
            .get(id)
            .unwrap_or_else(|| panic!("{what} {variant:?}: record {id} is not on the server"));
        assert_eq!(rec.kind, kind, "{what} {variant:?}: record {id}");
        let word = rec
            .content
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{what} {variant:?}: no {pointer} in {}", rec.content));
        assert_eq!(word, variant.as_str(), "{what} {variant:?} at {pointer}");
        let back: T = word.parse().expect("a word of the vocabulary");
        assert_eq!(back, *variant);
        if !seen.contains(&back) {
            seen.push(back);
        }
    }
    for variant in T::ALL {
        assert!(
            seen.contains(variant),
            "{what} {variant:?} never reached the server"
        );
    }
    assert_eq!(seen.len(), T::ALL.len(), "{what}");
}

/// The entry of `sos_id` in a dispatcher list.
fn find_alarm<'a>(list: &'a [Value], sos_id: &str) -> &'a Value {
    list.iter()
        .find(|s| s["id"] == sos_id)
        .unwrap_or_else(|| panic!("sos {sos_id} is not in the dispatcher view"))
}

#[test]
fn every_content_word_kind_and_lane_round_trips() {
    let env = Env::start();
    let store = &env.t.store;
    let saved = save_every_word(&env.t);
    let all = saved.all();
    // Everything is queued on the phone before the sync, each in its kind's lane.
    let queued = store.list_records().expect("list_records");
    for &kind in proto::Kind::ALL {
        for id in saved.of_kind(kind) {
            let entry = queued.iter().find(|e| e.id == id).expect("queued");
            assert_eq!(entry.kind, crewsafe::RecordKind::from(kind));
            assert_eq!(entry.lane, Some(crewsafe::Lane::from(kind.lane())));
            assert_eq!(entry.state, SyncState::Queued);
        }
    }

    let r = env.sync_complete();
    assert_eq!(r.accepted as usize, all.len(), "{r:?}");
    assert_eq!(r.duplicates, 0);

    // The server stored each record once, with the kind and lane it was saved as, and every
    // kind and every lane appears among its records.
    let stored = env.stored();
    assert_eq!(stored.len(), all.len());
    for &kind in proto::Kind::ALL {
        let ids = saved.of_kind(kind);
        assert!(!ids.is_empty(), "nothing saved as {kind}");
        for id in &ids {
            let rec = &stored[id];
            assert_eq!(rec.kind, kind, "{id}");
            assert_eq!(rec.lane, kind.lane(), "{id}");
            assert_eq!(rec.parent_id.is_some(), kind.needs_parent(), "{id}");
            assert_eq!(env.server.count_of(id), 1, "{id}");
        }
        assert!(
            stored.values().any(|r| r.kind == kind),
            "kind {kind} not stored"
        );
    }
    for &lane in proto::Lane::ALL {
        let ids = saved.in_lane(lane);
        assert!(!ids.is_empty(), "nothing saved in lane {lane}");
        for id in &ids {
            assert_eq!(stored[id].lane, lane, "{id}");
        }
        assert!(
            stored.values().any(|r| r.lane == lane),
            "lane {lane} not stored"
        );
    }
    // The phone's queue view, after delivery, names the same kinds and lanes.
    for entry in store.list_records().expect("list_records") {
        let rec = &stored[&entry.id];
        assert_eq!(entry.kind, crewsafe::RecordKind::from(rec.kind));
        assert_eq!(entry.lane, Some(crewsafe::Lane::from(rec.lane)));
        assert_eq!(entry.state, SyncState::Delivered);
    }

    // Each record's stored content carries exactly the protocol word of its variant.
    let alarms: Vec<_> = saved
        .providers
        .iter()
        .map(|(p, sos, _)| (*p, sos.clone()))
        .collect();
    let follow_ups: Vec<_> = saved
        .providers
        .iter()
        .map(|(p, _, loc)| (*p, loc.clone()))
        .collect();
    let cancels: Vec<_> = saved
        .cancels
        .iter()
        .map(|(c, _, id)| (*c, id.clone()))
        .collect();
    assert_words_stored(&alarms, &stored, proto::Kind::Sos, "/location/provider");
    assert_words_stored(
        &follow_ups,
        &stored,
        proto::Kind::SosLocation,
        "/location/provider",
    );
    assert_words_stored(&cancels, &stored, proto::Kind::SosCancel, "/reason");
    assert_words_stored(
        &saved.incident_kinds,
        &stored,
        proto::Kind::IncidentReport,
        "/kind",
    );
    assert_words_stored(
        &saved.severities,
        &stored,
        proto::Kind::IncidentReport,
        "/severity",
    );
    assert_words_stored(
        &saved.roles,
        &stored,
        proto::Kind::IncidentReport,
        "/staff_harmed/0/role",
    );
    // The follow-ups and cancellations point at their SOS.
    for (_, sos, loc) in &saved.providers {
        assert_eq!(stored[loc].parent_id.as_deref(), Some(sos.as_str()));
    }
    for (_, sos, cancel) in &saved.cancels {
        assert_eq!(stored[cancel].parent_id.as_deref(), Some(sos.as_str()));
    }

    // The dispatcher view (over HTTP) shows every provider and every cancel reason.
    let list = env.dispatch_list(None);
    assert_eq!(list.len(), saved.sos_alarms().len());
    for (provider, sos, _) in &saved.providers {
        let alarm = find_alarm(&list, sos);
        assert_eq!(alarm["location"]["provider"], provider.as_str(), "{alarm}");
        assert!(alarm["cancel"].is_null(), "{alarm}");
        assert_eq!(
            alarm["status"],
            proto::DispatchStatus::Delivered.as_str(),
            "{alarm}"
        );
    }
    for (reason, sos, _) in &saved.cancels {
        let alarm = find_alarm(&list, sos);
        assert_eq!(alarm["cancel"]["reason"], reason.as_str(), "{alarm}");
    }
    let shown_providers: Vec<proto::LocationProvider> = list
        .iter()
        .filter_map(|a| a["location"]["provider"].as_str())
        .map(|w| w.parse().expect("a provider word"))
        .collect();
    let shown_reasons: Vec<proto::CancelReason> = list
        .iter()
        .filter_map(|a| a["cancel"]["reason"].as_str())
        .map(|w| w.parse().expect("a cancel reason word"))
        .collect();
    for p in proto::LocationProvider::ALL {
        assert!(shown_providers.contains(p), "dispatch never showed {p}");
    }
    for c in proto::CancelReason::ALL {
        assert!(shown_reasons.contains(c), "dispatch never showed {c}");
    }

    // And the phone reads back the same variants it saved.
    for (provider, sos, _) in &saved.providers {
        let got = store.get_sos(sos.clone()).expect("get_sos");
        let want = crewsafe::LocationProvider::from(*provider);
        assert_eq!(got.location.expect("location").provider, want);
        assert_eq!(got.location_updates[0].location.provider, want);
        assert_eq!(
            got.dispatch_status,
            Some(crewsafe::DispatchStatus::Delivered)
        );
    }
    for (reason, sos, _) in &saved.cancels {
        let got = store.get_sos(sos.clone()).expect("get_sos");
        let cancellation = got.cancellation.expect("cancellation");
        assert_eq!(cancellation.reason, crewsafe::CancelReason::from(*reason));
    }
    for (kind, id) in &saved.incident_kinds {
        let got = store.get_report(id.clone()).expect("get_report");
        assert_eq!(got.fields.kind, Some(crewsafe::IncidentKind::from(*kind)));
    }
}

#[test]
fn every_dispatch_status_reaches_the_dispatcher_and_the_phone() {
    let env = Env::start();
    let store = &env.t.store;
    let mut seen: Vec<proto::DispatchStatus> = Vec::new();
    for &status in proto::DispatchStatus::ALL {
        let sos = store
            .raise_sos(crew(), Some(fix()), None)
            .expect("raise_sos");
        env.sync_complete();
        assert_eq!(
            store.get_sos(sos.id.clone()).unwrap().dispatch_status,
            Some(crewsafe::DispatchStatus::Delivered)
        );
        // What a dispatcher does to take a delivered alarm to `status`.
        let action = match status {
            proto::DispatchStatus::Delivered => None,
            proto::DispatchStatus::Acknowledged => Some("acknowledge"),
            proto::DispatchStatus::Resolved => Some("resolve"),
        };
        if let Some(action) = action {
            let moved = env.dispatch_move(&sos.id, action);
            assert_eq!(moved["status"], status.as_str(), "{moved}");
        }
        // The dispatcher list, filtered by the word, shows the alarm with it.
        let filtered = env.dispatch_list(Some(status));
        let alarm = find_alarm(&filtered, &sos.id);
        assert_eq!(alarm["status"], status.as_str(), "{alarm}");
        assert!(filtered.iter().all(|a| a["status"] == status.as_str()));
        assert_eq!(
            env.server_store().sos_status(&sos.id).unwrap(),
            Some(status)
        );
        // The next sync brings it to the phone.
        env.sync_complete();
        let want = crewsafe::DispatchStatus::from(status);
        assert_eq!(
            store.get_sos(sos.id.clone()).unwrap().dispatch_status,
            Some(want),
            "{status}"
        );
        let entry = store
            .list_records()
            .unwrap()
            .into_iter()
            .find(|e| e.id == sos.id)
            .expect("queue entry");
        assert_eq!(entry.dispatch_status, Some(want));
        seen.push(status);
    }
    for status in proto::DispatchStatus::ALL {
        assert!(seen.contains(status), "{status} never reached the phone");
    }
}

/// The wire form of a stored record, as a phone sends it.
fn wire_of(rec: &StoredRecord) -> Value {
    serde_json::to_value(proto::WireRecord {
        id: rec.id.clone(),
        kind: rec.kind,
        lane: rec.lane,
        parent_id: rec.parent_id.clone(),
        device_time: rec.device_time,
        content: rec.content.clone(),
    })
    .expect("wire record")
}

/// Sleeps until a report's retry time.
fn wait_for(next: Option<SystemTime>) {
    let next = next.expect("a retry time");
    std::thread::sleep(next.duration_since(SystemTime::now()).unwrap_or_default());
}

#[test]
fn every_item_status_is_answered() {
    let env = Env::start();
    let store = &env.t.store;
    // A record the phone delivered, to copy and resend.
    let first = store
        .raise_sos(crew(), Some(fix()), Some("first".into()))
        .expect("raise_sos");
    env.sync_complete();
    let delivered = env.stored()[&first.id].clone();
    let mut seen: Vec<proto::ItemStatus> = Vec::new();
    for &status in proto::ItemStatus::ALL {
        // How each answer is produced: from the phone where it can be, and always by a raw
        // batch with the device's token so the word itself is checked.
        let (record, stored_after) = match status {
            proto::ItemStatus::Accepted => {
                let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
                let r = env.sync_complete();
                assert_eq!((r.accepted, r.duplicates), (1, 0), "{r:?}");
                assert_eq!(env.server.count_of(&sos.id), 1);
                // A new id with valid content.
                let mut fresh = wire_of(&delivered);
                fresh["id"] = json!(uuid::Uuid::new_v4().to_string());
                (fresh, true)
            }
            proto::ItemStatus::Duplicate => {
                // The answer to the phone's upload is lost after the server committed it;
                // the phone sends the record again.
                env.server
                    .srv()
                    .faults()
                    .push(crewsafe_server::TestFault::DropAfterCommit);
                let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
                let r = store.sync_now().unwrap();
                assert!(matches!(r.outcome, SyncOutcome::WillRetry { .. }), "{r:?}");
                wait_for(r.next_attempt_at);
                let r = env.sync_complete();
                assert_eq!((r.accepted, r.duplicates), (0, 1), "{r:?}");
                assert_eq!(env.server.count_of(&sos.id), 1);
                // The same record again, byte for byte.
                (wire_of(&delivered), true)
            }
            proto::ItemStatus::Conflict => {
                // The phone never sends other content under an id it used: only a raw batch
                // can.
                let mut other = wire_of(&delivered);
                other["content"]["note"] = json!("other content under the same id");
                (other, true)
            }
            proto::ItemStatus::Rejected => {
                // The phone: a record the server refuses for good is wedged with its reason.
                let sos = store.raise_sos(crew(), Some(fix()), None).unwrap();
                env.server.srv().faults().reject_id(&sos.id);
                let r = store.sync_now().unwrap();
                assert_eq!(r.wedged, 1, "{r:?}");
                let entry = store
                    .list_records()
                    .unwrap()
                    .into_iter()
                    .find(|e| e.id == sos.id)
                    .unwrap();
                assert_eq!(entry.state, SyncState::Wedged);
                assert_eq!(
                    entry.wedged_reason.as_deref(),
                    Some(crewsafe_server::POISON_REASON)
                );
                assert_eq!(env.server.count_of(&sos.id), 0);
                store.discard_wedged(sos.id).unwrap();
                // Raw: a provider outside the vocabulary.
                let mut bad = wire_of(&delivered);
                bad["id"] = json!(uuid::Uuid::new_v4().to_string());
                bad["content"]["location"]["provider"] = json!("not-a-provider");
                (bad, false)
            }
        };
        let id = record["id"].as_str().unwrap().to_string();
        let before = env.stored();
        let result = env.post_record(&record);
        assert_eq!(result["id"], id.as_str(), "{result}");
        assert_eq!(result["status"], status.as_str(), "{result}");
        let typed: proto::ItemResult = serde_json::from_value(result.clone()).unwrap();
        assert_eq!(typed.status, status);
        // Stored now or before: the first receive time; refused: a reason.
        let refused = matches!(
            status,
            proto::ItemStatus::Conflict | proto::ItemStatus::Rejected
        );
        assert_eq!(typed.reason.is_some(), refused, "{result}");
        assert_eq!(typed.received_at.is_none(), refused, "{result}");
        if status == proto::ItemStatus::Rejected {
            let words: Vec<&str> = proto::LocationProvider::ALL
                .iter()
                .map(|p| p.as_str())
                .collect();
            assert_eq!(
                typed.reason.as_deref(),
                Some(
                    format!(
                        "content.location.provider: must be one of {}",
                        words.join(", ")
                    )
                    .as_str()
                )
            );
        }
        assert_eq!(
            env.server.count_of(&id),
            usize::from(stored_after),
            "{status}"
        );
        // Nothing stored before changed (a conflict leaves the first content in place).
        let after = env.stored();
        for (id, rec) in &before {
            assert_eq!(after.get(id), Some(rec), "{status} changed {id}");
        }
        seen.push(status);
    }
    for status in proto::ItemStatus::ALL {
        assert!(seen.contains(status), "{status} never answered");
    }
}
