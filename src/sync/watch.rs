//! The status watch: while at least one delivered SOS is neither resolved nor cancelled and
//! the host says the network is up, one long poll (`POST /v1/sos:watch`) at a time asks the
//! server to answer as soon as dispatch does something with one of them. Answers are applied
//! in one transaction and reach the record listeners, so the crew learns "acknowledged" and
//! the dispatcher's message without any app code. Failures back off (1 s doubling to 1 min);
//! offline, closed, or with no open alarm, nothing is sent.
//!
//! One watcher thread decides when to ask; each request runs on its own short-lived thread
//! and applies its own answer. When a new alarm becomes open while a request is waiting on the
//! server, the watcher does not wait for that request to end: it asks again at once, with
//! every open alarm, and the older request's answer is applied whenever it comes (answers only
//! ever move a status forward). A stopped watcher never waits for a request in flight.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crewsafe_protocol as proto;

use super::backoff;
use super::setup::SyncSetup;
use super::shared::Shared;
use super::transport::TransportError;
use super::watch_signal::{Outcome, Watch};

/// Shortest pause between two requests that changed nothing and came back early (a server
/// that answers at once without news must not turn the watch into a busy loop).
const MIN_QUIET_GAP: Duration = Duration::from_secs(1);
/// First retry delay after a failed request, in ms; doubles up to [`MAX_RETRY_MS`].
const BASE_RETRY_MS: u64 = 1_000;
/// Longest retry delay, in ms.
const MAX_RETRY_MS: u64 = 60_000;

/// Starts the watcher thread. It holds only a weak reference to the store's shared state.
pub(crate) fn spawn(shared: Weak<Shared>, watch: Arc<Watch>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("crewsafe-watch".into())
        .spawn(move || run(&shared, &watch))
}

fn run(shared: &Weak<Shared>, watch: &Arc<Watch>) {
    let mut until: Option<Instant> = None;
    let mut failures = 0u32;
    let mut refresh = false;
    // The first turn looks at once (alarms may be open from an earlier run).
    watch.kick();
    while watch.wait_turn(until) {
        until = None;
        let Some((setup, known, token)) = next_request(shared, refresh) else {
            // Nothing to watch (or no token): wait for a kick.
            continue;
        };
        refresh = false;
        let request = watch.begin();
        let started = Instant::now();
        if spawn_request(shared.clone(), watch.clone(), setup, known, token, request).is_err() {
            until = Some(Instant::now() + Duration::from_millis(MAX_RETRY_MS));
            continue;
        }
        match watch.wait_end(request) {
            // Kicked (look again at once) or stopping.
            None => watch.kick(),
            Some(Outcome::Answered { news }) => {
                failures = 0;
                if news || started.elapsed() >= MIN_QUIET_GAP {
                    watch.kick();
                } else {
                    until = Some(started + MIN_QUIET_GAP);
                }
            }
            Some(outcome) => {
                refresh = outcome == Outcome::Unauthorized;
                let delay =
                    backoff::delay_ms(failures, BASE_RETRY_MS, MAX_RETRY_MS, backoff::draw());
                failures = failures.saturating_add(1);
                until = Some(Instant::now() + Duration::from_millis(delay));
            }
        }
    }
}

/// What the next request needs, or `None` when there is nothing to watch.
fn next_request(
    shared: &Weak<Shared>,
    refresh: bool,
) -> Option<(Arc<SyncSetup>, Vec<proto::KnownStatus>, String)> {
    let shared = shared.upgrade()?;
    let setup = shared.sync_setup()?;
    if setup.config.status_watch_seconds == 0 {
        return None;
    }
    let mut known = match shared.db(|db| db.open_alarms(false)) {
        Ok(k) => k,
        Err(e) => {
            log::debug!("status watch: open alarms not read: {e}");
            return None;
        }
    };
    if known.is_empty() {
        return None;
    }
    // The oldest open alarms first; a thousand open at once is already far beyond real use.
    known.truncate(proto::MAX_STATUS_IDS);
    let token = if refresh {
        setup.tokens.refresh_token()
    } else {
        setup.tokens.token()
    };
    match token {
        Ok(t) if super::transport::check_token(&t).is_ok() => Some((setup, known, t)),
        Ok(_) => {
            log::info!("status watch: the host's token cannot be sent");
            None
        }
        Err(e) => {
            log::info!("status watch: no token from the host: {e}");
            None
        }
    }
}

/// Runs one watch request on its own thread; it applies its answer and reports how it ended.
fn spawn_request(
    shared: Weak<Shared>,
    watch: Arc<Watch>,
    setup: Arc<SyncSetup>,
    known: Vec<proto::KnownStatus>,
    token: String,
    request: u64,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("crewsafe-watch-request".into())
        .spawn(move || {
            let token = zeroize::Zeroizing::new(token);
            let wait = setup.config.status_watch_seconds;
            let outcome = match setup.transport.sos_watch(&token, known.clone(), wait) {
                Ok(answer) => {
                    apply(&shared, &answer.statuses);
                    Outcome::Answered {
                        news: answer.statuses.iter().any(|s| is_news(s, &known)),
                    }
                }
                Err(TransportError::Unauthorized) => Outcome::Unauthorized,
                Err(e) => {
                    log::info!("status watch failed: {e}");
                    Outcome::Failed
                }
            };
            watch.end(request, outcome);
        })
        .map(drop)
}

/// Whether an answer tells the phone something it did not know when it asked (then the next
/// request is a different question and may go at once).
fn is_news(answer: &proto::SosStatus, known: &[proto::KnownStatus]) -> bool {
    !known.iter().any(|k| {
        k.id.eq_ignore_ascii_case(&answer.id)
            && k.status == answer.status
            && k.updated_at.is_some_and(|t| t >= answer.updated_at)
    })
}

/// Applies answers in one transaction and tells the record listeners.
fn apply(shared: &Weak<Shared>, statuses: &[proto::SosStatus]) {
    if statuses.is_empty() {
        return;
    }
    let Some(shared) = shared.upgrade() else {
        return;
    };
    match shared.db(|db| db.apply_dispatch(statuses)) {
        Ok(changes) => shared.observers.records(&changes),
        Err(e) => log::info!("status watch: answer not stored: {e}"),
    }
}
