//! HTTP routes and handlers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use crewsafe_protocol::{
    decode_batch_request, BatchResponse, DecodeError, DispatchSos, DispatchSosList, DispatchStatus,
    ErrorBody, ErrorCode, SosStatusRequest, SosStatusResponse, TestFault, TestFaultsState,
    BATCH_PATH, DISPATCH_SOS_PATH, HEALTH_PATH, MAX_BATCH_RECORDS, MAX_BODY_BYTES,
    PROTOCOL_VERSION, SOS_STATUS_PATH, TEST_FAULTS_PATH,
};
use futures_util::StreamExt as _;
use rusqlite::Connection;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::faults::Faults;
use crate::store::{self, Advance, Db, Lookup};

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) db: Arc<Db>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) test_faults: bool,
}

/// Put into every request by the connection loop: notifying it drops the connection without
/// an answer (used by the `drop_after_commit` fault).
#[derive(Clone)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// Number of records in a batch, for the access log.
#[derive(Clone, Copy)]
struct RecordCount(usize);

/// Largest body of a test fault list.
const MAX_FAULTS_BODY: usize = 64 * 1024;
/// How much of an oversized body is still read (and discarded) so that the 413 reaches the
/// client instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route(HEALTH_PATH, get(health))
        .route(BATCH_PATH, post(batch))
        .route(SOS_STATUS_PATH, post(sos_status))
        .route(DISPATCH_SOS_PATH, get(dispatch_list))
        .route(
            &format!("{DISPATCH_SOS_PATH}/{{id}}/acknowledge"),
            post(acknowledge),
        )
        .route(
            &format!("{DISPATCH_SOS_PATH}/{{id}}/resolve"),
            post(resolve),
        );
    if state.test_faults {
        r = r.route(
            TEST_FAULTS_PATH,
            get(faults_get).post(faults_post).delete(faults_delete),
        );
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A 4xx/5xx answer with an [`ErrorBody`].
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or unknown bearer token",
        )
    }

    fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Malformed, message)
    }

    fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; nothing was stored, retry later",
        )
    }

    fn decode(e: DecodeError) -> Self {
        match e {
            DecodeError::Malformed(m) => Self::malformed(format!("malformed body: {m}")),
            DecodeError::Version(v) => Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported (this server speaks {PROTOCOL_VERSION})"
                ),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Same sanitizing as the protocol crate: category and position, never names or values.
fn json_error(e: &serde_json::Error) -> String {
    format!(
        "malformed body: {:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs a database operation on the blocking pool. It runs to completion even if the request
/// is dropped meanwhile.
async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut Connection) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let db = state.db.clone();
    match tokio::task::spawn_blocking(move || db.with(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            log::error!("database error: {e}");
            Err(ApiError::internal())
        }
        Err(e) => {
            log::error!("database task failed: {e}");
            Err(ApiError::internal())
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

async fn auth_device(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    db(state, move |c| store::device_for_token(c, &token))
        .await?
        .ok_or_else(ApiError::unauthorized)
}

async fn auth_dispatcher(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    db(state, move |c| store::dispatcher_for_token(c, &token))
        .await?
        .ok_or_else(ApiError::unauthorized)
}

/// Reads a body of at most `limit` bytes (413 above).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::too_large(format!("request body is larger than {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n.min(limit as u64) as usize));
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::malformed("request body could not be read"))?;
        total += chunk.len();
        if total > DRAIN_LIMIT {
            return Err(too_large());
        }
        if total <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if total > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(buf))
}

fn json_response<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

async fn health() -> Response {
    json_response(&serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let mut path = req.uri().path().to_string();
    if path.len() > 200 {
        let mut cut = 200;
        while !path.is_char_boundary(cut) {
            cut -= 1;
        }
        path.truncate(cut);
        path.push('…');
    }
    let started = Instant::now();
    let resp = next.run(req).await;
    let records = resp
        .extensions()
        .get::<RecordCount>()
        .map(|c| format!(" records={}", c.0))
        .unwrap_or_default();
    log::info!(
        target: "crewsafe_server::access",
        "{method} {path} {}{records} {}ms",
        resp.status().as_u16(),
        started.elapsed().as_millis()
    );
    resp
}

/// What to do with a committed batch answer.
enum Delivery {
    Normal,
    Drop,
    Truncate,
}

async fn batch(
    State(state): State<AppState>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.faults.count_batch_request();
    let device = auth_device(&state, &headers).await?;
    let bytes = read_body(&headers, body, MAX_BODY_BYTES).await?;
    let fault = if state.test_faults {
        state.faults.next()
    } else {
        None
    };
    let mut accept_first = None;
    let mut delay = None;
    let mut delivery = Delivery::Normal;
    match fault {
        Some(TestFault::Status {
            code,
            retry_after_secs,
        }) => {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            log::info!("answering {status} without processing (test fault)");
            return Err(ApiError {
                retry_after: retry_after_secs,
                ..ApiError::new(
                    status,
                    ErrorCode::TestFault,
                    format!("injected status {code}"),
                )
            });
        }
        Some(TestFault::Delay { ms }) => delay = Some(Duration::from_millis(ms)),
        Some(TestFault::DropAfterCommit) => delivery = Delivery::Drop,
        Some(TestFault::TruncateAfterCommit) => delivery = Delivery::Truncate,
        Some(TestFault::Partial { accept_first: n }) => accept_first = Some(n),
        Some(TestFault::RejectId { .. } | TestFault::MalformedWithId { .. }) | None => {}
    }
    if state.test_faults && state.faults.breaks_batch(&bytes) {
        log::info!("answering 400 for a batch holding a breaking id (test fault)");
        return Err(ApiError::malformed("malformed body (test fault)"));
    }
    let reject_ids = if state.test_faults {
        state.faults.reject_set()
    } else {
        HashSet::new()
    };
    // From here on the batch is processed to the end even if the client goes away.
    let task_state = state.clone();
    let work = tokio::spawn(async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let req = decode_batch_request(&bytes).map_err(ApiError::decode)?;
        if req.records.len() > MAX_BATCH_RECORDS {
            return Err(ApiError::too_large(format!(
                "a batch may hold at most {MAX_BATCH_RECORDS} records"
            )));
        }
        let mut records = req.records;
        if let Some(n) = accept_first {
            records.truncate(n);
        }
        let count = records.len();
        let results = db(&task_state, move |c| {
            store::process_batch(c, &device, &records, &reject_ids)
        })
        .await?;
        Ok::<_, ApiError>((count, BatchResponse { results }))
    });
    let (count, answer) = work.await.map_err(|_| ApiError::internal())??;
    let body = serde_json::to_vec(&answer).map_err(|_| ApiError::internal())?;
    let mut resp = match delivery {
        Delivery::Normal => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Delivery::Drop => {
            log::info!("committed {count} records, dropping the connection (test fault)");
            if let Some(Extension(kill)) = kill {
                kill.0.notify_one();
                // The connection loop drops this future together with the connection.
                std::future::pending::<()>().await;
            }
            aborted_body(Bytes::new())
        }
        Delivery::Truncate => {
            log::info!("committed {count} records, truncating the answer (test fault)");
            let half = Bytes::copy_from_slice(&body[..body.len() / 2]);
            aborted_body(half)
        }
    };
    resp.extensions_mut().insert(RecordCount(count));
    Ok(resp)
}

/// A 200 whose body sends `first`, pauses so that hyper flushes headers and that part, and
/// then fails, which aborts the connection.
fn aborted_body(first: Bytes) -> Response {
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok(first), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Some((
                        Err(std::io::Error::other("answer truncated (test fault)")),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn sos_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let device = auth_device(&state, &headers).await?;
    let bytes = read_body(&headers, body, MAX_BODY_BYTES).await?;
    let req: SosStatusRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::malformed(json_error(&e)))?;
    if req.protocol != PROTOCOL_VERSION {
        return Err(ApiError::decode(DecodeError::Version(req.protocol)));
    }
    if req.ids.len() > MAX_BATCH_RECORDS {
        return Err(ApiError::too_large(format!(
            "a status query may name at most {MAX_BATCH_RECORDS} ids"
        )));
    }
    let statuses = db(&state, move |c| store::sos_statuses(c, &device, &req.ids)).await?;
    Ok(json_response(&SosStatusResponse { statuses }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<DispatchStatus>,
}

#[derive(Debug, Deserialize)]
struct DeviceQuery {
    device_id: Option<String>,
}

fn query_error(_: QueryRejection) -> ApiError {
    ApiError::malformed("invalid query string")
}

async fn dispatch_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(query_error)?;
    let sos = db(&state, move |c| store::dispatch_list(c, q.status)).await?;
    Ok(json_response(&DispatchSosList { sos }))
}

async fn advance(
    state: AppState,
    headers: HeaderMap,
    id: String,
    query: Result<Query<DeviceQuery>, QueryRejection>,
    action: Advance,
) -> Result<Response, ApiError> {
    let dispatcher = auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(query_error)?;
    let found: Lookup<DispatchSos> = db(&state, move |c| {
        store::advance_sos(c, &id, q.device_id.as_deref(), action, &dispatcher)
    })
    .await?;
    match found {
        Lookup::Found(sos) => Ok(json_response(&sos)),
        Lookup::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no sos with this id",
        )),
        Lookup::Ambiguous => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Ambiguous,
            "several devices sent an sos with this id; add ?device_id=",
        )),
    }
}

async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, Advance::Acknowledge).await
}

async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, Advance::Resolve).await
}

async fn faults_get(State(state): State<AppState>) -> Response {
    json_response(&state.faults.state())
}

/// Accepts a JSON list of faults (or a single fault object) and queues them.
async fn faults_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(&headers, body, MAX_FAULTS_BODY).await?;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<TestFault>),
        One(TestFault),
    }
    let faults = match serde_json::from_slice::<OneOrMany>(&bytes) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(f)) => vec![f],
        Err(_) => {
            return Err(ApiError::malformed(
                "expected a JSON list of faults, e.g. [{\"fault\":\"status\",\"code\":503}]",
            ))
        }
    };
    for f in &faults {
        if let TestFault::Status { code, .. } = f {
            if !(400..=599).contains(code) {
                return Err(ApiError::malformed("status fault code must be 400 to 599"));
            }
        }
    }
    state.faults.push_all(faults);
    Ok(json_response::<TestFaultsState>(&state.faults.state()))
}

async fn faults_delete(State(state): State<AppState>) -> Response {
    state.faults.clear();
    json_response(&state.faults.state())
}
