//! Attachments of reports: the phone's resumable upload (`GET` how much is held, `PUT` the next
//! chunk at `upload-offset` with its `chunk-sha256`) and the dispatcher's list and download.
//! A file belongs to a report the server already holds: the report's content commits to its
//! size and SHA-256, and the upload is checked against exactly that.
//!
//! A download streams the stored file from disk a piece at a time (memory stays flat whatever
//! its size), with its `Content-Type` and `Content-Length`, and answers a single byte range
//! (`Range: bytes=…`, 206) so that a player can seek in a video.

use std::io::SeekFrom;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use crewsafe_protocol::{
    AttachmentRef, AttachmentStatus, DispatchAttachment, ErrorCode, Kind, ReportContent,
    CHUNK_SHA256_HEADER, MAX_UPLOAD_CHUNK, UPLOAD_OFFSET_HEADER, UPLOAD_UNIT,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

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

/// The dispatcher's view of attachment `a` of `device`, from what the media folder holds
/// (nothing, without a media folder).
pub(super) fn dispatch_view(
    m: Option<&crate::media::Media>,
    device: &str,
    a: AttachmentRef,
) -> std::io::Result<DispatchAttachment> {
    let held = match m {
        Some(m) => m.held(device, &a.id.to_ascii_lowercase(), &a.sha256)?,
        None => Held {
            received: 0,
            stored: false,
        },
    };
    Ok(DispatchAttachment {
        received: if held.stored { a.size } else { held.received },
        stored: held.stored,
        id: a.id,
        kind: a.kind,
        mime_type: a.mime_type,
        size: a.size,
        sha256: a.sha256,
        captured_at: a.captured_at,
    })
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
    let device = q.device_id;
    let out = media(&state, move |m| {
        content
            .attachments
            .into_iter()
            .map(|a| dispatch_view(Some(m), &device, a))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .await?
    .map_err(|_| ApiError::internal())?;
    Ok(json_response(&serde_json::json!({ "attachments": out })))
}

/// The part of a file of `size` bytes a download sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The whole file (no `Range`, or one this server ignores: several ranges, another unit,
    /// a malformed one, or an `If-Range` for other bytes).
    Whole,
    /// Bytes `first..=last` (206).
    Range(u64, u64),
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// Reads a single `bytes=` range (RFC 9110 §14.1.2) against a file of `size` bytes.
fn part_of(range: Option<&str>, size: u64) -> Part {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Part::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Part::Whole;
    };
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), num(first), num(last)) {
        // `bytes=-N`: the last N bytes.
        (true, _, Some(n)) if n > 0 && size > 0 => Part::Range(size - n.min(size), size - 1),
        (true, _, Some(_)) => Part::Unsatisfiable,
        (false, Some(a), _) if a >= size => Part::Unsatisfiable,
        // `bytes=A-`: from A to the end.
        (false, Some(a), None) if last.trim().is_empty() => Part::Range(a, size - 1),
        (false, Some(a), Some(b)) if b >= a => Part::Range(a, b.min(size - 1)),
        _ => Part::Whole,
    }
}

/// `len` bytes of `file` from where it stands, read a piece at a time as the client takes
/// them.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let piece = UPLOAD_UNIT as usize;
    let stream = futures_util::stream::unfold((file, len), move |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; usize::try_from(left).map_or(piece, |l| l.min(piece))];
        match file.read(&mut buf).await {
            Ok(0) => {
                log::error!("a stored attachment is shorter than its size");
                let e = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                Some((Err(e), (file, 0)))
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => {
                log::error!("reading a stored attachment: {}", e.kind());
                Some((Err(e), (file, 0)))
            }
        }
    });
    Body::from_stream(stream)
}

/// `GET /v1/dispatch/reports/{report}/attachments/{attachment}?device_id=`: the stored file,
/// streamed from disk; one byte range on request.
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
    let opened = media(&state, move |m| {
        let file = m.open_object(&sha)?;
        let size = file.metadata()?.len();
        Ok::<_, std::io::Error>((file, size))
    })
    .await?;
    let (file, size) = opened.map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the attachment is not stored (yet)",
        )
    })?;
    // Stored files are content-addressed: their SHA-256 is a strong validator.
    let etag = format!("\"{}\"", a.sha256);
    let header_text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let if_range_other = header_text(header::IF_RANGE).is_some_and(|v| v.trim() != etag);
    let part = match header_text(header::RANGE) {
        Some(_) if if_range_other => Part::Whole,
        range => part_of(range, size),
    };
    let (first, len, status) = match part {
        Part::Whole => (0, size, StatusCode::OK),
        Part::Range(first, last) => (first, last - first + 1, StatusCode::PARTIAL_CONTENT),
        Part::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::Malformed,
                format!("the range starts past the end of the file ({size} bytes)"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    if first > 0 {
        file.seek(SeekFrom::Start(first)).await.map_err(|e| {
            log::error!("seeking in a stored attachment: {}", e.kind());
            ApiError::internal()
        })?;
    }
    let mime = HeaderValue::from_str(&a.mime_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut resp = (status, file_body(file, len)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, mime);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Served as a file to save, never rendered as a page of this origin.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {first}-{}/{size}", first + len - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_read_and_others_ignored() {
        let p = |r: &str| part_of(Some(r), 1000);
        assert_eq!(part_of(None, 1000), Part::Whole);
        assert_eq!(p("bytes=0-99"), Part::Range(0, 99));
        assert_eq!(p("bytes=900-"), Part::Range(900, 999));
        assert_eq!(p("bytes=900-5000"), Part::Range(900, 999));
        assert_eq!(p("bytes=-100"), Part::Range(900, 999));
        assert_eq!(p("bytes=-5000"), Part::Range(0, 999));
        assert_eq!(p("bytes=1000-"), Part::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Part::Unsatisfiable);
        assert_eq!(part_of(Some("bytes=0-"), 0), Part::Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=-",
            "bytes=",
        ] {
            assert_eq!(p(ignored), Part::Whole, "{ignored}");
        }
    }
}
