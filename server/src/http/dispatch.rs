//! Dispatcher endpoints: the list of alarms and the moves acknowledge and resolve, each with an
//! optional [`DispatchAction`] body carrying a message for the crew.
//!
//! The list comes a page at a time in receive order (`storage/pages.rs`): `limit` alarms
//! (default [`DEFAULT_SOS_PAGE`], at most [`MAX_SOS_PAGE`]), then the opaque `cursor` of the
//! previous page's `next_cursor`; filtered by `status` (one, or several separated by commas),
//! `alarm` kind and receive time (`since` inclusive, `until` exclusive). Anything it cannot
//! read is refused with a 400 naming the parameter.

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use crewsafe_protocol::{
    AlarmKind, DispatchAction, DispatchSos, DispatchSosList, DispatchStatus, ErrorCode,
    DEFAULT_SOS_PAGE, MAX_SOS_PAGE,
};
use serde::Deserialize;

use super::error::{json_error, ApiError};
use super::paging;
use super::{auth_dispatcher, db, json_response, read_body, AppState};
use crate::storage::{Advance, AlarmQuery, Lookup, Move, Position};
use crate::validate::dispatch_message;

/// Largest acknowledge/resolve body: a message of the longest length, in UTF-8 and JSON
/// escaping, with room to spare.
const MAX_ACTION_BYTES: usize = 16 * 1024;

/// The query string of the list; every value is parsed here, so that a bad one is refused
/// with a message that names it.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    alarm: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// What a cursor says before it is encoded: a version, so that the format may change.
const CURSOR_PREFIX: &str = "a1:";

/// The cursor of the page after `position`.
fn encode_cursor(position: Position) -> String {
    paging::encode_cursor(
        CURSOR_PREFIX,
        &format!("{}:{}", position.received_us, position.seq),
    )
}

/// The position a cursor body of [`encode_cursor`] names; `None` for anything else.
fn read_cursor(body: &str) -> Option<Position> {
    let (us, seq) = body.split_once(':')?;
    let position = Position {
        received_us: us.parse().ok()?,
        seq: seq.parse().ok()?,
    };
    (position.seq > 0).then_some(position)
}

/// A time bound as Unix microseconds rounded up (times are stored to the microsecond:
/// `received_at >= since` and `received_at < until` hold as written).
fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() + i64::from(t.timestamp_subsec_nanos() % 1000 != 0)
}

/// The page the query string asks for.
fn alarm_query(q: &ListQuery) -> Result<AlarmQuery, ApiError> {
    let mut statuses: Vec<DispatchStatus> = Vec::new();
    if let Some(list) = q.status.as_deref() {
        for word in list.split(',') {
            let status: DispatchStatus = word.trim().parse().map_err(|_| {
                ApiError::malformed(
                    "status: delivered, acknowledged or resolved, or several separated by commas",
                )
            })?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
    }
    let alarm = q
        .alarm
        .as_deref()
        .map(|a| {
            a.trim()
                .parse::<AlarmKind>()
                .map_err(|_| ApiError::malformed("alarm: sos or missed_check_in"))
        })
        .transpose()?;
    let limit = paging::limit(q.limit.as_deref(), DEFAULT_SOS_PAGE, MAX_SOS_PAGE)?;
    let after = paging::cursor(q.cursor.as_deref(), CURSOR_PREFIX, read_cursor)?;
    let (since, until) = paging::window(q.since.as_deref(), q.until.as_deref())?;
    let (since_us, until_us) = (since.map(micros), until.map(micros));
    Ok(AlarmQuery {
        statuses,
        alarm,
        since_us,
        until_us,
        after,
        limit,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct DeviceQuery {
    device_id: Option<String>,
}

fn query_error(_: QueryRejection) -> ApiError {
    ApiError::malformed("invalid query string")
}

/// `GET /v1/dispatch/sos[?status=][&alarm=][&since=][&until=][&limit=][&cursor=]`: one page
/// of alarms in receive order.
pub(super) async fn dispatch_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    let Query(q) = query.map_err(query_error)?;
    let page = db(state.storage.dispatch_page(alarm_query(&q)?)).await?;
    Ok(json_response(&DispatchSosList {
        sos: page.sos,
        next_cursor: page.next.map(encode_cursor),
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(cursor: &str) -> Option<Position> {
        paging::cursor(Some(cursor), CURSOR_PREFIX, read_cursor)
            .ok()
            .flatten()
    }

    fn query(pairs: &[(&str, &str)]) -> Result<AlarmQuery, ApiError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        alarm_query(&ListQuery {
            status: get("status"),
            alarm: get("alarm"),
            since: get("since"),
            until: get("until"),
            limit: get("limit"),
            cursor: get("cursor"),
        })
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        for (us, seq) in [(0, 1), (-5, 7), (1_795_593_600_123_456, i64::MAX)] {
            let p = Position {
                received_us: us,
                seq,
            };
            assert_eq!(decode(&encode_cursor(p)), Some(p));
        }
        let zero = encode_cursor(Position {
            received_us: 1,
            seq: 0,
        });
        let other = paging::encode_cursor("r1:", "42");
        for bad in ["", "42", "a1:1:2", "!!", &zero, &other] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_query_string_is_read_or_refused_naming_the_parameter() {
        let q = query(&[]).unwrap();
        assert_eq!(q, AlarmQuery::all(DEFAULT_SOS_PAGE));
        let q = query(&[
            ("status", "delivered, acknowledged,delivered"),
            ("alarm", "missed_check_in"),
            ("since", "2026-11-25T08:00:00Z"),
            ("until", "2026-11-25T09:00:00.0000001+00:00"),
            ("limit", "1000"),
        ])
        .unwrap();
        assert_eq!(
            q.statuses,
            vec![DispatchStatus::Delivered, DispatchStatus::Acknowledged]
        );
        assert_eq!(q.alarm, Some(AlarmKind::MissedCheckIn));
        assert_eq!(q.since_us, Some(1_795_593_600_000_000));
        // Rounded up to the next microsecond.
        assert_eq!(q.until_us, Some(1_795_597_200_000_001));
        assert_eq!(q.limit, 1000);
        for (name, value) in [
            ("status", "open"),
            ("status", ""),
            ("alarm", "fire"),
            ("since", "yesterday"),
            ("until", "2026-11-25"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "-1"),
            ("cursor", "abc"),
        ] {
            match query(&[(name, value)]) {
                Err(e) => {
                    assert_eq!(e.status, StatusCode::BAD_REQUEST);
                    assert!(e.message.starts_with(name), "{name}={value}: {}", e.message);
                }
                Ok(q) => panic!("{name}={value} was read as {q:?}"),
            }
        }
        let e = query(&[
            ("since", "2026-11-25T09:00:00Z"),
            ("until", "2026-11-25T08:00:00Z"),
        ])
        .unwrap_err();
        assert!(e.message.starts_with("until"), "{}", e.message);
    }
}
