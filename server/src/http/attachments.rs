//! Attachments of reports: the phone's resumable upload (`GET` how much is held, `PUT` the next
//! chunk at `upload-offset` with its `chunk-sha256`) and the dispatcher's list and download.
//! A file belongs to a report the server already holds: the report's content commits to its
//! size and SHA-256, and the upload is checked against exactly that.

use std::io::Read as _;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use crewsafe_protocol::{
    AttachmentRef, AttachmentStatus, ErrorCode, Kind, ReportContent, CHUNK_SHA256_HEADER,
    MAX_UPLOAD_CHUNK, UPLOAD_OFFSET_HEADER,
};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{auth_device, auth_dispatcher, db, json_response, read_body, AppState};
use crate::media::{ChunkError, Held};
use crate::validate::is_uuid;

/// The attachment `attachment` of report `report` of `device`, as the report commits to it.
async fn commitment(
    state: &AppState,
    device: &str,
    report: &str,
    attachment: &str,
) -> Result<AttachmentRef, ApiError> {
    let not_found = |what: &str| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} (send the report first)"),
        )
    };
    if !is_uuid(report) || !is_uuid(attachment) {
        return Err(not_found("no such report or attachment"));
    }
    let (device_id, report_id) = (device.to_string(), report.to_ascii_lowercase());
    let stored = db(state.storage.record(device_id, report_id))
        .await?
        .filter(|r| r.kind == Kind::IncidentReport)
        .ok_or_else(|| not_found("no report with this id from this device"))?;
    let content: ReportContent =
        serde_json::from_value(stored.content).map_err(|_| ApiError::internal())?;
    content
        .attachments
        .into_iter()
        .find(|a| a.id.eq_ignore_ascii_case(attachment))
        .ok_or_else(|| not_found("the report lists no attachment with this id"))
}

fn status_of(a: &AttachmentRef, held: Held) -> AttachmentStatus {
    AttachmentStatus {
        id: a.id.clone(),
        size: a.size,
        received: if held.stored { a.size } else { held.received },
        stored: held.stored,
    }
}

/// Runs a file operation on the blocking pool.
async fn media<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::media::Media) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let Some(media) = state.media.clone() else {
        log::error!("an attachment arrived but no media folder is configured (--media-dir)");
        return Err(ApiError::internal());
    };
    tokio::task::spawn_blocking(move || f(&media))
        .await
        .map_err(|_| ApiError::internal())
}

/// `GET /v1/reports/{report}/attachments/{attachment}`: how much the server holds.
pub(super) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((report, attachment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let device = auth_device(&state, &headers).await?;
    let a = commitment(&state, &device, &report, &attachment).await?;
    let (dev, id, sha) = (device, a.id.to_ascii_lowercase(), a.sha256.clone());
    let held = media(&state, move |m| m.held(&dev, &id, &sha))
        .await?
        .map_err(|_| ApiError::internal())?;
    Ok(json_response(&status_of(&a, held)))
}

/// `PUT /v1/reports/{report}/attachments/{attachment}`: the next chunk.
pub(super) async fn put_chunk(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((report, attachment)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let device = auth_device(&state, &headers).await?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let offset: u64 = header(UPLOAD_OFFSET_HEADER)
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::malformed(format!("{UPLOAD_OFFSET_HEADER}: required, a byte offset"))
        })?;
    let chunk_sha = header(CHUNK_SHA256_HEADER)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            ApiError::malformed(format!("{CHUNK_SHA256_HEADER}: required, 64 hex digits"))
        })?;
    let a = commitment(&state, &device, &report, &attachment).await?;
    let bytes: Bytes = read_body(&state, &headers, body, MAX_UPLOAD_CHUNK as usize).await?;
    let (dev, id, size, sha) = (device, a.id.to_ascii_lowercase(), a.size, a.sha256.clone());
    let put = media(&state, move |m| {
        m.put_chunk(&dev, &id, size, &sha, offset, &bytes, &chunk_sha)
    })
    .await?;
    match put {
        Ok(held) => Ok(json_response(&status_of(&a, held))),
        Err(ChunkError::Offset(held)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::OffsetMismatch,
            format!("the server holds {held} bytes of this attachment: send from there"),
        )),
        Err(ChunkError::Checksum) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ChecksumMismatch,
            "the chunk does not match its chunk-sha256: send it again",
        )),
        Err(ChunkError::Hash) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::HashMismatch,
            "the whole file does not match the SHA-256 its report commits to; the copy was dropped",
        )),
        Err(ChunkError::Range(why)) => Err(ApiError::malformed(why)),
        Err(ChunkError::Io(e)) => {
            log::error!("attachment file i/o: {}", e.kind());
            Err(ApiError::internal())
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct DeviceQuery {
    device_id: String,
}

/// One attachment of a report, as dispatch sees it.
#[derive(Debug, Serialize)]
struct Listed {
    #[serde(flatten)]
    commitment: AttachmentRef,
    stored: bool,
    received: u64,
}

/// `GET /v1/dispatch/reports/{report}/attachments?device_id=`: a report's attachments and how
/// much of each is stored.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(report): Path<String>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(|_| ApiError::malformed("device_id: required"))?;
    let (device_id, report_id) = (q.device_id.clone(), report.to_ascii_lowercase());
    if !is_uuid(&report_id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such report",
        ));
    }
    let stored = db(state.storage.record(device_id, report_id))
        .await?
        .filter(|r| r.kind == Kind::IncidentReport)
        .ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such report")
        })?;
    let content: ReportContent =
        serde_json::from_value(stored.content).map_err(|_| ApiError::internal())?;
    let mut out = Vec::new();
    for a in content.attachments {
        let (dev, id, sha) = (
            q.device_id.clone(),
            a.id.to_ascii_lowercase(),
            a.sha256.clone(),
        );
        let held = media(&state, move |m| m.held(&dev, &id, &sha))
            .await?
            .map_err(|_| ApiError::internal())?;
        out.push(Listed {
            received: if held.stored { a.size } else { held.received },
            stored: held.stored,
            commitment: a,
        });
    }
    Ok(json_response(&serde_json::json!({ "attachments": out })))
}

/// `GET /v1/dispatch/reports/{report}/attachments/{attachment}?device_id=`: the stored file.
pub(super) async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((report, attachment)): Path<(String, String)>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(|_| ApiError::malformed("device_id: required"))?;
    let a = commitment(&state, &q.device_id, &report, &attachment).await?;
    let sha = a.sha256.clone();
    let bytes = media(&state, move |m| {
        let mut buf = Vec::new();
        m.open_object(&sha)?.read_to_end(&mut buf)?;
        Ok::<_, std::io::Error>(buf)
    })
    .await?
    .map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the attachment is not stored (yet)",
        )
    })?;
    let mime = HeaderValue::from_str(&a.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response())
}
