//! The HTTP API (`docs/protocol.md`, `server/openapi.yaml`): the router, the access log and
//! the helpers every handler shares (bearer authentication, bounded bodies, storage calls on
//! the blocking pool). Handlers live in one file per resource; errors become answers in
//! `error.rs`.

mod console;
mod dispatch;
mod error;
mod events;
mod records;
mod test_faults;
mod watch;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use crewsafe_protocol::{
    ErrorCode, BATCH_PATH, DISPATCH_EVENTS_PATH, DISPATCH_SOS_PATH, HEALTH_PATH, SOS_STATUS_PATH,
    SOS_WATCH_PATH, TEST_FAULTS_PATH,
};
use futures_util::StreamExt as _;
use tokio::sync::{watch as signal, Notify};

use crate::faults::Faults;
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
}

/// Put into every request by the connection loop: notifying it drops the connection without
/// an answer (used by the `drop_after_commit` fault).
#[derive(Clone)]
pub(crate) struct ConnKill(pub(crate) Arc<Notify>);

/// Number of records in a batch, for the access log.
#[derive(Clone, Copy)]
struct RecordCount(usize);

/// How much of an oversized body is still read (and discarded) so that the 413 reaches the
/// client instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Every route of the API (and `/test/faults` in the test fault mode), with the access log.
pub(crate) fn router(state: AppState) -> Router {
    let mut r = Router::new()
        .route(HEALTH_PATH, get(health))
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
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// Completes when the server starts stopping.
async fn server_closing(closing: &mut signal::Receiver<bool>) {
    // The guard `wait_for` returns is not held: it must not live across an await.
    let _ = closing.wait_for(|c| *c).await.map(|_| ());
}

/// Runs a storage operation on the blocking pool. It runs to completion even if the request
/// is dropped meanwhile.
async fn db<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Storage) -> crate::error::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let storage = state.storage.clone();
    match tokio::task::spawn_blocking(move || f(&storage)).await {
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
    db(state, move |s| s.device_for_token(&token))
        .await?
        .ok_or_else(ApiError::unauthorized)
}

async fn auth_dispatcher(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
    db(state, move |s| s.dispatcher_for_token(&token))
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
