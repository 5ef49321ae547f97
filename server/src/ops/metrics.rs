//! The server's counters and their exposition in the Prometheus text format (version 0.0.4),
//! written by hand: every family has its `# HELP` and `# TYPE` lines, histogram buckets are
//! cumulative and end with `+Inf`, followed by `_sum` and `_count`.
//!
//! Requests are counted by the matched route pattern (`/v1/dispatch/sos/{id}/acknowledge`),
//! never the raw path, so ids do not become label values; requests no route matched share
//! the route `unmatched`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crewsafe_protocol::ItemStatus;

/// Upper bounds (seconds) of the batch latency histogram's buckets.
const BATCH_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every counter of one server.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// By (method, route pattern, status).
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// By outcome: accepted, duplicate, conflict, rejected.
    records: [AtomicU64; 4],
    batch: Histogram,
    db_errors: AtomicU64,
    /// Batches stored a second time with conflict checks.
    stored_again: AtomicU64,
    rate_limited: AtomicU64,
    /// Event streams open right now.
    pub(crate) event_streams: AtomicUsize,
    /// Connections open right now.
    pub(crate) connections: AtomicUsize,
    /// Batches being decoded and stored right now (holding a turn of
    /// `Limits::max_concurrent_batches`).
    pub(crate) batches_in_progress: AtomicUsize,
    /// Batches whose body was read, waiting for a turn right now.
    pub(crate) batches_waiting: AtomicUsize,
    /// Time batches spent waiting for a turn, in total.
    batch_wait_micros: AtomicU64,
}

/// The alarm gauges, read from the database at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AlarmGauges {
    /// Alarms not resolved.
    pub(crate) open: u64,
    /// Alarms no dispatcher has acknowledged yet.
    pub(crate) unacknowledged: u64,
    /// Seconds since the server received the oldest unacknowledged alarm (0 if none).
    pub(crate) oldest_unacknowledged_secs: f64,
}

/// Record counts of one batch answer, by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcomes {
    pub(crate) accepted: u64,
    pub(crate) duplicate: u64,
    pub(crate) conflict: u64,
    pub(crate) rejected: u64,
}

impl Outcomes {
    /// Counts the statuses of a batch answer.
    pub(crate) fn of<'a>(statuses: impl IntoIterator<Item = &'a ItemStatus>) -> Self {
        let mut o = Self::default();
        for s in statuses {
            match s {
                ItemStatus::Accepted => o.accepted += 1,
                ItemStatus::Duplicate => o.duplicate += 1,
                ItemStatus::Conflict => o.conflict += 1,
                ItemStatus::Rejected => o.rejected += 1,
            }
        }
        o
    }

    /// All records.
    pub(crate) fn total(&self) -> u64 {
        self.accepted + self.duplicate + self.conflict + self.rejected
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative; the last is above every bound).
    counts: [AtomicU64; BATCH_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BATCH_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn request(&self, method: &str, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    /// Counts the records of one batch answer and its latency.
    pub(crate) fn batch(&self, outcomes: Outcomes, latency: Duration) {
        let counts = [
            outcomes.accepted,
            outcomes.duplicate,
            outcomes.conflict,
            outcomes.rejected,
        ];
        for (counter, n) in self.records.iter().zip(counts) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
        self.batch.observe(latency);
    }

    /// Counts one failed database operation.
    pub(crate) fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one batch stored a second time with conflict checks.
    pub(crate) fn batch_stored_again(&self) {
        self.stored_again.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the time one batch waited for its turn.
    pub(crate) fn batch_waited(&self, d: Duration) {
        self.batch_wait_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts one request refused by the rate limit.
    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition: the counters, `watches` (status watches waiting now) and the alarm
    /// gauges if the database answered.
    pub(crate) fn render(&self, watches: usize, alarms: Option<AlarmGauges>) -> String {
        let mut out = String::new();
        let o = &mut out;
        family(
            o,
            "crewsafe_http_requests_total",
            "counter",
            "HTTP requests answered, by method, matched route pattern and status.",
        );
        {
            let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((method, route, status), n) in map.iter() {
                let _ = writeln!(
                    o,
                    "crewsafe_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        family(
            o,
            "crewsafe_records_total",
            "counter",
            "Records answered in batches, by outcome.",
        );
        for (outcome, counter) in ["accepted", "duplicate", "conflict", "rejected"]
            .iter()
            .zip(&self.records)
        {
            let n = counter.load(Ordering::Relaxed);
            let _ = writeln!(o, "crewsafe_records_total{{outcome=\"{outcome}\"}} {n}");
        }
        family(
            o,
            "crewsafe_batch_duration_seconds",
            "histogram",
            "Time from receiving a batch request to its answer (status 200 only).",
        );
        let mut cumulative = 0u64;
        for (i, bound) in BATCH_BUCKETS.iter().enumerate() {
            cumulative += self.batch.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "crewsafe_batch_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.batch.counts[BATCH_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "crewsafe_batch_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.batch.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "crewsafe_batch_duration_seconds_sum {sum}");
        let _ = writeln!(o, "crewsafe_batch_duration_seconds_count {cumulative}");
        counter(
            o,
            "crewsafe_database_errors_total",
            "Database operations that failed.",
            self.db_errors.load(Ordering::Relaxed),
        );
        counter(
            o,
            "crewsafe_batches_stored_again_total",
            "Batches stored a second time with conflict checks because a record in them was \
             stored already (PostgreSQL; PostgreSQL logs a unique violation for each).",
            self.stored_again.load(Ordering::Relaxed),
        );
        counter(
            o,
            "crewsafe_rate_limited_total",
            "Requests answered 429 by the per-device rate limit.",
            self.rate_limited.load(Ordering::Relaxed),
        );
        gauge(
            o,
            "crewsafe_batches_in_progress",
            "Batches being decoded and stored now (at most --max-concurrent-batches).",
            self.batches_in_progress.load(Ordering::Relaxed) as f64,
        );
        gauge(
            o,
            "crewsafe_batches_waiting",
            "Batches received in full and waiting for a turn to be decoded and stored now.",
            self.batches_waiting.load(Ordering::Relaxed) as f64,
        );
        family(
            o,
            "crewsafe_batch_wait_seconds_total",
            "counter",
            "Time batches spent waiting for a turn to be decoded and stored, in total.",
        );
        let waited = self.batch_wait_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "crewsafe_batch_wait_seconds_total {waited}");
        gauge(
            o,
            "crewsafe_open_connections",
            "Client connections open now.",
            self.connections.load(Ordering::Relaxed) as f64,
        );
        gauge(
            o,
            "crewsafe_open_watches",
            "SOS status watches (long polls) waiting now.",
            watches as f64,
        );
        gauge(
            o,
            "crewsafe_open_event_streams",
            "Dispatcher event streams open now.",
            self.event_streams.load(Ordering::Relaxed) as f64,
        );
        if let Some(a) = alarms {
            gauge(
                o,
                "crewsafe_alarms_open",
                "Alarms not resolved (delivered or acknowledged).",
                a.open as f64,
            );
            gauge(
                o,
                "crewsafe_alarms_unacknowledged",
                "Alarms no dispatcher has acknowledged yet.",
                a.unacknowledged as f64,
            );
            gauge(
                o,
                "crewsafe_alarm_oldest_unacknowledged_age_seconds",
                "Seconds since the server received the oldest unacknowledged alarm (0 if none).",
                a.oldest_unacknowledged_secs,
            );
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.batch(Outcomes::default(), Duration::from_millis(3));
        m.batch(Outcomes::default(), Duration::from_millis(30));
        m.batch(Outcomes::default(), Duration::from_secs(60));
        m.request("GET", "/a\"b", 200);
        let text = m.render(0, None);
        assert!(text.contains("crewsafe_batch_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("crewsafe_batch_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("crewsafe_batch_duration_seconds_bucket{le=\"30\"} 2\n"));
        assert!(text.contains("crewsafe_batch_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("crewsafe_batch_duration_seconds_count 3\n"));
        assert!(text.contains("crewsafe_batch_duration_seconds_sum 60.033\n"));
        assert!(text.contains("route=\"/a\\\"b\""));
        assert!(!text.contains("crewsafe_alarms_open"));
    }
}
