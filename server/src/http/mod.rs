//! The HTTP API (`docs/protocol.md`, `server/openapi.yaml`): the router, the access log and
//! the helpers every handler shares (bearer authentication, bounded bodies, storage calls on
//! the blocking pool). Handlers live in one file per resource; errors become answers in
//! `error.rs`.

mod attachments;
mod console;
mod dispatch;
mod error;
mod events;
mod paging;
mod records;
mod reports;
mod test_faults;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use crewsafe_protocol::{
    ErrorCode, BATCH_PATH, DISPATCH_EVENTS_PATH, DISPATCH_REPORTS_PATH, DISPATCH_SOS_PATH,
    HEALTH_PATH, SOS_STATUS_PATH, SOS_WATCH_PATH, TEST_FAULTS_PATH,
};
use futures_util::StreamExt as _;
use tokio::sync::{watch as signal, Notify};

use crate::faults::Faults;
use crate::ops::{AlarmGauges, Ops, Outcomes, RequestContext};
use crate::storage::Storage;
use error::ApiError;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) storage: Arc<Storage>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) test_faults: bool,
    /// Turns true when the server stops: long-lived requests (watches, event streams) end.
    pub(crate) closing: signal::Receiver<bool>,
    /// Status watches waiting right now.
    pub(crate) watches: Arc<AtomicUsize>,
    /// Metrics, limits and the rate limiter.
    pub(crate) ops: Arc<Ops>,
    /// The attachment folder, if one is configured.
    pub(crate) media: Option<Arc<crate::media::Media>>,
}

/// Put into every request by the connection loop: notifying it drops the connection without
/// an answer (used by the `drop_after_commit` fault).
#[derive(Clone)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// The outcomes of a batch's records, for the access log and the metrics.
#[derive(Clone, Copy)]
struct RecordCount(Outcomes);

/// How much of an oversized body is still read (and discarded) so that the 413 reaches the
/// client instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Every route of the API (and `/test/faults` in the test fault mode), with the access log.
pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route(HEALTH_PATH, get(health))
        .route(READY_PATH, get(ready))
        .route(METRICS_PATH, get(metrics))
        .route(crewsafe_protocol::CONSOLE_PATH, get(console::page_handler))
        .route(BATCH_PATH, post(records::batch))
        .route(SOS_STATUS_PATH, post(records::sos_status))
        .route(SOS_WATCH_PATH, post(watch::watch))
        .route(DISPATCH_SOS_PATH, get(dispatch::dispatch_list))
        .route(DISPATCH_EVENTS_PATH, get(events::events))
        .route(
            &format!("{DISPATCH_SOS_PATH}/{{id}}/acknowledge"),
            post(dispatch::acknowledge),
        )
        .route(
            &format!("{DISPATCH_SOS_PATH}/{{id}}/resolve"),
            post(dispatch::resolve),
        )
        .route(
            "/v1/reports/{report}/attachments/{attachment}",
            get(attachments::status).put(attachments::put_chunk),
        )
        .route(DISPATCH_REPORTS_PATH, get(reports::list))
        .route(
            "/v1/dispatch/reports/{report}/attachments",
            get(attachments::list),
        )
        .route(
            "/v1/dispatch/reports/{report}/attachments/{attachment}",
            get(attachments::download),
        );
    if state.test_faults {
        r = r.route(
            TEST_FAULTS_PATH,
            get(test_faults::get)
                .post(test_faults::post)
                .delete(test_faults::delete),
        );
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

/// Completes when the server starts stopping.
async fn server_closing(closing: &mut signal::Receiver<bool>) {
    // The guard `wait_for` returns is not held: it must not live across an await.
    let _ = closing.wait_for(|c| *c).await.map(|_| ());
}

/// Awaits a storage operation; a database error becomes a 500 (and a log line). Writes run to
/// completion even if the request is dropped meanwhile (see `storage`).
async fn db<T>(
    op: impl std::future::Future<Output = crate::error::Result<T>>,
) -> Result<T, ApiError> {
    op.await.map_err(|e| {
        log::error!("database error: {e}");
        RequestContext::note_db_error();
        ApiError::internal()
    })
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
    let device = db(state.storage.device_for_token(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    RequestContext::note_device(&device);
    if let Err(secs) = state.ops.rate.check(&device) {
        state.ops.metrics.rate_limited();
        return Err(ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many requests from this device; retry after Retry-After seconds",
            )
        });
    }
    Ok(device)
}

async fn auth_dispatcher(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    let name = db(state.storage.dispatcher_for_token(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    RequestContext::note_dispatcher(&name);
    Ok(name)
}

/// Reads a body of at most `limit` bytes (413 above) within the body timeouts (408 when the
/// client is too slow: the connection closes after the answer).
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let limits = &state.ops.limits;
    let too_slow = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Timeout,
            "the request body arrived too slowly",
        )
    };
    let read = read_body_untimed(headers, body, limit, limits.body_idle_timeout);
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) | Err(_) => Err(too_slow()),
        Ok(Err(e)) => Err(e),
    }
}

/// [`read_body`] without its total timeout; `Ok(None)` if the client paused longer than
/// `idle`.
async fn read_body_untimed(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    idle: Duration,
) -> Result<Option<Bytes>, ApiError> {
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
    loop {
        let Ok(next) = tokio::time::timeout(idle, stream.next()).await else {
            return Ok(None);
        };
        let Some(chunk) = next else { break };
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
    Ok(Some(Bytes::from(buf)))
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

async fn health() -> Response {
    json_response(&serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 when the database answers a cheap query within the ready timeout, 503
/// otherwise (`/healthz` is liveness only).
const READY_PATH: &str = "/readyz";

/// The Prometheus exposition.
const METRICS_PATH: &str = "/metrics";

async fn ready(State(state): State<AppState>) -> Response {
    let wait = state.ops.limits.ready_timeout;
    let failure = match tokio::time::timeout(wait, state.storage.ping()).await {
        Ok(Ok(())) => return json_response(&serde_json::json!({ "status": "ready" })),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", wait.as_millis()),
    };
    log::warn!("readiness: database error: {failure}");
    RequestContext::note_db_error();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "the database does not answer",
    )
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let wait = state.ops.limits.ready_timeout;
    let alarms = match tokio::time::timeout(wait, alarm_gauges(&state)).await {
        Ok(Ok(gauges)) => Some(gauges),
        Ok(Err(_)) | Err(_) => {
            RequestContext::note_db_error();
            None
        }
    };
    let text = state
        .ops
        .metrics
        .render(state.watches.load(Ordering::SeqCst), alarms);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// The alarm gauges, counted by the database (a scrape costs the same however many alarms are
/// stored).
async fn alarm_gauges(state: &AppState) -> crate::error::Result<AlarmGauges> {
    let counts = state.storage.alarm_counts().await?;
    let now = crate::storage::now();
    let oldest = counts.oldest_unacknowledged.map_or(0.0, |at| {
        (now - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok(AlarmGauges {
        open: counts.open,
        unacknowledged: counts.unacknowledged,
        oldest_unacknowledged_secs: oldest,
    })
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

/// The access log and the request metrics: one structured line per request (request id,
/// method, matched route, status, authenticated device or dispatcher, record counts, latency;
/// never a token, a raw path or content), the id also returned as `x-request-id`.
async fn access_log(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let id = crate::ops::request_id(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let ctx = RequestContext::default();
    let mut resp = ctx.scope(next.run(req)).await;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    let noted = ctx.noted();
    let metrics = &state.ops.metrics;
    metrics.request(method.as_str(), &route, status);
    if noted.db_error {
        metrics.db_error();
    }
    let outcomes = resp.extensions().get::<RecordCount>().map(|c| c.0);
    if let Some(o) = outcomes {
        metrics.batch(o, latency);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let o = outcomes.unwrap_or_default();
    log::info!(
        target: "crewsafe_server::access",
        request_id = id.as_str(),
        method = method.as_str(),
        route = route.as_str(),
        status = status,
        device_id = noted.device_id.as_deref(),
        dispatcher = noted.dispatcher.as_deref(),
        records = outcomes.map(|o| o.total()),
        accepted = outcomes.map(|_| o.accepted),
        duplicate = outcomes.map(|_| o.duplicate),
        conflict = outcomes.map(|_| o.conflict),
        rejected = outcomes.map(|_| o.rejected),
        latency_ms = latency.as_secs_f64() * 1000.0;
        "request"
    );
    resp
}
