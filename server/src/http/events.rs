//! `GET /v1/dispatch/events`: the dispatchers' live alarm stream (`text/event-stream`).
//!
//! Each change is one event, the alarm's whole current view on one line:
//!
//! ```text
//! id: <event id>
//! event: alarm
//! data: <DispatchSos JSON>
//!
//! ```
//!
//! Without `Last-Event-ID` the stream starts with every alarm not resolved and every alarm
//! changed in the last hour; with `Last-Event-ID: N`, with every alarm changed after event N.
//! Either way each alarm comes once, at its current view, with its newest event id, in the
//! order of those ids (so ids only grow and a reconnect never skips one). Then live changes
//! follow. The stream subscribes to the hub before the first read; on every wake (or a lag) it
//! reads the alarms changed after the last id it sent from the event log, so no change is lost
//! and a burst of changes of one alarm may come as one event. A comment line (`: keep-alive`)
//! goes out every [`KEEP_ALIVE`] of silence; the stream ends when the server stops.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse as _, Response};
use tokio::sync::broadcast::{self, error::RecvError};

use super::error::ApiError;
use super::{auth_dispatcher, db, server_closing, AppState};
use crate::hub::AlarmEvent;
use crate::ops::Gauged;
use crate::storage::{now, AlarmChange};

/// Silence after which a keep-alive comment is sent.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The first bytes of every stream: a comment, so the client sees the stream open at once.
const OPENING: &str = ": crewsafe alarm stream\n\n";

/// Events in the stream's wire format.
fn format(changes: &[AlarmChange]) -> String {
    let mut out = String::new();
    for c in changes {
        // serde_json writes no raw newline: the view is one `data:` line.
        let json = serde_json::to_string(&c.alarm).unwrap_or_default();
        let _ = write!(out, "id: {}\nevent: alarm\ndata: {json}\n\n", c.event_id);
    }
    out
}

fn last_event_id(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
}

/// The state of one stream between chunks.
struct Feed {
    state: AppState,
    events: broadcast::Receiver<AlarmEvent>,
    /// The newest event id the client has been sent (or that the snapshot covers).
    last_sent: i64,
    first: Option<String>,
    keep_alive: tokio::time::Interval,
    /// Counts this stream in the open event streams gauge while it lives.
    _open: Gauged,
}

impl Feed {
    /// The next chunk of the body, or the end of the stream.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Feed)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(Bytes::from(first)), self));
        }
        let mut closing = self.state.closing.clone();
        loop {
            tokio::select! {
                _ = server_closing(&mut closing) => return None,
                _ = self.keep_alive.tick() => {
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
                }
                event = self.events.recv() => match event {
                    Ok(e) if e.event_id <= self.last_sent => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        let after = self.last_sent;
                        // On a database error the stream ends; the client reconnects with its
                        // Last-Event-ID and loses nothing.
                        let changes = db(self.state.storage.changes_after(after)).await.ok()?;
                        let Some(last) = changes.last() else { continue };
                        self.last_sent = last.event_id;
                        self.keep_alive.reset();
                        return Some((Ok(Bytes::from(format(&changes))), self));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

pub(super) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth_dispatcher(&state, &headers).await?;
    // Subscribed before the first read: nothing committed after it is missed.
    let events = state.storage.hub().subscribe();
    let (changes, covered) = match last_event_id(&headers) {
        None => db(state.storage.event_snapshot(now())).await?,
        Some(after) => {
            let changes = db(state.storage.changes_after(after)).await?;
            let last = changes.last().map_or(after, |c| c.event_id);
            (changes, last)
        }
    };
    let open = Gauged::new(state.ops.clone(), |m| &m.event_streams);
    let feed = Feed {
        state,
        events,
        last_sent: covered,
        first: Some(format!("{OPENING}{}", format(&changes))),
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        _open: open,
    };
    let body = Body::from_stream(futures_util::stream::unfold(feed, Feed::next));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies must pass events on as they come.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}
