//! Operability: the counters behind `/metrics` (`metrics.rs`), the per-device rate limit
//! (`rate.rs`), and what the access log learns about a request while it runs (its id, the
//! device that authenticated) through a task-local [`RequestContext`].

pub(crate) mod metrics;
pub(crate) mod rate;

use std::sync::{Arc, Mutex};

use crate::config::Limits;
pub(crate) use metrics::{AlarmGauges, Metrics, Outcomes};
use rate::RateLimiter;

/// The operability state of one server.
#[derive(Debug)]
pub(crate) struct Ops {
    pub(crate) metrics: Metrics,
    pub(crate) rate: RateLimiter,
    pub(crate) limits: Limits,
}

impl Ops {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            metrics: Metrics::default(),
            rate: RateLimiter::new(limits.device_rate_per_sec, limits.device_burst),
            limits,
        }
    }
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
