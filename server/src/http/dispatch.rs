//! Dispatcher endpoints: the list of SOS alarms and the moves acknowledge and resolve.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use crewsafe_protocol::{DispatchSos, DispatchSosList, DispatchStatus, ErrorCode};
use serde::Deserialize;

use super::error::ApiError;
use super::{auth_dispatcher, db, json_response, AppState};
use crate::storage::{Advance, Lookup};

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: Option<DispatchStatus>,
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
    let sos = db(&state, move |s| s.dispatch_list(q.status)).await?;
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
    let found: Lookup<DispatchSos> = db(&state, move |s| {
        s.advance_sos(&id, q.device_id.as_deref(), action, &dispatcher)
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

pub(super) async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, Advance::Acknowledge).await
}

pub(super) async fn resolve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    advance(state, headers, id, query, Advance::Resolve).await
}
