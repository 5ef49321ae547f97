//! Dispatcher endpoints: the list of alarms and the moves acknowledge and resolve, each with an
//! optional [`DispatchAction`] body carrying a message for the crew.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use crewsafe_protocol::{
    AlarmKind, DispatchAction, DispatchSos, DispatchSosList, DispatchStatus, ErrorCode,
};
use serde::Deserialize;

use super::error::{json_error, ApiError};
use super::{auth_dispatcher, db, json_response, read_body, AppState};
use crate::storage::{Advance, Lookup, Move};
use crate::validate::dispatch_message;

/// Largest acknowledge/resolve body: a message of the longest length, in UTF-8 and JSON
/// escaping, with room to spare.
const MAX_ACTION_BYTES: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: Option<DispatchStatus>,
    alarm: Option<AlarmKind>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeviceQuery {
    device_id: Option<String>,
}

fn query_error(_: QueryRejection) -> ApiError {
    ApiError::malformed("invalid query string")
}

pub(super) async fn dispatch_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(query_error)?;
    let sos = db(state.storage.dispatch_list(q.status, q.alarm)).await?;
    Ok(json_response(&DispatchSosList { sos }))
}

/// The optional body of a move: empty (or blank) is no message.
fn action(bytes: &[u8]) -> Result<Option<String>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let action: DispatchAction =
        serde_json::from_slice(bytes).map_err(|e| ApiError::malformed(json_error(&e)))?;
    Ok(dispatch_message(action.message.as_deref())
        .map_err(ApiError::malformed)?
        .map(str::to_string))
}

async fn advance(
    state: AppState,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
    body: Body,
    action_kind: Advance,
) -> Result<Response, ApiError> {
    let dispatcher = auth_dispatcher(&state, &headers).await?;
    // E.g. percent-encoded bytes that are not UTF-8: refused after authentication, as JSON.
    let Path(id) = id.map_err(|_| ApiError::malformed("invalid alarm id in the path"))?;
    let Query(q) = query.map_err(query_error)?;
    let message = action(&read_body(&state, &headers, body, MAX_ACTION_BYTES).await?)?;
    let mv = Move {
        action: action_kind,
        dispatcher,
        message,
    };
    let found: Lookup<DispatchSos> = db(state.storage.advance_sos(id, q.device_id, mv)).await?;
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

pub(super) async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, body, Advance::Acknowledge).await
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, body, Advance::Resolve).await
}
