//! `GET /v1/dispatch/reports`: the dispatchers' list of incident reports, newest first, a page
//! at a time (`limit`, and the opaque `cursor` of the previous page's `next_cursor`), optionally
//! within receive times (`since` inclusive, `until` exclusive). Each report comes with its
//! content as the phone sent it and, for each file it commits to, what the server holds.
//!
//! The console learns of new reports by asking for the first page again now and then: reports
//! are not alarms, the event stream's replay rests on the alarm event log, and a file becoming
//! stored is no database change at all.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use crewsafe_protocol::{
    DispatchReport, DispatchReportList, ReportContent, DEFAULT_REPORTS_PAGE, MAX_REPORTS_PAGE,
};
use serde::Deserialize;

use super::attachments::dispatch_view;
use super::error::ApiError;
use super::paging;
use super::{auth_dispatcher, db, json_response, AppState};
use crate::storage::{ReportQuery, StoredRecord};

/// What a cursor says before it is encoded: a version, so that the format may change.
const CURSOR_PREFIX: &str = "r1:";

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The cursor of the page after the report with this `seq`.
fn encode_cursor(seq: i64) -> String {
    paging::encode_cursor(CURSOR_PREFIX, &seq.to_string())
}

/// The `seq` a cursor body of [`encode_cursor`] names; `None` for anything else.
fn read_cursor(body: &str) -> Option<i64> {
    body.parse().ok().filter(|seq| *seq > 0)
}

/// The page the query string asks for.
fn page_query(q: &PageQuery) -> Result<ReportQuery, ApiError> {
    let limit = paging::limit(q.limit.as_deref(), DEFAULT_REPORTS_PAGE, MAX_REPORTS_PAGE)?;
    let before_seq = paging::cursor(q.cursor.as_deref(), CURSOR_PREFIX, read_cursor)?;
    let (since, until) = paging::window(q.since.as_deref(), q.until.as_deref())?;
    Ok(ReportQuery {
        limit,
        before_seq,
        since,
        until,
    })
}

/// `GET /v1/dispatch/reports[?limit=][&cursor=][&since=][&until=]`.
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(|_| ApiError::malformed("invalid query string"))?;
    let page = db(state.storage.report_page(page_query(&q)?)).await?;
    let parsed = page
        .reports
        .into_iter()
        .map(|r| {
            let content: ReportContent =
                serde_json::from_value(r.content.clone()).map_err(|_| {
                    log::error!("a stored report does not read as a report");
                    ApiError::internal()
                })?;
            Ok((r, content))
        })
        .collect::<Result<Vec<(StoredRecord, ReportContent)>, ApiError>>()?;
    let has_files = parsed.iter().any(|(_, c)| !c.attachments.is_empty());
    let reports = match state.media.clone() {
        Some(m) if has_files => tokio::task::spawn_blocking(move || views(Some(&m), parsed))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| {
                log::error!("attachment folder: {}", e.kind());
                ApiError::internal()
            })?,
        // Nothing to look up on disk; or no media folder, so no file is held.
        _ => views(None, parsed).map_err(|_| ApiError::internal())?,
    };
    Ok(json_response(&DispatchReportList {
        reports,
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// The reports as dispatch sees them, each file with what `media` holds of it.
fn views(
    media: Option<&crate::media::Media>,
    parsed: Vec<(StoredRecord, ReportContent)>,
) -> std::io::Result<Vec<DispatchReport>> {
    parsed
        .into_iter()
        .map(|(r, content)| {
            let attachments = content
                .attachments
                .iter()
                .map(|a| dispatch_view(media, &r.device_id, a.clone()))
                .collect::<std::io::Result<Vec<_>>>()?;
            Ok(DispatchReport {
                id: r.id,
                device_id: r.device_id,
                received_at: r.received_at,
                device_time: r.device_time,
                content,
                attachments,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(cursor: &str) -> Option<i64> {
        paging::cursor(Some(cursor), CURSOR_PREFIX, read_cursor)
            .ok()
            .flatten()
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        for seq in [1, 42, i64::MAX] {
            assert_eq!(decode(&encode_cursor(seq)), Some(seq));
        }
        for bad in ["", "42", "r1:42", "!!", &encode_cursor(0)] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        let q = |limit: &str| PageQuery {
            limit: Some(limit.into()),
            cursor: None,
            since: None,
            until: None,
        };
        assert_eq!(page_query(&q("7")).unwrap().limit, 7);
        for bad in ["0", "501", "-1", "ten"] {
            assert!(page_query(&q(bad)).is_err(), "{bad}");
        }
    }
}
