//! Helpers of the SOS loop tests: a server that can be restarted on its database (SQLite, or
//! PostgreSQL for the contract suite) with the same configuration, an enrolled dispatcher,
//! check-in record builders, the status watch and a reader of the dispatcher event stream.

use std::io::{BufRead as _, BufReader};
use std::time::{Duration, Instant};

use crewsafe_server::protocol::{
    BatchResponse, DispatchSos, ItemResult, ItemStatus, SosStatusResponse,
};
use crewsafe_server::{start, Database, RunningServer, ServerConfig, ServerStore};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use super::pg::PgDatabase;
use super::{client, location, new_id, parse, DEVICE, T0};

/// Dispatcher name enrolled by [`Loop::start`].
pub const DISPATCHER: &str = "desk 4";

/// The backend a [`Loop`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server whose configuration is kept, so that it can be restarted on the same database.
pub struct Loop {
    pub dir: tempfile::TempDir,
    pub database: Database,
    pub config: ServerConfig,
    pub server: Option<RunningServer>,
    pub client: Client,
    pub token: String,
    pub dispatcher: String,
    /// The PostgreSQL database, dropped after the server stopped.
    pub pg: Option<PgDatabase>,
}

impl Loop {
    /// A server on a fresh SQLite database, configured by `configure`, with [`DEVICE`] and
    /// [`DISPATCHER`] enrolled.
    pub fn start(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> Loop {
        Self::start_on(Backend::Sqlite, configure).expect("SQLite")
    }

    /// The same on `backend`; `None` when PostgreSQL is asked for but not configured (and not
    /// required: see `pg.rs`).
    pub fn start_on(
        backend: Backend,
        configure: impl FnOnce(ServerConfig) -> ServerConfig,
    ) -> Option<Loop> {
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create()?),
        };
        let database = match &pg {
            Some(pg) => pg.database(),
            None => Database::Sqlite(dir.path().join("server.db")),
        };
        let config = configure(ServerConfig::on(
            database.clone(),
            "127.0.0.1:0".parse().unwrap(),
        ));
        let server = start(config.clone()).expect("start");
        let store = ServerStore::connect(&database).expect("store");
        let token = store.enroll_device(DEVICE).expect("enroll");
        let dispatcher = store
            .enroll_dispatcher(DISPATCHER)
            .expect("enroll dispatcher");
        Some(Loop {
            dir,
            database,
            config,
            server: Some(server),
            client: client(),
            token,
            dispatcher,
            pg,
        })
    }

    /// Enrolls (or re-enrolls) a device and returns its token.
    pub fn enroll_device(&self, device_id: &str) -> String {
        ServerStore::connect(&self.database)
            .expect("store")
            .enroll_device(device_id)
            .expect("enroll")
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    /// Stops the server (if running) and starts a new one on the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.server = Some(start(self.config.clone()).expect("restart"));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server().url())
    }

    pub fn store(&self) -> ServerStore {
        self.server().store().expect("store")
    }

    /// This server's HTTP API as [`DEVICE`] and [`DISPATCHER`].
    pub fn site(&self) -> Site<'_> {
        Site::new(
            self.server().url(),
            &self.client,
            &self.token,
            &self.dispatcher,
        )
    }

    pub fn send_as(&self, token: &str, records: &[Value]) {
        self.site().send_as(token, records)
    }

    pub fn send(&self, records: &[Value]) {
        self.site().send(records)
    }

    pub fn post_raw_records(&self, records: &[Value]) -> Vec<ItemResult> {
        self.site().post_raw_records(records)
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().expect("send");
        assert_eq!(resp.status(), 200);
        resp.text().expect("body")
    }

    pub fn post_batch_text(&self, body: String) -> Vec<ItemResult> {
        self.site().post_batch_text(body)
    }

    pub fn post_duplicate(&self, record: &Value) -> ItemStatus {
        self.site().post_duplicate(record)
    }

    pub fn dispatch(&self, id: &str, action: &str, body: Option<&str>) -> Response {
        self.site().dispatch(id, action, body)
    }

    pub fn dispatch_ok(&self, id: &str, action: &str, message: Option<&str>) -> DispatchSos {
        self.site().dispatch_ok(id, action, message)
    }

    pub fn watch_as(&self, token: &str, known: Value, wait_seconds: u32) -> Response {
        self.site().watch_as(token, known, wait_seconds)
    }

    pub fn watch(&self, known: Value, wait_seconds: u32) -> SosStatusResponse {
        self.site().watch(known, wait_seconds)
    }

    pub fn events(&self, last_event_id: Option<i64>) -> EventStream {
        self.site().events(last_event_id)
    }
}

/// One server's HTTP API, as a device and a dispatcher.
pub struct Site<'a> {
    base: String,
    client: &'a Client,
    token: &'a str,
    dispatcher: &'a str,
}

impl<'a> Site<'a> {
    /// The server at `base` (e.g. `http://127.0.0.1:4321`).
    pub fn new(base: String, client: &'a Client, token: &'a str, dispatcher: &'a str) -> Self {
        Site {
            base,
            client,
            token,
            dispatcher,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts records as `token`'s device and expects them all accepted.
    pub fn send_as(&self, token: &str, records: &[Value]) {
        let resp = self
            .client
            .post(self.url("/v1/records:batch"))
            .bearer_auth(token)
            .body(json!({"protocol": 1, "records": records}).to_string())
            .send()
            .expect("send");
        assert_eq!(resp.status(), 200);
        let answer: Value = parse(resp);
        for r in answer["results"].as_array().unwrap() {
            assert_eq!(r["status"], "accepted", "{r}");
        }
    }

    pub fn send(&self, records: &[Value]) {
        self.send_as(self.token, records)
    }

    /// Posts records as [`DEVICE`] and returns the results, whatever they are.
    pub fn post_raw_records(&self, records: &[Value]) -> Vec<ItemResult> {
        self.post_batch_text(json!({"protocol": 1, "records": records}).to_string())
    }

    /// Posts a batch body written as text as [`DEVICE`] and returns the results.
    pub fn post_batch_text(&self, body: String) -> Vec<ItemResult> {
        let resp = self
            .client
            .post(self.url("/v1/records:batch"))
            .bearer_auth(self.token)
            .body(body)
            .send()
            .expect("send");
        assert_eq!(resp.status(), 200);
        parse::<BatchResponse>(resp).results
    }

    /// Posts one record again and returns its status.
    pub fn post_duplicate(&self, record: &Value) -> ItemStatus {
        self.post_raw_records(std::slice::from_ref(record))[0].status
    }

    /// `POST /v1/dispatch/sos/{id}/{action}` with this body (none if `None`).
    pub fn dispatch(&self, id: &str, action: &str, body: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/dispatch/sos/{id}/{action}")))
            .bearer_auth(self.dispatcher);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send().expect("dispatch")
    }

    /// Acknowledges or resolves with a message and returns the new view.
    pub fn dispatch_ok(&self, id: &str, action: &str, message: Option<&str>) -> DispatchSos {
        let body = message.map(|m| json!({ "message": m }).to_string());
        let resp = self.dispatch(id, action, body.as_deref());
        assert_eq!(resp.status(), 200);
        parse(resp)
    }

    /// `POST /v1/sos:watch` as `token`'s device.
    pub fn watch_as(&self, token: &str, known: Value, wait_seconds: u32) -> Response {
        self.client
            .post(self.url("/v1/sos:watch"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(70))
            .body(json!({"protocol": 1, "known": known, "wait_seconds": wait_seconds}).to_string())
            .send()
            .expect("watch")
    }

    pub fn watch(&self, known: Value, wait_seconds: u32) -> SosStatusResponse {
        let resp = self.watch_as(self.token, known, wait_seconds);
        assert_eq!(resp.status(), 200);
        parse(resp)
    }

    /// Opens the dispatcher event stream.
    pub fn events(&self, last_event_id: Option<i64>) -> EventStream {
        let mut req = self
            .client
            .get(self.url("/v1/dispatch/events"))
            .bearer_auth(self.dispatcher)
            .timeout(Duration::from_secs(60));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().expect("events");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        EventStream {
            reader: BufReader::new(resp),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One event of the stream.
#[derive(Debug)]
pub struct Event {
    pub id: i64,
    pub alarm: DispatchSos,
}

/// Reads the dispatcher event stream as the console does.
pub struct EventStream {
    reader: BufReader<Response>,
}

impl EventStream {
    /// The next event (comments are skipped), checking the exact wire format.
    pub fn next(&mut self) -> Event {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read stream");
            assert!(n > 0, "the stream ended");
            assert!(line.ends_with('\n'));
            let line = line.trim_end_matches('\n').to_string();
            if line.is_empty() {
                if lines.is_empty() {
                    continue;
                }
                break;
            }
            if line.starts_with(':') {
                continue;
            }
            lines.push(line);
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        let id = lines[0]
            .strip_prefix("id: ")
            .expect("id line")
            .parse()
            .expect("id");
        assert_eq!(lines[1], "event: alarm");
        let data = lines[2].strip_prefix("data: ").expect("data line");
        super::openapi::check_schema("DispatchSos", &serde_json::from_str(data).expect("JSON"));
        Event {
            id,
            alarm: serde_json::from_str(data).expect("DispatchSos"),
        }
    }
}

/// Polls `f` every 10 ms until it gives `Some`, for at most `within`.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An SOS of [`DEVICE`] whose position was fixed at `fixed_at` at this latitude.
pub fn sos_at(latitude: f64, fixed_at: &str) -> Value {
    let mut loc = location();
    loc["latitude"] = json!(latitude);
    loc["fixed_at"] = json!(fixed_at);
    json!({
        "id": new_id(), "kind": "sos", "lane": "sos", "device_time": T0,
        "content": {
            "crew": {"device_id": DEVICE, "crew_id": "brigade-12"},
            "raised_at": T0, "location": loc, "note": null
        }
    })
}

/// A check-in start of [`DEVICE`], due in `minutes`, started at 50.0 N (fixed at [`T0`]).
pub fn check_in_start(minutes: u32) -> Value {
    let mut loc = location();
    loc["latitude"] = json!(50.0);
    json!({
        "id": new_id(), "kind": "check_in_start", "lane": "sos", "device_time": T0,
        "content": {
            "crew": {"device_id": DEVICE, "crew_id": "brigade-12"},
            "started_at": T0, "due_in_minutes": minutes,
            "address": "Main St 1, flat 4", "note": "aggressive relative", "location": loc
        }
    })
}

pub fn check_in_extend(start: &str, minutes: u32) -> Value {
    json!({
        "id": new_id(), "kind": "check_in_extend", "lane": "sos", "parent_id": start,
        "device_time": T0,
        "content": {"extend_by_minutes": minutes, "extended_at": T0}
    })
}

pub fn check_in_done(start: &str) -> Value {
    json!({
        "id": new_id(), "kind": "check_in_done", "lane": "sos", "parent_id": start,
        "device_time": "2026-11-25T08:20:00Z",
        "content": {"done_at": "2026-11-25T08:20:00Z"}
    })
}

/// What a phone knows of an alarm, for a watch.
pub fn known(id: &str, status: &str, updated_at: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    match updated_at {
        Some(t) => json!({"id": id, "status": status, "updated_at": t}),
        None => json!({"id": id, "status": status}),
    }
}
