//! Shared helpers: a server on 127.0.0.1 port 0 over a temporary database, an enrolled device,
//! a blocking reqwest client, and record builders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use crewsafe_server::protocol::{BatchResponse, ErrorBody, ItemResult, ItemStatus};
use crewsafe_server::{enroll_device, start, RunningServer, ServerConfig, ServerStore};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

/// Device id enrolled by [`Env::start`].
pub const DEVICE: &str = "ambulance-7-phone";

/// Installs the ring provider as rustls's process default (reqwest is built without one).
pub fn install_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A blocking client with short timeouts, no redirects and no connection reuse surprises.
pub fn client() -> Client {
    install_ring();
    Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A running server with one enrolled device.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub server: RunningServer,
    pub client: Client,
    pub token: String,
}

impl Env {
    /// Plain HTTP, test faults on.
    pub fn start() -> Env {
        Self::start_with(true)
    }

    pub fn start_with(test_faults: bool) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("server.db");
        let mut config = ServerConfig::new(&db, "127.0.0.1:0".parse().unwrap());
        config.test_faults = test_faults;
        let server = start(config).expect("start");
        let token = enroll_device(&db, DEVICE).expect("enroll");
        Env {
            dir,
            db,
            server,
            client: client(),
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub fn store(&self) -> ServerStore {
        ServerStore::open(&self.db).expect("store")
    }

    /// Posts a raw body to the batch endpoint.
    pub fn post_raw(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::blocking::Body>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url("/v1/records:batch"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().expect("send")
    }

    /// Posts records as the enrolled device; returns the raw response.
    pub fn post_records(&self, records: &[Value]) -> Response {
        self.post_as(&self.token, records)
    }

    pub fn post_as(&self, token: &str, records: &[Value]) -> Response {
        let body = json!({"protocol": 1, "records": records}).to_string();
        self.post_raw(Some(token), body)
    }

    /// Posts records and expects a 200 with one result per record.
    pub fn batch(&self, records: &[Value]) -> Vec<ItemResult> {
        let resp = self.post_records(records);
        assert_eq!(resp.status(), 200, "batch status");
        let answer: BatchResponse = parse(resp);
        answer.results
    }
}

/// Parses a JSON body, after checking the answer against `server/openapi.yaml`.
pub fn parse<T: serde::de::DeserializeOwned>(resp: Response) -> T {
    let (path, status) = (resp.url().path().to_string(), resp.status().as_u16());
    let bytes = resp.bytes().expect("body");
    openapi::check(&path, status, &bytes);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "cannot parse {}: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    })
}

/// Asserts an error answer: status, `ErrorBody.error`, and returns the body.
pub fn expect_error(resp: Response, status: u16, code: &str) -> ErrorBody {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: ErrorBody = parse(resp);
    assert_eq!(body.error.as_str(), code, "error code ({})", body.message);
    body
}

/// Asserts one result's status and returns it.
pub fn expect_item<'a>(result: &'a ItemResult, id: &str, status: ItemStatus) -> &'a ItemResult {
    assert_eq!(result.id, id);
    assert_eq!(result.status, status, "item {id}: {:?}", result.reason);
    match status {
        ItemStatus::Accepted | ItemStatus::Duplicate => {
            assert!(result.received_at.is_some(), "received_at");
            assert!(result.reason.is_none());
        }
        ItemStatus::Conflict | ItemStatus::Rejected => {
            assert!(result.received_at.is_none());
            assert!(result.reason.is_some(), "reason");
        }
    }
    result
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn id_of(record: &Value) -> String {
    record["id"].as_str().expect("id").to_string()
}

pub const T0: &str = "2026-11-25T08:00:00Z";

pub fn location() -> Value {
    json!({
        "latitude": 50.4501, "longitude": 30.5234, "accuracy_m": 12.5,
        "altitude_m": 179.0, "provider": "gps", "fixed_at": T0
    })
}

pub fn sos_for(device: &str) -> Value {
    json!({
        "id": new_id(), "kind": "sos", "lane": "sos", "device_time": T0,
        "content": {
            "crew": {"device_id": device, "crew_id": "brigade-12", "staff_id": "p-31"},
            "raised_at": T0, "location": location(), "note": "attacked at the entrance"
        }
    })
}

pub fn sos() -> Value {
    sos_for(DEVICE)
}

pub fn sos_location(parent: &str, latitude: f64, recorded_at: &str) -> Value {
    let mut loc = location();
    loc["latitude"] = json!(latitude);
    json!({
        "id": new_id(), "kind": "sos_location", "lane": "sos", "parent_id": parent,
        "device_time": recorded_at,
        "content": {"location": loc, "recorded_at": recorded_at}
    })
}

pub fn sos_cancel(parent: &str) -> Value {
    json!({
        "id": new_id(), "kind": "sos_cancel", "lane": "sos", "parent_id": parent,
        "device_time": T0,
        "content": {"reason": "help_arrived", "note": null, "cancelled_at": T0}
    })
}

pub fn report() -> Value {
    json!({
        "id": new_id(), "kind": "incident_report", "lane": "report", "device_time": T0,
        "content": {
            "crew": {"device_id": DEVICE, "crew_id": "brigade-12"},
            "occurred_at": T0, "location": location(), "address": "Main St 1",
            "kind": "physical_assault", "severity": "serious",
            "staff_harmed": [{"role": "paramedic", "name": "A. B.", "injury_description": "bruises"}],
            "perpetrator_description": "tall", "witnesses": [{"name": "C. D.", "contact": null}],
            "police_called": true, "police_report_number": "123", "dispatch_call_number": "456",
            "narrative": "The patient's relative hit the paramedic.",
            "created_at": T0, "finalized_at": "2026-11-25T08:30:00Z"
        }
    })
}

/// The value of the sample `name` (with its labels, exactly as written) in a `/metrics`
/// exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
        .parse()
        .unwrap()
}

pub mod alarms;
pub mod openapi;
pub mod pg;
