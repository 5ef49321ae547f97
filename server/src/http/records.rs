//! Device endpoints: the batch upload (with the test faults that act on it) and the SOS
//! status poll.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use crewsafe_protocol::{
    decode_batch_request_raw, BatchResponse, DecodeError, ErrorCode, SosStatusRequest,
    SosStatusResponse, TestFault, MAX_BATCH_RECORDS, MAX_BODY_BYTES, PROTOCOL_VERSION,
};

use super::error::{json_error, ApiError};
use super::{auth_device, db, json_response, read_body, AppState, ConnKill, RecordCount};
use crate::ops::{Outcomes, RequestContext};

/// What to do with a committed batch answer.
enum Delivery {
    Normal,
    Drop,
    Truncate,
}

pub(super) async fn batch(
    State(state): State<AppState>,
    kill: Option<Extension<ConnKill>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.faults.count_batch_request();
    let device = auth_device(&state, &headers).await?;
    let bytes = read_body(&state, &headers, body, MAX_BODY_BYTES).await?;
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
    // The turn is taken once the body is in: a client that trickles its body holds only its
    // connection (the body timeouts end it), and a waiting batch holds only its body, not the
    // several times larger decoded records. Waiting fails nothing; a client that goes away
    // meanwhile gives up its place.
    let turn = state
        .ops
        .batch_turn()
        .await
        .ok_or_else(ApiError::internal)?;
    // From here on the batch is processed to the end even if the client goes away.
    let task_state = state.clone();
    let ctx = RequestContext::current();
    let work = tokio::spawn(ctx.scope_owned(async move {
        let _turn = turn;
        if task_state.test_faults {
            task_state.faults.batches_released().await;
        }
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let req = decode_batch_request_raw(&bytes).map_err(ApiError::decode)?;
        drop(bytes);
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
        let stored = db(task_state
            .storage
            .process_batch(device, records, reject_ids))
        .await?;
        if stored.stored_again {
            task_state.ops.metrics.batch_stored_again();
        }
        Ok::<_, ApiError>((
            count,
            BatchResponse {
                results: stored.results,
            },
        ))
    }));
    let (count, answer) = work.await.map_err(|_| ApiError::internal())??;
    let outcomes = Outcomes::of(answer.results.iter().map(|r| &r.status));
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
    resp.extensions_mut().insert(RecordCount(outcomes));
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

pub(super) async fn sos_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let device = auth_device(&state, &headers).await?;
    let bytes = read_body(&state, &headers, body, MAX_BODY_BYTES).await?;
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
    let statuses = db(state.storage.sos_statuses(device, Arc::new(req.ids))).await?;
    Ok(json_response(&SosStatusResponse { statuses }))
}
