//! `POST /v1/sos:watch`: the phone's long poll on the status of its open alarms.
//!
//! The watch subscribes to the hub before it reads any status, so a change committed between
//! the read and the wait still wakes it. It answers at once with every alarm whose status
//! differs from what the phone knows; otherwise it waits for an event of the phone's device,
//! reads again, and answers when something differs, or with no statuses when the wait ends
//! (or the server stops). A client that goes away drops the request, and with it the waiter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use crewsafe_protocol::{
    decode_sos_watch_request, KnownStatus, SosStatus, SosStatusResponse, MAX_STATUS_IDS,
    MAX_WATCH_SECONDS,
};
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::{auth_device, db, json_response, read_body, server_closing, AppState};

/// Largest watch body: [`MAX_STATUS_IDS`] entries of about 120 bytes, with room to spare.
const MAX_WATCH_BYTES: usize = 512 * 1024;

/// Counts a waiting watch for as long as it lives.
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether the server's `status` is news to a phone that knows `known`: another status, or a
/// newer `updated_at` (compared in milliseconds, the precision every client keeps), or the
/// phone has no time at all.
fn differs(known: &KnownStatus, status: &SosStatus) -> bool {
    known.status != status.status
        || known
            .updated_at
            .is_none_or(|t| t.timestamp_millis() < status.updated_at.timestamp_millis())
}

pub(super) async fn watch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let device = Arc::new(auth_device(&state, &headers).await?);
    let bytes = read_body(&state, &headers, body, MAX_WATCH_BYTES).await?;
    let req = decode_sos_watch_request(&bytes).map_err(ApiError::decode)?;
    if req.known.len() > MAX_STATUS_IDS {
        return Err(ApiError::malformed(format!(
            "known: at most {MAX_STATUS_IDS} alarms"
        )));
    }
    if req.wait_seconds > MAX_WATCH_SECONDS {
        return Err(ApiError::malformed(format!(
            "wait_seconds: at most {MAX_WATCH_SECONDS}"
        )));
    }
    let _waiting = Waiting::new(&state.watches);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(req.wait_seconds.into());
    let mut events = state.storage.hub().subscribe();
    let mut closing = state.closing.clone();
    let known = Arc::new(req.known);
    let ids: Arc<Vec<String>> = Arc::new(known.iter().map(|k| k.id.clone()).collect());
    let by_id: HashMap<&str, &KnownStatus> = known.iter().map(|k| (k.id.as_str(), k)).collect();
    let answer = |statuses| json_response(&SosStatusResponse { statuses });
    loop {
        let now = db(state.storage.sos_statuses(device.to_string(), ids.clone())).await?;
        let news: Vec<SosStatus> = now
            .into_iter()
            .filter(|s| by_id.get(s.id.as_str()).is_some_and(|k| differs(k, s)))
            .collect();
        if !news.is_empty() {
            return Ok(answer(news));
        }
        // Wait for an event of this device (or a lag, after which anything may have changed).
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(answer(Vec::new())),
                _ = server_closing(&mut closing) => return Ok(answer(Vec::new())),
                event = events.recv() => match event {
                    Ok(e) if e.device_id == *device => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(answer(Vec::new())),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use crewsafe_protocol::DispatchStatus;

    use super::*;

    #[test]
    fn news_is_another_status_a_newer_millisecond_or_no_time() {
        let t = Utc.timestamp_micros(1_800_000_000_123_456).unwrap();
        let status = SosStatus {
            id: "a".into(),
            status: DispatchStatus::Acknowledged,
            updated_at: t,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            message: None,
        };
        let known = |status, updated_at| KnownStatus {
            id: "a".into(),
            status,
            updated_at,
        };
        let same_ms = Utc.timestamp_millis_opt(1_800_000_000_123).unwrap();
        let earlier = Utc.timestamp_millis_opt(1_800_000_000_122).unwrap();
        assert!(!differs(
            &known(DispatchStatus::Acknowledged, Some(t)),
            &status
        ));
        assert!(!differs(
            &known(DispatchStatus::Acknowledged, Some(same_ms)),
            &status
        ));
        assert!(differs(
            &known(DispatchStatus::Acknowledged, Some(earlier)),
            &status
        ));
        assert!(differs(&known(DispatchStatus::Acknowledged, None), &status));
        assert!(differs(&known(DispatchStatus::Delivered, Some(t)), &status));
    }
}
