//! Operability: the counters behind `/metrics` (`metrics.rs`), the per-device rate limit
//! (`rate.rs`), the server-wide limit on batches processed at once ([`Ops::batch_turn`]), and
//! what the access log learns about a request while it runs (its id, the device that
//! authenticated) through a task-local [`RequestContext`].

pub(crate) mod metrics;
pub(crate) mod rate;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
pub(crate) use metrics::{AlarmGauges, Metrics, Outcomes};
use rate::RateLimiter;

/// The operability state of one server.
#[derive(Debug)]
pub(crate) struct Ops {
    pub(crate) metrics: Metrics,
    pub(crate) rate: RateLimiter,
    pub(crate) limits: Limits,
    /// Turns of `limits.max_concurrent_batches`: one per batch being decoded and stored.
    batches: Arc<Semaphore>,
}

impl Ops {
    pub(crate) fn new(limits: Limits) -> Self {
        let turns = limits
            .max_concurrent_batches
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            metrics: Metrics::default(),
            rate: RateLimiter::new(limits.device_rate_per_sec, limits.device_burst),
            batches: Arc::new(Semaphore::new(turns)),
            limits,
        }
    }

    /// Waits for a turn to decode and store a batch (in arrival order: the semaphore is
    /// fair), counted in `crewsafe_batches_waiting` meanwhile and in
    /// `crewsafe_batches_in_progress` while the turn is held. Dropping the future while it
    /// waits (the client went away) gives up its place. `None` only if the semaphore was
    /// closed, which never happens.
    pub(crate) async fn batch_turn(self: &Arc<Self>) -> Option<BatchTurn> {
        let permit = match self.batches.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let started = Instant::now();
                let _waiting = Gauged::new(self.clone(), |m| &m.batches_waiting);
                let p = self.batches.clone().acquire_owned().await.ok()?;
                self.metrics.batch_waited(started.elapsed());
                p
            }
        };
        Some(BatchTurn {
            _running: Gauged::new(self.clone(), |m| &m.batches_in_progress),
            _permit: permit,
        })
    }
}

/// A batch's turn to be decoded and stored; the next waiting batch gets it when this drops.
#[derive(Debug)]
pub(crate) struct BatchTurn {
    _running: Gauged,
    _permit: OwnedSemaphorePermit,
}

/// What handlers tell the access log about the request they serve.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    inner: Arc<Mutex<Noted>>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Noted {
    /// The device (or dispatcher name) whose token authenticated the request.
    pub(crate) device_id: Option<String>,
    pub(crate) dispatcher: Option<String>,
    /// A database operation failed while serving it.
    pub(crate) db_error: bool,
}

tokio::task_local! {
    static REQUEST: RequestContext;
}

impl RequestContext {
    /// Runs `f` (the rest of the request) with this context as the task's.
    pub(crate) async fn scope<F: std::future::Future>(&self, f: F) -> F::Output {
        REQUEST.scope(self.clone(), f).await
    }

    /// The context of the request this task serves, if any (to carry it into a spawned task).
    pub(crate) fn current() -> Self {
        REQUEST.try_with(Clone::clone).unwrap_or_default()
    }

    /// `f` with this context as its task's, for `tokio::spawn`.
    pub(crate) fn scope_owned<F: std::future::Future>(
        self,
        f: F,
    ) -> impl std::future::Future<Output = F::Output> {
        REQUEST.scope(self, f)
    }

    /// What was noted so far.
    pub(crate) fn noted(&self) -> Noted {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn with_current(f: impl FnOnce(&mut Noted)) {
        let _ = REQUEST.try_with(|ctx| f(&mut ctx.inner.lock().unwrap_or_else(|e| e.into_inner())));
    }

    /// Notes the authenticated device (no-op outside a request).
    pub(crate) fn note_device(device: &str) {
        Self::with_current(|n| n.device_id = Some(device.to_string()));
    }

    /// Notes the authenticated dispatcher (no-op outside a request).
    pub(crate) fn note_dispatcher(name: &str) {
        Self::with_current(|n| n.dispatcher = Some(name.to_string()));
    }

    /// Notes a database error (no-op outside a request).
    pub(crate) fn note_db_error() {
        Self::with_current(|n| n.db_error = true);
    }
}

/// A request id: the client's `x-request-id` if it is short and plain (letters, digits, `-`,
/// `_`, `.`), else a fresh UUID.
pub(crate) fn request_id(given: Option<&str>) -> String {
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Counts itself in a gauge while it lives.
#[derive(Debug)]
pub(crate) struct Gauged(Arc<Ops>, fn(&Metrics) -> &std::sync::atomic::AtomicUsize);

impl Gauged {
    pub(crate) fn new(
        ops: Arc<Ops>,
        gauge: fn(&Metrics) -> &std::sync::atomic::AtomicUsize,
    ) -> Self {
        gauge(&ops.metrics).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(ops, gauge)
    }
}

impl Drop for Gauged {
    fn drop(&mut self) {
        (self.1)(&self.0.metrics).fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
