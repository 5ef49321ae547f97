//! Test fault injection: a queue of one-shot faults consumed by the next authenticated batch
//! requests, persistent poison ids (answered `rejected`, or breaking their whole batch), a
//! hold on batch processing, and a counter of batch requests.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crewsafe_protocol::{TestFault, TestFaultsState};

/// Fault controls of a running server (see [`crate::RunningServer::faults`] and
/// `POST /test/faults`). Cheap to share; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Faults {
    queue: Mutex<VecDeque<TestFault>>,
    reject_ids: Mutex<BTreeSet<String>>,
    malformed_ids: Mutex<BTreeSet<String>>,
    batch_requests: AtomicU64,
    /// True while [`Faults::hold_batches`] holds batches.
    held: tokio::sync::watch::Sender<bool>,
}

impl Faults {
    /// Queues a fault. [`TestFault::RejectId`] and [`TestFault::MalformedWithId`] are not
    /// queued: they poison their id until [`Faults::clear`].
    pub fn push(&self, fault: TestFault) {
        match fault {
            TestFault::RejectId { id } => {
                lock(&self.reject_ids).insert(id);
            }
            TestFault::MalformedWithId { id } => {
                lock(&self.malformed_ids).insert(id);
            }
            other => lock(&self.queue).push_back(other),
        }
    }

    /// Queues several faults in order.
    pub fn push_all(&self, faults: impl IntoIterator<Item = TestFault>) {
        for f in faults {
            self.push(f);
        }
    }

    /// Poisons a record id: it is answered `rejected` ("poison record (test fault)") until
    /// [`Faults::clear`].
    pub fn reject_id(&self, id: impl Into<String>) {
        self.push(TestFault::RejectId { id: id.into() });
    }

    /// Empties the queue, forgets every poisoned id and releases held batches (the request
    /// counter is kept).
    pub fn clear(&self) {
        lock(&self.queue).clear();
        lock(&self.reject_ids).clear();
        lock(&self.malformed_ids).clear();
        self.release_batches();
    }

    /// Holds batch processing: from now on, a batch that got its turn (see
    /// [`crate::Limits::max_concurrent_batches`]) keeps it and waits, before it is decoded and
    /// stored, until [`Faults::release_batches`] (or [`Faults::clear`]). For tests of the
    /// limit: the held batches show in `crewsafe_batches_in_progress`, those behind them in
    /// `crewsafe_batches_waiting`. Their bodies were read already: no timeout ends the wait.
    pub fn hold_batches(&self) {
        self.held.send_replace(true);
    }

    /// Lets held batches go on (and later ones through).
    pub fn release_batches(&self) {
        self.held.send_replace(false);
    }

    /// One-shot faults not yet consumed, in order.
    pub fn pending(&self) -> Vec<TestFault> {
        lock(&self.queue).iter().cloned().collect()
    }

    /// Batch requests received since start, whatever their outcome (counted before
    /// authentication, also when test fault mode is off).
    pub fn batch_requests(&self) -> u64 {
        self.batch_requests.load(Ordering::SeqCst)
    }

    /// Snapshot for `GET /test/faults`.
    pub fn state(&self) -> TestFaultsState {
        TestFaultsState {
            pending: self.pending(),
            reject_ids: lock(&self.reject_ids).iter().cloned().collect(),
            malformed_ids: lock(&self.malformed_ids).iter().cloned().collect(),
            batch_requests: self.batch_requests(),
        }
    }

    pub(crate) fn count_batch_request(&self) {
        self.batch_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn next(&self) -> Option<TestFault> {
        lock(&self.queue).pop_front()
    }

    /// Whether a raw batch body names an id that makes the whole batch malformed.
    pub(crate) fn breaks_batch(&self, body: &[u8]) -> bool {
        lock(&self.malformed_ids).iter().any(|id| {
            let quoted = format!("\"{id}\"");
            body.windows(quoted.len()).any(|w| w == quoted.as_bytes())
        })
    }

    /// Completes once batches are not held.
    pub(crate) async fn batches_released(&self) {
        let mut held = self.held.subscribe();
        // The guard `wait_for` returns is not held: it must not live across an await.
        let _ = held.wait_for(|h| !*h).await.map(|_| ());
    }

    pub(crate) fn reject_set(&self) -> HashSet<String> {
        lock(&self.reject_ids).iter().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
